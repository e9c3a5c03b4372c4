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
  int runs = 20;             // timed steps after them (0: the trajectory only)
  uint64_t pool_bytes = 0;   // 0: the trainer's needs plus 256 MiB
  std::string batches_file;  // --write-batches: the trajectory's batches (PSBATCH1 / PSTOKEN1)
  bool json = false;
  bool debug = false;          // --debug: the first step item by item (GpuTrainer::debug_step)
  std::string gradients_file;  // --dump-gradients: step 0's weight gradients (PSGRAD1)
  int profile_top = 0;         // --profile-top N: the profile by operator and the N slowest items
  int page_cycles = 0;         // --page-cycles N: page-out + page-in cycles timed after the runs
  bool classes_given = false;  // --classes; else 10, or the model's outputs when fewer (BERT: 2)
};

Result<TrainBenchOptions> parse_train_options(const std::vector<std::string_view>& args,
                                              bool* help);
void print_train_help(std::FILE* out);
Status run_train(const TrainBenchOptions& options);
int train_main(const std::vector<std::string_view>& args);

}  // namespace ps::psbench
