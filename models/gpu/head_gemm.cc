#include "models/gpu/head_gemm.h"

#include <algorithm>

#include "cuda/kernels/kernel_params.h"
#include "models/gpu/kernel_op_util.h"
#include "models/gpu/matmul_plan.h"

namespace ps::models::gpu {
namespace {

// One pointer array, 256-byte aligned as every piece of a workspace.
size_t array_bytes(int64_t pairs) {
  return round_up_256(static_cast<size_t>(pairs) * sizeof(uint64_t));
}

}  // namespace

Status HeadGemms::add(const OpEnv& env, int64_t batch, int64_t heads, const HeadProduct& r,
                      std::string_view what) {
  if (products_.size() == kMaxProducts) {
    return internal_error("HeadGemms: more than ", kMaxProducts, " products");
  }
  if (!products_.empty() && (batch != batch_ || heads != heads_)) {
    return internal_error("HeadGemms: products over different (batch, heads) pairs");
  }
  const int64_t int_max = 2147483647;
  if (std::max({r.m, r.n, r.k, batch * heads, r.x.ld, r.y.ld, r.out.ld}) > int_max) {
    return unsupported(what, ": dimensions past int32");
  }
  if (products_.empty()) {
    PS_ASSIGN_OR_RETURN(pointers_, find_kernel(env, "ps_batch_pointers"));
  }
  batch_ = batch;
  heads_ = heads;
  // lt_matmul.h's transpose identity (cuBLASLt's A = Y, B = X), with the heads' row strides.
  const auto align = [](const HeadMatrix& h) {
    return float_offset_alignment({h.offset, h.batch_stride, h.head_stride, h.ld});
  };
  LtProblem p = column_major_problem(RowMajorProduct{r.m, r.n, r.k, r.trans_x, r.trans_y,
                                                     batch * heads, 0, 0, 0, align(r.x),
                                                     align(r.y), align(r.out)});
  p.lda = r.y.ld;
  p.ldb = r.x.ld;
  p.ldd = r.out.ld;
  p.pointer_array = true;
  p.reads_c = r.accumulate;
  Planned planned{r, {}};
  PS_TRY(planned.lt.init(env, p, what));
  lt_bytes_ = std::max(lt_bytes_, planned.lt.workspace_bytes());
  products_.push_back(std::move(planned));
  return Status::OK();
}

size_t HeadGemms::workspace_bytes() const {
  return products_.size() * 3 * array_bytes(batch_ * heads_) + lt_bytes_;
}

Status HeadGemms::enqueue(const cuda::Stream& stream, CUdeviceptr workspace,
                          std::span<const std::array<CUdeviceptr, 3>> tensors) const {
  if (tensors.size() != products_.size()) {
    return internal_error("HeadGemms: ", tensors.size(), " operand sets for ", products_.size(),
                          " products");
  }
  if (products_.empty()) return Status::OK();
  kernels::BatchPointerParams fill;
  fill.batch = batch_;
  fill.heads = heads_;
  fill.array_stride = static_cast<int64_t>(array_bytes(batch_ * heads_) / sizeof(uint64_t));
  for (size_t i = 0; i < products_.size(); ++i) {
    const HeadProduct& r = products_[i].product;
    const HeadMatrix* matrices[3] = {&r.x, &r.y, &r.out};
    for (size_t j = 0; j < 3; ++j) {
      const HeadMatrix& h = *matrices[j];
      if (tensors[i][j] == 0) return internal_error("HeadGemms: operand ", j, " not bound");
      const int a = fill.arrays++;
      fill.base[a] = tensors[i][j] + static_cast<uint64_t>(h.offset) * 4;
      fill.batch_stride[a] = h.batch_stride * 4;
      fill.head_stride[a] = h.head_stride * 4;
    }
  }
  const int64_t entries = static_cast<int64_t>(fill.arrays) * batch_ * heads_;
  PS_TRY(pointers_.launch(stream, grid_for(entries), kBlock, 0, workspace, fill));
  const size_t one = array_bytes(batch_ * heads_);
  const CUdeviceptr lt_workspace = workspace + products_.size() * 3 * one;
  for (size_t i = 0; i < products_.size(); ++i) {
    const CUdeviceptr x = workspace + (3 * i) * one, y = x + one, out = y + one;
    const HeadProduct& r = products_[i].product;
    PS_TRY(products_[i].lt.run(stream, r.alpha, y, x, r.accumulate ? 1.0f : 0.0f, out, out, 0,
                               lt_workspace));
  }
  return Status::OK();
}

std::string HeadGemms::describe() const {
  std::string text;
  for (const Planned& p : products_) {
    text += str_cat(text.empty() ? "" : "; ", p.lt.describe(),
                    p.product.accumulate ? ", accumulating" : "");
  }
  return text;
}

}  // namespace ps::models::gpu
