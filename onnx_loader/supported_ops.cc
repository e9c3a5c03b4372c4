#include "onnx_loader/supported_ops.h"

#include <algorithm>
#include <array>
#include <string>

namespace ps::onnx_loader {
namespace {

constexpr OpKind kRun = OpKind::kExecuted;
constexpr OpKind kFold = OpKind::kFoldedAtImport;
constexpr int64_t kMax = kMaxSupportedOpset;

// Minimum opsets are where the semantics we implement begin: multidirectional broadcasting (7),
// Slice bounds as inputs (10), MaxPool/AveragePool ceil_mode (8/10), Gemm with optional C (7,
// C optional from 11 is a relaxation), Softmax on one axis instead of a 2-D coercion (13).
// Attribute-to-input moves inside a range (Squeeze/Unsqueeze/Split axes at 13, Reduce* axes at
// 13/18) are handled by reading the input when present and the attribute otherwise.
constexpr std::array kOps = {
    SupportedOp{"", "Abs", 6, kMax, kFold},
    SupportedOp{"", "Add", 7, kMax, kRun},
    SupportedOp{"", "And", 7, kMax, kFold},
    SupportedOp{"", "AveragePool", 10, kMax, kRun},
    SupportedOp{"", "BatchNormalization", 9, kMax, kRun},
    SupportedOp{"", "Cast", 6, kMax, kRun},
    SupportedOp{"", "Ceil", 6, kMax, kFold},
    SupportedOp{"", "Clip", 11, kMax, kRun, 0b110},
    SupportedOp{"", "Concat", 4, kMax, kRun},
    SupportedOp{"", "Constant", 1, kMax, kFold},
    SupportedOp{"", "ConstantOfShape", 9, kMax, kFold},
    SupportedOp{"", "Conv", 1, kMax, kRun},
    SupportedOp{"", "Div", 7, kMax, kRun},
    SupportedOp{"", "Dropout", 7, kMax, kFold},
    SupportedOp{"", "Equal", 7, kMax, kRun},
    SupportedOp{"", "Erf", 9, kMax, kRun},
    SupportedOp{"", "Exp", 6, kMax, kFold},
    SupportedOp{"", "Expand", 8, kMax, kRun, 0b10},
    SupportedOp{"", "Flatten", 1, kMax, kRun},
    SupportedOp{"", "Floor", 6, kMax, kFold},
    SupportedOp{"", "Gather", 1, kMax, kRun},
    SupportedOp{"", "Gemm", 7, kMax, kRun},
    SupportedOp{"", "GlobalAveragePool", 1, kMax, kRun},
    SupportedOp{"", "Greater", 7, kMax, kRun},
    SupportedOp{"", "GreaterOrEqual", 12, kMax, kRun},
    SupportedOp{"", "Identity", 1, kMax, kRun},
    SupportedOp{"", "IsInf", 10, kMax, kFold},
    SupportedOp{"", "IsNaN", 9, kMax, kRun},
    SupportedOp{"", "LayerNormalization", 17, kMax, kRun},
    SupportedOp{"", "Less", 7, kMax, kRun},
    SupportedOp{"", "LessOrEqual", 12, kMax, kRun},
    SupportedOp{"", "Log", 6, kMax, kFold},
    SupportedOp{"", "MatMul", 1, kMax, kRun},
    SupportedOp{"", "MaxPool", 8, kMax, kRun},
    SupportedOp{"", "Mul", 7, kMax, kRun},
    SupportedOp{"", "Neg", 6, kMax, kFold},
    SupportedOp{"", "Not", 1, kMax, kRun},
    SupportedOp{"", "Or", 7, kMax, kFold},
    SupportedOp{"", "Pow", 7, kMax, kRun},
    SupportedOp{"", "Range", 11, kMax, kFold},
    SupportedOp{"", "Reciprocal", 6, kMax, kFold},
    SupportedOp{"", "ReduceMax", 1, kMax, kFold},
    SupportedOp{"", "ReduceMean", 1, kMax, kRun, 0b10},
    SupportedOp{"", "ReduceMin", 1, kMax, kFold},
    SupportedOp{"", "ReduceProd", 1, kMax, kFold},
    SupportedOp{"", "ReduceSum", 1, kMax, kFold},
    SupportedOp{"", "Relu", 6, kMax, kRun},
    SupportedOp{"", "Reshape", 5, kMax, kRun, 0b10},
    SupportedOp{"", "Shape", 1, kMax, kFold},
    SupportedOp{"", "Sigmoid", 6, kMax, kRun},
    SupportedOp{"", "Size", 1, kMax, kFold},
    SupportedOp{"", "Slice", 10, kMax, kRun, 0b11110},
    SupportedOp{"", "Softmax", 13, kMax, kRun},
    SupportedOp{"", "Split", 2, kMax, kRun, 0b10},
    SupportedOp{"", "Sqrt", 6, kMax, kRun},
    SupportedOp{"", "Squeeze", 1, kMax, kRun, 0b10},
    SupportedOp{"", "Sub", 7, kMax, kRun},
    SupportedOp{"", "Tanh", 6, kMax, kRun},
    SupportedOp{"", "Transpose", 1, kMax, kRun},
    SupportedOp{"", "Unsqueeze", 1, kMax, kRun, 0b10},
    SupportedOp{"", "Where", 9, kMax, kRun},
    SupportedOp{"", "Xor", 7, kMax, kFold},
};

std::string_view normal_domain(std::string_view domain) {
  return domain == "ai.onnx" ? std::string_view() : domain;
}

std::string op_label(const Node& node) {
  return node.domain.empty() ? node.op : str_cat(node.domain, "::", node.op);
}

// Collects offending nodes and renders them as one error.
class Problems {
 public:
  void add(std::string line) { lines_.push_back(std::move(line)); }
  Status to_status(std::string_view what) const {
    if (lines_.empty()) return Status::OK();
    std::string message = str_cat(lines_.size(), " ", what, ":");
    for (const std::string& line : lines_) message += "\n  " + line;
    return unsupported(message);
  }

