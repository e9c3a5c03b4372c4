// The .psm package: checksum, writer and reader on good input, and writer failures.
// Corrupt and invalid files are in package_corruption_test.cc.
#include <fcntl.h>
#include <google/protobuf/util/message_differencer.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "models/package_reader.h"
#include "common/hash64.h"
#include "onnx_loader/package_format.h"
#include "onnx_loader/package_validate.h"
#include "onnx_loader/package_writer.h"
#include "tests/models/package_fixture.h"

namespace {

namespace psm = pipeswitch::psm;
using ps::Code;
using ps::models::Package;
using ps::hash64;
using ps::Hash64;
using ps::onnx_loader::write_package;
using ps::onnx_loader::WriteOptions;
using ps::testing::make_small_model;
using ps::testing::read_file;
using ps::testing::TempDir;

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + 7);
  return v;
}

WriteOptions no_sync() {
  WriteOptions options;
  options.sync = false;
  return options;
}

// ---------------------------------------------------------------------------------------------
// Checksum

TEST_CASE("hash64 gives the XXH64 reference values", "[package][checksum]") {
  // Values from the reference implementation (libxxhash 0.8.1, XXH64).
  CHECK(hash64(bytes_of("")) == 0xef46db3751d8e999ULL);
  CHECK(hash64(bytes_of("a")) == 0xd24ec4f1a98c6e5bULL);
  CHECK(hash64(bytes_of("abc")) == 0x44bc2cf5ad770999ULL);
  CHECK(hash64(bytes_of(std::string_view("PSMODEL\0", 8))) == 0x6950bd81a849c034ULL);

  struct Known {
    size_t length;
    uint64_t seed0;
    uint64_t seeded;  // seed 0x9E3779B97F4A7C15
  };
  // Every path: tails of 1..31 bytes, exactly one stripe, stripes plus each kind of tail.
  const Known known[] = {
      {1, 0xa96c7f0ce858bbb7ULL, 0x585882422a6165e7ULL},
      {3, 0x56e6957632a487f9ULL, 0x5acb303e78133c22ULL},
      {4, 0xc60d15b1e3ff8f04ULL, 0x7d51d5e2461732b3ULL},
      {7, 0xafbefc3d6c6f9a8eULL, 0x2ce9adec2b2c8104ULL},
      {8, 0x3da5c7aa269683e0ULL, 0x758848f033fa76a2ULL},
      {12, 0x8fe8ab1c1fd0666eULL, 0xeaa6d4d803d21fd7ULL},
      {31, 0x4a74f3a1a39ad4a1ULL, 0x8137041f5af88413ULL},
      {32, 0x8d57d6a4671cc43dULL, 0x184ebcf3745cd46cULL},
      {33, 0x62c9fd21ed857664ULL, 0x52fac3c981f3cc2eULL},
      {63, 0x5c320a0d2707057fULL, 0x64ef99a2e94cc7bdULL},
      {64, 0x7bbabbc45729d17eULL, 0xf7f22435fe1ab128ULL},
      {100, 0xefa0ad2d3e70c151ULL, 0xbc7ab33be7528c18ULL},
      {1000, 0x99594f4828043d35ULL, 0xda717f741f399f3fULL},
      {4096, 0xe21174be82dc78d9ULL, 0xe4d8ced124df0294ULL},
  };
  for (const Known& k : known) {
    INFO("length " << k.length);
    const auto data = pattern(k.length);
    CHECK(hash64(data) == k.seed0);
    CHECK(hash64(data, 0x9E3779B97F4A7C15ULL) == k.seeded);
  }
}

TEST_CASE("Hash64 fed in pieces equals the one-shot hash", "[package][checksum]") {
  const auto data = pattern(5000);
  std::mt19937 rng(42);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t length = rng() % data.size();
    const uint64_t seed = trial % 3 == 0 ? 0 : rng();
    Hash64 h(seed);
    for (size_t done = 0; done < length;) {
      const size_t piece = std::min<size_t>(rng() % 70, length - done);
      h.update(std::span<const uint8_t>(data).subspan(done, piece));
      done += piece;
    }
    INFO("trial " << trial << " length " << length);
    REQUIRE(h.digest() == hash64(std::span<const uint8_t>(data).first(length), seed));
  }
  Hash64 empty;
  empty.update({});
  CHECK(empty.digest() == hash64({}));
}

