#include "models/gpu/graph.h"

#include "cuda/driver.h"
#include "cuda/stream.h"

namespace ps::models::gpu {
namespace {

CUstreamCaptureMode to_driver(CaptureMode mode) {
  switch (mode) {
    case CaptureMode::kRelaxed:
      return CU_STREAM_CAPTURE_MODE_RELAXED;
    case CaptureMode::kGlobal:
      return CU_STREAM_CAPTURE_MODE_GLOBAL;
    case CaptureMode::kThreadLocal:
      break;
  }
  return CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
}

// Owns a CUgraph (the captured, not yet instantiated graph) for the length of capture().
class GraphOwner {
 public:
  GraphOwner() = default;
  GraphOwner(const GraphOwner&) = delete;
  GraphOwner& operator=(const GraphOwner&) = delete;
  ~GraphOwner() {
    if (graph_ != nullptr) CU_CHECK(cuda::api().cuGraphDestroy(graph_));
  }
  CUgraph* out() { return &graph_; }
  CUgraph get() const { return graph_; }

 private:
  CUgraph graph_ = nullptr;
};

}  // namespace

void CudaGraph::DestroyExec::operator()(CUgraphExec exec) const {
  CU_CHECK(cuda::api().cuGraphExecDestroy(exec));
}

Result<CudaGraph> CudaGraph::capture(const cuda::Stream& stream,
                                     const std::function<Status()>& enqueue, CaptureMode mode) {
  CU_TRY(cuda::api().cuStreamBeginCapture(stream.get(), to_driver(mode)));
  const Status queued = enqueue();
  GraphOwner graph;
  // Always end the capture: a stream left capturing would refuse every later use.
  const CUresult ended = cuda::api().cuStreamEndCapture(stream.get(), graph.out());
  if (!queued.ok()) return queued.with_context("while capturing a CUDA graph");
  if (ended != CUDA_SUCCESS) {
    return cuda::cu_status(ended, "cuStreamEndCapture", __FILE__, __LINE__);
  }
  if (graph.get() == nullptr) return device_error("cuStreamEndCapture returned no graph");
  size_t nodes = 0;
  CU_TRY(cuda::api().cuGraphGetNodes(graph.get(), nullptr, &nodes));
  if (nodes == 0) return invalid_argument("the captured work is empty (nothing was enqueued)");
  CUgraphExec exec = nullptr;
  CU_TRY(cuda::api().cuGraphInstantiateWithFlags(&exec, graph.get(), 0));
  CudaGraph out;
  out.exec_.reset(exec);
  out.node_count_ = nodes;
  return out;
}

Status CudaGraph::launch(const cuda::Stream& stream) const {
  PS_CHECK(exec_);
  CU_TRY(cuda::api().cuGraphLaunch(exec_.get(), stream.get()));
  return Status::OK();
}

}  // namespace ps::models::gpu
