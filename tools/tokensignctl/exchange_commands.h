// tokensignctl exchange / status-list sign: token exchange and Token Status
// List signing against a daemon's TokenSigner service.
//
//   tokensignctl [conn] exchange --issuer I (--subject-token-file F | -
//       | --subject-token T) [--kind access|transaction] [--actor SUB
//       [--actor-iss ISS]] [--aud A]... [--scope S]... [--ttl N]
//       [--may-act SUB] [--req-wl W] [--decode]
//     prints the new token (role signer); the subject token is best read
//     from a file or stdin ("-"): a bearer token on the command line is
//     visible to other users in the process list.
//   tokensignctl [conn] status-list sign --issuer I --uri URI
//       [--set IDX[=STATUS]]... [--set-file F] [--lifetime N] [--ttl N]
//       [--decode]
//     prints the signed status list token (role status-publisher); --set and
//     --set-file (one IDX[=STATUS] per line, # comments) name the entries
//     that are not VALID; STATUS defaults to 1 (INVALID).
// Exit codes: 0 done, 1 usage error or any error from the daemon (printed as
// "tokensignctl: CODE: message", the message names the rule).
//
// Thread-safety: single-threaded CLI code.
#ifndef TOKENSIGN_TOOLS_TOKENSIGNCTL_EXCHANGE_COMMANDS_H_
#define TOKENSIGN_TOOLS_TOKENSIGNCTL_EXCHANGE_COMMANDS_H_

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tokensign::ctl {

class ExchangeCommands {
 public:
  // Adds `exchange` and `status-list sign` to `app`.
  explicit ExchangeCommands(CLI::App* app);
  ExchangeCommands(const ExchangeCommands&) = delete;
  ExchangeCommands& operator=(const ExchangeCommands&) = delete;

  // True when the command line named one of them.
  bool parsed() const;
  // Runs it on a channel from `channel`; prints the answer; returns the exit
  // code.
  int Run(const std::function<std::shared_ptr<grpc::Channel>()>& channel) const;

 private:
  int RunExchange(const std::shared_ptr<grpc::Channel>& channel) const;
  int RunStatusList(const std::shared_ptr<grpc::Channel>& channel) const;

  CLI::App* exchange_ = nullptr;
  CLI::App* status_sign_ = nullptr;
  // exchange
  std::string issuer_, subject_token_, subject_token_file_, kind_ = "access";
  std::string actor_, actor_iss_, may_act_, req_wl_;
  std::vector<std::string> aud_, scope_;
  int64_t ttl_ = 0;
  bool decode_ = false;
  // status-list sign
  std::string list_issuer_, uri_, set_file_;
  std::vector<std::string> set_;
  int64_t lifetime_ = 0, list_ttl_ = 0;
  bool list_decode_ = false;
};

}  // namespace tokensign::ctl

#endif  // TOKENSIGN_TOOLS_TOKENSIGNCTL_EXCHANGE_COMMANDS_H_
