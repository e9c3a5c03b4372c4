// The device layer on a machine without a driver (here) or with one: loading, error values,
// the embedded fatbin. None of these cases needs a GPU.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "cuda/context.h"
#include "cuda/device.h"
#include "cuda/device_buffer.h"
#include "cuda/driver.h"
#include "cuda/event.h"
#include "cuda/host_memory.h"
#include "cuda/module.h"
#include "cuda/stream.h"

using ps::Code;
namespace cuda = ps::cuda;

namespace {

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Whether this process can load libcuda.so.1 at all (without keeping it).
bool libcuda_loadable() {
  void* lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (lib == nullptr) return false;
  dlclose(lib);
  return true;
}

ps::Status fail_with_cu(CUresult r) {
  CU_TRY(r);
  return ps::Status::OK();
}

}  // namespace

TEST_CASE("loading the driver succeeds or says in one line what is missing", "[cuda]") {
  auto loaded = cuda::load_driver();
  if (loaded.ok()) {
    CHECK((*loaded)->driver_version >= 13000);
    CHECK((*loaded)->cuLaunchKernel != nullptr);
    CHECK(&cuda::api() == *loaded);
    return;
  }
  const ps::Status& s = loaded.status();
  CHECK(s.code() == Code::kUnavailable);
  const std::string& m = s.message();
  CHECK_FALSE(m.empty());
  CHECK(m.find('\n') == std::string::npos);
  CHECK((contains(m, "driver") || contains(m, "GPU")));
  if (!libcuda_loadable()) {
    // This build machine: no libcuda.so.1 at all. The message must name it.
    CHECK(contains(m, "no NVIDIA driver"));
    CHECK(contains(m, "libcuda.so.1"));
  }
  // The outcome is computed once.
  auto again = cuda::load_driver();
  REQUIRE_FALSE(again.ok());
  CHECK(again.status() == s);
  CHECK_FALSE(cuda::gpu_available());
}

TEST_CASE("without a driver the device layer answers kUnavailable instead of crashing", "[cuda]") {
  if (cuda::load_driver().ok()) {
    SUCCEED("a driver is present: the [gpu] cases cover this machine");
    return;
  }
  CHECK(cuda::Device::count().status().code() == Code::kUnavailable);
  auto device = cuda::Device::open(0);
  REQUIRE_FALSE(device.ok());
  CHECK(device.status().code() == Code::kUnavailable);
  CHECK(cuda::current_context().status().code() == Code::kUnavailable);
  CHECK(cuda::Stream::create().status().code() == Code::kUnavailable);
  CHECK(cuda::Event::create().status().code() == Code::kUnavailable);
  CHECK(cuda::DeviceBuffer::allocate(64).status().code() == Code::kUnavailable);
  CHECK(cuda::PinnedBuffer::allocate(64).status().code() == Code::kUnavailable);
  int x = 0;
  CHECK(cuda::HostRegistration::register_range(&x, sizeof(x)).status().code() ==
        Code::kUnavailable);
  CHECK(cuda::Module::load_embedded().status().code() == Code::kUnavailable);
}

TEST_CASE("invalid sizes are refused before any driver call", "[cuda]") {
  CHECK(cuda::DeviceBuffer::allocate(0).status().code() == Code::kInvalidArgument);
  CHECK(cuda::PinnedBuffer::allocate(0).status().code() == Code::kInvalidArgument);
  CHECK(cuda::HostRegistration::register_range(nullptr, 16).status().code() ==
        Code::kInvalidArgument);
  cuda::DeviceBuffer empty;
  CHECK(empty.ptr() == 0);
  CHECK(empty.size() == 0);
  cuda::Kernel no_kernel;
  cuda::Stream no_stream;
  ps::Status s = no_kernel.launch(no_stream, 1, 1, 0, 1u);
  CHECK(s.code() == Code::kInvalidArgument);
}

TEST_CASE("CU_TRY names the call, the error and the place", "[cuda]") {
  ps::Status s = fail_with_cu(CUDA_ERROR_INVALID_VALUE);
  CHECK(s.code() == Code::kDevice);
  CHECK(contains(s.message(), "r failed: "));
  CHECK(contains(s.message(), "core_test.cc:"));
  if (cuda::load_driver().ok()) {
    CHECK(contains(s.message(), "CUDA_ERROR_INVALID_VALUE"));
  } else {
    CHECK(contains(s.message(), "CUresult 1"));
  }
  CHECK(fail_with_cu(CUDA_ERROR_OUT_OF_MEMORY).code() == Code::kOutOfMemory);
  CHECK(fail_with_cu(CUDA_SUCCESS).ok());
}

