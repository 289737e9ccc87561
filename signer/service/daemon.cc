#include "signer/service/daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <cstdio>
#include <future>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hsm/hsm.h"
#include "hsm/pin.h"
#include "hsm/pkcs11_call.h"
#include "hsm/provider/provider_keys.h"
#include "signer/audit/audit_log.h"
#include "signer/keyset/keyset_manager.h"
#include "signer/service/audit_hsm.h"
#include "signer/service/audit_service.h"
#include "signer/service/daemon_setup.h"
#include "signer/service/grpc_services.h"
#include "signer/service/http/http_server.h"
#include "signer/service/http/metrics.h"
#include "signer/service/keyset_upkeep.h"
#include "signer/service/signing_core.h"
#include "signer/service/state_file.h"
#include "signer/service/work_pool.h"

namespace tokensign::service {
namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(20);

}  // namespace

// Everything the daemon owns, in construction order (destroyed in reverse:
// the audit log closes after everything that writes to it).
struct Daemon::Parts {
  DaemonOptions options;
  std::shared_ptr<hsm::Hsm> hsm;
  std::shared_ptr<hsm::provider::HsmKeyProvider> provider;
  std::unique_ptr<keyset::KeysetManager> keys;
  OpenedAudit audit;  // its anchors outlive its log
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<SigningCore> core;
  std::unique_ptr<WorkPool> pool;
  std::unique_ptr<TokenSignerService> signer_service;
  std::unique_ptr<KeyAdminService> admin_service;
  std::unique_ptr<AuditAdminService> audit_service;
  std::unique_ptr<grpc::Server> server;
  // The io thread runs signals, the upkeep timers and the HTTP listener;
  // nothing on it calls the HSM (SIGHUP's reload runs on the pool).
  boost::asio::io_context io;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<boost::asio::signal_set> signals;
  std::unique_ptr<KeysetUpkeep> upkeep;  // destroyed before `io`
  std::thread io_thread;
  std::promise<void> stop;
  std::once_flag stop_once;
  std::mutex reload_mu;

  ~Parts() {
    if (hsm) hsm->SetErrorObserver(nullptr);  // before metrics goes
  }

  int grpc_port = 0;
  int http_port = 0;

  absl::Status ReadyStatus() {
    if (!hsm->Healthy())
      return absl::UnavailableError("hsm: no logged-in session");
    if (absl::Status st = audit.log->health(); !st.ok()) return st;
    for (const std::string& issuer : IssuerNames(core->policy()->config)) {
      if (auto key = keys->ActiveKey(issuer); !key.ok()) return key.status();
    }
    return absl::OkStatus();
  }

  // SIGHUP, on a pool thread (it reads the HSM); one reload at a time.
  void Reload() {
    std::lock_guard<std::mutex> lock(reload_mu);
    std::shared_ptr<const PolicySnapshot> next = core->policy();
    if (!options.config_path.empty()) {
      auto cfg = LoadConfigFile(options.config_path);
      if (!cfg.ok()) {
        spdlog::error("SIGHUP: config not reloaded, keeping the old one: {}",
                      std::string(cfg.status().message()));
        return;
      }
      // Listener mode, TLS, HSM and audit settings stay as started: a reload
      // that turned on `insecure` must not make a live mTLS listener trust
      // every peer.
      std::vector<std::string> ignored =
          KeepRestartOnlySections(next->config, &*cfg);
      if (!ignored.empty()) {
        spdlog::warn(
            "SIGHUP: changes to {} need a restart; keeping the running values",
            absl::StrJoin(ignored, ", "));
      }
      next = std::make_shared<const PolicySnapshot>(std::move(*cfg));
    }
    keys->SetPolicies(LifecyclePolicies(next->config));
    if (absl::Status st = keys->Load(IssuerNames(next->config)); !st.ok()) {
      spdlog::error("SIGHUP: keysets not reloaded, keeping the old config: {}",
                    std::string(st.message()));
      return;
    }
    core->SetPolicy(next);
    upkeep->UpdateKeyAges();
    spdlog::info("SIGHUP: config and keysets reloaded ({} issuers)",
                 next->config.issuers.size());
  }

