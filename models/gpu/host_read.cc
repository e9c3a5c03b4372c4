#include "models/gpu/host_read.h"

#include <algorithm>

#include "onnx_loader/psm_dtype.h"

namespace ps::models::gpu {
namespace {

using pipeswitch::psm::Manifest;
using TensorProto = pipeswitch::psm::Tensor;

// Gather's axis (default 0), normalised against the data's rank; -1 when out of range.
int64_t gather_axis(const pipeswitch::psm::Layer& layer, int64_t rank) {
  int64_t axis = 0;
  for (const auto& a : layer.attributes()) {
    if (a.name() == "axis" && a.value_case() == pipeswitch::psm::Attribute::kI) axis = a.i();
  }
  if (axis < 0) axis += rank;
  return axis >= 0 && axis < rank ? axis : -1;
}

uint64_t tensor_bytes(const TensorProto& t) {
  auto dtype = onnx_loader::dtype_from_psm(t.dtype());
  if (!dtype.ok()) return 0;
  uint64_t n = dtype_size(*dtype);
  for (int64_t d : t.shape()) {
    if (d < 0) return 0;
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

}  // namespace

std::vector<WeightRange> host_readable_weights(const Manifest& manifest, uint64_t min_bytes) {
  const auto tensors = static_cast<uint32_t>(manifest.tensors_size());
  // 0: not used yet, 1: used only as a Gather's axis-0 data, 2: used otherwise.
  std::vector<uint8_t> use(tensors, 0);
  for (const auto& layer : manifest.layers()) {
    for (int i = 0; i < layer.inputs_size(); ++i) {
      const uint32_t t = layer.inputs(i);
      if (t >= tensors || manifest.tensors(static_cast<int>(t)).kind() != TensorProto::WEIGHT) {
        continue;
      }
      const bool table = layer.op() == "Gather" && i == 0 &&
                         gather_axis(layer, manifest.tensors(static_cast<int>(t)).shape_size()) == 0;
      use[t] = table && use[t] != 2 ? 1 : 2;
    }
  }
  std::vector<WeightRange> out;
  for (uint32_t t = 0; t < tensors; ++t) {
    if (use[t] != 1) continue;
    const TensorProto& tensor = manifest.tensors(static_cast<int>(t));
    const uint64_t bytes = tensor_bytes(tensor);
    if (bytes < min_bytes || bytes == 0 || tensor.weight_offset() > manifest.weights_bytes() ||
        bytes > manifest.weights_bytes() - tensor.weight_offset()) {
      continue;
    }
    out.push_back(WeightRange{tensor.weight_offset(), bytes, t});
  }
  std::sort(out.begin(), out.end(),
            [](const WeightRange& a, const WeightRange& b) { return a.offset < b.offset; });
  // Two tensors sharing bytes (an aliased initializer) would make the skipped ranges overlap:
  // keep the first of any overlapping pair.
  std::vector<WeightRange> disjoint;
  for (const WeightRange& r : out) {
    if (!disjoint.empty() && r.offset < disjoint.back().offset + disjoint.back().bytes) continue;
    disjoint.push_back(r);
  }
  return disjoint;
}

uint64_t bytes_inside(uint64_t offset, uint64_t bytes, std::span<const WeightRange> skip) {
  uint64_t outside = 0;
  (void)for_each_range_outside(offset, bytes, skip, [&](ByteRange r) {
    outside += r.bytes;
    return Status::OK();
  });
  return bytes - outside;
}

}  // namespace ps::models::gpu
