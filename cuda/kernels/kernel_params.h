// Parameter blocks of our kernels, shared by the .cu files (nvcc) and the launchers in
// models/gpu (g++). Plain trivially copyable structs passed BY VALUE as one kernel parameter
// (Kernel::launch checks the size against the kernel's parameter list), so a plan fills them
// once at build time and enqueue() only adds device pointers.
//
// Every index is 64-bit: counts and strides are int64_t, so tensors past 2^31 elements work;
// kernels switch to 32-bit index arithmetic only when the launcher says every offset fits
// (`small_index`), which is a speed choice, never a correctness one.
#pragma once

#include <cstdint>

namespace ps::kernels {

// Largest rank the kernels iterate over after adjacent dimensions are merged (models/gpu's
// index planning refuses more).
constexpr int kMaxRank = 8;

// A strided element copy: for every index tuple i over dims, dst[out_base + sum i_d *
// out_strides[d]] = src[in_base + sum i_d * in_strides[d]]. Units are elements of the
// kernel's element size (1, 2, 4, 8 or 16 bytes). Transpose, Slice, Expand, Concat, Split.
struct StridedCopyParams {
  int32_t rank = 0;
  int32_t small_index = 0;  // 1: every offset and the count fit in int32
  int64_t count = 0;        // product of dims
  int64_t in_base = 0;
  int64_t out_base = 0;
  int64_t dims[kMaxRank] = {};
  int64_t in_strides[kMaxRank] = {};
  int64_t out_strides[kMaxRank] = {};
};

// A tiled 2-D transpose inside a batch: the output is contiguous over dims (row-major);
// `col_dim` is the output's last dimension (in-stride != 1) and `row_dim` the dimension whose
// in-stride is 1. Each block moves a 32x32 tile through shared memory so both the reads and
// the writes are coalesced. The other dimensions are batch dimensions.
struct TransposeParams {
  int32_t rank = 0;
  int32_t row_dim = 0;
  int64_t count = 0;
  int64_t batch = 0;  // product of the dims other than row_dim and col_dim
  int64_t tiles_rows = 0;
  int64_t tiles_cols = 0;
  int64_t dims[kMaxRank] = {};
  int64_t in_strides[kMaxRank] = {};
  int64_t out_strides[kMaxRank] = {};
};

// How the operands of an element-wise op are laid out relative to the (contiguous) output.
enum BroadcastMode : int32_t {
  kBroadcastGeneral = 0,  // per-operand strides over dims
  kBroadcastSame = 1,     // every operand contiguous with the output's shape
  kBroadcastScalarA = 2,  // operand 0 is one element, operand 1 same as the output
  kBroadcastScalarB = 3,  // operand 1 is one element, operand 0 same as the output
  kBroadcastRowA = 4,     // operand 0 repeats every `inner` elements, operand 1 same
  kBroadcastRowB = 5,     // operand 1 repeats every `inner` elements (a bias over the last dims)
};

// Up to three operands broadcast to a contiguous output of `count` elements.
struct BroadcastParams {
  int32_t mode = kBroadcastGeneral;
  int32_t rank = 0;
  int32_t small_index = 0;
  int32_t vectorize = 0;  // set at enqueue: every pointer aligned for 4-element accesses
  int64_t count = 0;
  int64_t inner = 1;  // the row length of kBroadcastRowA / kBroadcastRowB
  int64_t dims[kMaxRank] = {};
  int64_t strides[3][kMaxRank] = {};
};

// Element-wise unary op codes (one kernel per dtype switches on it outside its loop).
enum UnaryOp : int32_t {
  kUnaryRelu = 0,
  kUnaryGelu,
  kUnaryErf,
  kUnarySqrt,
  kUnaryTanh,
  kUnaryExp,
  kUnaryLog,
  kUnaryNeg,
  kUnaryAbs,
  kUnarySigmoid,
  kUnaryReciprocal,
  kUnaryFloor,
  kUnaryCeil,
  kUnarySin,
  kUnaryCos,
  kUnaryLeakyRelu,  // alpha
  kUnaryClip,       // lo = alpha, hi = beta (float); integer bounds in ilo/ihi
  kUnaryScale,      // y = x * alpha (Mean's division)
  kUnaryGeluTanh,
};

struct UnaryParams {
  int32_t op = kUnaryRelu;
  int32_t vectorize = 0;
  int64_t count = 0;
  float alpha = 0;
  float beta = 0;
  int64_t ilo = 0;
  int64_t ihi = 0;
};

// Binary op codes.
enum BinaryOp : int32_t {
  kBinaryAdd = 0,
  kBinarySub,
  kBinaryMul,
  kBinaryDiv,
  kBinaryPow,
  kBinaryMax,
  kBinaryMin,
  kBinaryEqual,
  kBinaryLess,
  kBinaryLessOrEqual,
  kBinaryGreater,
  kBinaryGreaterOrEqual,
  kBinaryAnd,
  kBinaryOr,
  kBinaryXor,
};

// Gather along one axis: out[o, j, i] = data[o, idx[j], i] with o < outer, j < num_indices,
// i < inner (units of the kernel's element size). Negative indices count from the end; an
// index outside [-axis_dim, axis_dim) writes zeros (never reads out of bounds).
struct GatherParams {
  int64_t outer = 0;
  int64_t axis_dim = 0;
  int64_t num_indices = 0;
  int64_t inner = 0;
  int64_t count = 0;  // outer * num_indices * inner
};

// Softmax / LogSoftmax along one axis of [outer, n, inner].
// AddSoftmax (inner 1) adds a mask M broadcast over X as it reads a row: row r's mask row
// starts at the sum over i < mask_terms of ((r / mask_div[i]) % mask_dim[i]) * mask_stride[i],
// its element c at c * mask_col (0: one mask value for the whole row). The kernels take the
// mask as an argument, null for Softmax.
inline constexpr int kSoftmaxMaskTerms = 4;
struct SoftmaxParams {
  int64_t outer = 0;
  int64_t n = 0;
  int64_t inner = 0;
  int32_t log = 0;
  int32_t mask_col = 0;
  int32_t mask_terms = 0;
  int32_t pad = 0;
  int64_t mask_div[kSoftmaxMaskTerms] = {};
  int64_t mask_dim[kSoftmaxMaskTerms] = {};
  int64_t mask_stride[kSoftmaxMaskTerms] = {};
};

// LayerNormalization over rows of `inner` elements; scale/bias repeat every scale_len/bias_len
// elements of a row (their shapes are suffixes of the normalised shape). bias_len 0: no bias.
struct LayerNormParams {
  int64_t rows = 0;
  int64_t inner = 0;
  int64_t scale_len = 0;
  int64_t bias_len = 0;
  float epsilon = 1e-5f;
  int32_t pad = 0;
};

// Reduction codes.
enum ReduceOp : int32_t { kReduceSum = 0, kReduceMean, kReduceProd, kReduceMax, kReduceMin };

// A reduction: the input's (merged) dims split into kept dims (the output, contiguous) and
// reduced dims; in_strides of each in the input. `group` is the number of reduced elements.
struct ReduceParams {
  int32_t op = kReduceSum;
  int32_t kept_rank = 0;
  int32_t reduced_rank = 0;
  // Column-tile mode: the outputs of one block (8, 16 or 32); a warp's load reads
  // 32 / tile_columns rows of tile_columns consecutive elements.
  int32_t tile_columns = 32;
  int64_t out_count = 0;
  int64_t group = 0;
  int64_t kept_dims[kMaxRank] = {};
  int64_t kept_strides[kMaxRank] = {};
  int64_t reduced_dims[kMaxRank] = {};
  int64_t reduced_strides[kMaxRank] = {};
};

// DType codes for Cast and fills: the values of ps::DType (common/dtype.h), repeated so the
// kernels need no project headers.
enum KernelDType : int32_t {
  kKFloat32 = 1,
  kKFloat16 = 2,
  kKBFloat16 = 3,
  kKFloat64 = 4,
  kKInt64 = 5,
  kKInt32 = 6,
  kKInt8 = 7,
  kKUInt8 = 8,
  kKBool = 9,
};

// Up to 8 small values written by a fill kernel (Shape, Size) or a pattern (ConstantOfShape,
// Range): value_bits holds one element's bytes (ConstantOfShape) or the int64/double start
// and delta (Range).
struct FillParams {
  int64_t count = 0;
  int32_t dtype = kKFloat32;
  int32_t pad = 0;
  uint64_t value_bits = 0;
  double start = 0;
  double delta = 0;
  int64_t istart = 0;
  int64_t idelta = 0;
  int64_t values[kMaxRank] = {};  // Shape: the dims themselves
};

// The pointer arrays of cuBLASLt's pointer-array batches over (batch entry b, head h) that
// the attention ops (models/gpu/head_gemm.h) read heads in place with: array a's entry
// b * heads + h is base[a] + b * batch_stride[a] + h * head_stride[a] (bytes), written to
// out[a * array_stride + b * heads + h].
constexpr int kMaxPointerArrays = 9;
struct BatchPointerParams {
  int32_t arrays = 0;
  int32_t pad = 0;
  int64_t batch = 0;
  int64_t heads = 0;
  int64_t array_stride = 0;  // entries from one array to the next (at least batch * heads)
  uint64_t base[kMaxPointerArrays] = {};
  int64_t batch_stride[kMaxPointerArrays] = {};
  int64_t head_stride[kMaxPointerArrays] = {};
};

// FusedAttention's block: kFusedAttentionWarps warps of 16 query rows (an mma's rows) each, so
// a launch takes ceil(seq / kFusedAttentionBlockRows) * heads * batch blocks of
// 32 * kFusedAttentionWarps threads. The kernel, its op and the emulation test read these.
inline constexpr int kFusedAttentionWarps = 4;
inline constexpr int kFusedAttentionBlockRows = 16 * kFusedAttentionWarps;

// FusedAttention (cuda/kernels/attention.cu): X [batch, seq, columns] holds the heads' Q, K and
// V column ranges (head h at start + h * head_size); Y [batch, seq, heads, head_size] =
// softmax(alpha Q K^T) V per (batch, head).
struct FusedAttentionParams {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t columns = 0;
  int64_t heads = 0;
  int64_t head_size = 0;
  int64_t q_start = 0;
  int64_t k_start = 0;
  int64_t v_start = 0;
  float alpha = 1.0f;
  // 1: X's rows, the three starts and head_size are multiples of 4 floats and X and Y are
  // 16-byte aligned, so the kernel reads X and writes Y as float4.
  int32_t vec4 = 0;
};

}  // namespace ps::kernels
