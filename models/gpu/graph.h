// CudaGraph: a captured and instantiated CUDA graph of work queued on one stream, replayed with
// one launch. Used to replay a resident model's whole forward pass (Plan::enqueue for fixed
// Bindings) without the host enqueueing each layer again.
//
// What is captured is fixed: the kernels, library calls and their device addresses. Replaying
// reads and writes the same memory as the captured run, so the caller keeps every buffer the
// captured work used (weights, arena, workspace) alive and in place while the graph exists, and
// writes new inputs into the same arena slots before each launch.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <functional>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {
class Stream;
}

namespace ps::models::gpu {

// cuStreamBeginCapture's mode. kThreadLocal (PyTorch's choice) refuses unsafe calls
// (cuMemAlloc, synchronising calls) made by this thread while it captures; kRelaxed allows
// them; kGlobal refuses them from any thread.
enum class CaptureMode { kThreadLocal, kRelaxed, kGlobal };

class CudaGraph {
 public:
  // Captures the work `enqueue` queues on `stream` (which must not be capturing already and
  // must not be the legacy default stream), then instantiates it. `enqueue` runs once, now, on
  // this thread; the work it queues is recorded, not executed. Capture is always ended, even
  // when `enqueue` fails, so the stream is usable afterwards. Errors: `enqueue`'s error (with
  // "while capturing" context), or kDevice naming the capture call that failed (an unsafe call
  // inside `enqueue`, an empty capture, instantiation failure).
  static Result<CudaGraph> capture(const cuda::Stream& stream,
                                   const std::function<Status()>& enqueue,
                                   CaptureMode mode = CaptureMode::kThreadLocal);

  CudaGraph() = default;  // empty
  CudaGraph(CudaGraph&&) noexcept = default;
  CudaGraph& operator=(CudaGraph&&) noexcept = default;
  ~CudaGraph() = default;

  // Queues one replay of the captured work on `stream` (any stream of the same context).
  // Precondition: not empty. Returns at once.
  Status launch(const cuda::Stream& stream) const;

  // Nodes in the captured graph (kernels, memsets, copies...): for logs and tests.
  size_t node_count() const { return node_count_; }
  bool empty() const { return !exec_; }

 private:
  struct DestroyExec {
    void operator()(CUgraphExec exec) const;
  };
  cuda::UniqueHandle<CUgraphExec, DestroyExec> exec_;
  size_t node_count_ = 0;
};

}  // namespace ps::models::gpu
