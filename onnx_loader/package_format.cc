#include "onnx_loader/package_format.h"

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/hash64.h"

namespace ps::onnx_loader {
namespace {

namespace psm = pipeswitch::psm;

static_assert(
    std::endian::native == std::endian::little,
    "the .psm header is little-endian and stored with memcpy; add byte swaps for this host");
static_assert(header_field::kHeaderChecksum + 8 == kHeaderSize);
static_assert(kHeaderSize % 8 == 0 && kBlobAlignment % kHeaderSize == 0);

template <typename T>
T load(std::span<const uint8_t> bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

template <typename T>
void store(std::span<uint8_t> bytes, size_t offset, T v) {
  std::memcpy(bytes.data() + offset, &v, sizeof(T));
}

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

// "\"PSMO\" (50 53 4d 4f)": the first bytes of a file, printable and in hex.
std::string leading_bytes(std::span<const uint8_t> bytes) {
  std::string text = "\"";
  std::string hex;
  for (uint8_t b : bytes) {
    if (b >= 0x20 && b < 0x7f && b != '"' && b != '\\') {
      text += static_cast<char>(b);
    } else {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\x%02x", b);
      text += esc;
    }
    char h[4];
    std::snprintf(h, sizeof(h), "%s%02x", hex.empty() ? "" : " ", b);
    hex += h;
  }
  return text + "\" (" + hex + ")";
}

// "[offset, end)"; "[offset, offset + size)" written out when the end does not fit 64 bits.
std::string range_string(uint64_t offset, uint64_t size) {
  uint64_t end;
  if (__builtin_add_overflow(offset, size, &end)) {
    return str_cat("[", offset, ", ", offset, " + ", size, ")");
  }
  return str_cat("[", offset, ", ", end, ")");
}

uint64_t align_up(uint64_t v, uint64_t alignment) {
  return (v + alignment - 1) / alignment * alignment;
}

// Checks where manifest and blob lie: the manifest right after the header, the blob at the next
// 4 KiB boundary and ending at the end of the file. The header itself has been checked.
Status check_layout(const PackageHeader& h, uint64_t file_size, std::string_view label) {
  if (h.manifest_offset != h.header_size) {
    return corrupt(label, ": the manifest offset is ", h.manifest_offset, ", expected ",
                   h.header_size, " (the manifest follows the header)");
  }
  if (h.manifest_size == 0) return corrupt(label, ": the header says the manifest is 0 bytes");
  if (h.manifest_size > kMaxManifestBytes) {
    return corrupt(label, ": the header says the manifest is ", h.manifest_size,
                   " bytes, more than the limit of ", kMaxManifestBytes);
  }
  if (h.manifest_offset > file_size || h.manifest_size > file_size - h.manifest_offset) {
    return corrupt(label, ": the manifest ", range_string(h.manifest_offset, h.manifest_size),
                   " extends past the end of the file (", file_size,
                   " bytes): the file is truncated or its header is wrong");
  }
  const uint64_t manifest_end = h.manifest_offset + h.manifest_size;
  const uint64_t expected_weights = align_up(manifest_end, kBlobAlignment);
  if (h.weights_offset != expected_weights) {
    return corrupt(label, ": the weight blob offset is ", h.weights_offset, ", expected ",
                   expected_weights, " (the first multiple of ", kBlobAlignment,
                   " after the manifest ", range_string(h.manifest_offset, h.manifest_size), ")");
  }
  if (h.weights_offset > file_size || h.weights_size > file_size - h.weights_offset) {
    return corrupt(label, ": the weight blob ", range_string(h.weights_offset, h.weights_size),
                   " extends past the end of the file (", file_size,
                   " bytes): the file is truncated or its header is wrong");
  }
  const uint64_t end = h.weights_offset + h.weights_size;
  if (end != file_size) {
    return corrupt(label, ": ", file_size - end, " bytes of trailing data after the weight blob ",
                   range_string(h.weights_offset, h.weights_size), " (the file is ", file_size,
                   " bytes)");
  }
  return Status::OK();
}

}  // namespace

uint64_t weights_offset_for(uint64_t manifest_size) {
  return align_up(kHeaderSize + manifest_size, kBlobAlignment);
}

std::array<uint8_t, kHeaderSize> encode_header(const PackageHeader& h) {
  std::array<uint8_t, kHeaderSize> out{};
  std::span<uint8_t> b(out);
  std::copy(kMagic.begin(), kMagic.end(), out.begin());
  store<uint16_t>(b, header_field::kMajor, h.major);
  store<uint16_t>(b, header_field::kMinor, h.minor);
  store<uint32_t>(b, header_field::kHeaderSize, kHeaderSize);
  store<uint64_t>(b, header_field::kManifestOffset, h.manifest_offset);
  store<uint64_t>(b, header_field::kManifestSize, h.manifest_size);
  store<uint64_t>(b, header_field::kWeightsOffset, h.weights_offset);
  store<uint64_t>(b, header_field::kWeightsSize, h.weights_size);
  store<uint64_t>(b, header_field::kManifestChecksum, h.manifest_checksum);
  store<uint64_t>(b, header_field::kWeightsChecksum, h.weights_checksum);
  store<uint64_t>(b, header_field::kFlags, h.flags);
  store<uint64_t>(b, header_field::kHeaderChecksum, hash64(b.first(header_field::kHeaderChecksum)));
  return out;
}

Result<PackageHeader> decode_header(std::span<const uint8_t> prefix, uint64_t file_size,
                                    std::string_view label) {
  if (file_size == 0) {
    return corrupt(label, ": the file is empty (0 bytes), not a .psm model package");
  }
  if (prefix.size() != std::min<uint64_t>(file_size, kMaxHeaderSize)) {
    return invalid_argument(label, ": decode_header needs the first ",
                            std::min<uint64_t>(file_size, kMaxHeaderSize), " bytes, got ",
                            prefix.size());
  }
  const size_t magic_bytes = std::min(prefix.size(), kMagic.size());
  if (std::memcmp(prefix.data(), kMagic.data(), magic_bytes) != 0) {
    return corrupt(label, ": not a .psm model package: the file starts with ",
                   leading_bytes(prefix.first(magic_bytes)), ", expected \"PSMODEL\\x00\"");
  }
  if (file_size < kHeaderSize) {
    return corrupt(label, ": truncated: the file is ", file_size, " bytes, shorter than the ",
                   kHeaderSize, "-byte .psm header");
  }

  PackageHeader h;
  h.major = load<uint16_t>(prefix, header_field::kMajor);
  h.minor = load<uint16_t>(prefix, header_field::kMinor);
  h.header_size = load<uint32_t>(prefix, header_field::kHeaderSize);
  if (h.major == 0) {
    return corrupt(label, ": format version 0.", h.minor,
                   " does not exist (the header is corrupt)");
  }
  if (h.major > kFormatMajor) {
    const bool verifies = load<uint64_t>(prefix, header_field::kHeaderChecksum) ==
                          hash64(prefix.first(header_field::kHeaderChecksum));
    return unsupported(label, ": format version ", h.major, ".", h.minor,
                       " is newer than this build reads (", kFormatMajor,
                       ".x); import the model again with this build's psimport or use a newer "
                       "pipeswitch",
                       verifies ? "" : " (or the header is corrupt: its checksum does not verify)");
  }
  const bool newer_minor = h.minor > kFormatMinor;
  if (!newer_minor && h.header_size != kHeaderSize) {
    return corrupt(label, ": header size ", h.header_size, " is wrong for format version ", h.major,
                   ".", h.minor, " (expected ", kHeaderSize, ")");
  }
  if (newer_minor &&
      (h.header_size < kHeaderSize || h.header_size > kMaxHeaderSize || h.header_size % 8 != 0)) {
    return corrupt(label, ": header size ", h.header_size, " is invalid (a multiple of 8 in [",
                   kHeaderSize, ", ", kMaxHeaderSize, "] expected)");
  }
  if (h.header_size > file_size) {
    return corrupt(label, ": truncated: the file is ", file_size, " bytes, shorter than its ",
                   h.header_size, "-byte header");
  }
  const size_t checksum_at = h.header_size - 8;
  h.header_checksum = load<uint64_t>(prefix, checksum_at);
  const uint64_t computed = hash64(prefix.first(checksum_at));
  if (h.header_checksum != computed) {
    return corrupt(label, ": header checksum mismatch (stored ", hex64(h.header_checksum),
                   ", computed ", hex64(computed), "): the header is corrupt");
  }

  h.manifest_offset = load<uint64_t>(prefix, header_field::kManifestOffset);
  h.manifest_size = load<uint64_t>(prefix, header_field::kManifestSize);
  h.weights_offset = load<uint64_t>(prefix, header_field::kWeightsOffset);
  h.weights_size = load<uint64_t>(prefix, header_field::kWeightsSize);
  h.manifest_checksum = load<uint64_t>(prefix, header_field::kManifestChecksum);
  h.weights_checksum = load<uint64_t>(prefix, header_field::kWeightsChecksum);
  h.flags = load<uint64_t>(prefix, header_field::kFlags);

  const uint64_t unknown_required = h.flags & kRequiredFlagsMask & ~kKnownRequiredFlags;
  if (unknown_required != 0) {
    return unsupported(label, ": the file needs features this build does not know",
                       " (required flags ", hex64(unknown_required), "); use a newer pipeswitch");
  }
  if (!newer_minor) {
    const auto reserved = prefix.subspan(header_field::kReserved,
                                         header_field::kHeaderChecksum - header_field::kReserved);
    if (std::any_of(reserved.begin(), reserved.end(), [](uint8_t b) { return b != 0; })) {
      return corrupt(label, ": reserved header bytes [", header_field::kReserved, ", ",
                     header_field::kHeaderChecksum, ") are not zero");
    }
  }
  PS_TRY(check_layout(h, file_size, label));
  return h;
}

size_t psm_dtype_size(int dtype) {
  switch (dtype) {
    case psm::DT_FLOAT32:
      return 4;
    case psm::DT_FLOAT16:
      return 2;
    case psm::DT_BFLOAT16:
      return 2;
    case psm::DT_FLOAT64:
      return 8;
    case psm::DT_INT64:
      return 8;
    case psm::DT_INT32:
      return 4;
    case psm::DT_INT8:
      return 1;
    case psm::DT_UINT8:
      return 1;
    case psm::DT_BOOL:
      return 1;
    default:
      return 0;
  }
}

std::string psm_dtype_name(int dtype) {
  switch (dtype) {
    case psm::DT_FLOAT32:
      return "float32";
    case psm::DT_FLOAT16:
      return "float16";
    case psm::DT_BFLOAT16:
      return "bfloat16";
    case psm::DT_FLOAT64:
      return "float64";
    case psm::DT_INT64:
      return "int64";
    case psm::DT_INT32:
      return "int32";
    case psm::DT_INT8:
      return "int8";
    case psm::DT_UINT8:
      return "uint8";
    case psm::DT_BOOL:
      return "bool";
    default:
      return str_cat("dtype(", dtype, ")");
  }
}

std::string psm_kind_name(int kind) {
  switch (kind) {
    case psm::Tensor::ACTIVATION:
      return "activation";
    case psm::Tensor::WEIGHT:
      return "weight";
    case psm::Tensor::INPUT:
      return "input";
    case psm::Tensor::OUTPUT:
      return "output";
    default:
      return str_cat("kind(", kind, ")");
  }
}

std::string psm_shape_string(const psm::Tensor& tensor) {
  std::string out = "[";
  for (int i = 0; i < tensor.shape_size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(tensor.shape(i));
  }
  return out + "]";
}

}  // namespace ps::onnx_loader
