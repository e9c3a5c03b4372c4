#include "net/text_command.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

namespace ps::net {
namespace {

// ---------------------------------------------------------------------------------------------
// The command table.

constexpr uint64_t kMaxBatch = 4096;
constexpr uint64_t kMaxSteps = 1'000'000'000'000ULL;
constexpr uint64_t kAnyCount = ~uint64_t{0};

constexpr ArgSpec kModelArg[] = {{"model", ArgKind::kModel}};
constexpr ArgSpec kJobArg[] = {{"job", ArgKind::kJob}};
constexpr ArgSpec kTokenArg[] = {{"token", ArgKind::kToken}};
constexpr ArgSpec kLoadArgs[] = {{"model", ArgKind::kModel}, {"package", ArgKind::kPath, true}};

constexpr OptionSpec kInferOptions[] = {
    {"batch", OptionKind::kNumber, 1, kMaxBatch, {}},
    {kPayloadOption, OptionKind::kNumber, 0, kAnyCount, {}},
    {"output", OptionKind::kChoice, 0, 0, "none|raw"},
};
constexpr OptionSpec kTrainOptions[] = {
    {"batch", OptionKind::kNumber, 1, kMaxBatch, {}},
    {"steps", OptionKind::kNumber, 1, kMaxSteps, {}},
    {"lr", OptionKind::kReal, 0, 100, {}},
    {"momentum", OptionKind::kReal, 0, 1, {}},
    {"wd", OptionKind::kReal, 0, 1, {}},
    {"seed", OptionKind::kNumber, 0, kAnyCount, {}},
    {"classes", OptionKind::kNumber, 1, 1'000'000, {}},
    {"noise", OptionKind::kReal, 0, 1000, {}},
    {"data", OptionKind::kChoice, 0, 0, "patterns|single"},
    {"every", OptionKind::kNumber, 1, kMaxSteps, {}},
    {"checkpoint", OptionKind::kName, 0, 0, {}},
    {"resume", OptionKind::kName, 0, 0, {}},
    {"device", OptionKind::kName, 0, 0, {}},
};

// clang-format off
constexpr CommandSpec kSpecs[] = {
    {.verb = Verb::kPing, .name = "PING", .before_auth = true,
     .syntax = "PING",
     .summary = "checks the connection; replies OK pong"},
    {.verb = Verb::kHelp, .name = "HELP", .before_auth = true,
     .syntax = "HELP",
     .summary = "lists every command with its syntax (this text)"},
    {.verb = Verb::kAuth, .name = "AUTH", .args = kTokenArg, .before_auth = true,
     .syntax = "AUTH <token>",
     .summary = "authenticates the connection (needed first when the server has a token)"},
    {.verb = Verb::kQuit, .name = "QUIT", .before_auth = true,
     .syntax = "QUIT",
     .summary = "replies OK bye and closes the connection"},
    {.verb = Verb::kModels, .name = "MODELS",
     .syntax = "MODELS",
     .summary = "lists the registered models, one per line of the payload"},
    {.verb = Verb::kInfer, .name = "INFER", .args = kModelArg, .options = kInferOptions,
     .syntax = "INFER <model> [batch=N] [bytes=K] [output=none|raw]",
     .summary = "runs one inference; K bytes of raw input follow the line (without bytes=, a "
                "deterministic synthetic input); output=raw returns the output tensor as the "
                "reply's payload"},
    {.verb = Verb::kTrain, .name = "TRAIN", .args = kModelArg, .options = kTrainOptions,
     .syntax = "TRAIN <model> [batch=N] [steps=N] [lr=X] [momentum=X] [wd=X] [seed=N] "
               "[classes=N] [noise=X] [data=patterns|single] [every=N] [checkpoint=FILE] "
               "[resume=FILE] [device=NAME]",
     .summary = "starts a background training job (without steps=, it runs until STOP); "
                "checkpoints go to FILE in the server's --checkpoints directory (every N "
                "steps, on CHECKPOINT and when the job stops); resume= starts from one; "
                "device= pins it to one device of a server with several (STATS lists them); "
                "replies its job id"},
    {.verb = Verb::kJobs, .name = "JOBS",
     .syntax = "JOBS",
     .summary = "lists the training jobs, one per line of the payload"},
    {.verb = Verb::kStop, .name = "STOP", .args = kJobArg,
     .syntax = "STOP <job>",
     .summary = "stops a training job at its next step boundary (saving its checkpoint)"},
    {.verb = Verb::kCheckpoint, .name = "CHECKPOINT", .args = kJobArg,
     .syntax = "CHECKPOINT <job>",
     .summary = "saves a running job's checkpoint at its next step boundary; replies when "
                "it is written"},
    {.verb = Verb::kStats, .name = "STATS",
     .syntax = "STATS",
     .summary = "server counters and latency summaries, one key=value per line of the payload"},
    {.verb = Verb::kLoad, .name = "LOAD", .args = kLoadArgs, .admin = true,
     .syntax = "LOAD <model> [<package>]",
     .summary = "(admin) registers a model from a package in the models directory"},
    {.verb = Verb::kUnload, .name = "UNLOAD", .args = kModelArg, .admin = true,
     .syntax = "UNLOAD <model>",
     .summary = "(admin) unregisters a model"},
};
// clang-format on

// ---------------------------------------------------------------------------------------------
// Character classes and small helpers.

bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_printable(char c) { return c > 0x20 && c < 0x7f; }
char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = to_lower(c);
  return out;
}

// Splits a line on runs of spaces and tabs.
std::vector<std::string_view> tokenize(std::string_view line) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (i > start) tokens.push_back(line.substr(start, i - start));
  }
  return tokens;
}

