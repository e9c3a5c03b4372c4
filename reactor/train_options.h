// TRAIN's options (reactor/backend.h: TrainOptions) as the trainers take them: the SGD rule and
// the synthetic data, which the CPU trainer (models/cpu/trainer.h) and the GPU trainer
// (models/gpu/trainer.h) share.
#pragma once

#include "models/cpu/trainer.h"
#include "reactor/backend.h"

namespace ps::reactor {

models::cpu::TrainerOptions trainer_options(const TrainOptions& options);

}  // namespace ps::reactor
