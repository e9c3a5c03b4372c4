#include "tools/psimport/options.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "onnx_loader/pipeline.h"

namespace ps::psimport {
namespace {

struct OptionSpec {
  const char* canonical;  // the long name, used in messages
  bool takes_value;
};

// Short and long spellings, both mapped to the long name.
const std::map<std::string, OptionSpec>& option_table() {
  static const std::map<std::string, OptionSpec> table = {
      {"-h", {"--help", false}},
      {"--help", {"--help", false}},
      {"-q", {"--quiet", false}},
      {"--quiet", {"--quiet", false}},
      {"-o", {"--output", true}},
      {"--output", {"--output", true}},
      {"--batch", {"--batch", true}},
      {"--seq", {"--seq", true}},
      {"--mode", {"--mode", true}},
      {"--grouping", {"--grouping", true}},
      {"--info", {"--info", true}},
      {"--zoo", {"--zoo", true}},
      {"--skip-passes", {"--skip-passes", true}},
  };
  return table;
}

Result<int64_t> parse_dimension(const std::string& option, const std::string& text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && ptr == end && value > kMaxDimension)) {
    return invalid_argument(option, " ", text, " is too large (at most ", kMaxDimension, ")");
  }
  if (ec != std::errc() || ptr != end || value <= 0) {
    return invalid_argument(option, " needs a positive integer, got '", text, "'");
  }
  return value;
}

bool valid_zoo_name(const std::string& name) {
  return !name.empty() && name.front() != '.' && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

// Options that only some commands take: which command, for the error message.
Status check_applies(const std::map<std::string, std::string>& given, Command command) {
  static const std::vector<std::pair<const char*, std::set<Command>>> applies = {
      {"--output", {Command::kImport, Command::kZoo}},
      {"--quiet", {Command::kImport, Command::kZoo}},
      {"--batch", {Command::kImport}},
      {"--seq", {Command::kImport}},
      {"--mode", {Command::kImport, Command::kZoo}},
      {"--grouping", {Command::kImport}},
      {"--skip-passes", {Command::kImport}},
  };
  for (const auto& [name, commands] : applies) {
    if (given.count(name) == 0 || commands.count(command) != 0) continue;
    const char* where = command == Command::kInfo ? "--info" : "--zoo";
    return invalid_argument(name, " does not apply to ", where,
                            commands.count(Command::kZoo) != 0
                                ? " (it applies when importing MODEL.onnx or with --zoo)"
                                : " (it applies when importing MODEL.onnx)");
  }
  return Status::OK();
}

}  // namespace

Result<Options> parse_args(std::span<const std::string> args) {
  std::map<std::string, std::string> given;  // canonical name -> value ("" for flags)
  std::vector<std::string> positional;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.empty() || arg[0] != '-' || arg == "-") {
      positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (arg.rfind("--", 0) == 0) {
      if (const size_t eq = arg.find('='); eq != std::string::npos) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
      }
    }
    const auto it = option_table().find(name);
    if (it == option_table().end()) {
      return invalid_argument("unknown option '", arg, "'");
    }
    const OptionSpec& spec = it->second;
    std::string value;
    if (!spec.takes_value) {
      if (inline_value) return invalid_argument(spec.canonical, " takes no value");
    } else if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return invalid_argument(spec.canonical, " needs a value");
    }
    if (spec.takes_value && value.empty()) {
      return invalid_argument(spec.canonical, " needs a non-empty value");
    }
    if (!given.emplace(spec.canonical, value).second) {
      return invalid_argument(spec.canonical, " is given more than once");
    }
  }

  Options options;
  if (given.count("--help") != 0) return options;  // kHelp, whatever else was given

  if (positional.size() > 1) {
    return invalid_argument("more than one input model: '", positional[0], "' and '", positional[1],
                            "'");
  }
  const int commands = static_cast<int>(given.count("--info")) +
                       static_cast<int>(given.count("--zoo")) + static_cast<int>(positional.size());
  if (commands == 0) {
    return invalid_argument(
        "nothing to do: give MODEL.onnx to import, --info MODEL.psm, or "
        "--zoo NAME");
  }
  if (commands > 1) {
    return invalid_argument("--info, --zoo and an input model exclude each other; give one");
  }

  if (given.count("--info") != 0) {
    options.command = Command::kInfo;
    options.input = given["--info"];
  } else if (given.count("--zoo") != 0) {
    options.command = Command::kZoo;
    options.zoo_model = given["--zoo"];
    if (!valid_zoo_name(options.zoo_model)) {
      return invalid_argument("--zoo needs a model name (letters, digits, '_', '-', '.'), got '",
                              options.zoo_model, "'");
    }
  } else {
    options.command = Command::kImport;
    options.input = positional[0];
  }
  PS_TRY(check_applies(given, options.command));

  if (given.count("--batch") != 0) {
    PS_ASSIGN_OR_RETURN(options.batch, parse_dimension("--batch", given["--batch"]));
  }
  if (given.count("--seq") != 0) {
    PS_ASSIGN_OR_RETURN(options.seq, parse_dimension("--seq", given["--seq"]));
  }
  if (given.count("--mode") != 0) {
    const std::string& mode = given["--mode"];
    if (mode == "inference") {
      options.mode = ImportMode::kInference;
    } else if (mode == "training") {
      options.mode = ImportMode::kTraining;
    } else {
      return invalid_argument("--mode must be inference or training, got '", mode, "'");
    }
  }
  if (given.count("--grouping") != 0) {
    const std::string& grouping = given["--grouping"];
    if (grouping == "per-layer") {
      options.grouping = Grouping::kPerLayer;
    } else if (grouping == "blocks") {
      options.grouping = Grouping::kBlocks;
    } else if (grouping == "whole") {
      options.grouping = Grouping::kWhole;
    } else {
      return invalid_argument("--grouping must be per-layer, blocks or whole, got '", grouping,
                              "'");
    }
  }
  if (given.count("--skip-passes") != 0) {
    // Comma-separated names of the mode's fusion passes.
    const std::string& list = given["--skip-passes"];
    const auto mode = options.mode == ImportMode::kTraining ? onnx_loader::Mode::kTraining
                                                            : onnx_loader::Mode::kInference;
    size_t from = 0;
    while (from <= list.size()) {
      const size_t comma = std::min(list.find(',', from), list.size());
      const std::string name = list.substr(from, comma - from);
      if (name.empty()) {
        return invalid_argument("--skip-passes needs pass names separated by commas, got '", list,
                                "'");
      }
      PS_TRY(onnx_loader::check_skippable(mode, name).with_context("--skip-passes"));
      options.skip_passes.push_back(name);
      from = comma + 1;
    }
  }
  options.quiet = given.count("--quiet") != 0;

  if (given.count("--output") != 0) {
    options.output = given["--output"];
  } else if (options.command == Command::kImport) {
    options.output = std::filesystem::path(options.input).replace_extension(".psm");
  } else if (options.command == Command::kZoo) {
    options.output = options.zoo_model + ".onnx";
  }
  if (options.command == Command::kImport &&
      std::filesystem::path(options.output).lexically_normal() ==
          std::filesystem::path(options.input).lexically_normal()) {
    return invalid_argument("the output '", options.output, "' would overwrite the input model");
  }
  return options;
}

