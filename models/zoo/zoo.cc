#include "models/zoo/zoo.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>

#include "models/zoo/builders.h"

namespace ps::zoo {
namespace {

constexpr int kMinOpset = 13;
constexpr int kMaxOpset = 17;
// libonnx 1.12's IR version, what PyTorch's exporter writes with the same onnx.
constexpr int64_t kIrVersion = 8;

struct Entry {
  const char* name;
  const char* description;
  std::function<void(GraphBuilder&, const ZooOptions&)> build;
};

ResNetConfig resnet(bool bottleneck, std::array<int, 4> blocks) {
  ResNetConfig c;
  c.bottleneck = bottleneck;
  c.blocks = blocks;
  return c;
}

ResNetConfig resnet_tiny() {
  ResNetConfig c;
  c.blocks = {2, 1, 1, 1};
  c.width = 8;
  c.image_size = 32;
  return c;
}

InceptionConfig inception_tiny() {
  using K = InceptionConfig::Kind;
  InceptionConfig c;
  c.divisor = 8;
  c.blocks = {{"Mixed_5b", K::kA, 32}, {"Mixed_6a", K::kB, 0}, {"Mixed_6b", K::kC, 128},
              {"Mixed_7a", K::kD, 0},  {"Mixed_7b", K::kE, 0}};
  c.image_size = 75;  // the smallest input Inception v3's stride-2 stages accept
  return c;
}

BertConfig bert_tiny() {
  BertConfig c;
  c.vocab_size = 100;
  c.hidden = 32;
  c.layers = 2;
  c.heads = 2;
  c.intermediate = 128;
  return c;
}

// A BERT model's training graph is BertForSequenceClassification with Hugging Face's default
// two labels (fine-tuning needs a classifier); the inference graph is BertModel.
BertConfig bert_config(BertConfig c, const ZooOptions& options) {
  if (options.training_graph) c.num_labels = 2;
  return c;
}

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {"resnet18", "torchvision resnet18: BasicBlock [2,2,2,2], 224x224 input, 1000 classes",
       [](GraphBuilder& b, const ZooOptions&) { build_resnet(resnet(false, {2, 2, 2, 2}), b); }},
      {"resnet50", "torchvision resnet50 (v1.5): Bottleneck [3,4,6,3], 224x224 input, 1000 classes",
       [](GraphBuilder& b, const ZooOptions&) { build_resnet(resnet(true, {3, 4, 6, 3}), b); }},
      {"resnet152", "torchvision resnet152 (v1.5): Bottleneck [3,8,36,3], 224x224 input, 1000 classes",
       [](GraphBuilder& b, const ZooOptions&) { build_resnet(resnet(true, {3, 8, 36, 3}), b); }},
      {"inception_v3",
       "torchvision inception_v3 in eval mode (no auxiliary head, transform_input=False), 299x299 input, "
       "1000 classes",
       [](GraphBuilder& b, const ZooOptions&) { build_inception(inception_v3_config(), b); }},
      {"bert_base",
       "Hugging Face BertModel, bert-base-cased: 12 layers, hidden 768, 12 heads, vocab 28996; outputs "
       "last_hidden_state and pooler_output",
       [](GraphBuilder& b, const ZooOptions& o) { build_bert(bert_config(BertConfig{}, o), o.opset, b); }},
      {"resnet_tiny", "tiny ResNet for tests: BasicBlock [2,1,1,1], widths 8..64, 32x32 input, 1000 classes",
       [](GraphBuilder& b, const ZooOptions&) { build_resnet(resnet_tiny(), b); }},
      {"inception_tiny",
       "tiny Inception v3 for tests: the stem and one block of each kind A-E, channels / 8, 75x75 input, "
       "1000 classes",
       [](GraphBuilder& b, const ZooOptions&) { build_inception(inception_tiny(), b); }},
      {"bert_tiny", "tiny BertModel for tests: 2 layers, hidden 32, 2 heads, intermediate 128, vocab 100",
       [](GraphBuilder& b, const ZooOptions& o) { build_bert(bert_config(bert_tiny(), o), o.opset, b); }},
  };
  return table;
}

Result<const Entry*> find(const std::string& name) {
  for (const Entry& e : entries()) {
    if (name == e.name) return &e;
  }
  std::string known;
  for (const Entry& e : entries()) known += str_cat(known.empty() ? "" : " ", e.name);
  return not_found("zoo: no model named '", name, "' (known: ", known, ")");
}

}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const Entry& e : entries()) names.emplace_back(e.name);
  return names;
}

Result<onnx::ModelProto> build_model(const std::string& name, const ZooOptions& options) {
  PS_ASSIGN_OR_RETURN(const Entry* entry, find(name));
  if (options.opset < kMinOpset || options.opset > kMaxOpset) {
    return invalid_argument("zoo: ", name, ": opset ", options.opset, " is outside ", kMinOpset, "..", kMaxOpset);
  }
  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);
  model.set_producer_name("pipeswitch-zoo");
  model.set_producer_version("0.1.0");
  model.set_doc_string(options.training_graph
                           ? str_cat(entry->description, "; training graph (BatchNormalization is kept on import)")
                           : std::string(entry->description));
  auto add_meta = [&](const char* key, std::string value) {
    auto* prop = model.add_metadata_props();
    prop->set_key(key);
    prop->set_value(std::move(value));
  };
  add_meta("zoo_model", entry->name);
  add_meta("zoo_seed", std::to_string(options.seed));
  // The importer keeps BatchNormalization (and the other training-time structure) for such
  // models instead of folding it. The graph is the same, except that a BERT model gains its
  // classification head (bert_config).
  add_meta("training_graph", options.training_graph ? "true" : "false");

  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name("main_graph");
  GraphBuilder builder(graph, options.seed, /*materialize=*/true);
  entry->build(builder, options);
  return model;
}

Status write_model(const std::string& name, const std::string& path, const ZooOptions& options) {
  PS_ASSIGN_OR_RETURN(onnx::ModelProto model, build_model(name, options));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return io_error("zoo: cannot open '", path, "' for writing: ", std::strerror(errno));
  if (!model.SerializeToOstream(&out)) return io_error("zoo: writing model '", name, "' to '", path, "' failed");
  out.close();
  if (!out) return io_error("zoo: closing '", path, "' failed: ", std::strerror(errno));
  return Status::OK();
}

Result<ZooInfo> describe(const std::string& name) {
  PS_ASSIGN_OR_RETURN(const Entry* entry, find(name));
  onnx::GraphProto graph;
  GraphBuilder builder(&graph, /*seed=*/1, /*materialize=*/false);
  ZooOptions options;
  options.opset = kMaxOpset;
  entry->build(builder, options);
  ZooInfo info;
  info.name = entry->name;
  info.description = entry->description;
  for (const onnx::ValueInfoProto& input : graph.input()) {
    std::vector<int64_t> dims;
    for (const auto& d : input.type().tensor_type().shape().dim()) dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    info.inputs.emplace_back(input.name(), std::move(dims));
  }
  info.parameters = builder.trainable_parameters();
  return info;
}

}  // namespace ps::zoo
