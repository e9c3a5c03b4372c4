#include "models/package_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <vector>

#include "common/hash64.h"
#include "onnx_loader/package_validate.h"

namespace ps::models {
namespace {

namespace psm = pipeswitch::psm;
using onnx_loader::errno_string;

// Large enough that syscalls cost nothing next to the copy, small enough that the hash reads
// each chunk back while it is still in the cache.
constexpr size_t kReadChunk = 4u << 20;

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

}  // namespace

Result<Package> Package::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; open_fd checks the type first.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) return not_found(path, ": no such file");
    return io_error(path, ": cannot open: ", errno_string(err));
  }
  return open_fd(std::move(fd), path);
}

Result<Package> Package::open_fd(UniqueFd fd, std::string display_name) {
  const std::string& path = display_name;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return io_error(path, ": fstat failed: ", errno_string(errno));
  if (!S_ISREG(st.st_mode)) {
    return invalid_argument(path, ": is ", file_type_name(st.st_mode), ", not a .psm file");
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return io_error(path, ": fcntl failed: ", errno_string(errno));
  }
  const auto file_size = static_cast<uint64_t>(st.st_size);

  // Header.
  std::vector<uint8_t> prefix(std::min<uint64_t>(file_size, onnx_loader::kMaxHeaderSize));
  PS_TRY(onnx_loader::pread_exact(fd.get(), prefix, 0, path));
  PS_ASSIGN_OR_RETURN(onnx_loader::PackageHeader header,
                      onnx_loader::decode_header(prefix, file_size, path));

  // Manifest and the padding after it (less than 4 KiB): checksum, zero padding, parse.
  std::vector<uint8_t> manifest_bytes(header.weights_offset - header.manifest_offset);
  PS_TRY(onnx_loader::pread_exact(fd.get(), manifest_bytes, header.manifest_offset, path));
  const std::span<const uint8_t> serialized(manifest_bytes.data(), header.manifest_size);
  const uint64_t checksum = ps::hash64(serialized);
  if (checksum != header.manifest_checksum) {
    return corrupt(path, ": manifest checksum mismatch (stored ", hex64(header.manifest_checksum),
                   ", computed ", hex64(checksum), "): the manifest is corrupt");
  }
  const auto padding = std::span<const uint8_t>(manifest_bytes).subspan(header.manifest_size);
  const auto nonzero = std::find_if(padding.begin(), padding.end(), [](uint8_t b) { return b; });
  if (nonzero != padding.end()) {
    return corrupt(path, ": the padding before the weight blob is not zero (byte ",
                   header.manifest_offset + header.manifest_size + (nonzero - padding.begin()),
                   ")");
  }
  auto manifest = std::make_unique<psm::Manifest>();
  if (!manifest->ParseFromArray(serialized.data(), static_cast<int>(serialized.size()))) {
    return corrupt(path, ": the manifest (", serialized.size(),
                   " bytes) is not a valid pipeswitch.psm.Manifest message");
  }
  PS_TRY(onnx_loader::validate_manifest(*manifest, header.weights_size, path));

  Package package;
  package.path_ = std::move(display_name);
  package.fd_ = std::move(fd);
  package.header_ = header;
  package.manifest_ = std::move(manifest);
  return package;
}

Status Package::read_weights(void* dst, size_t dst_size, const ProgressFn& progress) const {
  const uint64_t total = weights_bytes();
  if (dst_size < total) {
    return invalid_argument(path_, ": read_weights needs a buffer of ", total, " bytes, got ",
                            dst_size);
  }
  if (dst == nullptr && total > 0)
    return invalid_argument(path_, ": read_weights got a null buffer");
  // Only a hint; a failure changes nothing.
  (void)::posix_fadvise(fd_.get(), static_cast<off_t>(header_.weights_offset),
                        static_cast<off_t>(total), POSIX_FADV_SEQUENTIAL);

  auto* out = static_cast<uint8_t*>(dst);
  ps::Hash64 hasher;
  for (uint64_t done = 0; done < total;) {
    const std::span<uint8_t> chunk(out + done, std::min<uint64_t>(kReadChunk, total - done));
    PS_TRY(onnx_loader::pread_exact(fd_.get(), chunk, header_.weights_offset + done, path_));
    hasher.update(chunk);
    done += chunk.size();
    if (progress) progress("read weights", static_cast<double>(done) / static_cast<double>(total));
  }
  const uint64_t checksum = hasher.digest();
  if (checksum != header_.weights_checksum) {
    return corrupt(path_, ": weight blob checksum mismatch (stored ",
                   hex64(header_.weights_checksum), ", computed ", hex64(checksum),
                   "): the weights are corrupt");
  }
  if (progress && total == 0) progress("read weights", 1.0);
  return Status::OK();
}

}  // namespace ps::models
