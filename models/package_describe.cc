// Package::describe(): the human summary that `psimport --info` prints.
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/package_reader.h"
#include "onnx_loader/package_validate.h"

namespace ps::models {
namespace {

namespace psm = pipeswitch::psm;

constexpr int kLabelWidth = 13;

// "1.5 KiB", "230.4 MiB"; plain bytes below 1 KiB.
std::string human_bytes(uint64_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024.0;
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", value, kUnits[unit]);
  return buf;
}

// "60,192,808"
std::string with_commas(uint64_t v) {
  std::string digits = std::to_string(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string mode_name(int mode) {
  switch (mode) {
    case psm::Manifest::INFERENCE:
      return "inference";
    case psm::Manifest::TRAINING:
      return "training";
    default:
      return str_cat("mode(", mode, ")");
  }
}

class Lines {
 public:
  void add(std::string_view label, const std::string& text) {
    std::string line(label);
    line.resize(std::max<size_t>(line.size() + 1, kLabelWidth), ' ');
    out_ += line + text + "\n";
  }
  void more(const std::string& text) { out_ += std::string(kLabelWidth, ' ') + text + "\n"; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

void add_tensor_list(Lines& lines, std::string_view label, const psm::Manifest& m,
                     const google::protobuf::RepeatedField<uint32_t>& list) {
  size_t width = 0;
  for (uint32_t i : list) width = std::max(width, m.tensors(static_cast<int>(i)).name().size());
  bool first = true;
  for (uint32_t i : list) {
    const auto& t = m.tensors(static_cast<int>(i));
    std::string name = t.name();
    name.resize(width, ' ');
    const std::string text = str_cat(name, "  ", onnx_loader::psm_dtype_name(t.dtype()), " ",
                                     onnx_loader::psm_shape_string(t));
    if (first) {
      lines.add(label, text);
    } else {
      lines.more(text);
    }
    first = false;
  }
}

}  // namespace

std::string Package::describe() const {
  const psm::Manifest& m = *manifest_;
  Lines lines;
  lines.add("model", m.model_name().empty() ? "(unnamed)" : m.model_name());
  lines.add("producer", m.producer().empty() ? "(unknown)" : m.producer());

  std::string format = str_cat(header_.major, ".", header_.minor, ", opset ", m.opset(), ", mode ",
                               mode_name(m.mode()));
  if (!m.dims().empty()) {
    // A protobuf map has no order; sort for stable output.
    std::vector<std::pair<std::string, int64_t>> dims(m.dims().begin(), m.dims().end());
    std::sort(dims.begin(), dims.end());
    format += ", dims";
    for (const auto& [name, value] : dims) format += str_cat(" ", name, "=", value);
  }
  lines.add("format", format);
  lines.add("file",
            str_cat(path_, " (", human_bytes(header_.weights_offset + header_.weights_size), ")"));
  add_tensor_list(lines, "inputs", m, m.inputs());
  add_tensor_list(lines, "outputs", m, m.outputs());

  std::map<std::string, int> op_counts;
  for (const auto& layer : m.layers()) ++op_counts[layer.op()];
  std::vector<std::pair<std::string, int>> ops(op_counts.begin(), op_counts.end());
  std::stable_sort(ops.begin(), ops.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string op_text = str_cat(m.layers_size(), ":");
  for (size_t i = 0; i < ops.size(); ++i) {
    op_text += str_cat(i == 0 ? " " : ", ", ops[i].first, " ", ops[i].second);
  }
  lines.add("layers", op_text);

  uint64_t trainable = 0, buffers = 0, weight_tensors = 0;
  for (const auto& t : m.tensors()) {
    if (t.kind() != psm::Tensor::WEIGHT) continue;
    ++weight_tensors;
    const uint64_t elements = onnx_loader::checked_element_count(t).value_or(0);
    (t.trainable() ? trainable : buffers) += elements;
  }
  lines.add("parameters",
            str_cat(with_commas(trainable), " trainable",
                    buffers > 0 ? str_cat(" (+ ", with_commas(buffers), " in buffers)") : "",
                    " in ", weight_tensors, " tensors; weights ", human_bytes(m.weights_bytes())));

  uint64_t smallest = UINT64_MAX, largest = 0;
  for (const auto& g : m.groups()) {
    smallest = std::min<uint64_t>(smallest, g.byte_size());
    largest = std::max<uint64_t>(largest, g.byte_size());
  }
  lines.add("groups",
            str_cat(m.groups_size(), " (", m.grouping().empty() ? "unspecified" : m.grouping(),
                    "): smallest ", human_bytes(smallest), ", largest ", human_bytes(largest)));
  lines.add("activations", str_cat("peak ", human_bytes(m.memory_plan().arena_bytes()),
                                   " (arena alignment ", m.memory_plan().alignment(), ")"));
  std::string passes;
  for (const auto& p : m.passes()) passes += (passes.empty() ? "" : ", ") + p;
  lines.add("passes", passes.empty() ? "(none)" : passes);
  return lines.take();
}

}  // namespace ps::models
