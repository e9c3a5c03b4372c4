// Shared helpers for the package tests: a temporary directory, a small hand-built model, and a
// raw writer that packages ANY manifest bytes with valid checksums (so tests can put an invalid
// manifest, a newer version or a lying header in front of the reader).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "onnx_loader/package_format.h"
#include "onnx_loader/psm.pb.h"

namespace ps::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the directory, sorted (temporary files included).
  std::vector<std::string> entries() const;

 private:
  std::string path_;
};

// A four-layer MLP (Gemm, Relu, Reshape, Gemm) with float32 and int64 weights, trainable and
// non-trainable, in two groups; valid in every respect. See package_fixture.cc for the layout.
struct SmallModel {
  pipeswitch::psm::Manifest manifest;
  std::vector<uint8_t> weights;
};
SmallModel make_small_model();

// A package file's bytes, built without any validation: header (checksums computed over the
// given bytes, then `tweak` applied, then the header checksum computed) | manifest bytes |
// zero padding to 4 KiB | weights.
std::vector<uint8_t> build_raw_package(
    const std::string& manifest_bytes, std::span<const uint8_t> weights,
    const std::function<void(onnx_loader::PackageHeader&)>& tweak = {});

std::vector<uint8_t> read_file(const std::string& path);
void write_file(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace ps::testing
