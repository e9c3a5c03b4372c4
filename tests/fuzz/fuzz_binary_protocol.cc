// libFuzzer target: the original PipeSwitch binary protocol parser (net/binary_protocol.h),
// and the task-name split. Same invariants as the text target.
#include <string>
#include <vector>

#include "net/binary_protocol.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

std::string render(const ps::net::BinaryItem& item) {
  if (const auto* r = std::get_if<ps::net::BinaryRequest>(&item)) {
    auto task = ps::net::parse_task_name(r->name);
    return "req " + r->name + " " + std::to_string(r->data.size()) + (task.ok() ? " task" : " bad");
  }
  if (std::holds_alternative<ps::net::BinaryClose>(item)) return "close";
  const auto& e = std::get<ps::net::ProtocolError>(item);
  return "err " + std::to_string(static_cast<int>(e.code)) + " " + e.message;
}

std::vector<std::string> drain(ps::net::BinaryParser& parser) {
  std::vector<std::string> out;
  while (auto item = parser.next()) out.push_back(render(*item));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ps::net::BinaryLimits limits;
  limits.max_name_bytes = 64;
  limits.max_data_bytes = 1 << 16;

  ps::net::BinaryParser whole(limits);
  whole.feed(bytes);
  const std::vector<std::string> a = drain(whole);

  ps::net::BinaryParser split(limits);
  std::vector<std::string> b;
  for (std::string_view chunk : ps::fuzz::chunks_of(bytes)) {
    split.feed(chunk);
    for (std::string& s : drain(split)) b.push_back(std::move(s));
  }
  PS_FUZZ_ASSERT(a == b);
  PS_FUZZ_ASSERT(whole.finish().ok() == split.finish().ok());
  return 0;
}
