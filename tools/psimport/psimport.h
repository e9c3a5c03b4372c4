// psimport's commands, behind main() so tests can run them with their own streams.
#pragma once

#include <ostream>
#include <span>
#include <string>

namespace ps::psimport {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the work failed (bad model, I/O error...)
inline constexpr int kExitUsage = 2;    // bad arguments

// Runs psimport with `args` (without the program name): normal output goes to `out`, errors
// ("psimport: <what>") to `err`. Returns the exit status.
int run(std::span<const std::string> args, std::ostream& out, std::ostream& err);

}  // namespace ps::psimport
