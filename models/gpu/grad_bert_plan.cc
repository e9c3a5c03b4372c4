#include "models/gpu/grad_bert_plan.h"

#include <algorithm>
#include <optional>

#include "models/gpu/index_plan.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {
namespace {

struct UnaryName {
  std::string_view op;
  train_kernels::UnaryGradOp code;
};
constexpr UnaryName kUnary[] = {
    {"Erf", train_kernels::kUnaryGradErf},   {"Exp", train_kernels::kUnaryGradExp},
    {"Gelu", train_kernels::kUnaryGradGelu}, {"Neg", train_kernels::kUnaryGradNeg},
    {"Sqrt", train_kernels::kUnaryGradSqrt}, {"Tanh", train_kernels::kUnaryGradTanh},
};

Status check_rank(int32_t rank, std::string_view what) {
  if (rank > kernels::kMaxRank) {
    return unsupported(what, ": ", rank, " dimensions after merging (at most ", kernels::kMaxRank,
                       ")");
  }
  return Status::OK();
}

}  // namespace

bool has_unary_grad(std::string_view op) {
  return std::any_of(std::begin(kUnary), std::end(kUnary),
                     [&](const UnaryName& u) { return u.op == op; });
}

Result<train_kernels::UnaryGradParams> plan_unary_grad(std::string_view op, int64_t count,
                                                       bool accumulate) {
  for (const UnaryName& u : kUnary) {
    if (u.op != op) continue;
    train_kernels::UnaryGradParams p;
    p.count = count;
    p.op = u.code;
    p.accumulate = accumulate ? 1u : 0u;
    return p;
  }
  return unsupported("no GPU unary backward for ", op);
}

Result<train_kernels::BinaryGradParams> plan_binary_grad(std::string_view op, const Shape& a,
                                                         const Shape& b, const Shape& dy) {
  train_kernels::BinaryGradParams p;
  if (op == "Sub") {
    p.op = train_kernels::kBinaryGradSub;
  } else if (op == "Mul") {
    p.op = train_kernels::kBinaryGradMul;
  } else if (op == "Div") {
    p.op = train_kernels::kBinaryGradDiv;
  } else if (op == "Pow") {
    p.op = train_kernels::kBinaryGradPow;
  } else {
    return unsupported("no GPU binary backward for ", op);
  }
  const std::optional<Shape> joint = broadcast_shapes(a, b);
  if (!joint || *joint != dy) {
    return invalid_argument(op, " backward: A ", shape_string(a), " and B ", shape_string(b),
                            " do not broadcast to dY ", shape_string(dy));
  }
  const StridedLayout merged = merge_dims(StridedLayout{
      dy, {broadcast_strides_to(a, dy), broadcast_strides_to(b, dy), row_major_strides(dy)}});
  p.rank = static_cast<int32_t>(merged.dims.size());
  PS_TRY(check_rank(p.rank, str_cat(op, " backward")));
  p.count = element_count(dy);
  for (int32_t d = 0; d < p.rank; ++d) {
    p.dims[d] = merged.dims[static_cast<size_t>(d)];
    p.a_strides[d] = merged.strides[0][static_cast<size_t>(d)];
    p.b_strides[d] = merged.strides[1][static_cast<size_t>(d)];
  }
  return p;
}

Result<train_kernels::SpreadParams> plan_reduce_mean_grad(const Shape& x,
                                                          const std::vector<bool>& reduced,
                                                          bool accumulate) {
  if (reduced.size() != x.size()) {
    return internal_error("ReduceMean backward: ", reduced.size(), " flags for rank ", x.size());
  }
  Shape kept = x;  // dY with keepdims: 1 on the reduced axes
  int64_t averaged = 1;
  for (size_t d = 0; d < x.size(); ++d) {
    if (reduced[d]) {
      averaged *= x[d];
      kept[d] = 1;
    }
  }
  const StridedLayout merged =
      merge_dims(StridedLayout{x, {broadcast_strides_to(kept, x), row_major_strides(x)}});
  train_kernels::SpreadParams p;
  p.rank = static_cast<int32_t>(merged.dims.size());
  PS_TRY(check_rank(p.rank, "ReduceMean backward"));
  p.count = element_count(x);
  p.accumulate = accumulate ? 1u : 0u;
  p.scale = averaged == 0 ? 0.0f : static_cast<float>(1.0 / static_cast<double>(averaged));
  for (int32_t d = 0; d < p.rank; ++d) {
    p.dims[d] = merged.dims[static_cast<size_t>(d)];
    p.strides[d] = merged.strides[0][static_cast<size_t>(d)];
  }
  return p;
}

