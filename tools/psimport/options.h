// Command-line options of psimport, the model import tool. Three commands:
//   psimport MODEL.onnx [-o MODEL.psm] [--batch N] [--seq N] [--mode inference|training]
//            [--grouping per-layer|blocks|whole] [--skip-passes P,...] [--quiet]
//                                                               import an ONNX model
//   psimport --info MODEL.psm                                   describe a package
//   psimport --zoo NAME [-o NAME.onnx] [--mode M] [--quiet]     write a built-in model as ONNX
// plus --help. Parsing is a pure function over the arguments, so tests drive it directly.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace ps::psimport {

enum class Command { kHelp, kImport, kInfo, kZoo };
enum class ImportMode { kInference, kTraining };
enum class Grouping { kPerLayer, kBlocks, kWhole };

inline constexpr int64_t kMaxDimension = 1 << 20;  // for --batch and --seq

struct Options {
  Command command = Command::kHelp;
  std::string input;      // kImport: the .onnx file; kInfo: the .psm file
  std::string zoo_model;  // kZoo: the built-in model's name
  std::string output;     // kImport / kZoo: -o, or derived from the input (MODEL.psm, NAME.onnx)
  std::optional<int64_t> batch;  // kImport: fixes the symbolic batch dimension
  std::optional<int64_t> seq;    // kImport: fixes the symbolic sequence length
  ImportMode mode = ImportMode::kInference;  // kImport; kZoo: the training graph (zoo.h)
  std::optional<Grouping> grouping;  // kImport: unset means the importer's default
  bool quiet = false;                // kImport / kZoo: no progress or summary
  std::vector<std::string> skip_passes;  // kImport: fusion passes not to run (--skip-passes)
};

// Parses the arguments after the program name. Returns the options, or kInvalidArgument with a
// message naming the offending argument (unknown option, missing or bad value, an option given
// twice or one that does not apply to the command, no command or more than one).
Result<Options> parse_args(std::span<const std::string> args);

// The --help text.
std::string usage();

const char* mode_name(ImportMode mode);        // "inference", "training"
const char* grouping_name(Grouping grouping);  // "per-layer", "blocks", "whole"

}  // namespace ps::psimport
