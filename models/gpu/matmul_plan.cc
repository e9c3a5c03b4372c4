#include "models/gpu/matmul_plan.h"

#include <algorithm>

namespace ps::models::gpu {
namespace {

// How one operand's batch dims relate to the broadcast batch over a range of dimensions.
bool all_ones(const Shape& s, size_t from, size_t to) {
  for (size_t d = from; d < to; ++d) {
    if (s[d] != 1) return false;
  }
  return true;
}
bool matches(const Shape& s, const Shape& batch, size_t from, size_t to) {
  for (size_t d = from; d < to; ++d) {
    if (s[d] != batch[d]) return false;
  }
  return true;
}
// A dimension range [from, rank) is one strided batch for an operand when the operand is
// either full there or broadcast over all of it.
bool uniform(const Shape& s, const Shape& batch, size_t from) {
  return matches(s, batch, from, batch.size()) || all_ones(s, from, batch.size());
}

// Row-major strides of `s` (aligned to `batch`), 0 where s broadcasts; in matrices.
std::vector<int64_t> batch_strides(const Shape& s, const Shape& batch) {
  std::vector<int64_t> strides(batch.size(), 0);
  int64_t stride = 1;
  for (size_t d = batch.size(); d-- > 0;) {
    strides[d] = s[d] == 1 && batch[d] != 1 ? 0 : stride;
    stride *= s[d];
  }
  return strides;
}

}  // namespace

Result<MatmulPlan> plan_matmul(const Shape& a, const Shape& b) {
  if (a.empty() || b.empty()) {
    return invalid_argument("operands must have rank >= 1, got ", shape_string(a), " and ",
                            shape_string(b));
  }
  MatmulPlan plan;
  plan.m = a.size() == 1 ? 1 : a[a.size() - 2];
  plan.k = a.back();
  const int64_t kb = b.size() == 1 ? b[0] : b[b.size() - 2];
  plan.n = b.size() == 1 ? 1 : b.back();
  if (plan.k != kb) {
    return invalid_argument("inner dimensions differ: ", shape_string(a), " x ", shape_string(b));
  }
  Shape a_batch(a.begin(), a.end() - std::min<size_t>(a.size(), 2));
  Shape b_batch(b.begin(), b.end() - std::min<size_t>(b.size(), 2));
  const std::optional<Shape> batch_or = broadcast_shapes(a_batch, b_batch);
  if (!batch_or) {
    return invalid_argument("batch dimensions of ", shape_string(a), " and ", shape_string(b),
                            " do not broadcast");
  }
  const Shape& batch = *batch_or;
  plan.out_shape = batch;
  if (a.size() > 1) plan.out_shape.push_back(plan.m);
  if (b.size() > 1) plan.out_shape.push_back(plan.n);
  a_batch.insert(a_batch.begin(), batch.size() - a_batch.size(), 1);
  b_batch.insert(b_batch.begin(), batch.size() - b_batch.size(), 1);
  const int64_t a_matrix = plan.m * plan.k;
  const int64_t b_matrix = plan.k * plan.n;
  const int64_t y_matrix = plan.m * plan.n;

  // A shared B: A's contiguous batch folds into M.
  if (all_ones(b_batch, 0, batch.size()) && matches(a_batch, batch, 0, batch.size())) {
    plan.m *= element_count(batch);
    plan.calls = {{0, 0, 0}};
    return plan;
  }
  // The longest suffix of batch dimensions that is one strided batch for both operands.
  size_t split = batch.size();
  while (split > 0 && uniform(a_batch, batch, split - 1) && uniform(b_batch, batch, split - 1)) {
    --split;
  }
  plan.batch_count = element_count(Shape(batch.begin() + split, batch.end()));
  plan.stride_a = all_ones(a_batch, split, batch.size()) ? 0 : a_matrix;
  plan.stride_b = all_ones(b_batch, split, batch.size()) ? 0 : b_matrix;
  plan.stride_y = y_matrix;
  if (plan.batch_count <= 1) plan.stride_a = plan.stride_b = plan.stride_y = 0;

  // One call per index of the leading (mixed) dimensions.
  const std::vector<int64_t> sa = batch_strides(a_batch, batch);
  const std::vector<int64_t> sb = batch_strides(b_batch, batch);
  const int64_t outer = element_count(Shape(batch.begin(), batch.begin() + split));
  std::vector<int64_t> index(split, 0);
  for (int64_t call = 0; call < outer; ++call) {
    int64_t oa = 0, ob = 0;
    for (size_t d = 0; d < split; ++d) {
      oa += index[d] * sa[d];
      ob += index[d] * sb[d];
    }
    plan.calls.push_back({oa * a_matrix, ob * b_matrix, call * plan.batch_count * y_matrix});
    for (size_t d = split; d-- > 0;) {  // odometer
      if (++index[d] < batch[d]) break;
      index[d] = 0;
    }
  }
  return plan;
}

Result<MatmulPlan> plan_matmul_trans_b(const Shape& a, const Shape& b) {
  if (b.size() != 2) {
    return invalid_argument("MatMulTransB's B must be 2-D [N, K], got ", shape_string(b));
  }
  PS_ASSIGN_OR_RETURN(MatmulPlan plan, plan_matmul(a, Shape{b[1], b[0]}));
  plan.trans_b = true;
  return plan;
}

Result<MatmulPlan> plan_gemm(const Shape& a, const Shape& b, bool trans_a, bool trans_b) {
  if (a.size() != 2 || b.size() != 2) {
    return invalid_argument("A and B must be 2-D, got ", shape_string(a), " and ", shape_string(b));
  }
  MatmulPlan plan;
  plan.trans_a = trans_a;
  plan.trans_b = trans_b;
  plan.m = trans_a ? a[1] : a[0];
  plan.k = trans_a ? a[0] : a[1];
  const int64_t kb = trans_b ? b[1] : b[0];
  plan.n = trans_b ? b[0] : b[1];
  if (plan.k != kb) {
    return invalid_argument("inner dimensions differ: A ", shape_string(a),
                            trans_a ? " (transposed)" : "", ", B ", shape_string(b),
                            trans_b ? " (transposed)" : "");
  }
  plan.out_shape = {plan.m, plan.n};
  plan.calls = {{0, 0, 0}};
  return plan;
}

namespace {
uint64_t lowest_alignment(uint64_t bits, int64_t elements) {
  const uint64_t bytes = static_cast<uint64_t>(elements) * 4;
  return bytes != 0 ? std::min<uint64_t>(bits, bytes & (~bytes + 1)) : bits;  // lowest set bit
}
}  // namespace

uint32_t float_offset_alignment(std::initializer_list<int64_t> element_offsets) {
  uint64_t bits = 256;
  for (int64_t e : element_offsets) bits = lowest_alignment(bits, e);
  return static_cast<uint32_t>(bits);
}

uint32_t operand_alignment(const MatmulPlan& plan, int which) {
  uint64_t bits = 256;
  const int64_t stride = which == 0 ? plan.stride_a : which == 1 ? plan.stride_b : plan.stride_y;
  if (plan.batch_count > 1) bits = lowest_alignment(bits, stride);
  for (const auto& call : plan.calls)
    bits = lowest_alignment(bits, call[static_cast<size_t>(which)]);
  return static_cast<uint32_t>(bits);
}

}  // namespace ps::models::gpu
