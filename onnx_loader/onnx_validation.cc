#include "onnx_loader/onnx_validation.h"

#include <onnx/checker.h>
#include <onnx/common/version.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <unordered_map>

#include "onnx_loader/tensor_data.h"

namespace ps::onnx_loader {
namespace {

// Initializers up to this size travel with their data (shape tensors, axes, small biases:
// what data propagation may read); larger ones become typed inputs.
constexpr size_t kLightInitializerBytes = 64 << 10;

void add_typed_input(onnx::GraphProto* g, const Value& value) {
  onnx::ValueInfoProto* input = g->add_input();
  input->set_name(value.name);
  auto* type = input->mutable_type()->mutable_tensor_type();
  type->set_elem_type(dtype_to_onnx(value.dtype));
  auto* shape = type->mutable_shape();
  for (int64_t dim : *value.shape) shape->add_dim()->set_dim_value(dim);
}

// Builds the copy libonnx looks at: the model's nodes and outputs, our fixed input shapes,
// small initializers with their data (from the graph: the model's may be external or already
// released), large ones as typed inputs.
onnx::ModelProto light_copy(const onnx::ModelProto& model, const Graph& graph,
                            const std::unordered_map<std::string, int>& value_of) {
  onnx::ModelProto light;
  // IR versions after 8 add types (float8, int4) and function features that no model we
  // accept uses; libonnx 1.12 refuses them outright, so the copy claims the version it knows.
  light.set_ir_version(std::min<int64_t>(model.ir_version(), onnx::IR_VERSION));
  auto* opset = light.add_opset_import();
  opset->set_domain("");
  opset->set_version(graph.opset);
  onnx::GraphProto* g = light.mutable_graph();
  g->set_name(model.graph().name());
  *g->mutable_node() = model.graph().node();
  *g->mutable_output() = model.graph().output();
  // libonnx's checker wants every graph output typed and shaped; we do not insist, and give
  // it ours where the model is silent (its inference must then agree with them).
  for (int i = 0; i < g->output_size(); ++i) {
    const Value& ours = graph.values[graph.outputs[i]];
    auto* type = g->mutable_output(i)->mutable_type()->mutable_tensor_type();
    if (type->elem_type() == 0) type->set_elem_type(dtype_to_onnx(ours.dtype));
    if (!type->has_shape()) {
      auto* shape = type->mutable_shape();
      for (int64_t dim : *ours.shape) shape->add_dim()->set_dim_value(dim);
    }
  }
  for (int v : graph.inputs) add_typed_input(g, graph.values[v]);
  for (const onnx::TensorProto& init : model.graph().initializer()) {
    const Value& value = graph.values[value_of.at(init.name())];
    if (value.constant && value.constant->bytes.size() <= kLightInitializerBytes) {
      onnx::TensorProto* t = g->add_initializer();
      t->set_name(value.name);
      tensor_to_onnx(*value.constant, t);
      if (light.ir_version() < 4) add_typed_input(g, value);  // IR < 4: initializers are inputs
    } else {
      add_typed_input(g, value);
    }
  }
  return light;
}

// Compares what libonnx inferred for one value with ours.
Status compare(const onnx::ValueInfoProto& info, const Graph& graph,
               const std::unordered_map<std::string, int>& value_of) {
  auto it = value_of.find(info.name());
  if (it == value_of.end() || !info.type().has_tensor_type()) return Status::OK();
  const Value& ours = graph.values[it->second];
  const auto& type = info.type().tensor_type();
  if (type.elem_type() != 0 && type.elem_type() != dtype_to_onnx(ours.dtype)) {
    return internal_error("shape inference disagrees with libonnx on the type of '", info.name(),
                          "': ours ", dtype_name(ours.dtype), ", libonnx's ONNX type ",
                          type.elem_type());
  }
  if (!type.has_shape() || !ours.shape) return Status::OK();
  Shape theirs;
  for (const auto& dim : type.shape().dim()) {
    if (!dim.has_dim_value()) return Status::OK();  // not fully known to libonnx
    theirs.push_back(dim.dim_value());
  }
  if (theirs != *ours.shape) {
    return internal_error("shape inference disagrees with libonnx on the shape of '", info.name(),
                          "': ours ", shape_string(*ours.shape), ", libonnx ",
                          shape_string(theirs));
  }
  return Status::OK();
}

}  // namespace

int64_t libonnx_max_opset() {
  // Computed once, in a static of this file. libonnx fills its operator registry and opset map
  // lazily, in statics of its own, on first use; several loader threads import at once (one
  // per device). The static here makes the first use happen once, before any thread reads the
  // map, with an ordering ThreadSanitizer can see (libonnx is not instrumented: its statics'
  // fast-path guard loads are invisible to it, and it reported the map's reads as races).
  static const int64_t known = [] {
    (void)onnx::OpSchemaRegistry::Instance();
    const auto& ranges = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
    auto it = ranges.find("");
    return it == ranges.end() ? int64_t{0} : int64_t{it->second.second};
  }();
  return known;
}

Status check_with_libonnx(const onnx::ModelProto& model, const Graph& graph, bool* ran,
                          std::string* note) {
  *ran = false;
  const int64_t known = libonnx_max_opset();
  if (graph.opset > known) {
    *note = str_cat("libonnx ", ONNX_NAMESPACE::LAST_RELEASE_VERSION, " knows opsets up to ", known,
                    " and the model has opset ", graph.opset,
                    ": checked by our own shape inference only");
    return Status::OK();
  }
  std::unordered_map<std::string, int> value_of;
  for (size_t v = 0; v < graph.values.size(); ++v) {
    value_of.emplace(graph.values[v].name, static_cast<int>(v));
  }
  onnx::ModelProto light = light_copy(model, graph, value_of);

  // libonnx's checker and shape inference are not safe to run on two threads at once (its
  // schema registry fills lazily: ThreadSanitizer saw OpSchema::Verify read what another
  // thread's check was writing when a multi-device server's loaders imported models
  // together), so one check runs at a time in the process.
  static std::mutex libonnx_mutex;
  const std::lock_guard<std::mutex> lock(libonnx_mutex);
  // libonnx reports problems by throwing; nothing may escape this function.
  try {
    onnx::checker::CheckerContext ctx;
    ctx.set_ir_version(static_cast<int>(light.ir_version()));
    ctx.set_opset_imports({{"", static_cast<int>(graph.opset)}});
    onnx::checker::LexicalScopeContext scope;
    onnx::checker::check_graph(light.graph(), ctx, scope);
  } catch (const std::exception& e) {
    return invalid_argument("libonnx checker: ", e.what());
  }
  try {
    const onnx::ShapeInferenceOptions options(/*check_type=*/true, /*error_mode=*/1,
                                              /*enable_data_propagation=*/true);
    onnx::shape_inference::InferShapes(light, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    return invalid_argument("libonnx shape inference: ", e.what());
  }
  *ran = true;
  for (const auto& info : light.graph().value_info()) PS_TRY(compare(info, graph, value_of));
  for (const auto& info : light.graph().output()) PS_TRY(compare(info, graph, value_of));
  return Status::OK();
}

}  // namespace ps::onnx_loader
