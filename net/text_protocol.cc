#include "net/text_protocol.h"

#include <algorithm>
#include <cstring>

namespace ps::net {

TextParser::TextParser(TextLimits limits) : limits_(limits) {
  PS_CHECK(limits_.max_line_bytes > 0);
}

void TextParser::fail(ErrorCode code, std::string message) {
  items_.push_back(ProtocolError{code, std::move(message), true});
  closed_ = true;
  line_.clear();
  line_.shrink_to_fit();
  payload_.clear();
  payload_.shrink_to_fit();
  in_payload_ = false;
}

void TextParser::feed(std::string_view bytes) {
  while (!bytes.empty() && !closed_) {
    if (in_payload_) {
      // Payload bytes go straight to their destination: one copy, however the stream is split.
      size_t take =
          static_cast<size_t>(std::min<uint64_t>(bytes.size(), payload_size_ - payload_.size()));
      payload_.append(bytes.data(), take);
      bytes.remove_prefix(take);
      if (payload_.size() == payload_size_) {
        in_payload_ = false;
        items_.push_back(parse_command(payload_line_, std::move(payload_)));
        payload_ = std::string();
        payload_line_.clear();
      }
      continue;
    }
    const void* newline = std::memchr(bytes.data(), '\n', bytes.size());
    size_t chunk = newline ? static_cast<size_t>(static_cast<const char*>(newline) - bytes.data())
                           : bytes.size();
    // A partial line may end in the '\r' of "\r\n", hence the + 1. The check is the same however
    // the line arrives, so splitting never changes the outcome.
    if (line_.size() + chunk > limits_.max_line_bytes + 1) {
      fail(ErrorCode::kLineTooLong,
           str_cat("line longer than ", limits_.max_line_bytes, " bytes, closing"));
      return;
    }
    line_.append(bytes.data(), chunk);
    if (!newline) return;
    bytes.remove_prefix(chunk + 1);
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_.size() > limits_.max_line_bytes) {
      fail(ErrorCode::kLineTooLong,
           str_cat("line longer than ", limits_.max_line_bytes, " bytes, closing"));
      return;
    }
    on_line();
    line_.clear();
  }
}

void TextParser::on_line() {
  if (is_blank_line(line_)) return;
  LineFrame frame = frame_line(line_, limits_.max_payload_bytes);
  if (frame.error) {
    fail(frame.error->code, std::move(frame.error->message));
    return;
  }
  if (!frame.payload_bytes) {
    items_.push_back(parse_command(line_, std::nullopt));
    return;
  }
  if (*frame.payload_bytes == 0) {
    items_.push_back(parse_command(line_, std::string()));
    return;
  }
  in_payload_ = true;
  payload_line_ = line_;
  payload_size_ = *frame.payload_bytes;
  payload_ = std::string();
  // Bounded by max_payload_bytes; untouched pages of a large reservation cost no memory.
  payload_.reserve(static_cast<size_t>(payload_size_));
}

std::optional<TextItem> TextParser::next() {
  if (items_.empty()) return std::nullopt;
  TextItem item = std::move(items_.front());
  items_.pop_front();
  return item;
}

Status TextParser::finish() const {
  if (closed_) return Status();
  if (in_payload_) {
    return corrupt("stream ended inside a payload: got ", payload_.size(), " of ", payload_size_,
                   " bytes");
  }
  if (!line_.empty()) {
    return corrupt("stream ended inside a line (", line_.size(), " bytes without a newline)");
  }
  return Status();
}

}  // namespace ps::net
