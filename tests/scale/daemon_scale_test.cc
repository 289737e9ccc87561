// Scale with keys, at the daemon: the real tokensignd started on a token
// holding N issuers' keys (a config with N [issuers.X] sections) against one
// started on a token with one issuer's key, in the same run.
//
// Checks that the N-key daemon starts, answers /readyz and signs for its first
// and last issuer with each issuer's own published key. Prints (asserts no
// time):
//   - start: from fork/exec of tokensignd until /readyz answers 200 and the
//     first SignToken for the last issuer succeeded, for each token, `starts`
//     times alternately (median);
//   - SignToken throughput of one issuer on each daemon (both running), in
//     `rounds` short windows alternating between the two (the order swapped
//     every round), every round's ratio N-key/1-key and their median: a
//     shared machine's load moves between windows of a second, not within
//     one, so the median of paired windows follows the token, not the load.
//
// Env: TOKENSIGN_SCALE_KEYS (N, default 16 in CI), TOKENSIGN_SCALE_ROUNDS
// (default 4), TOKENSIGN_SCALE_WINDOW_MS (default 250), TOKENSIGN_SCALE_STARTS
// (default 2), TOKENSIGN_SCALE_CHECKPOINT_RECORDS (below). README "Scale with
// keys" has the 1,000-key command.
// Test-only; the test thread plus the signing threads of one window.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "hsm/hsm.h"
#include "nlohmann/json.hpp"
#include "tests/scale/scale_seed.h"
#include "tests/service/daemon_harness.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::testing {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : fallback;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// TOKENSIGN_SCALE_CHECKPOINT_RECORDS: [audit] checkpoint_every_records of both
// daemons (0 = the default, 1000). Each checkpoint writes its anchor into the
// token, which searches the token's objects first.
int CheckpointRecords() {
  const char* v = std::getenv("TOKENSIGN_SCALE_CHECKPOINT_RECORDS");
  return v != nullptr ? std::atoi(v) : 0;
}

// A token: a dev state dir (SoftHSM token "tokensign-dev", its PIN file), a
// config naming `issuers`, and the daemon's audit log.
struct Case {
  std::string name;
  std::string state;
  std::string config;
  std::vector<std::string> issuers;
  std::string signing_issuer;  // the one whose throughput is measured
  DaemonProcess daemon;
  std::shared_ptr<grpc::Channel> channel;
};

std::string ConfigText(DaemonHarness& h, const Case& c) {
  std::string text = absl::StrCat(
      "[hsm]\nmodule = \"", TOKENSIGN_SOFTHSM_MODULE,
      "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"", c.state,
      "/pin\"\n\n[server]\ninsecure = true\n\n[audit]\npath = \"",
      h.Path(c.name + "-audit.log"), "\"\ninstance = \"", c.name, "\"\n",
      CheckpointRecords() > 0
          ? absl::StrCat("checkpoint_every_records = ", CheckpointRecords(), "\n")
          : "",
      "\n[[callers]]\nid = \"loopback\"\nroles = [\"signer\"]\n"
      "issuers = [\"*\"]\n");
  for (const std::string& issuer : c.issuers) {
    absl::StrAppend(&text, "\n[issuers.", issuer, "]\niss = \"https://",
                    issuer,
                    ".example\"\naudiences = [\"https://api.example\"]\n"
                    "scopes = [\"read\"]\nany_actor = true\n");
  }
  return text;
}

// Issues one SignToken for `issuer`; returns the kid (empty on failure, the
// status in *error).
std::string SignOnce(const std::shared_ptr<grpc::Channel>& channel,
                     const std::string& issuer, std::string* error) {
  auto stub = v1::TokenSigner::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::SignTokenResponse resp;
  grpc::Status st = stub->SignToken(&ctx, ScenarioRequest(issuer), &resp);
  if (!st.ok()) {
    *error = absl::StrCat(st.error_code(), " ", st.error_message());
    return "";
  }
  return resp.kid();
}

