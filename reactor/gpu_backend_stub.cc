// The GPU backend's entry point until issue 6 lands: the GPU backend's own source file defines
// make_gpu_backend and replaces this one in reactor/CMakeLists.txt.
#include "reactor/backend_factory.h"

namespace ps::reactor {

Result<std::unique_ptr<Backend>> make_gpu_backend(int device_index, const BackendOptions& options) {
  (void)options;
  return unavailable("--device ", device_index,
                     ": the GPU backend is not built yet (issue 6); use --device cpu");
}

}  // namespace ps::reactor
