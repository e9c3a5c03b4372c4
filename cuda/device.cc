#include "cuda/device.h"

#include "cuda/context.h"
#include "cuda/driver.h"

namespace ps::cuda {

void Device::ReleasePrimaryContext::operator()(CUcontext /*context*/) const {
  CU_CHECK_RELEASE(api().cuDevicePrimaryCtxRelease(device));
}

Result<int> Device::count() {
  PS_TRY(load_driver().status());
  int n = 0;
  CU_TRY(api().cuDeviceGetCount(&n));
  return n;
}

Result<Device> Device::open(int ordinal) {
  PS_ASSIGN_OR_RETURN(int n, count());
  if (ordinal < 0 || ordinal >= n) {
    return invalid_argument("no CUDA device ", ordinal, ": ", n, " visible (0..", n - 1, ")");
  }
  const DriverApi& cu = api();
  Device d;
  d.ordinal_ = ordinal;
  CU_TRY(cu.cuDeviceGet(&d.device_, ordinal));

  char name[256] = {};
  CU_TRY(cu.cuDeviceGetName(name, sizeof(name) - 1, d.device_));
  d.name_ = name;
  CU_TRY(cu.cuDeviceTotalMem(&d.total_memory_, d.device_));
  CU_TRY(cu.cuDeviceGetAttribute(&d.cc_major_, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                 d.device_));
  CU_TRY(cu.cuDeviceGetAttribute(&d.cc_minor_, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                 d.device_));
  CU_TRY(cu.cuDeviceGetAttribute(&d.multiprocessor_count_, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                                 d.device_));

  CUcontext context = nullptr;
  CU_TRY(cu.cuDevicePrimaryCtxRetain(&context, d.device_));
  // From here the retain is owned: an early return below releases it.
  d.context_ =
      UniqueHandle<CUcontext, ReleasePrimaryContext>(context, ReleasePrimaryContext{d.device_});
  CU_TRY(cu.cuCtxSetCurrent(context));
  return d;
}

Status Device::make_current() const {
  if (!context_) return invalid_argument("Device::make_current on a moved-from Device");
  CU_TRY(api().cuCtxSetCurrent(context_.get()));
  return Status::OK();
}

Result<std::pair<size_t, size_t>> Device::memory_info() const {
  if (!context_) return invalid_argument("Device::memory_info on a moved-from Device");
  ScopedContext scope(context_.get());
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  CU_TRY(api().cuMemGetInfo(&free_bytes, &total_bytes));
  return std::make_pair(free_bytes, total_bytes);
}

}  // namespace ps::cuda
