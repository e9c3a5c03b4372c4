// The original PipeSwitch binary protocol: frames, names, limits, truncation.
#include "net/binary_protocol.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

namespace ps::net {
namespace {

using namespace std::string_literals;

std::string pattern(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : out) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return out;
}

std::vector<BinaryItem> drain(BinaryParser& parser) {
  std::vector<BinaryItem> out;
  while (std::optional<BinaryItem> item = parser.next()) out.push_back(std::move(*item));
  return out;
}

const BinaryRequest& as_request(const BinaryItem& item) {
  REQUIRE(std::holds_alternative<BinaryRequest>(item));
  return std::get<BinaryRequest>(item);
}

const ProtocolError& as_error(const BinaryItem& item) {
  REQUIRE(std::holds_alternative<ProtocolError>(item));
  return std::get<ProtocolError>(item);
}

TEST_CASE("the original workloads' sizes match PIPESWITCH.md", "[net][binary]") {
  REQUIRE(kOriginalWorkloads.size() == 3);
  CHECK(kOriginalWorkloads[0].model == "resnet152");
  CHECK(kOriginalWorkloads[0].inference_bytes == 4'816'896);
  CHECK(kOriginalWorkloads[1].model == "inception_v3");
  CHECK(kOriginalWorkloads[1].inference_bytes == 8'582'496);
  CHECK(kOriginalWorkloads[2].model == "bert_base");
  CHECK(kOriginalWorkloads[2].inference_bytes == 32'128);
}

TEST_CASE("encode_request writes little-endian lengths", "[net][binary]") {
  CHECK(encode_request("ab", "xyz") == "\x02\0\0\0ab\x03\0\0\0xyz"s);
  CHECK(encode_request("n", std::string(0x01020304 & 0xffff, 'd')).substr(5, 4) == "\x04\x03\0\0"s);
  CHECK(encode_close() == "\0\0\0\0"s);
  CHECK(std::string_view(kFinishReply) == "FNSH");
}

TEST_CASE("every original request round-trips, in any split, on one connection", "[net][binary]") {
  // The three models' inference requests with their real sizes, their training requests (no
  // data), then the close message: what an original client sends over one connection.
  std::string stream;
  std::vector<std::pair<std::string, std::string>> expected;
  uint32_t seed = 1;
  for (const OriginalWorkload& w : kOriginalWorkloads) {
    std::string data = pattern(w.inference_bytes, seed++);
    std::string name = task_name(w.model, TaskKind::kInference);
    stream += encode_request(name, data);
    expected.emplace_back(name, std::move(data));
    name = task_name(w.model, TaskKind::kTraining);
    stream += encode_request(name, "");
    expected.emplace_back(name, "");
  }
  stream += encode_close();
  stream += "trailing bytes after close are ignored";

  auto check = [&](BinaryParser& parser) {
    std::vector<BinaryItem> items = drain(parser);
    REQUIRE(items.size() == expected.size() + 1);
    for (size_t i = 0; i < expected.size(); ++i) {
      const BinaryRequest& r = as_request(items[i]);
      CHECK(r.name == expected[i].first);
      CHECK(r.data.size() == expected[i].second.size());
      CHECK(r.data == expected[i].second);
    }
    CHECK(std::holds_alternative<BinaryClose>(items.back()));
    CHECK(parser.closed());
    CHECK(parser.finish().ok());
  };
  {
    BinaryParser parser;
    parser.feed(stream);
    check(parser);
  }
  std::mt19937 rng(99);
  for (int round = 0; round < 3; ++round) {
    BinaryParser parser;
    size_t pos = 0;
    while (pos < stream.size()) {
      // Mostly tiny pieces around the headers, sometimes large ones through the data.
      size_t n = std::uniform_int_distribution<size_t>(0, 9)(rng) == 0
                     ? std::uniform_int_distribution<size_t>(0, 1 << 20)(rng)
                     : std::uniform_int_distribution<size_t>(0, 7)(rng);
      parser.feed(std::string_view(stream).substr(pos, n));
      pos += std::min(n, stream.size() - pos);
    }
    check(parser);
  }
}

TEST_CASE("small frames parse fed byte by byte", "[net][binary]") {
  std::string stream = encode_request("bert_base_inference", pattern(32'128, 7)) +
                       encode_request("resnet152_training", "") + encode_close();
  BinaryParser parser;
  std::vector<BinaryItem> items;
  for (char c : stream) {
    CHECK_FALSE(parser.closed());
    parser.feed(std::string_view(&c, 1));
    for (BinaryItem& item : drain(parser)) items.push_back(std::move(item));
  }
  REQUIRE(items.size() == 3);
  CHECK(as_request(items[0]).name == "bert_base_inference");
  CHECK(as_request(items[0]).data == pattern(32'128, 7));
  CHECK(as_request(items[1]).name == "resnet152_training");
  CHECK(as_request(items[1]).data.empty());
  CHECK(std::holds_alternative<BinaryClose>(items[2]));
}

TEST_CASE("the close message alone closes", "[net][binary]") {
  BinaryParser parser;
  parser.feed(encode_close());
  std::vector<BinaryItem> items = drain(parser);
  REQUIRE(items.size() == 1);
  CHECK(std::holds_alternative<BinaryClose>(items[0]));
}

TEST_CASE("names up to the maximum are accepted, longer ones close", "[net][binary]") {
  BinaryLimits limits;  // max_name_bytes 256
  BinaryParser ok(limits);
  ok.feed(encode_request(std::string(256, 'n'), "d"));
  std::vector<BinaryItem> items = drain(ok);
  REQUIRE(items.size() == 1);
  CHECK(as_request(items[0]).name.size() == 256);

  BinaryParser bad(limits);
  bad.feed("\x01\x01\0\0"s);  // 257, refused from the header alone
  items = drain(bad);
  REQUIRE(items.size() == 1);
  const ProtocolError& e = as_error(items[0]);
  CHECK(e.code == ErrorCode::kBadRequest);
  CHECK(e.must_close);
  CHECK(e.message.find("257") != std::string::npos);
  CHECK(bad.closed());
  bad.feed(encode_request("x_inference", ""));
  CHECK(drain(bad).empty());

  BinaryParser huge(limits);
  huge.feed("\xff\xff\xff\xff"s);
  items = drain(huge);
  REQUIRE(items.size() == 1);
  CHECK(as_error(items[0]).message.find("4294967295") != std::string::npos);
}

TEST_CASE("data over the maximum closes", "[net][binary]") {
  BinaryLimits limits;
  limits.max_data_bytes = 1000;
  BinaryParser parser(limits);
  parser.feed(encode_request("a_inference", std::string(1000, 'x')));
  parser.feed(encode_request("a_inference", std::string(1001, 'x')));
  std::vector<BinaryItem> items = drain(parser);
  REQUIRE(items.size() == 2);
  CHECK(as_request(items[0]).data.size() == 1000);
  const ProtocolError& e = as_error(items[1]);
  CHECK(e.code == ErrorCode::kPayloadTooLarge);
  CHECK(e.must_close);
  CHECK(e.message.find("'a_inference'") != std::string::npos);
  CHECK(e.message.find("1001") != std::string::npos);
}

TEST_CASE("truncated frames: finish() names the field that was cut", "[net][binary]") {
  std::string frame = encode_request("resnet152_inference", "0123456789");
  struct Case {
    size_t cut;
    const char* words;
  };
  for (const Case& c : {Case{1, "inside a name length: got 1 of 4 bytes"},
                        Case{3, "inside a name length: got 3 of 4 bytes"},
                        Case{4, "inside a name: got 0 of 19 name bytes"},
                        Case{10, "inside a name: got 6 of 19 name bytes"},
                        Case{23, "inside the data length of 'resnet152_inference': got 0 of 4"},
                        Case{25, "inside the data length of 'resnet152_inference': got 2 of 4"},
                        Case{27, "inside the data of 'resnet152_inference': got 0 of 10 data"},
                        Case{36, "inside the data of 'resnet152_inference': got 9 of 10 data"}}) {
    INFO(c.cut);
    BinaryParser parser;
    parser.feed(std::string_view(frame).substr(0, c.cut));
    CHECK(drain(parser).empty());
    CHECK_FALSE(parser.closed());
    Status s = parser.finish();
    CHECK(s.code() == Code::kCorrupt);
    CHECK(s.message().find(c.words) != std::string::npos);
  }
  BinaryParser whole;
  whole.feed(frame);
  CHECK(whole.finish().ok());
  CHECK(drain(whole).size() == 1);
}

TEST_CASE("task names split into model and kind", "[net][binary]") {
  for (const OriginalWorkload& w : kOriginalWorkloads) {
    for (TaskKind kind : {TaskKind::kInference, TaskKind::kTraining}) {
      std::string name = task_name(w.model, kind);
      Result<ModelTask> task = parse_task_name(name);
      REQUIRE(task.ok());
      CHECK(task->model == w.model);
      CHECK(task->kind == kind);
    }
  }
  CHECK(task_name("bert_base", TaskKind::kInference) == "bert_base_inference");
  CHECK(task_name("resnet152", TaskKind::kTraining) == "resnet152_training");
  Result<ModelTask> odd = parse_task_name("my_training_inference");
  REQUIRE(odd.ok());
  CHECK(odd->model == "my_training");
  CHECK(odd->kind == TaskKind::kInference);

  for (const char* bad : {"", "resnet152", "_inference", "_training", "resnet152_Inference",
                          "resnet152_inference ", "res net_inference", "a/b_training"}) {
    INFO(bad);
    Result<ModelTask> r = parse_task_name(bad);
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
  Result<ModelTask> binary = parse_task_name("\x01\xff_inference");
  REQUIRE_FALSE(binary.ok());
  CHECK(binary.status().message().find("'??_inference'") != std::string::npos);
}

}  // namespace
}  // namespace ps::net
