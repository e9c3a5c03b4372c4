#include "tests/models/cpu_ops_onnx_data.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace ps::models::cpu::testing {

namespace fs = std::filesystem;
namespace psm = pipeswitch::psm;

namespace {

Result<std::string> read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return io_error("cannot open ", file.string());
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return io_error("cannot read ", file.string());
  return bytes.str();
}

// Copies typed-field values into the tensor, converting each to the element type.
template <typename T, typename Field>
void copy_field(const Field& field, Tensor& t) {
  T* out = t.mutable_data<T>();
  for (int i = 0; i < field.size(); ++i) {
    if constexpr (std::is_same_v<T, bool>) {
      out[i] = field.Get(i) != 0;
    } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
      out[i] = T{static_cast<uint16_t>(field.Get(i))};  // the bit pattern, in int32_data
    } else {
      out[i] = static_cast<T>(field.Get(i));
    }
  }
}

std::string value_string(const Tensor& t, int64_t i) {
  std::ostringstream s;
  switch (t.dtype()) {
    case DType::kFloat32:
      s << t.data<float>()[i];
      break;
    case DType::kFloat64:
      s << t.data<double>()[i];
      break;
    case DType::kFloat16:
      s << float16_to_float(t.data<Float16>()[i].bits);
      break;
    case DType::kBFloat16:
      s << bfloat16_to_float(t.data<BFloat16>()[i].bits);
      break;
    case DType::kInt64:
      s << t.data<int64_t>()[i];
      break;
    case DType::kInt32:
      s << t.data<int32_t>()[i];
      break;
    case DType::kInt8:
      s << static_cast<int>(t.data<int8_t>()[i]);
      break;
    case DType::kUInt8:
      s << static_cast<int>(t.data<uint8_t>()[i]);
      break;
    case DType::kBool:
      s << (t.data<bool>()[i] ? "true" : "false");
      break;
    case DType::kUndefined:
      s << "?";
      break;
  }
  return s.str();
}

double float_value(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kFloat32:
      return t.data<float>()[i];
    case DType::kFloat64:
      return t.data<double>()[i];
    case DType::kFloat16:
      return float16_to_float(t.data<Float16>()[i].bits);
    case DType::kBFloat16:
      return bfloat16_to_float(t.data<BFloat16>()[i].bits);
    default:
      break;
  }
  return 0;
}

// "" when equal (within tolerance for floats, exactly otherwise); else a description.
std::string compare(const Tensor& actual, const Tensor& expected, const Tolerance& tol) {
  if (actual.dtype() != expected.dtype() || actual.shape() != expected.shape()) {
    return str_cat("got ", actual.description(), ", expected ", expected.description());
  }
  int64_t mismatches = 0;
  int64_t first = -1;
  const bool floating = is_floating(expected.dtype());
  const size_t esize = dtype_size(expected.dtype());
  const auto* a_bytes = static_cast<const std::byte*>(actual.raw());
  const auto* e_bytes = static_cast<const std::byte*>(expected.raw());
  for (int64_t i = 0; i < expected.numel(); ++i) {
    bool ok;
    if (floating) {
      const double a = float_value(actual, i);
      const double e = float_value(expected, i);
      if (std::isnan(e) || std::isnan(a)) {
        ok = std::isnan(e) && std::isnan(a);
      } else if (std::isinf(e)) {
        ok = a == e;
      } else {
        ok = std::fabs(a - e) <= tol.atol + tol.rtol * std::fabs(e);
      }
    } else {
      ok = std::memcmp(a_bytes + i * esize, e_bytes + i * esize, esize) == 0;
    }
    if (!ok) {
      if (first < 0) first = i;
      ++mismatches;
    }
  }
  if (mismatches == 0) return "";
  return str_cat(mismatches, " of ", expected.numel(), " elements differ; first at ", first,
                 ": got ", value_string(actual, first), ", expected ",
                 value_string(expected, first));
}

// The files name_0.pb, name_1.pb, ... that exist in dir, in order.
std::vector<fs::path> numbered_files(const fs::path& dir, const std::string& name) {
  std::vector<fs::path> files;
  for (int i = 0;; ++i) {
    fs::path p = dir / (name + "_" + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    files.push_back(std::move(p));
  }
  return files;
}

}  // namespace

