#include "reactor/train_options.h"

namespace ps::reactor {

models::cpu::TrainerOptions trainer_options(const TrainOptions& o) {
  models::cpu::TrainerOptions t;
  t.sgd.learning_rate = o.learning_rate;
  t.sgd.momentum = o.momentum;
  t.sgd.weight_decay = o.weight_decay;
  t.data.seed = o.seed;
  t.data.classes = o.classes;
  t.data.noise = o.noise;
  t.data.single_image = o.single_image;
  return t;
}

}  // namespace ps::reactor
