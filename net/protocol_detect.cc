#include "net/protocol_detect.h"

namespace ps::net {

WireProtocol detect_protocol(std::string_view first_bytes) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(first_bytes[i]); };
  size_t n = first_bytes.size();
  if (n > 1 && byte(1) >= 0x20) return WireProtocol::kText;
  if (n > 2 && byte(2) != 0) return WireProtocol::kText;
  if (n > 3 && byte(3) != 0) return WireProtocol::kText;
  return n >= kDetectMaxBytes ? WireProtocol::kBinary : WireProtocol::kUndecided;
}

}  // namespace ps::net
