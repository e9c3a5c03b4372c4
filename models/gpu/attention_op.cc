// AttentionScores and AttentionContext (common/attention.h), forward and backward, as
// head_gemm.h's pointer-array products reading the heads in place in X [B, S, C]:
//   scores   Y(b, h) [S, S] = alpha Q(b, h) K(b, h)^T
//   context  Y(b, h) [M, D] = P(b, h) V(b, h), written into Y [B, M, H, D] at column h * D
//   scores backward   dQ = alpha dY K, dK = alpha dY^T Q, into dX's q and k columns
//   context backward  dP = dY V^T, dV = P^T dY, dV into dX's v columns
// dX: written whole (2-D memsets zero the columns no product writes), or added to (GradSpec
// accumulate: beta = 1), or, when the trainer found the readers of X writing all of dX between
// them (GradSpec partial), only the op's own columns.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <utility>

#include "common/attention.h"
#include "cuda/copy.h"
#include "models/cpu/kernels.h"
#include "models/gpu/dnn_builders.h"
#include "models/gpu/grad_builders.h"
#include "models/gpu/grad_op_util.h"
#include "models/gpu/head_gemm.h"
#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {
namespace {

using Attrs = cpu::AttentionAttrs;

bool is_scores(const OpSpec& spec) { return spec.op == "AttentionScores"; }

// The attributes and X's layout, read and checked by the CPU reference's rules
// (cpu::attention_attrs); X is input 0 of the scores, input 1 of the context.
Result<Attrs> read_attrs(const OpSpec& spec) {
  const bool scores = is_scores(spec);
  PS_TRY(check_arity(spec, scores ? 1 : 2, scores ? 1 : 2, 1, 1));
  const TensorSpec& x = spec.inputs[scores ? 0 : 1];
  PS_TRY(require_f32(x, "X"));
  AttrReader attrs(spec);
  return cpu::attention_attrs(*attrs, x.shape);
}

// Head h of the range at `start` in X [B, S, C], as a head matrix [S, D].
HeadMatrix x_heads(const AttentionLayout& l, int64_t start) {
  return HeadMatrix{start, l.seq * l.columns, l.head_size, l.columns};
}
// A contiguous [B, H, R, C'] tensor's matrices [R, C'].
HeadMatrix packed(const AttentionLayout& l, int64_t rows, int64_t cols) {
  return HeadMatrix{0, l.heads * rows * cols, rows * cols, cols};
}
// The context's [B, M, H, D]: head h of row i at column h * D.
HeadMatrix context_heads(const AttentionLayout& l, int64_t rows) {
  const int64_t width = l.heads * l.head_size;
  return HeadMatrix{0, rows * width, l.head_size, width};
}

class AttentionOp final : public GpuOp {
 public:
  // operands: for each product, the LaunchArgs slots of X, Y and out: {input i} as i,
  // {output i} as -1 - i.
  AttentionOp(HeadGemms gemms, std::vector<std::array<int, 3>> operands, std::string what)
      : gemms_(std::move(gemms)), operands_(std::move(operands)), what_(std::move(what)) {}
  size_t workspace_bytes() const override { return gemms_.workspace_bytes(); }
  Status enqueue(const LaunchArgs& args) const override {
    return run_products(gemms_, operands_, args);
  }
  std::string describe() const override { return str_cat(what_, ": ", gemms_.describe()); }

  static Status run_products(const HeadGemms& gemms,
                             const std::vector<std::array<int, 3>>& operands,
                             const LaunchArgs& args) {
    std::vector<std::array<CUdeviceptr, 3>> tensors;
    for (const std::array<int, 3>& o : operands) {
      std::array<CUdeviceptr, 3> t{};
      for (size_t j = 0; j < 3; ++j) {
        const int slot = o[j];
        const size_t i = static_cast<size_t>(slot >= 0 ? slot : -1 - slot);
        const std::span<const CUdeviceptr> from = slot >= 0 ? args.inputs : args.outputs;
        if (i >= from.size())
          return invalid_argument("attention enqueue: operand ", slot, " not bound");
        t[j] = from[i];
      }
      tensors.push_back(t);
    }
    if (args.workspace_bytes < gemms.workspace_bytes()) {
      return invalid_argument("attention enqueue: workspace of ", args.workspace_bytes,
                              " bytes, the op needs ", gemms.workspace_bytes());
    }
    return gemms.enqueue(args.stream, args.workspace, tensors);
  }

