// The byte layout of a model package (.psm); docs/psm-format.md is the full description.
//
//   [0, 128)                       header: fixed, little-endian (PackageHeader below)
//   [128, 128 + manifest_size)     the serialized pipeswitch.psm.Manifest (onnx_loader/psm.proto)
//   [.., weights_offset)           zero padding; weights_offset is a multiple of 4096
//   [weights_offset, end of file)  the weight blob, read straight into pinned host memory
//
// Three XXH64 checksums (common/hash64.h) cover everything: the header's own
// (over its first 120 bytes), the manifest's and the weight blob's; the reader checks the
// padding is zero, so no byte of a package goes unchecked.
//
// Versioning: `major.minor`. Bytes [0, 12) (magic, major, minor) never move. A reader accepts
// any minor of its own major (a newer minor only adds optional things: reserved bytes, optional
// flags, a longer header) and refuses a newer major with a message that says so.
//
// This file holds the layout, its constants and the header codec; the manifest's invariants
// are in package_validate.h, the writer in package_writer.h, the reader in models/.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "onnx_loader/psm.pb.h"

namespace ps::onnx_loader {

inline constexpr std::array<uint8_t, 8> kMagic = {'P', 'S', 'M', 'O', 'D', 'E', 'L', '\0'};
inline constexpr uint16_t kFormatMajor = 1;
inline constexpr uint16_t kFormatMinor = 0;
inline constexpr uint32_t kHeaderSize = 128;      // of this version; a newer minor may grow it
inline constexpr uint32_t kMaxHeaderSize = 4096;  // what any 1.x reader reads at most
inline constexpr uint64_t kBlobAlignment = 4096;  // of weights_offset in the file
inline constexpr uint32_t kMinWeightAlignment = 256;
inline constexpr uint32_t kMaxWeightAlignment = 1u << 20;
inline constexpr uint64_t kMaxManifestBytes = 512ull << 20;
// Flags: the low 32 bits are required features (a reader refuses a file with a bit it does not
// know), the high 32 bits optional ones (ignored when unknown). Version 1.0 defines none.
inline constexpr uint64_t kRequiredFlagsMask = 0xFFFFFFFFull;
inline constexpr uint64_t kKnownRequiredFlags = 0;

// Byte offsets of the header fields (all little-endian).
namespace header_field {
inline constexpr size_t kMagic = 0;              // 8 bytes "PSMODEL\0"
inline constexpr size_t kMajor = 8;              // u16
inline constexpr size_t kMinor = 10;             // u16
inline constexpr size_t kHeaderSize = 12;        // u32
inline constexpr size_t kManifestOffset = 16;    // u64
inline constexpr size_t kManifestSize = 24;      // u64
inline constexpr size_t kWeightsOffset = 32;     // u64
inline constexpr size_t kWeightsSize = 40;       // u64
inline constexpr size_t kManifestChecksum = 48;  // u64
inline constexpr size_t kWeightsChecksum = 56;   // u64
inline constexpr size_t kFlags = 64;             // u64
inline constexpr size_t kReserved = 72;          // 48 zero bytes
inline constexpr size_t kHeaderChecksum = 120;   // u64: XXH64 of bytes [0, 120); in general the
                                                 // last 8 bytes of the header, over all before
}  // namespace header_field

struct PackageHeader {
  uint16_t major = kFormatMajor;
  uint16_t minor = kFormatMinor;
  uint32_t header_size = kHeaderSize;
  uint64_t manifest_offset = kHeaderSize;
  uint64_t manifest_size = 0;
  uint64_t weights_offset = 0;
  uint64_t weights_size = 0;
  uint64_t manifest_checksum = 0;
  uint64_t weights_checksum = 0;
  uint64_t flags = 0;
  uint64_t header_checksum = 0;  // as stored in (or computed by) the codec
};

// Progress of a long step (writing or reading a package): `stage` names it ("write weights",
// "read weights", ...), `fraction` goes from 0 to 1 within a stage.
using ProgressFn = std::function<void(std::string_view stage, double fraction)>;

// The weights_offset a writer uses for a manifest of `manifest_size` bytes.
uint64_t weights_offset_for(uint64_t manifest_size);

// Serializes `header` to exactly kHeaderSize bytes: reserved bytes zero, header_size 128, the
// header checksum computed here (header.header_size and header.header_checksum are ignored).
// major/minor are written as given: writers pass the defaults; tests make other versions.
std::array<uint8_t, kHeaderSize> encode_header(const PackageHeader& header);

// Parses and checks a header. `prefix` holds the file's first min(file_size, kMaxHeaderSize)
// bytes; `label` (the file name) starts every error message. Checks, in order: size, magic,
// version (a newer major is kUnsupported), header size, header checksum, flags (an unknown
// required flag is kUnsupported), reserved bytes, and the layout: the manifest right after the
// header and inside the file, the blob at the next multiple of 4096 after it and ending exactly
// at file_size. Returns the header or the first problem found (kCorrupt unless said otherwise).
Result<PackageHeader> decode_header(std::span<const uint8_t> prefix, uint64_t file_size,
                                    std::string_view label);

// ---- Helpers over psm types, shared by validation, the reader and describe(). ----

// Bytes per element of a known dtype; 0 for DT_UNDEFINED and values outside the enum.
size_t psm_dtype_size(int dtype);
// "float32", ...; "dtype(N)" for unknown values.
std::string psm_dtype_name(int dtype);
// "weight", "activation", "input", "output"; "kind(N)" for unknown values.
std::string psm_kind_name(int kind);
// "[8,3,224,224]"; "[]" for a scalar.
std::string psm_shape_string(const pipeswitch::psm::Tensor& tensor);

}  // namespace ps::onnx_loader