// Client text quoted in an error message: at most 40 bytes, so a message stays one short line.
// The reply formatter replaces any byte that is not printable.
std::string quote(std::string_view text) {
  constexpr size_t kMax = 40;
  if (text.size() <= kMax) return str_cat("'", text, "'");
  return str_cat("'", text.substr(0, kMax), "...'");
}

// A verb with a token argument takes its arguments verbatim: a token may contain '='.
bool takes_verbatim_args(const CommandSpec& spec) {
  return std::any_of(spec.args.begin(), spec.args.end(),
                     [](const ArgSpec& arg) { return arg.kind == ArgKind::kToken; });
}

ProtocolError bad_argument(const CommandSpec& spec, std::string_view what) {
  return ProtocolError{ErrorCode::kBadArgument, str_cat(what, "; usage: ", spec.syntax), false};
}

std::optional<std::string> check_arg(const ArgSpec& arg, std::string_view text) {
  switch (arg.kind) {
    case ArgKind::kModel: {
      if (text.size() > kMaxModelNameBytes) {
        return str_cat("<", arg.name, "> is longer than ", kMaxModelNameBytes, " bytes");
      }
      bool ok = std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
      });
      if (!ok) return str_cat("<", arg.name, "> ", quote(text), " may hold only A-Z a-z 0-9 _ . -");
      return std::nullopt;
    }
    case ArgKind::kJob: {
      Result<uint64_t> id = parse_decimal_u64(text);
      if (!id.ok()) return str_cat("<", arg.name, "> ", id.status().message());
      return std::nullopt;
    }
    case ArgKind::kToken:
      // Never echoed: a near-miss token in a log or a terminal is half a leak.
      if (text.size() > kMaxTokenBytes)
        return str_cat("<token> is longer than ", kMaxTokenBytes, " bytes");
      return std::nullopt;
    case ArgKind::kPath:
      if (text.size() > kMaxPathBytes)
        return str_cat("<", arg.name, "> is longer than ", kMaxPathBytes, " bytes");
      return std::nullopt;
  }
  return std::nullopt;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

