// Element-wise kernels: unary math and activations, binary arithmetic / comparisons / logic
// with numpy broadcasting, Where, the predicates (IsNaN, IsInf, Not) and Cast.
//
// One kernel per element type; the op is a parameter that the kernel switches on ONCE, outside
// its loop, into a loop specialised for that op (a template), so the per-element code is
// branch-free. Float math is float32 with the accurate library functions (erff, expf, tanhf:
// a few ulp); integer arithmetic wraps as numpy does; bool is one byte, read as "non-zero".
// Launchers: models/gpu/elementwise_op.cc.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/kernels/kernel_params.h"

namespace elementwise {

using ps::kernels::BroadcastParams;
using ps::kernels::UnaryParams;

__device__ inline int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t thread_count() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

template <typename T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

// ---- operand addressing ---------------------------------------------------------------------

// How one operand of a non-general broadcast is read: the element i of the output.
enum Access { kContiguous, kScalar, kRow };

template <typename T>
__device__ inline T load1(const T* p, int access, int64_t i, int64_t inner) {
  if (access == kScalar) return p[0];
  if (access == kRow) return p[i % inner];
  return p[i];
}

// Four elements starting at i (i % 4 == 0; for kRow, inner % 4 == 0; pointers 4-element
// aligned: the launcher checks, BroadcastParams::vectorize).
template <typename T>
__device__ inline Vec4<T> load4(const T* p, int access, int64_t i, int64_t inner) {
  if (access == kScalar) {
    const T s = p[0];
    return Vec4<T>{{s, s, s, s}};
  }
  const int64_t at = access == kRow ? i % inner : i;
  return *reinterpret_cast<const Vec4<T>*>(p + at);
}

__device__ inline void operand_access(int32_t mode, int* a, int* b) {
  *a = mode == ps::kernels::kBroadcastScalarA ? kScalar
       : mode == ps::kernels::kBroadcastRowA  ? kRow
                                              : kContiguous;
  *b = mode == ps::kernels::kBroadcastScalarB ? kScalar
       : mode == ps::kernels::kBroadcastRowB  ? kRow
                                              : kContiguous;
}

// Offsets of the output element `i` in `num` operands under a general broadcast.
template <typename I, int kNum>
__device__ inline void general_offsets(const BroadcastParams& p, I i, I (&off)[kNum]) {
#pragma unroll
  for (int k = 0; k < kNum; ++k) off[k] = 0;
  I rem = i;
#pragma unroll
  for (int d = ps::kernels::kMaxRank - 1; d >= 0; --d) {
    if (d < p.rank) {
      const I dim = static_cast<I>(p.dims[d]);
      const I idx = rem % dim;
      rem /= dim;
#pragma unroll
      for (int k = 0; k < kNum; ++k) off[k] += idx * static_cast<I>(p.strides[k][d]);
    }
  }
}

// ---- binary ---------------------------------------------------------------------------------

// A general broadcast whose innermost (merged) dimension is at least a warp long (BERT's
// attention mask, [B, H, S, S] + [B, 1, 1, S]): a warp per piece of at most kRowPiece elements
// of an output row, the piece's operand offsets computed once and its elements read at each
// operand's innermost stride. Element by element, every element paid the index divisions of
// every dimension: the mask Add took 41 us where its 48 MB of traffic take ~16 (BERT-base
// training, H100). Pieces, not whole rows: HF's training export adds a [B, 1, S, S] mask, whose
// merged rows are S * S long, 96 of them: a warp a row took 0.77 ms.
constexpr int64_t kRowWarpMin = 32;
constexpr int64_t kRowPiece = 1024;

template <typename TA, typename TB, typename TO, typename F>
__device__ void binary_general_rows(const TA* a, const TB* b, TO* y, const BroadcastParams& p,
                                    F f) {
  const int64_t inner = p.dims[p.rank - 1];
  const int64_t sa = p.strides[0][p.rank - 1], sb = p.strides[1][p.rank - 1];
  const int64_t pieces = (inner + kRowPiece - 1) / kRowPiece;
  const int64_t units = p.count / inner * pieces;
  const int lane = threadIdx.x % 32;
  for (int64_t u = thread_index() / 32; u < units; u += thread_count() / 32) {
    const int64_t r = u / pieces, begin = u % pieces * kRowPiece;
    const int64_t end = begin + kRowPiece < inner ? begin + kRowPiece : inner;
    int64_t off[2];
    general_offsets<int64_t, 2>(p, r * inner, off);
    TO* out = y + r * inner;
    for (int64_t c = begin + lane; c < end; c += 32) {
      out[c] = f(a[off[0] + c * sa], b[off[1] + c * sb]);
    }
  }
}

template <typename TA, typename TB, typename TO, typename F>
__device__ void binary_general(const TA* a, const TB* b, TO* y, const BroadcastParams& p, F f) {
  if (p.rank > 0 && p.dims[p.rank - 1] >= kRowWarpMin && blockDim.x % 32 == 0) {
    binary_general_rows(a, b, y, p, f);
  } else if (p.small_index) {
    for (int64_t i = thread_index(); i < p.count; i += thread_count()) {
      uint32_t off[2];
      general_offsets<uint32_t, 2>(p, static_cast<uint32_t>(i), off);
      y[i] = f(a[off[0]], b[off[1]]);
    }
  } else {
    for (int64_t i = thread_index(); i < p.count; i += thread_count()) {
      int64_t off[2];
      general_offsets<int64_t, 2>(p, i, off);
      y[i] = f(a[off[0]], b[off[1]]);
    }
  }
}

template <typename TA, typename TB, typename TO, typename F>
__device__ void binary_apply(const TA* a, const TB* b, TO* y, const BroadcastParams& p, F f) {
  if (p.mode == ps::kernels::kBroadcastGeneral) {
    binary_general(a, b, y, p, f);
    return;
  }
  int am, bm;
  operand_access(p.mode, &am, &bm);
  int64_t start = 0;
  if (p.vectorize) {
    const int64_t n4 = p.count / 4;
    for (int64_t v = thread_index(); v < n4; v += thread_count()) {
      const int64_t i = v * 4;
      const Vec4<TA> va = load4(a, am, i, p.inner);
      const Vec4<TB> vb = load4(b, bm, i, p.inner);
      Vec4<TO> vo;
#pragma unroll
      for (int k = 0; k < 4; ++k) vo.v[k] = f(va.v[k], vb.v[k]);
      *reinterpret_cast<Vec4<TO>*>(y + i) = vo;
    }
    start = n4 * 4;
  }
  for (int64_t i = start + thread_index(); i < p.count; i += thread_count()) {
    y[i] = f(load1(a, am, i, p.inner), load1(b, bm, i, p.inner));
  }
}

template <typename T>
struct IsFloat {
  static constexpr bool value = false;
};
template <>
struct IsFloat<float> {
  static constexpr bool value = true;
};
template <>
struct IsFloat<double> {
  static constexpr bool value = true;
};

template <typename T>
struct Unsigned {
  using type = T;
};
template <>
struct Unsigned<int64_t> {
  using type = unsigned long long;
};
template <>
struct Unsigned<int32_t> {
  using type = uint32_t;
};
template <>
struct Unsigned<int8_t> {
  using type = uint32_t;
};
template <>
struct Unsigned<uint8_t> {
  using type = uint32_t;
};

template <typename T>
__device__ inline T wrap_add(T a, T b) {
  if constexpr (IsFloat<T>::value) {
    return a + b;
  } else {
    using U = typename Unsigned<T>::type;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  }
}
template <typename T>
__device__ inline T wrap_sub(T a, T b) {
  if constexpr (IsFloat<T>::value) {
    return a - b;
  } else {
    using U = typename Unsigned<T>::type;
    return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
  }
}
template <typename T>
__device__ inline T wrap_mul(T a, T b) {
  if constexpr (IsFloat<T>::value) {
    return a * b;
  } else {
    using U = typename Unsigned<T>::type;
    return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
  }
}
// Integer division truncates toward zero; by zero gives 0 (the CPU reference refuses it at
// run time; a kernel cannot fail, so the result is defined instead of trapping).
template <typename T>
__device__ inline T checked_div(T a, T b) {
  if constexpr (IsFloat<T>::value) {
    return a / b;
  } else {
    if (b == T{0}) return T{0};
    if (b == T{-1}) return wrap_sub(T{0}, a);
    return static_cast<T>(a / b);
  }
}

template <typename T>
__device__ inline T int_limit_low() {
  if constexpr (sizeof(T) == 8) return static_cast<T>(-9223372036854775807LL - 1);
  if constexpr (sizeof(T) == 4) return static_cast<T>(-2147483647 - 1);
  return static_cast<T>(-128);
}
template <typename T>
__device__ inline T int_limit_high() {
  if constexpr (sizeof(T) == 8) return static_cast<T>(9223372036854775807LL);
  if constexpr (sizeof(T) == 4) return static_cast<T>(2147483647);
  return static_cast<T>(127);
}

// Pow in the base's type: float bases in float (x^2 exactly as x*x); integer base and
// non-negative integer exponent by exact wrapping repeated squaring; otherwise via double,
// truncated and saturated (NaN gives 0), as the CPU reference does.
template <typename T, typename E>
__device__ inline T power(T base, E exponent) {
  if constexpr (IsFloat<T>::value) {
    const float e = static_cast<float>(exponent);
    if (e == 2.0f) return base * base;
    return static_cast<T>(powf(static_cast<float>(base), e));
  } else {
    if constexpr (!IsFloat<E>::value) {
      if (exponent >= 0) {
        T result = 1;
        T b = base;
        for (unsigned long long e = static_cast<unsigned long long>(exponent); e != 0; e >>= 1) {
          if (e & 1) result = wrap_mul(result, b);
          b = wrap_mul(b, b);
        }
        return result;
      }
    }
    const double r = pow(static_cast<double>(base), static_cast<double>(exponent));
    if (isnan(r)) return T{0};
    if (r <= static_cast<double>(int_limit_low<T>())) return int_limit_low<T>();
    if (r >= static_cast<double>(int_limit_high<T>())) return int_limit_high<T>();
    return static_cast<T>(r);
  }
}

template <typename T>
__device__ inline T nan_max(T a, T b) {
  if constexpr (IsFloat<T>::value) {
    if (isnan(a) || isnan(b)) return a + b;  // NaN
  }
  return a < b ? b : a;
}
template <typename T>
__device__ inline T nan_min(T a, T b) {
  if constexpr (IsFloat<T>::value) {
    if (isnan(a) || isnan(b)) return a + b;
  }
  return b < a ? b : a;
}

// Runs binary op `op` over T operands (arithmetic ops write T, comparisons write bytes).
template <typename T>
__device__ void binary_dispatch(int32_t op, const T* a, const T* b, void* y,
                                const BroadcastParams& p) {
  T* yt = static_cast<T*>(y);
  uint8_t* yb = static_cast<uint8_t*>(y);
  switch (op) {
    case ps::kernels::kBinaryAdd:
      binary_apply(a, b, yt, p, [](T u, T v) { return wrap_add(u, v); });
      break;
    case ps::kernels::kBinarySub:
      binary_apply(a, b, yt, p, [](T u, T v) { return wrap_sub(u, v); });
      break;
    case ps::kernels::kBinaryMul:
      binary_apply(a, b, yt, p, [](T u, T v) { return wrap_mul(u, v); });
      break;
    case ps::kernels::kBinaryDiv:
      binary_apply(a, b, yt, p, [](T u, T v) { return checked_div(u, v); });
      break;
    case ps::kernels::kBinaryPow:
      binary_apply(a, b, yt, p, [](T u, T v) { return power<T, T>(u, v); });
      break;
    case ps::kernels::kBinaryMax:
      binary_apply(a, b, yt, p, [](T u, T v) { return nan_max(u, v); });
      break;
    case ps::kernels::kBinaryMin:
      binary_apply(a, b, yt, p, [](T u, T v) { return nan_min(u, v); });
      break;
    case ps::kernels::kBinaryEqual:
      binary_apply(a, b, yb, p, [](T u, T v) -> uint8_t { return u == v; });
      break;
    case ps::kernels::kBinaryLess:
      binary_apply(a, b, yb, p, [](T u, T v) -> uint8_t { return u < v; });
      break;
    case ps::kernels::kBinaryLessOrEqual:
      binary_apply(a, b, yb, p, [](T u, T v) -> uint8_t { return u <= v; });
      break;
    case ps::kernels::kBinaryGreater:
      binary_apply(a, b, yb, p, [](T u, T v) -> uint8_t { return u > v; });
      break;
    case ps::kernels::kBinaryGreaterOrEqual:
      binary_apply(a, b, yb, p, [](T u, T v) -> uint8_t { return u >= v; });
      break;
    default:
      break;
  }
}

// ---- unary ----------------------------------------------------------------------------------

template <typename T, typename F>
__device__ void unary_apply(const T* x, T* y, const UnaryParams& p, F f) {
  int64_t start = 0;
  if (p.vectorize) {
    const int64_t n4 = p.count / 4;
    for (int64_t v = thread_index(); v < n4; v += thread_count()) {
      Vec4<T> in = *reinterpret_cast<const Vec4<T>*>(x + v * 4);
#pragma unroll
      for (int k = 0; k < 4; ++k) in.v[k] = f(in.v[k]);
      *reinterpret_cast<Vec4<T>*>(y + v * 4) = in;
    }
    start = n4 * 4;
  }
  for (int64_t i = start + thread_index(); i < p.count; i += thread_count()) y[i] = f(x[i]);
}

__device__ inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ inline float gelu_tanh(float x) {
  const float k = 0.79788456080286536f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

template <typename T>
__device__ inline T wrap_neg(T x) {
  return wrap_sub(T{0}, x);
}

// Integer unary ops: Neg, Abs (both wrap on the most negative value), Relu, Clip.
template <typename T>
__device__ void integer_unary(const T* x, T* y, const UnaryParams& p) {
  switch (p.op) {
    case ps::kernels::kUnaryNeg:
      unary_apply(x, y, p, [](T v) { return wrap_neg(v); });
      break;
    case ps::kernels::kUnaryAbs:
      unary_apply(x, y, p, [](T v) { return v < T{0} ? wrap_neg(v) : v; });
      break;
    case ps::kernels::kUnaryRelu:
      unary_apply(x, y, p, [](T v) { return v < T{0} ? T{0} : v; });
      break;
    case ps::kernels::kUnaryClip: {
      const T lo = static_cast<T>(p.ilo);
      const T hi = static_cast<T>(p.ihi);
      unary_apply(x, y, p, [lo, hi](T v) {
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        return v;
      });
      break;
    }
    default:
      break;
  }
}

// ---- Cast -----------------------------------------------------------------------------------

struct Half {
  uint16_t bits;
};
struct BHalf {
  uint16_t bits;
};

template <typename S>
__device__ inline float to_float(S v) {
  if constexpr (sizeof(S) == 2 && __is_same(S, Half)) {
    return __half2float(__ushort_as_half(v.bits));
  } else if constexpr (__is_same(S, BHalf)) {
    return __bfloat162float(__ushort_as_bfloat16(v.bits));
  } else {
    return static_cast<float>(v);
  }
}

// Double to float rounding to odd when inexact, so a second rounding (to float16/bfloat16)
// gives the correctly rounded double (as the CPU reference does).
__device__ inline float float_round_odd(double d) {
  float f = static_cast<float>(d);
  if (!isfinite(d) || static_cast<double>(f) == d) return f;
  if (fabs(static_cast<double>(f)) > fabs(d)) f = nextafterf(f, 0.0f);
  return __uint_as_float(__float_as_uint(f) | 1u);
}

template <typename D, typename S>
__device__ inline D convert(S v) {
  if constexpr (__is_same(S, Half) || __is_same(S, BHalf)) {
    return convert<D>(to_float(v));
  } else if constexpr (__is_same(D, Half)) {
    float f;
    if constexpr (__is_same(S, double)) {
      f = float_round_odd(v);
    } else {
      f = static_cast<float>(v);
    }
    return Half{__half_as_ushort(__float2half_rn(f))};
  } else if constexpr (__is_same(D, BHalf)) {
    float f;
    if constexpr (__is_same(S, double)) {
      f = float_round_odd(v);
    } else {
      f = static_cast<float>(v);
    }
    return BHalf{__bfloat16_as_ushort(__float2bfloat16_rn(f))};
  } else if constexpr (__is_same(D, bool)) {
    return v != S{0};
  } else if constexpr (!IsFloat<D>::value && IsFloat<S>::value) {
    // Saturating; NaN becomes 0 (ONNX leaves out-of-range undefined; the CPU reference
    // saturates the same way).
    if (isnan(v)) return D{0};
    D lo, hi;
    if constexpr (__is_same(D, uint8_t)) {
      lo = 0;
      hi = 255;
    } else {
      lo = int_limit_low<D>();
      hi = int_limit_high<D>();
    }
    if (v <= static_cast<S>(lo)) return lo;
    if (v >= static_cast<S>(hi)) return hi;
    return static_cast<D>(v);
  } else {
    return static_cast<D>(v);
  }
}

template <typename D, typename S>
__device__ void cast_loop(const S* x, void* y, int64_t n) {
  D* out = static_cast<D*>(y);
  for (int64_t i = thread_index(); i < n; i += thread_count()) out[i] = convert<D>(x[i]);
}

template <typename S>
__device__ void cast_to(const S* x, void* y, int64_t n, int32_t dst) {
  switch (dst) {
    case ps::kernels::kKFloat32: cast_loop<float>(x, y, n); break;
    case ps::kernels::kKFloat16: cast_loop<Half>(x, y, n); break;
    case ps::kernels::kKBFloat16: cast_loop<BHalf>(x, y, n); break;
    case ps::kernels::kKFloat64: cast_loop<double>(x, y, n); break;
    case ps::kernels::kKInt64: cast_loop<int64_t>(x, y, n); break;
    case ps::kernels::kKInt32: cast_loop<int32_t>(x, y, n); break;
    case ps::kernels::kKInt8: cast_loop<int8_t>(x, y, n); break;
    case ps::kernels::kKUInt8: cast_loop<uint8_t>(x, y, n); break;
    case ps::kernels::kKBool: cast_loop<bool>(x, y, n); break;
    default: break;
  }
}

// A bool element (any non-zero byte is true) as a value Cast can convert.
struct BoolByte {
  uint8_t v;
};

}  // namespace elementwise

// ---- entry points ---------------------------------------------------------------------------

// y = op(x) for float32 (every UnaryOp).
extern "C" __global__ void ps_unary_f32(const float* x, float* y, ps::kernels::UnaryParams p) {
  using namespace elementwise;
  switch (p.op) {
    case ps::kernels::kUnaryRelu: unary_apply(x, y, p, [](float v) { return v < 0.0f ? 0.0f : v; }); break;
    case ps::kernels::kUnaryGelu: unary_apply(x, y, p, [](float v) { return gelu_erf(v); }); break;
    case ps::kernels::kUnaryGeluTanh: unary_apply(x, y, p, [](float v) { return gelu_tanh(v); }); break;
    case ps::kernels::kUnaryErf: unary_apply(x, y, p, [](float v) { return erff(v); }); break;
    case ps::kernels::kUnarySqrt: unary_apply(x, y, p, [](float v) { return sqrtf(v); }); break;
    case ps::kernels::kUnaryTanh: unary_apply(x, y, p, [](float v) { return tanhf(v); }); break;
    case ps::kernels::kUnaryExp: unary_apply(x, y, p, [](float v) { return expf(v); }); break;
    case ps::kernels::kUnaryLog: unary_apply(x, y, p, [](float v) { return logf(v); }); break;
    case ps::kernels::kUnaryNeg: unary_apply(x, y, p, [](float v) { return -v; }); break;
    case ps::kernels::kUnaryAbs: unary_apply(x, y, p, [](float v) { return fabsf(v); }); break;
    case ps::kernels::kUnarySigmoid: unary_apply(x, y, p, [](float v) { return 1.0f / (1.0f + expf(-v)); }); break;
    case ps::kernels::kUnaryReciprocal: unary_apply(x, y, p, [](float v) { return 1.0f / v; }); break;
    case ps::kernels::kUnaryFloor: unary_apply(x, y, p, [](float v) { return floorf(v); }); break;
    case ps::kernels::kUnaryCeil: unary_apply(x, y, p, [](float v) { return ceilf(v); }); break;
    case ps::kernels::kUnarySin: unary_apply(x, y, p, [](float v) { return sinf(v); }); break;
    case ps::kernels::kUnaryCos: unary_apply(x, y, p, [](float v) { return cosf(v); }); break;
    case ps::kernels::kUnaryLeakyRelu: {
      const float alpha = p.alpha;
      unary_apply(x, y, p, [alpha](float v) { return v < 0.0f ? alpha * v : v; });
      break;
    }
    case ps::kernels::kUnaryClip: {
      const float lo = p.alpha, hi = p.beta;
      unary_apply(x, y, p, [lo, hi](float v) {
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        return v;
      });
      break;
    }
    case ps::kernels::kUnaryScale: {
      const float s = p.alpha;
      unary_apply(x, y, p, [s](float v) { return v * s; });
      break;
    }
    default: break;
  }
}

// y = op(x) for integers: Neg, Abs, Relu, Clip.
extern "C" __global__ void ps_unary_i64(const int64_t* x, int64_t* y, ps::kernels::UnaryParams p) {
  elementwise::integer_unary(x, y, p);
}
extern "C" __global__ void ps_unary_i32(const int32_t* x, int32_t* y, ps::kernels::UnaryParams p) {
  elementwise::integer_unary(x, y, p);
}
extern "C" __global__ void ps_unary_i8(const int8_t* x, int8_t* y, ps::kernels::UnaryParams p) {
  elementwise::integer_unary(x, y, p);
}

// y = a op b with broadcasting (BinaryOp: arithmetic writes the operand type, comparisons one
// byte per element).
extern "C" __global__ void ps_binary_f32(const float* a, const float* b, void* y, int32_t op,
                                         ps::kernels::BroadcastParams p) {
  elementwise::binary_dispatch(op, a, b, y, p);
}
extern "C" __global__ void ps_binary_i64(const int64_t* a, const int64_t* b, void* y, int32_t op,
                                         ps::kernels::BroadcastParams p) {
  elementwise::binary_dispatch(op, a, b, y, p);
}
extern "C" __global__ void ps_binary_i32(const int32_t* a, const int32_t* b, void* y, int32_t op,
                                         ps::kernels::BroadcastParams p) {
  elementwise::binary_dispatch(op, a, b, y, p);
}

// Logic on bools (And, Or, Xor, Equal): operands are bytes, non-zero is true.
extern "C" __global__ void ps_binary_bool(const uint8_t* a, const uint8_t* b, uint8_t* y,
                                          int32_t op, ps::kernels::BroadcastParams p) {
  using namespace elementwise;
  switch (op) {
    case ps::kernels::kBinaryAnd:
      binary_apply(a, b, y, p, [](uint8_t u, uint8_t v) -> uint8_t { return u != 0 && v != 0; });
      break;
    case ps::kernels::kBinaryOr:
      binary_apply(a, b, y, p, [](uint8_t u, uint8_t v) -> uint8_t { return u != 0 || v != 0; });
      break;
    case ps::kernels::kBinaryXor:
    default:
      binary_apply(a, b, y, p, [](uint8_t u, uint8_t v) -> uint8_t { return (u != 0) != (v != 0); });
      break;
    case ps::kernels::kBinaryEqual:
      binary_apply(a, b, y, p, [](uint8_t u, uint8_t v) -> uint8_t { return (u != 0) == (v != 0); });
      break;
  }
}

// Pow with a float32 base and an integer exponent.
extern "C" __global__ void ps_pow_f32_i64(const float* a, const int64_t* b, float* y,
                                          ps::kernels::BroadcastParams p) {
  elementwise::binary_apply(a, b, y, p, [](float u, int64_t v) {
    return elementwise::power<float, int64_t>(u, v);
  });
}
extern "C" __global__ void ps_pow_f32_i32(const float* a, const int32_t* b, float* y,
                                          ps::kernels::BroadcastParams p) {
  elementwise::binary_apply(a, b, y, p, [](float u, int32_t v) {
    return elementwise::power<float, int32_t>(u, v);
  });
}

// out = cond ? x : y, three-way broadcast (operand order in strides: cond, x, y), for any
// element of `unit` bytes.
#define PS_WHERE_KERNEL(NAME, U)                                                                  \
  extern "C" __global__ void NAME(const uint8_t* cond, const U* x, const U* y, U* out,           \
                                  ps::kernels::BroadcastParams p) {                              \
    using namespace elementwise;                                                                 \
    if (p.mode == ps::kernels::kBroadcastSame) {                                                 \
      for (int64_t i = thread_index(); i < p.count; i += thread_count())                         \
        out[i] = cond[i] != 0 ? x[i] : y[i];                                                     \
    } else if (p.small_index) {                                                                  \
      for (int64_t i = thread_index(); i < p.count; i += thread_count()) {                       \
        uint32_t off[3];                                                                         \
        general_offsets<uint32_t, 3>(p, static_cast<uint32_t>(i), off);                          \
        out[i] = cond[off[0]] != 0 ? x[off[1]] : y[off[2]];                                      \
      }                                                                                          \
    } else {                                                                                     \
      for (int64_t i = thread_index(); i < p.count; i += thread_count()) {                       \
        int64_t off[3];                                                                          \
        general_offsets<int64_t, 3>(p, i, off);                                                  \
        out[i] = cond[off[0]] != 0 ? x[off[1]] : y[off[2]];                                      \
      }                                                                                          \
    }                                                                                            \
  }
PS_WHERE_KERNEL(ps_where_u8, uint8_t)
PS_WHERE_KERNEL(ps_where_u16, uint16_t)
PS_WHERE_KERNEL(ps_where_u32, uint32_t)
PS_WHERE_KERNEL(ps_where_u64, unsigned long long)
#undef PS_WHERE_KERNEL

// IsNaN (mode 0) and IsInf (mode 1: detect_negative in bit 0, detect_positive in bit 1).
extern "C" __global__ void ps_float_class_f32(const float* x, uint8_t* y, int64_t n, int32_t mode) {
  using namespace elementwise;
  for (int64_t i = thread_index(); i < n; i += thread_count()) {
    const float v = x[i];
    uint8_t r;
    if (mode == 0) {
      r = isnan(v);
    } else {
      r = isinf(v) && (v > 0 ? (mode & 2) != 0 : (mode & 1) != 0);
    }
    y[i] = r;
  }
}

// Not on bools.
extern "C" __global__ void ps_not_bool(const uint8_t* x, uint8_t* y, int64_t n) {
  using namespace elementwise;
  for (int64_t i = thread_index(); i < n; i += thread_count()) y[i] = x[i] == 0;
}

// Cast from one element type to `dst` (KernelDType), with the CPU reference's rules.
#define PS_CAST_KERNEL(NAME, S)                                                               \
  extern "C" __global__ void NAME(const S* x, void* y, int64_t n, int32_t dst) {             \
    elementwise::cast_to(x, y, n, dst);                                                       \
  }
PS_CAST_KERNEL(ps_cast_from_f32, float)
PS_CAST_KERNEL(ps_cast_from_f64, double)
PS_CAST_KERNEL(ps_cast_from_f16, elementwise::Half)
PS_CAST_KERNEL(ps_cast_from_bf16, elementwise::BHalf)
PS_CAST_KERNEL(ps_cast_from_i64, int64_t)
PS_CAST_KERNEL(ps_cast_from_i32, int32_t)
PS_CAST_KERNEL(ps_cast_from_i8, int8_t)
PS_CAST_KERNEL(ps_cast_from_u8, uint8_t)
#undef PS_CAST_KERNEL

// Cast from bool bytes (non-zero is true, converted as 1).
extern "C" __global__ void ps_cast_from_bool(const uint8_t* x, void* y, int64_t n, int32_t dst) {
  using namespace elementwise;
  // Normalise to 0/1 first, then convert like uint8.
  switch (dst) {
    case ps::kernels::kKBool:
    case ps::kernels::kKUInt8:
    case ps::kernels::kKInt8: {
      uint8_t* out = static_cast<uint8_t*>(y);
      for (int64_t i = thread_index(); i < n; i += thread_count()) out[i] = x[i] != 0;
      break;
    }
    default:
      for (int64_t i = thread_index(); i < n; i += thread_count()) {
        const uint8_t v = x[i] != 0;
        switch (dst) {
          case ps::kernels::kKFloat32: static_cast<float*>(y)[i] = v; break;
          case ps::kernels::kKFloat64: static_cast<double*>(y)[i] = v; break;
          case ps::kernels::kKFloat16: static_cast<Half*>(y)[i] = convert<Half>(v); break;
          case ps::kernels::kKBFloat16: static_cast<BHalf*>(y)[i] = convert<BHalf>(v); break;
          case ps::kernels::kKInt64: static_cast<int64_t*>(y)[i] = v; break;
          case ps::kernels::kKInt32: static_cast<int32_t*>(y)[i] = v; break;
          default: break;
        }
      }
      break;
  }
}
