// psimport: imports ONNX models into model packages (.psm), describes packages, writes the
// built-in model zoo as ONNX. `psimport --help` says how.
#include <iostream>
#include <string>
#include <vector>

#include "tools/psimport/psimport.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return ps::psimport::run(args, std::cout, std::cerr);
}
