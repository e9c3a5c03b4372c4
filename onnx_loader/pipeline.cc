#include "onnx_loader/pipeline.h"

#include <algorithm>
#include <functional>

#include "onnx_loader/cleanup_passes.h"
#include "onnx_loader/constant_folding.h"
#include "onnx_loader/passes/fold_batchnorm.h"
#include "onnx_loader/passes/fuse_add_layernorm.h"
#include "onnx_loader/passes/fuse_add_softmax.h"
#include "onnx_loader/passes/fuse_attention.h"
#include "onnx_loader/passes/fuse_attention_softmax.h"
#include "onnx_loader/passes/fuse_conv.h"
#include "onnx_loader/passes/fuse_gelu.h"
#include "onnx_loader/passes/fuse_head_projections.h"
#include "onnx_loader/passes/fuse_layernorm.h"
#include "onnx_loader/passes/fuse_linear_bias.h"
#include "onnx_loader/passes/fuse_matmul_bias.h"
#include "onnx_loader/passes/fuse_matmul_scale.h"
#include "onnx_loader/passes/fuse_matmul_transpose.h"
#include "onnx_loader/passes/remove_zero_add.h"
#include "onnx_loader/passes/untie_parameters.h"

namespace ps::onnx_loader {
namespace {

using PassFn = std::function<Result<int>(Graph&)>;

struct NamedPass {
  const char* name;
  PassFn run;
};

int live_nodes(const Graph& graph) {
  int count = 0;
  for (const Node& node : graph.nodes) count += node.dead ? 0 : 1;
  return count;
}

bool is_float_parameter(const Value& value) {
  const DType dtype = value.constant ? value.constant->dtype : DType::kUndefined;
  return is_parameter(value) && (dtype == DType::kFloat32 || dtype == DType::kFloat16 ||
                                 dtype == DType::kBFloat16 || dtype == DType::kFloat64);
}

// fold_constants with the float parameters hidden from it: they look like runtime values while
// it runs, so no node that reads one is evaluated (their shapes stay known, so Shape of a
// parameter still folds).
Result<int> fold_constants_keeping_parameters(Graph& graph) {
  std::vector<std::pair<int, ConstTensor>> hidden;
  for (int v = 0; v < static_cast<int>(graph.values.size()); ++v) {
    Value& value = graph.values[v];
    if (!is_float_parameter(value)) continue;
    hidden.emplace_back(v, std::move(value.constant));
    value.constant = nullptr;
  }
  int folded = 0;
  Status status = fold_constants(graph, &folded);
  for (auto& [v, constant] : hidden) graph.values[v].constant = std::move(constant);
  PS_TRY(status);
  return folded;
}

// Cleanup shared by both modes (import ran it already unless asked not to; running it again
// is cheap and makes run_passes correct on any valid graph).
std::vector<NamedPass> cleanup_passes(Mode mode) {
  return {
      {"remove_identity_and_dropout",
       [](Graph& graph) -> Result<int> {
         int removed = 0;
         PS_TRY(remove_identity_and_dropout(graph, &removed));
         return removed;
       }},
      {"fold_constants", mode == Mode::kTraining ? PassFn(fold_constants_keeping_parameters)
                                                 : PassFn([](Graph& graph) -> Result<int> {
                                                     int folded = 0;
                                                     PS_TRY(fold_constants(graph, &folded));
                                                     return folded;
                                                   })},
  };
}

// Drops nodes whose outputs reach no graph output, then compacts. Counts the nodes removed
// (nodes already marked dead by earlier passes are not counted again).
Result<int> dead_code_pass(Graph& graph) {
  const int before = live_nodes(graph);
  PS_TRY(eliminate_dead_code(graph));
  return before - live_nodes(graph);
}

std::vector<NamedPass> inference_passes() {
  return {
      {"fold_batchnorm", passes::fold_batchnorm_into_conv},
      {"fuse_conv", passes::fuse_conv_activation},
      {"fuse_matmul_bias", passes::fuse_matmul_bias},
      // Then attention's query, key and value as one MatMulBias over joined constants, read
      // by HeadSlices (passes/fuse_head_projections.h).
      {"fuse_head_projections", passes::fuse_head_projections},
      {"fuse_layernorm", passes::fuse_layernorm},
      {"fuse_add_layernorm", passes::fuse_add_layernorm},
      {"fuse_gelu", passes::fuse_gelu},
      // After the fusions, whose patterns may hold an Add of zeros (a freshly initialised
      // bias or LayerNorm beta) that they take in whole.
      {"remove_zero_add", passes::remove_zero_add},
      {"fuse_matmul_scale", passes::fuse_matmul_scale},
      // After remove_zero_add: an all-zero constant mask goes rather than joins the Softmax.
      {"fuse_add_softmax", passes::fuse_add_softmax},
      // Then attention's products read the heads in place in the fused projection's product
      // (passes/fuse_attention.h), matching what fuse_head_projections and fuse_matmul_scale
      // made.
      {"fuse_attention", passes::fuse_attention},
      // Last: the scores, their Softmax and the context as one FusedAttention
      // (passes/fuse_attention_softmax.h): BERT-base at batch 8, the scores and the
      // probabilities (24 MB each a layer) stay on chip in one flash-attention kernel.
      {"fuse_attention_softmax", passes::fuse_attention_softmax},
  };
}

// The fusions of `mode`, in order (run_passes may skip any of them).
std::vector<NamedPass> fusion_passes(Mode mode) {
  if (mode == Mode::kInference) return inference_passes();
  std::vector<NamedPass> list;
  // The fusions training takes leave every parameter as it is. GELU's five element-wise
  // nodes become one Gelu, whose backward (models/cpu/grad_unary.cc, the GPU's
  // ps_unary_backward_f32) is one pass over X and dY; no parameter is involved, so the
  // trained weights and their names are unchanged.
  // BERT-base at batch 8: ten kernels and four saved activations of 24.7 MB a layer fewer.
  list.push_back({"fuse_gelu", passes::fuse_gelu});
  // nn.Linear exported in training mode reads its weight through Transpose(W, perm=[1,0]):
  // MatMul(X, Transpose(W)) becomes MatMulTransB(X, W), which reads W [N, K] as it is stored
  // (its backward writes dW in that layout too). The weight and its name are unchanged, so
  // trained weights, checkpoints and gradient dumps keep PyTorch's layout and names; it
  // removes two copies of every linear weight per step (the Transpose forward and its
  // backward). Not for inference: there constant folding stores the transposed weight.
  list.push_back({"fuse_matmul_transpose", passes::fuse_matmul_transpose});
  // Then the bias Add after it: MatMulTransB(X, W, b) (passes/fuse_linear_bias.h), the bias
  // added as the product is written and its gradient made by the layer's backward.
  list.push_back({"fuse_linear_bias", passes::fuse_linear_bias});
  // Attention's query, key and value projections of one input become one product and three
  // HeadSlice reads of it (passes/fuse_head_projections.h): BERT-base at batch 8, one
  // [2008, 768] x [768, 2304] product a layer instead of three under-filled ones, forward and
  // backward. The parameters stay as they are; two Concats a layer join them.
  list.push_back({"fuse_head_projections", passes::fuse_head_projections});
  // Attention's scores times head_size^-0.5: MatMul then Mul by a scalar becomes MatMulScale,
  // the scale cuBLASLt's alpha forward and backward (dA = alpha dY B^T, dB = alpha A^T dY).
  // No parameter is involved. BERT-base at batch 8: a [8, 12, 251, 251] product (24 MB) a
  // layer is neither written twice nor kept for the backward, and two element-wise passes
  // over it (the Mul and its gradient) go.
  list.push_back({"fuse_matmul_scale", passes::fuse_matmul_scale});
  // An Add of an all-zero constant that is no parameter goes (passes/remove_zero_add.h): BERT
  // exported without an attention mask adds zeros to its scores, which as AddSoftmax read a
  // 2 MB mask once a head (40 us a layer forward against the plain Softmax's 32, H100).
  list.push_back({"remove_zero_add", passes::remove_zero_add_keeping_parameters});
  // Attention's mask Add joins its Softmax: AddSoftmax(scores, mask) (passes/fuse_add_softmax.h).
  // Only masks no parameter reaches (a folded literal, or computed from an input): the
  // mask takes no gradient. BERT-base at batch 8: a 24 MB write and read a
  // layer fewer forward (the Add's backward was a pass-through already).
  list.push_back({"fuse_add_softmax", passes::fuse_add_softmax});
  // Then attention's two products read the heads in place in the fused projection's product
  // (passes/fuse_attention.h): AttentionScores for the query and key HeadSlices and the scores'
  // MatMulScale, AttentionContext for the value HeadSlice, the context MatMul and its
  // Transpose. No parameter is involved; the head copies and the context Transpose go, forward
  // and backward (X's gradient is written in place, column range by column range).
  list.push_back({"fuse_attention", passes::fuse_attention});
  return list;
}

}  // namespace

bool is_parameter(const Value& value) {
  return value.constant != nullptr && value.is_weight && !value.literal &&
         value.constant->elements() > 1;
}

const char* mode_name(Mode mode) { return mode == Mode::kInference ? "inference" : "training"; }

std::vector<std::string> PipelineReport::pass_names() const {
  std::vector<std::string> names;
  names.reserve(passes.size());
  for (const PassCount& count : passes) names.push_back(count.pass);
  return names;
}

std::string PipelineReport::summary() const {
  std::string text;
  for (const PassCount& count : passes) {
    if (!text.empty()) text += ' ';
    text += str_cat(count.pass, '=', count.changes);
  }
  if (linear_gemms > 0) text += str_cat(text.empty() ? "" : " ", "gemm_kept=", linear_gemms);
  return str_cat(text, text.empty() ? "" : " ", "(nodes ", nodes_before, " -> ", nodes_after, ")");
}

std::vector<std::string> skippable_passes(Mode mode) {
  std::vector<std::string> names;
  for (const NamedPass& pass : fusion_passes(mode)) names.push_back(pass.name);
  return names;
}

Status check_skippable(Mode mode, const std::string& name) {
  const std::vector<std::string> skippable = skippable_passes(mode);
  if (std::find(skippable.begin(), skippable.end(), name) != skippable.end()) return Status::OK();
  std::string names;
  for (const std::string& s : skippable) names += (names.empty() ? "" : ", ") + s;
  return invalid_argument("'", name, "' is not a pass ", mode_name(mode), " imports may skip (",
                          names, ")");
}

Result<PipelineReport> run_passes(Graph& graph, Mode mode, const std::vector<std::string>& skip) {
  for (const std::string& name : skip) PS_TRY(check_skippable(mode, name));
  PS_TRY(graph.validate().with_context("graph before passes"));
  PipelineReport report;
  report.nodes_before = live_nodes(graph);

  std::vector<NamedPass> list = cleanup_passes(mode);
  if (mode == Mode::kTraining) list.push_back({"untie_parameters", passes::untie_parameters});
  for (NamedPass& pass : fusion_passes(mode)) {
    if (std::find(skip.begin(), skip.end(), pass.name) == skip.end())
      list.push_back(std::move(pass));
  }
  list.push_back({"eliminate_dead_code", dead_code_pass});
  for (const NamedPass& pass : list) {
    Result<int> changes = pass.run(graph);
    if (!changes.ok()) return changes.status().with_context(str_cat("pass ", pass.name));
    Status valid = graph.validate();
    if (!valid.ok()) {
      return internal_error("pass ", pass.name, " left an invalid graph: ", valid.message());
    }
    report.passes.push_back({pass.name, *changes});
  }

  // Passes made new constants (folded weights, flattened biases): classify them again.
  mark_weights(graph);
  PS_TRY(graph.validate().with_context("graph after passes"));
  report.nodes_after = live_nodes(graph);
  if (mode == Mode::kInference) report.linear_gemms = passes::count_linear_gemms(graph);
  return report;
}

}  // namespace ps::onnx_loader
