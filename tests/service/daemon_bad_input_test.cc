// Bad-input matrix against the real tokensignd (issue 16), as a table: empty
// and oversized strings, invalid UTF-8, control and format characters,
// 10k-element repeated fields, deep Struct nesting, unknown issuers, negative
// and huge TTLs, duplicate audiences and scopes, oversized batches and
// unknown enum values, sent over mTLS to SignToken, SignTokens, ExchangeToken
// and KeyAdmin as raw bytes (what any client can send). Each case must be
// answered with its documented code and a message that starts with the field
// at fault ("<field>: ...") and does not echo an oversized value whole; the
// answers are counted in tokensign_requests_total; every refusal is audited
// as denied with the caller's mTLS identity; and the daemon keeps serving: a
// valid SignToken succeeds after the matrix.
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/service/daemon_harness.h"
#include "tests/service/raw_call.h"

namespace tokensign::testing {
namespace {

using Code = grpc::StatusCode;

constexpr char kSignToken[] = "/tokensign.v1.TokenSigner/SignToken";
constexpr char kSignTokens[] = "/tokensign.v1.TokenSigner/SignTokens";
constexpr char kExchangeToken[] = "/tokensign.v1.TokenSigner/ExchangeToken";
constexpr char kKeyAdmin[] = "/tokensign.v1.KeyAdmin/";

constexpr char kSigner[] = "spiffe://test/signer";
constexpr char kCustodian[] = "custodian-1";

// mTLS config on the dev token in `state`: issuer `dev` with transaction
// tokens, any actor and any non-reserved extra claim, so each case reaches
// the rule it is about.
std::string Toml(DaemonHarness& h, const std::string& state) {
  return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
         "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
         state + "/pin\"\n\n[server]\ntls_cert = \"" + h.Path("server.pem") +
         "\"\ntls_key = \"" + h.Path("server.key") + "\"\nclient_ca = \"" +
         h.Path("ca.pem") + "\"\n\n[audit]\npath = \"" + h.Path("audit.log") +
         "\"\n\n[[callers]]\nid = \"spiffe://test/signer\"\nroles = "
         "[\"signer\"]\nissuers = [\"dev\"]\n"
         "[[callers]]\nid = \"custodian-1\"\nroles = [\"custodian\"]\n"
         "issuers = [\"*\"]\n\n[issuers.dev]\niss = \"https://issuer.example\"\n"
         "audiences = [\"https://api.example\", \"https://tools.example\", "
         "\"https://trust.example\"]\nscopes = [\"read\", \"write\"]\n"
         "token_kinds = [\"access_token\", \"transaction_token\"]\n"
         "any_actor = true\nextra_claims = [\"*\"]\n\n"
         "[issuers.dev.exchange]\ntrust_domain = \"https://trust.example\"\n";
}

// Calls `method` with `bytes` as the request message, as any client could.
RawReply RawCall(const std::shared_ptr<grpc::Channel>& ch,
                 const std::string& method, const std::string& bytes) {
  return testing::RawCall(ch, method, bytes, std::chrono::seconds(60));
}

// A varint-encoded field `number` (wire type 0) with `value`, as a client
// that knows other enum values would send it.
std::string VarintField(int number, int64_t value) {
  std::string out(1, static_cast<char>(number << 3));
  auto v = static_cast<uint64_t>(value);
  do {
    char b = static_cast<char>(v & 0x7f);
    v >>= 7;
    if (v != 0) b = static_cast<char>(b | 0x80);
    out.push_back(b);
  } while (v != 0);
  return out;
}

// `levels` Structs nested in `s` under the key "n".
void Nest(google::protobuf::Struct* s, int levels) {
  for (int i = 1; i < levels; ++i)
    s = (*s->mutable_fields())["n"].mutable_struct_value();
}

// One row of the matrix.
struct Case {
  std::string name;
  std::string method;  // full method path
  std::string bytes;   // the request as sent
  Code code;           // the answer's code (or the batch item's)
  std::string field;   // the message starts with "<field>: "
  int item = -1;       // SignTokens answered OK: the item that failed
  std::string cert = "signer";
};

using SignEdit = std::function<void(v1::SignTokenRequest*)>;
using ExchangeEdit = std::function<void(v1::ExchangeTokenRequest*)>;

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

Case Admin(std::string name, const std::string& method,
           const google::protobuf::Message& req, Code code, std::string field) {
  return {std::move(name), kKeyAdmin + method, req.SerializeAsString(), code,
          std::move(field), -1, "custodian"};
}

std::string Big(size_t n) { return std::string(n, 'x'); }

// A transaction-token request that is valid as it is.
void MakeTxn(v1::SignTokenRequest* r) {
  r->set_kind(v1::TRANSACTION_TOKEN);
  r->clear_audience();
  r->add_audience("https://trust.example");
  r->set_req_wl("gateway");
  r->set_ttl_seconds(60);
}

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

// ExchangeToken cases around a valid subject token `parent` (aud
// https://api.example, scope read write, 600 s).
std::vector<Case> ExchangeCases(const std::string& parent) {
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  using X = v1::ExchangeTokenRequest;
  auto ex = [&parent](std::string name, const ExchangeEdit& edit, Code code,
                      std::string field) {
    X r;
    r.set_issuer("dev");
    r.set_subject_token(parent);
    r.set_kind(v1::ACCESS_TOKEN);
    r.mutable_actor()->set_sub("agent-9");
    edit(&r);
    return Case{std::move(name), kExchangeToken, r.SerializeAsString(), code,
                std::move(field)};
  };
  std::vector<Case> c;
  c.push_back(ex("empty subject_token", [](X* r) { r->clear_subject_token(); },
                 Code::INVALID_ARGUMENT, "subject_token"));
  c.push_back(ex("subject_token garbage",
                 [](X* r) { r->set_subject_token("a.b.c"); },
                 Code::INVALID_ARGUMENT, "subject_token"));
  c.push_back(ex("subject_token 1 MiB",
                 [](X* r) { r->set_subject_token(Big(1 << 20)); },
                 Code::INVALID_ARGUMENT, "subject_token"));
  c.push_back(ex("subject_token with a forged signature",
                 [&parent](X* r) {
                   std::string t = parent;
                   t.back() = t.back() == 'A' ? 'Q' : 'A';
                   r->set_subject_token(t);
                 },
                 Code::PERMISSION_DENIED, "subject_token"));
  {
    X r;
    r.set_issuer("dev");
    r.set_subject_token("MARKER");
    r.set_kind(v1::ACCESS_TOKEN);
    c.push_back({"subject_token invalid UTF-8", kExchangeToken,
                 WithBytes(r, "MARKER", "MA\xFE" "KER"), Code::INVALID_ARGUMENT,
                 "subject_token"});
    r.set_subject_token(parent);
    r.clear_kind();
    c.push_back({"exchange kind 9", kExchangeToken,
                 r.SerializeAsString() + VarintField(3, 9),
                 Code::INVALID_ARGUMENT, "kind"});
  }
  c.push_back(ex("exchange kind unset", [](X* r) { r->clear_kind(); },
                 Code::INVALID_ARGUMENT, "kind"));
  c.push_back(ex("exchange unknown issuer", [](X* r) { r->set_issuer("nope"); },
                 Code::NOT_FOUND, "issuer"));
  c.push_back(ex("exchange actor sub empty",
                 [](X* r) { r->mutable_actor()->clear_sub(); },
                 Code::INVALID_ARGUMENT, "act.sub"));
  c.push_back(ex("exchange actor sub with U+202E",
                 [](X* r) { r->mutable_actor()->set_sub("agent\xE2\x80\xAE"); },
                 Code::INVALID_ARGUMENT, "act.sub"));
  c.push_back(ex("exchange actor sub 1 MiB",
                 [](X* r) { r->mutable_actor()->set_sub(Big(1 << 20)); },
                 Code::INVALID_ARGUMENT, "act.sub"));
  c.push_back(ex("exchange ttl -1", [](X* r) { r->set_ttl_seconds(-1); },
                 Code::INVALID_ARGUMENT, "ttl_seconds"));
  c.push_back(ex("exchange ttl INT64_MIN",
                 [](X* r) {
                   r->set_ttl_seconds(std::numeric_limits<int64_t>::min());
                 },
                 Code::INVALID_ARGUMENT, "ttl_seconds"));
  c.push_back(ex("exchange ttl INT64_MAX",
                 [kMax](X* r) { r->set_ttl_seconds(kMax); },
                 Code::PERMISSION_DENIED, "exp"));
  c.push_back(ex("exchange duplicate scope",
                 [](X* r) {
                   r->add_scope("read");
                   r->add_scope("read");
                 },
                 Code::INVALID_ARGUMENT, "scope[1]"));
  c.push_back(ex("exchange duplicate audience",
                 [](X* r) {
                   r->add_audience("https://api.example");
                   r->add_audience("https://api.example");
                 },
                 Code::INVALID_ARGUMENT, "aud[1]"));
  c.push_back(ex("exchange 10k scopes",
                 [](X* r) {
                   for (int i = 0; i < 10000; ++i) r->add_scope("read");
                 },
                 Code::INVALID_ARGUMENT, "scope"));
  c.push_back(ex("exchange 10k audiences",
                 [](X* r) {
                   for (int i = 0; i < 10000; ++i)
                     r->add_audience("https://api.example");
                 },
                 Code::INVALID_ARGUMENT, "aud"));
  c.push_back(ex("exchange req_wl in an access token",
                 [](X* r) { r->set_req_wl("gw"); }, Code::INVALID_ARGUMENT,
                 "req_wl"));
  c.push_back(ex("exchange rctx nested 200 deep",
                 [](X* r) {
                   r->set_kind(v1::TRANSACTION_TOKEN);
                   r->set_req_wl("gw");
                   Nest(r->mutable_rctx(), 200);
                 },
                 Code::INVALID_ARGUMENT, "rctx"));
  return c;
}

std::vector<Case> KeyAdminCases() {
  std::vector<Case> c;
  v1::CreateKeyRequest create;
  create.set_issuer("nope");
  c.push_back(Admin("CreateKey unknown issuer", "CreateKey", create,
                    Code::NOT_FOUND, "issuer"));
  create.set_issuer(Big(1 << 20));
  c.push_back(Admin("CreateKey issuer 1 MiB", "CreateKey", create,
                    Code::NOT_FOUND, "issuer"));
  create.set_issuer("dev");
  create.set_alg("HS256");
  c.push_back(Admin("CreateKey alg HS256", "CreateKey", create,
                    Code::INVALID_ARGUMENT, "alg"));
  create.set_alg(Big(1 << 20));
  c.push_back(Admin("CreateKey alg 1 MiB", "CreateKey", create,
                    Code::INVALID_ARGUMENT, "alg"));
  create.set_alg("MARKER");
  c.push_back({"CreateKey alg invalid UTF-8",
               std::string(kKeyAdmin) + "CreateKey",
               WithBytes(create, "MARKER", "MARK\xC3R"), Code::INVALID_ARGUMENT,
               "alg", -1, "custodian"});
  v1::ListKeysRequest list;
  list.set_issuer("de\x01v");
  c.push_back(Admin("ListKeys issuer with U+0001", "ListKeys", list,
                    Code::NOT_FOUND, "issuer"));
  v1::RotateKeyRequest rotate;
  rotate.set_issuer("dev");
  rotate.set_mode(v1::EMERGENCY);
  c.push_back(Admin("RotateKey EMERGENCY without reason", "RotateKey", rotate,
                    Code::INVALID_ARGUMENT, "reason"));
  rotate.clear_mode();
  c.push_back({"RotateKey mode 7", std::string(kKeyAdmin) + "RotateKey",
               rotate.SerializeAsString() + VarintField(3, 7),
               Code::INVALID_ARGUMENT, "mode", -1, "custodian"});
  c.push_back({"RotateKey mode -2", std::string(kKeyAdmin) + "RotateKey",
               rotate.SerializeAsString() + VarintField(3, -2),
               Code::INVALID_ARGUMENT, "mode", -1, "custodian"});
  v1::ActivateKeyRequest activate;
  activate.set_issuer("dev");
  c.push_back(Admin("ActivateKey empty kid", "ActivateKey", activate,
                    Code::NOT_FOUND, "kid"));
  activate.set_kid(Big(1 << 20));
  c.push_back(Admin("ActivateKey kid 1 MiB", "ActivateKey", activate,
                    Code::NOT_FOUND, "kid"));
  v1::RetireKeyRequest retire;
  retire.set_issuer("dev");
  retire.set_kid("k\xE2\x80\xAEid");
  c.push_back(Admin("RetireKey kid with U+202E", "RetireKey", retire,
                    Code::NOT_FOUND, "kid"));
  v1::DestroyKeyRequest destroy;
  destroy.set_issuer("dev");
  destroy.set_kid("unknown");
  destroy.set_force(true);
  c.push_back(Admin("DestroyKey unknown kid, force without reason",
                    "DestroyKey", destroy, Code::NOT_FOUND, "kid"));
  v1::InspectKeysRequest inspect;
  inspect.set_issuer("dev");
  inspect.set_kid("MARKER");
  c.push_back({"InspectKeys kid invalid UTF-8",
               std::string(kKeyAdmin) + "InspectKeys",
               WithBytes(inspect, "MARKER", "\xFFMARKE"), Code::INVALID_ARGUMENT,
               "kid", -1, "custodian"});
  inspect.set_kid(Big(1 << 20));
  c.push_back(Admin("InspectKeys kid 1 MiB", "InspectKeys", inspect,
                    Code::NOT_FOUND, "kid"));
  return c;
}

// tokensign_requests_total{code,method} from a /metrics page.
std::map<std::string, double> RequestCounts(const std::string& metrics) {
  std::map<std::string, double> out;
  const std::string prefix = "tokensign_requests_total{";
  for (size_t at = metrics.find(prefix); at != std::string::npos;
       at = metrics.find(prefix, at + 1)) {
    size_t close = metrics.find("} ", at);
    size_t eol = metrics.find('\n', close);
    out[metrics.substr(at + prefix.size(), close - at - prefix.size())] =
        std::stod(metrics.substr(close + 2, eol - close - 2));
  }
  return out;
}

std::string MethodName(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

std::string CodeName(Code code) {
  switch (code) {
    case Code::OK:
      return "OK";
    case Code::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case Code::NOT_FOUND:
      return "NOT_FOUND";
    case Code::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case Code::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    default:
      return "code " + std::to_string(static_cast<int>(code));
  }
}

TEST(DaemonBadInputTest, EveryCaseIsRefusedNamedCountedAuditedAndTheDaemonServes) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  h.MakeCerts();
  WriteAll(h.Path("tokensignd.toml"), Toml(h, state));
  DaemonProcess d = h.Start({"--config", h.Path("tokensignd.toml")},
                            {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"});
  ASSERT_GT(d.pid, 0);
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels = {
      {"signer", h.Tls(d, "signer")}, {"custodian", h.Tls(d, "custodian")}};

  // A valid subject token for the exchange cases.
  v1::SignTokenRequest parent_req = ScenarioRequest();
  parent_req.add_scope("write");
  RawReply parent =
      RawCall(channels["signer"], kSignToken, parent_req.SerializeAsString());
  ASSERT_TRUE(parent.status.ok()) << parent.status.error_message();
  v1::SignTokenResponse parent_resp;
  ASSERT_TRUE(parent_resp.ParseFromString(parent.body));

  std::vector<Case> cases = SignTokenCases();
  for (std::vector<Case> more :
       {SignTokensCases(), ExchangeCases(parent_resp.token()), KeyAdminCases()}) {
    cases.insert(cases.end(), more.begin(), more.end());
  }
  const std::map<std::string, double> before =
      RequestCounts(h.HttpGet(d, "/metrics"));

  std::map<std::string, double> expected_counts;  // "code=..,method=.." -> n
  struct Audited {
    std::string name, caller, field;
  };
  std::vector<Audited> audited;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawReply r = RawCall(channels[c.cert], c.method, c.bytes);
    std::string message;
    Code code;
    const std::string method = MethodName(c.method);
    if (c.item < 0) {
      code = r.status.error_code();
      message = r.status.error_message();
      expected_counts["code=\"" + CodeName(c.code) + "\",method=\"" + method +
                      "\""] += 1;
    } else {
      ASSERT_TRUE(r.status.ok()) << r.status.error_message();
      v1::SignTokensResponse resp;
      ASSERT_TRUE(resp.ParseFromString(r.body));
      ASSERT_GT(resp.results_size(), c.item);
      for (int i = 0; i < resp.results_size(); ++i) {
        EXPECT_EQ(resp.results(i).has_response(), i != c.item) << "item " << i;
      }
      const v1::ItemError& e = resp.results(c.item).error();
      code = static_cast<Code>(e.code());
      message = e.message();
      EXPECT_EQ(e.field().empty() ? "" : c.field.substr(0, e.field().size()),
                e.field())
          << message;
      expected_counts["code=\"OK\",method=\"SignTokens\""] += 1;
    }
    EXPECT_EQ(CodeName(code), CodeName(c.code)) << message;
    EXPECT_EQ(message.rfind(c.field + ": ", 0), 0u)
        << "the message does not start with \"" << c.field << ": \": "
        << message.substr(0, 300);
    // Clean: an oversized value is never echoed whole (a status message
    // beyond 8 KiB once reached the client as its own RESOURCE_EXHAUSTED).
    EXPECT_LE(message.size(), 1100u) << message.substr(0, 300);
    audited.push_back(
        {c.name, c.cert == "signer" ? kSigner : kCustodian, c.field});
  }
  std::printf("bad-input matrix: %zu cases\n", cases.size());
  RecordProperty("cases", static_cast<int>(cases.size()));

  // Still serving: a valid SignToken on the same connection.
  RawReply ok = RawCall(channels["signer"], kSignToken,
                        ScenarioRequest().SerializeAsString());
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  expected_counts["code=\"OK\",method=\"SignToken\""] += 1;
  EXPECT_EQ(kill(d.pid, 0), 0) << "the daemon is gone";

  // Counted.
  const std::string metrics = h.HttpGet(d, "/metrics");
  const std::map<std::string, double> after = RequestCounts(metrics);
  for (const auto& [labels, n] : expected_counts) {
    const double was = before.count(labels) ? before.at(labels) : 0;
    const double now = after.count(labels) ? after.at(labels) : 0;
    EXPECT_EQ(now - was, n) << "tokensign_requests_total{" << labels << "}";
  }
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);

  // Audited as denied with the caller's identity, in order, the reason naming
  // the field.
  std::vector<nlohmann::json> denied;
  for (const nlohmann::json& l : h.AuditLines(h.Path("audit.log"))) {
    if (l.value("outcome", "") == "denied") denied.push_back(l);
  }
  size_t next = 0;
  for (const Audited& a : audited) {
    size_t at = next;
    while (at < denied.size() &&
           !(denied[at].value("caller", "") == a.caller &&
             denied[at].value("reason", "").rfind(a.field + ": ", 0) == 0)) {
      ++at;
    }
    EXPECT_LT(at, denied.size())
        << a.name << ": no denied record by " << a.caller << " naming "
        << a.field << " after record " << next;
    if (at < denied.size()) next = at + 1;
  }
}

}  // namespace
}  // namespace tokensign::testing