Result<Tensor> tensor_from_proto(const onnx::TensorProto& proto) {
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    return unsupported("tensor '", proto.name(), "' has external data");
  }
  PS_ASSIGN_OR_RETURN(const DType dtype, dtype_from_onnx(proto.data_type()));
  Shape shape(proto.dims().begin(), proto.dims().end());
  for (int64_t d : shape) {
    if (d < 0) return corrupt("tensor '", proto.name(), "' has dims ", shape_string(shape));
  }
  PS_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(dtype, std::move(shape)));
  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != t.byte_size()) {
      return corrupt("tensor '", proto.name(), "' ", t.description(), " has ",
                     proto.raw_data().size(), " bytes of raw data, expected ", t.byte_size());
    }
    if (t.byte_size() > 0) std::memcpy(t.mutable_raw(), proto.raw_data().data(), t.byte_size());
    if (dtype == DType::kBool) {  // normalise to 0/1, the only valid bool representations
      auto* b = static_cast<uint8_t*>(t.mutable_raw());
      for (int64_t i = 0; i < t.numel(); ++i) b[i] = b[i] != 0;
    }
    return t;
  }
  int64_t count = 0;
  switch (dtype) {
    case DType::kFloat32:
      count = proto.float_data_size();
      break;
    case DType::kFloat64:
      count = proto.double_data_size();
      break;
    case DType::kInt64:
      count = proto.int64_data_size();
      break;
    default:
      count = proto.int32_data_size();
      break;
  }
  if (count != t.numel()) {
    return corrupt("tensor '", proto.name(), "' ", t.description(), " has ", count,
                   " values, expected ", t.numel());
  }
  switch (dtype) {
    case DType::kFloat32:
      copy_field<float>(proto.float_data(), t);
      break;
    case DType::kFloat64:
      copy_field<double>(proto.double_data(), t);
      break;
    case DType::kInt64:
      copy_field<int64_t>(proto.int64_data(), t);
      break;
    case DType::kInt32:
      copy_field<int32_t>(proto.int32_data(), t);
      break;
    case DType::kInt8:
      copy_field<int8_t>(proto.int32_data(), t);
      break;
    case DType::kUInt8:
      copy_field<uint8_t>(proto.int32_data(), t);
      break;
    case DType::kBool:
      copy_field<bool>(proto.int32_data(), t);
      break;
    case DType::kFloat16:
      copy_field<Float16>(proto.int32_data(), t);
      break;
    case DType::kBFloat16:
      copy_field<BFloat16>(proto.int32_data(), t);
      break;
    case DType::kUndefined:
      break;
  }
  return t;
}

Result<Tensor> load_tensor_file(const fs::path& file, int32_t declared_type) {
  PS_ASSIGN_OR_RETURN(const std::string bytes, read_file(file));
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) {
    return corrupt(file.string(), ": not a serialized onnx.TensorProto");
  }
  if (declared_type == onnx::TensorProto::BFLOAT16 &&
      proto.data_type() == onnx::TensorProto::UINT16) {
    proto.set_data_type(onnx::TensorProto::BFLOAT16);
  }
  Result<Tensor> t = tensor_from_proto(proto);
  if (!t.ok()) return t.status().with_context(file.string());
  return t;
}

