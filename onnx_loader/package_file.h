// Small POSIX file helpers for the package writer and reader: read/write loops that survive
// EINTR and short transfers and name the file in their errors.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/unique_fd.h"

namespace ps::onnx_loader {

// The owning descriptor and errno_string live in common/ (the reactor's confined open uses them
// too); these names keep the package code's spelling.
using ps::errno_string;
using ps::UniqueFd;

// Reads exactly dst.size() bytes at `offset` of `fd`. Returns kIo when the OS fails the read,
// kCorrupt ("truncated") when the file ends first.
Status pread_exact(int fd, std::span<uint8_t> dst, uint64_t offset, std::string_view label);

// Writes all of `src` at the current position / at `offset`. Returns kIo naming the error.
Status write_all(int fd, std::span<const uint8_t> src, std::string_view label);
Status pwrite_all(int fd, std::span<const uint8_t> src, uint64_t offset, std::string_view label);

}  // namespace ps::onnx_loader
