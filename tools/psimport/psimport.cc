#include "tools/psimport/psimport.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>

#include "models/package_reader.h"
#include "models/zoo/zoo.h"
#include "onnx_loader/lower.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/package_writer.h"
#include "onnx_loader/pipeline.h"
#include "onnx_loader/supported_ops.h"
#include "tools/psimport/options.h"

namespace ps::psimport {
namespace {

constexpr const char* kVersion = "0.1.0";

int info(const Options& options, std::ostream& out, std::ostream& err) {
  auto package = models::Package::open(options.input);
  if (!package.ok()) {
    err << "psimport: " << package.status().message() << "\n";
    return kExitFailure;
  }
  const std::string description = package->describe();
  out << description;
  if (!description.ends_with('\n')) out << "\n";
  return kExitOk;
}

// Prints the importer's and the writer's progress on stderr: one line per stage, and for the
// long stages a line per 10% (on a terminal, one line rewritten in place).
class ProgressPrinter {
 public:
  ProgressPrinter(std::ostream& err, bool quiet, bool tty) : err_(err), quiet_(quiet), tty_(tty) {}
  ~ProgressPrinter() { finish(); }

  void operator()(std::string_view stage, double fraction) {
    if (quiet_) return;
    const int percent = static_cast<int>(fraction * 100.0);
    if (stage == stage_ && percent / 10 == last_percent_ / 10 && percent != 100) return;
    if (tty_) {
      err_ << "\r\x1b[K  " << stage << " " << percent << "%" << std::flush;
      pending_newline_ = true;
    } else if (stage != stage_) {
      err_ << "  " << stage << "...\n";  // not a terminal (a log): one line per stage
    }
    stage_ = std::string(stage);
    last_percent_ = percent;
  }
  void finish() {
    if (pending_newline_) err_ << "\n";
    pending_newline_ = false;
  }

 private:
  std::ostream& err_;
  bool quiet_;
  bool tty_;
  std::string stage_;
  int last_percent_ = -1;
  bool pending_newline_ = false;
};

std::string stem_of(const std::string& path) {
  std::string name = std::filesystem::path(path).filename().string();
  if (name.size() > 5 && name.ends_with(".onnx")) name.resize(name.size() - 5);
  return name;
}

onnx_loader::GroupingMode grouping_mode(const std::optional<Grouping>& g) {
  if (!g) return onnx_loader::GroupingMode::kPerLayer;  // the default until optimal grouping
  switch (*g) {
    case Grouping::kPerLayer: return onnx_loader::GroupingMode::kPerLayer;
    case Grouping::kBlocks: return onnx_loader::GroupingMode::kBlocks;
    case Grouping::kWhole: return onnx_loader::GroupingMode::kWholeModel;
  }
  return onnx_loader::GroupingMode::kPerLayer;
}

// ONNX file -> graph -> passes for the mode -> memory plan, groups, weight blob -> package.
// Inference: the import folds constants and removes Identity/Dropout, then the fusion passes
// run. Training: the import keeps the graph as exported (its own folding would turn parameters
// such as BERT's position embeddings into constants), and the training pipeline folds only what
// is not a parameter.
Status import_to_package(const Options& options, std::ostream& out, ProgressPrinter& progress) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const bool training = options.mode == ImportMode::kTraining;
  const auto mode = training ? onnx_loader::Mode::kTraining : onnx_loader::Mode::kInference;

  onnx_loader::ImportOptions import_options;
  if (options.batch) import_options.dims["batch"] = *options.batch;
  if (options.seq) import_options.dims["seq"] = *options.seq;
  import_options.progress = [&](std::string_view stage, double f) { progress(stage, f); };
  onnx_loader::ImportStats stats;
  import_options.stats = &stats;
  import_options.optimize = !training;
  import_options.require_executable = !training;
  PS_ASSIGN_OR_RETURN(onnx_loader::Graph graph,
                      onnx_loader::import_onnx_file(options.input, import_options));
  const auto imported = Clock::now();

  progress("passes", 0.0);
  PS_ASSIGN_OR_RETURN(onnx_loader::PipelineReport report,
                      onnx_loader::run_passes(graph, mode, options.skip_passes));
  if (training) PS_TRY(onnx_loader::check_executable(graph).with_context(options.input));
  progress("passes", 1.0);

