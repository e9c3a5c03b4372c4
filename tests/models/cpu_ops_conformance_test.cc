// test_onnx_conformance: ONNX's own node test cases (Debian's libonnx-testdata, inputs and
// expected outputs computed by ONNX's numpy reference) run on the CPU reference operators.
// Every single-node case of an op that run_op supports must pass, or be skipped for a stated
// reason; so must every multi-node case (ONNX's function-expanded graphs) made only of such ops
// and Constant. A summary table says how many cases of which op passed.
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string_view>

#include "tests/models/cpu_ops_onnx_data.h"

namespace ps::models::cpu::testing {
namespace {

namespace fs = std::filesystem;
using Outcome = CaseResult::Outcome;

fs::path data_root() {
  const char* env = std::getenv("PS_ONNX_TESTDATA");
  return env != nullptr && *env != '\0' ? fs::path(env)
                                        : fs::path("/usr/share/libonnx-testdata/data/node");
}

// Cases of supported ops that fail on purpose, with the reason. They still run: a listed case
// that passes fails the test, so this list cannot hide a fixed bug or go stale.
struct KnownSkip {
  std::string_view name;
  std::string_view reason;
};
constexpr KnownSkip kKnownSkips[] = {
    {"test_batchnorm_epsilon_training_mode",
     "BatchNormalization training_mode=1: the reference implements inference only"},
    {"test_batchnorm_example_training_mode",
     "BatchNormalization training_mode=1: the reference implements inference only"},
    {"test_cast_FLOAT_to_BFLOAT16",
     "libonnx 1.12's expected bfloat16 values are truncated (onnx/onnx#3876); we round to "
     "nearest even, as ONNX Runtime, PyTorch and CUDA do"},
    {"test_castlike_FLOAT_to_BFLOAT16_expanded",
     "libonnx 1.12's expected bfloat16 values are truncated (onnx/onnx#3876); we round to "
     "nearest even, as ONNX Runtime, PyTorch and CUDA do"},
    {"test_max_float16", "float16 is a storage type here: only Cast and data movement use it"},
    {"test_min_float16", "float16 is a storage type here: only Cast and data movement use it"},
    {"test_training_dropout", "Dropout in training mode draws random numbers (numpy's RNG)"},
    {"test_training_dropout_default",
     "Dropout in training mode draws random numbers (numpy's RNG)"},
    {"test_training_dropout_default_mask",
     "Dropout in training mode draws random numbers (numpy's RNG)"},
    {"test_training_dropout_mask", "Dropout in training mode draws random numbers (numpy's RNG)"},
};

const KnownSkip* find_known_skip(const std::string& name) {
  for (const KnownSkip& k : kKnownSkips) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

// ONNX's backend tests compare with rtol 1e-3, atol 1e-7 unless a case says otherwise. Every
// op meets that today (we compute in double); an op that needs a looser bound gets an entry
// here with the reason.
Tolerance tolerance_for(const std::string& op) {
  (void)op;
  return Tolerance{};
}

// The operators the executor issue names; each must have at least one passing ONNX case, so a
// loader or filter bug cannot quietly turn the test into a no-op.
constexpr std::string_view kMustPass[] = {
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Concat",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Equal",
    "Erf",
    "Expand",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "GreaterOrEqual",
    "Identity",
    "IsNaN",
    "LayerNormalization",
    "Less",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "Not",
    "Pow",
    "Range",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
    "Where",
};

// A fresh directory under the system temp directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("ps_cpu_ops_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary);
  out << bytes;
  REQUIRE(out.good());
}

onnx::TensorProto float_tensor(const std::vector<float>& values) {
  onnx::TensorProto t;
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(static_cast<int64_t>(values.size()));
  for (float v : values) t.add_float_data(v);
  return t;
}

// A case directory with a one-node Relu model over float[2] and one data set.
fs::path write_relu_case(const fs::path& root, const std::vector<float>& input,
                         const std::vector<float>& expected) {
  const fs::path dir = root / "test_relu_tiny";
  fs::create_directories(dir / "test_data_set_0");
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(17);
  onnx::GraphProto* graph = model.mutable_graph();
  onnx::NodeProto* node = graph->add_node();
  node->set_op_type("Relu");
  node->add_input("x");
  node->add_output("y");
  for (const char* name : {"x", "y"}) {
    onnx::ValueInfoProto* v = name[0] == 'x' ? graph->add_input() : graph->add_output();
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_value(2);
  }
  write_file(dir / "model.onnx", model.SerializeAsString());
  write_file(dir / "test_data_set_0" / "input_0.pb", float_tensor(input).SerializeAsString());
  write_file(dir / "test_data_set_0" / "output_0.pb", float_tensor(expected).SerializeAsString());
  return dir;
}

}  // namespace

TEST_CASE("ONNX node test cases of every supported op pass on the CPU reference") {
  const fs::path root = data_root();
  Result<std::vector<fs::path>> cases = list_cases(root);
  INFO(cases.status().to_string());
  REQUIRE(cases.ok());

  std::map<std::string, OpCounts> per_op;
  std::vector<std::string> failures, skips, stale_skips;
  std::map<std::string, int> not_applicable;
  for (const fs::path& dir : *cases) {
    Result<CaseResult> r = run_case(dir, tolerance_for);
    if (!r.ok()) {
      failures.push_back(dir.filename().string() + ": " + r.status().to_string());
      continue;
    }
    if (r->outcome == Outcome::kNotApplicable) {
      ++not_applicable[r->detail.rfind("domain", 0) == 0 ? "in other domains"
                       : r->op == kGraphLabel            ? "graphs with unsupported ops"
                                                         : "of unsupported ops"];
      continue;
    }
    OpCounts& c = per_op[r->op];
    const KnownSkip* known = find_known_skip(r->name);
    if (r->outcome == Outcome::kPassed && known == nullptr) {
      ++c.passed;
    } else if (r->outcome == Outcome::kPassed) {
      ++c.passed;
      stale_skips.push_back(r->name + " passes now; remove it from kKnownSkips");
    } else if (r->outcome == Outcome::kSkipped || known != nullptr) {
      ++c.skipped;
      std::string why = known != nullptr ? std::string(known->reason) : r->detail;
      if (const size_t at = why.find(dir.string() + "/"); at != std::string::npos) {
        why.erase(at, dir.string().size() + 1);  // file names relative to the case
      }
      skips.push_back(r->name + " (" + r->op + "): " + why);
    } else {
      ++c.failed;
      failures.push_back(r->name + " (" + r->op + "): " + r->detail);
    }
  }

  print_conformance_table(
      str_cat("ONNX node conformance of the CPU reference (", root.string(), ")"), per_op, skips);
  std::printf("Not run (need ops outside run_op's list):");
  for (const auto& [why, n] : not_applicable) std::printf(" %d %s;", n, why.c_str());
  std::printf("\n");
  if (!failures.empty()) std::printf("Failed cases:\n");
  for (const std::string& f : failures) std::printf("  %s\n", f.c_str());
  std::fflush(stdout);

  for (const std::string& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());
  for (const std::string& s : stale_skips) UNSCOPED_INFO(s);
  CHECK(stale_skips.empty());
  for (std::string_view op : kMustPass) {
    INFO("no passing ONNX case for " << op);
    CHECK(per_op[std::string(op)].passed > 0);
  }
}

TEST_CASE("a missing test data directory is a clear NotFound error") {
  Result<std::vector<fs::path>> r = list_cases("/nonexistent/onnx/node");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK_THAT(r.status().message(), Catch::Contains("/nonexistent/onnx/node"));
}

TEST_CASE("an empty data directory lists no cases") {
  TempDir tmp;
  Result<std::vector<fs::path>> r = list_cases(tmp.path());
  REQUIRE(r.ok());
  CHECK(r->empty());
}

TEST_CASE("a garbage model.onnx is a Corrupt error naming the file") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "test_garbage";
  fs::create_directories(dir / "test_data_set_0");
  write_file(dir / "model.onnx", "this is not a model");
  Result<CaseResult> r = run_case(dir, tolerance_for);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kCorrupt);
  CHECK_THAT(r.status().message(), Catch::Contains("model.onnx"));
}

