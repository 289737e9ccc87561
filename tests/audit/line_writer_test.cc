// The fast audit line writer must produce the bytes the nlohmann-based
// formatter produced (the format readers and existing logs rely on), for
// plain, escaped, non-ASCII and invalid UTF-8 strings, and the same times.
#include "signer/audit/line_writer.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <string>

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"
#include "signer/audit/audit_format.h"
#include "signer/text/json_string.h"

namespace tokensign::audit {
namespace {

using OJson = nlohmann::ordered_json;

// The previous implementation of FormatDecisionBody, kept as the reference.
std::string ReferenceBody(const AuditRecord& r) {
  OJson j;
  j["time"] =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", r.time, absl::UTCTimeZone());
  j["caller"] = r.caller;
  j["issuer"] = r.issuer;
  j["kind"] = r.kind;
  j["kid"] = r.kid;
  j["jti"] = r.jti;
  j["sub"] = r.sub;
  j["client_id"] = r.client_id;
  OJson act = OJson::array();
  for (const AuditActor& a : r.actor_chain) {
    OJson e;
    e["sub"] = a.sub;
    if (!a.iss.empty()) e["iss"] = a.iss;
    act.push_back(std::move(e));
  }
  j["act"] = std::move(act);
  j["aud"] = r.aud;
  j["scope"] = r.scope;
  j["exp"] = r.exp;
  j["parent_jti"] = r.parent_jti;
  j["token_sha256"] = r.token_sha256;
  j["outcome"] = r.outcome;
  j["reason"] = r.reason;
  std::string s = j.dump(-1, ' ', false, OJson::error_handler_t::replace);
  return s.substr(1, s.size() - 2);
}

AuditRecord Sample() {
  AuditRecord r;
  r.time = absl::FromUnixMillis(1714564800123);
  r.caller = "spiffe://example/ns/app";
  r.issuer = "main";
  r.kind = "access_token";
  r.kid = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
  r.jti = "abc_-123";
  r.sub = "alice";
  r.client_id = "app";
  r.actor_chain = {{"agent-7", ""}, {"planner", "https://idp.example"}};
  r.aud = {"https://api.example", "https://tools.example"};
  r.scope = {"read", "write"};
  r.exp = 1714565400;
  r.token_sha256 = std::string(64, 'a');
  r.outcome = "signed";
  return r;
}

TEST(LineWriterTest, DecisionBodyMatchesReferenceForPlainRecord) {
  AuditRecord r = Sample();
  EXPECT_EQ(FormatDecisionBody(r), ReferenceBody(r));
  r.actor_chain.clear();
  r.aud.clear();
  r.scope.clear();
  r.exp = -5;
  r.outcome = "denied";
  r.reason = "act.act.sub: chain depth 5 exceeds max 4";
  EXPECT_EQ(FormatDecisionBody(r), ReferenceBody(r));
}

TEST(LineWriterTest, DecisionBodyMatchesReferenceForEscapesAndUtf8) {
  const std::string tricky[] = {
      "quote\"back\\slash",
      "ctl\x01\x1f\n\t\r\b\f",
      "del\x7f/slash",
      "caf\xc3\xa9 \xe2\x82\xac",  // valid UTF-8
      "bad\xff\xfe utf8 \xc3",     // invalid: replaced by U+FFFD
      std::string("nul\0byte", 8),
      ""};
  for (const std::string& t : tricky) {
    AuditRecord r = Sample();
    r.caller = t;
    r.sub = t;
    r.actor_chain = {{t, t}};
    r.aud = {t, "x"};
    r.scope = {t};
    r.reason = t;
    EXPECT_EQ(FormatDecisionBody(r), ReferenceBody(r))
        << absl::CEscape(absl::string_view(t.data(), t.size()));
  }
}

// Bidi overrides, zero-width characters, line separators, noncharacters and
// C1 controls never stand raw in a line (a denied request's sub still reaches
// the log): they are \u escapes, and the line parses back to the same value.
TEST(LineWriterTest, InvisibleAndReorderingCharactersAreEscaped) {
  struct Want {
    std::string in;
    std::string json;
  };
  const Want cases[] = {
      {"alice\u202Eecila", R"("alice\u202eecila")"},
      {"a\u200Bb\u2028c\u2029d", R"("a\u200bb\u2028c\u2029d")"},
      {"x\xef\xbf\xbf", R"("x\uffff")"},
      {"\xc2\x9b[2J", R"("\u009b[2J")"},  // C1 CSI
      {"tag\U000E0041", R"("tag\udb40\udc41")"},
      {"caf\u00E9 \u00A0\U0001F600", "\"caf\u00E9 \u00A0\U0001F600\""},  // raw
  };
  for (const Want& w : cases) {
    std::string out;
    text::AppendLogSafeJsonString(w.in, &out);
    EXPECT_EQ(out, w.json) << absl::CEscape(w.in);
    EXPECT_EQ(nlohmann::json::parse(out).get<std::string>(), w.in);
  }
  AuditRecord r = Sample();
  r.sub = "alice\u202Eecila";
  r.outcome = "denied";
  const std::string line = AssembleLine(7, FormatDecisionBody(r), "");
  EXPECT_EQ(line.find("\u202E"), std::string::npos);
  EXPECT_NE(line.find(R"("sub":"alice\u202eecila")"), std::string::npos);
}

// Issue 11 item 4: ttl, cnf, txn, req_wl, the rctx/tctx hashes and the extra
// claims' names and hash are written after exp (only when set) and read back.
TEST(LineWriterTest, TokenContentMembersAreWrittenAndParsed) {
  AuditRecord r = Sample();
  r.ttl = 600;
  r.cnf_jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
  r.txn = "txn-1";
  r.req_wl = "gw.example";
  r.rctx_sha256 = std::string(64, 'b');
  r.tctx_sha256 = std::string(64, 'c');
  r.extra_claims = {"https://x.example/c", "tenant"};
  r.extra_claims_sha256 = std::string(64, 'd');
  const std::string body = FormatDecisionBody(r);
  EXPECT_NE(body.find(
                R"("exp":1714565400,"ttl":600,"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},)"
                R"("txn":"txn-1","req_wl":"gw.example","rctx_sha256":"bbbb)"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find(R"("extra_claims":["https://x.example/c","tenant"],)"
                      R"("extra_claims_sha256":"dddd)"),
            std::string::npos)
      << body;
  auto parsed = ParseAuditLine(AssembleLine(3, body, std::string(64, '0')));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const AuditRecord& p = parsed->record;
  EXPECT_EQ(p.ttl, 600);
  EXPECT_EQ(p.cnf_jkt, r.cnf_jkt);
  EXPECT_EQ(p.cnf_x5t_s256, "");
  EXPECT_EQ(p.txn, "txn-1");
  EXPECT_EQ(p.req_wl, "gw.example");
  EXPECT_EQ(p.rctx_sha256, r.rctx_sha256);
  EXPECT_EQ(p.tctx_sha256, r.tctx_sha256);
  EXPECT_EQ(p.extra_claims, r.extra_claims);
  EXPECT_EQ(p.extra_claims_sha256, r.extra_claims_sha256);

