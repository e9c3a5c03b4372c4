// Import, shape inference and constant folding against the ONNX node test data
// (/usr/share/libonnx-testdata/data/node/<case>/model.onnx with test_data_set_0/*.pb).
//
// For every case whose ops are all in supported_ops() at the model's opset:
//  - import: inputs the executor needs at import time (shapes, axes...; every input of an op
//    that only exists at import time) become initializers from input_N.pb, the others stay
//    runtime inputs; the import must succeed and every output's dtype and shape must equal
//    output_N.pb's. libonnx's checker and shape inference run too, as part of import.
//  - fold: when the evaluator handles every op of the case, all inputs become initializers;
//    every output must fold to a constant equal to output_N.pb.
// Prints a per-op summary.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "onnx_loader/constant_eval.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/supported_ops.h"
#include "onnx_loader/tensor_data.h"

namespace ps::onnx_loader {
namespace {

namespace fs = std::filesystem;

// The node cases: $PS_ONNX_TESTDATA, or where Debian's libonnx-testdata installs them.
fs::path node_data_dir() {
  const char* env = std::getenv("PS_ONNX_TESTDATA");
  return env != nullptr && *env != '\0' ? fs::path(env)
                                         : fs::path("/usr/share/libonnx-testdata/data/node");
}

// Cases that must fail, with the reason each gives; any other failure fails the test.
const std::map<std::string, std::string> kExpectedFailures = {
    // Training-mode Dropout is random: not an inference op.
    {"test_training_dropout", "Dropout is only supported on inputs known at import time"},
    {"test_training_dropout_default", "Dropout is only supported on inputs known at import time"},
    {"test_training_dropout_default_mask",
     "Dropout is only supported on inputs known at import time"},
    {"test_training_dropout_mask", "Dropout is only supported on inputs known at import time"},
    {"test_training_dropout_zero_ratio",
     "Dropout is only supported on inputs known at import time"},
    {"test_training_dropout_zero_ratio_mask",
     "Dropout is only supported on inputs known at import time"},
    // Or/And/Xor are folded on constants, not executed on runtime data.
    {"test_greater_equal_bcast_expanded", "Or is only supported on inputs known at import time"},
    {"test_greater_equal_expanded", "Or is only supported on inputs known at import time"},
    {"test_less_equal_bcast_expanded", "Or is only supported on inputs known at import time"},
    {"test_less_equal_expanded", "Or is only supported on inputs known at import time"},
    // Pooling is floating point only.
    {"test_maxpool_2d_uint8", "must be a floating-point tensor, is uint8"},
};

bool read_proto(const fs::path& path, google::protobuf::Message* message) {
  std::ifstream in(path, std::ios::binary);
  return in && message->ParseFromIstream(&in);
}

struct Case {
  std::string name;
  onnx::ModelProto model;
  int64_t opset = 0;
  std::set<std::string> ops;
  std::vector<onnx::TensorProto> inputs;  // one per runtime graph input, named after it
  std::vector<TensorData> outputs;        // expected, one per graph output
};

// Loads a case when all its ops are supported; nullopt otherwise (not ours to test).
std::optional<Case> load_case(const fs::path& dir) {
  Case c;
  c.name = dir.filename().string();
  if (!read_proto(dir / "model.onnx", &c.model)) return std::nullopt;
  for (const auto& import : c.model.opset_import()) {
    if (import.domain().empty() || import.domain() == "ai.onnx") c.opset = import.version();
  }
  for (const auto& node : c.model.graph().node()) {
    if (!find_supported_op(node.domain(), node.op_type(), c.opset)) return std::nullopt;
    c.ops.insert(node.op_type());
  }
  std::set<std::string> initializers;
  for (const auto& init : c.model.graph().initializer()) initializers.insert(init.name());
  const fs::path data = dir / "test_data_set_0";
  int n = 0;
  for (const auto& input : c.model.graph().input()) {
    if (initializers.count(input.name())) continue;
    onnx::TensorProto t;
    if (!read_proto(data / ("input_" + std::to_string(n++) + ".pb"), &t)) return std::nullopt;
    // Test data in a dtype we do not handle (string, uint16...): not ours to test.
    if (!dtype_from_onnx(t.data_type(), input.name()).ok()) return std::nullopt;
    t.set_name(input.name());
    c.inputs.push_back(std::move(t));
  }
  for (int k = 0; k < c.model.graph().output_size(); ++k) {
    onnx::TensorProto t;
    if (!read_proto(data / ("output_" + std::to_string(k) + ".pb"), &t)) return std::nullopt;
    auto expected = tensor_from_onnx(t, {});
    if (!expected.ok()) return std::nullopt;  // a dtype we do not handle: not ours to test
    c.outputs.push_back(std::move(*expected));
  }
  return c;
}

// Inputs that import must know: a static input of an executed op, or any input of an op that
// exists only at import time.
std::set<std::string> static_input_names(const onnx::GraphProto& g, int64_t opset) {
  std::set<std::string> names;
  for (const auto& node : g.node()) {
    const SupportedOp* op = find_supported_op(node.domain(), node.op_type(), opset);
    for (int k = 0; k < node.input_size(); ++k) {
      if (op->kind == OpKind::kFoldedAtImport || (k < 32 && (op->static_inputs >> k & 1u))) {
        names.insert(node.input(k));
      }
    }
  }
  return names;
}

// A copy of the case's model where the named inputs are initializers holding their test data
// and the other inputs have the test data's shapes.
onnx::ModelProto with_constant_inputs(const Case& c, const std::set<std::string>& constant) {
  onnx::ModelProto model = c.model;
  auto* g = model.mutable_graph();
  g->clear_input();
  for (const auto& input : c.model.graph().input()) {
    auto it = std::find_if(c.inputs.begin(), c.inputs.end(),
                           [&](const onnx::TensorProto& t) { return t.name() == input.name(); });
    if (it == c.inputs.end()) {
      *g->add_input() = input;  // an initializer listed as an input (IR < 4)
    } else if (constant.count(input.name())) {
      *g->add_initializer() = *it;
    } else {
      onnx::ValueInfoProto* info = g->add_input();
      *info = input;
      auto* shape = info->mutable_type()->mutable_tensor_type()->mutable_shape();
      shape->clear_dim();
      for (int64_t d : it->dims()) shape->add_dim()->set_dim_value(d);
    }
  }
  return model;
}

std::string compare_values(const TensorData& ours, const TensorData& expected) {
  if (ours.dtype != expected.dtype) {
    return str_cat("dtype ", dtype_name(ours.dtype), " vs ", dtype_name(expected.dtype));
  }
  if (ours.shape != expected.shape) {
    return str_cat("shape ", shape_string(ours.shape), " vs ", shape_string(expected.shape));
  }
  if (!is_floating(ours.dtype)) {
    return ours.bytes == expected.bytes ? "" : "values differ";
  }
  auto as_double = [](const TensorData& t, int64_t i) -> double {
    switch (t.dtype) {
      case DType::kFloat32:
        return t.as<float>()[i];
      case DType::kFloat64:
        return t.as<double>()[i];
      case DType::kFloat16:
        return float16_to_float(t.as<uint16_t>()[i]);
      case DType::kBFloat16:
        return bfloat16_to_float(t.as<uint16_t>()[i]);
      default:
        return 0;
    }
  };
  const double rtol = ours.dtype == DType::kFloat32 || ours.dtype == DType::kFloat64 ? 1e-5 : 1e-3;
  for (int64_t i = 0; i < ours.elements(); ++i) {
    const double a = as_double(ours, i), b = as_double(expected, i);
    if (std::isnan(a) && std::isnan(b)) continue;
    if (a == b) continue;  // infinities
    if (!(std::fabs(a - b) <= 1e-6 + rtol * std::fabs(b))) {
      return str_cat("element ", i, ": ", a, " vs ", b);
    }
  }
  return "";
}

struct OpSummary {
  int cases = 0, shapes_checked = 0, values_checked = 0, expected_failures = 0;
};

TEST_CASE("ONNX node test data: import, shapes and folding", "[import][node_data]") {
  const fs::path data = node_data_dir();
  // scripts/setup.sh installs the data: its absence is a broken set-up, not a reason to pass.
  INFO("ONNX node test data at " << data << " (install libonnx-testdata or set PS_ONNX_TESTDATA)");
  REQUIRE(fs::is_directory(data));
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(data)) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());

