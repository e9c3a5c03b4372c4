// Our kernel ops on the GPU against the CPU reference (test-backend-ops style): random shapes,
// values, broadcasts and attributes, BERT's and Inception's real shapes, a tolerance per op
// family (exact for data movement and integers, 1e-6 relative for element-wise float math,
// 1e-5 for reductions, softmax and layer norm). Every case prints its worst error.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "models/cpu/ops.h"
#include "tests/models/cpu_ops_test_util.h"
#include "tests/models/gpu_op_check.h"
#include "tests/support/gpu.h"

namespace ps::models::gpu {
namespace {

using cpu::Tensor;
using testing::check_against_cpu;
using testing::random_tensor;
using testing::shared_runtime;

constexpr double kExact = 0.0;
constexpr double kElementwise = 1e-6;
constexpr double kRowwise = 1e-5;

using cpu::test::attr_f;
using cpu::test::attr_i;
using cpu::test::attr_ints;
using cpu::test::attr_s;
using cpu::test::attrs;

Tensor int64s(Shape shape, const std::vector<int64_t>& v) {
  auto t = Tensor::allocate(DType::kInt64, std::move(shape));
  REQUIRE(t.ok());
  Tensor x = std::move(t).value();
  REQUIRE(static_cast<int64_t>(v.size()) == x.numel());
  std::copy(v.begin(), v.end(), x.mutable_data<int64_t>());
  return x;
}
Tensor scalar_f32(float v) {
  auto t = Tensor::allocate(DType::kFloat32, {});
  REQUIRE(t.ok());
  Tensor x = std::move(t).value();
  x.mutable_data<float>()[0] = v;
  return x;
}

// The worst error seen per op over the whole run, printed by the last test case.
std::map<std::string, double>& worst_by_op() {
  static std::map<std::string, double> worst;
  return worst;
}

// Runs `op` on both sides and checks every output against `tolerance` (max relative error;
// integer/bool outputs must match exactly either way).
void check(const std::string& op, const cpu::Attributes& a, std::vector<const Tensor*> inputs,
           double tolerance, const std::string& what, size_t num_outputs = 1,
           std::initializer_list<size_t> weights = {}) {
  std::string shapes;
  for (const Tensor* t : inputs) shapes += t == nullptr ? " -" : " " + t->description();
  INFO(op << " (" << what << ") inputs" << shapes);
  auto result = check_against_cpu(shared_runtime(), Precision::kFp32, op, a, inputs, num_outputs, weights);
  if (!result.ok()) FAIL_CHECK(result.status().to_string());
  if (!result.ok()) return;
  for (size_t i = 0; i < result->errors.size(); ++i) {
    const testing::TensorError& e = result->errors[i];
    INFO("output " << i << ": " << result->description << "; max_rel " << e.max_rel << " max_abs "
                   << e.max_abs << " at " << e.worst_index << ", mismatches " << e.mismatches);
    CHECK(e.mismatches == 0);
    CHECK(e.max_rel <= tolerance);
  }
  double& worst = worst_by_op()[op];
  worst = std::max(worst, result->worst_rel());
}

Shape random_shape(std::mt19937& rng, int min_rank, int max_rank, int max_dim) {
  const int rank = min_rank + static_cast<int>(rng() % (max_rank - min_rank + 1));
  Shape s;
  for (int d = 0; d < rank; ++d) s.push_back(1 + static_cast<int64_t>(rng() % max_dim));
  return s;
}

// A shape that broadcasts to `out`: some dims set to 1, some leading dims dropped.
Shape broadcastable(std::mt19937& rng, const Shape& out) {
  Shape s;
  for (int64_t d : out) s.push_back(rng() % 3 == 0 ? 1 : d);
  s.erase(s.begin(), s.begin() + static_cast<long>(rng() % (s.size() + 1)));
  return s;
}

uint64_t seed_counter = 1;
Tensor rnd(DType d, Shape s, double lo = -1.0, double hi = 1.0) {
  return random_tensor(d, std::move(s), seed_counter++, lo, hi);
}

TEST_CASE("unary float ops match the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  struct Op {
    const char* name;
    double lo, hi;
  };
  const Op ops[] = {{"Relu", -4, 4},     {"Gelu", -6, 6},      {"Erf", -3, 3},
                    {"Sqrt", 0, 9},      {"Tanh", -5, 5},      {"Exp", -8, 8},
                    {"Log", 0.01, 50},   {"Neg", -4, 4},       {"Abs", -4, 4},
                    {"Sigmoid", -9, 9},  {"Reciprocal", 0.1, 8}, {"Floor", -9, 9},
                    {"Ceil", -9, 9},     {"Sin", -6, 6},       {"Cos", -6, 6}};
  std::mt19937 rng(11);
  for (const Op& op : ops) {
    for (int trial = 0; trial < 3; ++trial) {
      Tensor x = rnd(DType::kFloat32, random_shape(rng, 0, 4, 9), op.lo, op.hi);
      check(op.name, attrs(), {&x}, kElementwise, "random");
    }
  }
  // BERT's intermediate activation [8, 251, 3072] and an odd length (no vector path tail).
  Tensor big = rnd(DType::kFloat32, {8, 251, 3072}, -5, 5);
  check("Gelu", attrs(), {&big}, kElementwise, "BERT intermediate");
  check("Gelu", attrs({attr_s("approximate", "tanh")}), {&big}, kElementwise, "tanh form");
  Tensor odd = rnd(DType::kFloat32, {1001}, -3, 3);
  check("Tanh", attrs(), {&odd}, kElementwise, "odd length");
  check("LeakyRelu", attrs({attr_f("alpha", 0.2f)}), {&odd}, kElementwise, "alpha 0.2");
  check("LeakyRelu", attrs(), {&odd}, kElementwise, "default alpha");
}

TEST_CASE("integer unary ops and Clip match the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  for (DType d : {DType::kInt64, DType::kInt32, DType::kInt8}) {
    Tensor x = rnd(d, {5, 37}, -100, 100);
    for (const char* op : {"Neg", "Abs", "Relu"}) check(op, attrs(), {&x}, kExact, dtype_name(d));
  }
  Tensor x = rnd(DType::kFloat32, {4, 33, 7}, -3, 3);
  Tensor lo = scalar_f32(-0.5f), hi = scalar_f32(1.25f);
  check("Clip", attrs(), {&x, &lo, &hi}, kExact, "min and max", 1, {1, 2});
  check("Clip", attrs(), {&x, &lo}, kExact, "min only", 1, {1});
  check("Clip", attrs(), {&x, nullptr, &hi}, kExact, "max only", 1, {2});
  check("Clip", attrs(), {&x}, kExact, "no bounds");
  Tensor xi = rnd(DType::kInt64, {100}, -50, 50);
  Tensor ilo = int64s({}, {-7}), ihi = int64s({}, {20});
  check("Clip", attrs(), {&xi, &ilo, &ihi}, kExact, "int64", 1, {1, 2});
}