Result<Attributes> convert_attributes(const onnx::NodeProto& node) {
  Attributes attrs;
  for (const onnx::AttributeProto& a : node.attribute()) {
    psm::Attribute* out = attrs.Add();
    out->set_name(a.name());
    switch (a.type()) {
      case onnx::AttributeProto::INT:
        out->set_i(a.i());
        break;
      case onnx::AttributeProto::FLOAT:
        out->set_f(a.f());
        break;
      case onnx::AttributeProto::STRING:
        out->set_s(a.s());
        break;
      case onnx::AttributeProto::INTS:
        out->mutable_ints()->mutable_values()->Add(a.ints().begin(), a.ints().end());
        break;
      case onnx::AttributeProto::FLOATS:
        out->mutable_floats()->mutable_values()->Add(a.floats().begin(), a.floats().end());
        break;
      case onnx::AttributeProto::TENSOR: {
        Result<Tensor> t = tensor_from_proto(a.t());
        if (!t.ok()) return t.status().with_context(str_cat("attribute '", a.name(), "'"));
        if (t->numel() != 1) {
          return unsupported("attribute '", a.name(), "' is a tensor of ", t->numel(),
                             " elements (only one-element tensors map to a manifest attribute)");
        }
        if (t->dtype() == DType::kFloat32) {
          out->set_f(t->data<float>()[0]);
        } else if (t->dtype() == DType::kFloat64) {
          out->set_f(static_cast<float>(t->data<double>()[0]));
        } else if (t->dtype() == DType::kInt64) {
          out->set_i(t->data<int64_t>()[0]);
        } else if (t->dtype() == DType::kInt32) {
          out->set_i(t->data<int32_t>()[0]);
        } else {
          return unsupported("attribute '", a.name(), "' is a ", t->description(),
                             " tensor (only float and int values map to a manifest attribute)");
        }
        break;
      }
      default:
        return unsupported("attribute '", a.name(), "' has ONNX attribute type ",
                           static_cast<int>(a.type()),
                           " (graphs, strings lists, sparse tensors "
                           "and type protos have no manifest form)");
    }
  }
  return attrs;
}

namespace {

// A Constant node's value as a tensor; Unsupported for sparse and string values.
Result<Tensor> constant_value(const onnx::NodeProto& node) {
  if (node.attribute_size() != 1) {
    return corrupt("Constant node '", node.name(), "' has ", node.attribute_size(), " attributes");
  }
  const onnx::AttributeProto& a = node.attribute(0);
  if (a.name() == "value") return tensor_from_proto(a.t());
  if (a.name() == "value_float") return Tensor::from_values<float>({}, {a.f()});
  if (a.name() == "value_int") return Tensor::from_values<int64_t>({}, {a.i()});
  if (a.name() == "value_floats") {
    return Tensor::from_values<float>({a.floats_size()},
                                      std::span<const float>(a.floats().data(), a.floats_size()));
  }
  if (a.name() == "value_ints") {
    std::vector<int64_t> v(a.ints().begin(), a.ints().end());
    return Tensor::from_values<int64_t>({a.ints_size()}, std::span<const int64_t>(v));
  }
  return unsupported("Constant attribute '", a.name(), "'");
}

// What the op list of a graph allows: "" when every node can run here, else why not.
std::string unsupported_reason(const onnx::GraphProto& graph) {
  for (const onnx::NodeProto& node : graph.node()) {
    if (!node.domain().empty() && node.domain() != "ai.onnx") return "domain " + node.domain();
  }
  for (const onnx::NodeProto& node : graph.node()) {
    const bool constant = node.op_type() == "Constant" && graph.node_size() > 1;
    if (!constant && !is_supported(node.op_type())) return "unsupported op " + node.op_type();
  }
  return "";
}

}  // namespace