  std::map<std::string, OpSummary> summary;
  std::vector<std::string> failures;
  std::set<std::string> expected_seen;
  int eligible = 0;
  for (const fs::path& dir : dirs) {
    std::optional<Case> c = load_case(dir);
    if (!c) continue;
    ++eligible;
    for (const std::string& op : c->ops) ++summary[op].cases;
    auto fail = [&](const std::string& what) { failures.push_back(c->name + ": " + what); };

    // Import with runtime inputs.
    const onnx::ModelProto model =
        with_constant_inputs(*c, static_input_names(c->model.graph(), c->opset));
    ImportStats stats;
    ImportOptions options;
    options.stats = &stats;
    auto g = import_onnx_model(model, options);
    auto expected = kExpectedFailures.find(c->name);
    if (expected != kExpectedFailures.end()) {
      expected_seen.insert(c->name);
      if (g.ok()) {
        fail("imported but was expected to fail with: " + expected->second);
      } else if (g.status().message().find(expected->second) == std::string::npos) {
        fail("failed with '" + g.status().to_string() + "', expected: " + expected->second);
      } else {
        for (const std::string& op : c->ops) ++summary[op].expected_failures;
      }
      continue;
    }
    if (!g.ok()) {
      fail("import: " + g.status().to_string());
      continue;
    }
    // All node test models are within libonnx 1.12's opsets: its checks must have run.
    if (!stats.libonnx_checked) fail("libonnx checks did not run: " + stats.libonnx_note);
    bool shapes_ok = true;
    for (size_t k = 0; k < c->outputs.size(); ++k) {
      const Value& out = g->values[g->outputs[k]];
      if (out.dtype != c->outputs[k].dtype || *out.shape != c->outputs[k].shape) {
        fail(str_cat("output ", k, " '", out.name, "': ", dtype_name(out.dtype),
                     shape_string(*out.shape), " but expected ", dtype_name(c->outputs[k].dtype),
                     shape_string(c->outputs[k].shape)));
        shapes_ok = false;
      }
    }
    if (!shapes_ok) continue;
    for (const std::string& op : c->ops) ++summary[op].shapes_checked;

    // Fold with every input constant.
    const bool evaluable = std::all_of(c->ops.begin(), c->ops.end(), [](const std::string& op) {
      return op == "Constant" || can_evaluate(op);
    });
    if (!evaluable) continue;
    std::set<std::string> all;
    for (const auto& input : c->inputs) all.insert(input.name());
    auto folded = import_onnx_model(with_constant_inputs(*c, all), ImportOptions{});
    if (!folded.ok()) {
      fail("fold: " + folded.status().to_string());
      continue;
    }
    bool values_ok = true;
    for (size_t k = 0; k < c->outputs.size(); ++k) {
      const Value& out = folded->values[folded->outputs[k]];
      if (!out.constant) {
        fail(str_cat("fold: output ", k, " '", out.name, "' did not fold"));
        values_ok = false;
        continue;
      }
      const std::string diff = compare_values(*out.constant, c->outputs[k]);
      if (!diff.empty()) {
        fail(str_cat("fold: output ", k, " '", out.name, "': ", diff));
        values_ok = false;
      }
    }
    if (values_ok) {
      for (const std::string& op : c->ops) ++summary[op].values_checked;
    }
  }

  std::printf("ONNX node test data: %d cases use only supported ops\n", eligible);
  std::printf("%-20s %6s %8s %8s %9s\n", "op", "cases", "shapes", "folded", "expected");
  for (const auto& [op, s] : summary) {
    std::printf("%-20s %6d %8d %8d %9d\n", op.c_str(), s.cases, s.shapes_checked, s.values_checked,
                s.expected_failures);
  }
  for (const std::string& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());
  CHECK(eligible > 300);
  for (const auto& [name, reason] : kExpectedFailures) {
    INFO("expected failure " << name << " was not found");
    CHECK(expected_seen.count(name) == 1);
  }
  // Every executed op with cases has at least one whose shapes were checked.
  for (const SupportedOp& op : supported_ops()) {
    auto it = summary.find(std::string(op.op_type));
    if (it == summary.end() || op.kind != OpKind::kExecuted) continue;
    INFO(op.op_type);
    CHECK(it->second.shapes_checked > 0);
  }
}

}  // namespace
}  // namespace ps::onnx_loader
