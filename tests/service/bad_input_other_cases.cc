// The bad-input matrix's ExchangeToken and KeyAdmin rows (bad_input_cases.h).
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "tests/service/bad_input_cases.h"
#include "tests/service/daemon_harness.h"
#include "tests/service/raw_call.h"

namespace tokensign::testing {

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
  c.push_back(ex("subject_token header kid a number",
                 [&parent](X* r) {
                   // Threw out of VerifyParent and ended the daemon.
                   r->set_subject_token(
                       absl::WebSafeBase64Escape(
                           R"({"alg":"ES256","kid":7,"typ":"at+jwt"})") +
                       parent.substr(parent.find('.')));
                 },
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

}  // namespace tokensign::testing
