// test_cpu_ops: the tensor type, dtype conversions and the dispatcher's error handling.
#include <bit>
#include <cmath>
#include <limits>
#include <string_view>

#include "tests/models/cpu_ops_test_util.h"

namespace ps::models::cpu::test {
namespace {

namespace psm = pipeswitch::psm;

TEST_CASE("Tensor allocate, borrow, reshape, clone", "[cpu_ops]") {
  Result<Tensor> t = Tensor::allocate(DType::kFloat32, {2, 3});
  REQUIRE(t.ok());
  CHECK(t->numel() == 6);
  CHECK(t->byte_size() == 24);
  CHECK(t->owns_data());
  CHECK(t->description() == "float32[2,3]");
  CHECK(values<float>(*t) == std::vector<float>(6, 0.0f));
  CHECK(reinterpret_cast<uintptr_t>(t->raw()) % 64 == 0);

  t->mutable_data<float>()[4] = 7;
  Result<Tensor> r = t->reshaped({3, 2});
  REQUIRE(r.ok());
  CHECK_FALSE(r->owns_data());
  CHECK(r->read_only());
  CHECK(r->raw() == t->raw());
  CHECK(r->data<float>()[4] == 7);
  CHECK(t->reshaped({4, 2}).status().code() == Code::kInvalidArgument);

  Result<Tensor> c = t->clone();
  REQUIRE(c.ok());
  CHECK(c->raw() != t->raw());
  CHECK(values<float>(*c) == values<float>(*t));

  Tensor moved = std::move(*t);
  CHECK(moved.numel() == 6);
  CHECK(t->numel() == 0);  // NOLINT(bugprone-use-after-move): moved-from state is defined

  int64_t storage[2] = {5, 6};
  Tensor b = Tensor::borrow(DType::kInt64, {2}, storage);
  CHECK_FALSE(b.read_only());
  b.mutable_data<int64_t>()[1] = 9;
  CHECK(storage[1] == 9);
  const int64_t fixed[1] = {3};
  CHECK(Tensor::borrow(DType::kInt64, {}, fixed).read_only());
}

TEST_CASE("Tensor::allocate refuses bad shapes and dtypes", "[cpu_ops]") {
  CHECK(Tensor::allocate(DType::kFloat32, {2, -1}).status().code() == Code::kInvalidArgument);
  CHECK(Tensor::allocate(DType::kUndefined, {2}).status().code() == Code::kInvalidArgument);
  CHECK(Tensor::allocate(DType::kFloat32, {1LL << 40, 1LL << 40}).status().code() ==
        Code::kInvalidArgument);
  Result<Tensor> empty = Tensor::allocate(DType::kFloat32, {0, 5});
  REQUIRE(empty.ok());
  CHECK(empty->numel() == 0);
  CHECK(Tensor::from_values<float>({2}, {1.0f, 2.0f, 3.0f}).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("shape helpers: strides and numpy broadcasting", "[cpu_ops]") {
  CHECK(contiguous_strides({2, 3, 4}) == std::vector<int64_t>{12, 4, 1});
  CHECK(element_count({}) == 1);
  CHECK(shape_string({}) == "[]");
  CHECK(*broadcast_shapes({3, 1}, {1, 4}) == Shape{3, 4});
  CHECK(*broadcast_shapes({}, {2, 2}) == Shape{2, 2});
  CHECK(*broadcast_shapes({2, 1, 3}, {4, 1}) == Shape{2, 4, 3});
  CHECK(*broadcast_shapes({0, 3}, {1, 3}) == Shape{0, 3});
  Result<Shape> bad = broadcast_shapes({2, 3}, {3, 2});
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("[2,3]") && Catch::Contains("[3,2]"));
  CHECK(broadcast_strides({3, 1}, {2, 3, 4}) == std::vector<int64_t>{0, 1, 0});
  CHECK(*normalize_axis(-1, 3) == 2);
  CHECK_FALSE(normalize_axis(3, 3).ok());
}

TEST_CASE("dtype conversions with the manifest and ONNX enums", "[cpu_ops]") {
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64,
                  DType::kInt64, DType::kInt32, DType::kInt8, DType::kUInt8, DType::kBool}) {
    Result<DType> back = dtype_from_psm(dtype_to_psm(d));
    REQUIRE(back.ok());
    CHECK(*back == d);
    Result<DType> onnx_back = dtype_from_onnx(dtype_to_onnx(d));
    REQUIRE(onnx_back.ok());
    CHECK(*onnx_back == d);
  }
  CHECK_FALSE(dtype_from_psm(psm::DT_UNDEFINED).ok());
  Result<DType> str = dtype_from_onnx(8);
  CHECK(str.status().code() == Code::kUnsupported);
  CHECK_THAT(str.status().message(), Catch::Contains("STRING"));
  CHECK(dtype_size(DType::kBFloat16) == 2);
  CHECK(std::string_view(dtype_name(DType::kUInt8)) == "uint8");
}

TEST_CASE("float16 conversion rounds to nearest even", "[cpu_ops]") {
  CHECK(float_to_float16(1.0f) == 0x3c00);
  CHECK(float_to_float16(-2.0f) == 0xc000);
  CHECK(float_to_float16(1.0f + 0x1p-11f) == 0x3c00);             // tie -> even (down)
  CHECK(float_to_float16(1.0f + 3 * 0x1p-11f) == 0x3c02);         // tie -> even (up)
  CHECK(float_to_float16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01);  // above the tie
  CHECK(float_to_float16(0x1p-24f) == 0x0001);                    // smallest subnormal
  CHECK(float_to_float16(0x1p-25f) == 0x0000);                    // tie -> even zero
  CHECK(float_to_float16(3 * 0x1p-25f) == 0x0002);                // tie -> even
  CHECK(float_to_float16(0x1p-14f) == 0x0400);                    // smallest normal
  CHECK(float_to_float16(65504.0f) == 0x7bff);
  CHECK(float_to_float16(65519.0f) == 0x7bff);
  CHECK(float_to_float16(65520.0f) == 0x7c00);
  CHECK(float_to_float16(-INFINITY) == 0xfc00);
  const uint16_t nan = float_to_float16(NAN);
  CHECK((nan & 0x7c00) == 0x7c00);
  CHECK((nan & 0x03ff) != 0);
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {  // every finite half survives a round trip
    if ((bits & 0x7c00) == 0x7c00) continue;
    const auto h = static_cast<uint16_t>(bits);
    REQUIRE(float_to_float16(float16_to_float(h)) == h);
  }
  CHECK(float16_to_float(0x0001) == 0x1p-24f);
  CHECK(std::isinf(float16_to_float(0x7c00)));
  CHECK(std::isnan(float16_to_float(0x7e00)));
}

TEST_CASE("bfloat16 conversion rounds to nearest even", "[cpu_ops]") {
  CHECK(float_to_bfloat16(1.0f) == 0x3f80);
  CHECK(float_to_bfloat16(1.0f + 0x1p-8f) == 0x3f80);      // tie -> even (down)
  CHECK(float_to_bfloat16(1.0f + 3 * 0x1p-8f) == 0x3f82);  // tie -> even (up); truncation: 0x3f81
  CHECK(float_to_bfloat16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds to inf
  CHECK(std::isnan(bfloat16_to_float(float_to_bfloat16(NAN))));
  CHECK(bfloat16_to_float(0x4049) == 3.140625f);
}

TEST_CASE("Cast converts between every pair of dtypes", "[cpu_ops]") {
  SECTION("float to integers truncates toward zero and saturates; NaN becomes 0") {
    Tensor x = floats({6}, {2.9f, -2.9f, 300.0f, -300.0f, NAN, 0.0f});
    Tensor y = zeros(DType::kInt8, {6});
    REQUIRE(run("Cast", attrs({attr_i("to", 3)}), {&x}, {&y}).ok());
    CHECK(values<int8_t>(y) == std::vector<int8_t>{2, -2, 127, -128, 0, 0});
    Tensor b = zeros(DType::kBool, {6});
    REQUIRE(run("Cast", attrs({attr_i("to", 9)}), {&x}, {&b}).ok());
    CHECK(values<bool>(b) == std::vector<bool>{true, true, true, true, true, false});
  }
  SECTION("int64 to int32 wraps; bool to float is 0/1") {
    Tensor x = make<int64_t>({2}, {(1LL << 32) + 5, -1});
    Tensor y = zeros(DType::kInt32, {2});
    REQUIRE(run("Cast", attrs({attr_i("to", 6)}), {&x}, {&y}).ok());
    CHECK(values<int32_t>(y) == std::vector<int32_t>{5, -1});
    Tensor b = make<bool>({2}, {true, false});
    Tensor f = zeros(DType::kFloat32, {2});
    REQUIRE(run("Cast", attrs({attr_i("to", 1)}), {&b}, {&f}).ok());
    CHECK(values<float>(f) == std::vector<float>{1.0f, 0.0f});
  }
  SECTION("double to float16 rounds once (no double rounding through float)") {
    // 1 + 2^-11 + 2^-40 is just above a float16 tie; rounding it to float first would land on
    // the tie and then round down to 1.0.
    Tensor x = make<double>({1}, {1.0 + 0x1p-11 + 0x1p-40});
    Tensor y = zeros(DType::kFloat16, {1});
    REQUIRE(run("Cast", attrs({attr_i("to", 10)}), {&x}, {&y}).ok());
    CHECK(y.data<Float16>()[0].bits == 0x3c01);
  }
  SECTION("a `to` that disagrees with the output dtype is an error") {
    Tensor x = floats({1}, {1.0f});
    Tensor y = zeros(DType::kFloat32, {1});
    Status s = run("Cast", attrs({attr_i("to", 7)}), {&x}, {&y});
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("Cast") && Catch::Contains("int64"));
    CHECK(run("Cast", attrs({attr_i("to", 8)}), {&x}, {&y}).code() == Code::kUnsupported);
  }
}

TEST_CASE("the dispatcher lists its ops and names errors", "[cpu_ops]") {
  const std::vector<std::string> ops = supported_ops();
  CHECK(std::is_sorted(ops.begin(), ops.end()));
  for (const char* op :
       {"Conv", "FusedConv", "MatMulBias", "MatMulScale", "MatMulTransB", "AddLayerNormalization",
        "Gelu", "LayerNormalization", "Dropout", "GlobalAveragePool", "Range", "ConstantOfShape"}) {
    CHECK(is_supported(op));
  }
  CHECK_FALSE(is_supported("LSTM"));

  Tensor x = floats({2}, {1, 2});
  Tensor y = zeros(DType::kFloat32, {2});
  Status unknown = run("LSTM", attrs(), {&x}, {&y});
  CHECK(unknown.code() == Code::kUnsupported);
  CHECK_THAT(unknown.message(), Catch::Contains("LSTM"));

  Status extra_attr = run("Relu", attrs({attr_i("alpha", 1)}), {&x}, {&y});
  CHECK(extra_attr.code() == Code::kUnsupported);
  CHECK_THAT(extra_attr.message(), Catch::StartsWith("Relu: ") && Catch::Contains("'alpha'"));

  Status wrong_kind = run("LeakyRelu", attrs({attr_i("alpha", 1)}), {&x}, {&y});
  CHECK_THAT(wrong_kind.message(), Catch::Contains("'alpha' is int, expected float"));

  // A required attribute that is absent is named (OpContext::require_attrs).
  Status no_to = run("Cast", attrs(), {&x}, {&y});
  CHECK(no_to.code() == Code::kInvalidArgument);
  CHECK_THAT(no_to.message(),
             Catch::StartsWith("Cast: ") && Catch::Contains("attribute 'to' is required"));
  Status no_axis = run("Concat", attrs(), {&x, &x}, {&y});
  CHECK(no_axis.code() == Code::kInvalidArgument);
  CHECK_THAT(no_axis.message(), Catch::Contains("attribute 'axis' is required"));

  Status missing = run("Add", attrs(), {&x, nullptr}, {&y});
  CHECK(missing.code() == Code::kInvalidArgument);
  CHECK_THAT(missing.message(), Catch::Contains("input 1 is missing"));

  Status too_many = run("Relu", attrs(), {&x, &x}, {&y});
  CHECK_THAT(too_many.message(), Catch::Contains("2 inputs given, at most 1"));

  Status no_output = run("Relu", attrs(), {&x}, {nullptr});
  CHECK_THAT(no_output.message(), Catch::Contains("output 0 is missing"));

  Tensor wrong_shape = zeros(DType::kFloat32, {3});
  Status shape = run("Relu", attrs(), {&x}, {&wrong_shape});
  CHECK_THAT(shape.message(), Catch::Contains("float32[3], expected float32[2]"));

  Tensor ints = zeros(DType::kInt64, {2});
  Tensor ints_out = zeros(DType::kInt64, {2});
  Status dtype = run("Erf", attrs(), {&ints}, {&ints_out});
  CHECK(dtype.code() == Code::kUnsupported);
  CHECK_THAT(dtype.message(), Catch::Contains("Erf") && Catch::Contains("int64"));

  const float fixed[2] = {0, 0};
  Tensor read_only = Tensor::borrow(DType::kFloat32, {2}, fixed);
  CHECK_THAT(run("Relu", attrs(), {&x}, {&read_only}).message(), Catch::Contains("read-only"));
}

}  // namespace
}  // namespace ps::models::cpu::test
