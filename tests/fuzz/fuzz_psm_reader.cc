// libFuzzer target: the model package reader (models/package_reader.h) on arbitrary file
// contents: open() validates header, checksums and manifest; read_weights() and describe() run
// on whatever opens. The bytes go to an in-memory file (memfd), so nothing touches the disk.
// Invariants: no crash, no leak, nothing read outside the file or the buffer.
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "models/package_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("psm-fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t written = 0;
  while (written < size) {
    const ssize_t n = write(fd, data + written, size - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  auto package = ps::models::Package::open("/proc/self/fd/" + std::to_string(fd));
  if (package.ok()) {
    (void)package->describe();
    if (package->weights_bytes() <= (64u << 20)) {
      std::vector<uint8_t> weights(package->weights_bytes());
      (void)package->read_weights(weights.data(), weights.size());
    }
  }
  close(fd);
  return 0;
}
