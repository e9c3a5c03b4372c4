// A seeded synthetic image-classification dataset that a small network can learn: each class
// has its own fixed random pattern (an image drawn once from N(0, 1)), and a sample is its
// class's pattern plus N(0, noise^2) noise. Batch b depends only on (seed, b), so a trainer
// restored from a checkpoint at data position b sees the batches an uninterrupted run sees.
// With `single_image` it is the paper's setting: every sample is the same image, label 0.
// Random numbers come from SplitMix64 and Box-Muller written here, so the values do not depend
// on the standard library.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "models/cpu/tensor.h"

namespace ps::models::cpu {

struct SyntheticDataOptions {
  uint64_t seed = 1;
  int64_t classes = 10;  // labels are in [0, classes)
  double noise = 0.5;    // stddev of the per-sample noise, relative to the patterns' 1
  bool single_image = false;
};

class SyntheticData {
 public:
  // Samples of shape `sample_shape` (e.g. [3, 32, 32]). Errors: classes < 1, negative noise,
  // an empty or negative sample shape.
  static Result<SyntheticData> create(const SyntheticDataOptions& options, Shape sample_shape);

  // Batch number `index` of `batch_size` samples: images float64 [batch_size, sample_shape...]
  // and one label per sample. Deterministic in (seed, index).
  Status batch(uint64_t index, int64_t batch_size, Tensor* images,
               std::vector<int64_t>* labels) const;

  const SyntheticDataOptions& options() const { return options_; }

 private:
  SyntheticData(const SyntheticDataOptions& options, Shape sample_shape)
      : options_(options), sample_shape_(std::move(sample_shape)) {}

  SyntheticDataOptions options_;
  Shape sample_shape_;
  std::vector<std::vector<double>> patterns_;  // one per class (one in single_image mode)
};

}  // namespace ps::models::cpu
