#include "reactor/peer_links.h"

#include <algorithm>

namespace ps::reactor {

PeerLinks::PeerLinks(std::vector<int> devices)
    : devices_(std::move(devices)), busy_(devices_.size(), false) {}

void PeerLinks::add(int owner, const models::gpu::LinkStreams& link) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry e;
  e.owner = owner;
  e.link = link;
  entries_.push_back(e);
}

void PeerLinks::remove(int owner) {
  std::unique_lock<std::mutex> lock(mu_);
  for (Entry& e : entries_) {
    if (e.owner == owner) e.removed = true;  // no new claims
  }
  released_.wait(lock, [&] {
    return std::none_of(entries_.begin(), entries_.end(),
                        [&](const Entry& e) { return e.owner == owner && e.claimed; });
  });
}

bool PeerLinks::busy_locked(int device) const {
  for (size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i] == device) return busy_[i];
  }
  return false;
}

void PeerLinks::set_busy(int device, bool busy) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i] == device) busy_[i] = busy;
  }
}

PeerLinks::Claim PeerLinks::claim(int claimer, uint32_t max) {
  Claim c;
  max = std::min(max, kMaxClaim);
  std::lock_guard<std::mutex> lock(mu_);
  auto take = [&](bool loopback) {
    for (uint32_t i = 0; i < entries_.size() && c.count < max; ++i) {
      Entry& e = entries_[i];
      if (e.claimed || e.removed || (e.owner == kLoopback) != loopback) continue;
      if (!loopback && (e.owner == claimer || busy_locked(e.owner))) continue;
      e.claimed = true;
      c.links[c.count] = e.link;
      c.ids[c.count] = i;
      ++c.count;
    }
  };
  take(true);
  take(false);
  lent_ += c.count;
  return c;
}

void PeerLinks::release(const Claim& claim) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint32_t i = 0; i < claim.count; ++i) entries_[claim.ids[i]].claimed = false;
  }
  released_.notify_all();
}

uint64_t PeerLinks::lent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lent_;
}

}  // namespace ps::reactor
