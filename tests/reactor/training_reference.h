// Test support: the reference trajectory of a training job, the CPU trainer (float64) run
// directly on a zoo model imported for training with TRAIN's options.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/cpu/trainer.h"
#include "reactor/model_source.h"
#include "reactor/train_options.h"

namespace ps::reactor::testing {

// The losses of the first `steps` steps.
inline std::vector<double> reference_losses(const std::string& zoo_model, uint32_t batch,
                                            const TrainOptions& options, int steps) {
  auto model = import_zoo_model(zoo_model, batch, 16, /*training=*/true);
  PS_CHECK(model.ok());
  auto trainer =
      models::cpu::Trainer::create(model->manifest, model->weights, trainer_options(options, model->manifest));
  PS_CHECK(trainer.ok());
  std::vector<double> out;
  for (int i = 0; i < steps; ++i) {
    auto loss = (*trainer)->step();
    PS_CHECK(loss.ok());
    out.push_back(*loss);
  }
  return out;
}

}  // namespace ps::reactor::testing