std::string usage() {
  return R"(psimport: import ONNX models into PipeSwitch model packages (.psm)

Usage:
  psimport MODEL.onnx [-o MODEL.psm] [--batch N] [--seq N] [--mode inference|training]
           [--grouping per-layer|blocks|whole] [--skip-passes PASS,...] [--quiet]
      Import an ONNX model (as exported by PyTorch): fix its symbolic dimensions, apply the
      graph passes for the mode, plan its memory and layer groups, and write a package.
  psimport --info MODEL.psm
      Check a package (header, checksums, manifest) and describe it.
  psimport --zoo NAME [-o NAME.onnx] [--mode inference|training] [--quiet]
      Write a model of the built-in zoo as an ONNX file. With --mode training, the graph
      to train: the same for ResNet and Inception; BERT gains a classification head
      (BertForSequenceClassification, 2 labels) and outputs only its logits.
  psimport --help
      This text.

Options:
  -o, --output PATH   where to write (default: the input's path with .psm in place of
                      .onnx; for --zoo, NAME.onnx in the current directory)
  --batch N           the batch size the symbolic batch dimension is fixed to
  --seq N             the sequence length for models with one (BERT: 251 in the paper)
  --mode M            inference (fused: BatchNorm folded, bias and ReLU fused; the default)
                      or training (unfused but for GELU, a linear layer's MatMul of a
                      transposed weight and its bias Add, attention's query, key and value
                      as one product, MatMul times a scalar, attention's mask Add with its
                      Softmax, and attention's two products reading the heads in place, for
                      the backward pass; with --zoo: the graph to train)
  --grouping G        how layers are grouped into host-to-GPU copies: per-layer, blocks
                      (one group per source block) or whole (the whole model at once);
                      default: the importer's choice
  --skip-passes P,... fusion passes not to run, to see what one does to a model's speed or
                      results (inference: fold_batchnorm, fuse_conv, fuse_matmul_bias,
                      fuse_head_projections, fuse_layernorm, fuse_add_layernorm,
                      fuse_gelu, remove_zero_add, fuse_matmul_scale, fuse_add_softmax,
                      fuse_attention, fuse_attention_softmax; training: fuse_gelu,
                      fuse_matmul_transpose, fuse_linear_bias, fuse_head_projections,
                      fuse_matmul_scale, remove_zero_add, fuse_add_softmax,
                      fuse_attention); the package records the passes that ran
  -q, --quiet         print nothing but errors
  Options also take the form --name=value; "--" ends the options.

Exit status: 0 on success, 1 when the work fails, 2 for bad arguments.
)";
}

const char* mode_name(ImportMode mode) {
  return mode == ImportMode::kTraining ? "training" : "inference";
}

const char* grouping_name(Grouping grouping) {
  switch (grouping) {
    case Grouping::kPerLayer:
      return "per-layer";
    case Grouping::kBlocks:
      return "blocks";
    case Grouping::kWhole:
      return "whole";
  }
  return "?";
}

}  // namespace ps::psimport
