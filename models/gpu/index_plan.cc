#include "models/gpu/index_plan.h"

#include <algorithm>

namespace ps::models::gpu {
namespace {

using kernels::kMaxRank;

Status check_rank(size_t rank, const char* what) {
  if (rank > static_cast<size_t>(kMaxRank)) {
    return unsupported(what, ": ", rank, " dimensions remain after merging (at most ", kMaxRank,
                       " are supported)");
  }
  return Status::OK();
}

// The largest offset (in elements) reached from `base` with these dims and strides.
int64_t max_offset(int64_t base, const Shape& dims, const std::vector<int64_t>& strides) {
  int64_t off = base;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] > 0 && strides[d] > 0) off += (dims[d] - 1) * strides[d];
  }
  return off;
}

void fill_copy_params(const StridedLayout& l, int64_t in_base, int64_t out_base,
                      kernels::StridedCopyParams* p) {
  *p = kernels::StridedCopyParams{};
  p->rank = static_cast<int32_t>(l.dims.size());
  p->count = element_count(l.dims);
  p->in_base = in_base;
  p->out_base = out_base;
  for (size_t d = 0; d < l.dims.size(); ++d) {
    p->dims[d] = l.dims[d];
    p->in_strides[d] = l.strides[0][d];
    p->out_strides[d] = l.strides[1][d];
  }
  p->small_index = fits_int32(p->count) &&
                   fits_int32(max_offset(in_base, l.dims, l.strides[0]) + 1) &&
                   fits_int32(max_offset(out_base, l.dims, l.strides[1]) + 1);
}

}  // namespace

std::vector<int64_t> row_major_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

std::vector<int64_t> broadcast_strides_to(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  const std::vector<int64_t> own = row_major_strides(in);
  const size_t lead = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d) {
    strides[lead + d] = in[d] == 1 ? 0 : own[d];
  }
  return strides;
}

StridedLayout merge_dims(const StridedLayout& layout) {
  const size_t operands = layout.strides.size();
  StridedLayout out;
  out.strides.resize(operands);
  if (element_count(layout.dims) == 0) {
    out.dims = {0};
    for (auto& s : out.strides) s = {0};
    return out;
  }
  // Walk from the innermost dimension outwards, building the merged list reversed.
  for (size_t d = layout.dims.size(); d-- > 0;) {
    const int64_t dim = layout.dims[d];
    if (dim == 1) continue;
    bool merge = !out.dims.empty();
    for (size_t k = 0; merge && k < operands; ++k) {
      merge = layout.strides[k][d] == out.strides[k].back() * out.dims.back();
    }
    if (merge) {
      out.dims.back() *= dim;
    } else {
      out.dims.push_back(dim);
      for (size_t k = 0; k < operands; ++k) out.strides[k].push_back(layout.strides[k][d]);
    }
  }
  if (out.dims.empty()) {  // a single element
    out.dims = {1};
    for (auto& s : out.strides) s = {0};
    return out;
  }
  std::reverse(out.dims.begin(), out.dims.end());
  for (auto& s : out.strides) std::reverse(s.begin(), s.end());
  return out;
}

Result<kernels::BroadcastParams> plan_broadcast(std::span<const Shape> operands, const Shape& out) {
  if (operands.empty() || operands.size() > 3) {
    return internal_error("plan_broadcast: ", operands.size(), " operands (1 to 3)");
  }
  const int64_t count = element_count(out);
  kernels::BroadcastParams p;
  p.count = count;
  p.small_index = fits_int32(count);
  std::vector<bool> full(operands.size());
  for (size_t k = 0; k < operands.size(); ++k) {
    const std::optional<Shape> b = broadcast_shapes(operands[k], out);
    if (!b || *b != out) {
      return invalid_argument("operand ", k, " ", shape_string(operands[k]),
                              " does not broadcast to the output ", shape_string(out));
    }
    full[k] = element_count(operands[k]) == count;
  }
  if (std::all_of(full.begin(), full.end(), [](bool f) { return f; })) {
    p.mode = kernels::kBroadcastSame;
    return p;
  }
  if (operands.size() == 2) {
    for (int k = 0; k < 2; ++k) {
      if (!full[1 - k]) continue;  // the other operand must be contiguous and full
      const Shape& s = operands[k];
      if (element_count(s) == 1) {
        p.mode = k == 0 ? kernels::kBroadcastScalarA : kernels::kBroadcastScalarB;
        return p;
      }
      // Repeats over the trailing dimensions: without its leading 1s, the operand's shape is
      // the output's last dimensions.
      size_t first = 0;
      while (first < s.size() && s[first] == 1) ++first;
      const size_t m = s.size() - first;
      if (m <= out.size() && std::equal(s.begin() + first, s.end(), out.end() - m)) {
        p.mode = k == 0 ? kernels::kBroadcastRowA : kernels::kBroadcastRowB;
        p.inner = element_count(s);
        return p;
      }
    }
  }
  StridedLayout l;
  l.dims = out;
  for (const Shape& s : operands) l.strides.push_back(broadcast_strides_to(s, out));
  l.strides.push_back(row_major_strides(out));
  const StridedLayout merged = merge_dims(l);
  PS_TRY(check_rank(merged.dims.size(), "broadcast"));
  p.mode = kernels::kBroadcastGeneral;
  p.rank = static_cast<int32_t>(merged.dims.size());
  for (size_t d = 0; d < merged.dims.size(); ++d) {
    p.dims[d] = merged.dims[d];
    for (size_t k = 0; k < operands.size(); ++k) p.strides[k][d] = merged.strides[k][d];
  }
  return p;
}

