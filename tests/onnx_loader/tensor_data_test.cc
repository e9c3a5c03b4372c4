// TensorProto conversion: raw_data, typed fields, external data and its path checks, size
// guards, and the float16/bfloat16 conversions.
#include "onnx_loader/tensor_data.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>

#include "tests/onnx_loader/onnx_builder.h"
#include "tests/onnx_loader/temp_dir.h"

namespace ps::onnx_loader {
namespace {

using onnx::TensorProto;
using testing::TempDir;

TensorProto external(const std::string& name, std::vector<int64_t> dims,
                     const std::string& location, int64_t offset = -1, int64_t length = -1) {
  TensorProto t;
  t.set_name(name);
  t.set_data_type(TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  t.set_data_location(TensorProto::EXTERNAL);
  auto add = [&](const char* key, const std::string& value) {
    auto* entry = t.add_external_data();
    entry->set_key(key);
    entry->set_value(value);
  };
  add("location", location);
  if (offset >= 0) add("offset", std::to_string(offset));
  if (length >= 0) add("length", std::to_string(length));
  return t;
}

std::string float_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

TEST_CASE("raw_data is copied and checked against the dims", "[tensor]") {
  auto t = tensor_from_onnx(testing::floats("w", {2, 2}, {1, 2, 3, 4}), {});
  REQUIRE(t.ok());
  CHECK(t->dtype == DType::kFloat32);
  CHECK(t->shape == Shape{2, 2});
  CHECK(std::vector<float>(t->as<float>().begin(), t->as<float>().end()) ==
        std::vector<float>{1, 2, 3, 4});

  TensorProto bad = testing::floats("w", {2, 3}, {1, 2, 3, 4});
  auto e = tensor_from_onnx(bad, {});
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().code() == Code::kCorrupt);
  CHECK_THAT(e.status().message(), Catch::Contains("tensor 'w': raw_data has 16 bytes"));
}

TEST_CASE("typed fields of every supported dtype", "[tensor]") {
  TensorProto f;
  f.set_data_type(TensorProto::FLOAT);
  f.add_dims(3);
  for (float v : {1.5f, -2.f, 0.25f}) f.add_float_data(v);
  auto tf = tensor_from_onnx(f, {});
  REQUIRE(tf.ok());
  CHECK(tf->as<float>()[1] == -2.f);

  TensorProto i64;
  i64.set_data_type(TensorProto::INT64);
  i64.add_dims(2);
  i64.add_int64_data(-7);
  i64.add_int64_data(int64_t{1} << 40);
  auto ti = tensor_from_onnx(i64, {});
  REQUIRE(ti.ok());
  CHECK(ti->as<int64_t>()[1] == int64_t{1} << 40);

  TensorProto d;
  d.set_data_type(TensorProto::DOUBLE);
  d.add_double_data(3.25);  // a scalar: no dims
  auto td = tensor_from_onnx(d, {});
  REQUIRE(td.ok());
  CHECK(td->shape.empty());
  CHECK(td->as<double>()[0] == 3.25);

  TensorProto b;
  b.set_data_type(TensorProto::BOOL);
  b.add_dims(3);
  for (int v : {1, 0, 1}) b.add_int32_data(v);
  auto tb = tensor_from_onnx(b, {});
  REQUIRE(tb.ok());
  CHECK(tb->bytes == std::vector<uint8_t>{1, 0, 1});

  TensorProto h;  // float16 bit patterns in int32_data
  h.set_data_type(TensorProto::FLOAT16);
  h.add_dims(2);
  h.add_int32_data(0x3c00);  // 1.0
  h.add_int32_data(0xc000);  // -2.0
  auto th = tensor_from_onnx(h, {});
  REQUIRE(th.ok());
  CHECK(float16_to_float(th->as<uint16_t>()[0]) == 1.0f);
  CHECK(float16_to_float(th->as<uint16_t>()[1]) == -2.0f);

  TensorProto i8;
  i8.set_data_type(TensorProto::INT8);
  i8.add_dims(2);
  i8.add_int32_data(-5);
  i8.add_int32_data(100);
  auto t8 = tensor_from_onnx(i8, {});
  REQUIRE(t8.ok());
  CHECK(t8->as<int8_t>()[0] == -5);

  TensorProto short_field;
  short_field.set_name("s");
  short_field.set_data_type(TensorProto::INT64);
  short_field.add_dims(3);
  short_field.add_int64_data(1);
  auto ts = tensor_from_onnx(short_field, {});
  REQUIRE_FALSE(ts.ok());
  CHECK_THAT(ts.status().message(),
             Catch::Contains("int64_data holds 1 values but dims [3] need 3"));
}

TEST_CASE("unsupported dtypes and absurd sizes are refused with the tensor's name", "[tensor]") {
  TensorProto s;
  s.set_name("names");
  s.set_data_type(TensorProto::STRING);
  auto ts = tensor_from_onnx(s, {});
  REQUIRE_FALSE(ts.ok());
  CHECK(ts.status().code() == Code::kUnsupported);
  CHECK_THAT(ts.status().message(), Catch::Contains("'names'") && Catch::Contains("STRING"));

  TensorProto huge;
  huge.set_name("huge");
  huge.set_data_type(TensorProto::FLOAT);
  huge.add_dims(1000000);
  huge.add_dims(1000000);
  auto th = tensor_from_onnx(huge, {});
  REQUIRE_FALSE(th.ok());
  CHECK(th.status().code() == Code::kResourceExhausted);
  CHECK_THAT(th.status().message(), Catch::Contains("huge") && Catch::Contains("exceeds"));

  // Overflowing products are caught before they wrap.
  const int64_t big = int64_t{1} << 40;
  CHECK(check_tensor_size({big, big, big}, DType::kFloat32, ~uint64_t{0}, "t").code() ==
        Code::kResourceExhausted);
  CHECK(check_tensor_size({big, 0, big}, DType::kFloat32, 16, "t").ok());  // empty
  CHECK(check_tensor_size({2, -1}, DType::kFloat32, 16, "t").code() == Code::kInvalidArgument);
  CHECK(check_tensor_size({2, 2}, DType::kFloat32, 16, "t").ok());
  CHECK_FALSE(check_tensor_size({2, 3}, DType::kFloat32, 16, "t").ok());
}

TEST_CASE("external data is read from below the base folder", "[tensor]") {
  TempDir dir;
  const std::vector<float> all = {0, 1, 2, 3, 4, 5, 6, 7};
  dir.write("weights.bin", float_bytes(all));
  dir.write("sub/more.bin", float_bytes({9, 8}));
  TensorReadOptions options{dir.path().string(), kDefaultMaxTensorBytes};

  auto whole = tensor_from_onnx(external("w", {2, 4}, "weights.bin"), options);
  REQUIRE(whole.ok());
  CHECK(whole->as<float>()[7] == 7.f);

  auto part = tensor_from_onnx(external("w", {3}, "weights.bin", 8, 12), options);
  REQUIRE(part.ok());
  CHECK(std::vector<float>(part->as<float>().begin(), part->as<float>().end()) ==
        std::vector<float>{2, 3, 4});

  auto nested = tensor_from_onnx(external("w", {2}, "sub/more.bin"), options);
  REQUIRE(nested.ok());
  CHECK(nested->as<float>()[0] == 9.f);
  auto dotted = tensor_from_onnx(external("w", {2}, "sub/../sub/more.bin"), options);
  CHECK(dotted.ok());
}

TEST_CASE("external data errors name the tensor and the cause", "[tensor]") {
  TempDir dir;
  dir.write("base/weights.bin", float_bytes({0, 1, 2, 3}));
  dir.write("secret.bin", float_bytes({0, 1, 2, 3}));
  const std::string base = dir.file("base");
  TensorReadOptions options{base, kDefaultMaxTensorBytes};

  auto expect = [&](const TensorProto& t, Code code, const std::string& text) {
    auto r = tensor_from_onnx(t, options);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == code);
    CHECK_THAT(r.status().message(), Catch::Contains(text));
    CHECK_THAT(r.status().message(), Catch::Contains("'w'"));
  };
  expect(external("w", {4}, "missing.bin"), Code::kNotFound, "does not exist");
  expect(external("w", {4}, "../secret.bin"), Code::kPermissionDenied, "leaves the model's folder");
  expect(external("w", {4}, "sub/../../secret.bin"), Code::kPermissionDenied, "leaves");
  expect(external("w", {4}, dir.file("secret.bin")), Code::kPermissionDenied,
         "must be a path relative");
  expect(external("w", {8}, "weights.bin"), Code::kCorrupt, "the file has 16 bytes");
  expect(external("w", {2}, "weights.bin", 12), Code::kCorrupt, "needs bytes [12, 20)");
  expect(external("w", {4}, "weights.bin", 0, 12), Code::kCorrupt, "length 12");

