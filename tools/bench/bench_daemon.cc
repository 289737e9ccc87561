// Mode `daemon`: loads tokensignd over gRPC (async client, N in flight, fixed
// duration) and measures, in the same run on the same SoftHSM token and key,
// the ceiling of the same work: hardware-thread count of threads doing raw
// C_Sign + one OpenSSL verify per signature (and raw C_Sign alone). Ceiling and
// load rounds alternate so machine drift hits both.
//   tokensign-bench daemon [--seconds S] [--rounds R] [--in-flight N]
//   [--batch-in-flight N]
//       [--batch-size 64] [--client-threads T] [--tokensignd PATH] [--module
//       SO]
//       [--server HOST:PORT (--state-dir DIR | --no-ceiling)] [--daemon-verify
//       on|off]
//       [--daemon-pid PID] [--keep-state] [--json] [--no-noverify]
//       [--daemon-audit fsync|none] [--only unary|batch]
//       [--daemon-flag FLAG ...]
// With no --server it starts `tokensignd --dev` in a fresh temp state dir on
// ephemeral loopback ports, waits for /readyz, and stops it with SIGTERM at the
// end. Its own daemon is then restarted on the same token and key with the
// dev/benchmark knob --dev-verify-before-release=false for the verify-off cells
// (unary/batch against raw C_Sign alone, rounds alternating again); skip that
// with --no-noverify. --daemon-audit passes --dev-audit-durability to its own
// daemon (default fsync); --daemon-flag adds any flag to its command line
// (e.g. --daemon-flag --dev-audit-linger-us=0). --only runs just that closed-loop cell (profiling
// the daemon: CPU and context switches per token of one kind of load). The
// last lines are the ratios (issue 6 targets: unary >= 0.5, batch >=
// 0.85, p99 < 5 ms at half rate):
//   unary_vs_ceiling 0.52 / batch_vs_ceiling 0.86 / p99_half_rate_ms 3.1 /
//   unary_noverify_vs_raw ... / batch_noverify_vs_raw ...
#include <openssl/sha.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "signer/token/jwk.h"
#include "signer/token/jws.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/daemon_load.h"
#include "tools/bench/daemon_process.h"

#ifndef TOKENSIGN_SOFTHSM_MODULE
#define TOKENSIGN_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

namespace tokensign::bench {
namespace {

struct Options {
  double seconds = 3.0;  // per cell (split over the rounds)
  double warmup = 1.0;
  int rounds = 3;
  int in_flight = 32;
  int batch_in_flight = 4;
  int batch_size = 64;
  int client_threads = 1;
  std::string tokensignd, module = TOKENSIGN_SOFTHSM_MODULE;
  std::string server, state_dir;
  pid_t daemon_pid =
      0;  // --server: for CPU per token (default: STATE_DIR/tokensignd.pid)
  bool no_ceiling = false, daemon_verify = true, keep_state = false,
       json = false, noverify_phase = true;
  std::string daemon_audit = "fsync";  // own daemon: --dev-audit-durability
  std::string only;                    // "", "unary" or "batch"
  std::vector<std::string> daemon_flags;  // extra flags for the own daemon
};

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    const char* v = nullptr;
    if (a == "--no-ceiling") {
      o.no_ceiling = true;
      continue;
    }
    if (a == "--keep-state") {
      o.keep_state = true;
      continue;
    }
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (a == "--no-noverify") {
      o.noverify_phase = false;
      continue;
    }
    if ((v = value()) == nullptr) {
      std::fprintf(stderr, "daemon bench: %s: unknown flag or missing value\n",
                   a.c_str());
      return false;
    }
    if (a == "--seconds")
      o.seconds = std::atof(v);
    else if (a == "--warmup")
      o.warmup = std::atof(v);
    else if (a == "--rounds")
      o.rounds = std::atoi(v);
    else if (a == "--in-flight")
      o.in_flight = std::atoi(v);
    else if (a == "--batch-in-flight")
      o.batch_in_flight = std::atoi(v);
    else if (a == "--batch-size")
      o.batch_size = std::atoi(v);
    else if (a == "--client-threads")
      o.client_threads = std::atoi(v);
    else if (a == "--tokensignd")
      o.tokensignd = v;
    else if (a == "--module")
      o.module = v;
    else if (a == "--server")
      o.server = v;
    else if (a == "--daemon-pid")
      o.daemon_pid = std::atoi(v);
    else if (a == "--state-dir")
      o.state_dir = v;
    else if (a == "--daemon-verify")
      o.daemon_verify = std::strcmp(v, "off") != 0;
    else if (a == "--daemon-audit")
      o.daemon_audit = v;
    else if (a == "--only")
      o.only = v;
    else if (a == "--daemon-flag")
      o.daemon_flags.push_back(v);
    else {
      std::fprintf(stderr, "daemon bench: unknown flag %s\n", a.c_str());
      return false;
    }
  }
  if (!o.only.empty() && o.only != "unary" && o.only != "batch") {
    std::fprintf(stderr, "daemon bench: --only must be unary or batch\n");
    return false;
  }
  if (o.seconds <= 0 || o.rounds < 1 || o.in_flight < 1 ||
      o.batch_in_flight < 1 || o.batch_size < 1 || o.client_threads < 1) {
    std::fprintf(stderr,
                 "daemon bench: --seconds/--rounds/--in-flight/--batch-*/"
                 "--client-threads must be positive\n");
    return false;
  }
  if (!o.server.empty() && o.state_dir.empty() && !o.no_ceiling) {
    std::fprintf(
        stderr,
        "daemon bench: --server needs --state-dir DIR (the dev daemon's, "
        "for the ceiling) or --no-ceiling\n");
    return false;
  }
  return true;
}

