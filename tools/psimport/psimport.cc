#include "tools/psimport/psimport.h"

#include "models/package_reader.h"
#include "tools/psimport/options.h"

namespace ps::psimport {
namespace {

int info(const Options& options, std::ostream& out, std::ostream& err) {
  auto package = models::Package::open(options.input);
  if (!package.ok()) {
    err << "psimport: " << package.status().message() << "\n";
    return kExitFailure;
  }
  out << package->describe();
  return kExitOk;
}

// The importer (onnx_loader: ONNX -> graph -> passes -> plan -> write_package) and the zoo
// builders (models/zoo) are wired in here when they are merged.
int import_model(const Options& options, std::ostream& err) {
  err << "psimport: " << options.input
      << ": importing ONNX models is not wired into this build yet (the importer is not "
         "merged); nothing was written\n";
  return kExitFailure;
}

int write_zoo_model(const Options& options, std::ostream& err) {
  err << "psimport: --zoo " << options.zoo_model
      << ": the model zoo is not wired into this build yet; nothing was written\n";
  return kExitFailure;
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
      out << usage();
      return kExitOk;
    case Command::kInfo:
      return info(*options, out, err);
    case Command::kImport:
      return import_model(*options, err);
    case Command::kZoo:
      return write_zoo_model(*options, err);
  }
  return kExitFailure;
}

}  // namespace ps::psimport