Result<CaseResult> run_case(const fs::path& dir, const ToleranceFor& tolerance_for,
                            const NodeRunner& runner) {
  using Outcome = CaseResult::Outcome;
  CaseResult result;
  result.name = dir.filename().string();
  const fs::path model_file = dir / "model.onnx";
  PS_ASSIGN_OR_RETURN(const std::string model_bytes, read_file(model_file));
  onnx::ModelProto model;
  if (!model.ParseFromString(model_bytes) || !model.has_graph()) {
    return corrupt(model_file.string(), ": not a serialized onnx.ModelProto with a graph");
  }
  const onnx::GraphProto& graph = model.graph();
  if (graph.node_size() == 0) return corrupt(model_file.string(), ": the graph has no node");
  const bool single = graph.node_size() == 1;
  result.op = single ? graph.node(0).op_type() : std::string(kGraphLabel);
  result.detail = unsupported_reason(graph);
  if (!result.detail.empty()) return result;  // kNotApplicable
  if (runner && !single) {
    result.detail = "a multi-node graph (the node runner runs single nodes)";
    return result;  // kNotApplicable
  }

  auto skip = [&](std::string why) {
    result.outcome = Outcome::kSkipped;
    result.detail = std::move(why);
    return result;
  };
  std::vector<Attributes> node_attrs;
  for (const onnx::NodeProto& node : graph.node()) {
    if (node.op_type() == "Constant" && !single) {
      node_attrs.emplace_back();
      continue;
    }
    Result<Attributes> attrs = convert_attributes(node);
    if (!attrs.ok()) return skip(attrs.status().message());
    node_attrs.push_back(std::move(attrs).value());
  }
  for (const onnx::ValueInfoProto& v : graph.input()) {
    if (!v.type().has_tensor_type()) return skip(str_cat("input '", v.name(), "' is not a tensor"));
  }
  for (const onnx::ValueInfoProto& v : graph.output()) {
    if (!v.type().has_tensor_type())
      return skip(str_cat("output '", v.name(), "' is not a tensor"));
  }
  std::map<std::string, Tensor> initializers;
  for (const onnx::TensorProto& init : graph.initializer()) {
    Result<Tensor> t = tensor_from_proto(init);
    if (!t.ok()) return skip(t.status().message());
    initializers.emplace(init.name(), std::move(t).value());
  }

  std::vector<fs::path> data_sets;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
      data_sets.push_back(e.path());
    }
  }
  std::sort(data_sets.begin(), data_sets.end());
  if (data_sets.empty()) return corrupt(dir.string(), ": no test_data_set_* directory");

  auto fail = [&](const fs::path& set, const std::string& why) {
    result.outcome = Outcome::kFailed;
    result.detail = set.filename().string() + ": " + why;
    return result;
  };
  result.outcome = Outcome::kPassed;
  result.detail.clear();
  for (const fs::path& set : data_sets) {
    const std::vector<fs::path> input_files = numbered_files(set, "input");
    const std::vector<fs::path> output_files = numbered_files(set, "output");
    if (input_files.size() > static_cast<size_t>(graph.input_size()) ||
        output_files.size() != static_cast<size_t>(graph.output_size())) {
      return corrupt(set.string(), ": ", input_files.size(), " inputs and ", output_files.size(),
                     " outputs for a graph with ", graph.input_size(), " and ",
                     graph.output_size());
    }
    // Every value by name: initializers, then graph inputs, then what the nodes compute.
    std::map<std::string, Tensor> values;
    for (const auto& [name, t] : initializers) values.emplace(name, t.view());
    for (size_t i = 0; i < input_files.size(); ++i) {
      const onnx::ValueInfoProto& info = graph.input(static_cast<int>(i));
      Result<Tensor> t = load_tensor_file(input_files[i], info.type().tensor_type().elem_type());
      if (!t.ok() && t.status().code() == Code::kUnsupported) return skip(t.status().message());
      PS_TRY(t.status());
      values.insert_or_assign(info.name(), std::move(t).value());
    }
    std::vector<Tensor> expected;
    for (size_t j = 0; j < output_files.size(); ++j) {
      const onnx::ValueInfoProto& info = graph.output(static_cast<int>(j));
      Result<Tensor> t = load_tensor_file(output_files[j], info.type().tensor_type().elem_type());
      if (!t.ok() && t.status().code() == Code::kUnsupported) return skip(t.status().message());
      PS_TRY(t.status());
      expected.push_back(std::move(t).value());
    }
    const Tolerance tolerance = tolerance_for(result.op);

    for (int n = 0; n < graph.node_size(); ++n) {
      const onnx::NodeProto& node = graph.node(n);
      const std::string where = single ? "" : str_cat("node ", n, " (", node.op_type(), "): ");
      if (node.op_type() == "Constant" && !single) {
        Result<Tensor> t = constant_value(node);
        if (!t.ok()) return skip(where + t.status().message());
        values.insert_or_assign(node.output(0), std::move(t).value());
        continue;
      }
      std::vector<const Tensor*> inputs;
      for (const std::string& name : node.input()) {
        auto it = values.find(name);
        if (name.empty()) {
          inputs.push_back(nullptr);
        } else if (it != values.end()) {
          inputs.push_back(&it->second);
        } else {
          return corrupt(set.string(), ": ", where, "no value for input '", name, "'");
        }
      }
      if (single) {
        // Preallocated outputs with the expected shapes, as the executor calls run_op.
        std::vector<Tensor> actual(static_cast<size_t>(node.output_size()));
        std::vector<Tensor*> outputs;
        for (int k = 0; k < node.output_size(); ++k) {
          const std::string& name = node.output(k);
          int j = 0;
          while (j < graph.output_size() && graph.output(j).name() != name) ++j;
          if (name.empty()) {
            outputs.push_back(nullptr);
            continue;
          }
          if (j == graph.output_size()) {
            return skip(str_cat("node output '", name, "' is not a graph output"));
          }
          const Tensor& e = expected[static_cast<size_t>(j)];
          PS_ASSIGN_OR_RETURN(actual[k], Tensor::allocate(e.dtype(), e.shape()));
          outputs.push_back(&actual[k]);
        }
        const Status status = runner ? runner(node.op_type(), node_attrs[n], inputs, outputs)
                                     : run_op(node.op_type(), node_attrs[n], inputs, outputs);
        if (runner && status.code() == Code::kUnsupported) return skip(status.message());
        if (!status.ok()) return fail(set, status.to_string());
        for (int k = 0; k < node.output_size(); ++k) {
          if (outputs[k] != nullptr) values.insert_or_assign(node.output(k), std::move(actual[k]));
        }
        if (runner) continue;
        // run_op_allocating must pick the same shapes and compute the same bits.
        Result<std::vector<Tensor>> allocated = run_op_allocating(
            node.op_type(), node_attrs[n], inputs, static_cast<size_t>(node.output_size()));
        if (!allocated.ok())
          return fail(set, "run_op_allocating: " + allocated.status().to_string());
        for (int k = 0; k < node.output_size(); ++k) {
          if (node.output(k).empty()) continue;
          // A ConstantOfShape value attribute holds only an int or a float in the manifest, so
          // allocation can only give int64 or float32 (run_op takes the dtype of the output).
          const DType want = values.at(node.output(k)).dtype();
          if (node.op_type() == "ConstantOfShape" && want != DType::kInt64 &&
              want != DType::kFloat32) {
            continue;
          }
          const std::string diff =
              compare((*allocated)[k], values.at(node.output(k)), Tolerance{0, 0});
          if (!diff.empty()) {
            return fail(set,
                        str_cat("run_op_allocating output ", k, " differs from run_op: ", diff));
          }
        }
      } else {
        Result<std::vector<Tensor>> computed = run_op_allocating(
            node.op_type(), node_attrs[n], inputs, static_cast<size_t>(node.output_size()));
        if (!computed.ok()) return fail(set, where + computed.status().to_string());
        for (int k = 0; k < node.output_size(); ++k) {
          if (!node.output(k).empty()) {
            values.insert_or_assign(node.output(k), std::move((*computed)[k]));
          }
        }
      }
    }
    for (int j = 0; j < graph.output_size(); ++j) {
      const std::string& name = graph.output(j).name();
      auto it = values.find(name);
      if (it == values.end()) return fail(set, str_cat("output '", name, "' was not computed"));
      const std::string diff = compare(it->second, expected[static_cast<size_t>(j)], tolerance);
      if (!diff.empty()) return fail(set, str_cat("output ", j, " ('", name, "'): ", diff));
    }
  }
  return result;
}