 private:
  HeadGemms gemms_;
  std::vector<std::array<int, 3>> operands_;
  std::string what_;
};

// The backward: zeros in dX's columns outside `ranges` first (unless none), then the products.
class AttentionGradOp final : public GpuOp {
 public:
  AttentionGradOp(HeadGemms gemms, std::vector<std::array<int, 3>> operands, size_t dx_slot,
                  std::vector<std::pair<int64_t, int64_t>> zero_columns, int64_t rows,
                  int64_t columns, std::string what)
      : gemms_(std::move(gemms)),
        operands_(std::move(operands)),
        dx_slot_(dx_slot),
        zero_columns_(std::move(zero_columns)),
        rows_(rows),
        columns_(columns),
        what_(std::move(what)) {}
  size_t workspace_bytes() const override { return gemms_.workspace_bytes(); }
  Status enqueue(const LaunchArgs& args) const override {
    if (!zero_columns_.empty()) {
      if (dx_slot_ >= args.outputs.size() || args.outputs[dx_slot_] == 0) {
        return invalid_argument(what_, " enqueue: dX not bound");
      }
      const CUdeviceptr dx = args.outputs[dx_slot_];
      const auto pitch = static_cast<size_t>(columns_) * 4;
      for (const auto& [begin, end] : zero_columns_) {
        PS_TRY(cuda::memset_2d_d32_async(dx + static_cast<size_t>(begin) * 4, pitch, 0,
                                         static_cast<size_t>(end - begin),
                                         static_cast<size_t>(rows_), args.stream));
      }
    }
    return AttentionOp::run_products(gemms_, operands_, args);
  }
  std::string describe() const override {
    return str_cat(what_, ": ", zero_columns_.empty() ? "" : "2-D memsets and ", gemms_.describe());
  }

 private:
  HeadGemms gemms_;
  std::vector<std::array<int, 3>> operands_;
  size_t dx_slot_;
  std::vector<std::pair<int64_t, int64_t>> zero_columns_;
  int64_t rows_, columns_;
  std::string what_;
};

// [0, columns) less the ranges [start, start + size) (which do not overlap): the gaps.
std::vector<std::pair<int64_t, int64_t>> gaps(std::vector<int64_t> starts, int64_t size,
                                              int64_t columns) {
  std::sort(starts.begin(), starts.end());
  std::vector<std::pair<int64_t, int64_t>> out;
  int64_t next = 0;
  for (int64_t s : starts) {
    if (s > next) out.emplace_back(next, s);
    next = s + size;
  }
  if (next < columns) out.emplace_back(next, columns);
  return out;
}

bool overlap(const std::vector<int64_t>& starts, int64_t size) {
  return starts.size() == 2 && std::abs(starts[0] - starts[1]) < size;
}

}  // namespace

BuildResult build_attention(const OpSpec& spec, const OpEnv& env) {
  PS_ASSIGN_OR_RETURN(const Attrs a, read_attrs(spec));
  const AttentionLayout& l = a.layout;
  HeadGemms gemms;
  if (is_scores(spec)) {
    PS_TRY(check_output(spec, 0, DType::kFloat32, Shape{l.batch, l.heads, l.seq, l.seq}));
    HeadProduct p{l.seq,
                  l.seq,
                  l.head_size,
                  false,
                  true,
                  x_heads(l, a.starts[0]),
                  x_heads(l, a.starts[1]),
                  packed(l, l.seq, l.seq),
                  a.alpha,
                  false};
    PS_TRY(gemms.add(env, l.batch, l.heads, p, "AttentionScores"));
    return std::unique_ptr<GpuOp>(
        new AttentionOp(std::move(gemms), {{0, 0, -1}}, "AttentionScores"));
  }
  PS_TRY(require_f32(spec.inputs[0], "P"));
  PS_ASSIGN_OR_RETURN(const int64_t rows, attention_context_rows(l, spec.inputs[0].shape));
  PS_TRY(check_output(spec, 0, DType::kFloat32, Shape{l.batch, rows, l.heads, l.head_size}));
  HeadProduct p{rows,
                l.head_size,
                l.seq,
                false,
                false,
                packed(l, rows, l.seq),
                x_heads(l, a.starts[0]),
                context_heads(l, rows),
                1.0f,
                false};
  PS_TRY(gemms.add(env, l.batch, l.heads, p, "AttentionContext"));
  return std::unique_ptr<GpuOp>(
      new AttentionOp(std::move(gemms), {{0, 1, -1}}, "AttentionContext"));
}

