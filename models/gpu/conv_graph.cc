#include "models/gpu/conv_graph.h"

#include <algorithm>

#include "cuda/dnn.h"

namespace ps::models::gpu {
namespace {

using cuda::BackendDescriptor;

enum Uid : int64_t { kX = 1, kW = 2, kB = 3, kR = 4, kY = 5, kVirtual = 100 };

std::vector<int64_t> packed_strides(std::span<const int64_t> dims) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

Result<BackendDescriptor> make_tensor(std::span<const int64_t> dims, int64_t uid, bool is_virtual) {
  PS_ASSIGN_OR_RETURN(BackendDescriptor t,
                      BackendDescriptor::create(CUDNN_BACKEND_TENSOR_DESCRIPTOR));
  const std::vector<int64_t> strides = packed_strides(dims);
  PS_TRY(t.set_data_type(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_DATA_FLOAT));
  PS_TRY(t.set_int64(CUDNN_ATTR_TENSOR_DIMENSIONS, dims));
  PS_TRY(t.set_int64(CUDNN_ATTR_TENSOR_STRIDES, strides));
  PS_TRY(t.set_int64(CUDNN_ATTR_TENSOR_UNIQUE_ID, uid));
  PS_TRY(t.set_int64(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, int64_t{16}));
  const bool virt = is_virtual;
  PS_TRY(t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt));
  PS_TRY(t.finalize());
  return t;
}

// A pointwise operation y = mode(x[, b]).
Result<BackendDescriptor> make_pointwise(std::vector<BackendDescriptor>& parts,
                                         cudnnPointwiseMode_t mode, const BackendDescriptor& x,
                                         const BackendDescriptor* b, const BackendDescriptor& y) {
  PS_ASSIGN_OR_RETURN(BackendDescriptor pw,
                      BackendDescriptor::create(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
  PS_TRY(pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode));
  PS_TRY(pw.set_data_type(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_DATA_FLOAT));
  PS_TRY(pw.finalize());
  PS_ASSIGN_OR_RETURN(BackendDescriptor op,
                      BackendDescriptor::create(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
  PS_TRY(op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw));
  PS_TRY(op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x));
  if (b != nullptr) PS_TRY(op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b));
  PS_TRY(op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y));
  PS_TRY(op.finalize());
  parts.push_back(std::move(pw));
  return op;
}

// The engine behind an engine configuration, its global index, and whether its notes admit it.
struct EngineInfo {
  int64_t index = -1;
  bool admitted = false;
};

Result<EngineInfo> engine_info(const BackendDescriptor& config, Precision precision) {
  PS_ASSIGN_OR_RETURN(BackendDescriptor engine,
                      BackendDescriptor::create(CUDNN_BACKEND_ENGINE_DESCRIPTOR));
  cudnnBackendDescriptor_t raw = engine.get();
  int64_t count = 0;
  CUDNN_TRY(cudnnBackendGetAttribute(config.get(), CUDNN_ATTR_ENGINECFG_ENGINE,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &count, &raw));
  EngineInfo info;
  PS_ASSIGN_OR_RETURN(info.index, engine.get_int64(CUDNN_ATTR_ENGINE_GLOBAL_INDEX));
  std::array<cudnnBackendNumericalNote_t, CUDNN_NUMERICAL_NOTE_TYPE_COUNT> notes{};
  int64_t note_count = 0;
  CUDNN_TRY(cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                                     CUDNN_TYPE_NUMERICAL_NOTE, CUDNN_NUMERICAL_NOTE_TYPE_COUNT,
                                     &note_count, notes.data()));
  std::array<cudnnBackendBehaviorNote_t, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT> behaviour{};
  int64_t behaviour_count = 0;
  CUDNN_TRY(cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE,
                                     CUDNN_TYPE_BEHAVIOR_NOTE, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT,
                                     &behaviour_count, behaviour.data()));
  info.admitted = true;
  for (int64_t i = 0; i < std::min<int64_t>(note_count, notes.size()); ++i) {
    const bool lossy = notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE ||
                       notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS ||
                       notes[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION;
    if (lossy && precision == Precision::kFp32) info.admitted = false;
  }
  for (int64_t i = 0; i < std::min<int64_t>(behaviour_count, behaviour.size()); ++i) {
    if (behaviour[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION) info.admitted = false;
  }
  return info;
}

// The heuristics' engine configurations for `graph` in `mode`, best first.
Result<std::vector<BackendDescriptor>> engine_configs(const BackendDescriptor& graph,
                                                      cudnnBackendHeurMode_t mode) {
  PS_ASSIGN_OR_RETURN(BackendDescriptor heur,
                      BackendDescriptor::create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR));
  PS_TRY(heur.set_descriptor(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph));
  PS_TRY(heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
  PS_TRY(heur.finalize());
  constexpr int64_t kMaxConfigs = 32;
  std::vector<BackendDescriptor> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < kMaxConfigs; ++i) {
    PS_ASSIGN_OR_RETURN(BackendDescriptor c,
                        BackendDescriptor::create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(c.get());
    configs.push_back(std::move(c));
  }
  int64_t returned = 0;
  CUDNN_TRY(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, kMaxConfigs, &returned,
                                     raw.data()));
  configs.resize(static_cast<size_t>(std::clamp<int64_t>(returned, 0, kMaxConfigs)));
  return configs;
}

}  // namespace

