#include "models/gpu/trainer_tokens.h"

#include <cstring>

#include "cuda/copy.h"
#include "cuda/stream.h"

namespace ps::models::gpu {

Result<HostTokenData> HostTokenData::create(const cpu::SyntheticDataOptions& options,
                                            std::vector<cpu::TokenInput> inputs, int64_t batch) {
  if (batch < 1) return invalid_argument("token data: batch ", batch);
  HostTokenData d;
  d.batch_ = batch;
  size_t bytes = 0;
  for (const cpu::TokenInput& in : inputs) {
    d.offsets_.push_back(bytes);
    bytes += static_cast<size_t>(batch * element_count(in.sample_shape)) * sizeof(int64_t);
  }
  d.offsets_.push_back(bytes);  // the labels
  bytes += static_cast<size_t>(batch) * sizeof(int64_t);
  PS_ASSIGN_OR_RETURN(cpu::SyntheticTokens tokens,
                      cpu::SyntheticTokens::create(options, std::move(inputs)));
  d.data_.emplace(std::move(tokens));
  PS_ASSIGN_OR_RETURN(d.staging_, cuda::PinnedBuffer::allocate(bytes));
  return d;
}

Status HostTokenData::make_batch(const cuda::Stream& stream, uint64_t index,
                                 std::span<const CUdeviceptr> tokens, CUdeviceptr labels) {
  if (!data_) return internal_error("token data: not created");
  const size_t inputs = offsets_.size() - 1;
  if (tokens.size() != inputs) {
    return invalid_argument("token data: ", tokens.size(), " token buffers for ", inputs,
                            " inputs");
  }
  std::vector<cpu::Tensor> ids;
  std::vector<int64_t> label_values;
  PS_TRY(data_->batch(index, batch_, &ids, &label_values));
  auto* staging = static_cast<uint8_t*>(staging_.data());
  for (size_t k = 0; k < inputs; ++k) {
    std::memcpy(staging + offsets_[k], ids[k].raw(), ids[k].byte_size());
    PS_TRY(cuda::copy_to_device_async(tokens[k], staging + offsets_[k], ids[k].byte_size(), stream));
  }
  const size_t label_bytes = label_values.size() * sizeof(int64_t);
  std::memcpy(staging + offsets_[inputs], label_values.data(), label_bytes);
  return cuda::copy_to_device_async(labels, staging + offsets_[inputs], label_bytes, stream);
}

}  // namespace ps::models::gpu
