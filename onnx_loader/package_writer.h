// Writes a model package (.psm): header | manifest | padding to 4 KiB | weight blob
// (onnx_loader/package_format.h, docs/psm-format.md).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"
#include "onnx_loader/package_format.h"
#include "onnx_loader/psm.pb.h"

namespace ps::onnx_loader {

struct WriteOptions {
  // Called with ("write", fraction) as bytes reach the file (about every 8 MiB), then
  // ("sync", 0) and ("done", 1). May be empty.
  ProgressFn progress;
  // fsync the file before the rename and the directory after it, so a crash leaves either the
  // old file or the complete new one. Only tests that write throwaway files turn it off.
  bool sync = true;
};

// Writes `manifest` and `weights` (the blob the manifest's weight offsets point into) as a
// package at `path`.
//
// First validates the manifest against the weights with validate_manifest() (the reader's
// check); a manifest with format_version 0 is stamped with kFormatMajor. Then writes a
// temporary file in the same directory (".NAME.tmp-PID-N"), fsyncs it, and renames it over
// `path`; on any failure the temporary is removed and an existing file at `path` is untouched,
// so nothing half-written is ever left behind.
// Returns kInvalidArgument when the manifest fails validation or `path` names no file (nothing
// is written), kIo when the OS refuses to create, write, sync or rename (the message names the
// file and the call). Borrows `manifest` and `weights` for the duration of the call.
Status write_package(const std::string& path, const pipeswitch::psm::Manifest& manifest,
                     std::span<const uint8_t> weights, const WriteOptions& options = {});

// Serializes a manifest the way the writer does: deterministically (map entries sorted), so
// the same manifest always gives the same bytes and the same checksum.
std::string serialize_manifest(const pipeswitch::psm::Manifest& manifest);

}  // namespace ps::onnx_loader