  void WaitSignal() {
    signals->async_wait([this](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        if (!pool->Schedule([this] { Reload(); }))
          spdlog::warn("SIGHUP: shutting down; not reloaded");
        WaitSignal();
        return;
      }
      spdlog::info("signal {}: draining and stopping", signo);
      std::call_once(stop_once, [this] { stop.set_value(); });
    });
  }
};

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions options) {
  auto p = std::make_unique<Parts>();
  p->options = std::move(options);
  const Config& cfg = p->options.config;

  // A PIN file others may write, or another user owns, refuses start (checked
  // again on the file Hsm::Open reads); one others may read is only warned of.
  absl::StatusOr<std::string> pin_warning = hsm::CheckPinFile(cfg.hsm);
  if (!pin_warning.ok()) return pin_warning.status();
  if (!pin_warning->empty()) spdlog::warn("{}", *pin_warning);
  auto hsm = hsm::Hsm::Open(cfg.hsm);
  if (!hsm.ok()) return hsm.status();
  p->hsm = std::shared_ptr<hsm::Hsm>(std::move(*hsm));
  // The session pool keeps the PIN for re-login; the environment copy would
  // stay readable in /proc/<pid>/environ for the daemon's lifetime.
  if (!cfg.hsm.pin_env.empty()) ScrubEnvironmentVariable(cfg.hsm.pin_env);
  spdlog::info("hsm: token \"{}\" opened", p->hsm->token_label());
  if (!p->hsm->pool_note().empty()) spdlog::warn("hsm: {}", p->hsm->pool_note());
  auto provider = hsm::provider::HsmKeyProvider::Create(p->hsm);
  if (!provider.ok()) return provider.status();
  p->provider =
      std::shared_ptr<hsm::provider::HsmKeyProvider>(std::move(*provider));
  p->keys = std::make_unique<keyset::KeysetManager>(
      p->hsm, [prov = p->provider](std::string_view id) {
        return prov->PrivateKey(id);
      });
  p->keys->SetPolicies(LifecyclePolicies(cfg));
  // Every tokensign record on the token in one search, for the keysets and
  // the audit key's record (a search stats every object's file in SoftHSM:
  // ~50 ms of CPU at 3,000 objects). If it fails, each reads its own.
  absl::StatusOr<hsm::DataScan> records = p->hsm->ScanData("");
  const hsm::DataScan* read = records.ok() ? &*records : nullptr;
  if (absl::Status st = p->keys->Load(IssuerNames(cfg), read); !st.ok())
    return st;
  if (cfg.dev) {
    for (const auto& [name, issuer] : cfg.issuers) {
      auto key = p->keys->EnsureActiveKey(name, issuer.algorithm);
      if (!key.ok()) return key.status();
      spdlog::info("dev: issuer {} active key kid={}", name, key->kid);
    }
  }

  auto audit = OpenAudit(cfg, p->hsm, p->provider, read);
  if (!audit.ok()) return audit.status();
  p->audit = *std::move(audit);
  if (absl::Status st = p->audit.log->health(); !st.ok()) {
    // Refused (lost, truncated, replaced or rewritten): the daemon runs, so a
    // custodian can acknowledge it (AuditAdmin.AcknowledgeAuditLoss), but
    // signs nothing and is not ready until then.
    spdlog::error("audit: {}", std::string(st.message()));
  } else {
    spdlog::info("audit: log {} of instance \"{}\", checkpoints signed by "
                 "audit key {}",
                 p->audit.log->log_id(), p->audit.instance, p->audit.kid);
  }

  p->metrics = std::make_unique<Metrics>();
  // Counts failing PKCS#11 calls in tokensign_hsm_errors_total{function}.
  p->hsm->SetErrorObserver(
      [m = p->metrics.get()](std::string_view function, unsigned long) {
        m->CountHsmError(function);
      });
  p->core = std::make_unique<SigningCore>(
      std::make_shared<const PolicySnapshot>(cfg), p->keys.get(),
      p->audit.log.get(), p->metrics.get());
  // Keyset changes and rejections found on the HSM: logged, counted, audited
  // (events of the first Load are handed over here, now that the log is open).
  p->keys->SetObserver([decisions = &p->core->decisions(),
                        metrics = p->metrics.get()](
                           const keyset::KeysetEvent& e) {
    ReportKeysetEvent(e, decisions, metrics);
  });
  Metrics* metrics = p->metrics.get();
  p->pool = std::make_unique<WorkPool>(
      cfg.server.worker_threads, cfg.server.max_queue,
      [metrics](int delta) { metrics->AddQueueDepth(delta); },
      p->options.test_work_delay);
  if (p->options.test_work_delay.count() > 0) {
    spdlog::warn("test hook: every work item is delayed {} ms",
                 p->options.test_work_delay.count());
  }
  p->signer_service = std::make_unique<TokenSignerService>(
      p->core.get(), p->pool.get(), metrics);
  p->admin_service =
      std::make_unique<KeyAdminService>(p->core.get(), p->pool.get(), metrics);
  p->audit_service = std::make_unique<AuditAdminService>(AuditAdminDeps{
      p->core.get(), p->pool.get(), metrics, p->audit.log.get(),
      p->audit.anchors.get(), p->hsm.get(), p->audit.instance, p->audit.jwks});

  // gRPC: mTLS unless plaintext is both asked for and on loopback.
  bool plaintext = false;
  auto creds = GrpcServerCredentials(cfg, &plaintext);
  if (!creds.ok()) return creds.status();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(cfg.server.grpc_listen, *creds, &p->grpc_port);
  builder.RegisterService(p->signer_service.get());
  builder.RegisterService(p->admin_service.get());
  builder.RegisterService(p->audit_service.get());
  p->server = builder.BuildAndStart();
  if (p->server == nullptr || p->grpc_port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "server.grpc_listen: cannot listen on ", cfg.server.grpc_listen));
  }
  spdlog::info("grpc: listening on {} (port {}, {})", cfg.server.grpc_listen,
               p->grpc_port, plaintext ? "PLAINTEXT, loopback dev" : "mTLS");

  Parts* parts = p.get();
  if (!cfg.server.http_listen.empty()) {
    HttpServerOptions http_opts;
    http_opts.listen = cfg.server.http_listen;
    http_opts.jwks_max_age_seconds = cfg.server.jwks_max_age;
    HttpHandlers handlers;
    handlers.jwks = [parts](std::string_view issuer) {
      return parts->keys->Jwks(issuer);
    };
    handlers.audit_jwks = [parts]() -> absl::StatusOr<std::string> {
      return parts->audit.jwks;
    };
    handlers.ready = [parts] { return parts->ReadyStatus(); };
    handlers.metrics = [parts] {
      audit::AuditLogStats st = parts->audit.log->stats();
      parts->metrics->SetAudit({st.records, st.commits, st.lingered, st.bytes,
                                st.rotations, parts->audit.log->health().ok(),
                                st.checkpoints, st.checkpoint_errors,
                                st.anchor_writes});
      return parts->metrics->Serialize();
    };
    handlers.connection_closed = [parts](HttpConnectionClose reason) {
      parts->metrics->CountHttpConnectionClosed(HttpConnectionCloseName(reason));
    };
    auto http = HttpServer::Start(p->io, http_opts, std::move(handlers));
    if (!http.ok()) {
      p->server->Shutdown();
      return absl::Status(
          http.status().code(),
          absl::StrCat("server.http_listen: ", http.status().message()));
    }
    p->http = std::move(*http);
    p->http_port = p->http->port();
    spdlog::info("http: listening on {} (port {})", cfg.server.http_listen,
                 p->http_port);
  }

  p->signals =
      std::make_unique<boost::asio::signal_set>(p->io, SIGTERM, SIGINT, SIGHUP);
  p->WaitSignal();
  p->upkeep = std::make_unique<KeysetUpkeep>(
      p->io,
      KeysetUpkeep::Deps{p->hsm.get(), p->keys.get(), p->core.get(), metrics,
                         p->pool.get()},
      std::chrono::seconds(cfg.server.keyset_refresh_seconds));
  p->upkeep->Start();
  p->io_thread = std::thread([parts] { parts->io.run(); });

  if (!p->options.pid_file.empty()) {
    if (absl::Status st =
            ReplaceFile(p->options.pid_file, absl::StrCat(::getpid(), "\n"));
        !st.ok()) {
      spdlog::warn("pid file: {}", std::string(st.message()));
    }
  }
  // From here on the threads run: a failure must go through ~Daemon, which stops
  // and joins them (returning with a joinable std::thread would abort).
  std::unique_ptr<Daemon> daemon(new Daemon(std::move(p)));
  const Parts& started = *daemon->parts_;
  if (!started.options.ready_file.empty()) {
    std::string ready = absl::StrCat("{\"grpc_port\":", started.grpc_port,
                                     ",\"http_port\":", started.http_port,
                                     ",\"pid\":", ::getpid(), "}\n");
    if (absl::Status st = ReplaceFile(started.options.ready_file, ready);
        !st.ok())
      return st;
  }
  return daemon;
}

