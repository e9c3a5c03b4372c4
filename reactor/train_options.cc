#include "reactor/train_options.h"

#include <algorithm>

namespace ps::reactor {

models::cpu::TrainerOptions trainer_options(const TrainOptions& o,
                                            const pipeswitch::psm::Manifest& manifest) {
  models::cpu::TrainerOptions t;
  t.sgd.learning_rate = o.learning_rate;
  t.sgd.momentum = o.momentum;
  t.sgd.weight_decay = o.weight_decay;
  t.data.seed = o.seed;
  t.data.classes = o.classes;
  if (o.classes == 0) {
    t.data.classes = kDefaultClasses;
    if (manifest.outputs_size() == 1) {
      const auto& out = manifest.tensors(static_cast<int>(manifest.outputs(0)));
      if (out.shape_size() == 2 && out.shape(1) >= 1) {
        t.data.classes = std::min<int64_t>(kDefaultClasses, out.shape(1));
      }
    }
  }
  t.data.noise = o.noise;
  t.data.single_image = o.single_image;
  return t;
}

}  // namespace ps::reactor
