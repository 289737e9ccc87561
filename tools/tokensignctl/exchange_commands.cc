#include "tools/tokensignctl/exchange_commands.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "nlohmann/json.hpp"
#include "signer/token/jws.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::ctl {
namespace {

namespace v1 = tokensign::v1;

int Fail(const grpc::Status& st) {
  std::cerr << "tokensignctl: "
            << absl::StatusCodeToString(
                   static_cast<absl::StatusCode>(st.error_code()))
            << ": " << st.error_message() << "\n";
  return 1;
}

int Usage(const std::string& what) {
  std::cerr << "tokensignctl: " << what << "\n";
  return 1;
}

// The header and claims of a compact JWS, as JSON.
void PrintDecoded(const std::string& token) {
  size_t a = token.find('.'), b = token.find('.', a + 1);
  for (const auto& [name, part] :
       {std::pair{"header", token.substr(0, a)},
        std::pair{"claims", token.substr(a + 1, b - a - 1)}}) {
    auto bytes = token::Base64UrlDecode(part, name);
    nlohmann::json j = bytes.ok()
                           ? nlohmann::json::parse(*bytes, nullptr, false)
                           : nlohmann::json("(not base64url)");
    std::cout << name << ": " << j.dump(2) << "\n";
  }
}

// IDX or IDX=STATUS.
bool ParseEntry(const std::string& text, v1::StatusEntry* e) {
  const size_t eq = text.find('=');
  int64_t idx = 0;
  uint32_t status = 1;
  if (!absl::SimpleAtoi(text.substr(0, eq), &idx)) return false;
  if (eq != std::string::npos &&
      !absl::SimpleAtoi(text.substr(eq + 1), &status)) {
    return false;
  }
  e->set_idx(idx);
  e->set_status(status);
  return true;
}

grpc::ClientContext* WithDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  return ctx;
}

}  // namespace

ExchangeCommands::ExchangeCommands(CLI::App* app) {
  exchange_ = app->add_subcommand(
      "exchange",
      "exchange a token this service issued for a derived one (RFC 8693; the "
      "child never holds more than its parent)");
  exchange_->add_option("--issuer", issuer_, "issuer that signs the new token")
      ->required();
  exchange_->add_option("--subject-token-file", subject_token_file_,
                        "file holding the token to exchange (- = stdin)");
  exchange_->add_option("--subject-token", subject_token_,
                        "the token itself (visible in the process list; "
                        "prefer --subject-token-file)");
  exchange_->add_option("--kind", kind_, "access|transaction")
      ->check(CLI::IsMember({"access", "transaction"}));
  exchange_->add_option("--actor", actor_,
                        "the new actor (outermost act); none = chain kept");
  exchange_->add_option("--actor-iss", actor_iss_, "the new actor's iss");
  exchange_->add_option("--aud", aud_,
                        "audience (repeatable; default: the subject token's, "
                        "or the trust domain for a transaction token)");
  exchange_->add_option("--scope", scope_,
                        "scope (repeatable; default: the subject token's)");
  exchange_->add_option("--ttl", ttl_,
                        "lifetime in seconds (0 = issuer default, cut to the "
                        "subject token's exp)");
  exchange_->add_option("--may-act", may_act_,
                        "may_act.sub of the new token: who may act next");
  exchange_->add_option("--req-wl", req_wl_,
                        "requesting workload (transaction tokens)");
  exchange_->add_flag("--decode", decode_, "also print the header and claims");

  auto* status = app->add_subcommand(
      "status-list", "Token Status Lists (draft-ietf-oauth-status-list)");
  status_sign_ = status->add_subcommand(
      "sign", "sign an issuer's status list (role status-publisher)");
  status_sign_->add_option("--issuer", list_issuer_, "issuer name")
      ->required();
  status_sign_->add_option("--uri", uri_, "the list's URI (one configured)")
      ->required();
  status_sign_->add_option("--set", set_,
                           "IDX[=STATUS]: an entry that is not VALID "
                           "(repeatable; STATUS 1 = INVALID by default, 2 = "
                           "SUSPENDED)");
  status_sign_->add_option("--set-file", set_file_,
                           "file of IDX[=STATUS] lines (# comments)");
  status_sign_->add_option("--lifetime", lifetime_,
                           "exp - iat in seconds (0 = 86400)");
  status_sign_->add_option("--ttl", list_ttl_,
                           "the ttl claim: cache time in seconds (0 = 300)");
  status_sign_->add_flag("--decode", list_decode_,
                         "also print the header and claims");
}

