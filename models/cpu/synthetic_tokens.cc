#include "models/cpu/synthetic_tokens.h"

#include "models/cpu/splitmix.h"

namespace ps::models::cpu {

namespace {

// Stream numbers: patterns apart from SyntheticData's (0x5A17E000 + class) and from the
// batches (index + 1).
constexpr uint64_t kPatternStream = 0x70CE0000ULL;

int64_t draw_token(SplitMix& rng, int64_t vocab) {
  return static_cast<int64_t>(rng.next() % static_cast<uint64_t>(vocab));
}

}  // namespace

Result<SyntheticTokens> SyntheticTokens::create(const SyntheticDataOptions& options,
                                                std::vector<TokenInput> inputs) {
  if (options.classes < 1 || !(options.noise >= 0 && options.noise <= 1)) {
    return invalid_argument("synthetic tokens: classes ", options.classes, " must be >= 1 and noise ",
                            options.noise, " (the probability a token is replaced) in [0, 1]");
  }
  if (inputs.empty()) return invalid_argument("synthetic tokens: no inputs");
  for (const TokenInput& in : inputs) {
    if (in.vocab < 1) return invalid_argument("synthetic tokens: vocab ", in.vocab);
    if (in.sample_shape.empty()) return invalid_argument("synthetic tokens: empty sample shape");
    for (int64_t d : in.sample_shape) {
      if (d < 1) {
        return invalid_argument("synthetic tokens: sample shape ", shape_string(in.sample_shape));
      }
    }
  }
  SyntheticTokens data(options, std::move(inputs));
  const int64_t patterns = options.single_image ? 1 : options.classes;
  for (int64_t c = 0; c < patterns; ++c) {
    SplitMix rng(mix_seed(options.seed, kPatternStream + static_cast<uint64_t>(c)));
    std::vector<std::vector<int64_t>> per_input;
    for (const TokenInput& in : data.inputs_) {
      std::vector<int64_t> p(static_cast<size_t>(element_count(in.sample_shape)));
      for (int64_t& t : p) t = draw_token(rng, in.vocab);
      per_input.push_back(std::move(p));
    }
    data.patterns_.push_back(std::move(per_input));
  }
  return data;
}

Status SyntheticTokens::batch(uint64_t index, int64_t batch_size, std::vector<Tensor>* tokens,
                              std::vector<int64_t>* labels) const {
  if (batch_size < 1) return invalid_argument("synthetic tokens: batch size ", batch_size);
  tokens->clear();
  for (const TokenInput& in : inputs_) {
    Shape shape{batch_size};
    shape.insert(shape.end(), in.sample_shape.begin(), in.sample_shape.end());
    PS_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(DType::kInt64, shape));
    tokens->push_back(std::move(t));
  }
  labels->assign(static_cast<size_t>(batch_size), 0);
  SplitMix rng(mix_seed(options_.seed, index + 1));
  for (int64_t n = 0; n < batch_size; ++n) {
    int64_t label = 0;
    if (!options_.single_image) {
      label = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(options_.classes));
    }
    (*labels)[static_cast<size_t>(n)] = label;
    for (size_t k = 0; k < inputs_.size(); ++k) {
      const std::vector<int64_t>& pattern = patterns_[static_cast<size_t>(label)][k];
      const auto size = static_cast<int64_t>(pattern.size());
      int64_t* out = (*tokens)[k].mutable_data<int64_t>() + n * size;
      for (int64_t i = 0; i < size; ++i) {
        const bool replaced = !options_.single_image && rng.uniform() <= options_.noise;
        out[i] = replaced ? draw_token(rng, inputs_[k].vocab) : pattern[static_cast<size_t>(i)];
      }
    }
  }
  return Status::OK();
}

}  // namespace ps::models::cpu
