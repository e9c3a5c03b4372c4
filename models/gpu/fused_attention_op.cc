// FusedAttention (ours, inference; passes/fuse_attention_softmax.h): one flash-attention kernel
// (cuda/kernels/attention.cu) for AttentionScores -> Softmax -> AttentionContext, the heads read
// in place in X [B, S, C] and the context written as [B, S, H, D]. The products run on the
// tensor cores: TF32 precision one TF32 mma a product, fp32 three (3xTF32, fp32-level error).
// Head sizes up to 64.
#include <memory>
#include <string>

#include "common/attention.h"
#include "cuda/kernels/kernel_params.h"
#include "cuda/stream.h"
#include "models/cpu/kernels.h"
#include "models/gpu/grad_op_util.h"
#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {
namespace {

class FusedAttentionOp final : public GpuOp {
 public:
  FusedAttentionOp(cuda::Kernel kernel, const kernels::FusedAttentionParams& p, unsigned blocks)
      : kernel_(std::move(kernel)), params_(p), blocks_(blocks) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (blocks_ == 0) return Status::OK();
    kernels::FusedAttentionParams p = params_;
    // X read and Y written as float4; the arena aligns 256, so this is not expected.
    if (!aligned({args.inputs[0], args.outputs[0]}, 16)) p.vec4 = 0;
    return kernel_.launch(args.stream, blocks_, 32 * kernels::kFusedAttentionWarps, 0,
                          args.inputs[0], args.outputs[0], p);
  }
  std::string describe() const override {
    return str_cat("kernel ", kernel_.name(), " (", params_.batch, " x ", params_.heads,
                   " heads of ", params_.head_size, ", sequence ", params_.seq,
                   params_.vec4 != 0 ? ", float4 copies)" : ", scalar copies)");
  }

 private:
  cuda::Kernel kernel_;
  kernels::FusedAttentionParams params_;
  unsigned blocks_;
};

}  // namespace

BuildResult build_fused_attention(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 1, 1, 1, 1));
  const TensorSpec& x = spec.inputs[0];
  PS_TRY(require_f32(x, "X"));
  AttrReader attrs(spec);
  PS_ASSIGN_OR_RETURN(const cpu::FusedAttentionAttrs a, cpu::fused_attention_attrs(*attrs, x.shape));
  const AttentionLayout& l = a.layout;
  PS_TRY(check_output(spec, 0, DType::kFloat32, {l.batch, l.seq, l.heads, l.head_size}));
  if (l.head_size > kFusedAttentionMaxHeadSize) {  // the pass makes none: a graph made by hand
    return unsupported("FusedAttention: head size ", l.head_size, " (the GPU kernel takes up to ",
                       kFusedAttentionMaxHeadSize,
                       "; import with --skip-passes fuse_attention_softmax)");
  }
  const int tile = l.head_size <= 16 ? 16 : l.head_size <= 32 ? 32 : 64;
  const char* precision = env.precision == Precision::kTf32 ? "tf32" : "f32";
  PS_ASSIGN_OR_RETURN(cuda::Kernel kernel,
                      find_kernel(env, str_cat("ps_fused_attention_d", tile, "_", precision)));
  kernels::FusedAttentionParams p;
  p.batch = l.batch;
  p.seq = l.seq;
  p.columns = l.columns;
  p.heads = l.heads;
  p.head_size = l.head_size;
  p.q_start = a.q_start;
  p.k_start = a.k_start;
  p.v_start = a.v_start;
  p.alpha = a.alpha;
  p.vec4 = l.columns % 4 == 0 && a.q_start % 4 == 0 && a.k_start % 4 == 0 && a.v_start % 4 == 0 &&
                   l.head_size % 4 == 0
               ? 1
               : 0;
  const int64_t blocks = (l.seq + kernels::kFusedAttentionBlockRows - 1) /
                         kernels::kFusedAttentionBlockRows * l.heads * l.batch;
  if (blocks > int64_t{0x7fffffff}) {
    return unsupported("FusedAttention: ", blocks, " blocks exceed the grid's limit");
  }
  return std::unique_ptr<GpuOp>(
      new FusedAttentionOp(std::move(kernel), p, static_cast<unsigned>(blocks)));
}

}  // namespace ps::models::gpu