  onnx_loader::LowerOptions lower_options;
  lower_options.mode = mode;
  lower_options.grouping = grouping_mode(options.grouping);
  lower_options.model_name = stem_of(options.input);
  lower_options.producer = str_cat("psimport ", kVersion, " from ",
                                   std::filesystem::path(options.input).filename().string());
  lower_options.passes = report.pass_names();
  progress("plan", 0.0);
  PS_ASSIGN_OR_RETURN(onnx_loader::LoweredModel lowered, onnx_loader::lower(graph, lower_options));
  progress("plan", 1.0);

  onnx_loader::WriteOptions write_options;
  write_options.progress = [&](std::string_view stage, double f) { progress(stage, f); };
  PS_TRY(onnx_loader::write_package(options.output, lowered.manifest, lowered.weights,
                                    write_options));
  progress.finish();
  const auto written = Clock::now();

  if (options.quiet) return Status::OK();
  // The summary is read back from the file just written, so it also proves the package valid.
  PS_ASSIGN_OR_RETURN(models::Package package, models::Package::open(options.output));
  auto ms = [](Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  out << "imported " << options.input << " -> " << options.output << " in " << ms(written - start)
      << " ms (import " << ms(imported - start) << " ms)\n"
      << "  ONNX: " << stats.onnx_nodes << " nodes (" << stats.constant_nodes << " Constant), "
      << stats.initializers << " initializers; folded " << stats.folded << ", removed "
      << stats.removed << " Identity/Dropout; libonnx checks: "
      << (stats.libonnx_checked ? "passed" : "not run (" + stats.libonnx_note + ")") << "\n"
      << "  passes: " << report.summary() << "\n";
  const std::string description = package.describe();
  out << description;
  if (!description.ends_with('\n')) out << "\n";
  return Status::OK();
}

int import_model(const Options& options, std::ostream& out, std::ostream& err) {
  ProgressPrinter progress(err, options.quiet, &err == &std::cerr && isatty(STDERR_FILENO));
  Status s = import_to_package(options, out, progress);
  progress.finish();
  if (!s.ok()) {
    // write_package never leaves a partial file behind; nothing else writes.
    err << "psimport: " << s.message() << "\nnothing was written\n";
    return kExitFailure;
  }
  return kExitOk;
}

int write_zoo_model(const Options& options, std::ostream& out, std::ostream& err) {
  const auto names = zoo::model_names();
  if (std::find(names.begin(), names.end(), options.zoo_model) == names.end()) {
    err << "psimport: --zoo: no model named '" << options.zoo_model << "'; the zoo has:";
    for (const auto& n : names) err << " " << n;
    err << "\n";
    return kExitUsage;
  }
  zoo::ZooOptions zoo_options;
  zoo_options.training_graph = options.mode == ImportMode::kTraining;
  Status s = zoo::write_model(options.zoo_model, options.output, zoo_options);
  if (!s.ok()) {
    err << "psimport: --zoo " << options.zoo_model << ": " << s.message() << "\n";
    return kExitFailure;
  }
  if (!options.quiet) {
    auto info = zoo::describe(options.zoo_model);
    out << "wrote " << options.output << " (" << options.zoo_model;
    if (zoo_options.training_graph) out << ", training graph";
    if (info.ok()) out << ": " << info->description << ", " << info->parameters << " parameters";
    out << ")\n";
  }
  return kExitOk;
}

}  // namespace

int run(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
  auto options = parse_args(args);
  if (!options.ok()) {
    err << "psimport: " << options.status().message() << "\n"
        << "Try 'psimport --help'.\n";
    return kExitUsage;
  }
  switch (options->command) {
    case Command::kHelp:
      out << usage() << "\nZoo models:";
      for (const auto& name : zoo::model_names()) out << " " << name;
      out << "\n";
      return kExitOk;
    case Command::kInfo:
      return info(*options, out, err);
    case Command::kImport:
      return import_model(*options, out, err);
    case Command::kZoo:
      return write_zoo_model(*options, out, err);
  }
  return kExitFailure;
}

}  // namespace ps::psimport
