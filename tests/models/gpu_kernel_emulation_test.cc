// Our CUDA kernels run on the CPU under a host emulation of blocks, warps and shared memory
// (kernel_emulation.h), fed with the plans the GPU ops make (index_plan.h), and compared with
// the CPU reference. Catches index, tiling, shuffle and conversion bugs without a GPU; the
// [gpu] cases of gpu_kernel_ops_test.cc check the same kernels on the device and its math.
#include "tests/models/kernel_emulation.h"

// The kernels, compiled for the host (one translation unit, as nvcc sees them).
#include <catch2/catch.hpp>
#include <cmath>
#include <iterator>
#include <limits>
#include <optional>
#include <random>

#include "common/head_slice.h"
#include "cuda/kernels/attention.cu"
#include "cuda/kernels/elementwise.cu"
#include "cuda/kernels/layout.cu"
#include "cuda/kernels/norm_softmax.cu"
#include "cuda/kernels/reduce.cu"
#include "models/cpu/grad.h"
#include "models/cpu/ops.h"
#include "models/gpu/index_plan.h"
#include "tests/models/gpu_op_check.h"
#include "tests/models/grad_check_util.h"

namespace ps::models::gpu {
namespace {

using cpu::Tensor;
using testing::random_tensor;

uint64_t emu_seed = 1000;
Tensor rnd(DType d, Shape s, double lo = -1, double hi = 1) {
  return random_tensor(d, std::move(s), emu_seed++, lo, hi);
}

pipeswitch::psm::Attribute attr_i(const std::string& name, int64_t v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_i(v);
  return a;
}
pipeswitch::psm::Attribute attr_f(const std::string& name, float v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_f(v);
  return a;
}
pipeswitch::psm::Attribute attr_ints(const std::string& name, const std::vector<int64_t>& v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  for (int64_t x : v) a.mutable_ints()->add_values(x);
  return a;
}
cpu::Attributes attrs(std::initializer_list<pipeswitch::psm::Attribute> list = {}) {
  cpu::Attributes out;
  for (const auto& a : list) *out.Add() = a;
  return out;
}

std::vector<Tensor> reference(const std::string& op, const cpu::Attributes& a,
                              std::vector<const Tensor*> in, size_t outputs = 1) {
  auto r = cpu::run_op_allocating(op, a, in, outputs);
  REQUIRE(r.ok());
  return std::move(r).value();
}

Tensor reference1(const std::string& op, const cpu::Attributes& a, std::vector<const Tensor*> in) {
  std::vector<Tensor> out = reference(op, a, std::move(in));
  return std::move(out[0]);
}

Tensor empty_like(const Tensor& t) {
  auto r = Tensor::allocate(t.dtype(), t.shape());
  REQUIRE(r.ok());
  Tensor x = std::move(r).value();
  if (x.byte_size() > 0) std::memset(x.mutable_raw(), 0xA5, x.byte_size());
  return x;
}

double max_rel(const Tensor& expected, const Tensor& actual) {
  auto e = testing::compare_tensors(expected, actual);
  REQUIRE(e.ok());
  if (e->mismatches > 0) return 1.0;
  return e->max_rel;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Independent threads (element-wise, copies, gathers, thread-per-output reductions): 3 blocks
// of 256 so grid-stride loops wrap.
template <typename F>
void run3(F f) {
  emu_launch(EmuDim{3}, EmuDim{256}, f, /*cooperative=*/false);
}
// Kernels with shuffles or barriers: real threads, 2 blocks of `block`.
template <typename F>
void run_coop(F f, EmuDim block = EmuDim{64}) {
  emu_launch(EmuDim{2}, block, f, /*cooperative=*/true);
}

Shape random_shape(std::mt19937& rng, int max_rank, int max_dim) {
  const int rank = 1 + static_cast<int>(rng() % max_rank);
  Shape s;
  for (int d = 0; d < rank; ++d) s.push_back(1 + static_cast<int64_t>(rng() % max_dim));
  return s;
}
Shape broadcastable(std::mt19937& rng, const Shape& out) {
  Shape s;
  for (int64_t d : out) s.push_back(rng() % 3 == 0 ? 1 : d);
  s.erase(s.begin(), s.begin() + static_cast<long>(rng() % (s.size() + 1)));
  return s;
}

TEST_CASE("emulated binary kernels match the CPU reference in every broadcast mode", "[gpu_kernel_emulation]") {
  std::mt19937 rng(3);
  const std::pair<const char*, int32_t> ops[] = {{"Add", kernels::kBinaryAdd}, {"Sub", kernels::kBinarySub},
                                                 {"Mul", kernels::kBinaryMul}, {"Div", kernels::kBinaryDiv},
                                                 {"Less", kernels::kBinaryLess}, {"Equal", kernels::kBinaryEqual}};
  for (int trial = 0; trial < 16; ++trial) {
    const Shape out = random_shape(rng, 4, 6);
    Shape sa = trial % 2 ? out : broadcastable(rng, out);
    Shape sb = trial % 4 == 1 ? Shape{} : broadcastable(rng, out);
    if (trial % 8 == 3) sb = Shape(out.end() - 1, out.end());  // a bias
    Tensor a = rnd(DType::kFloat32, sa, -3, 3), b = rnd(DType::kFloat32, sb, 0.5, 3);
    const Shape operands[] = {sa, sb};
    const std::optional<Shape> joint = broadcast_shapes(sa, sb);
    REQUIRE(joint);
    auto plan = plan_broadcast(operands, *joint);
    REQUIRE(plan.ok());
    for (const auto& [name, code] : ops) {
      const Tensor expected = reference1(name, attrs(), {&a, &b});
      for (int vec = 0; vec < 2; ++vec) {
        kernels::BroadcastParams p = *plan;
        const bool row_ok = (p.mode != kernels::kBroadcastRowA && p.mode != kernels::kBroadcastRowB) || p.inner % 4 == 0;
        p.vectorize = vec && p.mode != kernels::kBroadcastGeneral && row_ok && aligned16(a.raw()) && aligned16(b.raw());
        Tensor y = empty_like(expected);
        run3([&] { ps_binary_f32(a.data<float>(), b.data<float>(), y.mutable_raw(), code, p); });
        INFO(name << " a " << shape_string(sa) << " b " << shape_string(sb) << " mode " << p.mode
                  << " vectorize " << p.vectorize);
        CHECK(max_rel(expected, y) == 0.0);
      }
    }
    Tensor ia = rnd(DType::kInt64, sa, -500, 500), ib = rnd(DType::kInt64, sb, -9, -1);
    const Tensor expected = reference1("Div", attrs(), {&ia, &ib});
    Tensor y = empty_like(expected);
    run3([&] { ps_binary_i64(ia.data<int64_t>(), ib.data<int64_t>(), y.mutable_raw(), kernels::kBinaryDiv, *plan); });
    CHECK(max_rel(expected, y) == 0.0);
  }
}

// General broadcasts whose innermost dimension is a warp or longer take a warp per output row
// (elementwise.cu's binary_general_rows): BERT's attention mask, an operand broadcast along the
// rows (inner stride 0 in that operand), rows not a multiple of 32 long, rows of several
// pieces (HF's [B, 1, S, S] mask: merged rows S * S long), more rows than the emulated warps
// (24: each warp takes several).
TEST_CASE("emulated binary kernels: general broadcasts by rows", "[gpu_kernel_emulation]") {
  const std::vector<std::pair<Shape, Shape>> cases = {{{2, 3, 4, 37}, {2, 1, 1, 37}},
                                                      // rows of several pieces (1024 each)
                                                      {{2, 3, 50, 50}, {2, 1, 50, 50}},
                                                      {{3, 5, 33}, {1, 5, 1}},
                                                      {{2, 1, 64}, {1, 3, 64}},
                                                      {{40, 32}, {40, 1}}};
  for (const auto& [sa, sb] : cases) {
    Tensor a = rnd(DType::kFloat32, sa, -3, 3), b = rnd(DType::kFloat32, sb, 0.5, 3);
    const Shape operands[] = {sa, sb};
    const std::optional<Shape> joint = broadcast_shapes(sa, sb);
    REQUIRE(joint);
    auto plan = plan_broadcast(operands, *joint);
    REQUIRE(plan.ok());
    INFO("a " << shape_string(sa) << " b " << shape_string(sb) << " mode " << plan->mode);
    CHECK(plan->mode == kernels::kBroadcastGeneral);
    for (const auto& [name, code] : {std::pair<const char*, int32_t>{"Add", kernels::kBinaryAdd},
                                     {"Div", kernels::kBinaryDiv}}) {
      const Tensor expected = reference1(name, attrs(), {&a, &b});
      Tensor y = empty_like(expected);
      run3([&] { ps_binary_f32(a.data<float>(), b.data<float>(), y.mutable_raw(), code, *plan); });
      CHECK(max_rel(expected, y) == 0.0);
    }
  }
}

TEST_CASE("emulated unary, Where and Cast kernels match the CPU reference", "[gpu_kernel_emulation]") {
  const std::pair<const char*, int32_t> ops[] = {
      {"Relu", kernels::kUnaryRelu}, {"Gelu", kernels::kUnaryGelu}, {"Erf", kernels::kUnaryErf},
      {"Tanh", kernels::kUnaryTanh}, {"Exp", kernels::kUnaryExp},   {"Neg", kernels::kUnaryNeg},
      {"Abs", kernels::kUnaryAbs},   {"Sigmoid", kernels::kUnarySigmoid}, {"Floor", kernels::kUnaryFloor}};
  Tensor x = rnd(DType::kFloat32, {3, 67}, -4, 4);
  for (const auto& [name, code] : ops) {
    const Tensor expected = reference1(name, attrs(), {&x});
    for (int vec = 0; vec < 2; ++vec) {
      kernels::UnaryParams p;
      p.op = code;
      p.count = x.numel();
      p.vectorize = vec;
      Tensor y = empty_like(expected);
      run3([&] { ps_unary_f32(x.data<float>(), y.mutable_data<float>(), p); });
      INFO(name << " vectorize " << vec);
      CHECK(max_rel(expected, y) <= 1e-6);
    }
  }
  Tensor xi = rnd(DType::kInt32, {101}, -99, 99);
  kernels::UnaryParams clip;
  clip.op = kernels::kUnaryClip;
  clip.count = xi.numel();
  clip.ilo = -5;
  clip.ihi = 40;
  Tensor lo = rnd(DType::kInt32, {}, -5, -5), hi = rnd(DType::kInt32, {}, 40, 40);
  const Tensor clipped = reference1("Clip", attrs(), {&xi, &lo, &hi});
  Tensor yi = empty_like(clipped);
  run3([&] { ps_unary_i32(xi.data<int32_t>(), yi.mutable_data<int32_t>(), clip); });
  CHECK(max_rel(clipped, yi) == 0.0);

  // Where with a three-way broadcast.
  Tensor c = rnd(DType::kBool, {4, 1, 6}), wx = rnd(DType::kInt64, {5, 1}, -9, 9), wy = rnd(DType::kInt64, {6}, -9, 9);
  const Tensor where = reference1("Where", attrs(), {&c, &wx, &wy});
  const Shape operands[] = {c.shape(), wx.shape(), wy.shape()};
  auto wp = plan_broadcast(operands, where.shape());
  REQUIRE(wp.ok());
  Tensor wout = empty_like(where);
  run3([&] {
    ps_where_u64(static_cast<const uint8_t*>(c.raw()), reinterpret_cast<const unsigned long long*>(wx.raw()),
                 reinterpret_cast<const unsigned long long*>(wy.raw()),
                 static_cast<unsigned long long*>(wout.mutable_raw()), *wp);
  });
  CHECK(max_rel(where, wout) == 0.0);

  // Cast: float32 and float64 sources (with specials) to every dtype.
  Tensor f = rnd(DType::kFloat32, {64}, -70000, 70000);
  const float specials[] = {NAN, INFINITY, -INFINITY, 3e9f, -3e9f, 2.5f, -2.5f, 1e20f, 65519.0f, 65520.0f};
  for (size_t i = 0; i < std::size(specials); ++i) f.mutable_data<float>()[i] = specials[i];
  Tensor d = rnd(DType::kFloat64, {64}, -300, 300);
  const DType all[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64, DType::kInt64,
                       DType::kInt32,   DType::kInt8,    DType::kUInt8,    DType::kBool};
  for (DType to : all) {
    for (const Tensor* src : {&f, &d}) {
      const Tensor expected = reference1("Cast", attrs({attr_i("to", dtype_to_onnx(to))}), {src});
      Tensor y = empty_like(expected);
      const int32_t dst = static_cast<int32_t>(to);
      if (src->dtype() == DType::kFloat32) {
        run3([&] { ps_cast_from_f32(src->data<float>(), y.mutable_raw(), src->numel(), dst); });
      } else {
        run3([&] { ps_cast_from_f64(src->data<double>(), y.mutable_raw(), src->numel(), dst); });
      }
      INFO(dtype_name(src->dtype()) << " -> " << dtype_name(to));
      CHECK(max_rel(expected, y) == 0.0);
    }
  }
}

TEST_CASE("emulated copies (wide and narrow), the tiled transpose and Gather match the CPU reference",
          "[gpu_kernel_emulation]") {
  struct Case {
    Shape shape;
    std::vector<int64_t> perm;
  };
  const Case cases[] = {{{2, 9, 3, 8}, {0, 2, 1, 3}}, {{2, 37, 3, 40}, {0, 2, 3, 1}}, {{33, 70}, {1, 0}}};
  for (const Case& cs : cases) {
    Tensor x = rnd(DType::kFloat32, cs.shape, -9, 9);
    const Tensor expected = reference1("Transpose", attrs({attr_ints("perm", cs.perm)}), {&x});
    const std::vector<int64_t> s = row_major_strides(cs.shape);
    std::vector<int64_t> in_strides;
    for (int64_t p : cs.perm) in_strides.push_back(s[p]);
    auto plan = plan_strided_copy(expected.shape(), in_strides, row_major_strides(expected.shape()), 0, 0, 4);
    REQUIRE(plan.ok());
    INFO("perm " << shape_string(cs.perm) << " of " << shape_string(cs.shape) << ", wide unit " << plan->wide_unit);
    Tensor narrow = empty_like(expected);
    run3([&] { ps_strided_copy_u32(static_cast<const uint32_t*>(x.raw()), static_cast<uint32_t*>(narrow.mutable_raw()), plan->narrow); });
    CHECK(max_rel(expected, narrow) == 0.0);
    if (plan->wide_unit == 16) {
      Tensor wide = empty_like(expected);
      run3([&] { ps_strided_copy_u128(static_cast<const layout::U128*>(x.raw()), static_cast<layout::U128*>(wide.mutable_raw()), plan->wide); });
      CHECK(max_rel(expected, wide) == 0.0);
    }
    const TiledTransposePlan tiled = plan_tiled_transpose(cs.shape, cs.perm);
    if (tiled.ok) {
      Tensor t = empty_like(expected);
      run_coop([&] { ps_transpose_tiled_u32(static_cast<const uint32_t*>(x.raw()), static_cast<uint32_t*>(t.mutable_raw()), tiled.params); },
               EmuDim{32, 8});
      CHECK(max_rel(expected, t) == 0.0);
    }
  }
  // Gather rows of 8 floats as 16-byte units, with negative indices.
  Tensor table = rnd(DType::kFloat32, {10, 8});
  Tensor ids = rnd(DType::kInt64, {3, 4}, -10, 9);
  const Tensor expected = reference1("Gather", attrs(), {&table, &ids});
  kernels::GatherParams p;
  p.outer = 1;
  p.axis_dim = 10;
  p.num_indices = 12;
  p.inner = 2;  // 8 floats = 2 units of 16 bytes
  p.count = 24;
  Tensor y = empty_like(expected);
  run3([&] { ps_gather_i64_u128(static_cast<const layout::U128*>(table.raw()), ids.data<int64_t>(), static_cast<layout::U128*>(y.mutable_raw()), p); });
  CHECK(max_rel(expected, y) == 0.0);
}

// HeadSlice's copies (models/gpu/head_slice_op.cc's plans): forward out of a wider row at a
// column offset, tiled for the key's permutation; backward along X's order, copying and adding
// (the tiled and strided adding kernels).
TEST_CASE("emulated HeadSlice copies, forward and back, tiled and strided, copy and add",
          "[gpu_kernel_emulation]") {
  struct Case {
    int64_t start;
    std::vector<int64_t> perm;
    bool tiled;
  };
  Tensor x = rnd(DType::kFloat32, {2, 37, 3 * 40}, -9, 9);
  for (const Case& c : {Case{40, {0, 2, 3, 1}, true}, Case{80, {0, 2, 1, 3}, false}}) {
    const cpu::Attributes a = attrs({attr_i("start", c.start), attr_i("size", 40),
                                     attr_i("heads", 5), attr_ints("perm", c.perm)});
    INFO("perm " << shape_string(c.perm));
    const Tensor expected = reference1("HeadSlice", a, {&x});
    auto l = head_slice_layout(x.shape(), c.start, 40, 5, c.perm);
    REQUIRE(l.ok());
    const float* src = x.data<float>() + l->x_base;
    Tensor y = empty_like(expected);
    const TiledTransposePlan fwd = plan_tiled_copy(l->y, l->x_strides, row_major_strides(l->y));
    REQUIRE(fwd.ok == c.tiled);
    if (fwd.ok) {
      run_coop(
          [&] {
            ps_transpose_tiled_u32(reinterpret_cast<const uint32_t*>(src),
                                   static_cast<uint32_t*>(y.mutable_raw()), fwd.params);
          },
          EmuDim{32, 8});
    } else {
      auto plan = plan_strided_copy(l->y, l->x_strides, row_major_strides(l->y), 0, 0, 4);
      REQUIRE(plan.ok());
      run3([&] {
        ps_strided_copy_u32(reinterpret_cast<const uint32_t*>(src),
                            static_cast<uint32_t*>(y.mutable_raw()), plan->narrow);
      });
    }
    CHECK(max_rel(expected, y) == 0.0);

    // Backward: dX's columns [start, start + 40) get dY back, added to a base.
    const Tensor dy = rnd(DType::kFloat32, l->y, -9, 9);
    Tensor dx = rnd(DType::kFloat32, x.shape(), -9, 9);
    Tensor want = dx.clone().value();
    Result<Tensor> scattered = cpu::head_slice_backward(a, x.shape(), grad_test::to_f64(dy));
    REQUIRE(scattered.ok());
    for (int64_t i = 0; i < want.numel(); ++i) {
      want.mutable_data<float>()[i] += static_cast<float>(scattered->data<double>()[i]);
    }
    float* dst = dx.mutable_data<float>() + l->x_base;
    const TiledTransposePlan bwd =
        plan_tiled_copy(l->sliced, l->sliced_y_strides, l->sliced_x_strides);
    REQUIRE(bwd.ok == c.tiled);
    if (bwd.ok) {
      run_coop([&] { ps_transpose_tiled_add_f32(dy.data<float>(), dst, bwd.params); },
               EmuDim{32, 8});
    } else {
      auto plan = plan_strided_copy(l->sliced, l->sliced_y_strides, l->sliced_x_strides, 0, 0, 4);
      REQUIRE(plan.ok());
      run3([&] { ps_strided_add_f32(dy.data<float>(), dst, plan->narrow); });
    }
    CHECK(max_rel(want, dx) == 0.0);
  }
}

Tensor zeros_like_f32(const Tensor& t) {
  Tensor z = empty_like(t);
  std::fill_n(z.mutable_data<float>(), z.numel(), 0.0f);
  return z;
}

// The warp-row kernels, one per share of a row a lane holds (norm_softmax.cu).
void softmax_warp(int per_lane, const float* x, const float* mask, float* y,
                  const kernels::SoftmaxParams& p) {
  switch (per_lane) {
    case 1:
      return ps_softmax_warp1_f32(x, mask, y, p);
    case 2:
      return ps_softmax_warp2_f32(x, mask, y, p);
    case 4:
      return ps_softmax_warp4_f32(x, mask, y, p);
    case 8:
      return ps_softmax_warp8_f32(x, mask, y, p);
    case 16:
      return ps_softmax_warp16_f32(x, mask, y, p);
    case 24:
      return ps_softmax_warp24_f32(x, mask, y, p);
    default:
      return ps_softmax_warp32_f32(x, mask, y, p);
  }
}
void layer_norm_warp(int per_lane, const float* x, const float* r, const float* g, const float* b,
                     float* y, float* mean, float* inv, const kernels::LayerNormParams& p) {
  switch (per_lane) {
    case 1:
      return ps_layer_norm_warp1_f32(x, r, g, b, y, mean, inv, p);
    case 2:
      return ps_layer_norm_warp2_f32(x, r, g, b, y, mean, inv, p);
    case 4:
      return ps_layer_norm_warp4_f32(x, r, g, b, y, mean, inv, p);
    case 8:
      return ps_layer_norm_warp8_f32(x, r, g, b, y, mean, inv, p);
    case 16:
      return ps_layer_norm_warp16_f32(x, r, g, b, y, mean, inv, p);
    case 24:
      return ps_layer_norm_warp24_f32(x, r, g, b, y, mean, inv, p);
    default:
      return ps_layer_norm_warp32_f32(x, r, g, b, y, mean, inv, p);
  }
}

TEST_CASE("emulated Softmax and LayerNorm kernels match the CPU reference on every path", "[gpu_kernel_emulation]") {
  struct Case {
    Shape shape;
    int64_t axis;
    int32_t mode;      // 0: a warp per row, 1: a block per row, 2: a thread per column
    int32_t per_lane;  // mode 0: which warp-row kernel
  };
  const Case cases[] = {{{5, 45}, -1, 0, 2},  {{3, 7}, -1, 0, 1},   {{3, 700}, -1, 0, 24},
                        {{2, 251}, -1, 0, 8}, {{3, 100}, -1, 1, 0}, {{2, 6, 5}, 1, 2, 0}};
  for (const Case& cs : cases) {
    Tensor x = rnd(DType::kFloat32, cs.shape, -6, 6);
    for (int log = 0; log < 2; ++log) {
      const Tensor expected = reference1(log ? "LogSoftmax" : "Softmax", attrs({attr_i("axis", cs.axis)}), {&x});
      const int64_t axis = cs.axis < 0 ? cs.axis + static_cast<int64_t>(cs.shape.size()) : cs.axis;
      kernels::SoftmaxParams p;
      p.outer = element_count(Shape(cs.shape.begin(), cs.shape.begin() + axis));
      p.n = cs.shape[axis];
      p.inner = element_count(Shape(cs.shape.begin() + axis + 1, cs.shape.end()));
      p.log = log;
      Tensor y = empty_like(expected);
      run_coop([&] {
        if (cs.mode == 0) {
          softmax_warp(cs.per_lane, x.data<float>(), nullptr, y.mutable_data<float>(), p);
        } else {
          ps_softmax_f32(x.data<float>(), nullptr, y.mutable_data<float>(), p, cs.mode);
        }
      });
      INFO("softmax " << shape_string(cs.shape) << " mode " << cs.mode << " per lane "
                      << cs.per_lane << " log " << log);
      CHECK(max_rel(expected, y) <= 1e-5);
    }
  }
  // AddSoftmax: the mask added as a row is read (plan_softmax_mask's terms), the same bits as
  // Softmax of the Add's output. Masks: BERT training's [B, 1, S, S], inference's [B, 1, 1, S],
  // one row for all, one value a row (mask_col 0), a middle-axis broadcast, X's own shape;
  // warp rows and (n 1100) block rows.
  struct MaskCase {
    Shape x, m;
    int32_t mode, per_lane;
    int32_t terms;
  };
  const MaskCase masks[] = {
      {{2, 3, 5, 45}, {2, 1, 5, 45}, 0, 2, 2}, {{2, 3, 5, 45}, {2, 1, 1, 45}, 0, 2, 1},
      {{2, 3, 5, 45}, {45}, 0, 2, 0},          {{2, 3, 5, 45}, {2, 3, 5, 1}, 0, 2, 1},
      {{2, 3, 5, 45}, {3, 1, 45}, 0, 2, 1},    {{2, 3, 5, 45}, {2, 3, 5, 45}, 0, 2, 1},
      {{2, 2, 1100}, {2, 1, 1100}, 1, 0, 1}};
  for (const MaskCase& cs : masks) {
    INFO("AddSoftmax " << shape_string(cs.x) << " + " << shape_string(cs.m) << " mode " << cs.mode);
    Tensor x = rnd(DType::kFloat32, cs.x, -6, 6);
    Tensor m = rnd(DType::kFloat32, cs.m, -6, 6);
    const Tensor sum = reference1("Add", attrs(), {&x, &m});
    const Tensor expected = reference1("Softmax", attrs(), {&sum});
    CHECK(max_rel(expected, reference1("AddSoftmax", attrs(), {&x, &m})) == 0.0);
    kernels::SoftmaxParams p;
    p.outer = element_count(Shape(cs.x.begin(), cs.x.end() - 1));
    p.n = cs.x.back();
    p.inner = 1;
    REQUIRE(plan_softmax_mask(cs.m, cs.x, &p).ok());
    CHECK(p.mask_terms == cs.terms);
    Tensor y = empty_like(expected);
    run_coop([&] {
      if (cs.mode == 0) {
        softmax_warp(cs.per_lane, x.data<float>(), m.data<float>(), y.mutable_data<float>(), p);
      } else {
        ps_softmax_f32(x.data<float>(), m.data<float>(), y.mutable_data<float>(), p, cs.mode);
      }
    });
    CHECK(max_rel(expected, y) <= 1e-5);
  }
  // LayerNorm of X, and of A + B (AddLayerNormalization: the sum rounded first, so the same
  // bits as LayerNorm of the Add's output).
  for (const bool add : {false, true}) {
    // (768 and 64 fill their warp rows exactly: the branch-free loads and chunked stores.)
    for (const auto& [inner, per_lane] : {std::pair{70, 4}, std::pair{700, 24}, std::pair{768, 24},
                                          std::pair{64, 2}, std::pair{70, 0}}) {
      Tensor x = rnd(DType::kFloat32, {5, inner}, -2, 3);
      Tensor r = rnd(DType::kFloat32, {5, inner}, -2, 3);
      Tensor g = rnd(DType::kFloat32, {inner}), b = rnd(DType::kFloat32, {inner});
      // Without the residual, "the sum" is X itself (the Add of X and zeros would be too).
      Tensor zero = zeros_like_f32(x);
      const Tensor sum = reference1("Add", attrs(), {&x, add ? &r : &zero});
      const std::vector<Tensor> expected =
          reference("LayerNormalization", attrs(), {&sum, &g, &b}, 3);
      const Tensor fused =
          reference1("AddLayerNormalization", attrs(), {&x, add ? &r : &zero, &g, &b});
      kernels::LayerNormParams p;
      p.rows = 5;
      p.inner = inner;
      p.scale_len = inner;
      p.bias_len = inner;
      Tensor y = empty_like(expected[0]), mean = empty_like(expected[1]),
             inv = empty_like(expected[2]);
      const float* res = add ? r.data<float>() : nullptr;
      run_coop([&] {
        float* out[3] = {y.mutable_data<float>(), mean.mutable_data<float>(),
                         inv.mutable_data<float>()};
        if (per_lane > 0) {
          layer_norm_warp(per_lane, x.data<float>(), res, g.data<float>(), b.data<float>(), out[0],
                          out[1], out[2], p);
        } else {
          ps_layer_norm_f32(x.data<float>(), res, g.data<float>(), b.data<float>(), out[0], out[1],
                            out[2], p);
        }
      });
      INFO("layer norm of " << inner << (add ? " (A + B)" : "") << ", per lane " << per_lane
                            << " (0: a block per row)");
      CHECK(max_rel(expected[0], y) <= 1e-5);
      CHECK(max_rel(expected[1], mean) <= 1e-5);
      CHECK(max_rel(expected[2], inv) <= 1e-5);
      CHECK(max_rel(expected[0], fused) == 0.0);  // the CPU's fused op: LayerNorm of the sum
    }
  }
}

TEST_CASE("emulated reductions match the CPU reference in both modes", "[gpu_kernel_emulation]") {
  struct Case {
    Shape shape;
    std::vector<int64_t> axes;
  };
  const Case cases[] = {{{4, 5, 40}, {2}}, {{4, 5, 6}, {0, 2}}, {{6, 3}, {0}}, {{3, 4}, {0, 1}}};
  const std::pair<const char*, int32_t> ops[] = {{"ReduceSum", kernels::kReduceSum}, {"ReduceMean", kernels::kReduceMean},
                                                 {"ReduceMax", kernels::kReduceMax}, {"ReduceProd", kernels::kReduceProd}};
  for (const Case& cs : cases) {
    std::vector<bool> reduced(cs.shape.size(), false);
    for (int64_t a : cs.axes) reduced[a] = true;
    auto plan = plan_reduce(cs.shape, reduced);
    REQUIRE(plan.ok());
    for (const auto& [name, code] : ops) {
      Tensor x = rnd(DType::kFloat32, cs.shape, 0.5, 1.5);
      const Tensor expected = reference1(name, attrs({attr_ints("axes", cs.axes), attr_i("keepdims", 0)}), {&x});
      kernels::ReduceParams p = plan->params;
      p.op = code;
      for (int mode = 0; mode < 2; ++mode) {
        Tensor y = empty_like(expected);
        if (mode == 1) {
          run_coop([&] { ps_reduce_f32(x.data<float>(), y.mutable_data<float>(), p, 1); });
        } else {
          run3([&] { ps_reduce_f32(x.data<float>(), y.mutable_data<float>(), p, 0); });
        }
        INFO(name << " axes " << shape_string(cs.axes) << " of " << shape_string(cs.shape) << " mode " << mode);
        CHECK(max_rel(expected, y) <= 1e-6);
      }
      Tensor xi = rnd(DType::kInt64, cs.shape, -50, 50);
      const Tensor iexp = reference1(name, attrs({attr_ints("axes", cs.axes), attr_i("keepdims", 0)}), {&xi});
      Tensor yi = empty_like(iexp);
      run_coop([&] { ps_reduce_i64(xi.data<int64_t>(), yi.mutable_data<int64_t>(), p, 1); });
      CHECK(max_rel(iexp, yi) == 0.0);
    }
  }
}

TEST_CASE("emulated fill patterns write Shape, ConstantOfShape and Range values", "[gpu_kernel_emulation]") {
  kernels::FillParams p;
  p.count = 5;
  p.dtype = kernels::kKFloat32;
  p.start = -1.5;
  p.delta = 0.25;
  std::vector<float> f(5);
  run3([&] { ps_fill_pattern(f.data(), p, 2); });
  CHECK(f == std::vector<float>{-1.5f, -1.25f, -1.0f, -0.75f, -0.5f});
  p.dtype = kernels::kKInt64;
  p.count = 3;
  p.values[0] = 8;
  p.values[1] = 251;
  p.values[2] = 768;
  std::vector<int64_t> v(3);
  run3([&] { ps_fill_pattern(v.data(), p, 0); });
  CHECK(v == std::vector<int64_t>{8, 251, 768});
  p.dtype = kernels::kKInt32;
  p.count = 4;
  p.value_bits = static_cast<uint32_t>(-7);
  std::vector<int32_t> c(4);
  run3([&] { ps_fill_pattern(c.data(), p, 1); });
  CHECK(c == std::vector<int32_t>{-7, -7, -7, -7});
}

// head_gemm.h's pointer arrays: entry (b, h) of array a is base + b * batch stride + h * head
// stride (bytes), arrays array_stride entries apart; entries past batch * heads untouched.
TEST_CASE("emulated batch pointer arrays address every (batch, head) matrix",
          "[gpu_kernel_emulation]") {
  kernels::BatchPointerParams p;
  p.arrays = 3;
  p.batch = 3;
  p.heads = 5;
  p.array_stride = 16;
  const uint64_t bases[3] = {0x10000, 0x20400, 0x7f000000};
  const int64_t batch_strides[3] = {9216, 0, 4096}, head_strides[3] = {256, 64, 1024};
  for (int a = 0; a < 3; ++a) {
    p.base[a] = bases[a];
    p.batch_stride[a] = batch_strides[a];
    p.head_stride[a] = head_strides[a];
  }
  std::vector<uint64_t> out(48, 7);
  run3([&] { ps_batch_pointers(out.data(), p); });
  for (int a = 0; a < 3; ++a) {
    for (int64_t j = 0; j < 16; ++j) {
      INFO("array " << a << " entry " << j);
      const uint64_t expected =
          j < 15 ? bases[a] +
                       static_cast<uint64_t>((j / 5) * batch_strides[a] + (j % 5) * head_strides[a])
                 : 7;
      CHECK(out[static_cast<size_t>(a * 16 + j)] == expected);
    }
  }
}

// The mma operands' rounding (warp_mma.h): half a TF32 ulp added to the bits, the low 13 bits
// then dropped by the tensor core (and by emu_mma_m16n8k8), must read as cvt.rna.tf32.f32's
// value: to nearest, ties away from zero; infinities and the arithmetic NaN kept.
TEST_CASE("TF32 operands read as x rounded to nearest, ties away from zero",
          "[gpu_kernel_emulation]") {
  namespace warp = kernels::warp;
  auto read = [](float x) { return warp::tf32_value(warp::to_tf32(x) & 0xffffe000u); };
  const float ulp = std::ldexp(1.0f, -10);        // TF32's ulp at 1
  CHECK(read(1.0f + 0.75f * ulp) == 1.0f + ulp);  // truncation alone would give 1
  CHECK(read(1.0f + 0.25f * ulp) == 1.0f);
  CHECK(read(1.0f + 0.5f * ulp) == 1.0f + ulp);  // a tie: away from zero
  CHECK(read(-(1.0f + 0.5f * ulp)) == -(1.0f + ulp));
  CHECK(read(2.0f - 0.25f * ulp) == 2.0f);                     // the carry reaches the exponent
  CHECK(std::isinf(read(std::numeric_limits<float>::max())));  // overflow rounds to infinity
  CHECK(read(INFINITY) == INFINITY);
  CHECK(read(-INFINITY) == -INFINITY);
  CHECK(std::isnan(read(std::numeric_limits<float>::quiet_NaN())));
  CHECK(read(0.0f) == 0.0f);
  for (const float x : {0.1f, -3.3f, 1e-20f, 7.77e30f}) {
    CHECK(warp::tf32_value(warp::to_tf32_exact(x)) == read(x));
    // Split3: hi + lo carries x to ~2^-21 relative.
    const warp::Split3 sp(x);
    const double sum =
        double(warp::tf32_value(sp.hi)) + double(warp::tf32_value(sp.lo & 0xffffe000u));
    CHECK(std::abs(sum - double(x)) <= std::abs(double(x)) * std::ldexp(1.0, -21));
  }
}

// FusedAttention (both precisions: the mma emulated, TF32 rounding included) against the three
// CPU ops it replaces: sequences that end mid-tile and span several key tiles and query blocks,
// heads smaller than the entry point's tile (zero columns), ranges out of order.
TEST_CASE("emulated fused attention matches scores, softmax and context",
          "[gpu_kernel_emulation]") {
  using Kernel = void (*)(const float*, float*, kernels::FusedAttentionParams);
  struct Case {
    int64_t b, s, c, heads, d, q, k, v;
    int tile;
    Kernel f32, tf32;
  };
  const std::vector<Case> cases = {
      {1, 37, 96, 2, 16, 0, 32, 64, 16, ps_fused_attention_d16_f32, ps_fused_attention_d16_tf32},
      {2, 70, 41, 2, 5, 30, 3, 17, 16, ps_fused_attention_d16_f32, ps_fused_attention_d16_tf32},
      {1, 33, 130, 1, 64, 66, 0, 2, 64, ps_fused_attention_d64_f32, ps_fused_attention_d64_tf32},
      {1, 100, 192, 1, 64, 128, 0, 64, 64, ps_fused_attention_d64_f32, ps_fused_attention_d64_tf32},
      {1, 5, 24, 1, 24, 0, 0, 0, 32, ps_fused_attention_d32_f32, ps_fused_attention_d32_tf32},
      // Heads of 48 in the 64-column tile, float4 copies: output runs that cross the head's end.
      {2, 45, 296, 2, 48, 0, 100, 196, 64, ps_fused_attention_d64_f32, ps_fused_attention_d64_tf32},
  };
  for (const Case& c : cases) {
    INFO("B" << c.b << " S" << c.s << " C" << c.c << " H" << c.heads << " D" << c.d << " tile "
             << c.tile);
    const Tensor x = rnd(DType::kFloat32, {c.b, c.s, c.c}, -2, 2);
    const float alpha = 0.3f;
    const int64_t size = c.heads * c.d;
    const Tensor scores =
        reference1("AttentionScores",
                   attrs({attr_i("heads", c.heads), attr_i("size", size), attr_i("q_start", c.q),
                          attr_i("k_start", c.k), attr_f("alpha", alpha)}),
                   {&x});
    const Tensor probs = reference1("Softmax", attrs({attr_i("axis", -1)}), {&scores});
    const Tensor expected =
        reference1("AttentionContext",
                   attrs({attr_i("heads", c.heads), attr_i("size", size), attr_i("v_start", c.v)}),
                   {&probs, &x});
    kernels::FusedAttentionParams p;
    p.batch = c.b;
    p.seq = c.s;
    p.columns = c.c;
    p.heads = c.heads;
    p.head_size = c.d;
    p.q_start = c.q;
    p.k_start = c.k;
    p.v_start = c.v;
    p.alpha = alpha;
    const bool vec4 = c.c % 4 == 0 && c.q % 4 == 0 && c.k % 4 == 0 && c.v % 4 == 0 && c.d % 4 == 0;
    constexpr int64_t kBlockRows = kernels::kFusedAttentionBlockRows;
    const auto blocks = static_cast<unsigned>((c.s + kBlockRows - 1) / kBlockRows * c.heads * c.b);
    // fp32 (3xTF32) is held to fp32's bound; TF32 rounds Q, K, P and V to 11 bits.
    for (const bool tf32 : {false, true}) {
      for (const int32_t v : {0, 1}) {
        if (v == 1 && !vec4) continue;
        INFO((tf32 ? "tf32" : "f32") << ", float4 copies " << v);
        p.vec4 = v;
        Tensor y = empty_like(expected);
        const Kernel kernel = tf32 ? c.tf32 : c.f32;
        emu_launch(EmuDim{blocks}, EmuDim{32 * kernels::kFusedAttentionWarps},
                   [&] { kernel(x.data<float>(), y.mutable_data<float>(), p); });
        const double err = max_rel(expected, y);
        CHECK(err < (tf32 ? 5e-3 : 1e-5));
        if (tf32) CHECK(err > 1e-6);  // the TF32 entry point really rounds
      }
    }
  }
}

}  // namespace
}  // namespace ps::models::gpu
