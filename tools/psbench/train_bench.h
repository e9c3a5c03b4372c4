// `psbench train`: GpuTrainer steps of a training-mode package (psimport --mode training) on one
// GPU: the loss trajectory of the first steps from the package's weights, then the time per
// step. Optionally writes the batches the trainer saw (the device kernel's own output) to a file
// that scripts/torch_train.py reads, so PyTorch trains on identical data (docs/training.md).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "models/gpu/trainer.h"

namespace ps::psbench {

struct TrainBenchOptions {
  std::string package;
  int device = 0;
  models::gpu::GpuTrainerOptions trainer;
  int trajectory = 20;       // steps whose losses are printed (from the package's weights)
  int runs = 20;             // timed steps after them
  uint64_t pool_bytes = 0;   // 0: the trainer's needs plus 256 MiB
  std::string batches_file;  // --write-batches: the trajectory's batches (PSBATCH1 / PSTOKEN1)
  bool json = false;
  bool classes_given = false;  // --classes; else 10, or the model's outputs when fewer (BERT: 2)
};

Result<TrainBenchOptions> parse_train_options(const std::vector<std::string_view>& args,
                                              bool* help);
void print_train_help(std::FILE* out);
Status run_train(const TrainBenchOptions& options);
int train_main(const std::vector<std::string_view>& args);

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

}  // namespace ps::psbench
