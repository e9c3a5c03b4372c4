// Test support for the CPU training tests (test_cpu_train, test_cpu_checkpoint).
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <utility>

#include "tests/models/zoo_lowering.h"

namespace ps::models::cpu::testing {

// Tiny zoo model `model` lowered in training mode (BatchNormalization kept) at `batch`; a
// failure fails the test case.
// BERT models: their training graph (BertForSequenceClassification, 2 labels) at sequence 8.
inline onnx_loader::LoweredModel lower_training(const std::string& model, int64_t batch,
                                                int opset = 17) {
  models::testing::ZooLowering what;
  what.model = model;
  what.batch = batch;
  what.opset = opset;
  what.mode = onnx_loader::Mode::kTraining;
  Result<onnx_loader::LoweredModel> lowered = models::testing::lower_zoo_model(what);
  INFO(lowered.status().to_string());
  REQUIRE(lowered.ok());
  return std::move(lowered).value();
}

}  // namespace ps::models::cpu::testing
