#include "models/cpu/synthetic_data.h"

#include <cmath>

#include "models/cpu/splitmix.h"

namespace ps::models::cpu {

Result<SyntheticData> SyntheticData::create(const SyntheticDataOptions& options,
                                            Shape sample_shape) {
  if (options.classes < 1 || options.noise < 0) {
    return invalid_argument("synthetic data: classes ", options.classes, " and noise ",
                            options.noise, " must be >= 1 and >= 0");
  }
  for (int64_t d : sample_shape) {
    if (d < 1) return invalid_argument("synthetic data: sample shape ", shape_string(sample_shape));
  }
  if (sample_shape.empty()) return invalid_argument("synthetic data: empty sample shape");
  SyntheticData data(options, sample_shape);
  const int64_t size = element_count(sample_shape);
  const int64_t patterns = options.single_image ? 1 : options.classes;
  for (int64_t c = 0; c < patterns; ++c) {
    SplitMix rng(mix_seed(options.seed, 0x5A17E000ULL + static_cast<uint64_t>(c)));
    std::vector<double> p(static_cast<size_t>(size));
    for (double& v : p) v = rng.normal();
    data.patterns_.push_back(std::move(p));
  }
  return data;
}

Status SyntheticData::batch(uint64_t index, int64_t batch_size, Tensor* images,
                            std::vector<int64_t>* labels) const {
  if (batch_size < 1) return invalid_argument("synthetic data: batch size ", batch_size);
  Shape shape{batch_size};
  shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
  PS_ASSIGN_OR_RETURN(*images, Tensor::allocate(DType::kFloat64, shape));
  labels->assign(static_cast<size_t>(batch_size), 0);
  const int64_t size = element_count(sample_shape_);
  double* out = images->mutable_data<double>();
  SplitMix rng(mix_seed(options_.seed, index + 1));
  for (int64_t n = 0; n < batch_size; ++n) {
    double* sample = out + n * size;
    if (options_.single_image) {
      std::copy(patterns_[0].begin(), patterns_[0].end(), sample);
      continue;
    }
    const auto label = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(options_.classes));
    (*labels)[static_cast<size_t>(n)] = label;
    const std::vector<double>& pattern = patterns_[static_cast<size_t>(label)];
    for (int64_t i = 0; i < size; ++i) sample[i] = pattern[i] + options_.noise * rng.normal();
  }
  return Status::OK();
}

}  // namespace ps::models::cpu
