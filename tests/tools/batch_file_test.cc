// psbench train --write-batches' token files (tools/psbench/batch_file.h): what is written is
// the header given and SyntheticTokens' batches 0..count-1, byte for byte as read back; bad
// files are refused. (The Python reader in scripts/torch_train.py reads the same layout.)
#include "tools/psbench/batch_file.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

namespace ps::psbench {
namespace {

std::string temp_path(const char* name) {
  return std::string("/tmp/ps_batch_file_") + std::to_string(::getpid()) + "_" + name;
}

// bert_tiny's two token inputs: ids in [0, 100), token types in [0, 2), sequence 16.
models::cpu::SyntheticTokens tokens(uint64_t seed) {
  models::cpu::SyntheticDataOptions o;
  o.classes = 2;
  o.seed = seed;
  o.noise = 0.1;
  auto t = models::cpu::SyntheticTokens::create(
      o, {models::cpu::TokenInput{Shape{16}, 100}, models::cpu::TokenInput{Shape{16}, 2}});
  REQUIRE(t.ok());
  return std::move(*t);
}

TokenFileHeader header(uint32_t count, int64_t batch) {
  TokenFileHeader h;
  h.count = count;
  h.batch = batch;
  h.classes = 2;
  h.inputs = {{"input_ids", {16}, 100}, {"token_type_ids", {16}, 2}};
  return h;
}

TEST_CASE("token file: the header and SyntheticTokens' batches, read back exactly",
          "[batch_file]") {
  const auto data = tokens(7);
  const std::string path = temp_path("ok");
  REQUIRE(write_token_file(path, header(5, 4), data).ok());
  auto f = read_token_file(path);
  INFO(f.status().to_string());
  REQUIRE(f.ok());
  CHECK(f->header.count == 5);
  CHECK(f->header.batch == 4);
  CHECK(f->header.classes == 2);
  REQUIRE(f->header.inputs.size() == 2);
  CHECK(f->header.inputs[0].name == "input_ids");
  CHECK(f->header.inputs[0].sample_shape == std::vector<int64_t>{16});
  CHECK(f->header.inputs[1].vocab == 2);
  REQUIRE(f->labels.size() == 5);
  for (uint64_t b = 0; b < 5; ++b) {
    std::vector<models::cpu::Tensor> ids;
    std::vector<int64_t> labels;
    REQUIRE(data.batch(b, 4, &ids, &labels).ok());
    CHECK(f->labels[b] == labels);
    REQUIRE(f->ids[b].size() == 2);
    for (size_t k = 0; k < 2; ++k) {
      const auto* v = static_cast<const int64_t*>(ids[k].raw());
      CHECK(f->ids[b][k] == std::vector<int64_t>(v, v + ids[k].numel()));
    }
  }
  // Another seed writes other batches: the file carries the data, not the header only.
  const std::string other = temp_path("other");
  REQUIRE(write_token_file(other, header(5, 4), tokens(8)).ok());
  auto g = read_token_file(other);
  REQUIRE(g.ok());
  CHECK(g->ids != f->ids);
  std::remove(path.c_str());
  std::remove(other.c_str());
}

// With PS_TOKEN_FILE_DUMP=DIR set (tests/scripts/test_token_file.py sets it), writes
// DIR/tokens.bin and what it must contain as DIR/tokens.json, for the Python reader
// (scripts/torch_train.py) to be checked against. Hidden ("[.]"): only that test runs it.
TEST_CASE("token file: a file and its expected contents for the Python reader",
          "[.][batch_file_dump]") {
  const char* dir = std::getenv("PS_TOKEN_FILE_DUMP");
  REQUIRE(dir != nullptr);
  const TokenFileHeader h = header(3, 4);
  const auto data = tokens(11);
  REQUIRE(write_token_file(std::string(dir) + "/tokens.bin", h, data).ok());
  std::ofstream json(std::string(dir) + "/tokens.json");
  auto list = [&](const int64_t* v, int64_t n) {
    json << '[';
    for (int64_t i = 0; i < n; ++i) json << (i ? "," : "") << v[i];
    json << ']';
  };
  json << "{\"count\":" << h.count << ",\"batch\":" << h.batch << ",\"classes\":" << h.classes
       << ",\"inputs\":[";
  for (size_t k = 0; k < h.inputs.size(); ++k) {
    json << (k ? "," : "") << "{\"name\":\"" << h.inputs[k].name << "\",\"dims\":";
    list(h.inputs[k].sample_shape.data(), static_cast<int64_t>(h.inputs[k].sample_shape.size()));
    json << ",\"vocab\":" << h.inputs[k].vocab << '}';
  }
  json << "],\"batches\":[";
  for (uint64_t b = 0; b < h.count; ++b) {
    std::vector<models::cpu::Tensor> ids;
    std::vector<int64_t> labels;
    REQUIRE(data.batch(b, h.batch, &ids, &labels).ok());
    json << (b ? "," : "") << "{\"labels\":";
    list(labels.data(), static_cast<int64_t>(labels.size()));
    json << ",\"ids\":{";
    for (size_t k = 0; k < ids.size(); ++k) {
      json << (k ? "," : "") << '"' << h.inputs[k].name << "\":";
      list(static_cast<const int64_t*>(ids[k].raw()), ids[k].numel());
    }
    json << "}}";
  }
  json << "]}\n";
  REQUIRE(json.good());
}

TEST_CASE("token file: truncated, trailing and foreign files are refused", "[batch_file]") {
  const std::string path = temp_path("bad");
  REQUIRE(write_token_file(path, header(2, 3), tokens(1)).ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto rewrite = [&](const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
  };
  rewrite(bytes.substr(0, bytes.size() - 8));
  CHECK(read_token_file(path).status().code() == Code::kCorrupt);
  rewrite(bytes + "x");
  CHECK(read_token_file(path).status().code() == Code::kCorrupt);
  rewrite("PSBATCH1" + bytes.substr(8));
  CHECK(read_token_file(path).status().code() == Code::kCorrupt);
  rewrite(bytes);
  CHECK(read_token_file(path).ok());
  std::remove(path.c_str());
  CHECK(read_token_file(path).status().code() == Code::kIo);
  // A header that does not match the data's inputs is refused at write time.
  TokenFileHeader one = header(1, 2);
  one.inputs.pop_back();
  CHECK_FALSE(write_token_file(path, one, tokens(1)).ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ps::psbench
