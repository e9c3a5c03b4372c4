// Pipelined model transmission (PipeSwitch §4.1): the weights of a model that is not resident
// are copied to the GPU group by group on a copy stream while the model's layers already run
// on the compute stream, each group's layers waiting only for that group's copy.
//
// Everything is enqueued from the calling thread in one pass, with no host round trip per
// group: copy g, then "event g recorded" on the copy stream; "wait for event g" before group
// g's first layer on the compute stream. Copies are enqueued ahead of the layers by a byte
// window (kCopyLookaheadBytes), so the link never waits for the host to enqueue layers and the
// first layer is enqueued after a few copies, not after all of them.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <functional>
#include <span>

#include "common/status.h"
#include "cuda/event.h"
#include "cuda/stream.h"
#include "models/gpu/copy_groups.h"
#include "models/gpu/plan.h"

namespace ps::models::gpu {

// Enqueues group g's layers on the compute stream (after its wait). The default runs
// Plan::enqueue_layers for the group; the switching engine replays one CUDA graph per group.
using GroupRunner = std::function<Status(size_t group)>;

// How far (in weight bytes) the enqueued copies run ahead of the enqueued layers: about 0.3 ms
// of a 50 GB/s link, several times the host's cost of enqueuing one group's layers.
inline constexpr uint64_t kCopyLookaheadBytes = uint64_t{16} << 20;

// Where a switch copies from: the whole weight blob (Plan::weights_bytes() bytes) in host
// memory, pinned for an asynchronous full-bandwidth copy (pageable memory works, slowly: the
// `pageable` ablation). It stays untouched until the copies are done.
struct WeightSource {
  const void* host = nullptr;
};

// Enqueues the switch-in of `plan`'s weights from `source.host` into `bindings.weights`, in
// `groups` (which must cover the plan's layers in order: first_layer ascending, no gaps), and
// the whole forward pass on `compute`. `group_events` has at least groups.size() events (no
// timing needed); they are recorded here and may be reused once `compute` has passed this
// work. `first_layer` (may be null; a timing event) is recorded with record_timestamp (so also
// inside a graph capture) on `compute` just before the first layer, after its wait for the
// first group: when the model starts running. `copy` and `compute` must be different streams
// of the plan's context. `run_group` (may be empty) enqueues a group's layers instead of
// Plan::enqueue_layers. Works inside a stream capture of `compute` when `copy` has joined it
// (waits on an event recorded on `compute` during the capture).
// With bindings.host_weights given, the plan's host-readable weights (host_read.h) are not
// copied: their layers read them from the host copy, and each group copies the rest of its
// range (one to three copies).
// `pipelined` false is the ablation "the same groups without pipelining" (figure 7): every
// group's copy is enqueued first and the first layer waits for the last copy.
// Returns once everything is queued. Errors: kInvalidArgument for groups that do not cover the
// layers or too few events; launch errors naming the layer (work queued before the error stays
// queued). Nothing allocates.
Status enqueue_pipelined(const Plan& plan, std::span<const CopyGroup> groups,
                         const WeightSource& source, const Bindings& bindings,
                         const cuda::Stream& copy, const cuda::Stream& compute,
                         std::span<cuda::Event> group_events, cuda::Event* first_layer = nullptr,
                         const GroupRunner& run_group = {}, bool pipelined = true);

}  // namespace ps::models::gpu