TEST_CASE("a garbage input tensor is an error naming the file") {
  TempDir tmp;
  const fs::path dir = write_relu_case(tmp.path(), {-1, 2}, {0, 2});
  write_file(dir / "test_data_set_0" / "input_0.pb", "\xff\xff\xff garbage");
  Result<CaseResult> r = run_case(dir, tolerance_for);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kCorrupt);
  CHECK_THAT(r.status().message(), Catch::Contains("input_0.pb"));
}

TEST_CASE("a tensor whose data does not fit its dims is Corrupt") {
  onnx::TensorProto t = float_tensor({1, 2, 3});
  t.set_dims(0, 4);
  Result<Tensor> r = tensor_from_proto(t);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kCorrupt);
  onnx::TensorProto raw;
  raw.set_data_type(onnx::TensorProto::INT64);
  raw.add_dims(2);
  raw.set_raw_data(std::string(15, '\0'));
  CHECK(tensor_from_proto(raw).status().code() == Code::kCorrupt);
}

TEST_CASE("the harness passes a right case and fails a wrong one") {
  TempDir tmp;
  {
    const fs::path dir = write_relu_case(tmp.path(), {-1.5f, 2.5f}, {0.0f, 2.5f});
    Result<CaseResult> r = run_case(dir, tolerance_for);
    REQUIRE(r.ok());
    CHECK(r->op == "Relu");
    CHECK(r->outcome == Outcome::kPassed);
  }
  {
    const fs::path dir = write_relu_case(tmp.path(), {-1.5f, 2.5f}, {0.0f, 2.6f});
    Result<CaseResult> r = run_case(dir, tolerance_for);
    REQUIRE(r.ok());
    CHECK(r->outcome == Outcome::kFailed);
    CHECK_THAT(r->detail, Catch::Contains("1 of 2 elements differ"));
  }
}

TEST_CASE("typed-field and raw tensors load with their dtype") {
  onnx::TensorProto b;
  b.set_data_type(onnx::TensorProto::BOOL);
  b.add_dims(3);
  for (int v : {1, 0, 1}) b.add_int32_data(v);
  Result<Tensor> tb = tensor_from_proto(b);
  REQUIRE(tb.ok());
  CHECK(tb->dtype() == DType::kBool);
  CHECK(tb->data<bool>()[0]);
  CHECK_FALSE(tb->data<bool>()[1]);

  onnx::TensorProto h;
  h.set_data_type(onnx::TensorProto::FLOAT16);
  h.add_int32_data(0x3c00);  // 1.0 as float16
  Result<Tensor> th = tensor_from_proto(h);
  REQUIRE(th.ok());
  CHECK(th->rank() == 0);
  CHECK(float16_to_float(th->data<Float16>()[0].bits) == 1.0f);

  onnx::TensorProto s;
  s.set_data_type(onnx::TensorProto::STRING);
  s.add_string_data("x");
  CHECK(tensor_from_proto(s).status().code() == Code::kUnsupported);
}

}  // namespace ps::models::cpu::testing
