// Runs ONNX's node test cases (the libonnx-testdata package: one directory per case with
// model.onnx and test_data_set_*/{input,output}_*.pb) on the CPU reference operators.
// Test support for test_onnx_conformance; knows libonnx's protobuf classes.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "models/cpu/ops.h"
#include "models/cpu/tensor.h"

namespace onnx {
class TensorProto;
class NodeProto;
}  // namespace onnx

namespace ps::models::cpu::testing {

// An onnx::TensorProto (raw_data or the typed fields) as an owned Tensor. Unsupported for
// dtypes outside DType's set and for external data; Corrupt when the data does not fit dims.
Result<Tensor> tensor_from_proto(const onnx::TensorProto& proto);
// The same, read from a serialized TensorProto file; errors name the file. `declared_type` is
// the ONNX elem_type the graph declares for the value (0: unknown): ONNX 1.12 stored bfloat16
// test tensors as UINT16 (numpy has no bfloat16), so a UINT16 file for a BFLOAT16 value is
// read as bfloat16 bit patterns.
Result<Tensor> load_tensor_file(const std::filesystem::path& file, int32_t declared_type = 0);

// The node's attributes as manifest attributes: INT, FLOAT, STRING, INTS, FLOATS map directly;
// a one-element TENSOR becomes `i` or `f` (ConstantOfShape's value). Anything else is an
// Unsupported error naming the attribute.
Result<Attributes> convert_attributes(const onnx::NodeProto& node);

struct CaseResult {
  enum class Outcome { kPassed, kFailed, kSkipped, kNotApplicable };
  std::string name;  // directory name, "test_add_bcast"
  std::string op;    // the node's op type, or kGraphLabel
  Outcome outcome = Outcome::kNotApplicable;
  std::string detail;  // why it failed, was skipped, or does not apply
};

// Tolerance of a float comparison: |actual - expected| <= atol + rtol * |expected|.
struct Tolerance {
  double rtol = 1e-3;
  double atol = 1e-7;
};

// Picks the tolerance of float outputs for an op.
using ToleranceFor = std::function<Tolerance(const std::string& op)>;

// The op label of cases whose model has several nodes.
inline constexpr std::string_view kGraphLabel = "(multi-node graphs)";

// Runs one node on another backend (the GPU operators): `inputs` as loaded (nullptr for an
// omitted optional input), `outputs` preallocated with the expected dtypes and shapes (nullptr
// for an omitted output), to be filled. A kUnsupported error means the backend does not run
// this case (an op, dtype or attribute it lacks): the case is skipped with that message.
using NodeRunner = std::function<Status(const std::string& op, const Attributes& attrs,
                                        std::span<const Tensor* const> inputs,
                                        std::span<Tensor* const> outputs)>;

// Runs one case directory. A single node runs through run_op with outputs preallocated from the
// expected outputs (as the executor calls it), and again through run_op_allocating, which must
// give the same bits. A graph of several nodes (ONNX's function-expanded cases) runs node by
// node through run_op_allocating, Constant nodes becoming tensors.
// kNotApplicable: an op outside run_op's list or another domain (detail says which).
// kSkipped: the case needs something the CPU reference deliberately lacks (a dtype outside
// DType, a non-tensor value, an attribute kind the manifest cannot carry); detail says which.
// kFailed: run_op failed or an output differs (detail has the first mismatch).
// An error Status: the case directory itself is unreadable or corrupt (it names the file).
// With a `runner`, single-node cases run through it instead (and not through
// run_op_allocating), and multi-node graphs are kNotApplicable.
Result<CaseResult> run_case(const std::filesystem::path& dir, const ToleranceFor& tolerance_for,
                            const NodeRunner& runner = {});

// The case directories under `root` (every subdirectory that holds model.onnx), sorted.
// NotFound when root does not exist or is not a directory.
Result<std::vector<std::filesystem::path>> list_cases(const std::filesystem::path& root);

// Cases per op of one conformance run.
struct OpCounts {
  int passed = 0, failed = 0, skipped = 0;
};

// Prints `title`, the per-op table with its total row, and every skipped case with its reason
// (stdout). Returns the total.
OpCounts print_conformance_table(const std::string& title,
                                 const std::map<std::string, OpCounts>& per_op,
                                 const std::vector<std::string>& skips);

}  // namespace ps::models::cpu::testing