// The ceiling on the daemon's own token: SOFTHSM2_CONF = DIR/softhsm2.conf, PIN
// from DIR/pin, the key whose RFC 7638 thumbprint is the kid the daemon signs
// with.
struct Ceiling {
  std::shared_ptr<hsm::Hsm> hsm;
  std::string key_id;
  std::shared_ptr<EVP_PKEY> public_key;
};

absl::StatusOr<Ceiling> OpenCeiling(const Options& o,
                                    const std::string& state_dir,
                                    const std::string& kid) {
  std::string conf = state_dir + "/softhsm2.conf";
  ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  hsm::HsmConfig config;
  config.module_path = o.module;
  config.token_label = "tokensign-dev";
  config.pin_file = state_dir + "/pin";
  auto opened = hsm::Hsm::Open(config);
  if (!opened.ok()) return opened.status();
  Ceiling out;
  out.hsm = std::move(*opened);
  auto keys = out.hsm->ListKeys();
  if (!keys.ok()) return keys.status();
  for (const hsm::KeyInfo& key : *keys) {
    auto pub = out.hsm->PublicKey(key.id);
    if (!pub.ok()) continue;
    auto thumb = token::JwkThumbprint(pub->get());
    if (thumb.ok() && *thumb == kid) {
      out.key_id = key.id;
      out.public_key.reset(pub->release(), EVP_PKEY_free);
      return out;
    }
  }
  return absl::NotFoundError("daemon bench: no key on the dev token has kid " +
                             kid);
}

struct Report {
  LoadResult unary, batch, half;
  double ceiling = 0, raw = 0, half_rate_target = 0;
  double ceiling_ops = 0, raw_ops = 0;
  CellCpu ceiling_cpu, raw_cpu, unary_cpu, batch_cpu, half_cpu;
  bool have_ceiling = false;
  // Verify-off phase (own daemon restarted with
  // --dev-verify-before-release=false), against raw C_Sign measured in its
  // own alternating rounds.
  bool have_noverify = false;
  LoadResult unary_nv, batch_nv;
  double raw_nv = 0, raw_nv_ops = 0;
  CellCpu raw_nv_cpu, unary_nv_cpu, batch_nv_cpu;
};

std::string Ratio(double measured, double ceiling, bool applicable,
                  const char* why) {
  if (!applicable) return std::string("n/a (") + why + ")";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f",
                ceiling > 0 ? measured / ceiling : 0.0);
  return buf;
}