// Starts c's daemon; returns seconds from exec until /readyz answered 200 and
// the first SignToken for the last issuer succeeded (0 on failure, reported).
double StartTimed(DaemonHarness& h, Case& c) {
  const auto exec = Clock::now();
  c.daemon = h.Start({"--config", c.config},
                     {"SOFTHSM2_CONF=" + c.state + "/softhsm2.conf"});
  if (c.daemon.pid <= 0) return 0;
  int code = 0;
  for (int i = 0; i < 3000 && code != 200; ++i) {  // x 10 ms
    h.HttpGet(c.daemon, "/readyz", &code);
    if (code != 200) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(code, 200) << c.name << ": /readyz\n" << ReadAll(c.daemon.log_path);
  c.channel = h.Insecure(c.daemon);
  std::string error;
  std::string kid = SignOnce(c.channel, c.issuers.back(), &error);
  const double s = Seconds(exec);
  EXPECT_FALSE(kid.empty()) << c.name << ": " << error << "\n"
                            << ReadAll(c.daemon.log_path);
  return kid.empty() ? 0 : s;
}

// SignToken calls completed per second for c.signing_issuer, `threads` calls
// in flight, for `window`, counted after a warm-up of a fifth of the window:
// the daemon of the other case has just stopped signing and this one has
// idled for a window or two, and counting from the first call made every
// round's second window (the one right after the switch) ~30% slower than
// its first, whichever case it was (1,000 keys: ratios 0.60-0.91 in the
// rounds where that case ran second, 0.93-1.49 where it ran first). Failures
// are counted in *failures.
double SignRate(const Case& c, int threads, std::chrono::milliseconds window,
                std::atomic<int64_t>* failures) {
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&] {
      auto stub = v1::TokenSigner::NewStub(c.channel);
      const v1::SignTokenRequest req = ScenarioRequest(c.signing_issuer);
      while (!stop) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
        v1::SignTokenResponse resp;
        if (stub->SignToken(&ctx, req, &resp).ok()) {
          ++done;
        } else {
          ++*failures;
        }
      }
    });
  }
  std::this_thread::sleep_for(window / 5);
  const int64_t before = done.load();
  const auto start = Clock::now();
  std::this_thread::sleep_for(window);
  const int64_t counted = done.load() - before;
  const double elapsed = Seconds(start);
  stop = true;
  for (auto& t : clients) t.join();
  return counted / elapsed;
}

