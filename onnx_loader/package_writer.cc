#include "onnx_loader/package_writer.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <vector>

#include "common/hash64.h"
#include "onnx_loader/package_file.h"
#include "onnx_loader/package_validate.h"

namespace ps::onnx_loader {
namespace {

namespace psm = pipeswitch::psm;

constexpr size_t kWriteChunk = 8u << 20;

// The temporary file the package is written to. Removed on destruction unless commit() renamed
// it into place, so every early return leaves nothing behind.
class TempFile {
 public:
  TempFile() = default;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  TempFile(TempFile&&) = delete;
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() {
    if (path_.empty()) return;
    fd_.close(path_).ignore();
    ::unlink(path_.c_str());
  }

  // Creates ".NAME.tmp-PID-N" next to `target` (O_EXCL: never reuses an existing file).
  Status create(const std::filesystem::path& target) {
    static std::atomic<uint64_t> counter{0};
    const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
    for (int attempt = 0; attempt < 100; ++attempt) {
      const std::string name =
          str_cat(".", target.filename().string(), ".tmp-", ::getpid(), "-", counter.fetch_add(1));
      const std::string candidate = (dir / name).string();
      const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) {
        fd_ = UniqueFd(fd);
        path_ = candidate;
        return Status::OK();
      }
      if (errno != EEXIST) {
        return io_error(target.string(), ": cannot create the temporary file ", candidate, ": ",
                        errno_string(errno));
      }
    }
    return io_error(target.string(), ": cannot find a free temporary file name in ", dir.string());
  }

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

  // Syncs (optionally), closes and renames the file over `target`.
  Status commit(const std::string& target, bool sync) {
    if (sync && ::fsync(fd_.get()) != 0) {
      return io_error(path_, ": fsync failed: ", errno_string(errno));
    }
    PS_TRY(fd_.close(path_));
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      return io_error(target, ": cannot rename the temporary file ", path_,
                      " over it: ", errno_string(errno));
    }
    path_.clear();
    return Status::OK();
  }

 private:
  UniqueFd fd_;
  std::string path_;  // empty once committed (or before creation)
};

// Makes a completed rename durable: the directory entry itself is synced.
Status sync_directory(const std::filesystem::path& target) {
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    return io_error(target.string(), ": written, but its directory ", dir,
                    " cannot be opened to sync: ", errno_string(errno));
  }
  if (::fsync(fd.get()) != 0) {
    return io_error(target.string(),
                    ": written, but syncing its directory failed: ", errno_string(errno));
  }
  return fd.close(dir);
}

void report(const ProgressFn& progress, std::string_view stage, double fraction) {
  if (progress) progress(stage, fraction);
}

}  // namespace

std::string serialize_manifest(const psm::Manifest& manifest) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    // Fails only for messages with missing proto2 required fields; a Manifest has none.
    PS_CHECK(manifest.SerializeToCodedStream(&coded));
  }
  return bytes;
}

Status write_package(const std::string& path, const psm::Manifest& manifest,
                     std::span<const uint8_t> weights, const WriteOptions& options) {
  const std::filesystem::path target(path);
  if (path.empty() || !target.has_filename() || target.filename() == "." ||
      target.filename() == "..") {
    return invalid_argument("'", path, "' does not name a file to write the package to");
  }

  // Validate first: a bad manifest writes nothing.
  const psm::Manifest* to_write = &manifest;
  psm::Manifest stamped;
  if (manifest.format_version() == 0) {
    stamped = manifest;
    stamped.set_format_version(kFormatMajor);
    to_write = &stamped;
  }
  if (Status s = validate_manifest(*to_write, weights.size(), path); !s.ok()) {
    return Status(Code::kInvalidArgument, str_cat(s.message(), " (nothing was written)"));
  }
  const size_t manifest_bytes = to_write->ByteSizeLong();
  if (manifest_bytes == 0 || manifest_bytes > kMaxManifestBytes) {
    return invalid_argument(path, ": the manifest serializes to ", manifest_bytes,
                            " bytes (at most ", kMaxManifestBytes, "); nothing was written");
  }
  const std::string manifest_data = serialize_manifest(*to_write);
  PS_CHECK(manifest_data.size() == manifest_bytes);

  PackageHeader header;
  header.manifest_offset = kHeaderSize;
  header.manifest_size = manifest_data.size();
  header.weights_offset = weights_offset_for(manifest_data.size());
  header.weights_size = weights.size();
  header.manifest_checksum =
      hash64({reinterpret_cast<const uint8_t*>(manifest_data.data()), manifest_data.size()});
  const double total = static_cast<double>(header.weights_offset + weights.size());

  TempFile temp;
  PS_TRY(temp.create(target));

  // Header placeholder, manifest, zero padding; the real header goes in last, once the weight
  // checksum is known (computed while the blob is written, in one pass over it).
  std::vector<uint8_t> prefix(header.weights_offset, 0);
  std::copy(manifest_data.begin(), manifest_data.end(), prefix.begin() + kHeaderSize);
  PS_TRY(write_all(temp.fd(), prefix, temp.path()));
  report(options.progress, "write", static_cast<double>(prefix.size()) / total);

  Hash64 hasher;
  for (size_t done = 0; done < weights.size();) {
    const auto chunk = weights.subspan(done, std::min(kWriteChunk, weights.size() - done));
    hasher.update(chunk);
    PS_TRY(write_all(temp.fd(), chunk, temp.path()));
    done += chunk.size();
    report(options.progress, "write", static_cast<double>(header.weights_offset + done) / total);
  }
  header.weights_checksum = hasher.digest();
  const auto header_bytes = encode_header(header);
  PS_TRY(pwrite_all(temp.fd(), header_bytes, 0, temp.path()));

  report(options.progress, "sync", 0.0);
  PS_TRY(temp.commit(path, options.sync));
  if (options.sync) PS_TRY(sync_directory(target));
  report(options.progress, "done", 1.0);
  return Status::OK();
}

}  // namespace ps::onnx_loader