int PrintReport(const Options& o, Report& r) {
  FILE* table = o.json ? stderr : stdout;
  std::fprintf(table, "%-30s %10s %9s %9s %7s %14s %14s\n", "cell", "rate/s",
               "p50_ms", "p99_ms", "errors", "daemon_cpu_us", "bench_cpu_us");
  // CPU columns: microseconds of CPU per token (per op for the ceiling).
  auto row = [&](const char* name, double rate, LoadResult* lr,
                 const CellCpu& cpu, double tokens) {
    char daemon_us[32] = "-", self_us[32] = "-";
    if (tokens > 0) {
      std::snprintf(self_us, sizeof(self_us), "%.0f", cpu.self / tokens * 1e6);
      if (lr != nullptr && cpu.daemon_known)
        std::snprintf(daemon_us, sizeof(daemon_us), "%.0f",
                      cpu.daemon / tokens * 1e6);
    }
    if (lr == nullptr) {
      std::fprintf(table, "%-30s %10.0f %9s %9s %7s %14s %14s\n", name, rate,
                   "-", "-", "-", daemon_us, self_us);
      return;
    }
    std::fprintf(table, "%-30s %10.0f %9.2f %9.2f %7ld %14s %14s\n", name, rate,
                 lr->Percentile(0.5), lr->Percentile(0.99), lr->errors,
                 daemon_us, self_us);
  };
  if (r.have_ceiling) {
    row("ceiling C_Sign+verify", r.ceiling, nullptr, r.ceiling_cpu,
        r.ceiling_ops);
    row("ceiling C_Sign alone", r.raw, nullptr, r.raw_cpu, r.raw_ops);
  }
  row("SignToken (calls)", r.unary.calls_per_s(), &r.unary, r.unary_cpu,
      static_cast<double>(r.unary.items));
  char name[64];
  std::snprintf(name, sizeof(name), "SignTokens x%d (items)", o.batch_size);
  row(name, r.batch.items_per_s(), &r.batch, r.batch_cpu,
      static_cast<double>(r.batch.items));
  std::snprintf(name, sizeof(name), "SignToken @%.0f/s open loop",
                r.half_rate_target);
  row(name, r.half.calls_per_s(), &r.half, r.half_cpu,
      static_cast<double>(r.half.items));
  if (r.have_noverify) {
    row("C_Sign alone (verify-off run)", r.raw_nv, nullptr,
        r.raw_nv_cpu, r.raw_nv_ops);
    row("SignToken verify off (calls)", r.unary_nv.calls_per_s(), &r.unary_nv,
        r.unary_nv_cpu, static_cast<double>(r.unary_nv.items));
    std::snprintf(name, sizeof(name), "SignTokens x%d verify off", o.batch_size);
    row(name, r.batch_nv.items_per_s(), &r.batch_nv, r.batch_nv_cpu,
        static_cast<double>(r.batch_nv.items));
  }
  for (LoadResult* lr : {&r.unary, &r.batch, &r.half, &r.unary_nv, &r.batch_nv}) {
    if (!lr->first_error.empty())
      std::fprintf(table, "first error: %s\n", lr->first_error.c_str());
  }
  if (r.half.skipped > 0)
    std::fprintf(table, "half rate: %ld sends skipped (max in flight)\n",
                 r.half.skipped);
  // CPU efficiency: the ceiling's CPU per op over (daemon + bench) CPU per
  // token. Unlike the rate ratios it does not depend on how other processes
  // share the cores (under contention the daemon's many threads win a larger
  // CPU share than the ceiling's).
  const double ceiling_us =
      r.ceiling_ops > 0 ? r.ceiling_cpu.self / r.ceiling_ops : 0;
  const double raw_us = r.raw_ops > 0 ? r.raw_cpu.self / r.raw_ops : 0;
  const double base_us = o.daemon_verify ? ceiling_us : raw_us;
  auto efficiency = [&](const CellCpu& cpu, long tokens) {
    if (base_us <= 0 || tokens <= 0 || !cpu.daemon_known) return -1.0;
    return base_us / ((cpu.daemon + cpu.self) / static_cast<double>(tokens));
  };
  const double unary_eff = efficiency(r.unary_cpu, r.unary.items);
  const double batch_eff = efficiency(r.batch_cpu, r.batch.items);
  if (unary_eff > 0 && batch_eff > 0) {
    std::fprintf(
        table,
        "cpu efficiency (%s CPU/op / (daemon+bench) CPU/token): unary %.2f  "
        "batch %.2f\n",
        o.daemon_verify ? "ceiling" : "raw C_Sign", unary_eff, batch_eff);
  }

  const bool on = o.daemon_verify, c = r.have_ceiling;
  const char* why_on = c ? "daemon verify off" : "no ceiling";
  const char* why_off =
      c ? "daemon verify on; own daemon only, or --daemon-verify off"
        : "no ceiling";
  // Verify-off cells: from the own daemon's verify-off phase, else (a
  // --server daemon told to be verify-off) from the main cells.
  LoadResult& unary_off = r.have_noverify ? r.unary_nv : r.unary;
  LoadResult& batch_off = r.have_noverify ? r.batch_nv : r.batch;
  const double raw_off = r.have_noverify ? r.raw_nv : r.raw;
  const bool off = r.have_noverify || !on;
  std::string lines[5][2] = {
      {"unary_vs_ceiling",
       Ratio(r.unary.calls_per_s(), r.ceiling, c && on, why_on)},
      {"batch_vs_ceiling",
       Ratio(r.batch.items_per_s(), r.ceiling, c && on, why_on)},
      {"p99_half_rate_ms", ""},
      {"unary_noverify_vs_raw",
       Ratio(unary_off.calls_per_s(), raw_off, c && off, why_off)},
      {"batch_noverify_vs_raw",
       Ratio(batch_off.items_per_s(), raw_off, c && off, why_off)},
  };
  char p99[32];
  std::snprintf(p99, sizeof(p99), "%.1f", r.half.Percentile(0.99));
  lines[2][1] = p99;
  if (o.json) {
    nlohmann::json j;
    j["hw_threads"] = std::thread::hardware_concurrency();
    j["seconds_per_cell"] = o.seconds;
    j["in_flight"] = o.in_flight;
    j["batch_in_flight"] = o.batch_in_flight;
    j["batch_size"] = o.batch_size;
    j["ceiling_sign_verify_per_s"] = r.ceiling;
    j["ceiling_sign_per_s"] = r.raw;
    j["unary"] = {{"calls_per_s", r.unary.calls_per_s()},
                  {"p50_ms", r.unary.Percentile(0.5)},
                  {"p99_ms", r.unary.Percentile(0.99)},
                  {"errors", r.unary.errors}};
    j["batch"] = {{"items_per_s", r.batch.items_per_s()},
                  {"calls_per_s", r.batch.calls_per_s()},
                  {"p50_ms", r.batch.Percentile(0.5)},
                  {"p99_ms", r.batch.Percentile(0.99)},
                  {"errors", r.batch.errors}};
    j["half_rate"] = {{"target_per_s", r.half_rate_target},
                      {"calls_per_s", r.half.calls_per_s()},
                      {"p50_ms", r.half.Percentile(0.5)},
                      {"p99_ms", r.half.Percentile(0.99)},
                      {"skipped", r.half.skipped},
                      {"errors", r.half.errors}};
    auto per_token = [](const CellCpu& cpu, double tokens,
                        bool daemon) -> nlohmann::json {
      if (tokens <= 0 || (daemon && !cpu.daemon_known)) return nullptr;
      return (daemon ? cpu.daemon : cpu.self) / tokens * 1e6;
    };
    j["unary"]["daemon_cpu_us_per_token"] =
        per_token(r.unary_cpu, static_cast<double>(r.unary.items), true);
    j["unary"]["bench_cpu_us_per_token"] =
        per_token(r.unary_cpu, static_cast<double>(r.unary.items), false);
    j["batch"]["daemon_cpu_us_per_token"] =
        per_token(r.batch_cpu, static_cast<double>(r.batch.items), true);
    j["batch"]["bench_cpu_us_per_token"] =
        per_token(r.batch_cpu, static_cast<double>(r.batch.items), false);
    if (r.have_noverify) {
      j["noverify"] = {
          {"ceiling_sign_per_s", r.raw_nv},
          {"unary_calls_per_s", r.unary_nv.calls_per_s()},
          {"unary_p99_ms", r.unary_nv.Percentile(0.99)},
          {"batch_items_per_s", r.batch_nv.items_per_s()},
          {"batch_p99_ms", r.batch_nv.Percentile(0.99)},
          {"unary_daemon_cpu_us_per_token",
           per_token(r.unary_nv_cpu, static_cast<double>(r.unary_nv.items),
                     true)},
          {"batch_daemon_cpu_us_per_token",
           per_token(r.batch_nv_cpu, static_cast<double>(r.batch_nv.items),
                     true)},
          {"raw_cpu_us_per_op", per_token(r.raw_nv_cpu, r.raw_nv_ops, false)}};
    }
    j["ceiling_cpu_us_per_op"] = per_token(r.ceiling_cpu, r.ceiling_ops, false);
    j["raw_cpu_us_per_op"] = per_token(r.raw_cpu, r.raw_ops, false);
    j["unary_cpu_efficiency"] =
        unary_eff > 0 ? nlohmann::json(unary_eff) : nullptr;
    j["batch_cpu_efficiency"] =
        batch_eff > 0 ? nlohmann::json(batch_eff) : nullptr;
    for (auto& line : lines) {
      char* end = nullptr;
      double d = std::strtod(line[1].c_str(), &end);
      if (end != line[1].c_str() && *end == '\0') {
        j[line[0]] = d;
      } else {
        j[line[0]] = line[1];
      }
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    for (auto& line : lines)
      std::printf("%s %s\n", line[0].c_str(), line[1].c_str());
  }
  const bool want_unary = o.only != "batch", want_batch = o.only != "unary";
  bool failed = (want_unary && r.unary.calls == 0) ||
                (want_batch && r.batch.items == 0) ||
                (o.only.empty() && r.half.calls == 0) ||
                (r.have_noverify &&
                 (r.unary_nv.calls == 0 || r.batch_nv.items == 0));
  return failed ? 1 : 0;
}

}  // namespace

