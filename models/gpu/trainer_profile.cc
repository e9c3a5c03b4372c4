// GpuTrainer's profile: every item of a step timed on the device, then the step cut into
// chunks of about options.chunk_budget_ms (trainer_plan.h's cut_chunks). As Plan::profile_layers
// does for inference, the step is captured as a CUDA graph with a timing event between items
// and replayed (twice; the second is timed), so the times are the GPU's and not the host's
// enqueue pace (a cuDNN call can cost more host time than GPU time). When the capture fails
// (a library call that cannot be captured), the items are enqueued directly with the same
// events: the times are then upper bounds that include host gaps.
#include <utility>

#include "cuda/event.h"
#include "models/gpu/graph.h"
#include "models/gpu/trainer_impl.h"

namespace ps::models::gpu {

Status GpuTrainer::Impl::profile(const cuda::Stream& stream) {
  const size_t n = layout.items.size();
  std::vector<cuda::Event> marks;
  marks.reserve(n + 1);
  for (size_t i = 0; i <= n; ++i) {
    PS_ASSIGN_OR_RETURN(cuda::Event e, cuda::Event::create(/*timing=*/true));
    marks.push_back(std::move(e));
  }
  auto enqueue_marked = [&]() -> Status {
    PS_TRY(runtime->bind(stream, workspace, workspace_bytes));
    PS_TRY(marks[0].record_timestamp(stream));
    for (size_t i = 0; i < n; ++i) {
      PS_TRY(enqueue_item(layout.items[i], stream));
      PS_TRY(marks[i + 1].record_timestamp(stream));
    }
    return Status::OK();
  };
  Result<CudaGraph> graph = CudaGraph::capture(stream, enqueue_marked);
  profiled_in_graph = graph.ok();
  if (graph.ok()) {
    PS_TRY(graph->launch(stream));  // the first replay uploads the graph: not timed
    PS_TRY(stream.synchronize());
    PS_TRY(graph->launch(stream));
  } else {
    PS_TRY(stream.synchronize());
    PS_TRY(enqueue_marked().with_context("GpuTrainer profile"));
  }
  PS_TRY(marks.back().synchronize());
  item_ms.assign(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    PS_ASSIGN_OR_RETURN(const float ms, cuda::Event::elapsed_ms(marks[i], marks[i + 1]));
    item_ms[i] = ms;
  }
  chunks = cut_chunks(item_ms, options.chunk_budget_ms);
  chunk_ms.clear();
  for (const TrainChunk& c : chunks) chunk_ms.push_back(c.ms);
  return Status::OK();
}

}  // namespace ps::models::gpu
