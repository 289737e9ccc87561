// Delegation policy: table-driven, every rule with an accepting and a rejecting
// case; each rejection asserts the code, the field the message starts with, and
// the rule.
#include "signer/token/policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "tests/token/policy_cases.h"

namespace tokensign::token {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace ::tokensign::token::testing;  // NOLINT: the shared table
                                              // fixture

std::string Big(size_t n) { return std::string(n, 'x'); }

class PolicyTable : public ::testing::TestWithParam<Case> {};

TEST_P(PolicyTable, AcceptsOrRejectsNamingFieldAndRule) {
  ExpectCase(GetParam());
}

using P = IssuerPolicy;
using R = TokenRequest;

const Case kCases[] = {
    // Baseline and token kind.
    {"base_ok", [](P&, R&) {}, Code::kOk, "", ""},
    {"txn_ok", [](P&, R& r) { r = TxnRequest(); }, Code::kOk, "", ""},
    {"kind_not_allowed",
     [](P& p, R& r) {
       p.allowed_kinds = {TokenKind::kAccessToken};
       r = TxnRequest();
     },
     Code::kPermissionDenied, "kind", "transaction_token is not allowed"},
    // sub / client_id.
    {"sub_empty", [](P&, R& r) { r.subject.clear(); }, Code::kInvalidArgument,
     "sub", "empty"},
    {"sub_huge", [](P&, R& r) { r.subject = Big(1 << 20); },
     Code::kInvalidArgument, "sub", "1048576 bytes exceeds max 1024"},
    {"sub_max_ok", [](P&, R& r) { r.subject = Big(1024); }, Code::kOk, "", ""},
    {"sub_bad_utf8", [](P&, R& r) { r.subject = "al\xffice"; },
     Code::kInvalidArgument, "sub", "not valid UTF-8"},
    {"sub_utf8_ok", [](P&, R& r) { r.subject = "J\xc3\xbcrgen"; }, Code::kOk,
     "", ""},
    {"client_empty", [](P&, R& r) { r.client_id.clear(); },
     Code::kInvalidArgument, "client_id", "empty"},
    // aud.
    {"aud_many_ok",
     [](P&, R& r) {
       r.audience = {"https://api.example", "https://tools.example"};
     },
     Code::kOk, "", ""},
    {"aud_empty", [](P&, R& r) { r.audience.clear(); }, Code::kInvalidArgument,
     "aud", "give at least one of: https://api.example, https://tools.example"},
    {"aud_outside", [](P&, R& r) { r.audience = {"https://evil.example"}; },
     Code::kPermissionDenied, "aud[0]",
     "not an allowed audience; allowed: https://api.example"},
    {"aud_second_outside",
     [](P&, R& r) { r.audience.push_back("https://evil.example"); },
     Code::kPermissionDenied, "aud[1]", "not an allowed audience"},
    {"aud_repeated",
     [](P&, R& r) { r.audience.push_back("https://api.example"); },
     Code::kInvalidArgument, "aud[1]", "repeats aud[0]"},
    {"aud_entry_empty", [](P&, R& r) { r.audience = {""}; },
     Code::kInvalidArgument, "aud[0]", "empty"},
    {"aud_huge_count",
     [](P&, R& r) { r.audience.assign(100000, "https://api.example"); },
     Code::kInvalidArgument, "aud", "100000 audiences exceeds max 16"},
    {"txn_two_aud",
     [](P&, R& r) {
       r = TxnRequest();
       r.audience.push_back("https://tools.example");
     },
     Code::kInvalidArgument, "aud", "exactly one (the trust domain)"},
    // scope.
    {"scope_two_ok",
     [](P&, R& r) {
       r.scope = {"read", "write"};
     },
     Code::kOk, "", ""},
    {"scope_none_ok", [](P&, R& r) { r.scope.clear(); }, Code::kOk, "", ""},
    {"scope_outside",
     [](P&, R& r) {
       r.scope = {"read", "admin"};
     },
     Code::kPermissionDenied, "scope[1]",
     "\"admin\" is not an allowed scope; allowed: read, write"},
    {"scope_space", [](P&, R& r) { r.scope = {"read write"}; },
     Code::kInvalidArgument, "scope[0]", "contains whitespace"},
    {"scope_empty_token", [](P&, R& r) { r.scope = {""}; },
     Code::kInvalidArgument, "scope[0]", "empty"},
    {"scope_quote", [](P&, R& r) { r.scope = {"re\"ad"}; },
     Code::kInvalidArgument, "scope[0]", "contains character 0x22"},
    {"scope_repeated",
     [](P&, R& r) {
       r.scope = {"read", "read"};
     },
     Code::kInvalidArgument, "scope[1]", "repeats scope[0]"},
    {"scope_huge_token", [](P&, R& r) { r.scope = {Big(5000)}; },
     Code::kInvalidArgument, "scope[0]", "5000 bytes exceeds max 256"},
    {"scope_huge_count", [](P&, R& r) { r.scope.assign(65, "read"); },
     Code::kInvalidArgument, "scope", "65 scopes exceeds max 64"},
    // ttl.
    {"ttl_default_ok", [](P&, R& r) { r.ttl_seconds = 0; }, Code::kOk, "", ""},
    {"ttl_max_ok", [](P&, R& r) { r.ttl_seconds = 3600; }, Code::kOk, "", ""},
    {"ttl_over_max", [](P&, R& r) { r.ttl_seconds = 3601; },
     Code::kInvalidArgument, "ttl_seconds",
     "3601 exceeds max 3600 for access_token"},
    {"ttl_negative", [](P&, R& r) { r.ttl_seconds = -1; },
     Code::kInvalidArgument, "ttl_seconds", "-1 is negative"},
    {"txn_ttl_over_max",
     [](P&, R& r) {
       r = TxnRequest();
       r.ttl_seconds = 301;
     },
     Code::kInvalidArgument, "ttl_seconds",
     "301 exceeds max 300 for transaction_token"},
    {"bad_policy_default",
     [](P& p, R& r) {
       p.default_ttl_access = 7200;
       r.ttl_seconds = 0;
     },
     Code::kFailedPrecondition, "ttl_seconds", "fix the issuer policy"},
    // actors.
    {"no_actor_ok", [](P&, R& r) { r.actor_chain.clear(); }, Code::kOk, "", ""},
    {"actor_unknown", [](P&, R& r) { r.actor_chain[0].sub = "rogue"; },
     Code::kPermissionDenied, "act.sub",
     "actor \"rogue\" is not allowed to act; allowed actors: agent-7, planner"},
    {"actor_unknown_nested", [](P&, R& r) { r.actor_chain[1].sub = "rogue"; },
     Code::kPermissionDenied, "act.act.sub",
     "actor \"rogue\" (iss \"https://agents.example\") is not allowed to act"},
    {"actor_wrong_iss",
     [](P&, R& r) { r.actor_chain[1].iss = "https://evil.example"; },
     Code::kPermissionDenied, "act.act.sub",
     "(iss \"https://evil.example\") is not allowed"},
    {"actor_not_for_client", [](P&, R& r) { r.client_id = "other"; },
     Code::kPermissionDenied, "act.act.sub",
     "\"planner\" is not allowed to act for client \"other\"; it may act for: "
     "app"},
    {"actor_any_client_ok",
     [](P&, R& r) {
       r.client_id = "other";
       r.actor_chain.pop_back();
     },
     Code::kOk, "", ""},
    {"any_actor_ok",
     [](P& p, R& r) {
       p.any_actor = true;
       r.actor_chain[0].sub = "anyone";
     },
     Code::kOk, "", ""},
    {"actor_sub_empty",
     [](P& p, R& r) {
       p.any_actor = true;
       r.actor_chain[1].sub.clear();
     },
     Code::kInvalidArgument, "act.act.sub", "empty"},
    {"actor_iss_huge", [](P&, R& r) { r.actor_chain[0].iss = Big(5000); },
     Code::kInvalidArgument, "act.iss", "5000 bytes exceeds max 1024"},
    {"actor_chain_huge",
     [](P& p, R& r) {
       p.any_actor = true;
       r.actor_chain.assign(100000, Actor{"a", ""});
     },
     Code::kInvalidArgument, "act.act.act.act.act.sub",
     "chain depth 100000 exceeds max 4"},
    // cnf.
    {"cnf_jkt_ok",
     [](P&, R& r) {
       r.cnf = Confirmation{kJkt, ""};
     },
     Code::kOk, "", ""},
    {"cnf_x5t_ok",
     [](P&, R& r) {
       r.cnf = Confirmation{"", kJkt};
     },
     Code::kOk, "", ""},
    {"cnf_required_ok",
     [](P& p, R& r) {
       p.require_cnf = true;
       r.cnf = Confirmation{kJkt, ""};
     },
     Code::kOk, "", ""},
    {"cnf_required_missing", [](P& p, R&) { p.require_cnf = true; },
     Code::kInvalidArgument, "cnf", "requires proof of possession"},
    {"cnf_both",
     [](P&, R& r) {
       r.cnf = Confirmation{kJkt, kJkt};
     },
     Code::kInvalidArgument, "cnf", "exactly one of jkt, x5t#S256"},
    {"cnf_neither", [](P&, R& r) { r.cnf = Confirmation{}; },
     Code::kInvalidArgument, "cnf", "exactly one of jkt, x5t#S256"},
    {"cnf_jkt_short",
     [](P&, R& r) {
       r.cnf = Confirmation{"abc", ""};
     },
     Code::kInvalidArgument, "cnf.jkt", "need 43 base64url characters"},
    {"cnf_x5t_padded",
     [](P&, R& r) {
       r.cnf = Confirmation{"", std::string(kJkt).substr(0, 42) + "="};
     },
     Code::kInvalidArgument, "cnf.x5t#S256", "need 43 base64url characters"},
    // Transaction-token claims.
    {"txn_in_access", [](P&, R& r) { r.txn = "t-1"; }, Code::kInvalidArgument,
     "txn", "only allowed in transaction tokens"},
    {"req_wl_in_access", [](P&, R& r) { r.req_wl = "gw"; },
     Code::kInvalidArgument, "req_wl", "only allowed in transaction tokens"},
    {"rctx_in_access",
     [](P&, R& r) {
       r.rctx = {{"a", 1}};
     },
     Code::kInvalidArgument, "rctx", "only allowed in transaction tokens"},
    {"rctx_not_object",
     [](P&, R& r) {
       r = TxnRequest();
       r.rctx = "ip";
     },
     Code::kInvalidArgument, "rctx", "must be a JSON object; got string"},
    {"tctx_huge",
     [](P&, R& r) {
       r = TxnRequest();
       r.tctx = {{"blob", Big(9000)}};
     },
     Code::kInvalidArgument, "tctx", "bytes serialized exceeds max 8192"},
    {"txn_huge",
     [](P&, R& r) {
       r = TxnRequest();
       r.txn = Big(2000);
     },
     Code::kInvalidArgument, "txn", "2000 bytes exceeds max 1024"},
    // Extra claims.
    {"extra_ok",
     [](P& p, R& r) {
       p.allowed_extra_claims = {"tenant", "tier"};
       r.extra_claims = {{"tenant", "t1"}, {"tier", {"x"}}};
     },
     Code::kOk, "", ""},
    {"extra_fail_closed",
     [](P&, R& r) { r.extra_claims = {{"tenant", "t1"}}; },
     Code::kPermissionDenied, "extra_claims.tenant",
     "not in the issuer's extra_claims allowlist; this issuer allows no extra "
     "claims"},
    {"extra_null_ok", [](P&, R& r) { r.extra_claims = nullptr; }, Code::kOk, "",
     ""},
    {"extra_iss",
     [](P&, R& r) {
       r.extra_claims = {{"iss", "https://evil"}};
     },
     Code::kInvalidArgument, "extra_claims.iss", "may not overwrite it"},
    {"extra_exp",
     [](P&, R& r) {
       r.extra_claims = {{"exp", 9999999999}};
     },
     Code::kInvalidArgument, "extra_claims.exp",
     "registered, authorization or service-set claim"},
    {"extra_act",
     [](P&, R& r) {
       r.extra_claims = {{"act", {{"sub", "x"}}}};
     },
     Code::kInvalidArgument, "extra_claims.act", "may not overwrite it"},
    {"extra_client_id",
     [](P&, R& r) {
       r.extra_claims = {{"client_id", "x"}};
     },
     Code::kInvalidArgument, "extra_claims.client_id",
     "may not overwrite it"},
    {"extra_may_act",
     [](P&, R& r) {
       r.extra_claims = {{"may_act", {{"sub", "x"}}}};
     },
     Code::kInvalidArgument, "extra_claims.may_act",
     "may not overwrite it"},
    {"extra_array",
     [](P&, R& r) {
       r.extra_claims = nlohmann::json::array({1, 2});
     },
     Code::kInvalidArgument, "extra_claims",
     "must be a JSON object or null; got array"},
    {"extra_string", [](P&, R& r) { r.extra_claims = "iss"; },
     Code::kInvalidArgument, "extra_claims", "got string"},
    {"extra_number", [](P&, R& r) { r.extra_claims = 42; },
     Code::kInvalidArgument, "extra_claims", "got number"},
    {"extra_too_big",
     [](P& p, R& r) {
       p.any_extra_claims = true;
       r.extra_claims = {{"blob", Big(5000)}};
     },
     Code::kInvalidArgument, "extra_claims",
     "bytes serialized exceeds max 4096"},
    {"extra_policy_limit",
     [](P& p, R& r) {
       p.max_extra_claims_bytes = 10;
       p.allowed_extra_claims = {"tenant"};
       r.extra_claims = {{"tenant", "t1"}};
     },
     Code::kInvalidArgument, "extra_claims",
     "15 bytes serialized exceeds max 10"},
    {"extra_bad_utf8",
     [](P& p, R& r) {
       p.allowed_extra_claims = {"k"};
       r.extra_claims = {{"k", "\xff"}};
     },
     Code::kInvalidArgument, "extra_claims", "cannot be serialized"},
};

INSTANTIATE_TEST_SUITE_P(Rules, PolicyTable, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param.name; });

