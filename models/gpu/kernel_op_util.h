// What the builders of our kernel ops share: attribute reading through the CPU reference's
// OpContext, static (plan-time) input values, output-spec checks, launch geometry, and the
// builder functions each ops file defines (kernel_ops.cc puts them in the table).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "cuda/kernels/kernel_params.h"
#include "cuda/module.h"
#include "models/cpu/op_context.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

// The attributes of `spec`, read with the CPU reference's typed accessors (no inputs or
// outputs: only attr_* and check_attrs may be used). Borrows spec.attrs.
class AttrReader {
 public:
  explicit AttrReader(const OpSpec& spec) : op_(spec.op), ctx_(op_, spec.attrs, {}, {}) {}
  const cpu::OpContext& operator*() const { return ctx_; }
  const cpu::OpContext* operator->() const { return &ctx_; }

 private:
  std::string op_;
  cpu::OpContext ctx_;
};

// Input i of spec, or an error naming it when absent.
Result<const TensorSpec*> required_input(const OpSpec& spec, size_t i, std::string_view what);
// Input i when present, else nullptr.
const TensorSpec* optional_input(const OpSpec& spec, size_t i);

// The values of a static int32/int64 input (rank 0 or 1) from its host copy. Errors: absent
// host data (the input must be a weight with its bytes given), another dtype.
Result<std::vector<int64_t>> static_ints(const TensorSpec& t, std::string_view what);
// The single value of a one-element static numeric input, as double.
Result<double> static_scalar(const TensorSpec& t, std::string_view what);
// As static_scalar, for integer inputs exactly.
Result<int64_t> static_int_scalar(const TensorSpec& t, std::string_view what);

// Checks that spec has at least `count` outputs and that output i (when present) has `dtype`
// and `shape`; the error names both, so an importer/op disagreement is found at plan time.
Status check_output(const OpSpec& spec, size_t i, DType dtype, const Shape& shape);
Status check_arity(const OpSpec& spec, size_t min_inputs, size_t max_inputs, size_t min_outputs,
                   size_t max_outputs);

// The KernelDType code of a dtype.
int32_t kernel_dtype(DType dtype);

// Threads per block of our element-wise kernels and the grid for `items` work items (grid-
// stride loops cover the rest past the cap).
constexpr unsigned kBlock = 256;
unsigned grid_for(int64_t items);

// Lanes' share of a row of n elements kept in registers by the warp-row kernels: the smallest
// of 1, 2, 4, 8, 16, 24, 32 with 32 * share >= n (24: BERT's 768-wide rows); 0 when the row is
// too long for one warp. Each share has its own kernel (ps_softmax_warpN_f32,
// ps_layer_norm_warpN_f32, ps_layer_norm_backward_warpN_f32).
int warp_row_share(int64_t n);
// The kernel for a row share: `family`_warpN_f32 when share > 0, else `fallback` (the kernel
// that loops over longer rows).
Result<cuda::Kernel> warp_row_kernel(const OpEnv& env, const char* family, int share,
                                     const char* fallback);

// The launch of reduce.cu's kernel for `plan`: grid_for's blocks of kBlock threads over the
// outputs (a thread or a warp each); for column tiles, a block per tile of outputs
// (params.tile_columns: 8, 16 or 32) of 1 to 32 warps, each lane for ~8 elements of the group.
struct LaunchShape {
  unsigned grid = 1, block = kBlock;
};
LaunchShape reduce_launch_shape(const ReducePlan& plan);
// Launches reduce.cu's kernel (`kernel`, of the plan's dtype) for `plan` on x -> y.
Status launch_reduce(const cuda::Kernel& kernel, const cuda::Stream& stream, const ReducePlan& plan,
                     CUdeviceptr x, CUdeviceptr y);

// Kernel name suffix for an element unit of `bytes` (1, 2, 4, 8, 16): "u8" ... "u128".
const char* unit_suffix(size_t bytes);

// Whether the copy `p` (units of `unit` bytes) from `src` to `dst` puts every element where it
// already is: one contiguous run whose source and destination are the same bytes. The copy ops
// skip it (a Concat of weights the trainer placed side by side: trainer_plan.h).
inline bool copies_onto_itself(const kernels::StridedCopyParams& p, size_t unit, CUdeviceptr src,
                               CUdeviceptr dst) {
  return p.rank == 1 && p.in_strides[0] == 1 && p.out_strides[0] == 1 &&
         src + static_cast<CUdeviceptr>(p.in_base) * unit ==
             dst + static_cast<CUdeviceptr>(p.out_base) * unit;
}

// Looks a kernel up at plan time, naming it on failure.
Result<cuda::Kernel> find_kernel(const OpEnv& env, const std::string& name);

// True when every address is a multiple of `alignment`.
inline bool aligned(std::initializer_list<CUdeviceptr> ptrs, size_t alignment) {
  for (CUdeviceptr p : ptrs) {
    if (p % alignment != 0) return false;
  }
  return true;
}

// The builders (one per op family), in elementwise_op.cc, layout_ops.cc, shape_ops.cc,
// norm_softmax_ops.cc and reduce_op.cc.
using BuildResult = Result<std::unique_ptr<GpuOp>>;
BuildResult build_unary(const OpSpec& spec, const OpEnv& env);
BuildResult build_predicate(const OpSpec& spec, const OpEnv& env);
BuildResult build_binary(const OpSpec& spec, const OpEnv& env);
BuildResult build_variadic(const OpSpec& spec, const OpEnv& env);
BuildResult build_where(const OpSpec& spec, const OpEnv& env);
BuildResult build_cast(const OpSpec& spec, const OpEnv& env);
BuildResult build_transpose(const OpSpec& spec, const OpEnv& env);
BuildResult build_slice(const OpSpec& spec, const OpEnv& env);
BuildResult build_expand(const OpSpec& spec, const OpEnv& env);
BuildResult build_concat(const OpSpec& spec, const OpEnv& env);
BuildResult build_split(const OpSpec& spec, const OpEnv& env);
BuildResult build_gather(const OpSpec& spec, const OpEnv& env);
// head_slice_op.cc: HeadSlice (common/head_slice.h).
BuildResult build_head_slice(const OpSpec& spec, const OpEnv& env);
// fused_attention_op.cc: FusedAttention (cpu::FusedAttentionAttrs), a flash-attention kernel.
BuildResult build_fused_attention(const OpSpec& spec, const OpEnv& env);
BuildResult build_reshape_like(const OpSpec& spec, const OpEnv& env);
BuildResult build_shape(const OpSpec& spec, const OpEnv& env);
BuildResult build_constant_of_shape(const OpSpec& spec, const OpEnv& env);
BuildResult build_range(const OpSpec& spec, const OpEnv& env);
BuildResult build_softmax(const OpSpec& spec, const OpEnv& env);
BuildResult build_layer_norm(const OpSpec& spec, const OpEnv& env);
BuildResult build_reduce(const OpSpec& spec, const OpEnv& env);

}  // namespace ps::models::gpu
