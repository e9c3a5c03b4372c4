#include "models/cpu/token_range.h"

namespace ps::models::cpu {

int64_t token_range(const pipeswitch::psm::Manifest& manifest, uint32_t index) {
  for (const pipeswitch::psm::Layer& layer : manifest.layers()) {
    if (layer.op() != "Gather" || layer.inputs_size() < 2 || layer.inputs(1) != index) continue;
    int64_t axis = 0;
    for (const pipeswitch::psm::Attribute& a : layer.attributes()) {
      if (a.name() == "axis") axis = a.i();
    }
    if (axis != 0) continue;
    const pipeswitch::psm::Tensor& data = manifest.tensors(static_cast<int>(layer.inputs(0)));
    if (data.shape_size() > 0) return data.shape(0);
  }
  return 0;
}

}  // namespace ps::models::cpu