std::optional<std::string> check_option(const OptionSpec& spec, std::string_view value,
                                        OptionValue* out) {
  out->key = std::string(spec.key);
  if (spec.kind == OptionKind::kReal) {
    Result<double> real = parse_decimal_real(value);
    if (!real.ok()) return str_cat(spec.key, "=", quote(value), ": ", real.status().message());
    if (*real < static_cast<double>(spec.min) || *real > static_cast<double>(spec.max)) {
      return str_cat(spec.key, "=", quote(value), ": out of range ", spec.min, "..", spec.max);
    }
    out->text = std::string(value);
    out->real = *real;
    return std::nullopt;
  }
  if (spec.kind == OptionKind::kName) {
    if (value.size() > kMaxFileNameBytes) {
      return str_cat(spec.key, "= is longer than ", kMaxFileNameBytes, " bytes");
    }
    if (value[0] == '.' || !std::all_of(value.begin(), value.end(), is_name_char)) {
      return str_cat(spec.key, "=", quote(value),
                     ": a file name of A-Z a-z 0-9 _ . - that does not start with '.'");
    }
    out->text = std::string(value);
    return std::nullopt;
  }
  if (spec.kind == OptionKind::kNumber) {
    Result<uint64_t> number = parse_decimal_u64(value);
    if (!number.ok()) return str_cat(spec.key, "=", quote(value), ": ", number.status().message());
    if (*number < spec.min || *number > spec.max) {
      return str_cat(spec.key, "=", quote(value), ": out of range ", spec.min, "..", spec.max);
    }
    out->text = std::string(value);
    out->number = *number;
    return std::nullopt;
  }
  std::string chosen = lower(value);
  std::string_view rest = spec.choices;
  while (!rest.empty()) {
    size_t bar = rest.find('|');
    std::string_view choice = rest.substr(0, bar);
    if (choice == chosen) {
      out->text = std::move(chosen);
      return std::nullopt;
    }
    rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
  }
  return str_cat(spec.key, "=", quote(value), ": must be one of ", spec.choices);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::span<const CommandSpec> command_specs() { return kSpecs; }

const CommandSpec& command_spec(Verb verb) {
  for (const CommandSpec& spec : kSpecs) {
    if (spec.verb == verb) return spec;
  }
  fatal(__FILE__, __LINE__, "a Verb without a CommandSpec");
}

std::optional<Verb> verb_from_name(std::string_view name) {
  for (const CommandSpec& spec : kSpecs) {
    if (equals_ignore_case(spec.name, name)) return spec.verb;
  }
  return std::nullopt;
}

const OptionValue* Command::find(std::string_view key) const {
  for (const OptionValue& option : options) {
    if (option.key == key) return &option;
  }
  return nullptr;
}

uint64_t Command::number_or(std::string_view key, uint64_t fallback) const {
  const OptionValue* option = find(key);
  return option ? option->number : fallback;
}

std::optional<uint64_t> Command::number(std::string_view key) const {
  const OptionValue* option = find(key);
  if (!option) return std::nullopt;
  return option->number;
}

double Command::real_or(std::string_view key, double fallback) const {
  const OptionValue* option = find(key);
  return option ? option->real : fallback;
}

std::string_view Command::name_or(std::string_view key, std::string_view fallback) const {
  const OptionValue* option = find(key);
  return option ? std::string_view(option->text) : fallback;
}

std::string_view Command::choice_or(std::string_view key, std::string_view fallback) const {
  const OptionValue* option = find(key);
  return option ? std::string_view(option->text) : fallback;
}

uint64_t Command::arg_number(size_t index) const {
  PS_CHECK(index < args.size());
  Result<uint64_t> value = parse_decimal_u64(args[index]);
  PS_CHECK(value.ok());
  return *value;
}

Result<double> parse_decimal_real(std::string_view text) {
  if (text.empty()) return invalid_argument("empty, expected a decimal number");
  if (text[0] == '-') return invalid_argument("negative, expected an unsigned decimal number");
  // digits [. digits] [(e|E) [+|-] digits], with at least one digit in the mantissa.
  size_t i = 0, mantissa_digits = 0;
  auto digits = [&] {
    size_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i, ++n;
    return n;
  };
  mantissa_digits += digits();
  if (i < text.size() && text[i] == '.') {
    ++i;
    mantissa_digits += digits();
  }
  bool well_formed = mantissa_digits > 0;
  if (well_formed && i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    well_formed = digits() > 0;
  }
  if (!well_formed || i != text.size()) {
    return invalid_argument("not a decimal number (like 0.05 or 1e-4)");
  }
  double value = 0.0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return invalid_argument("out of the range of a double");
  }
  return value;
}

Result<uint64_t> parse_decimal_u64(std::string_view text) {
  if (text.empty()) return invalid_argument("empty, expected a decimal integer");
  if (text[0] == '-') return invalid_argument("negative, expected an unsigned decimal integer");
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return invalid_argument("not a decimal integer (digits 0-9 only)");
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (__builtin_mul_overflow(value, uint64_t{10}, &value) ||
        __builtin_add_overflow(value, digit, &value)) {
      return invalid_argument("too large (over 18446744073709551615)");
    }
  }
  return value;
}

bool is_blank_line(std::string_view line) {
  return std::all_of(line.begin(), line.end(), is_space);
}

