// Daemon: assembles tokensignd (HSM, key provider, keysets, audit log, metrics,
// worker pool, gRPC server with health + reflection, Beast HTTP listener) and
// runs it until a signal.
//
// Contract:
// - Start() opens everything, loads the keysets (dev: ensures an active key for
// `dev`),
//   binds both listeners (port 0 = ephemeral; see grpc_port()/http_port()),
//   writes the pid file and the ready file
//   ({"grpc_port":N,"http_port":M,"pid":P}) if asked, and returns. gRPC is mTLS
//   (client certificate required and verified against client_ca) unless
//   insecure/dev on a loopback address.
// - Run() blocks: SIGTERM/SIGINT stop accepting, let in-flight RPCs finish
// (their audit
//   records are durable), drain the pool, close the audit log and return 0.
//   SIGHUP re-reads the config file (if any) and the keyset records, and swaps
//   the policy atomically; a bad config is logged and the old one kept.
// - daemon.cc only wires the parts: daemon_setup.h builds the listener
//   credentials and the audit log, keyset_upkeep.h runs the HSM probe, keyset
//   Tick/Refresh and the orphan sweep on Asio timers. One io thread runs the
//   signals, those timers and the HTTP listener and never calls the HSM: HSM
//   work (upkeep rounds, the SIGHUP reload) runs on the WorkPool.
// Thread-safety: Start, then Run from one thread.
#ifndef TOKENSIGN_SIGNER_SERVICE_DAEMON_H_
#define TOKENSIGN_SIGNER_SERVICE_DAEMON_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "signer/service/config.h"

namespace tokensign::service {

struct DaemonOptions {
  Config config;
  std::string config_path;  // re-read on SIGHUP; empty in dev mode
  std::string pid_file;     // written at start, removed at exit; empty = none
  std::string
      ready_file;  // written once both listeners are bound; empty = none
  // Test hook: each pool task sleeps this long first
  // (TOKENSIGN_TEST_WORK_DELAY_MS).
  std::chrono::milliseconds test_work_delay{0};
};

class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  int Run();
  int grpc_port() const;
  int http_port() const;

  struct Parts;  // defined in daemon.cc

 private:
  explicit Daemon(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_DAEMON_H_
