// tokensignd under HSM faults at rates: the daemon signs through the fault
// module (tests/fault/fault_module.c) in front of SoftHSM while a client keeps
// 8 SignToken calls in flight and the module
//   - fails 1% / 10% of C_Sign with CKR_DEVICE_ERROR or
//     CKR_SESSION_HANDLE_INVALID (seeded 1-in-N rules),
//   - delays 10% of C_Sign by 100 ms,
//   - flips a byte of 1 in 1000 signatures that C_Sign returned with CKR_OK
//     (verify-before-release on, the default),
//   - pulls the token out and puts it back.
// Asserted for every phase: every token the client received verifies with
// the issuer's JWKS (PyJWT, an independent JOSE implementation: 0
// unverifiable tokens released), every failure is a clean UNAVAILABLE or
// INTERNAL before the call's deadline, and the daemon signs again after the
// fault clears without a restart. Each phase prints its figures (FIGURES
// lines: tokens, failures by code, slowest call, recovery time).
//
// CI runs the short version (a few hundred calls per phase). The long
// version: TOKENSIGN_FAULT_LONG=1 ctest -R daemon_fault_rates
// --output-on-failure (20,000 calls per rate phase, 10,000 with spikes,
// 50,000 with corruption; it also asserts the recovery bound, below).
//
// Recovery after the token comes back is measured from the moment the control
// file no longer pulls it to the first signed token, with calls going on. The
// bound the daemon promises is one HSM probe interval (2 s) + 1 s; it is
// asserted in the long version only (CI asserts that recovery happens, not
// how fast, so a loaded CI machine cannot fail it).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/service/daemon_harness.h"
#include "tests/support/fault_rules.h"
#include "tests/support/fault_stats.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::testing {
namespace {

using Clock = std::chrono::steady_clock;
using v1::TokenSigner;

constexpr auto kDeadline = std::chrono::seconds(5);
constexpr int kInFlight = 8;
constexpr double kProbeIntervalSeconds = 2.0;  // daemon.cc kHsmProbeInterval

bool LongRun() {
  const char* v = getenv("TOKENSIGN_FAULT_LONG");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

struct PhaseResult {
  int calls = 0;
  int ok = 0;
  std::map<std::string, int> failures;  // by gRPC code name
  std::vector<std::string> tokens;
  std::vector<std::string> bad;  // failures other than clean ones, explained
  double slowest_ms = 0;
};

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    default:
      return "code " + std::to_string(static_cast<int>(code));
  }
}

class DaemonFaultRatesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = h_.Path("state");
    h_.InitDevState(state_);
    SetFaults("# no faults\n");
    WriteAll(h_.Path("t.toml"),
             "[hsm]\nmodule = \"" TOKENSIGN_FAULT_MODULE "\"\n"
             "token_label = \"tokensign-dev\"\npin_file = \"" +
                 state_ +
                 "/pin\"\n\n"
                 "[server]\ninsecure = true\n\n"
                 "[audit]\npath = \"" +
                 h_.Path("audit.log") + "\"\n" + AuditExtra() +
                 "\n"
                 "[[callers]]\nid = \"loopback\"\nroles = [\"signer\"]\n"
                 "issuers = [\"dev\"]\n\n"
                 "[issuers.dev]\niss = \"https://issuer.example\"\n"
                 "audiences = [\"https://api.example\"]\n"
                 "scopes = [\"read\", \"write\"]\nany_actor = true\n"
                 "verify_before_release = true\n");
    d_ = h_.Start({"--config", h_.Path("t.toml")},
                  {"SOFTHSM2_CONF=" + state_ + "/softhsm2.conf",
                   "TOKENSIGN_FAULT_TARGET=" TOKENSIGN_SOFTHSM_MODULE,
                   "TOKENSIGN_FAULT_CONTROL=" + h_.Path("faults"),
                   "TOKENSIGN_FAULT_STATS=" + h_.Path("fault-stats")});
    ASSERT_GT(d_.pid, 0);
    ch_ = h_.Insecure(d_);
    jwks_ = h_.HttpGet(d_, "/issuers/dev/jwks.json");
    ASSERT_NE(jwks_.find("\"keys\""), std::string::npos) << jwks_;
  }

  // Extra [audit] settings of a test (set before SetUp runs).
  virtual std::string AuditExtra() const { return ""; }

  void TearDown() override {
    if (d_.pid > 0) {
      EXPECT_EQ(h_.Stop(d_, SIGTERM), 0);
    }
  }

  void SetFaults(const std::string& rules) {
    WriteFaultRules(h_.Path("faults"), rules);
  }

  // The fault module's counters ("injected", "corrupted", "delayed", "stale").
  std::map<std::string, long> Stats() {
    return FaultStats(h_.Path("fault-stats"));
  }

  // One SignToken call; adds its outcome to `r` (under `mu`).
  void SignOnce(const std::string& sub, PhaseResult* r, std::mutex* mu) {
    v1::SignTokenRequest req = ScenarioRequest();
    req.set_subject(sub);
    v1::SignTokenResponse resp;
    grpc::ClientContext ctx;
    const auto start = Clock::now();
    ctx.set_deadline(std::chrono::system_clock::now() + kDeadline);
    grpc::Status st = TokenSigner::NewStub(ch_)->SignToken(&ctx, req, &resp);
    const double ms =
        std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    std::lock_guard<std::mutex> lock(*mu);
    ++r->calls;
    r->slowest_ms = std::max(r->slowest_ms, ms);
    if (st.ok()) {
      ++r->ok;
      r->tokens.push_back(resp.token());
      return;
    }
    ++r->failures[CodeName(st.error_code())];
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
        st.error_code() != grpc::StatusCode::INTERNAL) {
      r->bad.push_back(CodeName(st.error_code()) + ": " + st.error_message());
    } else if (!resp.token().empty()) {
      r->bad.push_back("a token with an error: " + st.error_message());
    }
  }

  // `calls` SignToken calls, kInFlight at a time; stops early once
  // `until` (if given) says so.
  PhaseResult Run(int calls, const std::string& tag,
                  const std::function<bool()>& until = nullptr) {
    PhaseResult r;
    std::mutex mu;
    std::atomic<int> next{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kInFlight; ++t) {
      threads.emplace_back([&] {
        for (int i = next++; i < calls && !stop; i = next++) {
          SignOnce(tag + "-" + std::to_string(i), &r, &mu);
          if (until && i % 50 == 0 && until()) stop = true;
        }
      });
    }
    for (auto& t : threads) t.join();
    return r;
  }

  // Verifies every token with the JWKS in one PyJWT process; returns how many
  // did not verify (and prints why).
  int Unverifiable(const std::vector<std::string>& tokens) {
    std::string all;
    for (const auto& t : tokens) all += t + "\n";
    WriteAll(h_.Path("tokens.txt"), all);
    WriteAll(h_.Path("jwks.json"), jwks_);
    WriteAll(h_.Path("verify_all.py"), R"(import json, sys, jwt
jwks = json.load(open(sys.argv[2]))
keys = {k["kid"]: k for k in jwks["keys"]}
good = bad = 0
for line in open(sys.argv[1]):
    token = line.strip()
    if not token:
        continue
    try:
        hdr = jwt.get_unverified_header(token)
        key = keys[hdr["kid"]]
        jwt.decode(token, jwt.PyJWK(key).key, algorithms=[key["alg"]],
                   audience="https://api.example",
                   issuer="https://issuer.example")
        good += 1
    except Exception as e:
        bad += 1
        print("unverifiable:", type(e).__name__, e, token[:60])
print("verified", good, "unverifiable", bad)
)");
    std::string out;
    int rc = Shell(std::string(kSystemPython) + " " + h_.Path("verify_all.py") +
                       " " + h_.Path("tokens.txt") + " " + h_.Path("jwks.json") +
                       " 2>&1",
                   &out);
    EXPECT_EQ(rc, 0) << out;
    int good = -1, bad = -1;
    auto pos = out.rfind("verified ");
    if (pos == std::string::npos ||
        std::sscanf(out.c_str() + pos, "verified %d unverifiable %d", &good,
                    &bad) != 2) {
      ADD_FAILURE() << "verifier output: " << out;
      return static_cast<int>(tokens.size());
    }
    EXPECT_EQ(good + bad, static_cast<int>(tokens.size())) << out;
    if (bad > 0) std::cout << out;
    return bad;
  }

  // The checks every phase shares; prints the FIGURES line.
  void Check(const std::string& phase, const PhaseResult& r) {
    const int unverifiable = Unverifiable(r.tokens);
    std::ostringstream failures;
    for (const auto& [code, n] : r.failures) failures << " " << code << "=" << n;
    const auto stats = Stats();
    std::ostringstream injected;
    for (const auto& [name, n] : stats) injected << " " << name << "=" << n;
    std::cout << "FIGURES " << phase << ": calls=" << r.calls
              << " tokens=" << r.ok << " unverifiable=" << unverifiable
              << " failures:" << (failures.str().empty() ? " none" : failures.str())
              << " slowest_ms=" << static_cast<long>(r.slowest_ms)
              << " | module:" << injected.str() << std::endl;
    EXPECT_EQ(unverifiable, 0) << phase;
    for (const auto& b : r.bad) ADD_FAILURE() << phase << ": " << b;
    EXPECT_GT(r.ok, 0) << phase;
  }

  // After the fault cleared: the daemon signs (and the token verifies).
  void ExpectSignsAgain(const std::string& phase) {
    std::mutex mu;
    PhaseResult r;
    SignOnce(phase + "-after", &r, &mu);
    ASSERT_EQ(r.ok, 1) << phase << ": no token after the fault cleared";
    EXPECT_EQ(Unverifiable(r.tokens), 0);
  }

  DaemonHarness h_;
  std::string state_;
  DaemonProcess d_;
  std::shared_ptr<grpc::Channel> ch_;
  std::string jwks_;
};