TEST_CASE("hash64 throughput (printed, not asserted)", "[package][checksum][speed]") {
  std::vector<uint8_t> data(64u << 20);
  for (size_t i = 0; i < data.size(); i += 4096) data[i] = static_cast<uint8_t>(i >> 12);
  uint64_t sink = hash64(data);  // warm the pages
  constexpr int kRounds = 4;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) sink ^= hash64(data, static_cast<uint64_t>(i));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double mb_per_s = kRounds * static_cast<double>(data.size()) / 1e6 / seconds;
  std::printf("hash64 (XXH64): %.0f MB/s over %d x %zu MiB (digest %016llx)\n", mb_per_s, kRounds,
              data.size() >> 20, static_cast<unsigned long long>(sink));
  CHECK(seconds > 0);
}

// ---------------------------------------------------------------------------------------------
// Writer and reader on good input

TEST_CASE("a package round-trips: manifest, weights, layout", "[package]") {
  TempDir dir;
  const auto model = make_small_model();
  const std::string path = dir.file("tiny.psm");

  std::vector<std::pair<std::string, double>> progress;
  WriteOptions options;
  options.progress = [&](std::string_view stage, double f) { progress.emplace_back(stage, f); };
  const ps::Status written = write_package(path, model.manifest, model.weights, options);
  REQUIRE(written.ok());
  CHECK(dir.entries() == std::vector<std::string>{"tiny.psm"});  // no temporary left
  REQUIRE(!progress.empty());
  CHECK(progress.back() == std::pair<std::string, double>{"done", 1.0});
  double last_write = 0;
  for (const auto& [stage, fraction] : progress) {
    if (stage != "write") continue;
    CHECK(fraction >= last_write);
    last_write = fraction;
  }
  CHECK(last_write == 1.0);

  // The layout of docs/psm-format.md.
  const auto file = read_file(path);
  REQUIRE(file.size() == 4096 + model.weights.size());
  CHECK(std::memcmp(file.data(), "PSMODEL\0", 8) == 0);
  uint16_t major, minor;
  uint32_t header_size;
  uint64_t manifest_offset, manifest_size, weights_offset, weights_size;
  std::memcpy(&major, &file[8], 2);
  std::memcpy(&minor, &file[10], 2);
  std::memcpy(&header_size, &file[12], 4);
  std::memcpy(&manifest_offset, &file[16], 8);
  std::memcpy(&manifest_size, &file[24], 8);
  std::memcpy(&weights_offset, &file[32], 8);
  std::memcpy(&weights_size, &file[40], 8);
  CHECK(major == 1);
  CHECK(minor == 0);
  CHECK(header_size == 128);
  CHECK(manifest_offset == 128);
  CHECK(weights_offset == 4096);
  CHECK(weights_size == model.weights.size());
  const std::string serialized = ps::onnx_loader::serialize_manifest(model.manifest);
  CHECK(manifest_size == serialized.size());
  CHECK(std::memcmp(&file[128], serialized.data(), serialized.size()) == 0);
  uint64_t stored;
  std::memcpy(&stored, &file[48], 8);
  CHECK(stored == hash64(bytes_of(serialized)));
  std::memcpy(&stored, &file[56], 8);
  CHECK(stored == hash64(model.weights));
  std::memcpy(&stored, &file[120], 8);
  CHECK(stored == hash64(std::span<const uint8_t>(file).first(120)));
  CHECK(std::all_of(file.begin() + 72, file.begin() + 120, [](uint8_t b) { return b == 0; }));
  CHECK(std::all_of(file.begin() + 128 + static_cast<ptrdiff_t>(serialized.size()),
                    file.begin() + 4096, [](uint8_t b) { return b == 0; }));

  auto package = Package::open(path);
  REQUIRE(package.ok());
  CHECK(google::protobuf::util::MessageDifferencer::Equals(package->manifest(), model.manifest));
  CHECK(package->weights_bytes() == model.weights.size());
  CHECK(package->path() == path);

  std::vector<uint8_t> weights(model.weights.size() + 100, 0xEE);
  double last_fraction = -1;
  const ps::Status read =
      package->read_weights(weights.data(), weights.size(), [&](std::string_view stage, double f) {
        CHECK(stage == "read weights");
        CHECK(f >= last_fraction);
        last_fraction = f;
      });
  REQUIRE(read.ok());
  CHECK(last_fraction == 1.0);
  CHECK(std::equal(model.weights.begin(), model.weights.end(), weights.begin()));
  CHECK(weights[model.weights.size()] == 0xEE);  // nothing written past the blob

  // Reading again (a second upload) gives the same bytes; moving the Package keeps it usable.
  Package moved = std::move(package).value();
  std::vector<uint8_t> again(model.weights.size());
  REQUIRE(moved.read_weights(again.data(), again.size()).ok());
  CHECK(again == model.weights);
}