// Chain depths 0..6 against max 4: the first level past the max is named.
class ChainDepth : public ::testing::TestWithParam<int> {};

TEST_P(ChainDepth, BoundedByPolicyMax) {
  const int depth = GetParam();
  IssuerPolicy p = BasePolicy();
  p.any_actor = true;
  TokenRequest r = BaseRequest();
  r.actor_chain.clear();
  for (int i = 0; i < depth; ++i)
    r.actor_chain.push_back({"agent-" + std::to_string(i), ""});
  absl::Status s = CheckRequest(p, r);
  if (depth <= 4) {
    EXPECT_TRUE(s.ok()) << s;
  } else {
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_EQ(s.message(), "act.act.act.act.act.sub: chain depth " +
                               std::to_string(depth) + " exceeds max 4");
  }
}

INSTANTIATE_TEST_SUITE_P(Depths, ChainDepth, ::testing::Range(0, 7));

TEST(ChainDepth, PolicyMaxZeroForbidsActors) {
  IssuerPolicy p = BasePolicy();
  p.max_chain_depth = 0;
  absl::Status s = CheckRequest(p, BaseRequest());
  EXPECT_EQ(s.message(), "act.sub: chain depth 2 exceeds max 0");
}

TEST(Policy, ReservedClaimsAndEffectiveTtl) {
  for (const char* name :
       {"iss",       "sub",   "aud", "exp",     "nbf",       "iat",    "jti",
        "client_id", "scope", "act", "cnf",     "txn",       "req_wl", "rctx",
        "tctx",      "typ",   "azp", "may_act", "auth_time", "acr",    "amr"}) {
    EXPECT_TRUE(IsReservedClaim(name)) << name;
  }
  EXPECT_FALSE(IsReservedClaim("tenant"));
  EXPECT_FALSE(IsReservedClaim("role"));
  IssuerPolicy p = BasePolicy();
  TokenRequest r = BaseRequest();
  r.ttl_seconds = 0;
  EXPECT_EQ(EffectiveTtl(p, r), 600);
  r.kind = TokenKind::kTransactionToken;
  EXPECT_EQ(EffectiveTtl(p, r), 60);
  r.ttl_seconds = 42;
  EXPECT_EQ(EffectiveTtl(p, r), 42);
}

}  // namespace
}  // namespace tokensign::token