LineFrame frame_line(std::string_view line, uint64_t max_payload_bytes) {
  LineFrame frame;
  std::vector<std::string_view> tokens = tokenize(line);
  if (tokens.empty()) return frame;
  std::optional<Verb> verb = verb_from_name(tokens[0]);
  if (verb && takes_verbatim_args(command_spec(*verb))) return frame;
  for (size_t i = 1; i < tokens.size(); ++i) {
    std::string_view token = tokens[i];
    size_t eq = token.find('=');
    if (eq == std::string_view::npos || !equals_ignore_case(token.substr(0, eq), kPayloadOption)) {
      continue;
    }
    std::string_view value = token.substr(eq + 1);
    if (frame.payload_bytes) {
      frame.error =
          ProtocolError{ErrorCode::kBadRequest,
                        "bytes= given twice; the payload length is ambiguous, closing", true};
      return frame;
    }
    Result<uint64_t> bytes = parse_decimal_u64(value);
    if (!bytes.ok()) {
      frame.error = ProtocolError{ErrorCode::kBadRequest,
                                  str_cat("bytes=", quote(value), ": ", bytes.status().message(),
                                          "; the payload length is unknown, closing"),
                                  true};
      return frame;
    }
    if (*bytes > max_payload_bytes) {
      frame.error = ProtocolError{ErrorCode::kPayloadTooLarge,
                                  str_cat("bytes=", *bytes, " is over the maximum payload of ",
                                          max_payload_bytes, " bytes, closing"),
                                  true};
      return frame;
    }
    frame.payload_bytes = *bytes;
  }
  return frame;
}

std::variant<Command, ProtocolError> parse_command(std::string_view line,
                                                   std::optional<std::string> payload) {
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (!is_printable(c) && !is_space(c)) {
      return ProtocolError{
          ErrorCode::kBadRequest,
          str_cat("byte 0x", "0123456789abcdef"[(static_cast<unsigned char>(c) >> 4) & 0xf],
                  "0123456789abcdef"[static_cast<unsigned char>(c) & 0xf], " at column ", i + 1,
                  " is not printable ASCII"),
          false};
    }
  }
  std::vector<std::string_view> tokens = tokenize(line);
  if (tokens.empty()) return ProtocolError{ErrorCode::kBadRequest, "empty command line", false};

  std::optional<Verb> verb = verb_from_name(tokens[0]);
  if (!verb) {
    return ProtocolError{
        ErrorCode::kUnknownCommand,
        str_cat("unknown command ", quote(tokens[0]), " (HELP lists the commands)"), false};
  }
  const CommandSpec& spec = command_spec(*verb);
  Command command;
  command.verb = *verb;
  bool verbatim = takes_verbatim_args(spec);

  std::vector<std::string_view> positional;
  for (size_t i = 1; i < tokens.size(); ++i) {
    std::string_view token = tokens[i];
    size_t eq = token.find('=');
    if (verbatim || eq == std::string_view::npos) {
      positional.push_back(token);
      continue;
    }
    std::string_view key = token.substr(0, eq);
    std::string_view value = token.substr(eq + 1);
    if (key.empty()) return bad_argument(spec, str_cat(quote(token), ": option without a name"));
    if (value.empty()) return bad_argument(spec, str_cat(quote(token), ": option without a value"));
    const OptionSpec* option_spec = nullptr;
    for (const OptionSpec& candidate : spec.options) {
      if (equals_ignore_case(candidate.key, key)) option_spec = &candidate;
    }
    if (!option_spec) {
      return bad_argument(spec, str_cat(spec.name, " has no option ", quote(lower(key))));
    }
    if (command.find(option_spec->key)) {
      return bad_argument(spec, str_cat("option ", option_spec->key, " given twice"));
    }
    OptionValue option;
    if (std::optional<std::string> why = check_option(*option_spec, value, &option)) {
      return bad_argument(spec, *why);
    }
    command.options.push_back(std::move(option));
  }

  size_t required = static_cast<size_t>(std::count_if(
      spec.args.begin(), spec.args.end(), [](const ArgSpec& arg) { return !arg.optional; }));
  if (positional.size() < required) {
    return bad_argument(spec,
                        str_cat(spec.name, " needs <", spec.args[positional.size()].name, ">"));
  }
  if (positional.size() > spec.args.size()) {
    return bad_argument(spec, str_cat(spec.name, " takes at most ", spec.args.size(),
                                      spec.args.size() == 1 ? " argument" : " arguments", ", got ",
                                      positional.size()));
  }
  for (size_t i = 0; i < positional.size(); ++i) {
    if (std::optional<std::string> why = check_arg(spec.args[i], positional[i])) {
      return bad_argument(spec, *why);
    }
    command.args.emplace_back(positional[i]);
  }
  // The framing and this parser agree on bytes=: either both saw it or neither did.
  PS_CHECK(command.find(kPayloadOption) == nullptr || payload.has_value());
  command.payload = std::move(payload);
  if (command.payload && !command.find(kPayloadOption)) {
    // The line declared a payload (framing is verb-independent) but this verb takes none.
    return bad_argument(spec, str_cat(spec.name, " takes no payload (bytes=)"));
  }
  return command;
}

}  // namespace ps::net
