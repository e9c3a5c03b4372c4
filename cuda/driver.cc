#include "cuda/driver.h"

#include <dlfcn.h>

#include <type_traits>

namespace ps::cuda {
namespace {

// The pinned ABI of every entry point must be the one <cuda.h> declares under that name, or
// calls through the table would pass the wrong arguments.
#define PS_CUDA_CHECK_ENTRY_TYPE(name, version)                                           \
  static_assert(std::is_same_v<PFN_##name##_v##version, decltype(&::name)>,               \
                #name ": the pinned ABI version differs from <cuda.h>'s declaration");
PS_CUDA_DRIVER_ENTRY_POINTS(PS_CUDA_CHECK_ENTRY_TYPE)
#undef PS_CUDA_CHECK_ENTRY_TYPE

using GetProcAddressFn = CUresult (*)(const char*, void**, int, cuuint64_t,
                                      CUdriverProcAddressQueryResult*);

struct Loaded {
  DriverApi api;
  Status status;
};

Loaded load_once() {
  Loaded out;
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    out.status = unavailable("no NVIDIA driver: cannot load libcuda.so.1 (",
                             why ? why : "unknown reason", ")");
    return out;
  }
  // The handle is kept for the life of the process: the driver is never unloaded.
  auto get_proc = reinterpret_cast<GetProcAddressFn>(dlsym(lib, "cuGetProcAddress_v2"));
  if (get_proc == nullptr) {
    out.status = unavailable("NVIDIA driver too old: libcuda.so.1 has no cuGetProcAddress_v2 "
                             "(need a driver for CUDA ", CUDA_VERSION / 1000, ".",
                             (CUDA_VERSION % 1000) / 10, " or newer)");
    return out;
  }
  DriverApi& api = out.api;
#define PS_CUDA_RESOLVE_ENTRY(name, version)                                               \
  {                                                                                        \
    void* fn = nullptr;                                                                    \
    CUdriverProcAddressQueryResult found = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;                   \
    CUresult r = get_proc(#name, &fn, version, CU_GET_PROC_ADDRESS_DEFAULT, &found);       \
    if (r != CUDA_SUCCESS || found != CU_GET_PROC_ADDRESS_SUCCESS || fn == nullptr) {         \
      out.status = unavailable(                                                            \
          "NVIDIA driver too old: it has no ", #name, " (ABI of CUDA ", (version) / 1000,  \
          ".", ((version) % 1000) / 10, ")",                                               \
          found == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT ? " (version not sufficient)" : ""); \
      return out;                                                                          \
    }                                                                                      \
    api.name = reinterpret_cast<decltype(api.name)>(fn);                                   \
  }
  PS_CUDA_DRIVER_ENTRY_POINTS(PS_CUDA_RESOLVE_ENTRY)
#undef PS_CUDA_RESOLVE_ENTRY

  CUresult r = api.cuInit(0);
  if (r == CUDA_ERROR_NO_DEVICE) {
    out.status = unavailable("NVIDIA driver loaded but no CUDA GPU is visible");
    return out;
  }
  if (r != CUDA_SUCCESS) {
    const char* name = nullptr;
    api.cuGetErrorName(r, &name);
    out.status = unavailable("cuInit failed: ", name ? name : "unknown error");
    return out;
  }
  if (api.cuDriverGetVersion(&api.driver_version) != CUDA_SUCCESS) api.driver_version = 0;
  return out;
}

const Loaded& loaded() {
  static const Loaded instance = load_once();  // thread-safe initialisation
  return instance;
}

}  // namespace

Result<const DriverApi*> load_driver() {
  const Loaded& l = loaded();
  if (!l.status.ok()) return l.status;
  return &l.api;
}

const DriverApi& api() {
  const Loaded& l = loaded();
  if (!l.status.ok()) fatal(__FILE__, __LINE__, "CUDA driver used before loading: " + l.status.message());
  return l.api;
}

bool gpu_available() {
  auto d = load_driver();
  if (!d.ok()) return false;
  int count = 0;
  return (*d)->cuDeviceGetCount(&count) == CUDA_SUCCESS && count > 0;
}

std::string describe(CUresult result) {
  const Loaded& l = loaded();
  const char* name = nullptr;
  const char* text = nullptr;
  if (l.api.cuGetErrorName != nullptr) l.api.cuGetErrorName(result, &name);
  if (l.api.cuGetErrorString != nullptr) l.api.cuGetErrorString(result, &text);
  if (name == nullptr) return str_cat("CUresult ", static_cast<int>(result));
  if (text == nullptr) return name;
  return str_cat(name, " (", text, ")");
}

bool is_context_fatal(CUresult result) {
  switch (result) {
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ECC_UNCORRECTABLE:
    case CUDA_ERROR_ASSERT:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
      return true;
    default:
      return false;
  }
}

Status cu_status(CUresult result, const char* call, const char* file, int line) {
  if (result == CUDA_SUCCESS) return Status();
  if (is_context_fatal(result)) {
    // The context is unusable from here on: nothing can be served correctly, so say why and end.
    fatal(file, line, str_cat(call, " failed: ", describe(result),
                              " (the CUDA context is unusable; the process ends)"));
  }
  Code code = result == CUDA_ERROR_OUT_OF_MEMORY ? Code::kOutOfMemory : Code::kDevice;
  return Status(code, str_cat(call, " failed: ", describe(result), " at ", file, ":", line));
}

}  // namespace ps::cuda