TEST_CASE("IsNaN, IsInf and Not match the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  Tensor x = rnd(DType::kFloat32, {3, 50});
  float* p = x.mutable_data<float>();
  for (int i = 0; i < 150; i += 7) p[i] = NAN;
  for (int i = 3; i < 150; i += 11) p[i] = INFINITY;
  for (int i = 5; i < 150; i += 13) p[i] = -INFINITY;
  check("IsNaN", attrs(), {&x}, kExact, "specials");
  check("IsInf", attrs(), {&x}, kExact, "both signs");
  check("IsInf", attrs({attr_i("detect_negative", 0)}), {&x}, kExact, "positive only");
  check("IsInf", attrs({attr_i("detect_positive", 0)}), {&x}, kExact, "negative only");
  Tensor b = rnd(DType::kBool, {7, 9});
  check("Not", attrs(), {&b}, kExact, "bool");
}

TEST_CASE("binary ops broadcast like the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  std::mt19937 rng(23);
  const char* float_ops[] = {"Add", "Sub", "Mul", "Div", "Equal", "Less", "LessOrEqual",
                             "Greater", "GreaterOrEqual"};
  for (int trial = 0; trial < 12; ++trial) {
    const Shape out = random_shape(rng, 1, 5, 6);
    Shape sa = broadcastable(rng, out), sb = broadcastable(rng, out);
    if (trial % 3 == 0) sa = out;  // the fast modes (same, scalar, row)
    for (const char* op : float_ops) {
      Tensor a = rnd(DType::kFloat32, sa, -2, 2);
      // Comparisons need ties: quantise to a few values.
      Tensor b = std::string(op) == "Div" ? rnd(DType::kFloat32, sb, 0.5, 3) : rnd(DType::kFloat32, sb, -2, 2);
      if (std::string(op) != "Div" && std::string(op) != "Add" && std::string(op) != "Sub" &&
          std::string(op) != "Mul") {
        for (Tensor* t : {&a, &b}) {
          for (int64_t i = 0; i < t->numel(); ++i) t->mutable_data<float>()[i] = std::round(t->data<float>()[i]);
        }
      }
      check(op, attrs(), {&a, &b}, kElementwise, shape_string(out));
    }
    for (DType d : {DType::kInt64, DType::kInt32}) {
      Tensor a = rnd(d, sa, -1000, 1000);
      Tensor b = rnd(d, sb, 1, 9);
      for (const char* op : {"Add", "Sub", "Mul", "Div", "Equal", "Less", "Greater"}) {
        check(op, attrs(), {&a, &b}, kExact, str_cat(dtype_name(d), shape_string(out)));
      }
      Tensor neg = rnd(d, sb, -9, -1);
      check("Div", attrs(), {&a, &neg}, kExact, "negative divisor");
    }
    Tensor p = rnd(DType::kBool, sa), q = rnd(DType::kBool, sb);
    for (const char* op : {"And", "Or", "Xor", "Equal"}) check(op, attrs(), {&p, &q}, kExact, "bool");
  }
  // Pow: float base with float and integer exponents, integer base.
  Tensor base = rnd(DType::kFloat32, {6, 40}, 0.1, 3);
  Tensor two = scalar_f32(2.0f);
  check("Pow", attrs(), {&base, &two}, kExact, "squared (BERT's decomposed LayerNorm)");
  Tensor fe = rnd(DType::kFloat32, {40}, -2, 2);
  check("Pow", attrs(), {&base, &fe}, kElementwise, "float exponent");
  Tensor ie = rnd(DType::kInt64, {6, 1}, -3, 4);
  check("Pow", attrs(), {&base, &ie}, kElementwise, "int64 exponent");
  Tensor ib = rnd(DType::kInt64, {6, 40}, -4, 4), iexp = rnd(DType::kInt64, {40}, 0, 6);
  check("Pow", attrs(), {&ib, &iexp}, kExact, "int64 base");

  // BERT's shapes: bias over the last dim, the attention mask, the score scaling.
  Tensor h = rnd(DType::kFloat32, {8, 251, 768}), bias = rnd(DType::kFloat32, {768});
  check("Add", attrs(), {&h, &bias}, kElementwise, "bias");
  Tensor h2 = rnd(DType::kFloat32, {8, 251, 768});
  check("Add", attrs(), {&h, &h2}, kElementwise, "residual");
  Tensor scores = rnd(DType::kFloat32, {8, 12, 251, 251}, -4, 4);
  Tensor mask = rnd(DType::kFloat32, {8, 1, 1, 251}, -10000, 0);
  check("Add", attrs(), {&scores, &mask}, kElementwise, "attention mask");
  Tensor scale = scalar_f32(8.0f);
  check("Div", attrs(), {&scores, &scale}, kElementwise, "score scaling");
  Tensor one = scalar_f32(1.0f);
  check("Sub", attrs(), {&one, &mask}, kElementwise, "1 - mask");
}

