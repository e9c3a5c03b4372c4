// BackendDescriptor: an owned descriptor of cuDNN's backend (graph) API, with typed setters.
//
// The graph API describes an operation (a convolution and its epilogue, say) as tensors and
// operations, asks cuDNN's heuristics for engine configurations, and finalises execution plans
// that are then run with a variant pack of device pointers. A finalised plan runs with a few
// microseconds of host time (cudnnBackendExecute), where the legacy calls rebuild much of that
// per call (models/gpu/conv_graph.h measures both).
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <span>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {

class BackendDescriptor {
 public:
  // Errors: kDevice (kOutOfMemory for a failed allocation) naming the descriptor type.
  static Result<BackendDescriptor> create(cudnnBackendDescriptorType_t type);

  BackendDescriptor() = default;  // empty
  BackendDescriptor(BackendDescriptor&&) noexcept = default;
  BackendDescriptor& operator=(BackendDescriptor&&) noexcept = default;
  ~BackendDescriptor() = default;  // cudnnBackendDestroyDescriptor

  // cudnnBackendSetAttribute; errors name the attribute.
  Status set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
             const void* values);
  Status set_int64(cudnnBackendAttributeName_t name, std::span<const int64_t> values);
  Status set_int64(cudnnBackendAttributeName_t name, int64_t value);
  Status set_data_type(cudnnBackendAttributeName_t name, cudnnDataType_t value);
  Status set_descriptor(cudnnBackendAttributeName_t name, const BackendDescriptor& value);
  Status set_descriptors(cudnnBackendAttributeName_t name,
                         std::span<const cudnnBackendDescriptor_t> values);
  Status set_handle(cudnnBackendAttributeName_t name, cudnnHandle_t handle);
  // cudnnBackendFinalize; errors carry cuDNN's last message (why a configuration is refused).
  Status finalize();

  // cudnnBackendGetAttribute of one int64 (a finalised plan's workspace size, say).
  Result<int64_t> get_int64(cudnnBackendAttributeName_t name) const;

  cudnnBackendDescriptor_t get() const { return desc_.get(); }
  explicit operator bool() const { return static_cast<bool>(desc_); }

 private:
  struct Destroy {
    void operator()(cudnnBackendDescriptor_t desc) const;
  };

  UniqueHandle<cudnnBackendDescriptor_t, Destroy> desc_;
};

}  // namespace ps::cuda
