#include "tools/psbench/batch_file.h"

#include <cstring>
#include <fstream>
#include <iterator>

namespace ps::psbench {
namespace {

template <typename T>
void put(std::vector<uint8_t>& out, size_t* at, T v) {
  std::memcpy(out.data() + *at, &v, sizeof v);
  *at += sizeof v;
}

// Reads little-endian values from a byte range, failing once past its end.
class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& bytes) : bytes_(bytes) {}
  template <typename T>
  bool get(T* v) {
    if (bytes_.size() - at_ < sizeof(T)) return false;
    std::memcpy(v, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  bool get_bytes(size_t n, std::string* out) {
    if (bytes_.size() - at_ < n) return false;
    out->assign(reinterpret_cast<const char*>(bytes_.data() + at_), n);
    at_ += n;
    return true;
  }
  bool done() const { return at_ == bytes_.size(); }

 private:
  const std::vector<uint8_t>& bytes_;
  size_t at_ = 0;
};

}  // namespace

std::vector<uint8_t> encode_token_file_header(const TokenFileHeader& h) {
  std::vector<uint8_t> out(8 + 4 * 4 + 8);
  std::memcpy(out.data(), "PSTOKEN1", 8);
  size_t at = 8;
  put<uint32_t>(out, &at, 1);
  put<uint32_t>(out, &at, h.count);
  put<uint32_t>(out, &at, static_cast<uint32_t>(h.inputs.size()));
  put<uint32_t>(out, &at, h.classes);
  put<int64_t>(out, &at, h.batch);
  for (const TokenFileInput& in : h.inputs) {
    out.resize(at + 4 + in.name.size() + 4 + 8 * in.sample_shape.size() + 8);
    put<uint32_t>(out, &at, static_cast<uint32_t>(in.name.size()));
    std::memcpy(out.data() + at, in.name.data(), in.name.size());
    at += in.name.size();
    put<uint32_t>(out, &at, static_cast<uint32_t>(in.sample_shape.size()));
    for (int64_t d : in.sample_shape) put<int64_t>(out, &at, d);
    put<int64_t>(out, &at, in.vocab);
  }
  return out;
}

std::vector<uint8_t> encode_batch_file_header(const BatchFileHeader& h) {
  std::vector<uint8_t> out(8 + 4 * 4 + 8 * (1 + h.sample_shape.size()));
  std::memcpy(out.data(), "PSBATCH1", 8);
  size_t at = 8;
  put<uint32_t>(out, &at, 1);
  put<uint32_t>(out, &at, h.count);
  put<uint32_t>(out, &at, static_cast<uint32_t>(h.sample_shape.size()));
  put<uint32_t>(out, &at, h.classes);
  put<int64_t>(out, &at, h.batch);
  for (int64_t d : h.sample_shape) put<int64_t>(out, &at, d);
  return out;
}

Status write_token_file(const std::string& path, const TokenFileHeader& h,
                        const models::cpu::SyntheticTokens& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return io_error("cannot create ", path);
  const std::vector<uint8_t> header = encode_token_file_header(h);
  out.write(reinterpret_cast<const char*>(header.data()),
            static_cast<std::streamsize>(header.size()));
  std::vector<models::cpu::Tensor> ids;
  std::vector<int64_t> labels;
  for (uint32_t b = 0; b < h.count; ++b) {
    PS_TRY(data.batch(b, h.batch, &ids, &labels));
    if (ids.size() != h.inputs.size()) {
      return invalid_argument("token file: the data has ", ids.size(), " inputs, the header ",
                              h.inputs.size());
    }
    out.write(reinterpret_cast<const char*>(labels.data()),
              static_cast<std::streamsize>(labels.size() * sizeof(int64_t)));
    for (const models::cpu::Tensor& t : ids) {
      out.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.byte_size()));
    }
  }
  if (!out.flush()) return io_error("cannot write ", path);
  return Status::OK();
}

Result<TokenFile> read_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("cannot open ", path);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  Reader r(bytes);
  TokenFile f;
  std::string magic;
  uint32_t version = 0, inputs = 0;
  if (!r.get_bytes(8, &magic) || magic != "PSTOKEN1" || !r.get(&version) || version != 1 ||
      !r.get(&f.header.count) || !r.get(&inputs) || !r.get(&f.header.classes) ||
      !r.get(&f.header.batch) || f.header.batch < 1) {
    return corrupt(path, ": not a PSTOKEN1 version 1 file");
  }
  for (uint32_t k = 0; k < inputs; ++k) {
    TokenFileInput input;
    uint32_t length = 0, rank = 0;
    if (!r.get(&length) || !r.get_bytes(length, &input.name) || !r.get(&rank) || rank > 8) {
      return corrupt(path, ": input ", k, "'s description is truncated");
    }
    input.sample_shape.resize(rank);
    for (int64_t& d : input.sample_shape) {
      if (!r.get(&d) || d < 1) return corrupt(path, ": input ", k, "'s shape is bad");
    }
    if (!r.get(&input.vocab)) return corrupt(path, ": input ", k, " is truncated");
    f.header.inputs.push_back(std::move(input));
  }
  for (uint32_t b = 0; b < f.header.count; ++b) {
    std::vector<int64_t> labels(static_cast<size_t>(f.header.batch));
    for (int64_t& v : labels) {
      if (!r.get(&v)) return corrupt(path, ": batch ", b, " is truncated");
    }
    std::vector<std::vector<int64_t>> ids;
    for (const TokenFileInput& input : f.header.inputs) {
      int64_t n = f.header.batch;
      for (int64_t d : input.sample_shape) n *= d;
      std::vector<int64_t> values(static_cast<size_t>(n));
      for (int64_t& v : values) {
        if (!r.get(&v)) return corrupt(path, ": batch ", b, " is truncated");
      }
      ids.push_back(std::move(values));
    }
    f.labels.push_back(std::move(labels));
    f.ids.push_back(std::move(ids));
  }
  if (!r.done()) return corrupt(path, ": trailing bytes after ", f.header.count, " batches");
  return f;
}

}  // namespace ps::psbench
