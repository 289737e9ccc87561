// Soak: one tokensignd signing continuously (8 calls in flight) while its
// scheduled rotation makes a new key every period. Asserts no call fails,
// the keys rotate as scheduled, the audit log holds a record for every token
// received (by jti) and verifies against the HSM's checkpoint, and prints the
// daemon's RSS after warm-up and at the end.
//
// CI: 24 s with a 10 s rotation period (TOKENSIGN_SOAK_SECONDS and
// TOKENSIGN_SOAK_ROTATION override them; README "Reliability" has the
// 10-minute, one-rotation-a-minute command and its figures). Config that makes
// a rotation a minute possible: jwks_max_age 1 s and refresh 1 s (publish
// lead 2 s), token TTL at most 60 s (a retired key leaves the JWKS 61 s after
// retirement), max_published_keys 8.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/service/daemon_harness.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

#ifndef TOKENSIGNCTL_PATH
#error "TOKENSIGNCTL_PATH must name the built tokensignctl"
#endif

namespace tokensign::testing {
namespace {

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : fallback;
}

// VmRSS of `pid` in KiB (0 when unreadable).
long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

std::string Config(DaemonHarness& h, const std::string& state, int period) {
  return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
         "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
         state +
         "/pin\"\n\n[server]\ninsecure = true\nkeyset_refresh_seconds = 1\n"
         "jwks_max_age = 1\nclock_skew_seconds = 0\n\n[audit]\npath = \"" +
         h.Path("audit.log") +
         "\"\ninstance = \"soak\"\n\n[[callers]]\nid = \"loopback\"\nroles = "
         "[\"signer\", \"custodian\", \"auditor\"]\nissuers = [\"*\"]\n\n"
         "[issuers.dev]\niss = \"https://issuer.example\"\naudiences = "
         "[\"https://api.example\"]\nscopes = [\"read\", \"write\"]\n"
         "any_actor = true\nmax_ttl_access = 60\nmax_ttl_transaction = 60\n"
         "max_published_keys = 8\nrotation_period = \"" +
         std::to_string(period) + "s\"\n";
}

TEST(DaemonSoakTest, SignsThroughScheduledRotationsWithoutErrorsOrLostRecords) {
  const int seconds = EnvInt("TOKENSIGN_SOAK_SECONDS", 24);
  const int period = EnvInt("TOKENSIGN_SOAK_ROTATION", 10);
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  WriteAll(h.Path("soak.toml"), Config(h, state, period));
  DaemonProcess d = h.Start({"--config", h.Path("soak.toml")},
                            {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"});
  ASSERT_GT(d.pid, 0);
  auto channel = h.Insecure(d);

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<std::string> jtis, kids;  // guarded by mu
  int64_t failures = 0;              // guarded by mu
  std::string first_failure;         // guarded by mu
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      auto stub = v1::TokenSigner::NewStub(channel);
      v1::SignTokenRequest req = ScenarioRequest();
      req.set_ttl_seconds(60);
      while (!stop) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
        v1::SignTokenResponse resp;
        grpc::Status st = stub->SignToken(&ctx, req, &resp);
        std::lock_guard lock(mu);
        if (!st.ok()) {
          if (failures++ == 0)
            first_failure = std::to_string(st.error_code()) + " " +
                            st.error_message();
          continue;
        }
        jtis.insert(resp.jti());
        kids.insert(resp.kid());
      }
    });
  }
  struct Joiner {
    std::atomic<bool>* stop;
    std::vector<std::thread>* threads;
    ~Joiner() {
      *stop = true;
      for (auto& t : *threads)
        if (t.joinable()) t.join();
    }
  } joiner{&stop, &clients};

  const int warmup = std::max(3, seconds / 10);
  std::this_thread::sleep_for(std::chrono::seconds(warmup));
  const long rss_start = RssKib(d.pid);
  std::this_thread::sleep_for(std::chrono::seconds(seconds - warmup));
  const long rss_end = RssKib(d.pid);
  stop = true;
  for (auto& t : clients) t.join();

  std::lock_guard lock(mu);
  EXPECT_EQ(failures, 0) << first_failure << "\n" << ReadAll(d.log_path);
  // The first scheduled rotation comes one period after start.
  EXPECT_GE(static_cast<int>(kids.size()), seconds / period)
      << "keys that signed: " << kids.size() << "\n" << ReadAll(d.log_path);

  // Every token received has its audit record (the log is durable before a
  // token leaves), and the log verifies against the HSM's checkpoint.
  std::set<std::string> audited;
  for (const auto& entry : std::filesystem::directory_iterator(h.dir())) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("audit.log", 0) != 0) continue;  // the rotated files too
    for (const nlohmann::json& line : h.AuditLines(entry.path().string()))
      if (line.contains("jti") && line["jti"].is_string())
        audited.insert(line["jti"].get<std::string>());
  }
  int64_t lost = 0;
  for (const std::string& jti : jtis) lost += audited.count(jti) == 0;
  EXPECT_EQ(lost, 0) << "of " << jtis.size() << " tokens";
  std::string out;
  const int rc =
      Shell(std::string(TOKENSIGNCTL_PATH) + " --server 127.0.0.1:" +
                std::to_string(d.grpc_port) + " --insecure audit verify --server 127.0.0.1:" +
                std::to_string(d.grpc_port) + " " + h.Path("audit.log") + " 2>&1",
            &out);
  EXPECT_TRUE(rc == 0 || rc == 2) << out;  // 2: a tail not yet checkpointed
  std::printf(
      "[soak] seconds=%d rotation=%ds tokens=%zu failures=%lld keys=%zu "
      "lost=%lld rss_start=%ldKiB rss_end=%ldKiB growth=%ldKiB\n",
      seconds, period, jtis.size(), static_cast<long long>(failures),
      kids.size(), static_cast<long long>(lost), rss_start, rss_end,
      rss_end - rss_start);
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
}

}  // namespace
}  // namespace tokensign::testing