TEST_CASE("variadic Max, Min, Sum, Mean match the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  std::mt19937 rng(31);
  for (int n = 1; n <= 4; ++n) {
    const Shape out = random_shape(rng, 1, 4, 6);
    std::vector<Tensor> ts;
    for (int k = 0; k < n; ++k) ts.push_back(rnd(DType::kFloat32, k == 0 ? out : broadcastable(rng, out), -3, 3));
    std::vector<const Tensor*> in;
    for (const Tensor& t : ts) in.push_back(&t);
    for (const char* op : {"Max", "Min", "Sum", "Mean"}) check(op, attrs(), in, kElementwise, str_cat(n, " inputs"));
    std::vector<Tensor> is;
    for (int k = 0; k < n; ++k) is.push_back(rnd(DType::kInt64, broadcastable(rng, out), -99, 99));
    is[0] = rnd(DType::kInt64, out, -99, 99);
    std::vector<const Tensor*> iin;
    for (const Tensor& t : is) iin.push_back(&t);
    for (const char* op : {"Max", "Min"}) check(op, attrs(), iin, kExact, str_cat(n, " int64 inputs"));
  }
}

TEST_CASE("Where broadcasts three ways like the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  std::mt19937 rng(37);
  for (int trial = 0; trial < 8; ++trial) {
    const Shape out = random_shape(rng, 1, 4, 7);
    Tensor c = rnd(DType::kBool, trial % 2 ? out : broadcastable(rng, out));
    Tensor x = rnd(DType::kFloat32, broadcastable(rng, out));
    Tensor y = rnd(DType::kFloat32, out);
    check("Where", attrs(), {&c, &x, &y}, kExact, "float32");
    Tensor xi = rnd(DType::kInt64, out, -9, 9), yi = rnd(DType::kInt64, broadcastable(rng, out), -9, 9);
    check("Where", attrs(), {&c, &xi, &yi}, kExact, "int64");
    Tensor xb = rnd(DType::kBool, out), yb = rnd(DType::kBool, out);
    check("Where", attrs(), {&c, &xb, &yb}, kExact, "bool");
  }
}