Result<std::vector<fs::path>> list_cases(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return not_found("ONNX node test data directory ", root.string(),
                     " does not exist or is not a directory (install libonnx-testdata or set "
                     "PS_ONNX_TESTDATA)");
  }
  std::vector<fs::path> cases;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    if (e.is_directory() && fs::exists(e.path() / "model.onnx")) cases.push_back(e.path());
  }
  if (ec) return io_error("cannot list ", root.string(), ": ", ec.message());
  std::sort(cases.begin(), cases.end());
  return cases;
}

OpCounts print_conformance_table(const std::string& title,
                                 const std::map<std::string, OpCounts>& per_op,
                                 const std::vector<std::string>& skips) {
  OpCounts total;
  std::printf("%s\n", title.c_str());
  std::printf("  %-22s %7s %7s %8s\n", "op", "passed", "failed", "skipped");
  for (const auto& [op, c] : per_op) {
    std::printf("  %-22s %7d %7d %8d\n", op.c_str(), c.passed, c.failed, c.skipped);
    total.passed += c.passed;
    total.failed += c.failed;
    total.skipped += c.skipped;
  }
  std::printf("  %-22s %7d %7d %8d\n", "total", total.passed, total.failed, total.skipped);
  std::printf("Skipped cases and why:\n");
  for (const std::string& s : skips) std::printf("  %s\n", s.c_str());
  return total;
}

}  // namespace ps::models::cpu::testing
