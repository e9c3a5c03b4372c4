#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "tools/psnc/psnc.h"

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  return ps::psnc::run(args, std::cout, std::cerr);
}
