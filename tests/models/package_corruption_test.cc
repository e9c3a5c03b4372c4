// Corrupt, truncated, lying and invalid packages: each is refused with an error that names the
// file and the problem, at open() or at read_weights(); none crashes or reads out of bounds
// (the lead runs this under ASan too).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "models/package_reader.h"
#include "common/hash64.h"
#include "onnx_loader/package_format.h"
#include "onnx_loader/package_writer.h"
#include "tests/models/package_fixture.h"

namespace {

namespace psm = pipeswitch::psm;
using Catch::Contains;
using ps::Code;
using ps::models::Package;
using ps::onnx_loader::PackageHeader;
using ps::testing::build_raw_package;
using ps::testing::make_small_model;
using ps::testing::read_file;
using ps::testing::TempDir;
using ps::testing::write_file;

// A valid package on disk and its bytes.
struct GoodPackage {
  TempDir dir;
  ps::testing::SmallModel model = make_small_model();
  std::string path = dir.file("good.psm");
  std::string manifest_bytes = ps::onnx_loader::serialize_manifest(model.manifest);
  std::vector<uint8_t> bytes;

  GoodPackage() {
    ps::onnx_loader::WriteOptions options;
    options.sync = false;
    REQUIRE(ps::onnx_loader::write_package(path, model.manifest, model.weights, options).ok());
    bytes = read_file(path);
    REQUIRE(bytes.size() == 4096 + model.weights.size());
  }
  uint64_t manifest_end() const { return 128 + manifest_bytes.size(); }
};

// Opens `path`, which must fail; returns the error.
ps::Status open_error(const std::string& path) {
  auto package = Package::open(path);
  REQUIRE_FALSE(package.ok());
  return package.status();
}

// Recomputes the header checksum (bytes [120, 128)) after a test edited the header.
void reseal(std::vector<uint8_t>& file) {
  const uint64_t h = ps::hash64(std::span<const uint8_t>(file).first(120));
  std::memcpy(&file[120], &h, 8);
}

template <typename T>
void put(std::vector<uint8_t>& file, size_t offset, T value) {
  std::memcpy(&file[offset], &value, sizeof(T));
}

// ---------------------------------------------------------------------------------------------

TEST_CASE("a package truncated at any byte is refused at open", "[package][corrupt]") {
  GoodPackage good;
  const std::string& path = good.path;
  // Every length through the header and the manifest; every 16th in the padding and every 7th in
  // the blob, and the last few bytes.
  std::vector<size_t> lengths;
  for (size_t length = 0; length < good.bytes.size(); ++length) {
    const bool in_padding = length > good.manifest_end() && length < 4096;
    const bool in_blob = length >= 4096 && length + 8 < good.bytes.size();
    if ((!in_padding && !in_blob) || (in_padding && length % 16 == 0) ||
        (in_blob && length % 7 == 0)) {
      lengths.push_back(length);
    }
  }
  // Shrinks the one file step by step (rewriting a file per length costs a flush each on ext4).
  for (auto it = lengths.rbegin(); it != lengths.rend(); ++it) {
    const size_t length = *it;
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(length)) == 0);
    const ps::Status s = open_error(path);
    INFO("truncated to " << length << " bytes: " << s.to_string());
    REQUIRE(s.code() == Code::kCorrupt);
    REQUIRE_THAT(s.message(), Contains(path + ": "));
    REQUIRE_THAT(s.message(), Contains(length == 0 ? "empty" : "truncated"));
  }
}

TEST_CASE("a package truncated after open fails read_weights", "[package][corrupt]") {
  GoodPackage good;
  for (uint64_t length : {uint64_t{4096}, uint64_t{4096 + 500}, uint64_t{good.bytes.size() - 1}}) {
    write_file(good.path, good.bytes);
    auto package = Package::open(good.path);
    REQUIRE(package.ok());
    REQUIRE(::truncate(good.path.c_str(), static_cast<off_t>(length)) == 0);
    std::vector<uint8_t> weights(package->weights_bytes());
    const ps::Status s = package->read_weights(weights.data(), weights.size());
    INFO(s.to_string());
    CHECK(s.code() == Code::kCorrupt);
    CHECK_THAT(s.message(), Contains(good.path + ": truncated"));
  }
}