 private:
  std::vector<std::string> lines_;
};

}  // namespace

std::span<const SupportedOp> supported_ops() { return kOps; }

const SupportedOp* find_supported_op(std::string_view domain, std::string_view op_type,
                                     int64_t opset) {
  domain = normal_domain(domain);
  for (const SupportedOp& op : kOps) {
    if (op.op_type == op_type && op.domain == domain) {
      return opset >= op.min_opset && opset <= op.max_opset ? &op : nullptr;
    }
  }
  return nullptr;
}

Status check_supported(const Graph& graph) {
  Problems problems;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    if (node.dead || find_supported_op(node.domain, node.op, graph.opset)) continue;
    std::string line = describe_node(graph, static_cast<int>(i));
    if (!node.domain.empty()) {
      line += str_cat(": domain '", node.domain, "' is not supported");
    } else {
      auto it = std::find_if(kOps.begin(), kOps.end(),
                             [&](const SupportedOp& op) { return op.op_type == node.op; });
      if (it != kOps.end()) {
        line += str_cat(": supported for opsets ", it->min_opset, "..", it->max_opset,
                        ", the model has ", graph.opset);
      }
    }
    problems.add(std::move(line));
  }
  return problems.to_status(
      str_cat("unsupported node(s) in graph '", graph.name, "' (opset ", graph.opset, ")"));
}

Status check_executable(const Graph& graph) {
  Problems problems;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    if (node.dead) continue;
    const SupportedOp* op = find_supported_op(node.domain, node.op, graph.opset);
    if (op == nullptr) continue;  // a fused op made by a pass
    const std::string label = describe_node(graph, static_cast<int>(i));
    if (op->kind == OpKind::kFoldedAtImport) {
      problems.add(str_cat(label, ": ", op_label(node),
                           " is only supported on inputs known at import time"));
      continue;
    }
    for (size_t k = 0; k < node.inputs.size() && k < 32; ++k) {
      const int v = node.inputs[k];
      if ((op->static_inputs >> k & 1u) && v >= 0 && !graph.values[v].constant) {
        problems.add(str_cat(label, ": input ", k, " '", graph.values[v].name,
                             "' must be a constant known at import time"));
      }
    }
  }
  return problems.to_status("node(s) that the executor cannot run");
}

}  // namespace ps::onnx_loader
