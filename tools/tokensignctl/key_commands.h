// tokensignctl keys ...: the key custodian's commands against a daemon's
// KeyAdmin service (list, create, rotate, activate, retire, destroy, schedule,
// inspect).
//
// Output: a table by default (times in UTC, RFC 3339, "-" when unset); with
// --json the KeyAdmin answer in the proto3 JSON mapping with the proto's
// field names (snake_case; timestamps as RFC 3339 strings; states by name;
// unset timestamps left out, empty strings and false printed).
//
// Exit codes (KeysExit), so a script can act on the outcome:
//   0  done
//   1  usage error (bad arguments, --now/--force without --reason), cannot
//      reach the daemon or the daemon cannot serve (UNAVAILABLE, HSM or audit
//      log down), deadline exceeded, any other error
//   2  refused by the lifecycle rules (FAILED_PRECONDITION, INVALID_ARGUMENT,
//      ALREADY_EXISTS, OUT_OF_RANGE): the message names the rule; retrying
//      the same call will not help until the state changes
//   3  retry: ABORTED (another replica changed the keyset; this daemon has
//      reloaded it) or RESOURCE_EXHAUSTED (work queue full)
//   4  not found or not allowed (NOT_FOUND: unknown issuer or kid;
//      PERMISSION_DENIED / UNAUTHENTICATED: the caller's role or issuers)
//
// Thread-safety: single-threaded CLI code.
#ifndef TOKENSIGN_TOOLS_TOKENSIGNCTL_KEY_COMMANDS_H_
#define TOKENSIGN_TOOLS_TOKENSIGNCTL_KEY_COMMANDS_H_

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

namespace tokensign::ctl {

enum KeysExit {
  kKeysOk = 0,
  kKeysUsageOrConnection = 1,
  kKeysRefused = 2,
  kKeysRetry = 3,
  kKeysNotAllowed = 4,
};

// The exit code for a KeyAdmin answer (see the file comment).
int KeysExitCode(grpc::StatusCode code);

class KeyCommands {
 public:
  // Adds `keys` and its subcommands to `app`.
  explicit KeyCommands(CLI::App* app);
  KeyCommands(const KeyCommands&) = delete;
  KeyCommands& operator=(const KeyCommands&) = delete;

  // True when the command line named a `keys` subcommand.
  bool parsed() const;
  // Runs it on a channel from `channel` (which may throw on unreadable TLS
  // files: exit 1); prints the answer; returns the exit code.
  int Run(const std::function<std::shared_ptr<grpc::Channel>()>& channel) const;

 private:
  struct Args {
    std::string issuer, alg, kid, reason;
    bool force = false;
    bool now = false;
    bool json = false;
  };
  int Dispatch(const std::shared_ptr<grpc::Channel>& channel) const;

  Args args_;
  CLI::App* keys_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* create_ = nullptr;
  CLI::App* rotate_ = nullptr;
  CLI::App* activate_ = nullptr;
  CLI::App* retire_ = nullptr;
  CLI::App* destroy_ = nullptr;
  CLI::App* schedule_ = nullptr;
  CLI::App* inspect_ = nullptr;
};

}  // namespace tokensign::ctl

#endif  // TOKENSIGN_TOOLS_TOKENSIGNCTL_KEY_COMMANDS_H_
