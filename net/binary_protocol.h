// The original PipeSwitch wire protocol (PIPESWITCH.md, "Wire protocol of the original"), so the
// original clients work unchanged. An incremental parser and the encoders; pure, no I/O.
//
//   request := u32 name_len | name[name_len] | u32 data_len | data[data_len]   (little-endian)
//   reply   := "FNSH"                                (the request finished / training started)
//   close   := u32 0                                 (name_len 0 ends the connection)
//
// Names are "<model>_inference" or "<model>_training". The protocol has no error reply: on any
// error the server closes the connection (after logging the ProtocolError).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/status.h"
#include "net/wire_error.h"

namespace ps::net {

inline constexpr std::string_view kFinishReply = "FNSH";
inline constexpr std::string_view kInferenceSuffix = "_inference";
inline constexpr std::string_view kTrainingSuffix = "_training";

struct BinaryLimits {
  // Longest name accepted. protocol_detect.h relies on a binary stream starting with a u32 below
  // 0x2000 (its second byte < 0x20), so this stays below 8192.
  uint32_t max_name_bytes = 256;
  uint64_t max_data_bytes = 64ull << 20;  // the original's largest input is 8,582,496 bytes
};

// The input sizes the original clients send (PIPESWITCH.md): batch 8, float32 images, and for
// BERT int64 token ids [8,251] then int64 token type ids [8,251]. Training requests carry none.
struct OriginalWorkload {
  std::string_view model;
  uint64_t inference_bytes;
};
inline constexpr std::array<OriginalWorkload, 3> kOriginalWorkloads = {{
    {"resnet152", 8ull * 3 * 224 * 224 * 4},     // 4,816,896
    {"inception_v3", 8ull * 3 * 299 * 299 * 4},  // 8,582,496
    {"bert_base", 2ull * 8 * 251 * 8},           // 32,128
}};

struct BinaryRequest {
  std::string name;
  std::string data;
};

// The peer sent name_len 0: it is done; the server closes the connection.
struct BinaryClose {};

using BinaryItem = std::variant<BinaryRequest, BinaryClose, ProtocolError>;

enum class TaskKind : uint8_t { kInference, kTraining };

struct ModelTask {
  std::string model;
  TaskKind kind;
};

// Splits "<model>_inference" / "<model>_training" into (model, kind). The model must be
// non-empty and of [A-Za-z0-9_.-] (so "bert_base_inference" -> ("bert_base", inference)).
// Returns the task, or an invalid_argument error quoting (a prefix of) the name.
Result<ModelTask> parse_task_name(std::string_view name);

// "<model>_inference" / "<model>_training".
std::string task_name(std::string_view model, TaskKind kind);

// The bytes of one request frame. Preconditions: 0 < name.size() <= UINT32_MAX,
// data.size() <= UINT32_MAX.
std::string encode_request(std::string_view name, std::string_view data);

// The close message: u32 0.
std::string encode_close();

class BinaryParser {
 public:
  // Preconditions: 0 < limits.max_name_bytes < 8192.
  explicit BinaryParser(BinaryLimits limits = {});

  // Consumes all of `bytes`; complete items are queued for next(). After a BinaryClose or a
  // ProtocolError (always must_close: a frame of unknown length cannot be skipped) the rest of
  // the stream is ignored.
  void feed(std::string_view bytes);

  // Pops the oldest complete item; nullopt when none is complete yet.
  std::optional<BinaryItem> next();

  // True when next() has an item.
  bool has_next() const { return !items_.empty(); }

  // True once a BinaryClose or an error has been queued.
  bool closed() const { return closed_; }

  // To call when the peer ended the stream: OK between frames (or after close / error);
  // otherwise a corrupt() error naming the truncated field ("got 3 of 19 name bytes").
  Status finish() const;

  const BinaryLimits& limits() const { return limits_; }

 private:
  enum class State : uint8_t { kNameLength, kName, kDataLength, kData };
  void fail(ErrorCode code, std::string message);
  void on_length(uint32_t value);

  BinaryLimits limits_;
  State state_ = State::kNameLength;
  std::array<unsigned char, 4> length_bytes_{};
  size_t length_have_ = 0;
  uint32_t name_size_ = 0;
  uint32_t data_size_ = 0;
  BinaryRequest current_;
  bool closed_ = false;
  std::deque<BinaryItem> items_;
};

}  // namespace ps::net
