// TRAIN's options (reactor/backend.h: TrainOptions) as the trainers take them: the SGD rule and
// the synthetic data, which the CPU trainer (models/cpu/trainer.h) and the GPU trainer
// (models/gpu/trainer.h) share.
#pragma once

#include "models/cpu/trainer.h"
#include "onnx_loader/psm.pb.h"
#include "reactor/backend.h"

namespace ps::reactor {

// The default number of classes when TRAIN gives none: this many, or fewer when the model
// outputs fewer (BERT's classifier has 2).
inline constexpr uint32_t kDefaultClasses = 10;

// `manifest` is the training manifest: classes = 0 becomes min(kDefaultClasses, K) with K the
// width of its one [N, K] output (kDefaultClasses when it has no such output; the trainer then
// names what is wrong).
models::cpu::TrainerOptions trainer_options(const TrainOptions& options,
                                            const pipeswitch::psm::Manifest& manifest);

}  // namespace ps::reactor
