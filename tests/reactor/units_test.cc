// Small pieces of the reactor: listen addresses, latency percentiles, synthetic inputs, output
// summaries, batch rules, the backend factory.
#include <catch2/catch.hpp>
#include <cstring>

#include "net/text_reply.h"
#include "reactor/address.h"
#include "reactor/backend_factory.h"
#include "reactor/latency_window.h"
#include "reactor/output_summary.h"
#include "reactor/synthetic_input.h"
#include "tests/reactor/fake_backend.h"

namespace ps::reactor {
namespace {

TEST_CASE("address: forms, loopback, errors", "[address]") {
  auto a = parse_listen_address("127.0.0.1:0");
  REQUIRE(a.ok());
  CHECK(a->port == 0);
  CHECK(a->is_loopback());
  auto b = parse_listen_address("[::1]:12345");
  REQUIRE(b.ok());
  CHECK(b->is_ipv6());
  CHECK(b->is_loopback());
  auto c = parse_listen_address("8080");
  REQUIRE(c.ok());
  CHECK(c->host == "127.0.0.1");
  CHECK(c->port == 8080);
  CHECK(parse_listen_address("localhost:1")->is_loopback());
  CHECK_FALSE(parse_listen_address("0.0.0.0:1")->is_loopback());
  CHECK_FALSE(parse_listen_address("[::]:1")->is_loopback());
  CHECK(parse_listen_address("127.0.0.1:65536").status().code() == Code::kInvalidArgument);
  CHECK(parse_listen_address("example.com:1").status().code() == Code::kInvalidArgument);
  CHECK(parse_listen_address("::1:80").status().message().find("brackets") != std::string::npos);
  CHECK(parse_listen_address("1.2.3.4:").status().code() == Code::kInvalidArgument);
}

TEST_CASE("latency window: nearest-rank percentiles over the recent samples", "[stats]") {
  LatencyWindow w(100);
  CHECK(w.percentile(0.5) == 0);
  for (uint64_t i = 1; i <= 100; ++i) w.add(i);
  CHECK(w.percentile(0.5) == 50);
  CHECK(w.percentile(0.99) == 99);
  CHECK(w.percentile(1.0) == 100);
  CHECK(w.percentile(0.0) == 1);
  for (int i = 0; i < 100; ++i) w.add(1000);  // the window forgets the old samples
  CHECK(w.percentile(0.5) == 1000);
  CHECK(w.count() == 200);
  CHECK(w.sum_us() == 5050 + 100000);
}

TEST_CASE("synthetic input: deterministic, sized, bounded", "[synthetic]") {
  ModelInfo m;
  m.name = "bert";
  m.batch = 2;
  m.inputs = {{"ids", DType::kInt64, {2, 5}, 7},
              {"types", DType::kInt64, {2, 5}, 0},
              {"x", DType::kFloat32, {2, 3}}};
  const std::string a = synthetic_input(m, 4);
  CHECK(a.size() == input_bytes(m, 4));
  CHECK(a.size() == 4 * 5 * 8 * 2 + 4 * 3 * 4);
  CHECK(a == synthetic_input(m, 4));
  CHECK(a != synthetic_input(m, 2) + synthetic_input(m, 2));  // seeded by the batch too
  ModelInfo other = m;
  other.name = "bert2";
  CHECK(a != synthetic_input(other, 4));
  for (int i = 0; i < 20; ++i) {
    int64_t id, type;
    std::memcpy(&id, a.data() + i * 8, 8);
    std::memcpy(&type, a.data() + 160 + i * 8, 8);
    CHECK(id >= 0);
    CHECK(id < 7);
    CHECK((type == 0 || type == 1));
  }
  for (int i = 0; i < 12; ++i) {
    float f;
    std::memcpy(&f, a.data() + 320 + i * 4, 4);
    CHECK(f >= -1.0f);
    CHECK(f < 1.0f);
  }
}

TEST_CASE("output summary: XXH64 checksum of the bytes and the sum of the elements", "[summary]") {
  const float values[] = {1.5f, -0.25f, 2.0f};
  const std::string bytes(reinterpret_cast<const char*>(values), sizeof(values));
  std::vector<TensorSpec> specs = {{"a", DType::kFloat32, {1, 2}}, {"b", DType::kFloat32, {1}}};
  const OutputSummary s = summarize_output(specs, bytes);
  CHECK(s.checksum == net::payload_checksum(bytes));
  CHECK(s.sum == 3.25);
  CHECK(output_shapes(specs) == "1x2,1");
  CHECK(output_dtypes(specs) == "float32,float32");
}

TEST_CASE("output summary: one blocked pass gives the one-shot checksum and the lane sums",
          "[summary]") {
  // Tensors larger than the 64 KiB block, with tails that are not a multiple of 8 elements,
  // and an int64 tensor between two float32 ones.
  std::vector<TensorSpec> specs = {{"a", DType::kFloat32, {3, 10007}},
                                   {"ids", DType::kInt64, {5000}},
                                   {"b", DType::kFloat32, {20011}}};
  std::string bytes;
  double expected = 0;
  auto floats = [&](int64_t n, float scale) {
    double lanes[8] = {};
    int64_t i = 0;
    for (; i < n; ++i) {
      const float v = static_cast<float>((i * 7919) % 1000) * scale - 1.0f;
      bytes.append(reinterpret_cast<const char*>(&v), 4);
      if (i < n - n % 8) {
        lanes[i % 8] += v;
      } else {
        lanes[0] += v;
      }
    }
    for (double l : lanes) expected += l;
  };
  floats(3 * 10007, 0.00123f);
  for (int64_t i = 0; i < 5000; ++i) {
    const int64_t v = i * 3 - 7;
    bytes.append(reinterpret_cast<const char*>(&v), 8);
    expected += static_cast<double>(v);
  }
  floats(20011, 0.0031f);
  const OutputSummary s = summarize_output(specs, bytes);
  CHECK(s.checksum == net::payload_checksum(bytes));
  CHECK(s.sum == expected);  // the same additions in the same order: exact
  // A changed byte in the last block changes the checksum.
  bytes[bytes.size() - 3] ^= 1;
  CHECK(summarize_output(specs, bytes).checksum != s.checksum);
}

TEST_CASE("batch rules: multiples of the native batch up to kMaxBatch", "[batch]") {
  const ModelInfo m = testing::tiny_model("m", 4);
  std::string why;
  CHECK(batch_supported(m, 8));
  CHECK_FALSE(batch_supported(m, 6, &why));
  CHECK(why.find("multiples of 4") != std::string::npos);
  CHECK_FALSE(batch_supported(m, 0));
  CHECK_FALSE(batch_supported(m, kMaxBatch + 4));
  CHECK(input_bytes(m, 8) == 8 * 2 * 4);
  CHECK(specs_at_batch(m.outputs, 4, 12)[0].shape == Shape{12, 1});
}

TEST_CASE("backend factory: cpu, a GPU index without a GPU backend, bad values", "[factory]") {
  BackendOptions options;
  options.device = "cpu";
  options.cpu_threads = 1;
  auto cpu = make_backend(options);
  REQUIRE(cpu.ok());
  CHECK((*cpu)->describe().find("cpu") == 0);
  options.device = "0";
  auto gpu = make_backend(options);
  // Until the GPU backend is linked in, it says so clearly.
  if (!gpu.ok()) CHECK(gpu.status().message().find("GPU backend") != std::string::npos);
  options.device = "gpu0";
  CHECK(make_backend(options).status().code() == Code::kInvalidArgument);
  options.device = "cpu";
  options.policy = "fastest";
  CHECK(make_backend(options).status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace ps::reactor
