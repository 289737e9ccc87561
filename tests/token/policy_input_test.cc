// Delegation policy against hostile input (security review findings):
// authorization claims smuggled through extra_claims (any case), malformed
// claim names, control characters in identities, parent_jti bounds, and
// non-canonical cnf thumbprints. Each rejection asserts the code, the field the
// message starts with, and the rule.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "signer/token/policy.h"
#include "tests/token/policy_cases.h"

namespace tokensign::token {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace ::tokensign::token::testing;  // NOLINT: the shared table
                                              // fixture

std::string JktEndingIn(char c) {
  return std::string(kJkt).substr(0, 42) + std::string(1, c);
}

class PolicyInput : public ::testing::TestWithParam<Case> {};

TEST_P(PolicyInput, AcceptsOrRejectsNamingFieldAndRule) {
  ExpectCase(GetParam());
}

using P = IssuerPolicy;
using R = TokenRequest;

// extra_claims = {name: "x"}, for an issuer that opted into any
// non-reserved name (extra_claims = ["*"]): the name rules alone decide.
std::function<void(P&, R&)> Extra(std::string name) {
  return [name](P& p, R& r) {
    p.any_extra_claims = true;
    r.extra_claims = {{name, "x"}};
  };
}

// extra_claims = {name: value} for an issuer with no extra_claims list.
std::function<void(P&, R&)> ExtraByDefault(std::string name,
                                           nlohmann::json value) {
  return [name, value](P&, R& r) { r.extra_claims = {{name, value}}; };
}

Case Reserved(const std::string& name) {
  return {"extra_reserved_" + name, Extra(name), Code::kInvalidArgument,
          "extra_claims." + name, "may not overwrite it"};
}

std::vector<Case> Cases() {
  std::vector<Case> cases = {
      {"extra_tenant_ok", Extra("tenant"), Code::kOk, "", ""},
      {"extra_name_128_ok", Extra(std::string(128, 'n')), Code::kOk, "", ""},
      {"extra_printable_ok", Extra("https://example.com/claims/tier~1"),
       Code::kOk, "", ""},
      // Case-insensitive reservation.
      {"extra_Scope", Extra("Scope"), Code::kInvalidArgument,
       "extra_claims.Scope", "compare case-insensitively"},
      {"extra_SCOPE", Extra("SCOPE"), Code::kInvalidArgument,
       "extra_claims.SCOPE", "may not overwrite it"},
      {"extra_Roles", Extra("Roles"), Code::kInvalidArgument,
       "extra_claims.Roles", "may not overwrite it"},
      {"extra_ISS", Extra("ISS"), Code::kInvalidArgument, "extra_claims.ISS",
       "may not overwrite it"},
      {"extra_Status", Extra("Status"), Code::kInvalidArgument,
       "extra_claims.Status", "may not overwrite it"},
      // Name syntax.
      {"extra_name_nul", Extra(std::string("ro\0les", 6)),
       Code::kInvalidArgument, R"(extra_claims["ro\x00les"])",
       "name contains byte 0x00; a claim name is printable ASCII"},
      {"extra_name_space", Extra("my claim"), Code::kInvalidArgument,
       R"(extra_claims["my claim"])", "byte 0x20"},
      {"extra_name_tab", Extra("a\tb"), Code::kInvalidArgument,
       R"(extra_claims["a\x09b"])", "byte 0x09"},
      {"extra_name_quote", Extra("a\"b"), Code::kInvalidArgument,
       R"(extra_claims["a\x22b"])", "byte 0x22"},
      {"extra_name_backslash", Extra("a\\b"), Code::kInvalidArgument,
       R"(extra_claims["a\x5cb"])", "byte 0x5c"},
      {"extra_name_del", Extra("a\x7f"), Code::kInvalidArgument,
       R"(extra_claims["a\x7f"])", "byte 0x7f"},
      {"extra_name_non_ascii", Extra("t\xc3\xa4nant"), Code::kInvalidArgument,
       R"(extra_claims["t\xc3\xa4nant"])", "byte 0xc3"},
      {"extra_name_empty", Extra(""), Code::kInvalidArgument,
       R"(extra_claims[""])", "name of 0 bytes; a claim name is 1..128 bytes"},
      {"extra_name_129", Extra(std::string(129, 'n')), Code::kInvalidArgument,
       "extra_claims[\"" + std::string(64, 'n') + "...\"]",
       "name of 129 bytes; a claim name is 1..128 bytes"},
      // Fail closed: an issuer without an extra_claims list takes none, so
      // none of the authorization claims the review smuggled in gets through.
      {"default_admin", ExtraByDefault("admin", true), Code::kPermissionDenied,
       "extra_claims.admin",
       "not in the issuer's extra_claims allowlist; this issuer allows no "
       "extra claims"},
      {"default_role", ExtraByDefault("role", "admin"),
       Code::kPermissionDenied, "extra_claims.role",
       "not in the issuer's extra_claims allowlist"},
      {"default_permissions",
       ExtraByDefault("permissions", nlohmann::json::array({"*"})),
       Code::kPermissionDenied, "extra_claims.permissions",
       "not in the issuer's extra_claims allowlist"},
      {"default_realm_access",
       ExtraByDefault("realm_access", {{"roles", {"admin"}}}),
       Code::kPermissionDenied, "extra_claims.realm_access",
       "not in the issuer's extra_claims allowlist"},
      {"default_wids", ExtraByDefault("wids", nlohmann::json::array({"62e9"})),
       Code::kPermissionDenied, "extra_claims.wids",
       "not in the issuer's extra_claims allowlist"},
      {"default_cognito_groups",
       ExtraByDefault("cognito:groups", nlohmann::json::array({"admins"})),
       Code::kPermissionDenied, R"(extra_claims["cognito:groups"])",
       "not in the issuer's extra_claims allowlist"},
      {"default_namespaced_roles",
       ExtraByDefault("https://example.com/roles",
                      nlohmann::json::array({"admin"})),
       Code::kPermissionDenied, R"(extra_claims["https://example.com/roles"])",
       "not in the issuer's extra_claims allowlist"},
      {"default_tenant", ExtraByDefault("tenant", "t1"),
       Code::kPermissionDenied, "extra_claims.tenant",
       "list the names in its extra_claims, or [\"*\"] for any non-reserved "
       "name"},
      {"default_empty_object_ok",
       [](P&, R& r) { r.extra_claims = nlohmann::json::object(); }, Code::kOk,
       "", ""},
      // Explicit opt-in: ["*"] takes any non-reserved name.
      {"any_admin_ok", Extra("admin"), Code::kOk, "", ""},
      // Per-issuer allowlist.
      {"allowlist_ok",
       [](P& p, R& r) {
         p.allowed_extra_claims = {"tenant", "tier"};
         r.extra_claims = {{"tier", "gold"}};
       },
       Code::kOk, "", ""},
      {"allowlist_denied",
       [](P& p, R& r) {
         p.allowed_extra_claims = {"tenant", "tier"};
         r.extra_claims = {{"department", "x"}};
       },
       Code::kPermissionDenied, "extra_claims.department",
       "not in the issuer's extra_claims allowlist; allowed: tenant, tier"},
      {"allowlist_case_sensitive",
       [](P& p, R& r) {
         p.allowed_extra_claims = {"tenant"};
         r.extra_claims = {{"Tenant", "x"}};
       },
       Code::kPermissionDenied, "extra_claims.Tenant",
       "not in the issuer's extra_claims allowlist; allowed: tenant"},
      {"allowlist_never_allows_reserved",
       [](P& p, R& r) {
         p.allowed_extra_claims = {"roles"};
         r.extra_claims = {{"roles", {"admin"}}};
       },
       Code::kInvalidArgument, "extra_claims.roles", "may not overwrite it"},
      // Control characters in identities.
      {"sub_nul", [](P&, R& r) { r.subject = std::string("alice\0admin", 11); },
       Code::kInvalidArgument, "sub",
       "contains control character U+0000 at byte 5; control characters"},
      {"sub_newline", [](P&, R& r) { r.subject = "alice\nadmin"; },
       Code::kInvalidArgument, "sub", "U+000A at byte 5"},
      {"sub_del", [](P&, R& r) { r.subject = "alice\x7f"; },
       Code::kInvalidArgument, "sub", "U+007F"},
      {"sub_c1", [](P&, R& r) { r.subject = "alice\xc2\x85"; },
       Code::kInvalidArgument, "sub", "U+0085"},
      {"sub_latin1_ok", [](P&, R& r) { r.subject = "Jos\xc3\xa9 \xc2\xa0x"; },
       Code::kOk, "", ""},
      {"client_id_ctrl", [](P&, R& r) { r.client_id = "app\x1b[2J"; },
       Code::kInvalidArgument, "client_id", "U+001B"},
      {"aud_ctrl",
       [](P&, R& r) {
         r.audience = {std::string("https://api.example\0", 20)};
       },
       Code::kInvalidArgument, "aud[0]", "U+0000"},
      {"actor_sub_ctrl", [](P&, R& r) { r.actor_chain[0].sub = "agent-7\r"; },
       Code::kInvalidArgument, "act.sub", "U+000D"},
      {"actor_iss_ctrl",
       [](P&, R& r) { r.actor_chain[1].iss = "https://agents.example\t"; },
       Code::kInvalidArgument, "act.act.iss", "U+0009"},
      {"txn_ctrl",
       [](P&, R& r) {
         r = TxnRequest();
         r.txn = std::string("t\0x", 3);
       },
       Code::kInvalidArgument, "txn", "U+0000"},
      {"req_wl_ctrl",
       [](P&, R& r) {
         r = TxnRequest();
         r.req_wl = "gw\x01";
       },
       Code::kInvalidArgument, "req_wl", "U+0001"},
      // Format characters, separators and noncharacters in identities (the
      // ones the review signed: U+202E, U+200B, U+2028, U+FFFF in sub).
      {"sub_rlo", [](P&, R& r) { r.subject = "alice\u202Eecila"; },
       Code::kInvalidArgument, "sub",
       "U+202E (format character) not allowed (at byte 5)"},
      {"sub_zwsp", [](P&, R& r) { r.subject = "ali\u200Bce"; },
       Code::kInvalidArgument, "sub", "U+200B (format character) not allowed"},
      {"sub_line_separator", [](P&, R& r) { r.subject = "alice\u2028admin"; },
       Code::kInvalidArgument, "sub",
       "U+2028 (line or paragraph separator) not allowed"},
      {"sub_paragraph_separator", [](P&, R& r) { r.subject = "a\u2029"; },
       Code::kInvalidArgument, "sub",
       "U+2029 (line or paragraph separator) not allowed"},
      {"sub_uffff", [](P&, R& r) { r.subject = "alice\xef\xbf\xbf"; },
       Code::kInvalidArgument, "sub", "U+FFFF (noncharacter) not allowed"},
      {"sub_fdd0", [](P&, R& r) { r.subject = "alice\xef\xb7\x90"; },
       Code::kInvalidArgument, "sub", "U+FDD0 (noncharacter)"},
      {"sub_plane1_nonchar",
       [](P&, R& r) { r.subject = "alice\xf0\x9f\xbf\xbe"; },
       Code::kInvalidArgument, "sub", "U+1FFFE (noncharacter)"},
      {"sub_bom", [](P&, R& r) { r.subject = "\uFEFFalice"; },
       Code::kInvalidArgument, "sub",
       "U+FEFF (format character) not allowed (at byte 0)"},
      {"sub_soft_hyphen", [](P&, R& r) { r.subject = "al\u00ADice"; },
       Code::kInvalidArgument, "sub", "U+00AD (format character)"},
      {"sub_tag_char", [](P&, R& r) { r.subject = "alice\U000E0041"; },
       Code::kInvalidArgument, "sub", "U+E0041 (format character)"},
      {"sub_unicode_ok",
       [](P&, R& r) {
         // Accents (precomposed and combining), CJK, emoji, U+FFFD.
         r.subject = "Jos\u00E9 Jose\u0301 \u3042 \U0001F600 \uFFFD";
       },
       Code::kOk, "", ""},
      {"client_id_lri", [](P&, R& r) { r.client_id = "app\u2066x"; },
       Code::kInvalidArgument, "client_id",
       "U+2066 (format character) not allowed"},
      {"aud_zwj",
       [](P&, R& r) { r.audience = {"https://api.example\u200D"}; },
       Code::kInvalidArgument, "aud[0]", "U+200D (format character)"},
      {"actor_sub_rlo", [](P&, R& r) { r.actor_chain[0].sub = "agent\u202E7"; },
       Code::kInvalidArgument, "act.sub",
       "U+202E (format character) not allowed"},
      {"actor_iss_line_separator",
       [](P&, R& r) {
         r.actor_chain[1].iss = "https://agents.example\u2028";
       },
       Code::kInvalidArgument, "act.act.iss",
       "U+2028 (line or paragraph separator)"},
      {"req_wl_zwsp",
       [](P&, R& r) {
         r = TxnRequest();
         r.req_wl = "apigateway\u200B.example";
       },
       Code::kInvalidArgument, "req_wl", "U+200B (format character)"},
      // parent_jti.
      {"parent_jti_ok", [](P&, R& r) { r.parent_jti = "Zx9-_~.abc"; },
       Code::kOk, "", ""},
      {"parent_jti_256_ok",
       [](P&, R& r) { r.parent_jti = std::string(256, 'j'); }, Code::kOk, "",
       ""},
      {"parent_jti_257", [](P&, R& r) { r.parent_jti = std::string(257, 'j'); },
       Code::kInvalidArgument, "parent_jti", "257 bytes exceeds max 256"},
      {"parent_jti_space", [](P&, R& r) { r.parent_jti = "a b"; },
       Code::kInvalidArgument, "parent_jti",
       "contains byte 0x20; a jti is printable ASCII (0x21..0x7E) without "
       "spaces"},
      {"parent_jti_newline",
       [](P&, R& r) { r.parent_jti = "abc\n{\"forged\":1}"; },
       Code::kInvalidArgument, "parent_jti", "byte 0x0a"},
      {"parent_jti_nul",
       [](P&, R& r) { r.parent_jti = std::string("a\0b", 3); },
       Code::kInvalidArgument, "parent_jti", "byte 0x00"},
      {"parent_jti_utf8", [](P&, R& r) { r.parent_jti = "j\xc3\xa9"; },
       Code::kInvalidArgument, "parent_jti", "byte 0xc3"},
      // cnf canonical base64url.
      {"cnf_jkt_canonical_ok",
       [](P&, R& r) {
         r.cnf = Confirmation{JktEndingIn('I'), ""};
       },
       Code::kOk, "", ""},
      {"cnf_jkt_last_A_ok",
       [](P&, R& r) {
         r.cnf = Confirmation{JktEndingIn('A'), ""};
       },
       Code::kOk, "", ""},
      {"cnf_jkt_last_w_ok",
       [](P&, R& r) {
         r.cnf = Confirmation{JktEndingIn('w'), ""};
       },
       Code::kOk, "", ""},
      {"cnf_jkt_last_J",
       [](P&, R& r) {
         r.cnf = Confirmation{JktEndingIn('J'), ""};
       },
       Code::kInvalidArgument, "cnf.jkt",
       "not canonical base64url: last character 'J' has non-zero padding bits"},
      {"cnf_x5t_last_underscore",
       [](P&, R& r) {
         r.cnf = Confirmation{"", JktEndingIn('_')};
       },
       Code::kInvalidArgument, "cnf.x5t#S256", "last character '_'"},
      {"cnf_jkt_last_dash",
       [](P&, R& r) {
         r.cnf = Confirmation{JktEndingIn('-'), ""};
       },
       Code::kInvalidArgument, "cnf.jkt", "last character '-'"},
      {"cnf_jkt_last_9",
       [](P&, R& r) {
         r.cnf = Confirmation{JktEndingIn('9'), ""};
       },
       Code::kInvalidArgument, "cnf.jkt", "last character '9'"},
  };
  // Every claim the review named, and the registered ones around them.
  for (const char* name : {"roles",
                           "groups",
                           "entitlements",
                           "scp",
                           "authorization_details",
                           "sid",
                           "may_act",
                           "act",
                           "purp",
                           "azd",
                           "at_hash",
                           "nonce",
                           "events",
                           "toe",
                           "txn",
                           "req_wl",
                           "rctx",
                           "tctx",
                           "sub_id",
                           "s_hash",
                           "c_hash",
                           "azp",
                           "acr",
                           "amr",
                           "auth_time",
                           "cnf",
                           "client_id",
                           "scope",
                           "typ",
                           "iss",
                           "sub",
                           "status",
                           "aud",
                           "exp",
                           "nbf",
                           "iat",
                           "jti"}) {
    cases.push_back(Reserved(name));
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Review, PolicyInput, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

TEST(ExtraClaimField, DottedForIdentifiersBracketedOtherwise) {
  EXPECT_EQ(ExtraClaimField("admin"), "extra_claims.admin");
  EXPECT_EQ(ExtraClaimField("realm_access"), "extra_claims.realm_access");
  EXPECT_EQ(ExtraClaimField("cognito:groups"),
            R"(extra_claims["cognito:groups"])");
  EXPECT_EQ(ExtraClaimField("a.b"), R"(extra_claims["a.b"])");
  EXPECT_EQ(ExtraClaimField("1st"), R"(extra_claims["1st"])");
  EXPECT_EQ(ExtraClaimField(""), R"(extra_claims[""])");
  EXPECT_TRUE(IsWellFormedClaimName("https://example.com/roles"));
  EXPECT_FALSE(IsWellFormedClaimName("a b"));
  EXPECT_FALSE(IsWellFormedClaimName(""));
  EXPECT_FALSE(IsWellFormedClaimName(std::string(129, 'n')));
}

TEST(ReservedClaims, CaseInsensitiveAndExact) {
  EXPECT_TRUE(IsReservedClaim("scope"));
  EXPECT_TRUE(IsReservedClaim("Scope"));
  EXPECT_TRUE(IsReservedClaim("SCOPE"));
  EXPECT_TRUE(IsReservedClaim("Authorization_Details"));
  EXPECT_TRUE(IsReservedClaim("status"));  // token status lists
  EXPECT_FALSE(IsReservedClaim("scopes"));
  EXPECT_FALSE(IsReservedClaim("scop"));
  EXPECT_FALSE(IsReservedClaim(""));
  EXPECT_FALSE(IsReservedClaim(std::string("scope\0", 6)));
}

}  // namespace
}  // namespace tokensign::token