Result<std::unique_ptr<GpuOp>> build_attention_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_ASSIGN_OR_RETURN(const Attrs a, read_attrs(f));
  const AttentionLayout& l = a.layout;
  const int64_t size = l.heads * l.head_size;
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  const bool scores = is_scores(f);
  const size_t x_input = scores ? 0 : 1;
  if (spec.partial && spec.accumulates(x_input)) {
    return invalid_argument("a partial gradient cannot also accumulate");
  }
  const bool want_dx = spec.wants(x_input);
  const bool acc_dx = spec.accumulates(x_input);
  HeadGemms gemms;
  std::vector<std::array<int, 3>> operands;
  std::vector<std::pair<int64_t, int64_t>> zero;
  const int dx = -1 - static_cast<int>(x_input);
  if (scores) {
    // LaunchArgs: inputs {X, dY}, outputs {dX}.
    if (y->shape != Shape{l.batch, l.heads, l.seq, l.seq}) {
      return invalid_argument("Y ", shape_string(y->shape), " is not attention scores");
    }
    if (!want_dx) return no_grad_op("AttentionScores");
    if (spec.partial && overlap(a.starts, size)) {
      return invalid_argument("a partial gradient of overlapping query and key columns");
    }
    // Overlapping q and k ranges (not BERT's) add into each other's columns: zeros first.
    const bool add_both = acc_dx || overlap(a.starts, size);
    if (!acc_dx && !spec.partial) {
      zero = overlap(a.starts, size) ? std::vector<std::pair<int64_t, int64_t>>{{0, l.columns}}
                                     : gaps(a.starts, size, l.columns);
    }
    const HeadMatrix ds = packed(l, l.seq, l.seq);
    const HeadMatrix q = x_heads(l, a.starts[0]), k = x_heads(l, a.starts[1]);
    PS_TRY(
        gemms.add(env, l.batch, l.heads,
                  HeadProduct{l.seq, l.head_size, l.seq, false, false, ds, k, q, a.alpha, add_both},
                  "AttentionScores backward dQ"));
    PS_TRY(
        gemms.add(env, l.batch, l.heads,
                  HeadProduct{l.seq, l.head_size, l.seq, true, false, ds, q, k, a.alpha, add_both},
                  "AttentionScores backward dK"));
    operands = {{1, 0, dx}, {1, 0, dx}};
  } else {
    // LaunchArgs: inputs {P, X, dY}, outputs {dP, dX}.
    PS_ASSIGN_OR_RETURN(const int64_t rows, attention_context_rows(l, f.inputs[0].shape));
    if (y->shape != Shape{l.batch, rows, l.heads, l.head_size}) {
      return invalid_argument("Y ", shape_string(y->shape), " is not the attention context");
    }
    const bool want_dp = spec.wants(0);
    if (!want_dp && !want_dx) return no_grad_op("AttentionContext");
    PS_TRY(require_f32(f.inputs[0], "P"));
    const HeadMatrix dy = context_heads(l, rows), v = x_heads(l, a.starts[0]);
    if (want_dp) {
      PS_TRY(gemms.add(env, l.batch, l.heads,
                       HeadProduct{rows, l.seq, l.head_size, false, true, dy, v,
                                   packed(l, rows, l.seq), 1.0f, spec.accumulates(0)},
                       "AttentionContext backward dP"));
      operands.push_back({2, 1, -1});
    }
    if (want_dx) {
      PS_TRY(gemms.add(env, l.batch, l.heads,
                       HeadProduct{l.seq, l.head_size, rows, true, false, packed(l, rows, l.seq),
                                   dy, v, 1.0f, acc_dx},
                       "AttentionContext backward dV"));
      operands.push_back({0, 2, dx});
      if (!acc_dx && !spec.partial) zero = gaps(a.starts, size, l.columns);
    }
  }
  return std::unique_ptr<GpuOp>(new AttentionGradOp(std::move(gemms), std::move(operands), x_input,
                                                    std::move(zero), l.batch * l.seq, l.columns,
                                                    str_cat(f.op, " backward")));
}

}  // namespace ps::models::gpu