ConvGraph::ConvGraph(ConvGraph&& other) noexcept
    : parts_(std::move(other.parts_)),
      plans_(std::move(other.plans_)),
      uids_(std::move(other.uids_)),
      pack_(std::move(other.pack_)),
      pack_key_(other.pack_key_) {}

ConvGraph& ConvGraph::operator=(ConvGraph&& other) noexcept {
  if (this != &other) {
    parts_ = std::move(other.parts_);
    plans_ = std::move(other.plans_);
    uids_ = std::move(other.uids_);
    pack_ = std::move(other.pack_);
    pack_key_ = other.pack_key_;
  }
  return *this;
}

Result<ConvGraph> ConvGraph::build(cudnnHandle_t handle, const ConvGraphShape& shape,
                                   Precision precision, size_t max_plans, size_t workspace_cap) {
  const size_t rank = shape.x.size();
  if (rank < 4 || rank > 5 || shape.w.size() != rank || shape.y.size() != rank) {
    return unsupported("cuDNN graph convolution: tensors of rank ", rank, " (2 or 3 spatial dims)");
  }
  if (shape.w[1] != shape.x[1]) {
    return unsupported("cuDNN graph convolution: grouped (W has ", shape.w[1],
                       " input channels, X ", shape.x[1], ")");
  }
  ConvGraph g;
  std::vector<BackendDescriptor>& parts = g.parts_;
  PS_ASSIGN_OR_RETURN(BackendDescriptor x, make_tensor(shape.x, kX, false));
  PS_ASSIGN_OR_RETURN(BackendDescriptor w, make_tensor(shape.w, kW, false));
  g.uids_ = {kX, kW};

  PS_ASSIGN_OR_RETURN(BackendDescriptor conv,
                      BackendDescriptor::create(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR));
  PS_TRY(conv.set_data_type(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_DATA_FLOAT));
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  PS_TRY(conv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
  PS_TRY(conv.set_int64(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, static_cast<int64_t>(rank - 2)));
  PS_TRY(conv.set_int64(CUDNN_ATTR_CONVOLUTION_DILATIONS, shape.dilations));
  PS_TRY(conv.set_int64(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, shape.strides));
  PS_TRY(conv.set_int64(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, shape.pads));
  PS_TRY(conv.set_int64(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, shape.pads));
  PS_TRY(conv.finalize());

  // The chain conv -> +bias -> +residual -> relu; only its last tensor is y (the rest virtual).
  const int steps =
      1 + (shape.has_bias ? 1 : 0) + (shape.has_residual ? 1 : 0) + (shape.relu ? 1 : 0);
  int64_t next_virtual = kVirtual;
  int step = 0;
  auto output = [&]() -> Result<BackendDescriptor> {
    ++step;
    return step == steps ? make_tensor(shape.y, kY, false)
                         : make_tensor(shape.y, next_virtual++, true);
  };
  std::vector<BackendDescriptor> ops;
  PS_ASSIGN_OR_RETURN(BackendDescriptor current, output());
  {
    PS_ASSIGN_OR_RETURN(
        BackendDescriptor op,
        BackendDescriptor::create(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR));
    PS_TRY(op.set_descriptor(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, x));
    PS_TRY(op.set_descriptor(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w));
    PS_TRY(op.set_descriptor(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, current));
    PS_TRY(op.set_descriptor(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv));
    const float alpha = 1.0f, beta = 0.0f;
    PS_TRY(op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha));
    PS_TRY(op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta));
    PS_TRY(op.finalize());
    ops.push_back(std::move(op));
  }
  auto binary = [&](std::span<const int64_t> dims, int64_t uid) -> Status {
    PS_ASSIGN_OR_RETURN(BackendDescriptor operand, make_tensor(dims, uid, false));
    PS_ASSIGN_OR_RETURN(BackendDescriptor out, output());
    PS_ASSIGN_OR_RETURN(BackendDescriptor op,
                        make_pointwise(parts, CUDNN_POINTWISE_ADD, current, &operand, out));
    ops.push_back(std::move(op));
    parts.push_back(std::move(operand));
    parts.push_back(std::exchange(current, std::move(out)));
    g.uids_.push_back(uid);
    return Status::OK();
  };
  if (shape.has_bias) PS_TRY(binary(shape.bias, kB));
  if (shape.has_residual) PS_TRY(binary(shape.y, kR));
  if (shape.relu) {
    PS_ASSIGN_OR_RETURN(BackendDescriptor out, output());
    PS_ASSIGN_OR_RETURN(BackendDescriptor op,
                        make_pointwise(parts, CUDNN_POINTWISE_RELU_FWD, current, nullptr, out));
    ops.push_back(std::move(op));
    parts.push_back(std::exchange(current, std::move(out)));
  }
  g.uids_.push_back(kY);

  PS_ASSIGN_OR_RETURN(BackendDescriptor graph,
                      BackendDescriptor::create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
  std::vector<cudnnBackendDescriptor_t> raw_ops;
  for (const BackendDescriptor& op : ops) raw_ops.push_back(op.get());
  PS_TRY(graph.set_descriptors(CUDNN_ATTR_OPERATIONGRAPH_OPS, raw_ops));
  PS_TRY(graph.set_handle(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, handle));
  PS_TRY(graph.finalize());

  Status last_refusal = Status::OK();
  for (const cudnnBackendHeurMode_t heur : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    PS_ASSIGN_OR_RETURN(std::vector<BackendDescriptor> configs, engine_configs(graph, heur));
    for (BackendDescriptor& config : configs) {
      if (g.plans_.size() >= max_plans) break;
      PS_ASSIGN_OR_RETURN(const EngineInfo info, engine_info(config, precision));
      if (!info.admitted) continue;
      if (std::any_of(g.plans_.begin(), g.plans_.end(),
                      [&](const Plan& p) { return p.engine == info.index; })) {
        continue;
      }
      PS_ASSIGN_OR_RETURN(BackendDescriptor plan,
                          BackendDescriptor::create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR));
      PS_TRY(plan.set_handle(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, handle));
      PS_TRY(plan.set_descriptor(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, config));
      if (Status s = plan.finalize(); !s.ok()) {
        last_refusal = std::move(s);
        continue;
      }
      PS_ASSIGN_OR_RETURN(const int64_t ws,
                          plan.get_int64(CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE));
      if (ws < 0 || static_cast<size_t>(ws) > workspace_cap) continue;
      g.plans_.push_back(Plan{std::move(plan), static_cast<size_t>(ws), info.index});
      parts.push_back(std::move(config));
    }
    if (!g.plans_.empty()) break;
  }
  if (g.plans_.empty()) {
    return unsupported(
        "cuDNN graph convolution: no engine finalised",
        last_refusal.ok() ? std::string() : str_cat(" (", last_refusal.message(), ")"));
  }
  parts.push_back(std::move(x));
  parts.push_back(std::move(w));
  parts.push_back(std::move(conv));
  parts.push_back(std::move(current));
  for (BackendDescriptor& op : ops) parts.push_back(std::move(op));
  parts.push_back(std::move(graph));
  return g;
}