TEST_CASE("the writer output is deterministic", "[package]") {
  TempDir dir;
  auto model = make_small_model();
  (*model.manifest.mutable_dims())["seq"] = 7;  // a map with two entries
  REQUIRE(write_package(dir.file("a.psm"), model.manifest, model.weights, no_sync()).ok());
  REQUIRE(write_package(dir.file("b.psm"), model.manifest, model.weights, no_sync()).ok());
  CHECK(read_file(dir.file("a.psm")) == read_file(dir.file("b.psm")));
}

TEST_CASE("the writer stamps an unset format_version", "[package]") {
  TempDir dir;
  auto model = make_small_model();
  model.manifest.clear_format_version();
  REQUIRE(write_package(dir.file("m.psm"), model.manifest, model.weights, no_sync()).ok());
  auto package = Package::open(dir.file("m.psm"));
  REQUIRE(package.ok());
  CHECK(package->manifest().format_version() == ps::onnx_loader::kFormatMajor);
}

TEST_CASE("writing over an existing package replaces it whole", "[package]") {
  TempDir dir;
  const std::string path = dir.file("m.psm");
  auto model = make_small_model();
  REQUIRE(write_package(path, model.manifest, model.weights).ok());
  auto old_package = Package::open(path);
  REQUIRE(old_package.ok());

  for (auto& b : model.weights) b ^= 0x5A;
  model.manifest.set_model_name("tiny-mlp-v2");
  REQUIRE(write_package(path, model.manifest, model.weights).ok());
  CHECK(dir.entries() == std::vector<std::string>{"m.psm"});

  auto package = Package::open(path);
  REQUIRE(package.ok());
  CHECK(package->manifest().model_name() == "tiny-mlp-v2");
  std::vector<uint8_t> weights(package->weights_bytes());
  REQUIRE(package->read_weights(weights.data(), weights.size()).ok());
  CHECK(weights == model.weights);

  // The Package opened before the rename still reads the file it validated.
  std::vector<uint8_t> old_weights(old_package->weights_bytes());
  REQUIRE(old_package->read_weights(old_weights.data(), old_weights.size()).ok());
  CHECK(old_weights == make_small_model().weights);
}

