// The files `psbench train --write-batches` writes for scripts/torch_train.py --batches: the
// GPU trainer's own batches, so PyTorch trains on exactly the same data. Pure (no GPU): the
// image batches are made on the device by the caller; token batches are SyntheticTokens'.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/cpu/synthetic_tokens.h"

namespace ps::psbench {

// The batch file (little-endian), version 1:
//   "PSBATCH1", u32 version = 1, u32 count, u32 rank, u32 classes, i64 batch, i64 dims[rank]
//   then per batch: i64 labels[batch], f32 images[batch * prod(dims)]
// Batch i is the trainer's data position i.
struct BatchFileHeader {
  uint32_t count = 0;
  int64_t batch = 0;
  uint32_t classes = 0;
  std::vector<int64_t> sample_shape;
};
std::vector<uint8_t> encode_batch_file_header(const BatchFileHeader& header);

// The token batch file (BERT; little-endian), version 1:
//   "PSTOKEN1", u32 version = 1, u32 count, u32 inputs, u32 classes, i64 batch, then per input:
//   u32 name length, the name's bytes, u32 rank, i64 dims[rank] (one sample), i64 vocab;
//   then per batch: i64 labels[batch], then per input (in that order) i64 ids[batch * prod(dims)]
// Batch i is the trainer's data position i (models/cpu/synthetic_tokens.h's batch i).
struct TokenFileInput {
  std::string name;
  std::vector<int64_t> sample_shape;
  int64_t vocab = 0;
};
struct TokenFileHeader {
  uint32_t count = 0;
  int64_t batch = 0;
  uint32_t classes = 0;
  std::vector<TokenFileInput> inputs;
};
std::vector<uint8_t> encode_token_file_header(const TokenFileHeader& header);


// Writes `header` and header.count token batches of `data` (batch i = data.batch(i, ...), the
// trainer's data position i) to `path`. header.inputs must describe data's inputs in order.
// Errors: kIo naming the path, SyntheticTokens::batch's.
Status write_token_file(const std::string& path, const TokenFileHeader& header,
                        const models::cpu::SyntheticTokens& data);

// Reads a token file back (tests; the Python peer has its own reader). labels[i] and
// ids[i][k] are batch i's labels and input k's ids. Errors: kCorrupt for a bad magic, version,
// truncation or trailing bytes; kIo.
struct TokenFile {
  TokenFileHeader header;
  std::vector<std::vector<int64_t>> labels;
  std::vector<std::vector<std::vector<int64_t>>> ids;
};
Result<TokenFile> read_token_file(const std::string& path);

}  // namespace ps::psbench
