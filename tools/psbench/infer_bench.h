// `psbench infer`: resident-model inference latency of a model package on one GPU (the
// executor's Plan, plain enqueue or CUDA graph replay), an optional per-layer profile, and an
// optional comparison of the output with a reference computed by PyTorch.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "models/gpu/op.h"
#include "models/gpu/plan.h"

namespace ps::psbench {

struct InferOptions {
  std::string package;  // the .psm file
  std::string label;    // the "model" key of the results (default: the manifest's model name)
  int device = 0;
  models::gpu::Precision precision = models::gpu::Precision::kTf32;
  bool graph = false;    // replay a CUDA graph of the whole pass instead of enqueueing layers
  int runs = 100;        // timed runs (median, p10, p90)
  int warmup = 10;       // untimed runs first
  bool profile = false;  // per-layer GPU time table
  int profile_top = 30;  // layers listed in the profile (all in --json)
  bool debug = false;    // one Plan::run_debug pass first (checks every layer's output)
  // Raw little-endian tensors, in the order of the model's inputs (outputs), as written by
  // scripts/export_models.py --raw. Inputs default to seeded random values.
  std::vector<std::string> inputs;
  std::vector<std::string> references;
  bool json = false;  // one JSON object on stdout instead of the tables
};

// The q-quantile (0..1) of `v`, interpolated. Precondition: not empty.
double percentile(std::vector<double> v, double q);

// Seeded inputs for a model input: floats ~N(0,1); int64 values 0/1 for token types, 1 for
// masks, else [0, 1000).
std::vector<uint8_t> random_input(const models::gpu::IoSpec& in, uint64_t seed);

// Parses the options after "infer"; sets *help when --help (or -h) was given.
// Errors: kInvalidArgument naming the option and the bad value.
Result<InferOptions> parse_infer_options(const std::vector<std::string_view>& args, bool* help);

void print_infer_help(std::FILE* out);

// Runs the benchmark and prints its results to stdout. Returns whether every output compared
// with a reference is within the precision's tolerance (1e-4 fp32, 5e-3 tf32; true when there
// is no reference).
Result<bool> run_infer(const InferOptions& options);

// The subcommand's entry point: returns the process exit code (0 ok, 1 error, 2 usage,
// 3 the output differs from the reference by more than the precision's tolerance).
int infer_main(const std::vector<std::string_view>& args);

}  // namespace ps::psbench
