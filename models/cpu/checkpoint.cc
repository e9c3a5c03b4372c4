#include "models/cpu/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <vector>

#include "common/hash64.h"

namespace ps::models::cpu {

namespace {

constexpr char kMagic[8] = {'P', 'S', 'T', 'R', 'A', 'I', 'N', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 32;
constexpr uint8_t kWeight = 1, kMomentum = 2;

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

void put_tensor(std::vector<uint8_t>& out, uint8_t kind, const std::string& name, const Tensor& t) {
  put<uint8_t>(out, kind);
  put<uint32_t>(out, static_cast<uint32_t>(name.size()));
  out.insert(out.end(), name.begin(), name.end());
  put<uint32_t>(out, static_cast<uint32_t>(t.rank()));
  for (int64_t d : t.shape()) put<int64_t>(out, d);
  const auto* p = static_cast<const uint8_t*>(t.raw());
  out.insert(out.end(), p, p + t.byte_size());
}

// Reads the payload with bounds checks; every failure is CORRUPT.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <typename T>
  Result<T> get() {
    T v{};
    PS_TRY(bytes(&v, sizeof(T)));
    return v;
  }
  Status bytes(void* dst, size_t n) {
    if (n > size_ - at_) {
      return corrupt("checkpoint payload ends at byte ", size_, " inside a record at ", at_);
    }
    std::memcpy(dst, data_ + at_, n);
    at_ += n;
    return Status::OK();
  }
  bool done() const { return at_ == size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

std::string errno_text() { return std::strerror(errno); }

Status write_all(int fd, const uint8_t* data, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return io_error("checkpoint: writing '", path, "': ", errno_text());
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::OK();
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Status save_checkpoint(const Trainer& trainer, const std::string& path) {
  return save_checkpoint(trainer.manifest(), trainer.state(), path);
}

Status load_checkpoint(Trainer& trainer, const std::string& path) {
  PS_ASSIGN_OR_RETURN(TrainingState state,
                      read_checkpoint(trainer.manifest(), trainer.state(), path));
  trainer.mutable_state() = std::move(state);
  return Status::OK();
}

Status save_checkpoint(const pipeswitch::psm::Manifest& manifest, const TrainingState& state,
                       const std::string& path) {
  const auto& tensors = manifest.tensors();
  std::vector<uint8_t> payload;
  put<uint64_t>(payload, state.step);
  put<uint64_t>(payload, state.data_position);
  put<uint32_t>(payload, static_cast<uint32_t>(state.weights.size() + state.momentum.size()));
  for (const auto& [index, t] : state.weights) {
    put_tensor(payload, kWeight, tensors[static_cast<int>(index)].name(), t);
  }
  for (const auto& [index, t] : state.momentum) {
    put_tensor(payload, kMomentum, tensors[static_cast<int>(index)].name(), t);
  }
  std::vector<uint8_t> header;
  header.insert(header.end(), kMagic, kMagic + sizeof(kMagic));
  put<uint32_t>(header, kVersion);
  put<uint32_t>(header, 0);
  put<uint64_t>(header, payload.size());
  put<uint64_t>(header, hash64(payload));

  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("checkpoint: cannot create '", tmp, "': ", errno_text());
  Status s = write_all(fd, header.data(), header.size(), tmp);
  if (s.ok()) s = write_all(fd, payload.data(), payload.size(), tmp);
  if (s.ok() && ::fsync(fd) != 0) s = io_error("checkpoint: fsync '", tmp, "': ", errno_text());
  if (::close(fd) != 0 && s.ok()) s = io_error("checkpoint: close '", tmp, "': ", errno_text());
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = io_error("checkpoint: rename '", tmp, "' to '", path, "': ", errno_text());
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  // The rename is durable once the directory is synced.
  const std::string dir = directory_of(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error("checkpoint: open directory '", dir, "': ", errno_text());
  const bool synced = ::fsync(dfd) == 0;
  ::close(dfd);
  if (!synced) return io_error("checkpoint: fsync directory '", dir, "': ", errno_text());
  return Status::OK();
}

Result<TrainingState> read_checkpoint(const pipeswitch::psm::Manifest& manifest,
                                      const TrainingState& current_state,
                                      const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("checkpoint: cannot open '", path, "': ", errno_text());
  const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  if (in.bad()) return io_error("checkpoint: reading '", path, "' failed");
  if (file.size() < kHeaderBytes || std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0) {
    return corrupt("checkpoint '", path, "': not a training checkpoint (", file.size(),
                   " bytes, no PSTRAIN1 header)");
  }
  Reader header(file.data() + sizeof(kMagic), kHeaderBytes - sizeof(kMagic));
  PS_ASSIGN_OR_RETURN(const uint32_t version, header.get<uint32_t>());
  PS_ASSIGN_OR_RETURN(const uint32_t reserved, header.get<uint32_t>());
  PS_ASSIGN_OR_RETURN(const uint64_t payload_size, header.get<uint64_t>());
  PS_ASSIGN_OR_RETURN(const uint64_t checksum, header.get<uint64_t>());
  if (version != kVersion || reserved != 0) {
    return corrupt("checkpoint '", path, "': version ", version, " (this build reads ", kVersion,
                   ")");
  }
  if (payload_size != file.size() - kHeaderBytes) {
    return corrupt("checkpoint '", path, "' is truncated or has trailing bytes: the header says ",
                   payload_size, " payload bytes, the file has ", file.size() - kHeaderBytes);
  }
  const std::span<const uint8_t> payload(file.data() + kHeaderBytes, payload_size);
  if (hash64(payload) != checksum) {
    return corrupt("checkpoint '", path, "': checksum mismatch (the file is damaged)");
  }

  // Parse into a fresh state; the caller's changes only when all of it fits.
  const auto& tensors = manifest.tensors();
  std::map<std::string, uint32_t> by_name;
  for (const auto& [index, t] : current_state.weights) {
    by_name.emplace(tensors[static_cast<int>(index)].name(), index);
  }
  TrainingState state;
  Reader r(payload.data(), payload.size());
  PS_ASSIGN_OR_RETURN(state.step, r.get<uint64_t>());
  PS_ASSIGN_OR_RETURN(state.data_position, r.get<uint64_t>());
  PS_ASSIGN_OR_RETURN(const uint32_t count, r.get<uint32_t>());
  for (uint32_t k = 0; k < count; ++k) {
    PS_ASSIGN_OR_RETURN(const uint8_t kind, r.get<uint8_t>());
    PS_ASSIGN_OR_RETURN(const uint32_t name_size, r.get<uint32_t>());
    if (name_size > payload.size()) return corrupt("checkpoint '", path, "': a name too long");
    std::string name(name_size, '\0');
    PS_TRY(r.bytes(name.data(), name_size));
    PS_ASSIGN_OR_RETURN(const uint32_t rank, r.get<uint32_t>());
    if (rank > 8) return corrupt("checkpoint '", path, "': tensor '", name, "' of rank ", rank);
    Shape shape(rank);
    for (int64_t& d : shape) {
      PS_ASSIGN_OR_RETURN(d, r.get<int64_t>());
    }
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return invalid_argument("checkpoint '", path, "': tensor '", name,
                              "' is not a float weight of this model");
    }
    const Tensor& current = current_state.weights.at(it->second);
    if (current.shape() != shape) {
      return invalid_argument("checkpoint '", path, "': tensor '", name, "' is ",
                              shape_string(shape), ", the model's is ",
                              shape_string(current.shape()));
    }
    std::map<uint32_t, Tensor>* target = nullptr;
    if (kind == kWeight) {
      target = &state.weights;
    } else if (kind == kMomentum && tensors[static_cast<int>(it->second)].trainable()) {
      target = &state.momentum;
    } else {
      return corrupt("checkpoint '", path, "': tensor '", name, "' has kind ", int{kind});
    }
    PS_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(DType::kFloat64, shape));
    PS_TRY(r.bytes(t.mutable_raw(), t.byte_size()));
    if (!target->emplace(it->second, std::move(t)).second) {
      return corrupt("checkpoint '", path, "': tensor '", name, "' appears twice");
    }
  }
  if (!r.done()) return corrupt("checkpoint '", path, "': bytes after the last tensor");
  for (const auto& [name, index] : by_name) {
    if (state.weights.count(index) == 0) {
      return invalid_argument("checkpoint '", path, "': weight '", name, "' is missing");
    }
  }
  return state;
}

}  // namespace ps::models::cpu