TEST(DaemonScaleTest, StartsOnManyIssuersKeysAndSignsAsWithOne) {
  const int n = EnvInt("TOKENSIGN_SCALE_KEYS", 16);
  const int rounds = EnvInt("TOKENSIGN_SCALE_ROUNDS", 4);
  const auto window =
      std::chrono::milliseconds(EnvInt("TOKENSIGN_SCALE_WINDOW_MS", 250));
  const int starts = EnvInt("TOKENSIGN_SCALE_STARTS", 2);
  constexpr int kInFlight = 8;

  DaemonHarness h;
  Case one{"one", h.Path("one"), h.Path("one.toml"), {"dev"}, "dev", {}, {}};
  Case many{"many", h.Path("many"), h.Path("many.toml"), {}, "", {}, {}};
  for (int i = 0; i < n; ++i) many.issuers.push_back(absl::StrCat("scale-", i));
  many.signing_issuer = many.issuers.back();
  ASSERT_NO_FATAL_FAILURE(h.InitDevState(one.state));
  ASSERT_NO_FATAL_FAILURE(h.InitDevState(many.state));

  // Seed the N keys into the many-key token from this process (SoftHSM reads
  // SOFTHSM2_CONF once, at its first C_Initialize: only this token is opened
  // here), then close it before a daemon opens it.
  const auto seeding = Clock::now();
  {
    ::setenv("SOFTHSM2_CONF", (many.state + "/softhsm2.conf").c_str(), 1);
    hsm::HsmConfig hc;
    hc.module_path = TOKENSIGN_SOFTHSM_MODULE;
    hc.token_label = "tokensign-dev";
    hc.pin_file = many.state + "/pin";
    auto opened = hsm::Hsm::Open(hc);
    ASSERT_TRUE(opened.ok()) << opened.status();
    for (const std::string& issuer : many.issuers) {
      auto seeded = SeedIssuerKey(**opened, issuer);
      ASSERT_TRUE(seeded.ok()) << issuer << ": " << seeded.status();
    }
  }
  const double seed_s = Seconds(seeding);
  WriteAll(one.config, ConfigText(h, one));
  WriteAll(many.config, ConfigText(h, many));

  // Start each daemon `starts` times, alternately; the last start of each
  // stays up for the throughput rounds.
  std::vector<double> start_one, start_many;
  for (int s = 0; s < starts; ++s) {
    for (Case* c : {&one, &many}) {
      const double t = StartTimed(h, *c);
      ASSERT_GT(t, 0) << c->name;
      (c == &one ? start_one : start_many).push_back(t);
      if (s + 1 < starts) {
        ASSERT_EQ(h.Stop(c->daemon, SIGTERM), 0) << ReadAll(c->daemon.log_path);
      }
    }
  }

  // Each issuer signs with its own key, which its JWKS publishes and its
  // neighbour's does not.
  std::string error;
  const std::string kid_first = SignOnce(many.channel, many.issuers.front(), &error);
  ASSERT_FALSE(kid_first.empty()) << error;
  const std::string kid_last = SignOnce(many.channel, many.issuers.back(), &error);
  ASSERT_FALSE(kid_last.empty()) << error;
  if (n > 1) {
    EXPECT_NE(kid_first, kid_last);
  }
  int code = 0;
  const std::string jwks_last = h.HttpGet(
      many.daemon, "/issuers/" + many.issuers.back() + "/jwks.json", &code);
  EXPECT_EQ(code, 200);
  EXPECT_NE(jwks_last.find(kid_last), std::string::npos) << jwks_last;
  if (n > 1) {
    EXPECT_EQ(jwks_last.find(kid_first), std::string::npos) << jwks_last;
  }

  // Throughput: paired windows, order swapped each round, after a warm-up.
  std::atomic<int64_t> failures{0};
  SignRate(one, kInFlight, window, &failures);
  SignRate(many, kInFlight, window, &failures);
  std::vector<double> ratios;
  for (int r = 0; r < rounds; ++r) {
    double rate_one = 0, rate_many = 0;
    if (r % 2 == 0) {
      rate_one = SignRate(one, kInFlight, window, &failures);
      rate_many = SignRate(many, kInFlight, window, &failures);
    } else {
      rate_many = SignRate(many, kInFlight, window, &failures);
      rate_one = SignRate(one, kInFlight, window, &failures);
    }
    const double ratio = rate_one > 0 ? rate_many / rate_one : 0;
    ratios.push_back(ratio);
    std::printf("[scale-daemon] round %d: 1key=%.0f/s %dkeys=%.0f/s ratio=%.2f\n",
                r + 1, rate_one, n, rate_many, ratio);
  }
  EXPECT_EQ(failures.load(), 0) << ReadAll(many.daemon.log_path);

  std::string starts_one, starts_many;
  for (double t : start_one) absl::StrAppend(&starts_one, " ", t);
  for (double t : start_many) absl::StrAppend(&starts_many, " ", t);
  std::printf(
      "[scale-daemon] keys=%d seed=%.2fs start_1key(s):%s median=%.3f "
      "start_%dkeys(s):%s median=%.3f signtoken_ratio_median=%.2f "
      "(%d rounds x 2 x %lld ms, %d in flight)\n",
      n, seed_s, starts_one.c_str(), Median(start_one), n, starts_many.c_str(),
      Median(start_many), Median(ratios), rounds,
      static_cast<long long>(window.count()), kInFlight);
  std::fflush(stdout);
}

}  // namespace
}  // namespace tokensign::testing
