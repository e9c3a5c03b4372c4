// The GPU trainer's token batches (BERT): the CPU trainer's SyntheticTokens batch, made on the
// host and copied to the device, so both trainers see the same ids and labels exactly. The
// token stream is sequential (a sample's replacements depend on the draws before it), and a
// batch is small (BERT-base at batch 8 and sequence 251: 2 x 2008 ids), so the host makes it in
// microseconds; images, large and element-wise independent, are made on the device instead
// (trainer_data.h).
#pragma once

#include <cuda.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/status.h"
#include "cuda/host_memory.h"
#include "models/cpu/synthetic_tokens.h"

namespace ps::cuda {
class Stream;
}

namespace ps::models::gpu {

class HostTokenData {
 public:
  // Builds the dataset and the pinned staging for batches of `batch` samples. Precondition: a
  // context is current. Errors: SyntheticTokens::create's, batch < 1, pinned allocation.
  static Result<HostTokenData> create(const cpu::SyntheticDataOptions& options,
                                      std::vector<cpu::TokenInput> inputs, int64_t batch);
  HostTokenData() = default;

  // Makes batch `index` in the staging and enqueues its copies: token ids int64 into tokens[k]
  // ([batch, sample...] of input k) and labels int64 [batch] into `labels`. The staging is
  // reused by the next call: precondition: the previous batch's copies have completed (the
  // trainer enqueues a step's first chunk only after the previous step completed).
  Status make_batch(const cuda::Stream& stream, uint64_t index,
                    std::span<const CUdeviceptr> tokens, CUdeviceptr labels);

 private:
  std::optional<cpu::SyntheticTokens> data_;  // none until create()
  int64_t batch_ = 0;
  std::vector<size_t> offsets_;  // of each input's ids in the staging; labels after the last
  cuda::PinnedBuffer staging_;
};

}  // namespace ps::models::gpu
