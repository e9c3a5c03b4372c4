// A seeded synthetic token-classification dataset for models that read token ids (BERT): each
// class has its own fixed random token sequence per input (drawn once from the seed), and a
// sample is its class's sequences with each token replaced, with probability `noise`, by a
// uniformly random one. The class is in the tokens, so a classifier can learn it. Batch b
// depends only on (seed, b), as SyntheticData's images do (checkpoint-resume sees the same
// batches). `single_image`: every sample is class 0's sequences unchanged, label 0 (the
// paper's setting, one repeated input).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "models/cpu/synthetic_data.h"
#include "models/cpu/tensor.h"

namespace ps::models::cpu {

struct TokenInput {
  Shape sample_shape;  // one sample's shape, e.g. [seq]
  int64_t vocab = 0;   // token ids are in [0, vocab)
};

class SyntheticTokens {
 public:
  // `options.noise` is the replacement probability here. Errors: classes < 1, noise outside
  // [0, 1], no inputs, a vocab < 1, an empty or non-positive sample shape.
  static Result<SyntheticTokens> create(const SyntheticDataOptions& options,
                                        std::vector<TokenInput> inputs);

  // Batch number `index`: one int64 tensor [batch_size, sample_shape...] per input, in the
  // order given to create(), and one label per sample. Deterministic in (seed, index).
  Status batch(uint64_t index, int64_t batch_size, std::vector<Tensor>* tokens,
               std::vector<int64_t>* labels) const;

  const SyntheticDataOptions& options() const { return options_; }

 private:
  SyntheticTokens(const SyntheticDataOptions& options, std::vector<TokenInput> inputs)
      : options_(options), inputs_(std::move(inputs)) {}

  SyntheticDataOptions options_;
  std::vector<TokenInput> inputs_;
  // patterns_[class][input]: that class's token sequence for that input.
  std::vector<std::vector<std::vector<int64_t>>> patterns_;
};

}  // namespace ps::models::cpu
