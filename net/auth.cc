#include "net/auth.h"

#include <string.h>  // explicit_bzero

#include <algorithm>
#include <cstring>

namespace ps::net {

bool constant_time_equal(const unsigned char* a, const unsigned char* b, size_t n) {
  unsigned char diff = 0;
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  // Keeps the compiler from turning the loop into one that stops early once diff is non-zero.
  asm volatile("" : "+r"(diff));
  return diff == 0;
}

Result<Token> Token::create(std::string_view secret) {
  if (secret.empty()) return invalid_argument("the auth token is empty");
  if (secret.size() > kMaxTokenBytes) {
    return invalid_argument("the auth token is ", secret.size(), " bytes; the maximum is ",
                            kMaxTokenBytes);
  }
  if (!std::all_of(secret.begin(), secret.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return invalid_argument(
        "the auth token holds a byte that is not printable ASCII "
        "(spaces and control bytes cannot be typed after AUTH)");
  }
  Token token;
  std::memcpy(token.padded_.data(), secret.data(), secret.size());
  token.size_ = secret.size();
  return token;
}

Token::~Token() { explicit_bzero(padded_.data(), padded_.size()); }

bool Token::matches(std::string_view presented) const {
  std::array<unsigned char, kMaxTokenBytes> candidate{};
  if (!presented.empty()) {  // a branch on the presented length only, which the client knows
    std::memcpy(candidate.data(), presented.data(), std::min(presented.size(), candidate.size()));
  }
  bool bytes_equal = constant_time_equal(candidate.data(), padded_.data(), kMaxTokenBytes);
  // The length is folded in without a branch on the secret: a token that is a prefix of the
  // secret, or the secret plus trailing NULs, must not match.
  uint64_t length_diff = static_cast<uint64_t>(presented.size()) ^ static_cast<uint64_t>(size_);
  asm volatile("" : "+r"(length_diff));
  explicit_bzero(candidate.data(), candidate.size());
  return bytes_equal & (length_diff == 0);
}

AccessLevel initial_level(const AuthPolicy& policy) {
  if (policy.user_token) return AccessLevel::kNone;
  if (policy.admin_token) return AccessLevel::kUser;
  return AccessLevel::kAdmin;
}

bool binary_protocol_allowed(const AuthPolicy& policy) { return !policy.user_token.has_value(); }

std::string_view access_level_name(AccessLevel level) {
  switch (level) {
    case AccessLevel::kNone:
      return "none";
    case AccessLevel::kUser:
      return "user";
    case AccessLevel::kAdmin:
      return "admin";
  }
  return "none";
}

ConnectionGate::ConnectionGate(const AuthPolicy& policy)
    : policy_(&policy), level_(initial_level(policy)) {}

std::optional<ProtocolError> ConnectionGate::check(Verb verb) const {
  const CommandSpec& spec = command_spec(verb);
  if (spec.before_auth) return std::nullopt;
  if (level_ == AccessLevel::kNone) {
    return ProtocolError{ErrorCode::kAuthRequired,
                         str_cat(spec.name, " needs authentication: send AUTH <token> first"),
                         false};
  }
  if (spec.admin && level_ != AccessLevel::kAdmin) {
    return ProtocolError{ErrorCode::kForbidden,
                         str_cat(spec.name, " is an admin command: send AUTH <admin token> first"),
                         false};
  }
  return std::nullopt;
}

std::variant<AccessLevel, ProtocolError> ConnectionGate::authenticate(std::string_view presented) {
  if (!policy_->user_token && !policy_->admin_token) {
    return ProtocolError{ErrorCode::kBadRequest, "this server has no token; AUTH is not needed",
                         false};
  }
  // Both comparisons always run, so the time does not say which token was close.
  bool is_admin = policy_->admin_token && policy_->admin_token->matches(presented);
  bool is_user = policy_->user_token && policy_->user_token->matches(presented);
  AccessLevel reached = AccessLevel::kNone;
  if (is_admin) {
    reached = AccessLevel::kAdmin;
  } else if (is_user) {
    reached = policy_->admin_token ? AccessLevel::kUser : AccessLevel::kAdmin;
  }
  if (reached == AccessLevel::kNone) {
    ++failures_;
    bool close = policy_->max_failures != 0 && failures_ >= policy_->max_failures;
    return ProtocolError{
        ErrorCode::kAuthFailed,
        close ? str_cat("wrong token (", failures_, " failures), closing") : "wrong token", close};
  }
  level_ = std::max(level_, reached);
  return level_;
}

}  // namespace ps::net