TEST_CASE("the kernels' fatbin is embedded in the library", "[cuda]") {
  auto image = cuda::embedded_fatbin();
  REQUIRE(image.size() > 1024);
  // Fatbin magic 0xBA55ED50, little-endian.
  CHECK(image[0] == 0x50);
  CHECK(image[1] == 0xED);
  CHECK(image[2] == 0x55);
  CHECK(image[3] == 0xBA);
  CHECK(reinterpret_cast<uintptr_t>(image.data()) % 64 == 0);
  // The image is compressed (nvcc -Xfatbin=-compress-all: 12 MB -> 2 MB, so every binary that
  // embeds it stays small), so kernel names are not visible in its bytes; the [gpu] cases look
  // every kernel up by name in the loaded module instead.
  CHECK(image.size() < (16u << 20));
}

TEST_CASE("PS_KERNELS_FATBIN that cannot be read is kNotFound naming the path", "[cuda]") {
  const std::string path = "/nonexistent/ps_kernels.fatbin";
  REQUIRE(setenv(cuda::Module::kKernelsOverrideEnv, path.c_str(), 1) == 0);
  auto module = cuda::Module::load_embedded();
  unsetenv(cuda::Module::kKernelsOverrideEnv);
  REQUIRE_FALSE(module.ok());
  CHECK(module.status().code() == Code::kNotFound);
  CHECK_THAT(module.status().message(),
             Catch::Contains("PS_KERNELS_FATBIN=" + path) && Catch::Contains("cannot read"));
  // Unset or empty: the embedded image (without a driver here: kUnavailable, not kNotFound).
  REQUIRE(setenv(cuda::Module::kKernelsOverrideEnv, "", 1) == 0);
  const Code empty = cuda::Module::load_embedded().status().code();
  unsetenv(cuda::Module::kKernelsOverrideEnv);
  CHECK(empty != Code::kNotFound);
}

TEST_CASE("check_fatbin accepts a whole fatbin only, and PS_KERNELS_FATBIN is checked with it",
          "[cuda]") {
  const auto image = cuda::embedded_fatbin();
  CHECK(cuda::check_fatbin(image).ok());
  const ps::Status cut = cuda::check_fatbin(image.first(100));
  CHECK(cut.code() == Code::kInvalidArgument);
  CHECK_THAT(cut.message(), Catch::Contains("truncated fatbin") && Catch::Contains("has 100"));
  const std::string elf =
      "\x7f"
      "ELF and more bytes than a header";
  const ps::Status other =
      cuda::check_fatbin({reinterpret_cast<const unsigned char*>(elf.data()), elf.size()});
  CHECK_THAT(other.message(), Catch::Contains("not a fatbin"));
  CHECK_FALSE(cuda::check_fatbin(image.first(8)).ok());

  // A truncated copy named by PS_KERNELS_FATBIN never reaches the driver (which trusts the
  // header's size and would read past the buffer): refused here, without a driver.
  char path[] = "/tmp/ps_kernels_cut_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, image.data(), 4096) == 4096);
  close(fd);
  REQUIRE(setenv(cuda::Module::kKernelsOverrideEnv, path, 1) == 0);
  auto module = cuda::Module::load_embedded();
  unsetenv(cuda::Module::kKernelsOverrideEnv);
  unlink(path);
  REQUIRE_FALSE(module.ok());
  CHECK(module.status().code() == Code::kInvalidArgument);
  CHECK_THAT(module.status().message(),
             Catch::Contains("PS_KERNELS_FATBIN=") && Catch::Contains("truncated fatbin"));
}

TEST_CASE("launch geometry helpers", "[cuda]") {
  CHECK(cuda::blocks_for(0, 256) == 1);
  CHECK(cuda::blocks_for(1, 256) == 1);
  CHECK(cuda::blocks_for(256, 256) == 1);
  CHECK(cuda::blocks_for(257, 256) == 2);
  CHECK(cuda::blocks_for(uint64_t{1} << 40, 256) == 65535);
  CHECK(cuda::blocks_for(uint64_t{1} << 40, 256, 4096) == 4096);
  CHECK(cuda::blocks_for(1000, 0) == 1);
  constexpr cuda::Dim3 d = 7;
  static_assert(d.x == 7 && d.y == 1 && d.z == 1);
  constexpr cuda::Dim3 e(2, 3, 4);
  static_assert(e.x * e.y * e.z == 24);
}
