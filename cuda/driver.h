// The CUDA driver API, loaded at run time.
//
// Nothing in the project links libcuda: a binary must start (and explain itself) on a machine
// with no driver or no GPU. load_driver() dlopens libcuda.so.1 once, resolves every entry
// point below through cuGetProcAddress for the CUDA version the code was written against
// (CUDA_VERSION of the toolkit headers), and calls cuInit. Types come from <cuda.h>; the
// function pointer types are decltype of its declarations, so each member has exactly the
// signature of the versioned symbol the header maps the name to (cuMemAlloc -> cuMemAlloc_v2).
//
// Use: `CU_TRY(cuda::api().cuMemAlloc(&ptr, bytes));` after load_driver() succeeded.
#pragma once

#include <cuda.h>

#include <string>

#include "common/status.h"

// Every driver entry point the project uses. Add a line here to use a new one.
#define PS_CUDA_DRIVER_ENTRY_POINTS(X) \
  X(cuInit)                            \
  X(cuDriverGetVersion)                \
  X(cuGetErrorName)                    \
  X(cuGetErrorString)                  \
  X(cuDeviceGetCount)                  \
  X(cuDeviceGet)                       \
  X(cuDeviceGetName)                   \
  X(cuDeviceGetAttribute)              \
  X(cuDeviceTotalMem)                  \
  X(cuDevicePrimaryCtxRetain)          \
  X(cuDevicePrimaryCtxRelease)         \
  X(cuDevicePrimaryCtxSetFlags)        \
  X(cuCtxSetCurrent)                   \
  X(cuCtxGetCurrent)                   \
  X(cuCtxSynchronize)                  \
  X(cuCtxGetStreamPriorityRange)       \
  X(cuMemGetInfo)                      \
  X(cuStreamCreateWithPriority)        \
  X(cuStreamDestroy)                   \
  X(cuStreamSynchronize)               \
  X(cuStreamQuery)                     \
  X(cuStreamGetPriority)               \
  X(cuStreamWaitEvent)                 \
  X(cuEventCreate)                     \
  X(cuEventDestroy)                    \
  X(cuEventRecord)                     \
  X(cuEventSynchronize)                \
  X(cuEventQuery)                      \
  X(cuEventElapsedTime)                \
  X(cuMemAlloc)                        \
  X(cuMemFree)                         \
  X(cuMemAllocManaged)                 \
  X(cuMemHostAlloc)                    \
  X(cuMemFreeHost)                     \
  X(cuMemHostRegister)                 \
  X(cuMemHostUnregister)               \
  X(cuMemcpyHtoDAsync)                 \
  X(cuMemcpyDtoHAsync)                 \
  X(cuMemcpyDtoDAsync)                 \
  X(cuMemcpyHtoD)                      \
  X(cuMemcpyDtoH)                      \
  X(cuMemsetD8Async)                   \
  X(cuMemsetD32Async)                  \
  X(cuMemAddressReserve)               \
  X(cuMemAddressFree)                  \
  X(cuMemCreate)                       \
  X(cuMemRelease)                      \
  X(cuMemMap)                          \
  X(cuMemUnmap)                        \
  X(cuMemSetAccess)                    \
  X(cuMemGetAllocationGranularity)     \
  X(cuModuleLoadData)                  \
  X(cuModuleUnload)                    \
  X(cuModuleGetFunction)               \
  X(cuFuncGetAttribute)                \
  X(cuFuncSetAttribute)                \
  X(cuFuncGetParamInfo)                \
  X(cuLaunchKernel)                    \
  X(cuLaunchHostFunc)                  \
  X(cuStreamBeginCapture)              \
  X(cuStreamEndCapture)                \
  X(cuGraphInstantiateWithFlags)       \
  X(cuGraphLaunch)                     \
  X(cuGraphDestroy)                    \
  X(cuGraphExecDestroy)

namespace ps::cuda {

struct DriverApi {
#define PS_CUDA_DECLARE_ENTRY(name) decltype(&::name) name = nullptr;
  PS_CUDA_DRIVER_ENTRY_POINTS(PS_CUDA_DECLARE_ENTRY)
#undef PS_CUDA_DECLARE_ENTRY
  int driver_version = 0;  // e.g. 13000 for CUDA 13.0, from cuDriverGetVersion
};

// Loads the driver once (thread-safe); later calls return the same outcome.
// Errors: kUnavailable with one line saying what is missing (no libcuda.so.1, a driver too old
// for CUDA_VERSION, cuInit failing because no GPU is visible).
Result<const DriverApi*> load_driver();

// The loaded table. Precondition: load_driver() returned OK (ends the process otherwise).
const DriverApi& api();

// True when the driver loads and at least one device is visible. Never fails.
bool gpu_available();

// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" for a result code, using the driver's names when
// it is loaded.
std::string describe(CUresult result);

// The Status for a failed driver call: kOutOfMemory for CUDA_ERROR_OUT_OF_MEMORY, else kDevice;
// the message names the call, the error and the place. OK for CUDA_SUCCESS.
Status cu_status(CUresult result, const char* call, const char* file, int line);

}  // namespace ps::cuda

// Evaluates a driver call (returning CUresult); on failure returns its Status from the
// enclosing function.
#define CU_TRY(call)                                                                     \
  do {                                                                                   \
    CUresult ps_cu_result_ = (call);                                                     \
    if (ps_cu_result_ != CUDA_SUCCESS)                                                   \
      return ::ps::cuda::cu_status(ps_cu_result_, #call, __FILE__, __LINE__);            \
  } while (0)

// For calls that cannot fail in a correct program (destroying a handle we own): a failure
// ends the process, since the context is no longer trustworthy.
#define CU_CHECK(call)                                                                   \
  do {                                                                                   \
    CUresult ps_cu_result_ = (call);                                                     \
    if (ps_cu_result_ != CUDA_SUCCESS)                                                   \
      ::ps::fatal(__FILE__, __LINE__,                                                    \
                  ::ps::cuda::cu_status(ps_cu_result_, #call, __FILE__, __LINE__).message()); \
  } while (0)