TEST_F(DaemonFaultRatesTest, SignFailuresAtOneAndTenPercent) {
  const int calls = LongRun() ? 20000 : 400;
  struct Rate {
    const char* phase;
    int one_in;  // per code: two rules, so the failing share is 2 / one_in
  } rates[] = {{"c_sign_fail_1pct", 200}, {"c_sign_fail_10pct", 20}};
  int seed = 11;
  for (const Rate& rate : rates) {
    const std::string n = std::to_string(rate.one_in);
    SetFaults("# " + std::string(rate.phase) + "\nC_Sign CKR_DEVICE_ERROR 1in" +
              n + " seed=" + std::to_string(seed) +
              "\nC_Sign CKR_SESSION_HANDLE_INVALID 1in" + n +
              " seed=" + std::to_string(seed + 1) + "\n");
    seed += 2;
    const long before = Stats()["injected"];
    PhaseResult r = Run(calls, rate.phase);
    Check(rate.phase, r);
    EXPECT_GT(Stats()["injected"], before) << "no C_Sign failure was injected";
    SetFaults("# cleared\n");
    ExpectSignsAgain(rate.phase);
  }
}

TEST_F(DaemonFaultRatesTest, LatencySpikesOf100Ms) {
  const int calls = LongRun() ? 10000 : 200;
  SetFaults("C_Sign DELAY 1in10 100 seed=21\n");
  PhaseResult r = Run(calls, "spike");
  Check("c_sign_delay_100ms_10pct", r);
  EXPECT_GT(Stats()["delayed"], 0) << "no spike was injected";
  // A 100 ms spike is far inside the deadline: nothing may fail.
  EXPECT_EQ(r.ok, r.calls);
}

TEST_F(DaemonFaultRatesTest, CorruptedSignaturesAreNeverReleased) {
  // 1 in 1000 C_Sign outputs corrupted; CI runs until two corruptions were
  // made (deterministic seed, bounded by `calls`).
  const int calls = LongRun() ? 50000 : 6000;
  SetFaults("C_Sign CORRUPT 1in1000 seed=31\n");
  PhaseResult r = Run(calls, "corrupt", [this] {
    return !LongRun() && Stats()["corrupted"] >= 2;
  });
  Check("c_sign_corrupt_1in1000", r);
  const long corrupted = Stats()["corrupted"];
  EXPECT_GE(corrupted, 1) << "no signature was corrupted";
  // Each corrupted signature is caught by verify-before-release and refused
  // (the audit key's checkpoint signatures share C_Sign, so a corruption may
  // also land there instead of on a token).
  int failed = 0;
  for (const auto& [code, n] : r.failures) failed += n;
  EXPECT_LE(failed, corrupted);
  SetFaults("# cleared\n");
  ExpectSignsAgain("corrupt");
}

