// Batched products over attention's (batch entry b, head h) pairs whose operands are head
// matrices wherever they lie: matrix (b, h) of an operand at its tensor's address + (offset +
// b * batch_stride + h * head_stride) elements, rows `ld` elements apart. The query, key and
// value heads are read in place in the fused projection's product [B, S, 3 * H * D] (ld 3HD,
// head h at column h * D) and the context written in place in [B, S, H, D], where a strided
// batch (one stride) could not address them and copies did (HeadSlice, Transpose).
//
// Each product is ONE cuBLASLt pointer-array batch (lt_matmul.h, its algorithm timed at plan
// time as every product's); an op's products get their pointer arrays from ONE
// ps_batch_pointers launch into the op's workspace at enqueue (the addresses are only known
// then; the arrays are B * H * 3 pointers a product). Measured on an H100 before building it
// (docs/measurements/2026-12-07-h100-s23/): BERT-base's six attention products at batch 8 take
// 120.4 us a layer as pointer-array batches against 119.5 us as strided batches of copies.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "cuda/module.h"
#include "cuda/stream.h"
#include "models/gpu/lt_matmul.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

struct HeadMatrix {
  int64_t offset = 0;        // elements from the tensor's address to matrix (0, 0)
  int64_t batch_stride = 0;  // elements between (b, h) and (b + 1, h)
  int64_t head_stride = 0;   // elements between (b, h) and (b, h + 1)
  int64_t ld = 0;            // elements between rows
};

// Row-major out(b, h) [m, n] = alpha op(X(b, h)) op(Y(b, h)) (+ out(b, h) when accumulating):
// X stored [m, k] (or [k, m] when trans_x), Y [k, n] (or [n, k] when trans_y).
struct HeadProduct {
  int64_t m = 0, n = 0, k = 0;
  bool trans_x = false, trans_y = false;
  HeadMatrix x, y, out;
  float alpha = 1.0f;
  bool accumulate = false;
};

// The products of one op over `batch` x `heads` pairs, run in the order added.
class HeadGemms {
 public:
  static constexpr size_t kMaxProducts = 3;  // 3 pointer arrays each (kMaxPointerArrays)

  // Plans product `p` (its cuBLASLt algorithm chosen now). Errors: more than kMaxProducts,
  // dimensions past int32, LtMatmul::init's.
  Status add(const OpEnv& env, int64_t batch, int64_t heads, const HeadProduct& p,
             std::string_view what);

  // The pointer arrays then cuBLASLt's workspace.
  size_t workspace_bytes() const;

  // Queues the arrays' fill and every product. tensors[i]: the addresses of product i's X, Y
  // and out tensors; `workspace` at least workspace_bytes().
  Status enqueue(const cuda::Stream& stream, CUdeviceptr workspace,
                 std::span<const std::array<CUdeviceptr, 3>> tensors) const;

  // "m=.. n=.. k=.. batch=.. (tf32), pointer arrays, ..." for each product.
  std::string describe() const;

 private:
  struct Planned {
    HeadProduct product;
    LtMatmul lt;
  };
  int64_t batch_ = 0, heads_ = 0;
  std::vector<Planned> products_;
  cuda::Kernel pointers_;
  size_t lt_bytes_ = 0;
};

}  // namespace ps::models::gpu
