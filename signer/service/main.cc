// tokensignd: the tokensign gRPC signing daemon.
//   tokensignd --config FILE [--pid-file F] [--ready-file F]
//   tokensignd --dev [--state-dir DIR] [--grpc-listen A] [--http-listen A]
//              [--dev-verify-before-release=false] [--dev-audit-durability none]
//              [--dev-audit-linger-us N]
// The --dev-* knobs are for benchmarks and development only (they weaken what a
// released token is checked against / how durable its audit record is); in
// config mode the same settings are the TOML keys
// issuers.<name>.verify_before_release and audit.durability.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "signer/service/config.h"
#include "signer/service/daemon.h"
#include "signer/service/dev_mode.h"

#ifndef TOKENSIGN_SOFTHSM_MODULE
#define TOKENSIGN_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

int main(int argc, char** argv) {
  using namespace tokensign::service;
  CLI::App app{"tokensignd: signs delegated tokens with HSM-held issuer keys"};
  std::string config_path, state_dir = "./.tokensign-dev", grpc_listen,
                           http_listen;
  std::string pid_file, ready_file, log_level = "info";
  std::string module = TOKENSIGN_SOFTHSM_MODULE;
  bool dev = false;
  bool dev_verify = true;
  std::string dev_durability = "fsync";
  int64_t dev_linger_us = -1;
  int worker_threads = -1;
  auto* config_opt =
      app.add_option("--config", config_path, "TOML config file");
  auto* dev_opt =
      app.add_flag("--dev", dev,
                   "dev mode: own SoftHSM token + issuer `dev` in --state-dir, "
                   "plaintext on loopback");
  config_opt->excludes(dev_opt);
  app.add_option("--state-dir", state_dir, "dev mode state directory")
      ->needs(dev_opt);
  app.add_option("--grpc-listen", grpc_listen,
                 "gRPC listen address (overrides config)");
  app.add_option("--http-listen", http_listen,
                 "HTTP listen address (overrides config)");
  app.add_option("--module", module, "dev mode: PKCS#11 module")
      ->needs(dev_opt);
  app.add_option("--dev-verify-before-release", dev_verify,
                 "dev/benchmark only: false = release tokens without verifying "
                 "the fresh signature (config mode: "
                 "issuers.<name>.verify_before_release)")
      ->needs(dev_opt);
  app.add_option("--dev-audit-durability", dev_durability,
                 "dev/benchmark only: fsync (default) | none = audit records "
                 "are not fdatasync'ed (config mode: audit.durability)")
      ->check(CLI::IsMember({"fsync", "none"}))
      ->needs(dev_opt);
  app.add_option("--dev-audit-linger-us", dev_linger_us,
                 "dev/benchmark only: audit group-commit linger in us "
                 "(default: the audit log's; config mode: "
                 "audit.commit_linger_us)")
      ->check(CLI::Range(0, 100000))
      ->needs(dev_opt);
  app.add_option("--worker-threads", worker_threads,
                 "signing worker threads (overrides server.worker_threads; "
                 "0 = hardware threads)")
      ->check(CLI::Range(0, 256));
  app.add_option("--pid-file", pid_file,
                 "pid file (dev default: STATE_DIR/tokensignd.pid)");
  app.add_option(
      "--ready-file", ready_file,
      "write {\"grpc_port\",\"http_port\",\"pid\"} here once listening");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  CLI11_PARSE(app, argc, argv);
  // gRPC locks are absl::Mutex; Debian's absl keeps its debug deadlock
  // detection on, which maintains a lock graph on every contended lock
  // (GraphCycles: ~2% of the daemon's CPU under load). Our lock order is
  // checked by the tests (ThreadSanitizer builds), not at run time.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  spdlog::set_level(spdlog::level::from_str(log_level));
  if (!dev && config_path.empty()) {
    std::cerr << "tokensignd: give --config FILE or --dev\n";
    return 2;
  }

  DaemonOptions opts;
  if (dev) {
    auto dir = PrepareDevState(state_dir, module);
    if (!dir.ok()) {
      std::cerr << "tokensignd: " << dir.status().message() << "\n";
      return 1;
    }
    opts.config = DevConfig(*dir, module);
    opts.config.hsm.token_label = kDevTokenLabel;
    if (pid_file.empty()) pid_file = *dir + "/tokensignd.pid";
    if (!dev_verify) {
      for (auto& [name, issuer] : opts.config.issuers)
        issuer.policy.verify_before_release = false;
      spdlog::warn("dev/benchmark knob: tokens are released WITHOUT verifying "
                   "their signature (--dev-verify-before-release=false)");
    }
    if (dev_linger_us >= 0) opts.config.audit.commit_linger_us = dev_linger_us;
    if (dev_durability == "none") {
      opts.config.audit.durability = tokensign::audit::Durability::kNone;
      spdlog::warn("dev/benchmark knob: audit records are NOT fdatasync'ed "
                   "(--dev-audit-durability=none)");
    }
    spdlog::info("dev mode: state in {} (SOFTHSM2_CONF={}/softhsm2.conf)", *dir,
                 *dir);
  } else {
    auto cfg = LoadConfigFile(config_path);
    if (!cfg.ok()) {
      std::cerr << "tokensignd: config refused: " << cfg.status().message()
                << "\n";
      return 2;
    }
    opts.config = std::move(*cfg);
    opts.config_path = config_path;
  }
  if (!grpc_listen.empty()) opts.config.server.grpc_listen = grpc_listen;
  if (!http_listen.empty()) opts.config.server.http_listen = http_listen;
  if (worker_threads >= 0) opts.config.server.worker_threads = worker_threads;
  if (!dev && opts.config.server.insecure &&
      !IsLoopbackAddress(opts.config.server.grpc_listen)) {
    std::cerr << "tokensignd: config refused: server.insecure: plaintext is "
                 "only allowed on a "
                 "loopback grpc_listen\n";
    return 2;
  }
  opts.pid_file = pid_file;
  opts.ready_file = ready_file;
  if (const char* d = std::getenv("TOKENSIGN_TEST_WORK_DELAY_MS");
      d != nullptr) {
    opts.test_work_delay = std::chrono::milliseconds(std::atoi(d));
  }

  auto daemon = Daemon::Start(std::move(opts));
  if (!daemon.ok()) {
    std::cerr << "tokensignd: cannot start: " << daemon.status().message()
              << "\n";
    return 1;
  }
  int rc = (*daemon)->Run();
  daemon->reset();
  return rc;
}
