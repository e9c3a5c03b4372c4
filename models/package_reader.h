// Reads and validates a model package (.psm); docs/psm-format.md describes the file.
//
// open() reads the header and the manifest (a few hundred KB at most) and checks everything in
// them against the file; the weight blob (up to hundreds of MB) is read later, by
// read_weights(), straight into memory the caller owns (typically pinned host memory), and its
// checksum is verified on the way. A corrupt or truncated file gives an error naming the file
// and the problem; nothing is ever read outside the file or outside the caller's buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "common/unique_fd.h"
#include "onnx_loader/package_file.h"
#include "onnx_loader/package_format.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models {

using onnx_loader::ProgressFn;

// An open, validated package. Owns the file's descriptor and keeps it open (so read_weights()
// reads the file that was validated, even if a new one is renamed over the path meanwhile);
// closes it when destroyed. Move-only.
class Package {
 public:
  // Opens `path` and validates header, manifest checksum and manifest (validate_manifest()).
  // Returns kNotFound when the file does not exist, kInvalidArgument when it is not a regular
  // file (a directory...), kIo when it cannot be opened or read, kUnsupported for a newer major
  // format version or unknown required features, kCorrupt for everything else wrong with it.
  static Result<Package> open(const std::string& path);

  // The same for a file the caller opened already (for reading; e.g. confined to a directory
  // with beneath_open): the Package takes `fd` over, and on error it is closed. `display_name`
  // names the file in errors and is what path() returns; nothing is opened by that name.
  // Errors as open(), less kNotFound.
  static Result<Package> open_fd(UniqueFd fd, std::string display_name);

  Package(Package&&) noexcept = default;
  Package& operator=(Package&&) noexcept = default;
  Package(const Package&) = delete;
  Package& operator=(const Package&) = delete;
  ~Package() = default;

  // The validated manifest. Its address stays the same when the Package is moved.
  const pipeswitch::psm::Manifest& manifest() const { return *manifest_; }
  const onnx_loader::PackageHeader& header() const { return header_; }
  // The path it was opened from, or open_fd()'s display name.
  const std::string& path() const { return path_; }
  // Size of the weight blob; read_weights() needs a buffer at least this large.
  uint64_t weights_bytes() const { return header_.weights_size; }

  // Reads the whole weight blob into dst[0, weights_bytes()) with large pread()s, hashing each
  // chunk as it arrives; `progress` (may be empty) gets ("read weights", fraction) per chunk.
  // Preconditions: dst points to at least dst_size writable bytes. Returns kInvalidArgument if
  // dst_size < weights_bytes() (nothing is read), kCorrupt if the checksum does not match or the
  // file was truncated since open(), kIo if a read fails. On error dst's contents are
  // unspecified. Safe to call more than once, but not concurrently on one Package.
  Status read_weights(void* dst, size_t dst_size, const ProgressFn& progress = {}) const;

  // A human summary for `psimport --info`: model, producer, opset, mode, inputs and outputs
  // with dtypes and shapes, layers per operator, parameters and weight size, groups, peak
  // activation memory, passes. Several lines, each ending in '\n'.
  std::string describe() const;

 private:
  Package() = default;

  std::string path_;
  UniqueFd fd_;
  onnx_loader::PackageHeader header_;
  std::unique_ptr<pipeswitch::psm::Manifest> manifest_;
};

}  // namespace ps::models