TEST_CASE("Cast converts between every dtype like the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  const DType all[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64, DType::kInt64,
                       DType::kInt32,   DType::kInt8,    DType::kUInt8,    DType::kBool};
  for (DType from : all) {
    const bool floating = is_floating(from);
    Tensor x = from == DType::kUInt8 ? rnd(from, {257}, 0, 255)
               : from == DType::kInt8 ? rnd(from, {257}, -128, 127)
               : from == DType::kBool ? rnd(from, {257})
                                      : rnd(from, {257}, -70000, 70000);
    if (floating) {
      // Fractions, specials and values near the integer types' limits.
      auto set = [&](int64_t i, double v) {
        switch (from) {
          case DType::kFloat32: x.mutable_data<float>()[i] = static_cast<float>(v); break;
          case DType::kFloat64: x.mutable_data<double>()[i] = v; break;
          default: break;
        }
      };
      set(0, NAN);
      set(1, INFINITY);
      set(2, -INFINITY);
      set(3, 3e9);
      set(4, -3e9);
      set(5, 2.5);
      set(6, -2.5);
      set(7, 1e20);
      set(8, 65519.0);
      set(9, 65520.0);
    }
    for (DType to : all) {
      check("Cast", attrs({attr_i("to", dtype_to_onnx(to))}), {&x}, kExact,
            str_cat(dtype_name(from), " -> ", dtype_name(to)));
    }
  }
}

TEST_CASE("Transpose matches the CPU reference for random and BERT permutations", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  std::mt19937 rng(41);
  for (int trial = 0; trial < 16; ++trial) {
    const Shape s = random_shape(rng, 1, 6, trial % 2 ? 40 : 7);
    if (element_count(s) > 2'000'000) continue;
    std::vector<int64_t> perm(s.size());
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (DType d : {DType::kFloat32, DType::kInt64, DType::kUInt8, DType::kFloat16}) {
      Tensor x = rnd(d, s, -100, 100);
      check("Transpose", attrs({attr_ints("perm", perm)}), {&x}, kExact,
            str_cat(dtype_name(d), " perm ", shape_string(perm)));
    }
  }
  Tensor x = rnd(DType::kFloat32, {8, 251, 12, 64});
  check("Transpose", attrs({attr_ints("perm", {0, 2, 1, 3})}), {&x}, kExact, "BERT head split");
  check("Transpose", attrs({attr_ints("perm", {0, 2, 3, 1})}), {&x}, kExact, "BERT key transpose");
  Tensor y = rnd(DType::kFloat32, {8, 12, 251, 64});
  check("Transpose", attrs({attr_ints("perm", {0, 2, 1, 3})}), {&y}, kExact, "BERT head merge");
  check("Transpose", attrs({attr_ints("perm", {0, 1, 3, 2})}), {&y}, kExact, "last two dims");
  Tensor z = rnd(DType::kFloat32, {3, 4, 5});
  check("Transpose", attrs(), {&z}, kExact, "default (reversed) perm");
}

