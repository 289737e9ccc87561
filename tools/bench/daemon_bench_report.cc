#include "tools/bench/daemon_bench_report.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tokensign::bench {
namespace {

std::string Ratio(double measured, double ceiling, bool applicable,
                  const char* why) {
  if (!applicable) return std::string("n/a (") + why + ")";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f",
                ceiling > 0 ? measured / ceiling : 0.0);
  return buf;
}

}  // namespace

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
      if (cpu.daemon_known)  // never for the ceiling (ReadCpu(-1))
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
  if (r.have_peer) {  // daemon_cpu_us: the p11-kit server's
    row("p11-kit peer 2 thr C_Sign+vfy", r.peer2, nullptr, r.peer2_cpu,
        r.peer2_ops);
    row("p11-kit peer 4 thr C_Sign+vfy", r.peer4, nullptr, r.peer4_cpu,
        r.peer4_ops);
  }
  row("SignToken (calls)", r.unary.calls_per_s(), &r.unary, r.unary_cpu,
      static_cast<double>(r.unary.items));
  if (r.exchange.calls > 0) {
    row("ExchangeToken (calls)", r.exchange.calls_per_s(), &r.exchange,
        r.exchange_cpu, static_cast<double>(r.exchange.items));
  }
  if (r.floor.calls > 0) {
    row("GetJwks (gRPC floor, calls)", r.floor.calls_per_s(), &r.floor,
        r.floor_cpu, static_cast<double>(r.floor.calls));
  }
  char name[64];
  std::snprintf(name, sizeof(name), "SignTokens x%d (items)", o.batch_size);
  row(name, r.batch.items_per_s(), &r.batch, r.batch_cpu,
      static_cast<double>(r.batch.items));
  std::snprintf(name, sizeof(name), "SignToken @%.0f/s open loop",
                r.half_rate_target);
  row(name, r.half.calls_per_s(), &r.half, r.half_cpu,
      static_cast<double>(r.half.items));
  if (r.have_noverify) {
    row("C_Sign alone (verify-off run)", r.raw_nv, nullptr, r.raw_nv_cpu,
        r.raw_nv_ops);
    row("SignToken verify off (calls)", r.unary_nv.calls_per_s(), &r.unary_nv,
        r.unary_nv_cpu, static_cast<double>(r.unary_nv.items));
    std::snprintf(name, sizeof(name), "SignTokens x%d verify off",
                  o.batch_size);
    row(name, r.batch_nv.items_per_s(), &r.batch_nv, r.batch_nv_cpu,
        static_cast<double>(r.batch_nv.items));
  }
  for (LoadResult* lr :
       {&r.unary, &r.batch, &r.half, &r.floor, &r.unary_nv, &r.batch_nv,
        &r.exchange}) {
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
  // If a unary SignToken cost the ceiling's work plus a GetJwks call's, both
  // CPU-bound on the same cores: rate = 1 / (1/ceiling + 1/floor), so the
  // best unary ratio gRPC leaves is floor / (floor + ceiling).
  const double floor_rate = r.floor.calls_per_s();
  auto bound = [&](double base, bool applicable, const char* why) {
    return Ratio(floor_rate, floor_rate + base, applicable && floor_rate > 0,
                 floor_rate > 0 ? why : "no GetJwks floor measured");
  };
  // What gRPC alone allows first, then the ratios (the last lines).
  std::vector<std::pair<std::string, std::string>> out = {
      {"unary_grpc_bound_vs_ceiling", bound(r.ceiling, c && on, why_on)},
      {"unary_noverify_grpc_bound_vs_raw", bound(raw_off, c && off, why_off)},
  };
  if (r.exchange.calls > 0) {  // issue 15 target: >= 0.8
    out.emplace_back("exchange_vs_unary",
                     Ratio(r.exchange.calls_per_s(), r.unary.calls_per_s(),
                           r.unary.calls > 0, "no unary cell"));
  }
  for (auto& line : lines) out.emplace_back(line[0], line[1]);
  if (r.want_peer) {  // issue 13 targets: unary >= 1.0, batch >= 1.5
    const char* why = r.peer_missing.c_str();
    out.emplace_back("unary_vs_p11kit_peer",
                     Ratio(r.unary.calls_per_s(), r.peer(), r.have_peer, why));
    out.emplace_back("batch_vs_p11kit_peer",
                     Ratio(r.batch.items_per_s(), r.peer(), r.have_peer, why));
  }
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
    j["exchange"] = {{"calls_per_s", r.exchange.calls_per_s()},
                     {"p50_ms", r.exchange.Percentile(0.5)},
                     {"p99_ms", r.exchange.Percentile(0.99)},
                     {"errors", r.exchange.errors}};
    j["grpc_floor"] = {{"calls_per_s", floor_rate},
                       {"p50_ms", r.floor.Percentile(0.5)},
                       {"p99_ms", r.floor.Percentile(0.99)},
                       {"errors", r.floor.errors}};
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
    if (r.have_peer) {
      j["p11kit_peer"] = {
          {"sign_verify_per_s", r.peer()},
          {"threads2_per_s", r.peer2},
          {"threads4_per_s", r.peer4},
          {"bench_cpu_us_per_op_2thr",
           per_token(r.peer2_cpu, r.peer2_ops, false)},
          {"server_cpu_us_per_op_2thr",
           per_token(r.peer2_cpu, r.peer2_ops, true)},
          {"bench_cpu_us_per_op_4thr",
           per_token(r.peer4_cpu, r.peer4_ops, false)},
          {"server_cpu_us_per_op_4thr",
           per_token(r.peer4_cpu, r.peer4_ops, true)}};
    }
    j["ceiling_cpu_us_per_op"] = per_token(r.ceiling_cpu, r.ceiling_ops, false);
    j["raw_cpu_us_per_op"] = per_token(r.raw_cpu, r.raw_ops, false);
    j["unary_cpu_efficiency"] =
        unary_eff > 0 ? nlohmann::json(unary_eff) : nullptr;
    j["batch_cpu_efficiency"] =
        batch_eff > 0 ? nlohmann::json(batch_eff) : nullptr;
    for (const auto& [key, value] : out) {
      char* end = nullptr;
      double d = std::strtod(value.c_str(), &end);
      if (end != value.c_str() && *end == '\0') {
        j[key] = d;
      } else {
        j[key] = value;
      }
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    for (const auto& [key, value] : out)
      std::printf("%s %s\n", key.c_str(), value.c_str());
  }
  const bool want_unary = o.only != "batch", want_batch = o.only != "unary";
  bool failed =
      (want_unary && r.unary.calls == 0) ||
      (want_batch && r.batch.items == 0) ||
      (o.only.empty() && r.half.calls == 0) ||
      (r.have_noverify && (r.unary_nv.calls == 0 || r.batch_nv.items == 0));
  // A failed call means the numbers are not of the work they claim.
  const int64_t errors = r.unary.errors + r.batch.errors + r.half.errors +
                         r.floor.errors + r.unary_nv.errors + r.batch_nv.errors +
                         r.exchange.errors;
  if (errors > 0) {
    std::fprintf(stderr, "daemon bench: %lld call(s) failed (see errors)\n",
                 static_cast<long long>(errors));
    failed = true;
  }
  return failed ? 1 : 0;
}

}  // namespace tokensign::bench
