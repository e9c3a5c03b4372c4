// Every manifest invariant, broken one at a time. Each broken manifest is packaged with VALID
// checksums (build_raw_package), so the reader's manifest validation itself must catch it; the
// writer must refuse the same manifest with the same words and write nothing.
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "models/package_reader.h"
#include "onnx_loader/package_writer.h"
#include "tests/models/package_fixture.h"

namespace {

namespace psm = pipeswitch::psm;
using Catch::Contains;
using ps::Code;
using ps::models::Package;
using ps::testing::build_raw_package;
using ps::testing::make_small_model;
using ps::testing::TempDir;
using ps::testing::write_file;

// Tensor indices of make_small_model().
enum : uint32_t { kX, kW0, kB0, kH0, kH1, kShape, kH2, kW1, kB1, kY };

struct Broken {
  const char* what;
  std::function<void(psm::Manifest&)> mutate;
  const char* expected;  // the message after "<file>: "
};

const std::vector<Broken>& broken_manifests() {
  using M = psm::Manifest;
  static const std::vector<Broken> cases = {
      // Top level.
      {"newer format_version", [](M& m) { m.set_format_version(2); },
       "manifest format_version is 2, expected 1"},
      {"mode unset", [](M& m) { m.set_mode(M::MODE_UNDEFINED); },
       "manifest mode is 0, expected INFERENCE (1) or TRAINING (2)"},
      {"weights_bytes disagrees", [](M& m) { m.set_weights_bytes(2048); },
       "the manifest says the weight blob is 2048 bytes, but it is 1036 bytes"},
      {"weight_alignment too small", [](M& m) { m.set_weight_alignment(128); },
       "weight_alignment 128 is not a power of two in [256, 1048576]"},
      {"weight_alignment not a power of two", [](M& m) { m.set_weight_alignment(768); },
       "weight_alignment 768 is not a power of two"},
      {"arena alignment zero", [](M& m) { m.mutable_memory_plan()->set_alignment(0); },
       "memory_plan.alignment 0 is not a power of two"},
      {"arena absurd", [](M& m) { m.mutable_memory_plan()->set_arena_bytes(1ull << 50); },
       "memory_plan.arena_bytes 1125899906842624 exceeds the limit"},
      {"symbolic dim not positive", [](M& m) { (*m.mutable_dims())["seq"] = 0; },
       "symbolic dimension 'seq' = 0"},
      {"no layers", [](M& m) { m.clear_layers(); }, "the manifest has no layers"},
      // Tensors.
      {"kind unset", [](M& m) { m.mutable_tensors(kH0)->set_kind(psm::Tensor::KIND_UNDEFINED); },
       "tensor 3 'h0' has unknown kind 0"},
      {"kind unknown",
       [](M& m) { m.mutable_tensors(kH0)->set_kind(static_cast<psm::Tensor::Kind>(9)); },
       "tensor 3 'h0' has unknown kind 9"},
      {"dtype unset", [](M& m) { m.mutable_tensors(kW1)->set_dtype(psm::DT_UNDEFINED); },
       "tensor 7 'fc2.weight' has unknown dtype 0"},
      {"dtype unknown",
       [](M& m) { m.mutable_tensors(kW1)->set_dtype(static_cast<psm::DataType>(42)); },
       "tensor 7 'fc2.weight' has unknown dtype 42"},
      {"zero dim", [](M& m) { m.mutable_tensors(kH1)->set_shape(0, 0); },
       "tensor 4 'h1' has an invalid shape [0,8]"},
      {"negative dim", [](M& m) { m.mutable_tensors(kW0)->set_shape(1, -4); },
       "tensor 1 'fc1.weight' has an invalid shape [8,-4]"},
      {"element count overflows 64 bits",
       [](M& m) {
         auto* t = m.mutable_tensors(kH2);
         t->clear_shape();
         for (int i = 0; i < 3; ++i) t->add_shape(int64_t{1} << 31);
       },
       "tensor 6 'h2' has an invalid shape [2147483648,2147483648,2147483648]"},
      {"rank 17",
       [](M& m) {
         auto* t = m.mutable_tensors(kH2);
         t->clear_shape();
         for (int i = 0; i < 17; ++i) t->add_shape(1);
       },
       "tensor 6 'h2' has an invalid shape"},
      {"weight byte_size wrong", [](M& m) { m.mutable_tensors(kB0)->set_byte_size(36); },
       "tensor 2 'fc1.bias' byte_size 36 != 8 elements * 4 bytes (float32 [8])"},
      {"weight offset unaligned", [](M& m) { m.mutable_tensors(kB0)->set_weight_offset(160); },
       "tensor 2 'fc1.bias' weight offset 160 is not a multiple of weight_alignment 256"},
      {"weight past the blob", [](M& m) { m.mutable_tensors(kW0)->set_weight_offset(1024); },
       "tensor 1 'fc1.weight' weight range [1024, 1152) exceeds the weight blob (1036 bytes)"},
      {"weight offset near 2^64",
       [](M& m) { m.mutable_tensors(kB1)->set_weight_offset(UINT64_MAX - 255); },
       "tensor 8 'fc2.bias' weight range [18446744073709551360, 18446744073709551372) "
       "exceeds the weight blob"},
      {"weight range wraps past 2^64",
       [](M& m) {
         auto* t = m.mutable_tensors(kW0);
         t->set_weight_offset(UINT64_MAX - 255);
         t->set_shape(1, 16);
         t->set_byte_size(512);
       },
       "tensor 1 'fc1.weight' weight range [18446744073709551360, 18446744073709551360 + 512) "
       "exceeds the weight blob (1036 bytes)"},
      {"weights overlap", [](M& m) { m.mutable_tensors(kB0)->set_weight_offset(0); },
       "tensor 1 'fc1.weight' [0, 128) and tensor 2 'fc1.bias' [0, 32) overlap in the weight blob"},
      {"arena offset unaligned", [](M& m) { m.mutable_tensors(kH1)->set_arena_offset(520); },
       "tensor 4 'h1' arena offset 520 is not a multiple of memory_plan.alignment 256"},
      {"arena tensor past the arena", [](M& m) { m.mutable_tensors(kY)->set_arena_offset(1280); },
       "tensor 9 'y' (output) arena range [1280, 1304) exceeds the activation arena (1048 bytes)"},
      {"activation byte_size wrong", [](M& m) { m.mutable_tensors(kH0)->set_byte_size(65); },
       "tensor 3 'h0' byte_size 65 != 16 elements * 4 bytes"},
      // Layers.
      {"layer without op", [](M& m) { m.mutable_layers(1)->clear_op(); },
       "layer 1 'relu1' () has no operator"},
      {"layer without outputs", [](M& m) { m.mutable_layers(3)->clear_outputs(); },
       "layer 3 'fc2' (Gemm) has no outputs"},
      {"attribute without value",
       [](M& m) { m.mutable_layers(0)->mutable_attributes(1)->clear_f(); },
       "layer 0 'fc1' (Gemm) attribute 'alpha' has no value"},
      {"attribute without name",
       [](M& m) { m.mutable_layers(0)->mutable_attributes(0)->clear_name(); },
       "layer 0 'fc1' (Gemm) has an attribute without a name"},
      {"input index out of range", [](M& m) { m.mutable_layers(2)->set_inputs(0, 99); },
       "layer 2 'reshape' (Reshape) input tensor index 99 is out of range (10 tensors)"},
      {"output index out of range", [](M& m) { m.mutable_layers(2)->set_outputs(0, 10); },
       "layer 2 'reshape' (Reshape) output tensor index 10 is out of range (10 tensors)"},
      {"read before produced", [](M& m) { m.mutable_layers(0)->set_inputs(0, kH1); },
       "layer 0 'fc1' (Gemm) reads tensor 4 'h1' before any layer produces it"},
      {"reads its own output", [](M& m) { m.mutable_layers(1)->set_inputs(0, kH1); },
       "layer 1 'relu1' (Relu) reads tensor 4 'h1' before any layer produces it"},
      {"writes a weight", [](M& m) { m.mutable_layers(1)->add_outputs(kShape); },
       "layer 1 'relu1' (Relu) writes tensor 5 'shape', which is weight"},
      {"writes an input", [](M& m) { m.mutable_layers(1)->add_outputs(kX); },
       "layer 1 'relu1' (Relu) writes tensor 0 'x', which is input"},
      {"activation produced twice", [](M& m) { m.mutable_layers(2)->add_outputs(kH0); },
       "tensor 3 'h0' is produced twice: by layer 0 and by layer 2 'reshape' (Reshape)"},
      {"activation never produced",
       [](M& m) {
         psm::Tensor* t = m.add_tensors();
         *t = m.tensors(kH0);
         t->set_name("orphan");
       },
       "tensor 10 'orphan' (activation) is produced by no layer"},
      {"weight never read", [](M& m) { m.mutable_layers(2)->mutable_inputs()->RemoveLast(); },
       "tensor 5 'shape' (weight) is read by no layer"},
      // Model inputs and outputs.
      {"no inputs", [](M& m) { m.clear_inputs(); }, "the model has no inputs"},
      {"no outputs", [](M& m) { m.clear_outputs(); }, "the model has no outputs"},
      {"input index out of range", [](M& m) { m.set_inputs(0, 1000); },
       "model input tensor index 1000 is out of range (10 tensors)"},
      {"input is an activation", [](M& m) { m.set_inputs(0, kH0); },
       "model input tensor 3 'h0' is activation, not input"},
      {"output listed twice", [](M& m) { m.add_outputs(kY); },
       "model output tensor 9 'y' is listed twice"},
      {"an INPUT tensor not listed",
       [](M& m) {
         psm::Tensor* t = m.add_tensors();
         *t = m.tensors(kX);
         t->set_name("x2");
       },
       "tensor 10 'x2' is an input tensor but not in the model's inputs"},
      {"input and output share a name", [](M& m) { m.mutable_tensors(kY)->set_name("x"); },
       "the name 'x' is used by more than one model input or output"},
      {"unnamed input", [](M& m) { m.mutable_tensors(kX)->clear_name(); },
       "model input tensor 0 has no name"},
      // Groups.
      {"no groups", [](M& m) { m.clear_groups(); }, "the manifest has no groups (4 layers)"},
      {"gap between groups", [](M& m) { m.mutable_groups(1)->set_first_layer(3); },
       "group 1 'fc2' starts at layer 3, expected 2"},
      {"overlapping groups", [](M& m) { m.mutable_groups(1)->set_first_layer(1); },
       "group 1 'fc2' starts at layer 1, expected 2"},
      {"empty group", [](M& m) { m.mutable_groups(0)->set_layer_count(0); },
       "group 0 'fc1' has no layers"},
      {"group past the last layer", [](M& m) { m.mutable_groups(1)->set_layer_count(5); },
       "group 1 'fc2' layers [2, 7) run past the last layer (4 layers)"},
      {"groups stop short", [](M& m) { m.mutable_groups(1)->set_layer_count(1); },
       "the groups cover layers [0, 3) of 4"},
      {"group range too short", [](M& m) { m.mutable_groups(0)->set_byte_size(256); },
       "group 0 'fc1' blob range [0, 256) does not match the weights its layers read first, [0, "
       "288)"},
      {"group range shifted", [](M& m) { m.mutable_groups(1)->set_blob_offset(256); },
       "group 1 'fc2' blob range [256, 780) does not match the weights its layers read first, "
       "[512, 1036)"},
      {"group without weights claims bytes",
       [](M& m) {
         m.mutable_groups(0)->set_layer_count(1);
         psm::Group* relu = m.mutable_groups()->Add();
         relu->set_first_layer(1);
         relu->set_layer_count(1);
         relu->set_byte_size(32);
         relu->set_label("relu");
         m.mutable_groups()->SwapElements(1, 2);
       },
       "group 1 'relu' claims 32 bytes but its layers read no weights first"},
      {"weights not in execution order",
       [](M& m) {
         // fc2.weight moves in front of fc1's weights: group 1's span then starts at 0.
         m.mutable_tensors(kW0)->set_weight_offset(768);
         m.mutable_tensors(kW1)->set_weight_offset(0);
         m.mutable_groups(0)->set_blob_offset(256);
         m.mutable_groups(0)->set_byte_size(896 - 256);
         m.mutable_groups(1)->set_blob_offset(0);
         m.mutable_groups(1)->set_byte_size(1036);
       },
       "group 1 'fc2' blob range [0, 1036) starts before the end of the previous group (896)"},
  };
  return cases;
}

TEST_CASE("each broken manifest invariant is named by the reader and the writer",
          "[package][manifest]") {
  TempDir dir;
  const std::string path = dir.file("broken.psm");
  const std::string written = dir.file("written.psm");
  for (const Broken& broken : broken_manifests()) {
    auto model = make_small_model();
    broken.mutate(model.manifest);
    const std::string bytes = ps::onnx_loader::serialize_manifest(model.manifest);
    write_file(path, build_raw_package(bytes, model.weights));

    auto package = Package::open(path);
    INFO("case: " << broken.what
                  << "\n  open: " << (package.ok() ? "OK" : package.status().to_string()));
    REQUIRE_FALSE(package.ok());
    CHECK(package.status().code() == Code::kCorrupt);
    CHECK_THAT(package.status().message(), Contains(path + ": " + broken.expected));

    const ps::Status w = ps::onnx_loader::write_package(written, model.manifest, model.weights);
    INFO("  write: " << w.to_string());
    CHECK(w.code() == Code::kInvalidArgument);
    CHECK_THAT(w.message(), Contains(written + ": " + broken.expected));
    CHECK_FALSE(std::filesystem::exists(written));
  }
  CHECK(dir.entries() == std::vector<std::string>{"broken.psm"});
}

TEST_CASE("the small model itself is valid, with or without optional fields",
          "[package][manifest]") {
  TempDir dir;
  auto model = make_small_model();
  model.manifest.clear_passes();
  model.manifest.clear_dims();
  model.manifest.clear_grouping();
  model.manifest.mutable_tensors(kY)->clear_byte_size();  // optional for arena tensors
  REQUIRE(ps::onnx_loader::write_package(dir.file("ok.psm"), model.manifest, model.weights).ok());
  auto package = Package::open(dir.file("ok.psm"));
  REQUIRE(package.ok());
  CHECK_THAT(package->describe(), Contains("passes       (none)"));
  CHECK_THAT(package->describe(), Contains("groups       2 (unspecified)"));
}

}  // namespace