// fuse_head_projections' reads of a fused [B, S, 3 * hidden] product: query and value keep the
// head size innermost (strided, 16-byte units), key moves it (tiled), at odd column offsets too.
TEST_CASE("HeadSlice matches the CPU reference (BERT's query, key and value heads)",
          "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  Tensor p = rnd(DType::kFloat32, {8, 251, 3 * 768});
  for (const auto& [start, perm] : std::vector<std::pair<int64_t, std::vector<int64_t>>>{
           {0, {0, 2, 1, 3}}, {768, {0, 2, 3, 1}}, {1536, {0, 2, 1, 3}}}) {
    check("HeadSlice",
          attrs({attr_i("start", start), attr_i("size", 768), attr_i("heads", 12),
                 attr_ints("perm", perm)}),
          {&p}, kExact, str_cat("BERT-base columns from ", start, " perm ", shape_string(perm)));
  }
  for (DType d : {DType::kFloat32, DType::kInt64, DType::kUInt8}) {
    Tensor q = rnd(d, {3, 5, 29}, -100, 100);
    check("HeadSlice",
          attrs({attr_i("start", 3), attr_i("size", 24), attr_i("heads", 4),
                 attr_ints("perm", {2, 0, 3, 1})}),
          {&q}, kExact, str_cat(dtype_name(d), " columns 3..27, 4 heads"));
  }
}

TEST_CASE("Slice matches the CPU reference with negative bounds and steps", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  std::mt19937 rng(43);
  for (int trial = 0; trial < 20; ++trial) {
    const Shape s = random_shape(rng, 1, 4, 9);
    const int64_t rank = static_cast<int64_t>(s.size());
    std::vector<int64_t> starts, ends, axes, steps;
    for (int64_t d = 0; d < rank; ++d) {
      if (rng() % 3 == 0) continue;
      axes.push_back(rng() % 2 ? d : d - rank);
      starts.push_back(static_cast<int64_t>(rng() % 13) - 6);
      ends.push_back(rng() % 4 == 0 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(rng() % 13) - 6);
      steps.push_back(rng() % 3 == 0 ? -1 - static_cast<int64_t>(rng() % 2) : 1 + static_cast<int64_t>(rng() % 2));
    }
    if (axes.empty()) continue;
    const int64_t n = static_cast<int64_t>(axes.size());
    Tensor x = rnd(DType::kFloat32, s, -9, 9);
    Tensor ts = int64s({n}, starts), te = int64s({n}, ends), ta = int64s({n}, axes), tp = int64s({n}, steps);
    check("Slice", attrs(), {&x, &ts, &te, &ta, &tp}, kExact,
          str_cat("starts ", shape_string(starts), " ends ", shape_string(ends), " axes ",
                  shape_string(axes), " steps ", shape_string(steps)),
          1, {1, 2, 3, 4});
  }
  // BERT's pooler takes token 0: x[:, 0:1, :].
  Tensor h = rnd(DType::kFloat32, {8, 251, 768});
  Tensor s0 = int64s({1}, {0}), e1 = int64s({1}, {1}), a1 = int64s({1}, {1});
  check("Slice", attrs(), {&h, &s0, &e1, &a1}, kExact, "BERT token 0", 1, {1, 2, 3});
}

TEST_CASE("Concat and Split match the CPU reference (Inception's channel concat)", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  Tensor b1 = rnd(DType::kFloat32, {8, 64, 35, 35}), b2 = rnd(DType::kFloat32, {8, 64, 35, 35});
  Tensor b3 = rnd(DType::kFloat32, {8, 96, 35, 35}), b4 = rnd(DType::kFloat32, {8, 32, 35, 35});
  check("Concat", attrs({attr_i("axis", 1)}), {&b1, &b2, &b3, &b4}, kExact, "Inception mixed_5b");
  std::mt19937 rng(47);
  for (int trial = 0; trial < 10; ++trial) {
    Shape s = random_shape(rng, 1, 4, 6);
    const int64_t rank = static_cast<int64_t>(s.size());
    const int64_t axis = static_cast<int64_t>(rng() % rank);
    std::vector<Tensor> parts;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n; ++k) {
      Shape p = s;
      p[axis] = static_cast<int64_t>(rng() % 4);  // zero-length parts too
      parts.push_back(rnd(DType::kInt64, p, -99, 99));
    }
    std::vector<const Tensor*> in;
    for (const Tensor& t : parts) in.push_back(&t);
    check("Concat", attrs({attr_i("axis", trial % 2 ? axis : axis - rank)}), in, kExact,
          str_cat(n, " parts, axis ", axis));

    Tensor x = rnd(DType::kFloat32, s, -9, 9);
    const int64_t dim = s[axis];
    std::vector<int64_t> sizes;
    for (int64_t left = dim; left > 0;) {
      const int64_t take = std::min<int64_t>(left, 1 + static_cast<int64_t>(rng() % 3));
      sizes.push_back(take);
      left -= take;
    }
    Tensor split = int64s({static_cast<int64_t>(sizes.size())}, sizes);
    check("Split", attrs({attr_i("axis", axis)}), {&x, &split}, kExact,
          str_cat("split ", shape_string(sizes)), sizes.size(), {1});
    check("Split", attrs({attr_i("axis", axis), attr_ints("split", sizes)}), {&x}, kExact,
          "split attribute", sizes.size());
  }
  Tensor qkv = rnd(DType::kFloat32, {8, 251, 2304});
  check("Split", attrs({attr_i("axis", -1)}), {&qkv}, kExact, "equal thirds", 3);
}