TEST_CASE("every flipped bit is detected", "[package][corrupt]") {
  GoodPackage good;
  const int fd = ::open(good.path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  // Flips bit `bit` of byte `offset` in place, runs check(), flips it back.
  auto with_flip = [&](size_t offset, int bit, const std::function<void()>& check) {
    uint8_t b = good.bytes[offset] ^ static_cast<uint8_t>(1u << bit);
    REQUIRE(::pwrite(fd, &b, 1, static_cast<off_t>(offset)) == 1);
    check();
    REQUIRE(::pwrite(fd, &good.bytes[offset], 1, static_cast<off_t>(offset)) == 1);
  };

  SECTION("header: every bit, refused at open") {
    for (size_t offset = 0; offset < 128; ++offset) {
      for (int bit = 0; bit < 8; ++bit) {
        with_flip(offset, bit, [&] {
          const ps::Status s = open_error(good.path);
          INFO("byte " << offset << " bit " << bit << ": " << s.to_string());
          REQUIRE_THAT(s.message(), Contains(good.path + ": "));
        });
      }
    }
  }
  SECTION("manifest: a bit in every byte (all bits of every 8th), refused at open") {
    for (size_t offset = 128; offset < good.manifest_end(); ++offset) {
      const int bits = offset % 8 == 0 ? 8 : 1;
      for (int k = 0; k < bits; ++k) {
        const int bit = bits == 8 ? k : static_cast<int>(offset % 8);
        with_flip(offset, bit, [&] {
          const ps::Status s = open_error(good.path);
          INFO("byte " << offset << " bit " << bit << ": " << s.to_string());
          REQUIRE(s.code() == Code::kCorrupt);
          REQUIRE_THAT(s.message(), Contains("manifest checksum mismatch"));
        });
      }
    }
  }
  SECTION("padding: its first and last byte and every 5th, refused at open") {
    for (size_t offset = good.manifest_end(); offset < 4096; ++offset) {
      if (offset % 5 != 0 && offset != good.manifest_end() && offset != 4095) continue;
      with_flip(offset, static_cast<int>(offset % 8), [&] {
        const ps::Status s = open_error(good.path);
        INFO("byte " << offset << ": " << s.to_string());
        REQUIRE_THAT(s.message(), Contains("padding before the weight blob is not zero"));
      });
    }
  }
  SECTION("weights: a bit in every byte (all bits of some), refused by read_weights") {
    std::vector<uint8_t> weights(good.model.weights.size());
    for (size_t offset = 4096; offset < good.bytes.size(); ++offset) {
      const int bits = offset % 97 == 0 ? 8 : 1;
      for (int k = 0; k < bits; ++k) {
        const int bit = bits == 8 ? k : static_cast<int>(offset % 8);
        with_flip(offset, bit, [&] {
          auto package = Package::open(good.path);
          REQUIRE(package.ok());
          const ps::Status s = package->read_weights(weights.data(), weights.size());
          INFO("byte " << offset << " bit " << bit << ": " << s.to_string());
          REQUIRE(s.code() == Code::kCorrupt);
          REQUIRE_THAT(s.message(), Contains(good.path + ": weight blob checksum mismatch"));
        });
      }
    }
  }
  ::close(fd);
}

TEST_CASE("a header that lies about offsets and sizes is refused", "[package][corrupt]") {
  GoodPackage good;
  const std::string path = good.dir.file("lie.psm");
  struct Lie {
    const char* what;
    std::function<void(PackageHeader&)> tweak;
    const char* expected;
  };
  const Lie lies[] = {
      {"blob past EOF", [](PackageHeader& h) { h.weights_size += 4096; },
       "the weight blob [4096, 9228) extends past the end of the file (5132 bytes): the file is "
       "truncated or its header is wrong"},
      {"blob size overflows", [](PackageHeader& h) { h.weights_size = UINT64_MAX; },
       "the weight blob [4096, 4096 + 18446744073709551615) extends past the end"},
      {"blob offset past EOF", [](PackageHeader& h) { h.weights_offset = 1ull << 40; },
       "the weight blob offset is 1099511627776, expected 4096"},
      {"blob offset unaligned", [](PackageHeader& h) { h.weights_offset = 4100; },
       "the weight blob offset is 4100, expected 4096"},
      {"short blob: trailing data", [](PackageHeader& h) { h.weights_size -= 36; },
       "36 bytes of trailing data after the weight blob"},
      {"manifest past EOF", [](PackageHeader& h) { h.manifest_size = 6000; },
       "the manifest [128, 6128) extends past the end of the file"},
      {"manifest size absurd", [](PackageHeader& h) { h.manifest_size = UINT64_MAX; },
       "the header says the manifest is 18446744073709551615 bytes, more than the limit"},
      {"manifest empty", [](PackageHeader& h) { h.manifest_size = 0; },
       "the header says the manifest is 0 bytes"},
      {"manifest offset inside the header", [](PackageHeader& h) { h.manifest_offset = 0; },
       "the manifest offset is 0, expected 128"},
      {"manifest offset after the header", [](PackageHeader& h) { h.manifest_offset = 136; },
       "the manifest offset is 136, expected 128"},
      {"manifest one byte longer", [](PackageHeader& h) { h.manifest_size += 1; },
       "manifest checksum mismatch"},
      {"unknown required feature", [](PackageHeader& h) { h.flags = 1; },
       "the file needs features this build does not know (required flags 0x0000000000000001)"},
  };
  for (const Lie& lie : lies) {
    write_file(path, build_raw_package(good.manifest_bytes, good.model.weights, lie.tweak));
    const ps::Status s = open_error(path);
    INFO(lie.what << ": " << s.to_string());
    CHECK_THAT(s.message(), Contains(path + ": " + lie.expected));
    CHECK(s.code() == (std::string(lie.what) == "unknown required feature" ? Code::kUnsupported
                                                                           : Code::kCorrupt));
  }
}

TEST_CASE("versions: a newer major is refused, a newer minor is read", "[package][version]") {
  GoodPackage good;
  const std::string path = good.dir.file("v.psm");

  write_file(path, build_raw_package(good.manifest_bytes, good.model.weights,
                                     [](PackageHeader& h) { h.major = 2; }));
  ps::Status s = open_error(path);
  CHECK(s.code() == Code::kUnsupported);
  CHECK_THAT(s.message(),
             Contains(path + ": format version 2.0 is newer than this build reads (1.x)"));
  CHECK_THAT(s.message(), !Contains("corrupt"));

  // A newer major whose header does not verify with this version's layout says it may be either.
  auto bytes = build_raw_package(good.manifest_bytes, good.model.weights,
                                 [](PackageHeader& h) { h.major = 7; });
  bytes[100] ^= 1;
  write_file(path, bytes);
  s = open_error(path);
  CHECK(s.code() == Code::kUnsupported);
  CHECK_THAT(s.message(), Contains("format version 7.0 is newer"));
  CHECK_THAT(s.message(), Contains("or the header is corrupt"));

  write_file(path, build_raw_package(good.manifest_bytes, good.model.weights,
                                     [](PackageHeader& h) { h.major = 0; }));
  s = open_error(path);
  CHECK(s.code() == Code::kCorrupt);
  CHECK_THAT(s.message(), Contains("format version 0.0 does not exist"));

  // 1.0 with a wrong header size, or non-zero reserved bytes: corrupt.
  bytes = good.bytes;
  put<uint32_t>(bytes, 12, 136);
  reseal(bytes);
  write_file(path, bytes);
  CHECK_THAT(open_error(path).message(),
             Contains("header size 136 is wrong for format version 1.0"));
  bytes = good.bytes;
  bytes[80] = 1;
  reseal(bytes);
  write_file(path, bytes);
  CHECK_THAT(open_error(path).message(), Contains("reserved header bytes [72, 120) are not zero"));

  // 1.1 may use reserved bytes and optional flags: read as 1.0.
  bytes = good.bytes;
  put<uint16_t>(bytes, 10, 1);
  bytes[80] = 1;
  put<uint64_t>(bytes, 64, 1ull << 40);
  reseal(bytes);
  write_file(path, bytes);
  auto package = Package::open(path);
  REQUIRE(package.ok());
  CHECK(package->header().minor == 1);
  std::vector<uint8_t> weights(package->weights_bytes());
  CHECK(package->read_weights(weights.data(), weights.size()).ok());
}

TEST_CASE("things that are not packages are refused", "[package][corrupt]") {
  TempDir dir;
  SECTION("empty file") {
    write_file(dir.file("e.psm"), std::vector<uint8_t>{});
    const ps::Status s = open_error(dir.file("e.psm"));
    CHECK(s.code() == Code::kCorrupt);
    CHECK_THAT(s.message(), Contains(dir.file("e.psm") + ": the file is empty (0 bytes)"));
  }
  SECTION("wrong magic: an ONNX file") {
    std::vector<uint8_t> onnx(5000, 0);
    const char start[] = "\x08\x07\x12\x07pytorch";
    std::memcpy(onnx.data(), start, sizeof(start) - 1);
    write_file(dir.file("m.onnx"), onnx);
    const ps::Status s = open_error(dir.file("m.onnx"));
    CHECK(s.code() == Code::kCorrupt);
    CHECK_THAT(s.message(), Contains(": not a .psm model package: the file starts with "
                                     "\"\\x08\\x07\\x12\\x07pyto\" (08 07 12 07 70 79 74 6f)"));
  }
  SECTION("three bytes") {
    write_file(dir.file("a"), std::vector<uint8_t>{'a', 'b', 'c'});
    CHECK_THAT(open_error(dir.file("a")).message(), Contains("not a .psm model package"));
    write_file(dir.file("b"), std::vector<uint8_t>{'P', 'S', 'M'});
    CHECK_THAT(open_error(dir.file("b")).message(),
               Contains("truncated: the file is 3 bytes, shorter than the 128-byte .psm header"));
  }
  SECTION("a directory") {
    const ps::Status s = open_error(dir.path());
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Contains(dir.path() + ": is a directory, not a .psm file"));
  }
  SECTION("a missing file") {
    const ps::Status s = open_error(dir.file("nope.psm"));
    CHECK(s.code() == Code::kNotFound);
    CHECK_THAT(s.message(), Contains(dir.file("nope.psm") + ": no such file"));
  }
  SECTION("a FIFO (must not block waiting for a writer)") {
    REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0600) == 0);
    const ps::Status s = open_error(dir.file("fifo"));
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Contains("is a pipe"));
  }
  SECTION("a manifest that is not a protobuf message") {
    const std::string garbage(40, '\xff');
    const auto model = make_small_model();
    write_file(dir.file("g.psm"), build_raw_package(garbage, model.weights));
    const ps::Status s = open_error(dir.file("g.psm"));
    CHECK(s.code() == Code::kCorrupt);
    CHECK_THAT(s.message(),
               Contains("the manifest (40 bytes) is not a valid pipeswitch.psm.Manifest"));
  }
}

}  // namespace
