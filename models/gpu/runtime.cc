#include "models/gpu/runtime.h"

#include <utility>

namespace ps::models::gpu {

Result<std::unique_ptr<GpuRuntime>> GpuRuntime::create(int ordinal) {
  std::unique_ptr<GpuRuntime> rt(new GpuRuntime());
  PS_ASSIGN_OR_RETURN(cuda::Device device, cuda::Device::open(ordinal));
  rt->device_.emplace(std::move(device));
  PS_ASSIGN_OR_RETURN(rt->module_, cuda::Module::load_embedded());
  PS_ASSIGN_OR_RETURN(rt->dnn_, cuda::DnnHandle::create());
  PS_ASSIGN_OR_RETURN(rt->blas_, cuda::BlasHandle::create());
  CUBLAS_TRY(cublasLtCreate(&rt->blas_lt_));
  PS_ASSIGN_OR_RETURN(rt->plan_stream_, cuda::Stream::create(cuda::StreamPriority::kNormal));
  return rt;
}

GpuRuntime::~GpuRuntime() {
  if (blas_lt_ != nullptr) cublasLtDestroy(blas_lt_);
}

Result<cuda::Kernel> GpuRuntime::kernel(const char* name) {
  if (auto it = kernels_.find(std::string_view(name)); it != kernels_.end()) return it->second;
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, module_.function(name));
  kernels_.emplace(name, k);
  return k;
}

Status GpuRuntime::bind(const cuda::Stream& stream, CUdeviceptr workspace, size_t bytes) {
  PS_TRY(dnn_.set_stream(stream));
  PS_TRY(blas_.set_stream(stream));
  // cublasSetStream resets the workspace to cuBLAS's own pool; give it ours (or none, which
  // makes cuBLAS pick workspace-free kernels rather than allocate).
  PS_TRY(blas_.set_workspace(workspace, bytes));
  return Status::OK();
}

Result<CUdeviceptr> GpuRuntime::plan_scratch(size_t bytes) {
  if (plan_scratch_.size() < bytes) {
    plan_scratch_ = cuda::DeviceBuffer();  // free first: the peak is the larger one alone
    PS_ASSIGN_OR_RETURN(plan_scratch_, cuda::DeviceBuffer::allocate(bytes));
  }
  return plan_scratch_.ptr();
}

void GpuRuntime::release_plan_scratch() { plan_scratch_ = cuda::DeviceBuffer(); }

}  // namespace ps::models::gpu
