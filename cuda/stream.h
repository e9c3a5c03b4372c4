// Stream: an owned, non-blocking CUDA stream with a priority.
//
// Non-blocking: our streams never synchronise implicitly with the legacy default stream, which
// cuBLAS/cuDNN or a stray runtime call might use. Priorities are what lets inference overtake
// training on the same GPU: the scheduler puts training on kLow and requests on kHigh.
#pragma once

#include <cuda.h>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {

class Event;

enum class StreamPriority { kLow, kNormal, kHigh };

class Stream {
 public:
  // Creates a stream in the current context (precondition: one is current, see Device).
  // From cuCtxGetStreamPriorityRange: kLow is the least priority, kHigh the greatest, kNormal
  // the middle of the range (equal to kLow where the device has a single level).
  // Errors: kInvalidArgument when no context is current, kDevice naming the failing call.
  static Result<Stream> create(StreamPriority priority = StreamPriority::kNormal);

  Stream() = default;  // empty; only for members assigned later
  Stream(Stream&&) noexcept = default;
  Stream& operator=(Stream&&) noexcept = default;
  // Destroying a stream with work still queued is allowed: the work completes first.
  ~Stream() = default;

  // The driver handle. Precondition: not empty (using a default-constructed or moved-from
  // Stream would silently mean the legacy default stream, so it ends the process instead).
  CUstream get() const {
    PS_CHECK(stream_);
    return stream_.get();
  }
  // True for a default-constructed or moved-from Stream (no driver stream behind it).
  bool empty() const { return !stream_; }
  StreamPriority priority_class() const { return priority_class_; }

  // The driver's numeric priority of the stream (lower numbers run first).
  Result<int> priority() const;

  // Blocks the calling thread until all work queued so far has finished. Never call it on the
  // event loop's thread (the reactor waits through CompletionBridge instead).
  Status synchronize() const;

  // Work queued on this stream after this call waits until `event` completes (the work
  // captured by its most recent record()). Returns at once; the host never blocks.
  Status wait(const Event& event) const;

  // True when all work queued so far has finished; never blocks.
  Result<bool> is_done() const;

 private:
  struct Destroy {
    void operator()(CUstream stream) const;
  };

  UniqueHandle<CUstream, Destroy> stream_;
  StreamPriority priority_class_ = StreamPriority::kNormal;
};

}  // namespace ps::cuda
