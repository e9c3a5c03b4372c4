// The cuDNN and cuBLAS operators' builder table (filled by the dnn work).
#include "models/gpu/op.h"

namespace ps::models::gpu {

std::span<const OpEntry> dnn_op_table() { return {}; }

}  // namespace ps::models::gpu
