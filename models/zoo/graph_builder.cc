#include "models/zoo/graph_builder.h"

#include <algorithm>
#include <bit>
#include <utility>

#include <sys/mman.h>

#include "common/status.h"
#include "models/zoo/rng.h"

namespace ps::zoo {
namespace {

int64_t element_count(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

void set_dims(onnx::TensorProto* tensor, const std::vector<int64_t>& dims) {
  for (int64_t d : dims) tensor->add_dims(d);
}

void fill(std::span<float> out, const Init& init, Rng& rng) {
  switch (init.kind) {
    case Init::Kind::kConstant:
      for (float& v : out) v = static_cast<float>(init.a);
      return;
    case Init::Kind::kNormal:
      fill_normal(out, rng, init.a, init.b);
      return;
    case Init::Kind::kTruncatedNormal:
      fill_truncated_normal(out, rng, init.a, init.b);
      return;
    case Init::Kind::kUniform:
      fill_uniform(out, rng, init.a, init.b);
      return;
  }
}

// Asks for transparent huge pages on the 2 MiB-aligned part of a large, still untouched
// buffer: a big model touches hundreds of MB of fresh memory, and one fault per 2 MiB instead
// of per 4 KiB halves the build time where faults are slow (VMs). Only a hint.
void advise_huge_pages(char* data, size_t size) {
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  if (size < 2 * kHuge) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// raw_data holds little-endian values; we copy host floats into it as they are.
static_assert(std::endian::native == std::endian::little, "the zoo writes raw_data from host memory");

// Appends `count` float32 values drawn by `init` to `raw`. Generates through a small buffer that stays in cache and
// appends it, so the (large) destination is written once, never zero-filled first.
void append_values(std::string* raw, int64_t count, const Init& init, uint64_t seed) {
  Rng rng(seed);
  constexpr int64_t kChunk = 8192;
  float chunk[kChunk];
  raw->reserve(static_cast<size_t>(count) * sizeof(float));
  advise_huge_pages(raw->data(), raw->capacity());
  for (int64_t done = 0; done < count; done += kChunk) {
    const int64_t n = std::min(kChunk, count - done);
    fill(std::span<float>(chunk, static_cast<size_t>(n)), init, rng);
    raw->append(reinterpret_cast<const char*>(chunk), static_cast<size_t>(n) * sizeof(float));
  }
}

void set_value_type(onnx::ValueInfoProto* info, onnx::TensorProto::DataType type, const std::vector<Dim>& dims) {
  auto* tensor_type = info->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(type);
  auto* shape = tensor_type->mutable_shape();
  for (const Dim& d : dims) {
    auto* dim = shape->add_dim();
    if (d.param.empty()) {
      dim->set_dim_value(d.value);
    } else {
      dim->set_dim_param(d.param);
    }
  }
}

}  // namespace

onnx::AttributeProto attr_int(const std::string& name, int64_t value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(value);
  return a;
}

onnx::AttributeProto attr_ints(const std::string& name, std::vector<int64_t> values) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a.add_ints(v);
  return a;
}

onnx::AttributeProto attr_float(const std::string& name, float value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(value);
  return a;
}

GraphBuilder::GraphBuilder(onnx::GraphProto* graph, uint64_t seed, bool materialize)
    : graph_(graph), seed_(seed), materialize_(materialize) {
  frames_.push_back(Frame{"", "", ""});
}

GraphBuilder::Scope::~Scope() {
  if (builder_ != nullptr) builder_->leave();
}

GraphBuilder::Scope GraphBuilder::enter(std::string segment, std::string param_prefix) {
  const Frame& parent = frames_.back();
  // A module called again in the same parent gets "_1", "_2"... on its scope, as in the exporter.
  const int calls = scope_calls_[parent.scope + "/" + segment]++;
  std::string scoped = calls == 0 ? segment : str_cat(segment, "_", calls);
  frames_.push_back(Frame{parent.scope + "/" + scoped, std::move(param_prefix), std::move(segment)});
  return Scope(this);
}

void GraphBuilder::leave() {
  PS_CHECK(frames_.size() > 1);
  frames_.pop_back();
}

GraphBuilder::Scope GraphBuilder::module(std::string_view attr) {
  return enter(std::string(attr), param_name(attr));
}

GraphBuilder::Scope GraphBuilder::sequential_item(int index) {
  const Frame& parent = frames_.back();
  PS_CHECK(!parent.segment.empty());
  return enter(str_cat(parent.segment, ".", index), param_name(std::to_string(index)));
}

GraphBuilder::Scope GraphBuilder::list_item(std::string_view list_attr, int index) {
  std::string segment = str_cat(list_attr, ".", index);
  std::string prefix = param_name(segment);
  return enter(std::move(segment), std::move(prefix));
}

std::string GraphBuilder::param_name(std::string_view leaf) const {
  const std::string& prefix = frames_.back().param_prefix;
  return prefix.empty() ? std::string(leaf) : str_cat(prefix, ".", leaf);
}

onnx::TensorProto* GraphBuilder::add_float_initializer(const std::string& name, std::string_view stream,
                                                       std::vector<int64_t> dims, Init init) {
  PS_CHECK(initializer_index_.count(name) == 0);
  initializer_index_[name] = graph_->initializer_size();
  onnx::TensorProto* tensor = graph_->add_initializer();
  tensor->set_name(name);
  tensor->set_data_type(onnx::TensorProto::FLOAT);
  set_dims(tensor, dims);
  if (materialize_) append_values(tensor->mutable_raw_data(), element_count(dims), init, stream_seed(seed_, stream));
  return tensor;
}

std::string GraphBuilder::param(std::string_view leaf, std::vector<int64_t> dims, Init init) {
  std::string name = param_name(leaf);
  trainable_parameters_ += element_count(dims);
  add_float_initializer(name, name, std::move(dims), init);
  return name;
}

std::string GraphBuilder::buffer(std::string_view leaf, std::vector<int64_t> dims, Init init) {
  std::string name = param_name(leaf);
  add_float_initializer(name, name, std::move(dims), init);
  return name;
}

std::string GraphBuilder::int64_buffer(std::string_view leaf, std::vector<int64_t> dims,
                                       std::span<const int64_t> values) {
  std::string name = param_name(leaf);
  PS_CHECK(initializer_index_.count(name) == 0);
  PS_CHECK(static_cast<int64_t>(values.size()) == element_count(dims));
  initializer_index_[name] = graph_->initializer_size();
  onnx::TensorProto* tensor = graph_->add_initializer();
  tensor->set_name(name);
  tensor->set_data_type(onnx::TensorProto::INT64);
  set_dims(tensor, dims);
  tensor->set_raw_data(values.data(), values.size() * sizeof(int64_t));
  return name;
}

std::string GraphBuilder::anonymous_param(std::string_view op_type, const std::string& source,
                                          std::vector<int64_t> dims, Init init) {
  std::string name = str_cat("onnx::", op_type, "_", ++anonymous_count_);
  trainable_parameters_ += element_count(dims);
  onnx::TensorProto* tensor = add_float_initializer(name, source, std::move(dims), init);
  tensor->set_doc_string(str_cat(source, ", transposed to [in_features, out_features]"));
  return name;
}

std::span<float> GraphBuilder::float_data(const std::string& name) {
  auto it = initializer_index_.find(name);
  PS_CHECK(it != initializer_index_.end());
  onnx::TensorProto* tensor = graph_->mutable_initializer(it->second);
  PS_CHECK(tensor->data_type() == onnx::TensorProto::FLOAT);
  std::string* raw = tensor->mutable_raw_data();
  return {reinterpret_cast<float*>(raw->data()), raw->size() / sizeof(float)};
}

std::string GraphBuilder::unique_node_name(std::string_view op_type) {
  std::string base = str_cat(frames_.back().scope, "/", op_type);
  const int uses = node_names_[base]++;
  return uses == 0 ? base : str_cat(base, "_", uses);
}

std::vector<std::string> GraphBuilder::node(std::string_view op_type, std::vector<std::string> inputs, int outputs,
                                            std::vector<onnx::AttributeProto> attrs) {
  onnx::NodeProto* n = graph_->add_node();
  const std::string name = unique_node_name(op_type);
  n->set_name(name);
  n->set_op_type(std::string(op_type));
  for (std::string& in : inputs) n->add_input(std::move(in));
  std::vector<std::string> names;
  for (int k = 0; k < outputs; ++k) {
    names.push_back(str_cat(name, "_output_", k));
    n->add_output(names.back());
  }
  for (onnx::AttributeProto& a : attrs) *n->add_attribute() = std::move(a);
  return names;
}

std::string GraphBuilder::op(std::string_view op_type, std::vector<std::string> inputs,
                             std::vector<onnx::AttributeProto> attrs) {
  return node(op_type, std::move(inputs), 1, std::move(attrs)).front();
}

namespace {
onnx::AttributeProto tensor_attr(onnx::TensorProto value) {
  onnx::AttributeProto a;
  a.set_name("value");
  a.set_type(onnx::AttributeProto::TENSOR);
  *a.mutable_t() = std::move(value);
  return a;
}
}  // namespace

std::string GraphBuilder::constant_float(float value) {
  onnx::TensorProto t;
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.set_raw_data(&value, sizeof value);
  return op("Constant", {}, {tensor_attr(std::move(t))});
}

std::string GraphBuilder::constant_int64(int64_t value) {
  onnx::TensorProto t;
  t.set_data_type(onnx::TensorProto::INT64);
  t.set_raw_data(&value, sizeof value);
  return op("Constant", {}, {tensor_attr(std::move(t))});
}

std::string GraphBuilder::constant_int64s(std::vector<int64_t> values) {
  onnx::TensorProto t;
  t.set_data_type(onnx::TensorProto::INT64);
  t.add_dims(static_cast<int64_t>(values.size()));
  t.set_raw_data(values.data(), values.size() * sizeof(int64_t));
  return op("Constant", {}, {tensor_attr(std::move(t))});
}

void GraphBuilder::add_input(const std::string& name, onnx::TensorProto::DataType type, const std::vector<Dim>& dims) {
  onnx::ValueInfoProto* info = graph_->add_input();
  info->set_name(name);
  set_value_type(info, type, dims);
}

void GraphBuilder::add_output(const std::string& name, onnx::TensorProto::DataType type, const std::vector<Dim>& dims) {
  onnx::ValueInfoProto* info = graph_->add_output();
  info->set_name(name);
  set_value_type(info, type, dims);
}

void GraphBuilder::add_value_info(const std::string& name, onnx::TensorProto::DataType type,
                                  const std::vector<Dim>& dims) {
  onnx::ValueInfoProto* info = graph_->add_value_info();
  info->set_name(name);
  set_value_type(info, type, dims);
}

void GraphBuilder::rename_value(const std::string& from, const std::string& to) {
  for (onnx::NodeProto& n : *graph_->mutable_node()) {
    for (std::string& in : *n.mutable_input()) {
      if (in == from) in = to;
    }
    for (std::string& out : *n.mutable_output()) {
      if (out == from) out = to;
    }
  }
  for (onnx::ValueInfoProto& info : *graph_->mutable_value_info()) {
    if (info.name() == from) info.set_name(to);
  }
}

}  // namespace ps::zoo
