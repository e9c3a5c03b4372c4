#include "cuda/dnn_backend.h"

#include "cuda/dnn.h"

namespace ps::cuda {
namespace {

Status attribute_status(cudnnStatus_t status, const char* call, cudnnBackendAttributeName_t name) {
  if (status == CUDNN_STATUS_SUCCESS) return Status::OK();
  const Status s = cudnn_status(status, call, __FILE__, __LINE__);
  return Status(s.code(), str_cat(s.message(), " (attribute ", static_cast<int>(name), ")"));
}

}  // namespace

void BackendDescriptor::Destroy::operator()(cudnnBackendDescriptor_t desc) const {
  (void)cudnnBackendDestroyDescriptor(desc);  // only fails for a null descriptor
}

Result<BackendDescriptor> BackendDescriptor::create(cudnnBackendDescriptorType_t type) {
  cudnnBackendDescriptor_t desc = nullptr;
  const cudnnStatus_t status = cudnnBackendCreateDescriptor(type, &desc);
  if (status != CUDNN_STATUS_SUCCESS) {
    const Status s = cudnn_status(status, "cudnnBackendCreateDescriptor", __FILE__, __LINE__);
    return Status(s.code(),
                  str_cat(s.message(), " (descriptor type ", static_cast<int>(type), ")"));
  }
  BackendDescriptor d;
  d.desc_ = UniqueHandle<cudnnBackendDescriptor_t, Destroy>(desc);
  return d;
}

Status BackendDescriptor::set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                              int64_t count, const void* values) {
  return attribute_status(cudnnBackendSetAttribute(get(), name, type, count, values),
                          "cudnnBackendSetAttribute", name);
}

Status BackendDescriptor::set_int64(cudnnBackendAttributeName_t name,
                                    std::span<const int64_t> values) {
  return set(name, CUDNN_TYPE_INT64, static_cast<int64_t>(values.size()), values.data());
}

Status BackendDescriptor::set_int64(cudnnBackendAttributeName_t name, int64_t value) {
  return set(name, CUDNN_TYPE_INT64, 1, &value);
}

Status BackendDescriptor::set_data_type(cudnnBackendAttributeName_t name, cudnnDataType_t value) {
  return set(name, CUDNN_TYPE_DATA_TYPE, 1, &value);
}

Status BackendDescriptor::set_descriptor(cudnnBackendAttributeName_t name,
                                         const BackendDescriptor& value) {
  cudnnBackendDescriptor_t raw = value.get();
  return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
}

Status BackendDescriptor::set_descriptors(cudnnBackendAttributeName_t name,
                                          std::span<const cudnnBackendDescriptor_t> values) {
  return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, static_cast<int64_t>(values.size()),
             values.data());
}

Status BackendDescriptor::set_handle(cudnnBackendAttributeName_t name, cudnnHandle_t handle) {
  return set(name, CUDNN_TYPE_HANDLE, 1, &handle);
}

Status BackendDescriptor::finalize() {
  CUDNN_TRY(cudnnBackendFinalize(get()));
  return Status::OK();
}

Result<int64_t> BackendDescriptor::get_int64(cudnnBackendAttributeName_t name) const {
  int64_t value = 0;
  int64_t count = 0;
  PS_TRY(
      attribute_status(cudnnBackendGetAttribute(get(), name, CUDNN_TYPE_INT64, 1, &count, &value),
                       "cudnnBackendGetAttribute", name));
  return value;
}

}  // namespace ps::cuda
