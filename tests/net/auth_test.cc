// Tokens, their constant-time comparison, and the per-connection gate.
#include "net/auth.h"

#include <catch2/catch.hpp>
#include <string>

namespace ps::net {
namespace {

using namespace std::string_literals;

Token make_token(std::string_view secret) {
  Result<Token> token = Token::create(secret);
  REQUIRE(token.ok());
  return *token;
}

TEST_CASE("constant_time_equal compares every byte", "[net][auth]") {
  const unsigned char a[] = {1, 2, 3, 4};
  const unsigned char b[] = {1, 2, 3, 5};
  const unsigned char c[] = {0, 2, 3, 4};
  CHECK(constant_time_equal(a, a, 4));
  CHECK_FALSE(constant_time_equal(a, b, 4));
  CHECK_FALSE(constant_time_equal(a, c, 4));
  CHECK(constant_time_equal(a, b, 3));
  CHECK(constant_time_equal(a, b, 0));
}

TEST_CASE("a token matches itself only", "[net][auth]") {
  Token token = make_token("s3cret-Token=");
  CHECK(token.matches("s3cret-Token="));
  CHECK_FALSE(token.matches(""));
  CHECK_FALSE(token.matches("s3cret-Token"));          // a prefix
  CHECK_FALSE(token.matches("s3cret-Token=="));        // one more byte
  CHECK_FALSE(token.matches("s3cret-Token=\0"s));      // the zero padding must not match
  CHECK_FALSE(token.matches("s3cret-token="));         // case matters
  CHECK_FALSE(token.matches("t3cret-Token="));         // first byte differs
  CHECK_FALSE(token.matches(std::string(1000, 's')));  // longer than any token
  // A copy matches the same way (tokens live in the server's configuration).
  Token copy = token;
  CHECK(copy.matches("s3cret-Token="));
}

TEST_CASE("tokens of the maximum length compare correctly", "[net][auth]") {
  std::string secret(kMaxTokenBytes, 'k');
  Token token = make_token(secret);
  CHECK(token.matches(secret));
  CHECK_FALSE(token.matches(secret + "k"));  // truncated to the buffer, but the length differs
  std::string last = secret;
  last.back() = 'j';
  CHECK_FALSE(token.matches(last));
  CHECK_FALSE(token.matches(secret.substr(1)));
}

TEST_CASE("Token::create refuses unusable secrets without quoting them", "[net][auth]") {
  CHECK_FALSE(Token::create("").ok());
  Result<Token> too_long = Token::create(std::string(kMaxTokenBytes + 1, 'x'));
  REQUIRE_FALSE(too_long.ok());
  CHECK(too_long.status().code() == Code::kInvalidArgument);
  for (std::string bad : {"has space"s, "tab\there"s, "nl\n"s, "nul\0x"s, "caf\xc3\xa9"s}) {
    Result<Token> r = Token::create(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find(bad) == std::string::npos);
  }
}

TEST_CASE("without a token every connection is admin and AUTH is not needed", "[net][auth]") {
  AuthPolicy policy;
  ConnectionGate gate(policy);
  CHECK(gate.level() == AccessLevel::kAdmin);
  for (const CommandSpec& spec : command_specs()) CHECK_FALSE(gate.check(spec.verb).has_value());
  auto result = gate.authenticate("anything");
  REQUIRE(std::holds_alternative<ProtocolError>(result));
  CHECK(std::get<ProtocolError>(result).code == ErrorCode::kBadRequest);
  CHECK_FALSE(std::get<ProtocolError>(result).must_close);
  CHECK(binary_protocol_allowed(policy));
}

TEST_CASE("with a user token only AUTH, PING, HELP and QUIT run before AUTH", "[net][auth]") {
  AuthPolicy policy;
  policy.user_token = make_token("user-secret");
  CHECK_FALSE(binary_protocol_allowed(policy));
  ConnectionGate gate(policy);
  CHECK(gate.level() == AccessLevel::kNone);
  for (const CommandSpec& spec : command_specs()) {
    INFO(spec.name);
    std::optional<ProtocolError> denied = gate.check(spec.verb);
    bool open = spec.verb == Verb::kAuth || spec.verb == Verb::kPing || spec.verb == Verb::kHelp ||
                spec.verb == Verb::kQuit;
    CHECK(denied.has_value() == !open);
    if (denied) {
      CHECK(denied->code == ErrorCode::kAuthRequired);
      CHECK_FALSE(denied->must_close);
      CHECK(denied->message.find(spec.name) != std::string::npos);
    }
  }
  auto result = gate.authenticate("user-secret");
  REQUIRE(std::holds_alternative<AccessLevel>(result));
  // With no admin token, the user token is the admin token too.
  CHECK(std::get<AccessLevel>(result) == AccessLevel::kAdmin);
  for (const CommandSpec& spec : command_specs()) CHECK_FALSE(gate.check(spec.verb).has_value());
}

TEST_CASE("user and admin tokens give their levels", "[net][auth]") {
  AuthPolicy policy;
  policy.user_token = make_token("user-secret");
  policy.admin_token = make_token("admin-secret");
  ConnectionGate gate(policy);
  auto user = gate.authenticate("user-secret");
  REQUIRE(std::holds_alternative<AccessLevel>(user));
  CHECK(std::get<AccessLevel>(user) == AccessLevel::kUser);
  CHECK_FALSE(gate.check(Verb::kInfer).has_value());
  CHECK_FALSE(gate.check(Verb::kTrain).has_value());
  std::optional<ProtocolError> denied = gate.check(Verb::kLoad);
  REQUIRE(denied.has_value());
  CHECK(denied->code == ErrorCode::kForbidden);
  CHECK(gate.check(Verb::kUnload)->code == ErrorCode::kForbidden);

  auto admin = gate.authenticate("admin-secret");
  REQUIRE(std::holds_alternative<AccessLevel>(admin));
  CHECK(std::get<AccessLevel>(admin) == AccessLevel::kAdmin);
  CHECK_FALSE(gate.check(Verb::kLoad).has_value());
  // A later user AUTH does not lower the level.
  REQUIRE(std::holds_alternative<AccessLevel>(gate.authenticate("user-secret")));
  CHECK(gate.level() == AccessLevel::kAdmin);
}

TEST_CASE("an admin token alone protects only the admin commands", "[net][auth]") {
  AuthPolicy policy;
  policy.admin_token = make_token("admin-secret");
  CHECK(binary_protocol_allowed(policy));
  ConnectionGate gate(policy);
  CHECK(gate.level() == AccessLevel::kUser);
  CHECK_FALSE(gate.check(Verb::kInfer).has_value());
  CHECK(gate.check(Verb::kLoad)->code == ErrorCode::kForbidden);
  CHECK(std::holds_alternative<ProtocolError>(gate.authenticate("user-secret")));
  CHECK(std::holds_alternative<AccessLevel>(gate.authenticate("admin-secret")));
  CHECK_FALSE(gate.check(Verb::kLoad).has_value());
}

TEST_CASE("failed AUTH is counted and closes after the limit", "[net][auth]") {
  AuthPolicy policy;
  policy.user_token = make_token("user-secret");
  policy.max_failures = 3;
  ConnectionGate gate(policy);
  for (int i = 1; i <= 3; ++i) {
    auto result = gate.authenticate("guess" + std::to_string(i));
    REQUIRE(std::holds_alternative<ProtocolError>(result));
    const ProtocolError& e = std::get<ProtocolError>(result);
    CHECK(e.code == ErrorCode::kAuthFailed);
    CHECK(e.must_close == (i == 3));
    CHECK(e.message.find("guess") == std::string::npos);
  }
  CHECK(gate.failures() == 3);
  CHECK(gate.level() == AccessLevel::kNone);

  policy.max_failures = 0;  // never closes
  ConnectionGate patient(policy);
  for (int i = 0; i < 10; ++i) {
    auto result = patient.authenticate("guess");
    REQUIRE(std::holds_alternative<ProtocolError>(result));
    CHECK_FALSE(std::get<ProtocolError>(result).must_close);
  }
  CHECK(std::holds_alternative<AccessLevel>(patient.authenticate("user-secret")));
}

TEST_CASE("access level names", "[net][auth]") {
  CHECK(access_level_name(AccessLevel::kNone) == "none");
  CHECK(access_level_name(AccessLevel::kUser) == "user");
  CHECK(access_level_name(AccessLevel::kAdmin) == "admin");
}

}  // namespace
}  // namespace ps::net
