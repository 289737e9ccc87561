// The bad-input matrix's SignToken and SignTokens rows (bad_input_cases.h).
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "tests/service/bad_input_cases.h"
#include "tests/service/daemon_harness.h"
#include "tests/service/raw_call.h"

namespace tokensign::testing {
namespace {

Case Sign(std::string name, const SignEdit& edit, Code code,
          std::string field) {
  v1::SignTokenRequest r = ScenarioRequest();
  edit(&r);
  return {std::move(name), kSignToken, r.SerializeAsString(), code,
          std::move(field)};
}

Case SignBytes(std::string name, std::string bytes, Code code,
               std::string field) {
  return {std::move(name), kSignToken, std::move(bytes), code,
          std::move(field)};
}

Case Batch(std::string name, int n, const SignEdit& edit, int bad, Code code,
           std::string field) {
  v1::SignTokensRequest b;
  for (int i = 0; i < n; ++i) {
    *b.add_requests() = ScenarioRequest();
    if (i == bad) edit(b.mutable_requests(i));
  }
  return {std::move(name), kSignTokens, b.SerializeAsString(), code,
          std::move(field), bad};
}

// A transaction-token request that is valid as it is.
void MakeTxn(v1::SignTokenRequest* r) {
  r->set_kind(v1::TRANSACTION_TOKEN);
  r->clear_audience();
  r->add_audience("https://trust.example");
  r->set_req_wl("gateway");
  r->set_ttl_seconds(60);
}

}  // namespace

std::vector<Case> SignTokenCases() {
  const int64_t kMin = std::numeric_limits<int64_t>::min();
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  using R = v1::SignTokenRequest;
  std::vector<Case> c;
  // Empty and oversized strings.
  c.push_back(Sign("empty subject", [](R* r) { r->clear_subject(); },
                   Code::INVALID_ARGUMENT, "sub"));
  c.push_back(Sign("empty client_id", [](R* r) { r->clear_client_id(); },
                   Code::INVALID_ARGUMENT, "client_id"));
  c.push_back(Sign("empty audience item", [](R* r) { r->set_audience(0, ""); },
                   Code::INVALID_ARGUMENT, "aud[0]"));
  c.push_back(Sign("empty actor sub",
                   [](R* r) { r->mutable_actor_chain(1)->clear_sub(); },
                   Code::INVALID_ARGUMENT, "act.act.sub"));
  c.push_back(Sign("empty scope item", [](R* r) { r->add_scope(""); },
                   Code::INVALID_ARGUMENT, "scope[1]"));
  c.push_back(Sign("subject 1025 bytes",
                   [](R* r) { r->set_subject(Big(1025)); },
                   Code::INVALID_ARGUMENT, "sub"));
  c.push_back(Sign("subject 1 MiB", [](R* r) { r->set_subject(Big(1 << 20)); },
                   Code::INVALID_ARGUMENT, "sub"));
  c.push_back(Sign("client_id 64 KiB",
                   [](R* r) { r->set_client_id(Big(64 << 10)); },
                   Code::INVALID_ARGUMENT, "client_id"));
  c.push_back(Sign("actor iss 2000 bytes",
                   [](R* r) { r->mutable_actor_chain(0)->set_iss(Big(2000)); },
                   Code::INVALID_ARGUMENT, "act.iss"));
  c.push_back(Sign("scope 257 bytes", [](R* r) { r->set_scope(0, Big(257)); },
                   Code::INVALID_ARGUMENT, "scope[0]"));
  c.push_back(Sign("parent_jti 257 bytes",
                   [](R* r) { r->set_parent_jti(Big(257)); },
                   Code::INVALID_ARGUMENT, "parent_jti"));
  c.push_back(Sign("extra claim name 129 bytes",
                   [](R* r) {
                     (*r->mutable_extra_claims()->mutable_fields())[Big(129)]
                         .set_bool_value(true);
                   },
                   Code::INVALID_ARGUMENT, "extra_claims[\"" + Big(64) + "...\"]"));
  c.push_back(Sign("extra claim name empty",
                   [](R* r) {
                     (*r->mutable_extra_claims()->mutable_fields())[""]
                         .set_bool_value(true);
                   },
                   Code::INVALID_ARGUMENT, "extra_claims[\"\"]"));
  c.push_back(Sign("extra claim value 1 MiB",
                   [](R* r) {
                     (*r->mutable_extra_claims()->mutable_fields())["tenant"]
                         .set_string_value(Big(1 << 20));
                   },
                   Code::INVALID_ARGUMENT, "extra_claims"));
  c.push_back(Sign("rctx 16 KiB",
                   [](R* r) {
                     MakeTxn(r);
                     (*r->mutable_rctx()->mutable_fields())["ip"]
                         .set_string_value(Big(16 << 10));
                   },
                   Code::INVALID_ARGUMENT, "rctx"));
  // Invalid UTF-8 (the protobuf parser refuses it; the field is named).
  {
    v1::SignTokenRequest r = ScenarioRequest();
    r.set_subject("MARKER");
    c.push_back(SignBytes("subject invalid UTF-8 (0xFF)",
                          WithBytes(r, "MARKER", "MA\xFFKER"),
                          Code::INVALID_ARGUMENT, "subject"));
    c.push_back(SignBytes("subject overlong NUL (C0 80)",
                          WithBytes(r, "MARKER", "MA\xC0\x80" "ER"),
                          Code::INVALID_ARGUMENT, "subject"));
    c.push_back(SignBytes("subject UTF-16 surrogate (ED A0 80)",
                          WithBytes(r, "MARKER", "MA\xED\xA0\x80R"),
                          Code::INVALID_ARGUMENT, "subject"));
    r = ScenarioRequest();
    r.set_scope(0, "MARKER");
    c.push_back(SignBytes("scope truncated sequence (E2 82)",
                          WithBytes(r, "MARKER", "MARK\xE2\x82"),
                          Code::INVALID_ARGUMENT, "scope[0]"));
    r = ScenarioRequest();
    (*r.mutable_extra_claims()->mutable_fields())["tenant"].set_string_value(
        "MARKER");
    c.push_back(SignBytes("extra claim value invalid UTF-8",
                          WithBytes(r, "MARKER", "MARKE\x80"),
                          Code::INVALID_ARGUMENT, "extra_claims"));
    r = ScenarioRequest();
    (*r.mutable_extra_claims()->mutable_fields())["MARKER"].set_bool_value(true);
    c.push_back(SignBytes("extra claim name invalid UTF-8",
                          WithBytes(r, "MARKER", "\xF8MRKER"),
                          Code::INVALID_ARGUMENT, "extra_claims"));
  }
  // Control and format characters in identities.
  const std::pair<const char*, std::string> kUnsafe[] = {
      {"NUL", std::string("al\0ce", 5)},
      {"U+0001", "al\x01ice"},
      {"newline", "alice\nforged"},
      {"DEL", "al\x7fice"},
      {"C1 U+0085", "al\xC2\x85ice"},
      {"bidi override U+202E", "al\xE2\x80\xAEice"},
      {"zero-width space U+200B", "al\xE2\x80\x8Bice"},
      {"BOM U+FEFF", "\xEF\xBB\xBF" "alice"},
      {"line separator U+2028", "al\xE2\x80\xA8ice"},
      {"tag U+E0041", "alice\xF3\xA0\x81\x81"},
      {"noncharacter U+FFFE", "al\xEF\xBF\xBEice"},
  };
  for (const auto& [what, value] : kUnsafe) {
    std::string v = value;
    c.push_back(Sign(std::string("subject with ") + what,
                     [v](R* r) { r->set_subject(v); }, Code::INVALID_ARGUMENT,
                     "sub"));
  }
  c.push_back(Sign("actor sub with U+202E",
                   [](R* r) {
                     r->mutable_actor_chain(0)->set_sub("agent\xE2\x80\xAE-7");
                   },
                   Code::INVALID_ARGUMENT, "act.sub"));
  c.push_back(Sign("audience with U+200D",
                   [](R* r) {
                     r->set_audience(0, "https://api.example\xE2\x80\x8D");
                   },
                   Code::INVALID_ARGUMENT, "aud[0]"));
  c.push_back(Sign("client_id with tab", [](R* r) { r->set_client_id("a\tpp"); },
                   Code::INVALID_ARGUMENT, "client_id"));
  c.push_back(Sign("may_act sub with U+2029",
                   [](R* r) {
                     r->mutable_may_act()->set_sub("bot\xE2\x80\xA9");
                   },
                   Code::INVALID_ARGUMENT, "may_act.sub"));
  c.push_back(Sign("req_wl with ESC",
                   [](R* r) {
                     MakeTxn(r);
                     r->set_req_wl("gate\x1b[2Jway");
                   },
                   Code::INVALID_ARGUMENT, "req_wl"));
  c.push_back(Sign("scope with space", [](R* r) { r->set_scope(0, "read write"); },
                   Code::INVALID_ARGUMENT, "scope[0]"));
  c.push_back(Sign("parent_jti with space",
                   [](R* r) { r->set_parent_jti("a b"); },
                   Code::INVALID_ARGUMENT, "parent_jti"));
  c.push_back(Sign("extra claim name with space",
                   [](R* r) {
                     (*r->mutable_extra_claims()->mutable_fields())["a b"]
                         .set_bool_value(true);
                   },
                   Code::INVALID_ARGUMENT, "extra_claims[\"a b\"]"));
  // 10k-element repeated fields.
  c.push_back(Sign("10k audiences",
                   [](R* r) {
                     for (int i = 0; i < 10000; ++i)
                       r->add_audience("https://api.example");
                   },
                   Code::INVALID_ARGUMENT, "aud"));
  c.push_back(Sign("10k scopes",
                   [](R* r) {
                     for (int i = 0; i < 10000; ++i) r->add_scope("read");
                   },
                   Code::INVALID_ARGUMENT, "scope"));
  c.push_back(Sign("10k actors",
                   [](R* r) {
                     for (int i = 0; i < 10000; ++i)
                       r->add_actor_chain()->set_sub("a");
                   },
                   Code::INVALID_ARGUMENT, "act.act.act.act.act.sub"));
  c.push_back(Sign("10k extra claims",
                   [](R* r) {
                     auto* f = r->mutable_extra_claims()->mutable_fields();
                     for (int i = 0; i < 10000; ++i)
                       (*f)["c" + std::to_string(i)].set_bool_value(true);
                   },
                   Code::INVALID_ARGUMENT, "extra_claims"));
  c.push_back(Sign("10k-element extra claim list",
                   [](R* r) {
                     auto* l = (*r->mutable_extra_claims()->mutable_fields())
                                   ["tenant"]
                                       .mutable_list_value();
                     for (int i = 0; i < 10000; ++i)
                       l->add_values()->set_number_value(i);
                   },
                   Code::INVALID_ARGUMENT, "extra_claims"));
  c.push_back(Sign("10k rctx members",
                   [](R* r) {
                     MakeTxn(r);
                     auto* f = r->mutable_rctx()->mutable_fields();
                     for (int i = 0; i < 10000; ++i)
                       (*f)["m" + std::to_string(i)].set_bool_value(true);
                   },
                   Code::INVALID_ARGUMENT, "rctx"));
  // Deep Struct nesting: beyond the parser's limit, and within it (then the
  // serialized size still bounds it).
  {
    v1::SignTokenRequest r = ScenarioRequest();
    Nest(r.mutable_extra_claims(), 200);
    c.push_back(SignBytes("extra_claims nested 200 deep", r.SerializeAsString(),
                          Code::INVALID_ARGUMENT, "extra_claims"));
    r = ScenarioRequest();
    Nest(r.mutable_extra_claims(), 5000);
    c.push_back(SignBytes("extra_claims nested 5000 deep",
                          r.SerializeAsString(), Code::INVALID_ARGUMENT,
                          "extra_claims"));
    r = ScenarioRequest();
    MakeTxn(&r);
    Nest(r.mutable_tctx(), 200);
    c.push_back(SignBytes("tctx nested 200 deep", r.SerializeAsString(),
                          Code::INVALID_ARGUMENT, "tctx"));
  }
  // Unknown issuer.
  c.push_back(Sign("unknown issuer", [](R* r) { r->set_issuer("nope"); },
                   Code::NOT_FOUND, "issuer"));
  c.push_back(Sign("empty issuer", [](R* r) { r->clear_issuer(); },
                   Code::NOT_FOUND, "issuer"));
  c.push_back(Sign("issuer 1 MiB", [](R* r) { r->set_issuer(Big(1 << 20)); },
                   Code::NOT_FOUND, "issuer"));
  c.push_back(Sign("issuer with U+202E",
                   [](R* r) { r->set_issuer("de\xE2\x80\xAEv"); },
                   Code::NOT_FOUND, "issuer"));
  // Negative and huge TTLs.
  c.push_back(Sign("ttl -1", [](R* r) { r->set_ttl_seconds(-1); },
                   Code::INVALID_ARGUMENT, "ttl_seconds"));
  c.push_back(Sign("ttl INT64_MIN", [kMin](R* r) { r->set_ttl_seconds(kMin); },
                   Code::INVALID_ARGUMENT, "ttl_seconds"));
  c.push_back(Sign("ttl max + 1", [](R* r) { r->set_ttl_seconds(3601); },
                   Code::INVALID_ARGUMENT, "ttl_seconds"));
  c.push_back(Sign("ttl INT64_MAX", [kMax](R* r) { r->set_ttl_seconds(kMax); },
                   Code::INVALID_ARGUMENT, "ttl_seconds"));
  c.push_back(Sign("transaction ttl INT64_MAX",
                   [kMax](R* r) {
                     MakeTxn(r);
                     r->set_ttl_seconds(kMax);
                   },
                   Code::INVALID_ARGUMENT, "ttl_seconds"));
  c.push_back(Sign("status idx -1",
                   [](R* r) {
                     r->mutable_status()->set_uri("https://x.example/s");
                     r->mutable_status()->set_idx(-1);
                   },
                   Code::INVALID_ARGUMENT, "status.idx"));
  // Duplicates.
  c.push_back(Sign("duplicate audience",
                   [](R* r) { r->add_audience("https://api.example"); },
                   Code::INVALID_ARGUMENT, "aud[1]"));
  c.push_back(Sign("duplicate scope", [](R* r) { r->add_scope("read"); },
                   Code::INVALID_ARGUMENT, "scope[1]"));
  c.push_back(Sign("reserved claim in any case",
                   [](R* r) {
                     (*r->mutable_extra_claims()->mutable_fields())["Scope"]
                         .set_string_value("admin");
                   },
                   Code::INVALID_ARGUMENT, "extra_claims.Scope"));
  // Unknown enum values (proto3 enums are open on the wire).
  c.push_back(Sign("kind unset", [](R* r) { r->clear_kind(); },
                   Code::INVALID_ARGUMENT, "kind"));
  {
    v1::SignTokenRequest r = ScenarioRequest();
    r.clear_kind();
    c.push_back(SignBytes("kind 7", r.SerializeAsString() + VarintField(2, 7),
                          Code::INVALID_ARGUMENT, "kind"));
    c.push_back(SignBytes("kind -1",
                          r.SerializeAsString() + VarintField(2, -1),
                          Code::INVALID_ARGUMENT, "kind"));
  }
  // Other shapes.
  c.push_back(Sign("cnf without a member", [](R* r) { r->mutable_cnf(); },
                   Code::INVALID_ARGUMENT, "cnf"));
  c.push_back(Sign("cnf.jkt not a thumbprint",
                   [](R* r) { r->mutable_cnf()->set_jkt("abc"); },
                   Code::INVALID_ARGUMENT, "cnf.jkt"));
  c.push_back(Sign("txn in an access token", [](R* r) { r->set_txn("t-1"); },
                   Code::INVALID_ARGUMENT, "txn"));
  c.push_back(Sign("transaction token without req_wl",
                   [](R* r) {
                     MakeTxn(r);
                     r->clear_req_wl();
                   },
                   Code::INVALID_ARGUMENT, "req_wl"));
  c.push_back(Sign("audience not allowed",
                   [](R* r) { r->set_audience(0, "https://evil.example"); },
                   Code::PERMISSION_DENIED, "aud[0]"));
  c.push_back(SignBytes("not a protobuf message", "\xff\xff\xff\xff",
                        Code::INVALID_ARGUMENT, "request"));
  return c;
}

std::vector<Case> SignTokensCases() {
  using R = v1::SignTokenRequest;
  const SignEdit none = [](R*) {};
  std::vector<Case> c;
  c.push_back(Batch("batch of 257", 257, none, -1, Code::INVALID_ARGUMENT,
                    "requests"));
  c.push_back(Batch("batch of 10k", 10000, none, -1, Code::INVALID_ARGUMENT,
                    "requests"));
  c.push_back(Batch("batch item subject 1 MiB", 3,
                    [](R* r) { r->set_subject(Big(1 << 20)); }, 1,
                    Code::INVALID_ARGUMENT, "sub"));
  c.push_back(Batch("batch item ttl INT64_MIN", 3,
                    [](R* r) {
                      r->set_ttl_seconds(std::numeric_limits<int64_t>::min());
                    },
                    2, Code::INVALID_ARGUMENT, "ttl_seconds"));
  c.push_back(Batch("batch item duplicate scope", 2,
                    [](R* r) { r->add_scope("read"); }, 0,
                    Code::INVALID_ARGUMENT, "scope[1]"));
  c.push_back(Batch("batch item unknown issuer", 2,
                    [](R* r) { r->set_issuer("nope"); }, 1, Code::NOT_FOUND,
                    "issuer"));
  {
    v1::SignTokensRequest b;
    *b.add_requests() = ScenarioRequest();
    *b.add_requests() = ScenarioRequest();
    b.mutable_requests(1)->mutable_actor_chain(0)->set_sub("MARKER");
    c.push_back({"batch item invalid UTF-8", kSignTokens,
                 WithBytes(b, "MARKER", "MARK\xFF\xFF"), Code::INVALID_ARGUMENT,
                 "actor_chain[0].sub", 1});
    b = v1::SignTokensRequest();
    *b.add_requests() = ScenarioRequest();
    v1::SignTokenRequest seven = ScenarioRequest();
    seven.clear_kind();
    std::string item = seven.SerializeAsString() + VarintField(2, 7);
    std::string wire = b.SerializeAsString();
    wire += '\x0a';  // field 1, length-delimited
    wire += static_cast<char>(item.size());
    EXPECT_LT(item.size(), 128u);  // one length byte
    wire += item;
    c.push_back({"batch item kind 7", kSignTokens, wire, Code::INVALID_ARGUMENT,
                 "kind", 1});
    v1::SignTokenRequest deep = ScenarioRequest();
    Nest(deep.mutable_extra_claims(), 200);
    b = v1::SignTokensRequest();
    *b.add_requests() = deep;
    *b.add_requests() = ScenarioRequest();
    c.push_back({"batch item nested 200 deep", kSignTokens,
                 b.SerializeAsString(), Code::INVALID_ARGUMENT, "extra_claims",
                 0});
  }
  return c;
}

}  // namespace tokensign::testing
