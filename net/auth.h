// Authentication of text-protocol connections: the secret token, its constant-time comparison,
// and the per-connection gate that says which commands may run before AUTH.
//
// Constant time, and why the token is padded. A byte-by-byte compare that stops at the first
// difference lets a client find the token one byte at a time by timing replies. Comparing every
// byte with XOR/OR removes that, but a compare over min/max(len) still leaks the secret's length.
// So the secret is stored zero-padded in a fixed kMaxTokenBytes buffer, the presented token is
// copied into a zeroed buffer of the same size, and the comparison always reads all
// kMaxTokenBytes bytes of both and also folds the length difference in, without a branch. Its
// time depends only on the presented token's length (which the client knows already), never on
// the secret's bytes or length. A fixed-length digest (SHA-256 of both sides) would do the same
// without the length cap, but needs a hash implementation; 256 bytes is ample for a token.
//
// Levels. A policy may hold a user token and an admin token:
//   no tokens               every connection starts at admin (a loopback-only server);
//   admin token only        connections start at user; AUTH <admin token> raises to admin;
//   user token only         connections start at none; AUTH <user token> reaches admin;
//   both                    none; AUTH <user token> -> user, AUTH <admin token> -> admin.
// Before AUTH (level none) only the commands marked before_auth run: AUTH, PING, HELP and QUIT
// (QUIT only closes the connection, which the client can do anyway). LOAD and UNLOAD need admin.
// The binary protocol cannot authenticate, so it is allowed only when there is no user token.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "common/status.h"
#include "net/text_command.h"
#include "net/wire_error.h"

namespace ps::net {

// Compares n bytes of a and b in time that depends only on n. Returns true iff equal.
bool constant_time_equal(const unsigned char* a, const unsigned char* b, size_t n);

// A secret token, kept zero-padded to kMaxTokenBytes. The buffer is wiped on destruction.
class Token {
 public:
  // Returns the token, or invalid_argument when `secret` is empty, longer than kMaxTokenBytes or
  // holds a byte that is not printable ASCII (it must be typeable after AUTH). The error does not
  // quote the secret.
  static Result<Token> create(std::string_view secret);

  Token(const Token& other) = default;
  Token& operator=(const Token& other) = default;
  ~Token();

  // True iff `presented` equals the secret; constant time as explained above. Any string may
  // be presented (a longer one simply does not match).
  bool matches(std::string_view presented) const;

 private:
  Token() = default;
  std::array<unsigned char, kMaxTokenBytes> padded_{};
  size_t size_ = 0;
};

struct AuthPolicy {
  std::optional<Token> user_token;
  std::optional<Token> admin_token;
  // After this many failed AUTH on one connection the failure must close it; 0 = never.
  uint32_t max_failures = 3;
};

enum class AccessLevel : uint8_t { kNone, kUser, kAdmin };

// The access level a new connection starts at under `policy`.
AccessLevel initial_level(const AuthPolicy& policy);

// True when binary-protocol connections are served under `policy` (no user token).
bool binary_protocol_allowed(const AuthPolicy& policy);

// The per-connection state of authentication. Preconditions: the policy outlives the gate.
class ConnectionGate {
 public:
  explicit ConnectionGate(const AuthPolicy& policy);

  // Whether `verb` may run at the current level. Returns nullopt when it may; otherwise the error
  // to answer (AUTH_REQUIRED before AUTH, FORBIDDEN for an admin command at user level), with
  // must_close = false.
  std::optional<ProtocolError> check(Verb verb) const;

  // Handles `AUTH <presented>`. Returns the level reached (never lower than the current one), or
  // AUTH_FAILED (must_close once max_failures failures were reached), or BAD_REQUEST when the
  // policy has no token at all.
  std::variant<AccessLevel, ProtocolError> authenticate(std::string_view presented);

  AccessLevel level() const { return level_; }
  uint32_t failures() const { return failures_; }

 private:
  const AuthPolicy* policy_;
  AccessLevel level_;
  uint32_t failures_ = 0;
};

// "none", "user", "admin" (the AUTH reply says `OK auth=<level>`).
std::string_view access_level_name(AccessLevel level);

}  // namespace ps::net
