#include "net/binary_protocol.h"

#include <algorithm>

namespace ps::net {
namespace {

void append_u32_le(std::string* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

bool is_model_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// A name quoted in an error: printable bytes only, at most 64 of them.
std::string quote_name(std::string_view name) {
  std::string out = "'";
  for (char c : name.substr(0, 64)) out += (c > 0x20 && c < 0x7f) ? c : '?';
  if (name.size() > 64) out += "...";
  return out + "'";
}

}  // namespace

Result<ModelTask> parse_task_name(std::string_view name) {
  ModelTask task;
  std::string_view model;
  if (name.size() > kInferenceSuffix.size() && name.ends_with(kInferenceSuffix)) {
    model = name.substr(0, name.size() - kInferenceSuffix.size());
    task.kind = TaskKind::kInference;
  } else if (name.size() > kTrainingSuffix.size() && name.ends_with(kTrainingSuffix)) {
    model = name.substr(0, name.size() - kTrainingSuffix.size());
    task.kind = TaskKind::kTraining;
  } else {
    return invalid_argument("task name ", quote_name(name),
                            " is not <model>_inference or <model>_training");
  }
  if (!std::all_of(model.begin(), model.end(), is_model_char)) {
    return invalid_argument("task name ", quote_name(name),
                            ": the model name may hold only A-Z a-z 0-9 _ . -");
  }
  task.model = std::string(model);
  return task;
}

std::string task_name(std::string_view model, TaskKind kind) {
  return str_cat(model, kind == TaskKind::kInference ? kInferenceSuffix : kTrainingSuffix);
}

std::string encode_request(std::string_view name, std::string_view data) {
  PS_CHECK(!name.empty() && name.size() <= UINT32_MAX && data.size() <= UINT32_MAX);
  std::string out;
  out.reserve(8 + name.size() + data.size());
  append_u32_le(&out, static_cast<uint32_t>(name.size()));
  out.append(name);
  append_u32_le(&out, static_cast<uint32_t>(data.size()));
  out.append(data);
  return out;
}

std::string encode_close() { return std::string(4, '\0'); }

BinaryParser::BinaryParser(BinaryLimits limits) : limits_(limits) {
  PS_CHECK(limits_.max_name_bytes > 0 && limits_.max_name_bytes < 8192);
}

void BinaryParser::fail(ErrorCode code, std::string message) {
  items_.push_back(ProtocolError{code, std::move(message), true});
  closed_ = true;
  current_ = BinaryRequest();
}

void BinaryParser::on_length(uint32_t value) {
  if (state_ == State::kNameLength) {
    if (value == 0) {
      items_.push_back(BinaryClose{});
      closed_ = true;
      return;
    }
    if (value > limits_.max_name_bytes) {
      fail(ErrorCode::kBadRequest, str_cat("name length ", value, " is over the maximum of ",
                                           limits_.max_name_bytes, " bytes"));
      return;
    }
    name_size_ = value;
    current_.name.reserve(value);
    state_ = State::kName;
    return;
  }
  if (value > limits_.max_data_bytes) {
    fail(ErrorCode::kPayloadTooLarge,
         str_cat("data length ", value, " of ", quote_name(current_.name),
                 " is over the maximum of ", limits_.max_data_bytes, " bytes"));
    return;
  }
  data_size_ = value;
  // Bounded by max_data_bytes; untouched pages of a large reservation cost no memory.
  current_.data.reserve(value);
  state_ = State::kData;
  if (value == 0) {
    items_.push_back(std::move(current_));
    current_ = BinaryRequest();
    state_ = State::kNameLength;
  }
}

void BinaryParser::feed(std::string_view bytes) {
  while (!bytes.empty() && !closed_) {
    switch (state_) {
      case State::kNameLength:
      case State::kDataLength: {
        size_t take = std::min(bytes.size(), 4 - length_have_);
        for (size_t i = 0; i < take; ++i) {
          length_bytes_[length_have_ + i] = static_cast<unsigned char>(bytes[i]);
        }
        length_have_ += take;
        bytes.remove_prefix(take);
        if (length_have_ == 4) {
          length_have_ = 0;
          uint32_t value = uint32_t{length_bytes_[0]} | (uint32_t{length_bytes_[1]} << 8) |
                           (uint32_t{length_bytes_[2]} << 16) | (uint32_t{length_bytes_[3]} << 24);
          on_length(value);
        }
        break;
      }
      case State::kName: {
        size_t take = std::min<size_t>(bytes.size(), name_size_ - current_.name.size());
        current_.name.append(bytes.data(), take);
        bytes.remove_prefix(take);
        if (current_.name.size() == name_size_) state_ = State::kDataLength;
        break;
      }
      case State::kData: {
        size_t take = std::min<size_t>(bytes.size(), data_size_ - current_.data.size());
        current_.data.append(bytes.data(), take);
        bytes.remove_prefix(take);
        if (current_.data.size() == data_size_) {
          items_.push_back(std::move(current_));
          current_ = BinaryRequest();
          state_ = State::kNameLength;
        }
        break;
      }
    }
  }
}

std::optional<BinaryItem> BinaryParser::next() {
  if (items_.empty()) return std::nullopt;
  BinaryItem item = std::move(items_.front());
  items_.pop_front();
  return item;
}

Status BinaryParser::finish() const {
  if (closed_) return Status();
  switch (state_) {
    case State::kNameLength:
      if (length_have_ == 0) return Status();
      return corrupt("stream ended inside a name length: got ", length_have_, " of 4 bytes");
    case State::kName:
      return corrupt("stream ended inside a name: got ", current_.name.size(), " of ", name_size_,
                     " name bytes");
    case State::kDataLength:
      return corrupt("stream ended inside the data length of ", quote_name(current_.name), ": got ",
                     length_have_, " of 4 bytes");
    case State::kData:
      return corrupt("stream ended inside the data of ", quote_name(current_.name), ": got ",
                     current_.data.size(), " of ", data_size_, " data bytes");
  }
  return Status();
}

}  // namespace ps::net
