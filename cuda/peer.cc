#include "cuda/peer.h"

#include "cuda/context.h"
#include "cuda/device.h"
#include "cuda/driver.h"

namespace ps::cuda {

Result<bool> can_access_peer(const Device& device, const Device& peer) {
  if (device.handle() == peer.handle()) return true;
  int can = 0;
  CU_TRY(api().cuDeviceCanAccessPeer(&can, device.handle(), peer.handle()));
  return can != 0;
}

Status enable_peer_access(const Device& device, const Device& peer) {
  if (device.handle() == peer.handle()) return Status::OK();
  PS_ASSIGN_OR_RETURN(bool can, can_access_peer(device, peer));
  if (!can) {
    return unavailable("GPU ", device.ordinal(), " cannot access GPU ", peer.ordinal(),
                       "'s memory directly (no NVLink or PCIe peer-to-peer path)");
  }
  ScopedContext in_context(device.context());
  const CUresult r = api().cuCtxEnablePeerAccess(peer.context(), 0);
  if (r == CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) return Status::OK();
  CU_TRY(r);
  return Status::OK();
}

}  // namespace ps::cuda