TEST_CASE("Expand, Gather and the views match the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  Tensor x = rnd(DType::kFloat32, {3, 1, 5});
  Tensor shape = int64s({4}, {2, 3, 4, 5});
  check("Expand", attrs(), {&x, &shape}, kExact, "to [2,3,4,5]", 1, {1});
  Tensor mask = rnd(DType::kInt64, {8, 1, 1, 251}, 0, 1);
  Tensor mshape = int64s({4}, {8, 12, 251, 251});
  check("Expand", attrs(), {&mask, &mshape}, kExact, "attention mask", 1, {1});

  // Embeddings: int64 ids into a [1000, 768] table, negative ids count from the end.
  Tensor table = rnd(DType::kFloat32, {1000, 768});
  Tensor ids = rnd(DType::kInt64, {8, 251}, -1000, 999);
  check("Gather", attrs(), {&table, &ids}, kExact, "embedding lookup");
  Tensor ids32 = rnd(DType::kInt32, {13}, -1000, 999);
  check("Gather", attrs(), {&table, &ids32}, kExact, "int32 ids");
  Tensor data = rnd(DType::kFloat16, {4, 7, 3});
  Tensor idx = rnd(DType::kInt64, {2, 5}, -7, 6);
  check("Gather", attrs({attr_i("axis", 1)}), {&data, &idx}, kExact, "axis 1");
  Tensor scalar_idx = int64s({}, {2});
  check("Gather", attrs({attr_i("axis", -1)}), {&data, &scalar_idx}, kExact, "scalar index, last axis");

  Tensor v = rnd(DType::kFloat32, {2, 3, 4});
  Tensor target = int64s({2}, {6, -1});
  check("Reshape", attrs(), {&v, &target}, kExact, "copy", 1, {1});
  check("Flatten", attrs({attr_i("axis", 2)}), {&v}, kExact, "copy");
  Tensor u = rnd(DType::kFloat32, {2, 1, 4});
  Tensor ax = int64s({1}, {1});
  check("Squeeze", attrs(), {&u, &ax}, kExact, "copy", 1, {1});
  check("Unsqueeze", attrs(), {&v, &ax}, kExact, "copy", 1, {1});
  check("Identity", attrs(), {&v}, kExact, "copy");
  check("Dropout", attrs(), {&v}, kExact, "inference");
}

TEST_CASE("Gather writes zeros for out-of-range indices instead of reading out of bounds",
          "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  Tensor table = rnd(DType::kFloat32, {10, 8});
  Tensor ids = int64s({4}, {3, 10, -11, 9});
  const Tensor* in[] = {&table, &ids};
  const TensorSpec out[] = {TensorSpec{DType::kFloat32, {4, 8}}};
  auto run = testing::run_gpu_op(shared_runtime(), Precision::kFp32, "Gather", attrs(), in, out);
  REQUIRE(run.ok());
  const float* y = run->outputs[0].data<float>();
  for (int c = 0; c < 8; ++c) {
    CHECK(y[0 * 8 + c] == table.data<float>()[3 * 8 + c]);
    CHECK(y[1 * 8 + c] == 0.0f);
    CHECK(y[2 * 8 + c] == 0.0f);
    CHECK(y[3 * 8 + c] == table.data<float>()[9 * 8 + c]);
  }
}

