// Our own kernels' builder table (filled by the kernel work).
#include "models/gpu/op.h"

namespace ps::models::gpu {

std::span<const OpEntry> kernel_op_table() { return {}; }

}  // namespace ps::models::gpu