bool ExchangeCommands::parsed() const {
  return exchange_->parsed() || status_sign_->parsed();
}

int ExchangeCommands::Run(
    const std::function<std::shared_ptr<grpc::Channel>()>& channel) const {
  try {
    return exchange_->parsed() ? RunExchange(channel())
                               : RunStatusList(channel());
  } catch (const std::exception& e) {
    return Usage(e.what());
  }
}

int ExchangeCommands::RunExchange(
    const std::shared_ptr<grpc::Channel>& channel) const {
  std::string token = subject_token_;
  if (token.empty() == subject_token_file_.empty()) {
    return Usage("exchange: give exactly one of --subject-token-file, "
                 "--subject-token");
  }
  if (!subject_token_file_.empty()) {
    std::stringstream ss;
    if (subject_token_file_ == "-") {
      ss << std::cin.rdbuf();
    } else {
      std::ifstream in(subject_token_file_);
      if (!in) return Usage("exchange: cannot read " + subject_token_file_);
      ss << in.rdbuf();
    }
    token = ss.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' ||
                              token.back() == ' ')) {
      token.pop_back();
    }
  }
  v1::ExchangeTokenRequest req;
  req.set_issuer(issuer_);
  req.set_subject_token(token);
  req.set_kind(kind_ == "transaction" ? v1::TRANSACTION_TOKEN
                                      : v1::ACCESS_TOKEN);
  if (!actor_.empty()) {
    req.mutable_actor()->set_sub(actor_);
    req.mutable_actor()->set_iss(actor_iss_);
  } else if (!actor_iss_.empty()) {
    return Usage("exchange: --actor-iss needs --actor");
  }
  for (const std::string& a : aud_) req.add_audience(a);
  for (const std::string& s : scope_) req.add_scope(s);
  req.set_ttl_seconds(ttl_);
  if (!may_act_.empty()) req.mutable_may_act()->set_sub(may_act_);
  req.set_req_wl(req_wl_);
  grpc::ClientContext ctx;
  v1::SignTokenResponse resp;
  grpc::Status st = v1::TokenSigner::NewStub(channel)->ExchangeToken(
      WithDeadline(&ctx), req, &resp);
  if (!st.ok()) return Fail(st);
  std::cout << resp.token() << "\n";
  if (decode_) {
    std::cout << "kid: " << resp.kid() << "\njti: " << resp.jti()
              << "\nexpires_at: " << resp.expires_at().seconds() << "\n";
    if (!resp.txn().empty()) std::cout << "txn: " << resp.txn() << "\n";
    PrintDecoded(resp.token());
  }
  return 0;
}

int ExchangeCommands::RunStatusList(
    const std::shared_ptr<grpc::Channel>& channel) const {
  v1::SignStatusListRequest req;
  req.set_issuer(list_issuer_);
  req.set_uri(uri_);
  std::vector<std::string> entries = set_;
  if (!set_file_.empty()) {
    std::ifstream in(set_file_);
    if (!in) return Usage("status-list sign: cannot read " + set_file_);
    for (std::string line; std::getline(in, line);) {
      line = line.substr(0, line.find('#'));
      line.erase(0, line.find_first_not_of(" \t\r"));
      line.erase(line.find_last_not_of(" \t\r") + 1);
      if (!line.empty()) entries.push_back(line);
    }
  }
  for (const std::string& text : entries) {
    if (!ParseEntry(text, req.add_entries())) {
      return Usage("status-list sign: \"" + text +
                   "\" is not IDX or IDX=STATUS");
    }
  }
  req.set_lifetime_seconds(lifetime_);
  req.set_ttl_seconds(list_ttl_);
  grpc::ClientContext ctx;
  v1::SignStatusListResponse resp;
  grpc::Status st = v1::TokenSigner::NewStub(channel)->SignStatusList(
      WithDeadline(&ctx), req, &resp);
  if (!st.ok()) return Fail(st);
  std::cout << resp.token() << "\n";
  if (list_decode_) {
    std::cout << "kid: " << resp.kid() << "\nexpires_at: "
              << resp.expires_at().seconds() << "\nsize: " << resp.size()
              << "\nset_entries: " << resp.set_entries() << "\n";
    PrintDecoded(resp.token());
  }
  return 0;
}

}  // namespace tokensign::ctl