TEST_F(DaemonFaultRatesTest, TokenRemovedAndReinserted) {
  std::mutex mu;
  PhaseResult before;
  SignOnce("before", &before, &mu);
  ASSERT_EQ(before.ok, 1);

  SetFaults("TOKEN REMOVED\n");
  PhaseResult out = Run(LongRun() ? 200 : 40, "removed");
  EXPECT_EQ(out.ok, 0) << "a token was signed while the token was out";
  for (const auto& b : out.bad) ADD_FAILURE() << "removed: " << b;

  // Re-inserted: calls go on (every 20 ms) until one signs.
  SetFaults("# token back\n");
  const auto cleared = Clock::now();
  PhaseResult back;
  double recovery_s = -1;
  for (int i = 0; i < 1500; ++i) {  // bounded wait (30 s) for a state change
    SignOnce("back-" + std::to_string(i), &back, &mu);
    if (back.ok > 0) {
      recovery_s =
          std::chrono::duration<double>(Clock::now() - cleared).count();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ostringstream failures;
  for (const auto& [code, n] : out.failures) failures << " " << code << "=" << n;
  for (const auto& [code, n] : back.failures)
    failures << " after:" << code << "=" << n;
  std::cout << "FIGURES token_removed_reinserted: calls_while_out=" << out.calls
            << " failures:" << failures.str()
            << " slowest_ms=" << static_cast<long>(out.slowest_ms)
            << " recovery_s=" << recovery_s << std::endl;
  for (const auto& b : back.bad) ADD_FAILURE() << "re-inserted: " << b;
  ASSERT_GE(recovery_s, 0) << "no token within 30 s of the token's return";
  if (LongRun()) {
    EXPECT_LE(recovery_s, kProbeIntervalSeconds + 1.0);
  }
  EXPECT_EQ(Unverifiable(back.tokens), 0);

  // And with no calls at all: /readyz alone comes back (background probe).
  SetFaults("TOKEN REMOVED\n");
  PhaseResult again = Run(8, "removed-again");
  EXPECT_EQ(again.ok, 0);
  SetFaults("# token back again\n");
  const auto cleared_again = Clock::now();
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    int code = 0;
    h_.HttpGet(d_, "/readyz", &code);
    ready = code == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double ready_s =
      std::chrono::duration<double>(Clock::now() - cleared_again).count();
  std::cout << "FIGURES token_reinserted_idle: readyz_200_after_s=" << ready_s
            << std::endl;
  EXPECT_TRUE(ready) << "/readyz did not recover without requests";
  ExpectSignsAgain("reinserted-idle");
}

// The audit key's checkpoint signatures come from C_Sign too: a corrupted
// one must not be written into the log (where `audit verify` would call the
// log BROKEN, a false sign of tampering, and the HSM anchor would hold it).
// Checkpoints as often as the log writes them, every C_Sign output corrupted
// for 30 calls (each token refused: INTERNAL), then 30 clean calls; at the
// end the real `tokensignctl audit verify` must accept the log (it called
// the log BROKEN before checkpoint signatures were verified before writing).
class DaemonCheckpointCorruptionTest : public DaemonFaultRatesTest {
 protected:
  std::string AuditExtra() const override {
    return "checkpoint_every_records = 1\ncheckpoint_min_interval_ms = 0\n";
  }
};

TEST_F(DaemonCheckpointCorruptionTest, CorruptedCheckpointsNeverReachTheLog) {
  SetFaults("C_Sign CORRUPT always\n");
  PhaseResult bad = Run(30, "cp-bad");
  EXPECT_EQ(bad.ok, 0);
  for (const auto& b : bad.bad) ADD_FAILURE() << "corrupt: " << b;
  EXPECT_GT(Stats()["corrupted"], 30) << "no checkpoint signature corrupted";
  SetFaults("# cleared\n");
  PhaseResult good = Run(30, "cp-good");
  Check("checkpoint_corrupt_then_clean", good);
  EXPECT_EQ(good.ok, 30);
  ASSERT_EQ(h_.Stop(d_, SIGTERM), 0);
  std::string out;
  const int rc = Shell(std::string(TOKENSIGNCTL_PATH) + " audit verify " +
                           h_.Path("audit.log") + " 2>&1",
                       &out);
  std::cout << "audit verify: exit " << rc << "\n" << out << std::endl;
  EXPECT_TRUE(rc == 0 || rc == 2) << out;  // intact / tail not anchored
}

}  // namespace
}  // namespace tokensign::testing
