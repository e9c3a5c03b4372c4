// The kill-restart policy (the paper's "two processes"): every request runs in a new process
// that initialises CUDA, cuDNN and cuBLAS, reads the model package, builds its plan, copies the
// weights, computes, prints the outputs and exits. pipeswitchd is that process too, started as
// `pipeswitchd --oneshot ...` (oneshot_main), so nothing has to be found on the PATH.
//
// Protocol between the two: the parent writes the request's raw inputs (input_bytes(model,
// batch) bytes) to the child's stdin and reads the outputs, concatenated as on the wire, from
// its stdout; the child's stderr carries its error message; exit status 0 means success.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"

namespace ps::reactor {

struct OneshotRequest {
  std::string exe;  // the pipeswitchd binary (/proc/self/exe of the server)
  int device = 0;
  std::string package;  // a .psm file
  std::string precision = "tf32";
  uint32_t batch = 1;  // a multiple of the package's native batch
};

// Runs `request.exe --oneshot ...` with `input` on its stdin and waits for it (blocking: the
// GPU backend's device thread calls it). Returns its stdout. Errors: kDevice with the child's
// stderr when it exits non-zero, kIo when it cannot be started.
Result<std::string> run_in_fresh_process(const OneshotRequest& request, const std::string& input);

// The child's body: `args` are the arguments after "--oneshot" (--device N --package P
// --precision tf32|fp32 --batch B). Reads stdin, writes stdout; returns the exit status.
int oneshot_main(std::span<const std::string> args);

}  // namespace ps::reactor