TEST_CASE("Softmax, LogSoftmax and AddSoftmax match the CPU reference on every path",
          "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  Tensor scores = rnd(DType::kFloat32, {8, 12, 251, 251}, -8, 8);
  check("Softmax", attrs(), {&scores}, kRowwise, "BERT attention (warp per row)");
  struct Case {
    Shape shape;
    int64_t axis;
  };
  const Case cases[] = {{{4, 3000}, -1}, {{3, 5, 7}, 1}, {{6, 9}, 0}, {{5, 1}, -1},
                        {{2, 33}, 1},    {{7, 1024}, 1}, {{2, 1025}, 1}, {{4, 3, 2, 5}, 2}};
  for (const Case& c : cases) {
    Tensor x = rnd(DType::kFloat32, c.shape, -20, 20);
    for (const char* op : {"Softmax", "LogSoftmax"}) {
      check(op, attrs({attr_i("axis", c.axis)}), {&x}, kRowwise, str_cat("axis ", c.axis));
    }
  }
  // AddSoftmax (fuse_add_softmax): BERT's masks, training's [B, 1, S, S] (with -10000 entries)
  // and inference's [B, 1, 1, S]; a per-row mask; block rows.
  Tensor train_mask = rnd(DType::kFloat32, {8, 1, 251, 251}, -1, 1);
  for (int64_t i = 0; i < train_mask.numel(); i += 7)
    train_mask.mutable_data<float>()[i] = -10000.0f;
  check("AddSoftmax", attrs(), {&scores, &train_mask}, kRowwise, "BERT training mask");
  Tensor infer_mask = rnd(DType::kFloat32, {8, 1, 1, 251}, -1, 1);
  check("AddSoftmax", attrs(), {&scores, &infer_mask}, kRowwise, "BERT inference mask");
  Tensor row_mask = rnd(DType::kFloat32, {8, 12, 251, 1}, -1, 1);
  check("AddSoftmax", attrs(), {&scores, &row_mask}, kRowwise, "a value a row");
  Tensor wide = rnd(DType::kFloat32, {2, 3, 2500}, -20, 20),
         wide_mask = rnd(DType::kFloat32, {3, 1}, -5, 5);
  check("AddSoftmax", attrs(), {&wide, &wide_mask}, kRowwise, "block per row");
}

TEST_CASE("LayerNormalization matches the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  Tensor h = rnd(DType::kFloat32, {8, 251, 768}, -3, 5);
  Tensor gamma = rnd(DType::kFloat32, {768}, 0.5, 1.5), beta = rnd(DType::kFloat32, {768});
  check("LayerNormalization", attrs({attr_f("epsilon", 1e-12f)}), {&h, &gamma, &beta}, kRowwise, "BERT");
  check("LayerNormalization", attrs(), {&h, &gamma}, kRowwise, "no bias");
  check("LayerNormalization", attrs(), {&h, &gamma, &beta}, kRowwise, "mean and inv std dev", 3);
  Tensor x = rnd(DType::kFloat32, {4, 6, 40}, -2, 2);
  Tensor g2 = rnd(DType::kFloat32, {6, 40}), b2 = rnd(DType::kFloat32, {40});
  check("LayerNormalization", attrs({attr_i("axis", 1)}), {&x, &g2, &b2}, kRowwise, "axis 1", 3);
  Tensor wide = rnd(DType::kFloat32, {3, 2500});
  Tensor gw = rnd(DType::kFloat32, {2500}), bw = rnd(DType::kFloat32, {2500});
  check("LayerNormalization", attrs(), {&wide, &gw, &bw}, kRowwise, "block per row", 3);
  Tensor narrow = rnd(DType::kFloat32, {9, 5});
  Tensor gn = rnd(DType::kFloat32, {5});
  check("LayerNormalization", attrs({attr_i("axis", -1)}), {&narrow, &gn}, kRowwise, "short rows");
  // The residual Add joined (fuse_add_layernorm): warp rows (BERT) and block rows.
  Tensor r = rnd(DType::kFloat32, {8, 251, 768}, -3, 5);
  check("AddLayerNormalization", attrs({attr_f("epsilon", 1e-12f)}), {&h, &r, &gamma, &beta},
        kRowwise, "BERT, A + B");
  Tensor rw = rnd(DType::kFloat32, {3, 2500});
  check("AddLayerNormalization", attrs(), {&wide, &rw, &gw}, kRowwise, "A + B, block per row");
}

