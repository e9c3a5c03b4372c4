// The list of graph passes run for a mode, and what each one changed.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader {

// What a package is for. Inference packages are fused (BatchNorm folded into convolutions,
// bias/activation/residual fused); training packages keep the layers as exported so that the
// backward pass and the optimizer see every parameter and BatchNorm's statistics, but for two
// fusions that leave every parameter as it is (GELU, and MatMul of a transposed 2-D weight).
enum class Mode { kInference, kTraining };

// "inference" / "training".
const char* mode_name(Mode mode);

struct PassCount {
  std::string pass;  // "fold_batchnorm", "fuse_conv", ...
  int changes = 0;   // nodes folded, fused or removed (per pass; see each pass's comment)
};

struct PipelineReport {
  std::vector<PassCount> passes;  // in the order they ran
  int nodes_before = 0;           // live nodes
  int nodes_after = 0;
  int linear_gemms = 0;  // Gemm nodes kept as Gemm in nn.Linear form (inference)

  // Names of the passes that ran, in order (what the manifest records).
  std::vector<std::string> pass_names() const;
  // "fold_batchnorm=52 fuse_conv=104 ..." for psimport's summary.
  std::string summary() const;
};

// A model parameter or buffer: a constant marked is_weight (read as data) with more than one
// element that is not a literal (Value::literal). Scalars read as data (0.5, sqrt(2), -10000)
// are the exporter's constants, not parameters, whichever way the importer marked them; so are
// tensors the graph builds from Constant nodes (HF BERT's folded [B,1,S,S] attention mask).
bool is_parameter(const Value& value);

// Runs the passes of `mode` over `graph` in place, in this order:
//   inference: remove_identity_and_dropout, fold_constants, fold_batchnorm, fuse_conv,
//              fuse_matmul_bias, fuse_head_projections, fuse_layernorm, fuse_add_layernorm,
//              fuse_gelu, remove_zero_add, fuse_matmul_scale, fuse_add_softmax,
//              fuse_attention, fuse_attention_softmax, eliminate_dead_code;
//   training:  remove_identity_and_dropout, fold_constants, untie_parameters, fuse_gelu,
//              fuse_matmul_transpose, fuse_linear_bias, fuse_head_projections,
//              fuse_matmul_scale, remove_zero_add, fuse_add_softmax, fuse_attention,
//              eliminate_dead_code
//              (BatchNormalization stays a layer and nothing is folded into weights; the seven
//              fusions change no parameter or its name: GELU's element-wise nodes become one
//              Gelu, MatMul(X, Transpose(W)) becomes MatMulTransB(X, W), its bias Add joins it
//              as MatMulTransB(X, W, b), attention's projections of one input one
//              MatMulTransB of their Concat'ed weights read by HeadSlices, MatMul times a
//              scalar constant MatMulScale, the
//              Add before a last-axis Softmax AddSoftmax(X, mask), and attention's two
//              products of those HeadSlices AttentionScores and AttentionContext; an Add of
//              an all-zero constant that is no parameter goes, as in inference; constant
//              folding leaves every node that reads a float parameter alone, so that
//              Gather(position_embeddings, ids) stays a layer and the table stays trainable;
//              a parameter the exporter shared among several uses gets a copy per use:
//              passes/untie_parameters.h says why).
// A training package needs a graph imported with ImportOptions.optimize = false (and
// require_executable = false, then check_executable after this): import's own folding does
// not protect parameters.
// Then mark_weights classifies the constants again. The graph ends compacted (no dead nodes;
// indices renumbered).
// Preconditions: `graph` passed Graph::validate() and shape inference (static shapes).
// The graph is validated after every pass; a pass that breaks it is reported as an internal
// error naming the pass. On error the graph may be partly rewritten (still valid up to the
// failing pass).
// `skip` names fusion passes of `mode` not to run (psimport --skip-passes: to see what one
// pass does to a model's speed or results); the others are needed for a correct package and
// cannot be skipped. An unknown or unskippable name is kInvalidArgument, naming the passes
// that may be.
Result<PipelineReport> run_passes(Graph& graph, Mode mode,
                                  const std::vector<std::string>& skip = {});
// The passes of `mode` that run_passes may skip, in order.
std::vector<std::string> skippable_passes(Mode mode);
// OK when `name` is one of them, else kInvalidArgument naming the ones that are.
Status check_skippable(Mode mode, const std::string& name);

}  // namespace ps::onnx_loader