  r.cnf_jkt.clear();
  r.cnf_x5t_s256 = "x5t";
  EXPECT_NE(FormatDecisionBody(r).find(R"("cnf":{"x5t#S256":"x5t"})"),
            std::string::npos);
  // Unset: the line is the one written before these members existed.
  EXPECT_EQ(FormatDecisionBody(Sample()), ReferenceBody(Sample()));
}

TEST(LineWriterTest, AuditTimeMatchesAbslFormat) {
  const absl::Time times[] = {
      absl::UnixEpoch(),
      absl::FromUnixMillis(1714564800123),
      absl::FromUnixMicros(1714564800999999),  // truncated, not rounded
      absl::FromUnixSeconds(253402300799),     // 9999-12-31T23:59:59
      absl::FromUnixMillis(-1),                // 1969, floor
      absl::FromUnixSeconds(253402300800),     // year 10000: fallback
  };
  for (absl::Time t : times) {
    std::string fast;
    AppendAuditTime(t, &fast);
    EXPECT_EQ(fast, FormatAuditTime(t));
    EXPECT_EQ(FormatAuditTime(t),
              absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()));
  }
}

TEST(LineWriterTest, HasherMatchesOneShotSha256AndIsReusable) {
  Sha256Hasher hasher;
  for (std::string data :
       {std::string(), std::string("abc"), std::string(1000, 'x')}) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
           md);
    std::string want = absl::BytesToHexString(
        absl::string_view(reinterpret_cast<char*>(md), sizeof(md)));
    std::string hex(64, '?');
    ASSERT_TRUE(hasher.HexDigest(data, hex.data()));
    EXPECT_EQ(hex, want);
    EXPECT_EQ(Sha256Hex(data), want);
  }
}

}  // namespace
}  // namespace tokensign::audit
