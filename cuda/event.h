// Event: an owned CUDA event, the GPU-side "this point of that stream has been reached".
//
// Events are how one stream waits for another (Stream::wait) without the host blocking, and
// how the layer-group pipeline orders compute after each group's copy.
#pragma once

#include <cuda.h>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {

class Stream;

class Event {
 public:
  // Creates an event in the current context (precondition: one is current). Without `timing`
  // the event records no timestamp (CU_EVENT_DISABLE_TIMING), which makes record and wait
  // cheaper; elapsed_ms needs two events created with timing = true.
  static Result<Event> create(bool timing = false);

  Event() = default;  // empty; only for members assigned later
  Event(Event&&) noexcept = default;
  Event& operator=(Event&&) noexcept = default;
  ~Event() = default;

  // Captures the work queued on `stream` so far; the event completes when that work has.
  // Recording again replaces what the event stands for. Precondition: same context.
  Status record(const Stream& stream);

  // As record(), but when `stream` is being captured into a CUDA graph the record becomes an
  // event-record node of the graph (CU_EVENT_RECORD_EXTERNAL), so each replay records the event
  // and timing events keep working inside graphs. A plain record() during capture only orders
  // the captured work and leaves the event untouched.
  Status record_timestamp(const Stream& stream);

  // Blocks the calling thread until the recorded work has finished (at once if never recorded).
  Status synchronize() const;

  // True when the recorded work has finished, or the event was never recorded; never blocks.
  Result<bool> is_done() const;

  // Milliseconds between two completed timing events (`start` recorded before `end`).
  // Errors: kDevice when either was created without timing, or has not completed yet.
  static Result<float> elapsed_ms(const Event& start, const Event& end);

  // The driver handle. Precondition: not empty (default-constructed or moved-from).
  CUevent get() const {
    PS_CHECK(event_);
    return event_.get();
  }

 private:
  struct Destroy {
    void operator()(CUevent event) const;
  };

  UniqueHandle<CUevent, Destroy> event_;
};

}  // namespace ps::cuda