void ConvGraph::keep(size_t plan) {
  Plan kept = std::move(plans_[plan]);
  plans_.clear();
  plans_.push_back(std::move(kept));
  std::lock_guard<std::mutex> lock(pack_mutex_);
  pack_ = cuda::BackendDescriptor();
  pack_key_ = {};
}

bool ConvGraph::aligned(std::span<const CUdeviceptr> pointers) {
  return std::all_of(pointers.begin(), pointers.end(), [](CUdeviceptr p) { return p % 16 == 0; });
}

Status ConvGraph::execute(cudnnHandle_t handle, size_t plan, CUdeviceptr x, CUdeviceptr w,
                          CUdeviceptr b, CUdeviceptr r, CUdeviceptr y, CUdeviceptr ws) const {
  const std::array<uint64_t, 7> key{plan + 1, x, w, b, r, y, ws};
  std::lock_guard<std::mutex> lock(pack_mutex_);
  if (!pack_ || key != pack_key_) {
    std::array<void*, 5> pointers{};
    size_t n = 0;
    for (const int64_t uid : uids_) {
      const CUdeviceptr p = uid == kX ? x : uid == kW ? w : uid == kB ? b : uid == kR ? r : y;
      pointers[n++] = reinterpret_cast<void*>(p);
    }
    void* workspace = reinterpret_cast<void*>(ws);
    PS_ASSIGN_OR_RETURN(cuda::BackendDescriptor pack,
                        cuda::BackendDescriptor::create(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR));
    PS_TRY(pack.set_int64(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, uids_));
    PS_TRY(pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
                    static_cast<int64_t>(n), pointers.data()));
    PS_TRY(pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace));
    PS_TRY(pack.finalize());
    pack_ = std::move(pack);
    pack_key_ = key;
  }
  CUDNN_TRY(cudnnBackendExecute(handle, plans_[plan].plan.get(), pack_.get()));
  return Status::OK();
}

}  // namespace ps::models::gpu
