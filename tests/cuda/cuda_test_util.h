// Helpers shared by the tests of cuda/: Status checks, and the objects every [gpu] case needs.
#pragma once

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <utility>

#include "common/status.h"
#include "cuda/basic_kernels.h"
#include "cuda/context.h"
#include "cuda/device.h"
#include "cuda/device_buffer.h"
#include "cuda/driver.h"
#include "cuda/host_memory.h"
#include "cuda/module.h"
#include "cuda/stream.h"
#include "tests/support/require_ok.h"

namespace ps::cuda::testing {

// The value of `r`, or fails the test case printing its error.
template <typename T>
T take(Result<T> r) {
  if (!r.ok()) FAIL(r.status().to_string());
  return std::move(r).value();
}

// Device 0 with our kernels loaded. Declare it first in a test so it is destroyed last.
struct Gpu {
  Device device;
  Module module;
  BasicKernels kernels;
};

inline Gpu open_gpu() {
  Device device = take(Device::open(0));
  Module module = take(Module::load_embedded());
  BasicKernels kernels = take(BasicKernels::load(module));
  return Gpu{std::move(device), std::move(module), kernels};
}

// Holds streams at a point of their work until the test opens it (ps_wait_flag): lets a test
// assert that later work has NOT run yet, deterministically. Opens itself and waits for the
// context's work on destruction, so a failing test neither hangs nor frees memory in use.
class Gate {
 public:
  // About two seconds on current GPUs: a bound on a test that forgets to open the gate.
  static constexpr uint64_t kMaxCycles = 4'000'000'000ull;

  explicit Gate(const BasicKernels& kernels) : kernels_(&kernels) {
    flag_ = take(PinnedBuffer::allocate(sizeof(uint32_t)));
    timed_out_ = take(DeviceBuffer::allocate(sizeof(uint32_t)));
    store(0);
    REQUIRE_OK(copy_timed_out_reset());
  }
  ~Gate() {
    store(1);
    CU_CHECK_RELEASE(api().cuCtxSynchronize());
  }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  // Queues a wait on `stream` that lasts until open().
  void hold(const Stream& stream) {
    REQUIRE_OK(
        kernels_->wait_flag(stream, flag_.as<volatile uint32_t>(), kMaxCycles, timed_out_.ptr()));
  }
  void open() { store(1); }

  // Whether any hold gave up waiting (the test then proved nothing). Synchronizes the context.
  bool timed_out() {
    uint32_t value = 0;
    REQUIRE_OK(read_timed_out(&value));
    return value != 0;
  }

 private:
  void store(uint32_t v) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    *flag_.as<volatile uint32_t>() = v;
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  Status copy_timed_out_reset() {
    uint32_t zero = 0;
    CU_TRY(api().cuMemcpyHtoD(timed_out_.ptr(), &zero, sizeof(zero)));
    return Status::OK();
  }
  Status read_timed_out(uint32_t* value) {
    CU_TRY(api().cuCtxSynchronize());
    CU_TRY(api().cuMemcpyDtoH(value, timed_out_.ptr(), sizeof(*value)));
    return Status::OK();
  }

  const BasicKernels* kernels_;
  PinnedBuffer flag_;
  DeviceBuffer timed_out_;
};

}  // namespace ps::cuda::testing
