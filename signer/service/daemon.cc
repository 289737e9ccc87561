#include "signer/service/daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
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
#include "signer/service/grpc_services.h"
#include "signer/service/http/http_server.h"
#include "signer/service/http/metrics.h"
#include "signer/service/signing_core.h"
#include "signer/service/state_file.h"
#include "signer/service/work_pool.h"

namespace tokensign::service {
namespace {

// Overwrites the variable's value in place (the bytes /proc/<pid>/environ
// shows) and removes it from the environment.
void ScrubEnvironmentVariable(const std::string& name) {
  if (char* value = std::getenv(name.c_str()); value != nullptr) {
    volatile char* p = value;
    while (*p != '\0') *p++ = '\0';
  }
  ::unsetenv(name.c_str());
}

constexpr auto kKeyAgeInterval = std::chrono::seconds(15);
constexpr auto kShutdownGrace = std::chrono::seconds(20);
constexpr auto kHsmProbeInterval = std::chrono::seconds(2);
// An HSM key of an issuer that no record names is destroyed once it is this
// old: far longer than generating a key and committing its record takes.
constexpr absl::Duration kOrphanGrace = absl::Minutes(10);
constexpr auto kOrphanSweepInterval = std::chrono::minutes(5);

absl::StatusOr<std::string> ReadFile(const std::string& what,
                                     const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(absl::StrCat(what, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> IssuerNames(const Config& cfg) {
  std::vector<std::string> names;
  for (const auto& [name, _] : cfg.issuers) names.push_back(name);
  return names;
}

// Each issuer's key lifecycle rules under `cfg`.
std::map<std::string, keyset::LifecyclePolicy> LifecyclePolicies(
    const Config& cfg) {
  std::map<std::string, keyset::LifecyclePolicy> out;
  for (const auto& [name, issuer] : cfg.issuers)
    out[name] = LifecycleFor(cfg, issuer);
  return out;
}

// Logs, counts and audits what KeysetManager found on the HSM.
void ReportKeysetEvent(const keyset::KeysetEvent& e, audit::AuditLog* audit,
                       Metrics* metrics) {
  const char* event = "changed";
  switch (e.kind) {
    case keyset::KeysetEvent::Kind::kChanged:
      spdlog::info("keyset {}: generation {} -> {} adopted from the HSM: {}",
                   e.issuer, e.old_generation, e.new_generation, e.detail);
      break;
    case keyset::KeysetEvent::Kind::kRejected:
      event = "rejected";
      spdlog::error("keyset {}: REJECTED, not used or published: {}", e.issuer,
                    e.detail);
      break;
    case keyset::KeysetEvent::Kind::kSwept:
      event = "swept";
      spdlog::warn("keyset {}: {}", e.issuer, e.detail);
      break;
    case keyset::KeysetEvent::Kind::kScheduled:
      event = "scheduled";
      spdlog::info("keyset {}: {}", e.issuer, e.detail);
      break;
  }
  metrics->CountKeysetEvent(e.issuer, event);
  audit::AuditRecord r;
  r.caller = "tokensignd";
  r.issuer = e.issuer;
  r.kind = absl::StrCat("keyset.", event);
  r.kid = e.kid;
  r.outcome = e.kind == keyset::KeysetEvent::Kind::kRejected ? "denied"
                                                               : "observed";
  r.reason = absl::StrCat("generation ", e.old_generation, " -> ",
                          e.new_generation, ": ", e.detail);
  if (absl::Status st = audit->Append(r); !st.ok()) {
    spdlog::error("audit: keyset event for {} not recorded: {}", e.issuer,
                  std::string(st.message()));
  }
}

}  // namespace

struct Daemon::Parts {
  DaemonOptions options;
  std::shared_ptr<hsm::Hsm> hsm;
  std::shared_ptr<hsm::provider::HsmKeyProvider> provider;
  std::unique_ptr<keyset::KeysetManager> keys;
  std::unique_ptr<HsmAnchorStore> audit_anchors;  // outlives `audit`
  std::string audit_instance;
  std::string audit_jwks;  // this instance's audit keys
  std::unique_ptr<audit::AuditLog> audit;
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<SigningCore> core;
  std::unique_ptr<WorkPool> pool;
  std::unique_ptr<TokenSignerService> signer_service;
  std::unique_ptr<KeyAdminService> admin_service;
  std::unique_ptr<AuditAdminService> audit_service;
  std::unique_ptr<grpc::Server> server;
  boost::asio::io_context io;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<boost::asio::signal_set> signals;
  std::unique_ptr<boost::asio::steady_timer> timer;
  std::thread io_thread;
  std::promise<void> stop;
  std::once_flag stop_once;
  // /readyz answers from the pool's state (Hsm::Healthy never blocks the io
  // thread); while that state is unhealthy and no request comes (an unready
  // daemon gets no traffic), this thread makes one pooled call per interval
  // so sessions are re-established. A latched PIN failure stays unready.
  std::thread hsm_probe;
  std::mutex probe_mu;
  std::condition_variable probe_cv;
  bool probe_stop = false;

  ~Parts() {
    StopProbe();  // before hsm and the rest go
    if (hsm) hsm->SetErrorObserver(nullptr);  // before metrics goes
  }

  void StopProbe() {
    {
      std::lock_guard<std::mutex> lock(probe_mu);
      probe_stop = true;
    }
    probe_cv.notify_all();
    if (hsm_probe.joinable()) hsm_probe.join();
  }

  // Also re-reads the keyset records every server.keyset_refresh_seconds, off
  // the io thread (PKCS#11 calls may block), so a key another replica rotated
  // in signs and is published here too.
  void ProbeLoop() {
    bool was_healthy = true;
    bool refresh_failed = false;
    bool tick_failed = false;
    const auto refresh_every =
        std::chrono::seconds(options.config.server.keyset_refresh_seconds);
    auto next_refresh = std::chrono::steady_clock::now() + refresh_every;
    auto next_sweep = std::chrono::steady_clock::now();
    const std::chrono::seconds wake =
        refresh_every.count() > 0
            ? std::min<std::chrono::seconds>(kHsmProbeInterval, refresh_every)
            : std::chrono::seconds(kHsmProbeInterval);
    std::unique_lock<std::mutex> lock(probe_mu);
    while (!probe_cv.wait_for(lock, wake, [this] { return probe_stop; })) {
      if (hsm->Healthy()) {
        if (!was_healthy) spdlog::info("hsm: sessions re-established");
        was_healthy = true;
        lock.unlock();
        RunDueKeySteps(&tick_failed);
        lock.lock();
        if (refresh_every.count() > 0 &&
            std::chrono::steady_clock::now() >= next_refresh) {
          lock.unlock();
          RefreshKeysets(&refresh_failed);
          if (std::chrono::steady_clock::now() >= next_sweep) {
            SweepOrphanKeys();
            next_sweep = std::chrono::steady_clock::now() + kOrphanSweepInterval;
          }
          lock.lock();
          next_refresh = std::chrono::steady_clock::now() + refresh_every;
        }
        continue;
      }
      lock.unlock();
      // Any pooled call re-establishes a broken session (or re-initializes
      // the module); a latched PIN failure returns at once.
      absl::Status st = hsm->ListKeys().status();
      lock.lock();
      if (was_healthy && !st.ok())
        spdlog::warn("hsm: not ready: {}", std::string(st.message()));
      was_healthy = st.ok() && hsm->Healthy();
    }
  }
  // Keys of this daemon's issuers that no keyset record names (a crash
  // between generating a key and recording it, a destroy that failed after
  // the record said "destroyed") are destroyed after kOrphanGrace.
  void SweepOrphanKeys() {
    absl::StatusOr<int> swept = keys->SweepOrphans(kOrphanGrace);
    if (!swept.ok()) {
      spdlog::warn("keysets: orphan sweep: {}",
                   std::string(swept.status().message()));
    }
  }

  // Planned activations, scheduled rotations and JWKS expiry (KeysetManager
  // Tick); with several replicas the keyset record write picks one.
  void RunDueKeySteps(bool* failed) {
    absl::StatusOr<int> steps = keys->Tick();
    if (!steps.ok()) {
      if (!*failed)
        spdlog::warn("keysets: scheduled step failed (retried): {}",
                     std::string(steps.status().message()));
      *failed = true;
      return;
    }
    *failed = false;
    if (*steps > 0) UpdateKeyAges();
  }

  void RefreshKeysets(bool* failed) {
    absl::StatusOr<int> changed = keys->Refresh();
    if (!changed.ok()) {
      if (!*failed)
        spdlog::warn("keysets: refresh failed, keeping the loaded ones: {}",
                     std::string(changed.status().message()));
      *failed = true;
      return;
    }
    if (*failed) spdlog::info("keysets: refresh works again");
    *failed = false;
    if (*changed > 0) {
      spdlog::info("keysets: {} issuer(s) changed on the HSM; reloaded", *changed);
      UpdateKeyAges();
    }
  }

  int grpc_port = 0;
  int http_port = 0;

  absl::Status ReadyStatus() {
    if (!hsm->Healthy())
      return absl::UnavailableError("hsm: no logged-in session");
    if (absl::Status st = audit->health(); !st.ok()) return st;
    for (const std::string& issuer : IssuerNames(core->policy()->config)) {
      if (auto key = keys->ActiveKey(issuer); !key.ok()) return key.status();
    }
    return absl::OkStatus();
  }

  void UpdateKeyAges() {
    std::vector<KeyAge> ages;
    int64_t now = absl::ToUnixSeconds(absl::Now());
    for (const std::string& issuer : IssuerNames(core->policy()->config)) {
      auto ks = keys->Keyset(issuer);
      if (!ks.ok()) continue;
      for (const keyset::KeyRecord& k : ks->keys) {
        if (k.state == keyset::KeyState::kDestroyed) continue;
        ages.push_back({issuer, k.kid, keyset::KeyStateName(k.state),
                        static_cast<double>(now - k.created_at)});
      }
    }
    metrics->SetKeyAges(ages);
  }

  void ArmTimer() {
    timer->expires_after(kKeyAgeInterval);
    timer->async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      UpdateKeyAges();
      ArmTimer();
    });
  }

  void Reload() {
    std::shared_ptr<const PolicySnapshot> next = core->policy();
    if (!options.config_path.empty()) {
      auto cfg = LoadConfigFile(options.config_path);
      if (!cfg.ok()) {
        spdlog::error("SIGHUP: config not reloaded, keeping the old one: {}",
                      std::string(cfg.status().message()));
        return;
      }
      // Listener mode, TLS, HSM and audit settings stay as started: a reload that
      // turned on `insecure` must not make a live mTLS listener trust every peer.
      std::vector<std::string> ignored = KeepRestartOnlySections(next->config, &*cfg);
      if (!ignored.empty()) {
        spdlog::warn("SIGHUP: changes to {} need a restart; keeping the running values",
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
    UpdateKeyAges();
    spdlog::info("SIGHUP: config and keysets reloaded ({} issuers)",
                 next->config.issuers.size());
  }

  void WaitSignal() {
    signals->async_wait([this](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        Reload();
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
  if (absl::Status st = p->keys->Load(IssuerNames(cfg)); !st.ok()) return st;
  if (cfg.dev) {
    for (const auto& [name, issuer] : cfg.issuers) {
      auto key = p->keys->EnsureActiveKey(name, issuer.algorithm);
      if (!key.ok()) return key.status();
      spdlog::info("dev: issuer {} active key kid={}", name, key->kid);
    }
  }

  audit::AuditLogOptions audit_opts;
  audit_opts.path = cfg.audit.path;
  audit_opts.durability = cfg.audit.durability;
  if (cfg.audit.durability == audit::Durability::kNone) {
    spdlog::warn(
        "audit.durability = \"none\": tokens are released before their audit records "
        "are on disk; a crash can lose records. Use only for benchmarks.");
  }
  audit_opts.rotate_bytes = cfg.audit.rotate_bytes;
  if (cfg.audit.commit_linger_us >= 0)
    audit_opts.commit_linger = absl::Microseconds(cfg.audit.commit_linger_us);
  // Signed checkpoints, anchored in the HSM (issue 12).
  p->audit_instance = cfg.audit.instance;
  if (p->audit_instance.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
      return absl::FailedPreconditionError(
          "audit.instance: empty and the host name is unavailable; set it");
    }
    p->audit_instance = host;
  }
  auto audit_key =
      LoadAuditKey(*p->hsm,
                   [prov = p->provider](std::string_view id) {
                     return prov->PrivateKey(id);
                   },
                   p->audit_instance, cfg.audit.checkpoint_alg);
  if (!audit_key.ok()) return audit_key.status();
  p->audit_jwks = audit_key->jwks_json;
  p->audit_anchors = std::make_unique<HsmAnchorStore>(p->hsm);
  audit_opts.checkpoint_key = audit_key->current;
  audit_opts.checkpoint_every_records = cfg.audit.checkpoint_every_records;
  audit_opts.checkpoint_every =
      absl::Seconds(cfg.audit.checkpoint_every_seconds);
  audit_opts.instance = p->audit_instance;
  audit_opts.anchors = p->audit_anchors.get();
  auto audit = audit::AuditLog::Open(audit_opts);
  if (!audit.ok()) return audit.status();
  p->audit = std::move(*audit);
  if (absl::Status st = p->audit->health(); !st.ok()) {
    // Refused (lost, truncated, replaced or rewritten): the daemon runs, so a
    // custodian can acknowledge it (AuditAdmin.AcknowledgeAuditLoss), but
    // signs nothing and is not ready until then.
    spdlog::error("audit: {}", std::string(st.message()));
  } else {
    spdlog::info("audit: log {} of instance \"{}\", checkpoints signed by "
                 "audit key {}",
                 p->audit->log_id(), p->audit_instance,
                 audit_key->current->kid);
  }

  p->metrics = std::make_unique<Metrics>();
  // Counts failing PKCS#11 calls in tokensign_hsm_errors_total{function}.
  p->hsm->SetErrorObserver(
      [m = p->metrics.get()](std::string_view function, unsigned long) {
        m->CountHsmError(function);
      });
  // Keyset changes and rejections found on the HSM: logged, counted, audited
  // (events of the first Load are handed over here, now that the log is open).
  p->keys->SetObserver([audit = p->audit.get(),
                        metrics = p->metrics.get()](
                           const keyset::KeysetEvent& e) {
    ReportKeysetEvent(e, audit, metrics);
  });
  p->core = std::make_unique<SigningCore>(
      std::make_shared<const PolicySnapshot>(cfg), p->keys.get(),
      p->audit.get(), p->metrics.get());
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
      p->core.get(), p->pool.get(), metrics, p->audit.get(),
      p->audit_anchors.get(), p->hsm.get(), p->audit_instance, p->audit_jwks});

  // gRPC: mTLS unless plaintext is both asked for and on loopback.
  std::shared_ptr<grpc::ServerCredentials> creds;
  bool plaintext = cfg.dev || cfg.server.insecure;
  if (plaintext) {
    if (!IsLoopbackAddress(cfg.server.grpc_listen)) {
      return absl::InvalidArgumentError(
          absl::StrCat("server.grpc_listen: plaintext (dev/insecure) needs a "
                       "loopback address, got \"",
                       cfg.server.grpc_listen, "\""));
    }
    creds = grpc::InsecureServerCredentials();
  } else {
    auto cert = ReadFile("server.tls_cert", cfg.server.tls_cert);
    if (!cert.ok()) return cert.status();
    auto key = ReadFile("server.tls_key", cfg.server.tls_key);
    if (!key.ok()) return key.status();
    auto ca = ReadFile("server.client_ca", cfg.server.client_ca);
    if (!ca.ok()) return ca.status();
    grpc::SslServerCredentialsOptions ssl(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = *ca;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    creds = grpc::SslServerCredentials(ssl);
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(cfg.server.grpc_listen, creds, &p->grpc_port);
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
      return parts->audit_jwks;
    };
    handlers.ready = [parts] { return parts->ReadyStatus(); };
    handlers.metrics = [parts] {
      audit::AuditLogStats st = parts->audit->stats();
      parts->metrics->SetAudit({st.records, st.commits, st.lingered, st.bytes,
                                st.rotations, parts->audit->health().ok(),
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
  p->timer = std::make_unique<boost::asio::steady_timer>(p->io);
  p->UpdateKeyAges();
  p->ArmTimer();
  p->io_thread = std::thread([parts] { parts->io.run(); });
  p->hsm_probe = std::thread([parts] { parts->ProbeLoop(); });

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
  if (p.server)
    p.server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  if (p.pool) p.pool->Drain();
  // Signing requests whose audit record is still being made durable complete
  // on the audit writer thread; wait for them before core/metrics/audit go.
  if (p.core) p.core->WaitIdle();
  if (p.http) p.http->Stop();
  if (p.signals) p.signals->cancel();
  if (p.timer) p.timer->cancel();
  p.StopProbe();
  p.io.stop();
  if (p.io_thread.joinable()) p.io_thread.join();
  if (!p.options.pid_file.empty()) std::remove(p.options.pid_file.c_str());
}

int Daemon::Run() {
  parts_->stop.get_future().wait();
  Parts& p = *parts_;
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
  audit::AuditLogStats stats = p.audit->stats();
  spdlog::info("stopped: {} audit records durable in {} commits", stats.records,
               stats.commits);
  return 0;
}

int Daemon::grpc_port() const { return parts_->grpc_port; }
int Daemon::http_port() const { return parts_->http_port; }

}  // namespace tokensign::service