Daemon::Daemon(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Daemon::~Daemon() {
  Parts& p = *parts_;
  if (p.upkeep) p.upkeep->Stop();  // no new rounds; the pool drains the last
  if (p.server)
    p.server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  if (p.pool) p.pool->Drain();
  // Signing requests whose audit record is still being made durable complete
  // on the audit writer thread; wait for them before core/metrics/audit go.
  if (p.core) p.core->WaitIdle();
  if (p.http) p.http->Stop();
  if (p.signals) p.signals->cancel();
  p.io.stop();
  if (p.io_thread.joinable()) p.io_thread.join();
  if (!p.options.pid_file.empty()) std::remove(p.options.pid_file.c_str());
}

int Daemon::Run() {
  parts_->stop.get_future().wait();
  Parts& p = *parts_;
  p.upkeep->Stop();
  // Drain first: the pool refuses new work (UNAVAILABLE) and finishes every
  // accepted task. A signing task hands its audit record to the audit log and
  // the request replies from the audit writer thread once the record is
  // durable, so then wait for those replies (SigningCore::WaitIdle). Then the
  // gRPC server has nothing in flight and shuts down at once (idle client
  // connections would otherwise hold a graceful Shutdown for seconds). The
  // audit log closes last (Parts destruction order; its destructor drains).
  p.pool->Drain();
  p.core->WaitIdle();
  p.server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(200));
  p.server->Wait();
  audit::AuditLogStats stats = p.audit.log->stats();
  spdlog::info("stopped: {} audit records durable in {} commits", stats.records,
               stats.commits);
  return 0;
}

int Daemon::grpc_port() const { return parts_->grpc_port; }
int Daemon::http_port() const { return parts_->http_port; }

}  // namespace tokensign::service
