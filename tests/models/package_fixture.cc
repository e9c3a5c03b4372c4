#include "tests/models/package_fixture.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "common/hash64.h"

namespace ps::testing {

namespace psm = pipeswitch::psm;
namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/ps-package-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

std::vector<std::string> TempDir::entries() const {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

int add_tensor(psm::Manifest& m, const std::string& name, psm::Tensor::Kind kind,
               psm::DataType dtype, std::vector<int64_t> shape, uint64_t offset,
               bool trainable = true) {
  psm::Tensor* t = m.add_tensors();
  t->set_name(name);
  t->set_kind(kind);
  t->set_dtype(dtype);
  for (int64_t d : shape) t->add_shape(d);
  uint64_t elements = 1;
  for (int64_t d : shape) elements *= static_cast<uint64_t>(d);
  const uint64_t bytes = elements * (dtype == psm::DT_INT64 ? 8 : 4);
  if (kind == psm::Tensor::WEIGHT) {
    t->set_weight_offset(offset);
    t->set_byte_size(bytes);
    t->set_trainable(trainable);
  } else {
    t->set_arena_offset(offset);
    t->set_byte_size(bytes);
  }
  return m.tensors_size() - 1;
}

psm::Layer* add_layer(psm::Manifest& m, const std::string& op, const std::string& name,
                      std::vector<uint32_t> inputs, std::vector<uint32_t> outputs) {
  psm::Layer* layer = m.add_layers();
  layer->set_op(op);
  layer->set_name(name);
  for (uint32_t i : inputs) layer->add_inputs(i);
  for (uint32_t o : outputs) layer->add_outputs(o);
  layer->add_onnx_nodes(m.layers_size() - 1);
  return layer;
}

}  // namespace

SmallModel make_small_model() {
  SmallModel model;
  psm::Manifest& m = model.manifest;
  m.set_format_version(onnx_loader::kFormatMajor);
  m.set_model_name("tiny-mlp");
  m.set_producer("package_test (hand-built)");
  m.set_opset(17);
  m.set_mode(psm::Manifest::INFERENCE);
  m.set_weight_alignment(256);
  m.set_grouping("blocks");
  (*m.mutable_dims())["batch"] = 2;
  m.add_passes("fold_constants");
  m.add_passes("fuse_gemm_relu");

  using K = psm::Tensor;
  // Weights: [0,128) w0 | [256,288) b0 | [512,528) shape | [768,864) w1 | [1024,1036) b1.
  // Arena (alignment 256): x@0, h0@256, h1@512, h2@768, y@1024; 1048 bytes.
  const auto x = add_tensor(m, "x", K::INPUT, psm::DT_FLOAT32, {2, 4}, 0);
  const auto w0 = add_tensor(m, "fc1.weight", K::WEIGHT, psm::DT_FLOAT32, {8, 4}, 0);
  const auto b0 = add_tensor(m, "fc1.bias", K::WEIGHT, psm::DT_FLOAT32, {8}, 256);
  const auto h0 = add_tensor(m, "h0", K::ACTIVATION, psm::DT_FLOAT32, {2, 8}, 256);
  const auto h1 = add_tensor(m, "h1", K::ACTIVATION, psm::DT_FLOAT32, {2, 8}, 512);
  const auto shape = add_tensor(m, "shape", K::WEIGHT, psm::DT_INT64, {2}, 512, false);
  const auto h2 = add_tensor(m, "h2", K::ACTIVATION, psm::DT_FLOAT32, {2, 8}, 768);
  const auto w1 = add_tensor(m, "fc2.weight", K::WEIGHT, psm::DT_FLOAT32, {3, 8}, 768);
  const auto b1 = add_tensor(m, "fc2.bias", K::WEIGHT, psm::DT_FLOAT32, {3}, 1024);
  const auto y = add_tensor(m, "y", K::OUTPUT, psm::DT_FLOAT32, {2, 3}, 1024);
  m.add_inputs(x);
  m.add_outputs(y);

  psm::Layer* fc1 =
      add_layer(m, "Gemm", "fc1", {uint32_t(x), uint32_t(w0), uint32_t(b0)}, {uint32_t(h0)});
  psm::Attribute* trans_b = fc1->add_attributes();
  trans_b->set_name("transB");
  trans_b->set_i(1);
  psm::Attribute* alpha = fc1->add_attributes();
  alpha->set_name("alpha");
  alpha->set_f(1.0f);
  fc1->set_block("fc1");
  add_layer(m, "Relu", "relu1", {uint32_t(h0)}, {uint32_t(h1)})->set_block("fc1");
  add_layer(m, "Reshape", "reshape", {uint32_t(h1), uint32_t(shape)}, {uint32_t(h2)})
      ->set_block("fc2");
  psm::Layer* fc2 =
      add_layer(m, "Gemm", "fc2", {uint32_t(h2), uint32_t(w1), uint32_t(b1)}, {uint32_t(y)});
  *fc2->add_attributes() = *trans_b;
  fc2->set_block("fc2");

  psm::Group* g0 = m.add_groups();
  g0->set_first_layer(0);
  g0->set_layer_count(2);
  g0->set_blob_offset(0);
  g0->set_byte_size(288);
  g0->set_label("fc1");
  psm::Group* g1 = m.add_groups();
  g1->set_first_layer(2);
  g1->set_layer_count(2);
  g1->set_blob_offset(512);
  g1->set_byte_size(1036 - 512);
  g1->set_label("fc2");

  m.mutable_memory_plan()->set_arena_bytes(1048);
  m.mutable_memory_plan()->set_alignment(256);
  m.set_weights_bytes(1036);

  model.weights.resize(1036);
  for (size_t i = 0; i < model.weights.size(); ++i) {
    model.weights[i] = static_cast<uint8_t>(i * 37 + 11);
  }
  return model;
}

std::vector<uint8_t> build_raw_package(
    const std::string& manifest_bytes, std::span<const uint8_t> weights,
    const std::function<void(onnx_loader::PackageHeader&)>& tweak) {
  onnx_loader::PackageHeader h;
  h.manifest_offset = onnx_loader::kHeaderSize;
  h.manifest_size = manifest_bytes.size();
  h.weights_offset = onnx_loader::weights_offset_for(manifest_bytes.size());
  h.weights_size = weights.size();
  h.manifest_checksum = ps::hash64(
      {reinterpret_cast<const uint8_t*>(manifest_bytes.data()), manifest_bytes.size()});
  h.weights_checksum = ps::hash64(weights);
  const uint64_t weights_offset = h.weights_offset;
  if (tweak) tweak(h);

  std::vector<uint8_t> file(weights_offset + weights.size(), 0);
  const auto header = onnx_loader::encode_header(h);
  std::copy(header.begin(), header.end(), file.begin());
  std::copy(manifest_bytes.begin(), manifest_bytes.end(), file.begin() + onnx_loader::kHeaderSize);
  std::copy(weights.begin(), weights.end(), file.begin() + static_cast<ptrdiff_t>(weights_offset));
  return file;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace ps::testing
