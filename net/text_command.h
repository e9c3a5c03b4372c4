// The commands of the text protocol: their table (syntax, arguments, options, access) and the
// parser of one command line into a validated Command. Pure functions over bytes, no I/O.
//
// A command line is printable ASCII: a verb (case-insensitive), positional arguments and
// `key=value` options separated by spaces or tabs, in any order. Numbers are decimal, unsigned,
// and checked for overflow and range. The framing of a stream (lines, payloads) is in
// text_protocol.h; this file parses a line once the framing has cut it out.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"
#include "net/wire_error.h"

namespace ps::net {

enum class Verb : uint8_t {
  kPing,
  kHelp,
  kQuit,
  kAuth,
  kModels,
  kInfer,
  kTrain,
  kJobs,
  kStop,
  kCheckpoint,
  kStats,
  kLoad,
  kUnload,
};

// What a positional argument holds, and so how it is validated.
enum class ArgKind : uint8_t {
  kModel,  // 1..kMaxModelNameBytes of [A-Za-z0-9_.-]
  kJob,    // a job id: a decimal u64
  kToken,  // an AUTH token: 1..kMaxTokenBytes printable characters, taken verbatim ('=' allowed)
  kPath,   // a model package path: 1..kMaxPathBytes printable characters
};

struct ArgSpec {
  std::string_view name;  // as shown in the syntax: "model", "job"
  ArgKind kind;
  bool optional = false;  // only trailing arguments are optional
};

enum class OptionKind : uint8_t {
  kNumber,  // decimal u64 in [min, max]
  kChoice,  // one of `choices` ('|'-separated), compared case-insensitively, stored lower case
  kReal,    // an unsigned decimal real (0.05, 1e-4, 2.5E+1) in [min, max]
  kName,    // a file name: 1..kMaxFileNameBytes of [A-Za-z0-9_.-], not starting with '.'
};

struct OptionSpec {
  std::string_view key;  // lower case
  OptionKind kind;
  uint64_t min = 0;
  uint64_t max = 0;
  std::string_view choices;
};

struct CommandSpec {
  Verb verb = Verb::kPing;
  std::string_view name;  // upper case, as on the wire
  std::span<const ArgSpec> args = {};
  std::span<const OptionSpec> options = {};
  bool before_auth = false;  // may run before the connection authenticated (auth.h)
  bool admin = false;        // needs the admin level (auth.h)
  std::string_view syntax;
  std::string_view summary;
};

inline constexpr size_t kMaxModelNameBytes = 64;
inline constexpr size_t kMaxTokenBytes = 256;
inline constexpr size_t kMaxPathBytes = 1024;
inline constexpr size_t kMaxOptionKeyBytes = 32;
inline constexpr size_t kMaxFileNameBytes = 128;
// The option that declares a payload: `bytes=K` means K raw bytes follow the line.
inline constexpr std::string_view kPayloadOption = "bytes";

// Every command, in the order HELP lists them.
std::span<const CommandSpec> command_specs();
// The spec of `verb`; every Verb has one.
const CommandSpec& command_spec(Verb verb);
// The verb named `name`, compared case-insensitively; nullopt for an unknown name.
std::optional<Verb> verb_from_name(std::string_view name);

// One validated option of a command.
struct OptionValue {
  std::string key;      // lower case
  std::string text;     // the value; lower case for a kChoice option
  uint64_t number = 0;  // the value of a kNumber option; 0 otherwise
  double real = 0.0;    // the value of a kReal option; 0 otherwise
};

// A complete, validated request of the text protocol.
struct Command {
  Verb verb = Verb::kPing;
  std::vector<std::string> args;       // positional, count and form checked against the spec
  std::vector<OptionValue> options;    // in the order given; no key twice
  std::optional<std::string> payload;  // present iff the line had bytes=K (K may be 0)

  // The option named `key`, or nullptr.
  const OptionValue* find(std::string_view key) const;
  // A number option's value, or `fallback` when it was not given.
  uint64_t number_or(std::string_view key, uint64_t fallback) const;
  // A number option's value, or nullopt when it was not given.
  std::optional<uint64_t> number(std::string_view key) const;
  // A real option's value, or `fallback` when it was not given.
  double real_or(std::string_view key, double fallback) const;
  // A name option's value, or `fallback` when it was not given.
  std::string_view name_or(std::string_view key, std::string_view fallback) const;
  // A choice option's (lower-case) value, or `fallback` when it was not given.
  std::string_view choice_or(std::string_view key, std::string_view fallback) const;
  // Positional argument `index` as a number. Preconditions: the spec says it is a kJob argument.
  uint64_t arg_number(size_t index) const;
};

// Parses a whole string as an unsigned decimal real: digits with an optional fraction and an
// optional exponent ("0.05", ".5", "1e-4", "2.5E+1"); no sign, no "inf"/"nan", finite.
Result<double> parse_decimal_real(std::string_view text);

// Parses a whole string as a decimal u64: digits only (no sign, no spaces, no "0x"), at least one,
// with overflow detected. Returns the value, or an invalid_argument error that says why.
Result<uint64_t> parse_decimal_u64(std::string_view text);

// What the framing needs to know about one line: how many payload bytes follow it.
struct LineFrame {
  std::optional<uint64_t> payload_bytes;  // set when the line has a valid bytes=K, K <= max
  // Set when the line's payload declaration is unusable (malformed, repeated, over the maximum):
  // the stream can no longer be followed, so the error has must_close = true.
  std::optional<ProtocolError> error;
};

// Finds the payload declaration of `line` (no line terminator). The rule is the same for every
// verb, known or not, so that the stream stays in step even when the command is rejected; the one
// exception is AUTH, whose argument is taken verbatim and which never has a payload.
LineFrame frame_line(std::string_view line, uint64_t max_payload_bytes);

// Parses and validates one line (no line terminator) into a Command that carries `payload`.
// Preconditions: frame_line(line) returned no error and payload is set iff it declared one.
// Returns the Command, or a ProtocolError with must_close = false (UNKNOWN_COMMAND, BAD_ARGUMENT,
// BAD_REQUEST for bytes that are not printable ASCII). Error messages never echo an AUTH token.
std::variant<Command, ProtocolError> parse_command(std::string_view line,
                                                   std::optional<std::string> payload);

// True when the line holds nothing but spaces and tabs (such lines are skipped, so that an
// empty line typed into nc is harmless).
bool is_blank_line(std::string_view line);

}  // namespace ps::net
