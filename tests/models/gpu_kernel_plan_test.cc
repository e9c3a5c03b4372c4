// Plan-time logic of the GPU kernel ops, tested without a GPU: dimension merging, broadcast
// modes, strided-copy planning (widening), tiled-transpose planning, slice bounds, reduction
// splits, and the kernel op table against the CPU reference's op list. The plans are run by a
// host emulation of the kernels' index arithmetic (the same loops as cuda/kernels/*.cu) and
// compared with the CPU reference, so an index bug shows here before it reaches a GPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "models/cpu/ops.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/kernel_op_util.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {
namespace {

using kernels::kMaxRank;

// ---- host emulation of the kernels' indexing ------------------------------------------------

// cuda/kernels/layout.cu strided_copy_loop.
template <typename T>
void emulate_copy(const kernels::StridedCopyParams& p, const T* src, T* dst) {
  for (int64_t i = 0; i < p.count; ++i) {
    int64_t rem = i, in_off = p.in_base, out_off = p.out_base;
    for (int d = p.rank - 1; d >= 0; --d) {
      const int64_t idx = rem % p.dims[d];
      rem /= p.dims[d];
      in_off += idx * p.in_strides[d];
      out_off += idx * p.out_strides[d];
    }
    dst[out_off] = src[in_off];
  }
}

// cuda/kernels/layout.cu tiled_transpose (tile by tile, element by element).
template <typename T>
void emulate_tiled(const kernels::TransposeParams& p, const T* src, T* dst) {
  const int col_dim = p.rank - 1;
  const int64_t tiles = p.tiles_rows * p.tiles_cols;
  for (int64_t t = 0; t < tiles * p.batch; ++t) {
    const int64_t b = t / tiles, tt = t % tiles;
    const int64_t row0 = (tt / p.tiles_cols) * 32, col0 = (tt % p.tiles_cols) * 32;
    int64_t in_base = 0, out_base = 0, rem = b;
    for (int d = col_dim - 1; d >= 0; --d) {
      if (d == p.row_dim) continue;
      const int64_t idx = rem % p.dims[d];
      rem /= p.dims[d];
      in_base += idx * p.in_strides[d];
      out_base += idx * p.out_strides[d];
    }
    for (int64_t r = row0; r < std::min(row0 + 32, p.dims[p.row_dim]); ++r) {
      for (int64_t c = col0; c < std::min(col0 + 32, p.dims[col_dim]); ++c) {
        dst[out_base + r * p.out_strides[p.row_dim] + c] =
            src[in_base + r * p.in_strides[p.row_dim] + c * p.in_strides[col_dim]];
      }
    }
  }
}

// cuda/kernels/elementwise.cu binary_apply (offsets of operands a, b for output i).
void emulate_offsets(const kernels::BroadcastParams& p, int64_t i, int64_t* a, int64_t* b) {
  switch (p.mode) {
    case kernels::kBroadcastSame: *a = i; *b = i; return;
    case kernels::kBroadcastScalarA: *a = 0; *b = i; return;
    case kernels::kBroadcastScalarB: *a = i; *b = 0; return;
    case kernels::kBroadcastRowA: *a = i % p.inner; *b = i; return;
    case kernels::kBroadcastRowB: *a = i; *b = i % p.inner; return;
    default: break;
  }
  int64_t rem = i;
  *a = *b = 0;
  for (int d = p.rank - 1; d >= 0; --d) {
    const int64_t idx = rem % p.dims[d];
    rem /= p.dims[d];
    *a += idx * p.strides[0][d];
    *b += idx * p.strides[1][d];
  }
}

cpu::Tensor iota_tensor(DType dtype, Shape shape) {
  auto t = cpu::Tensor::allocate(dtype, std::move(shape));
  REQUIRE(t.ok());
  cpu::Tensor x = std::move(t).value();
  if (dtype == DType::kFloat32) {
    std::iota(x.mutable_data<float>(), x.mutable_data<float>() + x.numel(), 1.0f);
  } else {
    std::iota(x.mutable_data<int64_t>(), x.mutable_data<int64_t>() + x.numel(), int64_t{1});
  }
  return x;
}

pipeswitch::psm::Attribute ints_attr(const std::string& name, const std::vector<int64_t>& v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  for (int64_t x : v) a.mutable_ints()->add_values(x);
  return a;
}

std::vector<float> as_floats(const cpu::Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

// Runs a strided copy plan (both the widened and the single-element form) on host memory,
// reinterpreting float data as units of the plan's width.
std::vector<float> run_copy(const CopyPlan& plan, const cpu::Tensor& x, int64_t out_count, bool wide) {
  std::vector<float> out(static_cast<size_t>(out_count), -1.0f);
  const kernels::StridedCopyParams& p = wide ? plan.wide : plan.narrow;
  const size_t unit = wide ? plan.wide_unit : plan.narrow_unit;
  if (unit == 4) {
    emulate_copy(p, x.data<float>(), out.data());
  } else if (unit == 8) {
    emulate_copy(p, reinterpret_cast<const uint64_t*>(x.data<float>()), reinterpret_cast<uint64_t*>(out.data()));
  } else {
    REQUIRE(unit == 16);
    struct U16 { uint64_t a, b; };
    emulate_copy(p, reinterpret_cast<const U16*>(x.data<float>()), reinterpret_cast<U16*>(out.data()));
  }
  return out;
}

// ---- tests ----------------------------------------------------------------------------------

TEST_CASE("merge_dims drops ones and merges dimensions walked together", "[gpu_kernel_plan]") {
  StridedLayout l{{2, 1, 3, 4}, {{12, 12, 4, 1}, {12, 12, 4, 1}}};
  StridedLayout m = merge_dims(l);
  CHECK(m.dims == Shape{24});
  CHECK(m.strides[0] == std::vector<int64_t>{1});

  // A transpose of the last two dims keeps them apart; the leading two merge.
  l = {{2, 3, 5, 4}, {{60, 20, 1, 5}, {60, 20, 4, 1}}};
  m = merge_dims(l);
  CHECK(m.dims == Shape{6, 5, 4});
  CHECK(m.strides[0] == std::vector<int64_t>{20, 1, 5});
  CHECK(m.strides[1] == std::vector<int64_t>{20, 4, 1});

  // Scalars and empty tensors.
  m = merge_dims({{1, 1}, {{0, 0}}});
  CHECK(m.dims == Shape{1});
  m = merge_dims({{3, 0, 2}, {{0, 2, 1}}});
  CHECK(m.dims == Shape{0});
}

TEST_CASE("plan_broadcast picks the fast modes and general strides", "[gpu_kernel_plan]") {
  auto mode = [](Shape a, Shape b, Shape out) {
    const Shape ops[] = {a, b};
    auto p = plan_broadcast(ops, out);
    REQUIRE(p.ok());
    return *p;
  };
  CHECK(mode({8, 251, 768}, {8, 251, 768}, {8, 251, 768}).mode == kernels::kBroadcastSame);
  CHECK(mode({1, 768}, {768}, {1, 768}).mode == kernels::kBroadcastSame);
  CHECK(mode({8, 12, 251, 251}, {}, {8, 12, 251, 251}).mode == kernels::kBroadcastScalarB);
  CHECK(mode({1}, {4, 5}, {4, 5}).mode == kernels::kBroadcastScalarA);
  const auto row = mode({8, 251, 768}, {768}, {8, 251, 768});
  CHECK(row.mode == kernels::kBroadcastRowB);
  CHECK(row.inner == 768);
  CHECK(mode({1, 1, 5}, {3, 4, 5}, {3, 4, 5}).mode == kernels::kBroadcastRowA);
  // BERT's attention mask [8,1,1,251] over [8,12,251,251]: general, merged to rank 3.
  const auto mask = mode({8, 12, 251, 251}, {8, 1, 1, 251}, {8, 12, 251, 251});
  CHECK(mask.mode == kernels::kBroadcastGeneral);
  CHECK(mask.rank == 3);
  CHECK(mask.small_index == 1);
  // Both operands broadcast: [3,1] x [1,4].
  const auto outer = mode({3, 1}, {1, 4}, {3, 4});
  CHECK(outer.mode == kernels::kBroadcastGeneral);

  // Past 2^31 elements the kernels switch to 64-bit index arithmetic.
  const auto huge = mode({1 << 16, 1 << 16}, {1, 1 << 16}, {1 << 16, 1 << 16});
  CHECK(huge.count == (int64_t{1} << 32));
  CHECK(huge.small_index == 0);
  auto big_copy = plan_strided_copy({1 << 16, 1 << 16}, {1, 1 << 16}, {1 << 16, 1}, 0, 0, 4);
  REQUIRE(big_copy.ok());
  CHECK(big_copy->narrow.small_index == 0);
  CHECK(big_copy->narrow.count == (int64_t{1} << 32));

  const Shape bad[] = {{3, 4}, {5}};
  CHECK_FALSE(plan_broadcast(bad, {3, 4}).ok());
}

TEST_CASE("broadcast plans address the same elements as numpy broadcasting", "[gpu_kernel_plan]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int rank = 1 + static_cast<int>(rng() % 5);
    Shape out, a, b;
    for (int d = 0; d < rank; ++d) out.push_back(1 + rng() % 4);
    for (int d = 0; d < rank; ++d) {
      a.push_back(rng() % 3 == 0 ? 1 : out[d]);
      b.push_back(rng() % 3 == 0 ? 1 : out[d]);
    }
    // Drop some leading dims of b (numpy right alignment).
    b.erase(b.begin(), b.begin() + static_cast<long>(rng() % (b.size() + 1)));
    const Shape ops[] = {a, b};
    auto p = plan_broadcast(ops, out);
    REQUIRE(p.ok());
    const std::vector<int64_t> sa = broadcast_strides_to(a, out), sb = broadcast_strides_to(b, out);
    const std::vector<int64_t> so = row_major_strides(out);
    for (int64_t i = 0; i < element_count(out); ++i) {
      int64_t ea = 0, eb = 0, rem = i;
      for (int d = 0; d < rank; ++d) {
        const int64_t idx = rem / so[d];
        rem %= so[d];
        ea += idx * sa[d];
        eb += idx * sb[d];
      }
      int64_t ga, gb;
      emulate_offsets(*p, i, &ga, &gb);
      INFO("a " << shape_string(a) << " b " << shape_string(b) << " out " << shape_string(out)
                << " mode " << p->mode << " i " << i);
      REQUIRE(ga == ea);
      REQUIRE(gb == eb);
    }
  }
}

TEST_CASE("strided copy plans widen to 16-byte units only where the layout allows", "[gpu_kernel_plan]") {
  // BERT head split [8,251,12,64] -> [8,12,251,64]: rows of 64 floats move as 16-byte units.
  const Shape in{8, 251, 12, 64};
  const std::vector<int64_t> s = row_major_strides(in);
  const Shape out{8, 12, 251, 64};
  auto plan = plan_strided_copy(out, {s[0], s[2], s[1], s[3]}, row_major_strides(out), 0, 0, 4);
  REQUIRE(plan.ok());
  CHECK(plan->wide_unit == 16);
  CHECK(plan->wide.rank == 4);
  CHECK(plan->wide.dims[3] == 16);
  CHECK(plan->narrow_unit == 4);

  // An odd inner length cannot widen.
  auto odd = plan_strided_copy({3, 5}, {5, 1}, {10, 1}, 0, 5, 4);
  REQUIRE(odd.ok());
  CHECK(odd->wide_unit == 4);
  // A contiguous copy merges to rank 1.
  auto flat = plan_strided_copy({4, 6}, {6, 1}, {6, 1}, 0, 0, 8);
  REQUIRE(flat.ok());
  CHECK(flat->wide.rank == 1);
  CHECK(flat->wide_unit == 16);
  CHECK_FALSE(plan_strided_copy({2}, {1}, {1}, 0, 0, 3).ok());
}

TEST_CASE("transpose and slice plans match the CPU reference (host emulation)", "[gpu_kernel_plan]") {
  struct Case {
    Shape shape;
    std::vector<int64_t> perm;
  };
  const Case cases[] = {{{2, 3, 4}, {2, 0, 1}}, {{4, 6, 3, 8}, {0, 2, 1, 3}},
                        {{5, 7}, {1, 0}},       {{2, 1, 3, 1, 4}, {4, 3, 2, 1, 0}},
                        {{3, 9, 2, 40}, {0, 2, 3, 1}}};
  for (const Case& c : cases) {
    const cpu::Tensor x = iota_tensor(DType::kFloat32, c.shape);
    cpu::Attributes attrs;
    *attrs.Add() = ints_attr("perm", c.perm);
    const cpu::Tensor* in[] = {&x};
    auto expected = cpu::run_op_allocating("Transpose", attrs, in, 1);
    REQUIRE(expected.ok());
    const Shape& out = (*expected)[0].shape();
    const std::vector<int64_t> s = row_major_strides(c.shape);
    std::vector<int64_t> in_strides;
    for (int64_t p : c.perm) in_strides.push_back(s[p]);
    auto plan = plan_strided_copy(out, in_strides, row_major_strides(out), 0, 0, 4);
    REQUIRE(plan.ok());
    INFO("transpose " << shape_string(c.shape) << " perm " << shape_string(c.perm));
    CHECK(run_copy(*plan, x, x.numel(), true) == as_floats((*expected)[0]));
    CHECK(run_copy(*plan, x, x.numel(), false) == as_floats((*expected)[0]));
    const TiledTransposePlan tiled = plan_tiled_transpose(c.shape, c.perm);
    if (tiled.ok) {
      std::vector<float> got(static_cast<size_t>(x.numel()), -1.0f);
      emulate_tiled(tiled.params, x.data<float>(), got.data());
      CHECK(got == as_floats((*expected)[0]));
    }
  }
  // BERT's key transpose [8,251,12,64] perm [0,2,3,1] takes the tiled kernel.
  const int64_t key_perm[] = {0, 2, 3, 1};
  const TiledTransposePlan key = plan_tiled_transpose({8, 251, 12, 64}, key_perm);
  CHECK(key.ok);
  CHECK(key.params.rank == 3);
  // The head split does not (its innermost dimension stays innermost).
  const int64_t split_perm[] = {0, 2, 1, 3};
  CHECK_FALSE(plan_tiled_transpose({8, 251, 12, 64}, split_perm).ok);
}

TEST_CASE("normalize_slice follows ONNX clamping, negative bounds and steps", "[gpu_kernel_plan]") {
  auto s = [](int64_t start, int64_t end, int64_t step, int64_t dim) {
    auto r = normalize_slice(start, end, step, dim);
    REQUIRE(r.ok());
    return std::pair<int64_t, int64_t>{r->start, r->count};
  };
  CHECK(s(0, 3, 1, 10) == std::pair<int64_t, int64_t>{0, 3});
  CHECK(s(-3, 100, 1, 10) == std::pair<int64_t, int64_t>{7, 3});
  CHECK(s(1, 10, 3, 10) == std::pair<int64_t, int64_t>{1, 3});
  CHECK(s(-1, -100, -1, 10) == std::pair<int64_t, int64_t>{9, 10});
  CHECK(s(8, 2, -2, 10) == std::pair<int64_t, int64_t>{8, 3});
  CHECK(s(5, 5, 1, 10).second == 0);
  CHECK(s(0, 4, 1, 0).second == 0);
  CHECK(s(100, 0, -1, 10) == std::pair<int64_t, int64_t>{9, 9});
  CHECK(s(0, std::numeric_limits<int64_t>::max(), 1, 7) == std::pair<int64_t, int64_t>{0, 7});
  CHECK_FALSE(normalize_slice(0, 1, 0, 5).ok());
}

TEST_CASE("reduction plans split kept and reduced dimensions", "[gpu_kernel_plan]") {
  // Mean over the last axis (decomposed LayerNorm): a warp per output, one reduced dim.
  auto last = plan_reduce({8, 251, 768}, {false, false, true});
  REQUIRE(last.ok());
  CHECK(last->mode == ReduceMode::kWarpPerOutput);
  CHECK(last->params.kept_rank == 1);
  CHECK(last->params.out_count == 8 * 251);
  CHECK(last->params.group == 768);
  // Over axes {0, 2} of [4, 5, 6]: kept dim 5 (stride 6), reduced dims 4 (30) and 6 (1).
  auto mid = plan_reduce({4, 5, 6}, {true, false, true});
  REQUIRE(mid.ok());
  CHECK(mid->params.kept_rank == 1);
  CHECK(mid->params.kept_strides[0] == 6);
  CHECK(mid->params.reduced_rank == 2);
  CHECK(mid->params.reduced_strides[0] == 30);
  CHECK(mid->params.reduced_strides[1] == 1);
  // Global average pool style: [N, C, H, W] over {2, 3} merges HW.
  auto hw = plan_reduce({2, 3, 7, 7}, {false, false, true, true});
  REQUIRE(hw.ok());
  CHECK(hw->params.reduced_rank == 1);
  CHECK(hw->params.group == 49);
  CHECK(hw->params.kept_rank == 1);
  // Over a short leading axis: a thread per output.
  auto lead = plan_reduce({16, 32}, {true, false});
  REQUIRE(lead.ok());
  CHECK(lead->mode == ReduceMode::kThreadPerOutput);
  CHECK(reduce_launch_shape(*lead).block == 256);
  CHECK(reduce_launch_shape(*lead).grid == 1);
  // A bias gradient (BERT's [8 x 251 tokens, 768] over the tokens): column tiles, 8 outputs a
  // block (96 blocks; 32-wide tiles would be 24, 108 of an H100's 132 SMs idle), 32 warps; the
  // FFN's 3072 outputs in 16-wide tiles (192 blocks: 32-wide would leave SMs idle, 8-wide
  // reads 32-byte pieces, which measured slower).
  auto bias = plan_reduce({8, 251, 768}, {true, true, false});
  REQUIRE(bias.ok());
  CHECK(bias->mode == ReduceMode::kColumnTiles);
  CHECK(bias->params.group == 8 * 251);
  CHECK(bias->params.tile_columns == 8);
  CHECK(reduce_launch_shape(*bias).block == 1024);
  CHECK(reduce_launch_shape(*bias).grid == 96);
  auto ffn = plan_reduce({2008, 3072}, {true, false});
  REQUIRE(ffn.ok());
  CHECK(ffn->params.tile_columns == 16);
  CHECK(reduce_launch_shape(*ffn).grid == 192);
  // Enough outputs for 132 blocks of 32: whole 128-byte rows.
  auto wide_tiles = plan_reduce({2008, 4224}, {true, false});
  REQUIRE(wide_tiles.ok());
  CHECK(wide_tiles->params.tile_columns == 32);
  CHECK(reduce_launch_shape(*wide_tiles).grid == 132);
  // A short group gets fewer warps per block (each lane ~8 elements: 32 rows a warp at width 8).
  auto short_group = plan_reduce({100, 9}, {true, false});
  REQUIRE(short_group.ok());
  CHECK(short_group->mode == ReduceMode::kColumnTiles);
  CHECK(short_group->params.tile_columns == 8);
  CHECK(reduce_launch_shape(*short_group).block == 32 * 4);
  // Many outputs fill the GPU with a thread each.
  auto wide = plan_reduce({64, 1 << 19}, {true, false});
  REQUIRE(wide.ok());
  CHECK(wide->mode == ReduceMode::kThreadPerOutput);
  // Everything: one output.
  auto all = plan_reduce({3, 4}, {true, true});
  REQUIRE(all.ok());
  CHECK(all->params.out_count == 1);
  CHECK(all->params.group == 12);
}

TEST_CASE("the kernel table covers every CPU reference op but the cuDNN/cuBLAS ones", "[gpu_kernel_plan]") {
  const std::set<std::string> dnn_ops = {"AttentionContext",
                                         "AttentionScores",
                                         "AveragePool",
                                         "BatchNormalization",
                                         "Conv",
                                         "FusedConv",
                                         "Gemm",
                                         "GlobalAveragePool",
                                         "GlobalMaxPool",
                                         "MatMul",
                                         "MatMulBias",
                                         "MatMulScale",
                                         "MatMulTransB",
                                         "MaxPool"};
  std::set<std::string> kernel_ops;
  const auto table = kernel_op_table();
  for (size_t i = 0; i < table.size(); ++i) {
    kernel_ops.emplace(table[i].op);
    if (i > 0) CHECK(table[i - 1].op < table[i].op);
  }
  for (const std::string& op : cpu::supported_ops()) {
    INFO(op);
    CHECK((kernel_ops.count(op) == 1) != (dnn_ops.count(op) == 1));
  }
  for (const std::string& op : kernel_ops) {
    INFO(op);
    CHECK(cpu::is_supported(op));
  }
}

}  // namespace
}  // namespace ps::models::gpu