Status plan_softmax_mask(const Shape& m, const Shape& x, kernels::SoftmaxParams* p) {
  const std::optional<Shape> b = broadcast_shapes(m, x);
  if (x.empty() || !b || *b != x) {
    return invalid_argument("the mask ", shape_string(m), " does not broadcast to X ",
                            shape_string(x));
  }
  const std::vector<int64_t> strides = broadcast_strides_to(m, x);
  p->mask_col = strides.back() != 0 ? 1 : 0;
  const StridedLayout rows = merge_dims(StridedLayout{
      Shape(x.begin(), x.end() - 1), {std::vector<int64_t>(strides.begin(), strides.end() - 1)}});
  p->mask_terms = 0;
  int64_t divisor = 1;  // the row count of one step of dimension d: the extents after it
  for (size_t d = rows.dims.size(); d-- > 0;) {
    if (rows.strides[0][d] != 0) {
      if (p->mask_terms == kernels::kSoftmaxMaskTerms) {
        return unsupported("the mask ", shape_string(m), " over X ", shape_string(x),
                           " takes more than ", kernels::kSoftmaxMaskTerms, " terms to address");
      }
      const auto t = static_cast<size_t>(p->mask_terms++);
      p->mask_div[t] = divisor;
      p->mask_dim[t] = rows.dims[d];
      p->mask_stride[t] = rows.strides[0][d];
    }
    divisor *= std::max<int64_t>(rows.dims[d], 1);
  }
  return Status::OK();
}

Result<CopyPlan> plan_strided_copy(const Shape& dims, std::vector<int64_t> in_strides,
                                   std::vector<int64_t> out_strides, int64_t in_base,
                                   int64_t out_base, size_t element_size) {
  if (element_size != 1 && element_size != 2 && element_size != 4 && element_size != 8 &&
      element_size != 16) {
    return unsupported("strided copy of ", element_size, "-byte elements");
  }
  StridedLayout l{dims, {std::move(in_strides), std::move(out_strides)}};
  StridedLayout merged = merge_dims(l);
  PS_TRY(check_rank(merged.dims.size(), "strided copy"));
  CopyPlan plan;
  fill_copy_params(merged, in_base, out_base, &plan.narrow);
  plan.narrow_unit = element_size;

  // Widen: k elements per unit when the innermost dimension is contiguous on both sides and
  // every other stride, the bases and the innermost length are multiples of k.
  int64_t k = 1;
  const size_t r = merged.dims.size();
  if (merged.strides[0][r - 1] == 1 && merged.strides[1][r - 1] == 1) {
    for (int64_t cand = static_cast<int64_t>(16 / element_size); cand > 1; cand /= 2) {
      bool ok = merged.dims[r - 1] % cand == 0 && in_base % cand == 0 && out_base % cand == 0;
      for (size_t d = 0; ok && d + 1 < r; ++d) {
        ok = merged.strides[0][d] % cand == 0 && merged.strides[1][d] % cand == 0;
      }
      if (ok) {
        k = cand;
        break;
      }
    }
  }
  if (k > 1) {
    merged.dims[r - 1] /= k;
    for (size_t d = 0; d + 1 < r; ++d) {
      merged.strides[0][d] /= k;
      merged.strides[1][d] /= k;
    }
    fill_copy_params(merged, in_base / k, out_base / k, &plan.wide);
    plan.wide_unit = element_size * static_cast<size_t>(k);
  } else {
    plan.wide = plan.narrow;
    plan.wide_unit = element_size;
  }
  return plan;
}

TiledTransposePlan plan_tiled_transpose(const Shape& in_shape, std::span<const int64_t> perm) {
  const std::vector<int64_t> in_strides = row_major_strides(in_shape);
  Shape out_dims;
  std::vector<int64_t> strides;
  for (int64_t p : perm) {
    out_dims.push_back(in_shape[p]);
    strides.push_back(in_strides[p]);
  }
  std::vector<int64_t> out_strides = row_major_strides(out_dims);
  return plan_tiled_copy(out_dims, std::move(strides), std::move(out_strides));
}