Result<train_kernels::SoftmaxGradParams> plan_softmax_grad(const Shape& y, int64_t axis,
                                                           bool accumulate) {
  const auto rank = static_cast<int64_t>(y.size());
  if (rank == 0 || axis < -rank || axis >= rank) {
    return invalid_argument("Softmax backward: axis ", axis, " for Y ", shape_string(y));
  }
  if (axis < 0) axis += rank;
  train_kernels::SoftmaxGradParams p;
  p.outer = element_count(Shape(y.begin(), y.begin() + axis));
  p.n = y[static_cast<size_t>(axis)];
  p.inner = element_count(Shape(y.begin() + axis + 1, y.end()));
  p.accumulate = accumulate ? 1u : 0u;
  return p;
}

Result<train_kernels::LayerNormGradParams> plan_layer_norm_grad(const Shape& x, int64_t axis,
                                                                float epsilon,
                                                                int64_t scale_count,
                                                                int64_t bias_count) {
  const auto rank = static_cast<int64_t>(x.size());
  if (rank == 0 || axis < -rank || axis >= rank) {
    return invalid_argument("LayerNormalization backward: axis ", axis, " for X ",
                            shape_string(x));
  }
  if (axis < 0) axis += rank;
  train_kernels::LayerNormGradParams p;
  p.inner = element_count(Shape(x.begin() + axis, x.end()));
  p.rows = element_count(Shape(x.begin(), x.begin() + axis));
  if (scale_count != p.inner || (bias_count >= 0 && bias_count != p.inner)) {
    return unsupported("LayerNormalization backward: scale of ", scale_count, " and bias of ",
                       bias_count, " elements for a normalized size of ", p.inner,
                       " (broadcast parameters are not supported)");
  }
  p.epsilon = epsilon;
  // Chunks of 8 rows: BERT-base's 2008 make 251 blocks of the one-pass kernel, one wave at
  // two blocks an SM on an H100 (128 registers a thread); at most 1024 chunks (the final
  // sum's length).
  p.rows_per_chunk = std::max<int64_t>(8, (p.rows + 1023) / 1024);
  p.chunks = (p.rows + p.rows_per_chunk - 1) / p.rows_per_chunk;
  return p;
}

LayerNormGradWorkspace layer_norm_grad_workspace(const train_kernels::LayerNormGradParams& p,
                                                 bool params_wanted) {
  LayerNormGradWorkspace w;
  w.stats = 0;
  w.partial = round_up_256(static_cast<size_t>(p.rows) * 2 * sizeof(float));
  w.total = w.partial;
  if (params_wanted)
    w.total += round_up_256(static_cast<size_t>(p.chunks * p.inner) * 2 * sizeof(float));
  return w;
}

Result<train_kernels::GatherGradParams> plan_gather_grad(const Shape& data, const Shape& indices,
                                                         int64_t axis) {
  const auto rank = static_cast<int64_t>(data.size());
  if (rank == 0 || axis < -rank || axis >= rank) {
    return invalid_argument("Gather backward: axis ", axis, " for data ", shape_string(data));
  }
  if (axis < 0) axis += rank;
  train_kernels::GatherGradParams p;
  p.outer = element_count(Shape(data.begin(), data.begin() + axis));
  p.dim = data[static_cast<size_t>(axis)];
  p.inner = element_count(Shape(data.begin() + axis + 1, data.end()));
  p.count = element_count(indices);
  if (p.count >= (int64_t{1} << 31)) {
    return unsupported("Gather backward: ", p.count, " indices (the chains are int32)");
  }
  return p;
}

GatherGradWorkspace gather_grad_workspace(const train_kernels::GatherGradParams& p) {
  GatherGradWorkspace w;
  const auto n = static_cast<size_t>(p.count);
  w.rows = 0;
  w.first = round_up_256(n * 8);
  w.next = w.first + round_up_256(n * 4);
  w.total = w.next + round_up_256(n * 4);
  return w;
}

Result<std::vector<int64_t>> inverse_permutation(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inv(perm.size(), -1);
  for (size_t i = 0; i < perm.size(); ++i) {
    const int64_t p = perm[i];
    if (p < 0 || p >= static_cast<int64_t>(perm.size()) || inv[static_cast<size_t>(p)] >= 0) {
      return invalid_argument("perm ", shape_string(perm), " is not a permutation");
    }
    inv[static_cast<size_t>(p)] = static_cast<int64_t>(i);
  }
  return inv;
}

}  // namespace ps::models::gpu
