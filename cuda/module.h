// Module and Kernel: our own kernels, compiled into one fatbin embedded in the binary.
//
// The .cu files under cuda/kernels/ are compiled by nvcc into ps_kernels.fatbin (SASS for
// sm_80 and sm_90, PTX for compute_90 so newer GPUs JIT it), which cuda/kernels_fatbin.S
// embeds in the library. Module::load_embedded() loads it into the current context once (at
// start-up); Module::function() looks a kernel up by its extern "C" name (at plan time);
// Kernel::launch() only queues a launch (at request time).
#pragma once

#include <cuda.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {

class Stream;

// The embedded fatbin image (begins with the fatbin magic 0xBA55ED50). Needs no driver.
std::span<const unsigned char> embedded_fatbin();

// kInvalidArgument unless `image` is a whole fatbin: its magic, and at least as many bytes as
// its header gives (the driver trusts that size and would read past a shorter buffer).
Status check_fatbin(std::span<const unsigned char> image);

// Grid or block dimensions; converts from one unsigned for 1-D launches.
struct Dim3 {
  unsigned x = 1;
  unsigned y = 1;
  unsigned z = 1;
  constexpr Dim3() = default;
  constexpr Dim3(unsigned x_, unsigned y_ = 1, unsigned z_ = 1)  // NOLINT: implicit for 1-D
      : x(x_), y(y_), z(z_) {}
};

// Blocks of `block` threads needed to cover `n` items, capped at `max_blocks` (kernels use
// grid-stride loops, so a capped grid still covers everything). At least 1.
unsigned blocks_for(uint64_t n, unsigned block, unsigned max_blocks = 65535);

// A kernel of a loaded Module. Cheap to copy; valid while its Module lives.
class Kernel {
 public:
  static constexpr size_t kMaxParams = 32;

  Kernel() = default;

  // Queues the kernel on `stream` with `args` as its parameters, in order. Each argument's
  // type must have the size of the kernel's parameter (pass CUdeviceptr or T* for pointers,
  // uint64_t for 64-bit counts, float for float...): the count and every size are checked
  // against the kernel's own parameter list, so a mismatch is an error, not a corrupt launch.
  // Allocates nothing. Errors: kInvalidArgument (argument mismatch, naming the kernel and the
  // parameter), kDevice for a failed launch (launch configuration, out of resources).
  template <typename... Args>
  Status launch(const Stream& stream, Dim3 grid, Dim3 block, unsigned shared_bytes,
                Args... args) const {
    static_assert((std::is_trivially_copyable_v<Args> && ...),
                  "kernel arguments are copied bytewise: use trivially copyable types");
    constexpr size_t n = sizeof...(Args);
    static_assert(n <= kMaxParams, "too many kernel arguments");
    // Sized n + 1 so a kernel without parameters still gets valid arrays.
    const size_t sizes[n + 1] = {sizeof(Args)..., 0};
    void* params[n + 1] = {static_cast<void*>(&args)..., nullptr};
    return launch_raw(stream, grid, block, shared_bytes, params, sizes, n);
  }

  CUfunction get() const { return function_; }
  const std::string& name() const { return name_; }
  // Number of parameters the kernel takes, and the size in bytes of parameter i.
  size_t param_count() const { return param_count_; }
  size_t param_size(size_t i) const { return param_sizes_[i]; }
  // False when the driver could not describe the parameters; launches are then unchecked.
  bool params_known() const { return params_known_; }

 private:
  friend class Module;

  Status launch_raw(const Stream& stream, Dim3 grid, Dim3 block, unsigned shared_bytes,
                    void** params, const size_t* sizes, size_t count) const;

  CUfunction function_ = nullptr;
  std::string name_;
  size_t param_count_ = 0;
  bool params_known_ = true;
  std::array<uint32_t, kMaxParams> param_sizes_{};
};

class Module {
 public:
  // Loads the embedded fatbin into the current context (precondition: one is current).
  // Errors: kUnavailable without a driver, kInvalidArgument with no current context, kDevice
  // when the driver refuses the image (CUDA_ERROR_NO_BINARY_FOR_GPU: a GPU older than sm_80).
  // When the environment variable PS_KERNELS_FATBIN names a file, that image is loaded instead
  // (kernel work: A/B a kernel change in the same binaries; kNotFound if it cannot be read,
  // kInvalidArgument if it is not a whole fatbin).
  static Result<Module> load_embedded();
  static constexpr const char* kKernelsOverrideEnv = "PS_KERNELS_FATBIN";

  // Loads any fatbin, cubin or PTX image (`what` names it in errors). The image is copied by
  // the driver; the caller keeps ownership.
  static Result<Module> load_image(const void* image, const std::string& what);

  Module() = default;
  Module(Module&&) noexcept = default;
  Module& operator=(Module&&) noexcept = default;
  ~Module() = default;  // unloads (in its own context); its Kernels become invalid

  // Looks up an extern "C" kernel and its parameter list; for start-up or plan time. With lazy
  // module loading (the driver's default) the kernel's code may reach the GPU only at its
  // first launch, so a plan warms its kernels with one launch before serving requests.
  // Errors: kNotFound naming the kernel and the module, kDevice otherwise.
  Result<Kernel> function(const char* name) const;

  CUmodule get() const { return module_.get(); }

 private:
  struct Unload {
    CUcontext context = nullptr;
    void operator()(CUmodule module) const;
  };

  UniqueHandle<CUmodule, Unload> module_;
  std::string what_;
};

}  // namespace ps::cuda