TiledTransposePlan plan_tiled_copy(const Shape& dims, std::vector<int64_t> in_strides,
                                   std::vector<int64_t> out_strides) {
  TiledTransposePlan plan;
  StridedLayout l{dims, {std::move(in_strides), std::move(out_strides)}};
  const StridedLayout m = merge_dims(l);
  const size_t r = m.dims.size();
  if (r < 2 || r > static_cast<size_t>(kMaxRank) || m.strides[0][r - 1] == 1 ||
      m.strides[1][r - 1] != 1) {
    return plan;
  }
  int row = -1;
  for (size_t d = 0; d + 1 < r; ++d) {
    if (m.strides[0][d] == 1) row = static_cast<int>(d);
  }
  if (row < 0 || m.dims[row] < 8 || m.dims[r - 1] < 8) return plan;
  kernels::TransposeParams& p = plan.params;
  p.rank = static_cast<int32_t>(r);
  p.row_dim = row;
  p.count = element_count(m.dims);
  p.batch = p.count / (m.dims[row] * m.dims[r - 1]);
  p.tiles_rows = (m.dims[row] + 31) / 32;
  p.tiles_cols = (m.dims[r - 1] + 31) / 32;
  for (size_t d = 0; d < r; ++d) {
    p.dims[d] = m.dims[d];
    p.in_strides[d] = m.strides[0][d];
    p.out_strides[d] = m.strides[1][d];
  }
  plan.ok = true;
  return plan;
}

Result<SliceAxis> normalize_slice(int64_t start, int64_t end, int64_t step, int64_t dim) {
  if (step == 0) return invalid_argument("slice step is 0");
  SliceAxis a;
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (dim == 0) return a;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    a.count = end > start ? (end - start + step - 1) / step : 0;
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
    a.count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
  }
  a.start = a.count > 0 ? start : 0;
  return a;
}

Result<ReducePlan> plan_reduce(const Shape& in, const std::vector<bool>& reduced) {
  if (reduced.size() != in.size()) {
    return internal_error("plan_reduce: ", reduced.size(), " flags for rank ", in.size());
  }
  const std::vector<int64_t> strides = row_major_strides(in);
  // Merge adjacent dimensions of the same kind (the input is contiguous, so they merge
  // whenever they are neighbours after dropping 1s).
  Shape kept, red;
  std::vector<int64_t> kept_s, red_s;
  int last_kind = -1;  // 0 kept, 1 reduced
  for (size_t d = 0; d < in.size(); ++d) {
    if (in[d] == 1) continue;
    const int kind = reduced[d] ? 1 : 0;
    Shape& dims = kind ? red : kept;
    std::vector<int64_t>& s = kind ? red_s : kept_s;
    if (kind == last_kind) {
      dims.back() *= in[d];
      s.back() = strides[d];
    } else {
      dims.push_back(in[d]);
      s.push_back(strides[d]);
    }
    last_kind = kind;
  }
  PS_TRY(check_rank(kept.size(), "reduction (kept dimensions)"));
  PS_TRY(check_rank(red.size(), "reduction (reduced dimensions)"));
  ReducePlan plan;
  kernels::ReduceParams& p = plan.params;
  p.kept_rank = static_cast<int32_t>(kept.size());
  p.reduced_rank = static_cast<int32_t>(red.size());
  p.out_count = element_count(kept);
  p.group = element_count(red);
  for (size_t d = 0; d < kept.size(); ++d) {
    p.kept_dims[d] = kept[d];
    p.kept_strides[d] = kept_s[d];
  }
  for (size_t d = 0; d < red.size(); ++d) {
    p.reduced_dims[d] = red[d];
    p.reduced_strides[d] = red_s[d];
  }
  const bool inner_reduced = !red.empty() && red_s.back() == 1;
  if (inner_reduced && p.group >= 16) {
    plan.mode = ReduceMode::kWarpPerOutput;
  } else if (!red.empty() && !inner_reduced && p.group >= 64 && p.out_count < 262144) {
    // Fewer outputs than the GPU has threads, each a long walk: the group is split among the
    // warps of a block (kernel_op_util.h: reduce_launch_shape). Tiles of 32 outputs (whole
    // 128-byte rows) while they give a block to each of an H100's 132 SMs, else narrower ones
    // for more blocks, down to 8 (32-byte pieces; reduce.cu says what each cost).
    plan.mode = ReduceMode::kColumnTiles;
    p.tile_columns = 32;
    while (p.tile_columns > 8 && (p.out_count + p.tile_columns - 1) / p.tile_columns < kTargetSms) {
      p.tile_columns /= 2;
    }
  }
  return plan;
}

const char* reduce_mode_name(ReduceMode mode) {
  switch (mode) {
    case ReduceMode::kThreadPerOutput:
      return "thread per output";
    case ReduceMode::kWarpPerOutput:
      return "warp per output";
    case ReduceMode::kColumnTiles:
      return "column tiles";
  }
  return "?";
}

}  // namespace ps::models::gpu
