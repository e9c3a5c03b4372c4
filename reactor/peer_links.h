// PeerLinks: the host links that the GPUs of one server lend each other for parallel
// transmission (issue 10; docs/multi-gpu.md). Each GPU engine offers one link at start-up: a
// pair of streams, staging slots in its own pool and the link's events, all in its context.
// When a GPU switches a model in, it claims the links of devices that are idle (no request of
// their own running) and not lent to another switch, routes part of the weights through them
// (models/gpu/parallel_run.h), and gives them back when its request is done.
//
// Thread-safe: the engines run on their own device threads. A claim and a release take one
// short lock and allocate nothing (the request path). A device that turns busy while its link
// is lent keeps working; its own switch then shares its PCIe link with the lent pieces (slower
// for both, never wrong: the lent link's streams and staging are used by the claimer only).
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "models/gpu/cuda_lanes.h"

namespace ps::reactor {

class PeerLinks {
 public:
  // Links one claim can return (a switch uses its own link and at most this many others).
  static constexpr uint32_t kMaxClaim = 15;
  // The owner of a loopback link: a second link on the claiming GPU itself (tests; lent to
  // any claimer whatever the busy flags say).
  static constexpr int kLoopback = -1;

  struct Claim {
    std::array<models::gpu::LinkStreams, kMaxClaim> links{};
    std::array<uint32_t, kMaxClaim> ids{};  // for release()
    uint32_t count = 0;
  };

  // `devices`: the GPU ordinals of the server (their busy flags).
  explicit PeerLinks(std::vector<int> devices);
  PeerLinks(const PeerLinks&) = delete;
  PeerLinks& operator=(const PeerLinks&) = delete;

  const std::vector<int>& devices() const { return devices_; }

  // Device `owner` (or kLoopback) offers `link`.
  void add(int owner, const models::gpu::LinkStreams& link);
  // Withdraws every link of `owner`, first waiting until no switch holds one (so its streams
  // and staging may be destroyed after). For shutdown.
  void remove(int owner);
  // Device `device` starts (true) or ends (false) a request of its own: busy devices are not
  // lent. An unknown device is ignored.
  void set_busy(int device, bool busy);
  // Claims up to `max` (at most kMaxClaim) links: loopback links first, then those of idle
  // devices other than `claimer`, in the order they were added, none held by another claim.
  Claim claim(int claimer, uint32_t max);
  // Gives back what claim() returned. Precondition: the work queued on the links has finished.
  void release(const Claim& claim);
  // Links lent so far (each link of each claim counts once).
  uint64_t lent() const;

 private:
  struct Entry {
    int owner = 0;
    models::gpu::LinkStreams link;
    bool claimed = false;
    bool removed = false;
  };
  bool busy_locked(int device) const;

  const std::vector<int> devices_;
  mutable std::mutex mu_;
  std::condition_variable released_;
  std::vector<Entry> entries_;  // never shrinks, so a claim's ids stay valid
  std::vector<bool> busy_;      // per devices_ index
  uint64_t lent_ = 0;
};

}  // namespace ps::reactor
