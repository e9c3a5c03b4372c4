// The CUDA driver API, loaded at run time.
//
// Nothing in the project links libcuda: a binary must start (and explain itself) on a machine
// with no driver or no GPU. load_driver() dlopens libcuda.so.1 once, resolves every entry
// point below through cuGetProcAddress at the ABI version listed beside it, and calls cuInit.
// Types come from <cuda.h> and <cudaTypedefs.h>; each member has exactly the signature of the
// versioned symbol the header maps the name to (cuMemAlloc -> cuMemAlloc_v2, ABI 3020).
//
// Use: `CU_TRY(cuda::api().cuMemAlloc(&ptr, bytes));` after load_driver() succeeded.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>

#include <string>

#include "common/status.h"

// Every driver entry point the project uses, with the CUDA version of the ABI we call: the
// member's type is cudaTypedefs.h's PFN_<name>_v<version>, and cuGetProcAddress is asked for
// exactly that version. Asking for "the newest as of CUDA_VERSION" instead is a trap: CUDA 13
// changed cuCtxSynchronize to take a context while <cuda.h> still declares the old (void) form.
// A static_assert in driver.cc checks every pinned type against <cuda.h>'s declaration.
// Add a line here to use a new entry point (find its versions in cudaTypedefs.h).
#define PS_CUDA_DRIVER_ENTRY_POINTS(X)    \
  X(cuInit, 2000)                         \
  X(cuDriverGetVersion, 2020)             \
  X(cuGetErrorName, 6000)                 \
  X(cuGetErrorString, 6000)               \
  X(cuDeviceGetCount, 2000)               \
  X(cuDeviceGet, 2000)                    \
  X(cuDeviceGetName, 2000)                \
  X(cuDeviceGetAttribute, 2000)           \
  X(cuDeviceTotalMem, 3020)               \
  X(cuDevicePrimaryCtxRetain, 7000)       \
  X(cuDevicePrimaryCtxRelease, 11000)     \
  X(cuDevicePrimaryCtxSetFlags, 11000)    \
  X(cuCtxSetCurrent, 4000)                \
  X(cuCtxEnablePeerAccess, 4000)          \
  X(cuDeviceCanAccessPeer, 4000)          \
  X(cuCtxGetCurrent, 4000)                \
  X(cuCtxSynchronize, 2000)               \
  X(cuCtxGetStreamPriorityRange, 5050)    \
  X(cuMemGetInfo, 3020)                   \
  X(cuStreamCreateWithPriority, 5050)     \
  X(cuStreamDestroy, 4000)                \
  X(cuStreamSynchronize, 2000)            \
  X(cuStreamQuery, 2000)                  \
  X(cuStreamGetPriority, 5050)            \
  X(cuStreamWaitEvent, 3020)              \
  X(cuStreamIsCapturing, 10000)           \
  X(cuEventCreate, 2000)                  \
  X(cuEventDestroy, 4000)                 \
  X(cuEventRecord, 2000)                  \
  X(cuEventRecordWithFlags, 11010)        \
  X(cuEventSynchronize, 2000)             \
  X(cuEventQuery, 2000)                   \
  X(cuEventElapsedTime, 12080)            \
  X(cuMemAlloc, 3020)                     \
  X(cuMemFree, 3020)                      \
  X(cuMemAllocManaged, 6000)              \
  X(cuMemPrefetchAsync, 12020)            \
  X(cuMemHostAlloc, 2020)                 \
  X(cuMemHostGetDevicePointer, 3020)      \
  X(cuMemFreeHost, 2000)                  \
  X(cuMemHostRegister, 6050)              \
  X(cuMemHostUnregister, 4000)            \
  X(cuMemcpyHtoDAsync, 3020)              \
  X(cuMemcpyDtoHAsync, 3020)              \
  X(cuMemcpyDtoDAsync, 3020)              \
  X(cuMemcpyPeerAsync, 4000)              \
  X(cuMemcpyHtoD, 3020)                   \
  X(cuMemcpyDtoH, 3020)                   \
  X(cuMemsetD8Async, 3020)                \
  X(cuMemsetD32Async, 3020)               \
  X(cuMemsetD2D32Async, 3020)             \
  X(cuMemAddressReserve, 10020)           \
  X(cuMemAddressFree, 10020)              \
  X(cuMemCreate, 10020)                   \
  X(cuMemRelease, 10020)                  \
  X(cuMemMap, 10020)                      \
  X(cuMemUnmap, 10020)                    \
  X(cuMemSetAccess, 10020)                \
  X(cuMemGetAllocationGranularity, 10020) \
  X(cuModuleLoadData, 2000)               \
  X(cuModuleUnload, 2000)                 \
  X(cuModuleGetFunction, 2000)            \
  X(cuFuncGetAttribute, 2020)             \
  X(cuFuncSetAttribute, 9000)             \
  X(cuFuncGetParamInfo, 12040)            \
  X(cuLaunchKernel, 4000)                 \
  X(cuLaunchHostFunc, 10000)              \
  X(cuStreamBeginCapture, 10010)          \
  X(cuStreamEndCapture, 10000)            \
  X(cuGraphInstantiateWithFlags, 11040)   \
  X(cuGraphGetNodes, 10000)               \
  X(cuGraphLaunch, 10000)                 \
  X(cuGraphDestroy, 10000)                \
  X(cuGraphExecDestroy, 10000)

namespace ps::cuda {

struct DriverApi {
#define PS_CUDA_DECLARE_ENTRY(name, version) PFN_##name##_v##version name = nullptr;
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

// True for the errors after which the context is unusable (illegal address, launch failure,
// device-side assert, ECC...): every later call in the context fails the same way.
bool is_context_fatal(CUresult result);

// The Status for a failed driver call: kOutOfMemory for CUDA_ERROR_OUT_OF_MEMORY, else kDevice;
// the message names the call, the error and the place. OK for CUDA_SUCCESS. An error for which
// is_context_fatal() holds ends the process (ps::fatal) with that message instead: the design's
// policy, since the server cannot answer anything correctly from a broken context.
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
