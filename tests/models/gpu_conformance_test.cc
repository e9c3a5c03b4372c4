// test_gpu_conformance: ONNX's node test cases (libonnx-testdata) run on the GPU operators
// through run_gpu_op (strict fp32), with the same loader as the CPU conformance test. Every
// single-node case of an op the GPU has must pass, or be skipped for a stated reason (the
// builder refuses a dtype or attribute: kUnsupported). A summary prints per-op counts.
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>

#include "tests/models/cpu_ops_onnx_data.h"
#include "tests/models/gpu_op_check.h"
#include "tests/support/gpu.h"

namespace ps::models::gpu {
namespace {

namespace fs = std::filesystem;
using cpu::Tensor;
using cpu::testing::CaseResult;
using cpu::testing::OpCounts;
using cpu::testing::print_conformance_table;
using Outcome = CaseResult::Outcome;

fs::path data_root() {
  const char* env = std::getenv("PS_ONNX_TESTDATA");
  return env != nullptr && *env != '\0' ? fs::path(env)
                                        : fs::path("/usr/share/libonnx-testdata/data/node");
}

// Inputs that docs/operators.md marks *static* (read on the host at plan time): they are
// passed as weights, as the importer makes them.
struct StaticInputs {
  std::string_view op;
  std::initializer_list<size_t> positions;
};
const StaticInputs kStaticInputs[] = {
    {"Clip", {1, 2}},         {"ReduceMean", {1}},  {"ReduceSum", {1}}, {"ReduceMax", {1}},
    {"ReduceMin", {1}},       {"ReduceProd", {1}},  {"Split", {1}},     {"Slice", {1, 2, 3, 4}},
    {"Expand", {1}},          {"Reshape", {1}},     {"Squeeze", {1}},   {"Unsqueeze", {1}},
    {"ConstantOfShape", {0}}, {"Range", {0, 1, 2}}, {"Tile", {1}},      {"Pad", {1, 2, 3}},
};

std::vector<size_t> static_positions(const std::string& op, size_t inputs) {
  std::vector<size_t> out;
  for (const StaticInputs& s : kStaticInputs) {
    if (s.op != op) continue;
    for (size_t p : s.positions) {
      if (p < inputs) out.push_back(p);
    }
  }
  return out;
}

// Cases expected to fail on the GPU, with the reason; a listed case that passes fails the test.
struct KnownSkip {
  std::string_view name;
  std::string_view reason;
};
constexpr KnownSkip kKnownSkips[] = {
    {"test_training_dropout", "Dropout in training mode draws random numbers (numpy's RNG)"},
    {"test_training_dropout_default", "Dropout in training mode draws random numbers"},
    {"test_training_dropout_default_mask", "Dropout in training mode draws random numbers"},
    {"test_training_dropout_mask", "Dropout in training mode draws random numbers"},
    {"test_cast_FLOAT_to_BFLOAT16",
     "libonnx 1.12's expected bfloat16 values are truncated (onnx/onnx#3876); we round"},
    {"test_castlike_FLOAT_to_BFLOAT16_expanded",
     "libonnx 1.12's expected bfloat16 values are truncated (onnx/onnx#3876); we round"},
};

const KnownSkip* find_known_skip(const std::string& name) {
  for (const KnownSkip& k : kKnownSkips) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

// The GPU computes in float (the CPU reference in double): ONNX's rtol with a slightly larger
// absolute floor for values near zero.
cpu::testing::Tolerance gpu_tolerance(const std::string&) { return {1e-3, 1e-6}; }

Status run_on_gpu(const std::string& op, const cpu::Attributes& attrs,
                  std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) {
  if (!gpu_supports(op)) return unsupported("no GPU operator ", op);
  std::vector<TensorSpec> specs;
  for (const Tensor* t : outputs) {
    specs.push_back(t == nullptr ? TensorSpec{} : TensorSpec{t->dtype(), t->shape(), false});
  }
  const std::vector<size_t> weights = static_positions(op, inputs.size());
  PS_ASSIGN_OR_RETURN(testing::GpuOpRun run,
                      testing::run_gpu_op(testing::shared_runtime(), Precision::kFp32, op, attrs,
                                          inputs, specs, std::span<const size_t>(weights)));
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i] == nullptr) continue;
    if (run.outputs[i].byte_size() != outputs[i]->byte_size()) {
      return internal_error("output ", i, ": ", run.outputs[i].description(), " for ",
                            outputs[i]->description());
    }
    if (outputs[i]->byte_size() > 0) {
      std::memcpy(outputs[i]->mutable_raw(), run.outputs[i].raw(), outputs[i]->byte_size());
    }
  }
  return Status::OK();
}

TEST_CASE("ONNX node test cases pass on the GPU operators", "[gpu][gpu_conformance]") {
  PS_REQUIRE_GPU();
  const fs::path root = data_root();
  auto cases = cpu::testing::list_cases(root);
  INFO(cases.status().to_string());
  REQUIRE(cases.ok());
  (void)testing::shared_runtime();

  std::map<std::string, OpCounts> per_op;
  std::map<std::string, int> no_gpu_op;
  std::vector<std::string> failures, skips, stale;
  int not_applicable = 0;
  for (const fs::path& dir : *cases) {
    auto r = cpu::testing::run_case(dir, gpu_tolerance, run_on_gpu);
    if (!r.ok()) {
      failures.push_back(dir.filename().string() + ": " + r.status().to_string());
      continue;
    }
    if (r->outcome == Outcome::kNotApplicable) {
      ++not_applicable;
      continue;
    }
    if (r->outcome == Outcome::kSkipped && !gpu_supports(r->op)) {
      ++no_gpu_op[r->op];
      continue;
    }
    OpCounts& c = per_op[r->op];
    const KnownSkip* known = find_known_skip(r->name);
    if (r->outcome == Outcome::kPassed) {
      ++c.passed;
      if (known != nullptr) stale.push_back(r->name + " passes now; remove it from kKnownSkips");
    } else if (r->outcome == Outcome::kSkipped || known != nullptr) {
      ++c.skipped;
      skips.push_back(r->name + " (" + r->op +
                      "): " + (known != nullptr ? std::string(known->reason) : r->detail));
    } else {
      ++c.failed;
      failures.push_back(r->name + " (" + r->op + "): " + r->detail);
    }
  }

  const OpCounts total = print_conformance_table(
      str_cat("ONNX node conformance of the GPU operators, strict fp32 (", root.string(), ")"),
      per_op, skips);
  std::printf("Ops the CPU reference has and the GPU does not (cases):");
  for (const auto& [op, n] : no_gpu_op) std::printf(" %s (%d)", op.c_str(), n);
  std::printf("\nNot run (multi-node graphs, other domains, ops outside the CPU list): %d\n",
              not_applicable);
  if (!failures.empty()) std::printf("Failed cases:\n");
  for (const std::string& f : failures) std::printf("  %s\n", f.c_str());
  std::fflush(stdout);

  for (const std::string& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());
  for (const std::string& s : stale) UNSCOPED_INFO(s);
  CHECK(stale.empty());
  // Once the operators are merged the GPU must run some of the cases: an empty table means the
  // runner or the filter is broken, not that everything passed.
  if (!gpu_supported_ops().empty()) CHECK(total.passed > 0);
}

}  // namespace
}  // namespace ps::models::gpu