TEST_CASE("open_fd reads a package through a descriptor it takes over", "[package]") {
  TempDir dir;
  const auto model = make_small_model();
  const std::string path = dir.file("m.psm");
  REQUIRE(write_package(path, model.manifest, model.weights, no_sync()).ok());
  // O_NONBLOCK as a confined open leaves it before the type check: cleared for the reads.
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  REQUIRE(raw >= 0);
  auto package = Package::open_fd(ps::UniqueFd(raw), "models/m.psm");
  REQUIRE(package.ok());
  CHECK(package->path() == "models/m.psm");
  CHECK((::fcntl(raw, F_GETFL) & O_NONBLOCK) == 0);
  // The path is not read again: the Package reads the file it holds even once it is gone.
  REQUIRE(::unlink(path.c_str()) == 0);
  std::vector<uint8_t> weights(package->weights_bytes());
  REQUIRE(package->read_weights(weights.data(), weights.size()).ok());
  CHECK(weights == model.weights);
  // The Package owns the descriptor: moved, it stays open; destroyed, it is closed.
  Package moved = std::move(package).value();
  CHECK(::fcntl(raw, F_GETFD) >= 0);
  { Package gone = std::move(moved); }
  CHECK(::fcntl(raw, F_GETFD) == -1);

  // On error the descriptor is closed too, and the message uses the display name.
  const int directory = ::open(dir.path().c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  REQUIRE(directory >= 0);
  auto refused = Package::open_fd(ps::UniqueFd(directory), "models/sub");
  CHECK(refused.status().code() == Code::kInvalidArgument);
  CHECK(refused.status().message() == "models/sub: is a directory, not a .psm file");
  CHECK(::fcntl(directory, F_GETFD) == -1);
  {
    const std::string garbage = dir.file("garbage.psm");
    FILE* f = std::fopen(garbage.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fputs("not a package", f);
    std::fclose(f);
    const int fd = ::open(garbage.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    auto corrupt = Package::open_fd(ps::UniqueFd(fd), "garbage.psm");
    CHECK(corrupt.status().code() == Code::kCorrupt);
    CHECK_THAT(corrupt.status().message(), Catch::StartsWith("garbage.psm: "));
    CHECK(corrupt.status().message().find(dir.path()) == std::string::npos);
    CHECK(::fcntl(fd, F_GETFD) == -1);
  }
}

TEST_CASE("read_weights refuses a buffer smaller than the blob", "[package]") {
  TempDir dir;
  const auto model = make_small_model();
  REQUIRE(write_package(dir.file("m.psm"), model.manifest, model.weights, no_sync()).ok());
  auto package = Package::open(dir.file("m.psm"));
  REQUIRE(package.ok());
  std::vector<uint8_t> small(model.weights.size() - 1, 0xAB);
  const ps::Status s = package->read_weights(small.data(), small.size());
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("1036 bytes"));
  CHECK(std::all_of(small.begin(), small.end(), [](uint8_t b) { return b == 0xAB; }));
  CHECK(package->read_weights(nullptr, 5000).code() == Code::kInvalidArgument);
}

TEST_CASE("describe() summarises the package", "[package]") {
  TempDir dir;
  const auto model = make_small_model();
  REQUIRE(write_package(dir.file("tiny.psm"), model.manifest, model.weights, no_sync()).ok());
  auto package = Package::open(dir.file("tiny.psm"));
  REQUIRE(package.ok());
  const std::string text = package->describe();
  INFO(text);
  using Catch::Contains;
  CHECK_THAT(text, Contains("model        tiny-mlp\n"));
  CHECK_THAT(text, Contains("producer     package_test (hand-built)\n"));
  CHECK_THAT(text, Contains("format       1.0, opset 17, mode inference, dims batch=2\n"));
  CHECK_THAT(text, Contains("inputs       x  float32 [2,4]\n"));
  CHECK_THAT(text, Contains("outputs      y  float32 [2,3]\n"));
  CHECK_THAT(text, Contains("layers       4: Gemm 2, Relu 1, Reshape 1\n"));
  // 32 + 8 + 24 + 3 trainable elements; the int64 shape is a buffer of 2.
  CHECK_THAT(
      text, Contains("parameters   67 trainable (+ 2 in buffers) in 5 tensors; weights 1.0 KiB\n"));
  CHECK_THAT(text, Contains("groups       2 (blocks): smallest 288 B, largest 524 B\n"));
  CHECK_THAT(text, Contains("activations  peak 1.0 KiB (arena alignment 256)\n"));
  CHECK_THAT(text, Contains("passes       fold_constants, fuse_gemm_relu\n"));
}

TEST_CASE("a 32 MiB package: write and read throughput (printed)", "[package][speed]") {
  // One weight tensor of 8 Mi float32 in one group, like a large layer.
  TempDir dir;
  auto model = make_small_model();
  psm::Manifest& m = model.manifest;
  const uint64_t big_offset = 1280;  // after b1, aligned to 256
  psm::Tensor* big = m.add_tensors();
  big->set_name("big.weight");
  big->set_kind(psm::Tensor::WEIGHT);
  big->set_dtype(psm::DT_FLOAT32);
  big->add_shape(8 << 20);
  big->set_weight_offset(big_offset);
  big->set_byte_size(32u << 20);
  big->set_trainable(true);
  m.mutable_layers(3)->add_inputs(static_cast<uint32_t>(m.tensors_size() - 1));
  m.mutable_groups(1)->set_byte_size(big_offset + (32u << 20) - 512);
  m.set_weights_bytes(big_offset + (32u << 20));
  model.weights.resize(m.weights_bytes());
  for (size_t i = 1036; i < model.weights.size(); i += 64)
    model.weights[i] = static_cast<uint8_t>(i);

  const std::string path = dir.file("big.psm");
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(write_package(path, m, model.weights, no_sync()).ok());
  auto t1 = std::chrono::steady_clock::now();
  auto package = Package::open(path);
  REQUIRE(package.ok());
  std::vector<uint8_t> weights(package->weights_bytes());
  double best_read = 1e9;  // seconds; the best of three reads, the file in the page cache
  for (int round = 0; round < 3; ++round) {
    const auto t2 = std::chrono::steady_clock::now();
    REQUIRE(package->read_weights(weights.data(), weights.size()).ok());
    best_read = std::min(
        best_read, std::chrono::duration<double>(std::chrono::steady_clock::now() - t2).count());
  }
  CHECK(weights == model.weights);
  const double mb = static_cast<double>(weights.size()) / 1e6;
  std::printf(
      "package of %.0f MB: write %.0f MB/s (no fsync), read_weights %.0f MB/s "
      "(page cache, checksum included)\n",
      mb, mb / std::chrono::duration<double>(t1 - t0).count(), mb / best_read);
}

// ---------------------------------------------------------------------------------------------
// Writer failures: an error, and nothing left behind

TEST_CASE("an invalid manifest is refused before anything is written", "[package][writer]") {
  TempDir dir;
  const std::string path = dir.file("m.psm");
  auto model = make_small_model();
  model.manifest.mutable_tensors(1)->set_weight_offset(1024);  // [1024, 1152) past 1036

  ps::Status s = write_package(path, model.manifest, model.weights);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(),
             Catch::Contains(path + ": tensor 1 'fc1.weight' weight range [1024, 1152) exceeds "
                                    "the weight blob (1036 bytes)"));
  CHECK_THAT(s.message(), Catch::Contains("nothing was written"));
  CHECK(dir.entries().empty());

  // An existing package stays as it was.
  const auto good = make_small_model();
  REQUIRE(write_package(path, good.manifest, good.weights).ok());
  const auto before = read_file(path);
  CHECK(!write_package(path, model.manifest, model.weights).ok());
  // Weights that do not match the manifest's weights_bytes are refused too.
  s = write_package(path, good.manifest, std::span<const uint8_t>(good.weights).first(1000));
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(
      s.message(),
      Catch::Contains("the manifest says the weight blob is 1036 bytes, but it is 1000 bytes"));
  CHECK(read_file(path) == before);
  CHECK(dir.entries() == std::vector<std::string>{"m.psm"});
}

TEST_CASE("write_package fails cleanly where it cannot write", "[package][writer]") {
  TempDir dir;
  const auto model = make_small_model();

  SECTION("the directory does not exist") {
    const std::string path = dir.file("missing/m.psm");
    const ps::Status s = write_package(path, model.manifest, model.weights);
    CHECK(s.code() == Code::kIo);
    CHECK_THAT(s.message(), Catch::Contains(path));
    CHECK_THAT(s.message(), Catch::Contains("No such file or directory"));
  }
  SECTION("the parent is a regular file") {
    ps::testing::write_file(dir.file("plain"), std::vector<uint8_t>{1, 2, 3});
    const ps::Status s = write_package(dir.file("plain/m.psm"), model.manifest, model.weights);
    CHECK(s.code() == Code::kIo);
    CHECK_THAT(s.message(), Catch::Contains("Not a directory"));
    CHECK(dir.entries() == std::vector<std::string>{"plain"});
  }
  SECTION("the target is a directory: the rename fails, the temporary is removed") {
    REQUIRE(::mkdir(dir.file("m.psm").c_str(), 0755) == 0);
    const ps::Status s = write_package(dir.file("m.psm"), model.manifest, model.weights);
    CHECK(s.code() == Code::kIo);
    CHECK_THAT(s.message(), Catch::Contains("cannot rename"));
    CHECK(dir.entries() == std::vector<std::string>{"m.psm"});
  }
  SECTION("the path names no file") {
    CHECK(write_package("", model.manifest, model.weights).code() == Code::kInvalidArgument);
    CHECK(write_package(dir.path() + "/", model.manifest, model.weights).code() ==
          Code::kInvalidArgument);
    CHECK(dir.entries().empty());
  }
  SECTION("the directory is read-only") {
    if (::geteuid() == 0) {
      WARN("running as root: permission bits do not stop writes; case skipped");
      return;
    }
    const std::string sub = dir.file("ro");
    REQUIRE(::mkdir(sub.c_str(), 0555) == 0);
    const ps::Status s = write_package(sub + "/m.psm", model.manifest, model.weights);
    CHECK(s.code() == Code::kIo);
    CHECK_THAT(s.message(), Catch::Contains("Permission denied"));
  }
}

TEST_CASE("a write that fails halfway leaves nothing behind", "[package][writer]") {
  // A file size limit makes write() fail with EFBIG partway through the weights, after the
  // temporary file exists and holds data.
  TempDir dir;
  auto model = make_small_model();
  model.manifest.mutable_groups(1)->set_byte_size(64 * 1024 - 512);
  psm::Tensor* t = model.manifest.mutable_tensors(8);  // fc2.bias grows to the blob's end
  t->set_weight_offset(1024);
  t->clear_shape();
  t->add_shape((64 * 1024 - 1024) / 4);
  t->set_byte_size(64 * 1024 - 1024);
  model.manifest.set_weights_bytes(64 * 1024);
  model.weights.resize(64 * 1024, 1);
  REQUIRE(ps::onnx_loader::validate_manifest(model.manifest, model.weights.size(), "x").ok());

  struct rlimit old_limit;
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  void (*old_handler)(int) = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 16 * 1024;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
  const ps::Status s = write_package(dir.file("m.psm"), model.manifest, model.weights);
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  ::signal(SIGXFSZ, old_handler);

  CHECK(s.code() == Code::kIo);
  CHECK_THAT(s.message(), Catch::Contains("File too large"));
  CHECK(dir.entries().empty());
}

}  // namespace
