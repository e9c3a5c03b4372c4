// Checkpoints of the CPU trainer: the whole training state (float weights including BatchNorm
// running statistics, momentum buffers, step counter, data position) in one file, so a trainer
// restored from it continues with exactly the losses of an uninterrupted run.
//
// File format (little-endian), version 1:
//   header, 32 bytes: magic "PSTRAIN1", u32 version (1), u32 reserved (0),
//                     u64 payload size in bytes, u64 XXH64 of the payload (seed 0)
//   payload: u64 step, u64 data_position, u32 tensor count, then per tensor:
//            u8 kind (1 weight, 2 momentum buffer), u32 name length, the name (the manifest
//            tensor's name), u32 rank, i64 dims[rank], f64 values[product of dims]
// The file is written to "<path>.tmp", fsynced, renamed over <path>, and the directory fsynced:
// a failed or interrupted save leaves the previous file at <path> as it was.
#pragma once

#include <string>

#include "common/status.h"
#include "models/cpu/trainer.h"

namespace ps::models::cpu {

// Writes trainer's state to `path` (see above). Errors (IO, naming the path and the system's
// reason) leave any previous file at `path` untouched and remove the temporary file.
Status save_checkpoint(const Trainer& trainer, const std::string& path);

// Replaces trainer's state with the one in `path`. The trainer must have been created from the
// same model (manifest) as the one saved; its SGD and data options are its own. Errors, each
// leaving the trainer unchanged: IO (unreadable), CORRUPT (bad magic or version, truncated,
// checksum mismatch, malformed payload), INVALID_ARGUMENT (a tensor name or shape that is not
// the trainer's, or a weight missing).
Status load_checkpoint(Trainer& trainer, const std::string& path);

// The same over a bare state, for trainers other than the CPU's (the GPU trainer exports and
// imports a TrainingState): save `state` of `manifest`'s model; read a file into a new state,
// checked against `current` (the names and shapes of its weights, as load_checkpoint checks
// the trainer's), with the same errors.
Status save_checkpoint(const pipeswitch::psm::Manifest& manifest, const TrainingState& state,
                       const std::string& path);
Result<TrainingState> read_checkpoint(const pipeswitch::psm::Manifest& manifest,
                                      const TrainingState& current, const std::string& path);

}  // namespace ps::models::cpu