TEST_CASE("reductions match the CPU reference over random axes", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  std::mt19937 rng(53);
  const char* ops[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"};
  for (int trial = 0; trial < 10; ++trial) {
    const Shape s = random_shape(rng, 1, 4, 9);
    const int64_t rank = static_cast<int64_t>(s.size());
    std::vector<int64_t> axes;
    for (int64_t d = 0; d < rank; ++d) {
      if (rng() % 2) axes.push_back(rng() % 2 ? d : d - rank);
    }
    const int64_t keepdims = rng() % 2;
    for (const char* op : ops) {
      const bool prod = std::string(op) == "ReduceProd";
      Tensor x = rnd(DType::kFloat32, s, prod ? 0.5 : -3, prod ? 1.5 : 3);
      const std::string what = str_cat("axes ", shape_string(axes), " keepdims ", keepdims);
      check(op, attrs({attr_ints("axes", axes), attr_i("keepdims", keepdims)}), {&x}, kRowwise,
            what + (axes.empty() ? " (all)" : ""));
      if (!axes.empty()) {
        Tensor ta = int64s({static_cast<int64_t>(axes.size())}, axes);
        check(op, attrs({attr_i("keepdims", keepdims)}), {&x, &ta}, kRowwise, what + " as input", 1, {1});
      }
      Tensor xi = rnd(DType::kInt64, s, prod ? -2 : -1000, prod ? 2 : 1000);
      check(op, attrs({attr_ints("axes", axes), attr_i("keepdims", keepdims)}), {&xi}, kExact,
            what + " int64");
    }
  }
  Tensor h = rnd(DType::kFloat32, {8, 251, 768});
  check("ReduceMean", attrs({attr_ints("axes", {-1})}), {&h}, kRowwise, "BERT decomposed LayerNorm");
  Tensor img = rnd(DType::kFloat32, {8, 2048, 7, 7});
  check("ReduceMean", attrs({attr_ints("axes", {2, 3})}), {&img}, kRowwise, "global pool");
  check("ReduceSum", attrs({attr_ints("axes", {0})}), {&img}, kRowwise, "over the batch");
  Tensor x = rnd(DType::kFloat32, {3, 4});
  check("ReduceSum", attrs({attr_i("noop_with_empty_axes", 1)}), {&x}, kExact, "noop with empty axes");
}

TEST_CASE("Shape, Size, ConstantOfShape and Range match the CPU reference", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  Tensor x = rnd(DType::kFloat32, {2, 3, 4, 5});
  check("Shape", attrs(), {&x}, kExact, "all");
  check("Shape", attrs({attr_i("start", 1), attr_i("end", -1)}), {&x}, kExact, "start/end");
  check("Size", attrs(), {&x}, kExact, "size");
  Tensor shape = int64s({3}, {2, 3, 7});
  check("ConstantOfShape", attrs(), {&shape}, kExact, "default zero", 1, {0});
  check("ConstantOfShape", attrs({attr_f("value", 1.5f)}), {&shape}, kExact, "float", 1, {0});
  check("ConstantOfShape", attrs({attr_i("value", -7)}), {&shape}, kExact, "int", 1, {0});
  Tensor s = scalar_f32(-1.5f), l = scalar_f32(7.0f), d = scalar_f32(0.25f);
  check("Range", attrs(), {&s, &l, &d}, kExact, "float", 1, {0, 1, 2});
  Tensor is = int64s({}, {10}), il = int64s({}, {-20}), id = int64s({}, {-3});
  check("Range", attrs(), {&is, &il, &id}, kExact, "int64 descending", 1, {0, 1, 2});
}

TEST_CASE("kernel ops: worst relative error per op", "[gpu][gpu_kernel_ops]") {
  PS_REQUIRE_GPU();
  for (const auto& [op, worst] : worst_by_op()) {
    std::printf("gpu_kernel_ops worst max_rel %-20s %.3g\n", op.c_str(), worst);
  }
  std::fflush(stdout);
  SUCCEED();
}

}  // namespace
}  // namespace ps::models::gpu