int RunDaemonBench(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, o)) return 2;
  std::unique_ptr<DaemonProcess> daemon;
  std::string target = o.server, state_dir = o.state_dir;
  if (target.empty()) {
    std::vector<std::string> flags;  // none by default: any tokensignd works
    if (o.daemon_audit != "fsync")
      flags = {"--dev-audit-durability", o.daemon_audit};
    flags.insert(flags.end(), o.daemon_flags.begin(), o.daemon_flags.end());
    auto started =
        DaemonProcess::StartDev(o.tokensignd, o.module, o.keep_state, flags);
    if (!started.ok())
      return Fail("daemon", "start tokensignd --dev", started.status());
    daemon = std::move(*started);
    target = daemon->grpc_target();
    state_dir = daemon->state_dir();
  }
  pid_t daemon_pid = daemon ? daemon->pid() : o.daemon_pid;
  if (daemon_pid <= 0 && !state_dir.empty()) {
    std::ifstream pid_in(state_dir + "/tokensignd.pid");
    pid_in >> daemon_pid;
  }
  LoadClient client(target, o.client_threads);
  const v1::SignTokenRequest req = ScenarioSignRequest("dev");
  v1::SignTokenResponse sample;
  grpc::Status st = client.SignOnce(req, &sample);
  if (!st.ok()) {
    std::fprintf(stderr, "daemon bench: SignToken on %s: %d %s\n",
                 target.c_str(), static_cast<int>(st.error_code()),
                 st.error_message().c_str());
    return 1;
  }
  const std::string signing_input =
      sample.token().substr(0, sample.token().rfind('.'));
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(signing_input.data()),
         signing_input.size(), reinterpret_cast<unsigned char*>(digest.data()));

  Report r;
  std::unique_ptr<Ceiling> ceiling;
  if (!o.no_ceiling) {
    auto opened = OpenCeiling(o, state_dir, sample.kid());
    if (!opened.ok())
      return Fail("daemon", "ceiling on the dev token", opened.status());
    ceiling = std::make_unique<Ceiling>(std::move(*opened));
    r.have_ceiling = true;
  }
  const int hw =
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto raw_op = [&](bool verify) {
    return [&, verify](int) {
      auto signer = std::make_shared<RawSigner>(std::move(*RawSigner::Create(
          *ceiling->hsm, ceiling->key_id, hsm::SignAlgorithm::kES256)));
      return [&, signer, verify]() {
        std::string sig = signer->Sign(digest);
        if (sig.empty()) return false;
        return !verify ||
               token::VerifyRaw(ceiling->public_key.get(),
                                hsm::SignAlgorithm::kES256, signing_input, sig)
                   .ok();
      };
    };
  };

  FILE* log = o.json ? stderr : stdout;
  std::fprintf(log,
               "tokensign-bench daemon: %s, ES256 issuer dev, %d hw threads, "
               "%.1f s/cell in %d "
               "rounds, unary in flight %d, batch %d x %d in flight, %d client "
               "thread(s), "
               "token %zu bytes\n",
               daemon ? "own tokensignd --dev" : target.c_str(), hw, o.seconds,
               o.rounds, o.in_flight, o.batch_in_flight, o.batch_size,
               o.client_threads, sample.token().size());
  const bool want_unary = o.only != "batch", want_batch = o.only != "unary";
  if (want_unary) client.RunClosed(req, 0, o.in_flight, o.warmup);
  if (want_batch)
    client.RunClosed(req, o.batch_size, o.batch_in_flight, o.warmup);
  if (ceiling) MeasureOps(hw, o.warmup / 2, raw_op(true));
  const double slice = o.seconds / o.rounds;
  bool ceiling_failed = false;
  for (int round = 0; round < o.rounds; ++round) {
    if (ceiling) {
      CpuTimes t0 = ReadCpu(-1);
      double c = MeasureOps(hw, slice, raw_op(true));
      CpuTimes t1 = ReadCpu(-1);
      double raw = MeasureOps(hw, slice, raw_op(false));
      CpuTimes t2 = ReadCpu(-1);
      r.ceiling_cpu.Add(t0, t1);
      r.raw_cpu.Add(t1, t2);
      r.ceiling_ops += c * slice;
      r.raw_ops += raw * slice;
      if (c < 0 || raw < 0) ceiling_failed = true;
      r.ceiling += c / o.rounds;
      r.raw += raw / o.rounds;
    }
    CpuTimes t0 = ReadCpu(daemon_pid);
    if (want_unary) r.unary.Merge(client.RunClosed(req, 0, o.in_flight, slice));
    CpuTimes t1 = ReadCpu(daemon_pid);
    if (want_batch)
      r.batch.Merge(
          client.RunClosed(req, o.batch_size, o.batch_in_flight, slice));
    r.unary_cpu.Add(t0, t1);
    r.batch_cpu.Add(t1, ReadCpu(daemon_pid));
  }
  r.half_rate_target = r.unary.calls_per_s() / 2;
  if (r.half_rate_target > 0 && o.only.empty()) {
    CpuTimes t0 = ReadCpu(daemon_pid);
    r.half = client.RunOpen(req, r.half_rate_target, o.seconds, 4096);
    r.half_cpu.Add(t0, ReadCpu(daemon_pid));
  }
  if (daemon && ceiling && o.noverify_phase) {
    // Same token and key, verify-before-release off (dev/benchmark knob).
    std::vector<std::string> flags = {"--dev-verify-before-release=false"};
    if (o.daemon_audit != "fsync") {
      flags.push_back("--dev-audit-durability");
      flags.push_back(o.daemon_audit);
    }
    flags.insert(flags.end(), o.daemon_flags.begin(), o.daemon_flags.end());
    absl::Status restarted = daemon->Restart(flags);
    if (!restarted.ok())
      return Fail("daemon", "restart tokensignd verify off", restarted);
    daemon_pid = daemon->pid();
    LoadClient nv_client(daemon->grpc_target(), o.client_threads);
    nv_client.RunClosed(req, 0, o.in_flight, o.warmup / 2);
    nv_client.RunClosed(req, o.batch_size, o.batch_in_flight, o.warmup / 2);
    for (int round = 0; round < o.rounds; ++round) {
      CpuTimes t0 = ReadCpu(-1);
      double raw = MeasureOps(hw, slice, raw_op(false));
      r.raw_nv_cpu.Add(t0, ReadCpu(-1));
      if (raw < 0) ceiling_failed = true;
      r.raw_nv += raw / o.rounds;
      r.raw_nv_ops += raw * slice;
      CpuTimes t1 = ReadCpu(daemon_pid);
      r.unary_nv.Merge(nv_client.RunClosed(req, 0, o.in_flight, slice));
      CpuTimes t2 = ReadCpu(daemon_pid);
      r.batch_nv.Merge(
          nv_client.RunClosed(req, o.batch_size, o.batch_in_flight, slice));
      r.unary_nv_cpu.Add(t1, t2);
      r.batch_nv_cpu.Add(t2, ReadCpu(daemon_pid));
    }
    r.have_noverify = true;
  }
  if (ceiling_failed)
    std::fprintf(stderr, "daemon bench: a ceiling C_Sign/verify failed\n");
  int rc = PrintReport(o, r);
  if (daemon) {
    absl::Status stopped = daemon->Stop();
    if (!stopped.ok()) rc |= Fail("daemon", "stop tokensignd", stopped);
  }
  return rc | (ceiling_failed ? 1 : 0);
}

}  // namespace tokensign::bench
