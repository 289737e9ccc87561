// Shared fixture of the table-driven policy tests: the DOMAIN.md scenario
// (alice via app, agent-7 acting for planner) as a policy and a request, and
// the Case table row with the one check every row gets: accepted, or rejected
// with the code, a message that starts with the field and contains the rule,
// short, without raw NUL bytes.
#ifndef TOKENSIGN_TESTS_TOKEN_POLICY_CASES_H_
#define TOKENSIGN_TESTS_TOKEN_POLICY_CASES_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <string>

#include "signer/token/policy.h"

namespace tokensign::token::testing {

using Code = absl::StatusCode;

inline IssuerPolicy BasePolicy() {
  IssuerPolicy p;
  p.iss = "https://issuer.example";
  p.allowed_audiences = {"https://api.example", "https://tools.example"};
  p.allowed_scopes = {"read", "write"};
  p.allowed_actors = {{"agent-7", "", {}},
                      {"planner", "https://agents.example", {"app"}}};
  return p;
}

// The DOMAIN scenario: alice via app, agent-7 acting for planner.
inline TokenRequest BaseRequest() {
  TokenRequest r;
  r.subject = "alice";
  r.client_id = "app";
  r.audience = {"https://api.example"};
  r.scope = {"read"};
  r.actor_chain = {{"agent-7", ""}, {"planner", "https://agents.example"}};
  r.ttl_seconds = 600;
  return r;
}

inline TokenRequest TxnRequest() {
  TokenRequest r = BaseRequest();
  r.kind = TokenKind::kTransactionToken;
  r.ttl_seconds = 60;
  r.txn = "97053963-771d-49cc-a4e3-20aad399c312";
  r.req_wl = "apigateway.example";
  r.rctx = {{"req_ip", "198.51.100.7"}};
  r.tctx = {{"action", "BUY"}};
  return r;
}

// A 43-character SHA-256 thumbprint whose last character has clear padding
// bits.
inline constexpr char kJkt[] = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

struct Case {
  std::string name;
  std::function<void(IssuerPolicy&, TokenRequest&)> mutate;
  Code code;          // kOk = must be accepted
  std::string field;  // message starts with "<field>:"
  std::string rule;   // and contains this
};

inline void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Applies c.mutate to the scenario and checks CheckRequest's answer against the
// row.
inline void ExpectCase(const Case& c) {
  IssuerPolicy p = BasePolicy();
  TokenRequest r = BaseRequest();
  c.mutate(p, r);
  absl::Status s = CheckRequest(p, r);
  if (c.code == Code::kOk) {
    EXPECT_TRUE(s.ok()) << s;
    return;
  }
  ASSERT_FALSE(s.ok()) << "accepted but should be rejected: " << c.name;
  EXPECT_EQ(s.code(), c.code) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::StartsWith(c.field + ":"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(c.rule));
  EXPECT_EQ(std::string(s.message()).find('\0'), std::string::npos)
      << "messages carry no raw NUL";
  EXPECT_LT(s.message().size(), 600u)
      << "messages stay short even for huge input";
}

}  // namespace tokensign::token::testing

#endif  // TOKENSIGN_TESTS_TOKEN_POLICY_CASES_H_