  // A symbolic link inside the folder that leads out of it.
  std::filesystem::create_symlink(dir.file("secret.bin"), dir.file("base/link.bin"));
  expect(external("w", {4}, "link.bin"), Code::kPermissionDenied, "outside");

  TensorProto bad_offset = external("w", {4}, "weights.bin");
  auto* entry = bad_offset.add_external_data();
  entry->set_key("offset");
  entry->set_value("12abc");
  expect(bad_offset, Code::kCorrupt, "offset '12abc'");

  TensorProto no_location = external("w", {4}, "weights.bin");
  no_location.mutable_external_data(0)->set_key("where");
  expect(no_location, Code::kCorrupt, "without a 'location'");

  auto no_base = tensor_from_onnx(external("w", {4}, "weights.bin"), TensorReadOptions{});
  REQUIRE_FALSE(no_base.ok());
  CHECK_THAT(no_base.status().message(), Catch::Contains("base_dir"));
}

TEST_CASE("tensor_to_onnx and read_tensor_file round-trip", "[tensor]") {
  TempDir dir;
  TensorData data;
  data.dtype = DType::kInt32;
  data.shape = {3};
  data.bytes.resize(12);
  const int32_t values[] = {-1, 0, 65536};
  std::memcpy(data.bytes.data(), values, 12);
  TensorProto proto;
  tensor_to_onnx(data, &proto);
  const std::string path = dir.write("t.pb", proto.SerializeAsString());
  auto back = read_tensor_file(path);
  REQUIRE(back.ok());
  CHECK(back->dtype == DType::kInt32);
  CHECK(back->shape == data.shape);
  CHECK(back->bytes == data.bytes);

  dir.write("junk.pb", std::string("\xff\xff\xff\xff garbage"));
  CHECK_FALSE(read_tensor_file(dir.file("junk.pb")).ok());
  CHECK(read_tensor_file(dir.file("none.pb")).status().code() == Code::kNotFound);
}

TEST_CASE("float16 and bfloat16 conversions round to nearest even", "[tensor]") {
  // Every half converts to float and back unchanged (NaNs stay NaNs).
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float f = float16_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(f)) {
      CHECK(std::isnan(float16_to_float(float_to_float16(f))));
    } else if (float_to_float16(f) != bits) {
      FAIL("half " << bits << " -> " << f << " -> " << float_to_float16(f));
    }
  }
  CHECK(float16_to_float(0x0001) == std::ldexp(1.0f, -24));             // smallest subnormal
  CHECK(float16_to_float(0x7bff) == 65504.0f);                          // largest normal
  CHECK(float_to_float16(65519.0f) == 0x7bff);                          // rounds down to the largest
  CHECK(float_to_float16(65520.0f) == 0x7c00);                          // rounds up to infinity
  CHECK(float_to_float16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);      // tie: to even (down)
  CHECK(float_to_float16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie: to even (up)
  CHECK(float_to_float16(std::ldexp(1.0f, -25)) == 0x0000);  // tie between 0 and 2^-24: even
  CHECK(float_to_float16(std::ldexp(3.0f, -26)) == 0x0001);  // above the tie
  CHECK(float_to_float16(-0.0f) == 0x8000);
  CHECK(float_to_float16(std::numeric_limits<float>::infinity()) == 0x7c00);

  CHECK(bfloat16_to_float(0x3f80) == 1.0f);
  CHECK(float_to_bfloat16(1.0f) == 0x3f80);
  CHECK(float_to_bfloat16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // tie: to even
  CHECK(float_to_bfloat16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // tie: to even
  CHECK(std::isnan(bfloat16_to_float(float_to_bfloat16(std::nanf("")))));
}

}  // namespace
}  // namespace ps::onnx_loader
