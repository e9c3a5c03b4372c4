// Peer access between two GPUs: whether one device's copy engines and kernels may read and write
// another's memory directly (NVLink or PCIe peer-to-peer), and turning it on.
//
// Parallel transmission (models/gpu/cuda_lanes.h) forwards weights from a peer GPU's staging
// slots into the target's memory with cuMemcpyPeerAsync; without peer access the driver stages
// such a copy through host memory, which defeats the purpose, so the tools enable it first and
// say when it is missing. Memory mapped with cuMemMap (DevicePool) needs, in addition, a
// cuMemSetAccess grant for the peer device on the mapping; buffers from cuMemAlloc do not.
#pragma once

#include <cuda.h>

#include "common/status.h"

namespace ps::cuda {

class Device;

// Whether `device` can access `peer`'s memory directly (cuDeviceCanAccessPeer). A device and
// itself: true.
Result<bool> can_access_peer(const Device& device, const Device& peer);

// Lets work in `device`'s context access memory of `peer`'s context (cuCtxEnablePeerAccess with
// `device`'s context current; the caller's current context is restored). Already enabled, or
// the same device: OK. Errors: kUnavailable when the devices cannot be peers, the driver's
// otherwise.
Status enable_peer_access(const Device& device, const Device& peer);

}  // namespace ps::cuda
