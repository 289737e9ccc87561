// Key lifecycle against two real tokensignd replicas on one SoftHSM token,
// reached through gRPC client-side round_robin, with short timings
// (jwks_max_age 1 s, refresh 1 s, skew 0: publish lead 2 s): a client signs
// continuously with 8 calls in flight while a planned, a scheduled and an
// emergency rotation happen. No request fails; every token of a planned or
// scheduled key verifies (PyJWT) against a JWKS fetched before that key
// became active; after the emergency rotation the new key's tokens verify
// against a fresh JWKS and the withdrawn key's do not. The schedule happens
// once across replicas and survives a restart.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/service/daemon_harness.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string Config(DaemonHarness& h, const std::string& state,
                   const std::string& name, const std::string& period) {
  return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
         "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
         state +
         "/pin\"\n\n[server]\ninsecure = true\nkeyset_refresh_seconds = 1\n"
         "jwks_max_age = 1\nclock_skew_seconds = 0\n\n[audit]\npath = \"" +
         h.Path(name + "-audit.log") + "\"\ninstance = \"lifecycle-" + name +
         "\"\n\n[[callers]]\nid = \"loopback\"\nroles = [\"signer\", "
         "\"custodian\"]\nissuers = [\"dev\"]\n\n[issuers.dev]\niss = "
         "\"https://issuer.example\"\naudiences = [\"https://api.example\"]\n"
         "scopes = [\"read\", \"write\"]\nany_actor = true\nmax_ttl_access = "
         "600\nmax_published_keys = 6\n" +
         (period.empty() ? "" : "rotation_period = \"" + period + "\"\n");
}

struct Issued {
  std::string token, kid;
  Clock::time_point at;  // when the client received it
};

struct JwksSnapshot {
  Clock::time_point at;
  std::string json;
  std::set<std::string> kids;
};

std::set<std::string> KidsOf(const std::string& json) {
  std::set<std::string> kids;
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.contains("keys")) return kids;
  for (const auto& k : j["keys"]) kids.insert(k.value("kid", ""));
  return kids;
}

// Verifies every (token, jwks file) line with PyJWT in one Python process;
// returns how many verified.
int VerifyAll(DaemonHarness& h, const std::vector<std::pair<std::string, std::string>>& items) {
  std::string list;
  for (const auto& [token, jwks_path] : items) list += token + "\t" + jwks_path + "\n";
  WriteAll(h.Path("batch.txt"), list);
  WriteAll(h.Path("batch.py"), R"(import json, sys, jwt
ok = 0
for line in open(sys.argv[1]):
    token, path = line.rstrip("\n").split("\t")
    jwks = json.load(open(path))
    kid = jwt.get_unverified_header(token)["kid"]
    keys = [k for k in jwks["keys"] if k["kid"] == kid]
    if not keys:
        continue
    try:
        jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=["ES256"],
                   audience="https://api.example", issuer="https://issuer.example")
        ok += 1
    except Exception:
        pass
print(ok)
)");
  std::string out;
  Shell("/usr/bin/python3 " + h.Path("batch.py") + " " + h.Path("batch.txt") + " 2>&1", &out);
  return std::atoi(out.c_str());
}

v1::RotateKeyResponse Rotate(const std::shared_ptr<grpc::Channel>& ch,
                             v1::RotationMode mode, grpc::Status* st) {
  grpc::ClientContext ctx;
  v1::RotateKeyRequest req;
  req.set_issuer("dev");
  req.set_mode(mode);
  if (mode == v1::EMERGENCY) req.set_reason("test: key leaked");
  v1::RotateKeyResponse resp;
  *st = v1::KeyAdmin::NewStub(ch)->RotateKey(&ctx, req, &resp);
  return resp;
}

TEST(DaemonLifecycleTest, RotationsUnderLoadAcrossRoundRobinReplicas) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  WriteAll(h.Path("a.toml"), Config(h, state, "a", ""));
  WriteAll(h.Path("b.toml"), Config(h, state, "b", ""));
  const std::vector<std::string> env = {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"};
  DaemonProcess a = h.Start({"--config", h.Path("a.toml")}, env);
  DaemonProcess b = h.Start({"--config", h.Path("b.toml")}, env);
  ASSERT_GT(a.pid, 0);
  ASSERT_GT(b.pid, 0);
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
  auto channel = grpc::CreateCustomChannel(
      "ipv4:127.0.0.1:" + std::to_string(a.grpc_port) + ",127.0.0.1:" +
          std::to_string(b.grpc_port),
      grpc::InsecureChannelCredentials(), args);

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  int64_t received = 0;  // guarded by mu
  std::mutex mu;
  std::vector<Issued> issued;
  std::vector<JwksSnapshot> snapshots;
  std::string first_failure;
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      auto stub = v1::TokenSigner::NewStub(channel);
      while (!stop) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        v1::SignTokenResponse resp;
        grpc::Status st = stub->SignToken(&ctx, ScenarioRequest(), &resp);
        std::lock_guard lock(mu);
        if (!st.ok()) {
          if (failures++ == 0) first_failure = st.error_message();
          continue;
        }
        if (received++ % 4 == 0)  // keep the PyJWT batch small
          issued.push_back({resp.token(), resp.kid(), Clock::now()});
      }
    });
  }
  std::thread poller([&] {
    while (!stop) {
      std::string json = h.HttpGet(a, "/issuers/dev/jwks.json");
      {
        std::lock_guard lock(mu);
        snapshots.push_back({Clock::now(), json, KidsOf(json)});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
  });
  // Stops and joins the client threads on every way out of the test.
  struct Joiner {
    std::atomic<bool>* stop;
    std::vector<std::thread>* threads;
    std::thread* poller;
    ~Joiner() {
      *stop = true;
      for (auto& t : *threads)
        if (t.joinable()) t.join();
      if (poller->joinable()) poller->join();
    }
  } joiner{&stop, &clients, &poller};
  auto kids_signed = [&] {
    std::lock_guard lock(mu);
    std::set<std::string> kids;
    for (const Issued& t : issued) kids.insert(t.kid);
    return kids;
  };
  auto wait_for_kid = [&](const std::string& kid) {
    for (int i = 0; i < 300; ++i) {
      if (kids_signed().count(kid)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };

  // 1. Planned: pending now, active on a replica's timer after the lead.
  grpc::Status st;
  v1::RotateKeyResponse planned = Rotate(channel, v1::PLANNED, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(planned.active().state(), v1::PENDING);
  const std::string k2 = planned.active().kid();
  if (!wait_for_kid(k2)) {
    grpc::ClientContext ctx;
    v1::ListKeysRequest req;
    req.set_issuer("dev");
    v1::ListKeysResponse keys;
    (void)v1::KeyAdmin::NewStub(h.Insecure(a))->ListKeys(&ctx, req, &keys);
    FAIL() << "planned key " << k2 << " never signed\n" << keys.DebugString()
           << "\nA:\n" << ReadAll(a.log_path) << "\nB:\n" << ReadAll(b.log_path);
  }

  // 2. Scheduled: both replicas reload a 12 s period; exactly one rotation
  // per period happens.
  WriteAll(h.Path("a.toml"), Config(h, state, "a", "12s"));
  WriteAll(h.Path("b.toml"), Config(h, state, "b", "12s"));
  h.Signal(a, SIGHUP);
  h.Signal(b, SIGHUP);
  std::string k3;
  for (int i = 0; i < 400 && k3.empty(); ++i) {
    for (const std::string& kid : kids_signed())
      if (kid != k2 && kid != planned.retired().kid()) k3 = kid;
    if (k3.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(k3.empty()) << "no scheduled rotation\n" << ReadAll(a.log_path);
  // Back to no schedule so the emergency step is not raced by it.
  WriteAll(h.Path("a.toml"), Config(h, state, "a", ""));
  WriteAll(h.Path("b.toml"), Config(h, state, "b", ""));
  h.Signal(a, SIGHUP);
  h.Signal(b, SIGHUP);
  std::this_thread::sleep_for(std::chrono::seconds(2));

  // 3. Emergency: new key at once, the active one withdrawn.
  v1::RotateKeyResponse emergency = Rotate(channel, v1::EMERGENCY, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string k4 = emergency.active().kid();
  const std::string withdrawn = emergency.retired().kid();
  EXPECT_EQ(emergency.retired().state(), v1::WITHDRAWN);
  ASSERT_TRUE(wait_for_kid(k4));
  std::this_thread::sleep_for(std::chrono::seconds(3));  // replicas refresh
  stop = true;
  for (auto& t : clients) t.join();
  poller.join();
  const int64_t total = received;

  EXPECT_EQ(failures.load(), 0) << first_failure;
  // Activation times from the keyset (one record for both replicas).
  v1::ListKeysResponse listed;
  {
    grpc::ClientContext ctx;
    v1::ListKeysRequest req;
    req.set_issuer("dev");
    ASSERT_TRUE(v1::KeyAdmin::NewStub(h.Insecure(a))->ListKeys(&ctx, req, &listed).ok());
  }
  int active = 0;
  for (const auto& k : listed.keys()) active += k.state() == v1::ACTIVE;
  EXPECT_EQ(active, 1);
  // Planned and scheduled keys: a JWKS fetched before any token of the key
  // was received already had it (the publish lead at work).
  std::vector<std::pair<std::string, std::string>> items;
  std::string fresh = h.HttpGet(a, "/issuers/dev/jwks.json");
  WriteAll(h.Path("fresh.json"), fresh);
  int planned_tokens = 0, withdrawn_tokens = 0, emergency_tokens = 0;
  for (const std::string& kid : {k2, k3}) {
    // The last snapshot taken before the key's first token was seen.
    size_t first_seen = issued.size();
    for (size_t i = 0; i < issued.size(); ++i)
      if (issued[i].kid == kid) { first_seen = i; break; }
    ASSERT_LT(first_seen, issued.size());
    std::string before_activation;
    for (const JwksSnapshot& s : snapshots)
      if (s.kids.count(kid)) { before_activation = s.json; break; }
    ASSERT_FALSE(before_activation.empty()) << kid << " never published";
    const std::string path = h.Path("early-" + kid.substr(0, 8) + ".json");
    WriteAll(path, before_activation);
    for (const Issued& t : issued)
      if (t.kid == kid) { items.push_back({t.token, path}); ++planned_tokens; }
  }
  // The publish lead at work: each planned/scheduled key was in a JWKS
  // fetched before the client received the key's first token.
  for (const std::string& kid : {k2, k3}) {
    Clock::time_point first_token = Clock::time_point::max();
    for (const Issued& t : issued)
      if (t.kid == kid) first_token = std::min(first_token, t.at);
    bool fetched_before = false;
    for (const JwksSnapshot& s : snapshots)
      if (s.kids.count(kid) && s.at < first_token) fetched_before = true;
    EXPECT_TRUE(fetched_before) << kid << " signed before any JWKS had it";
  }
  for (const Issued& t : issued) {
    if (t.kid == k4) { items.push_back({t.token, h.Path("fresh.json")}); ++emergency_tokens; }
  }
  const int ok = VerifyAll(h, items);
  EXPECT_EQ(ok, planned_tokens + emergency_tokens);
  std::vector<std::pair<std::string, std::string>> old_items;
  for (const Issued& t : issued)
    if (t.kid == withdrawn) { old_items.push_back({t.token, h.Path("fresh.json")}); ++withdrawn_tokens; }
  EXPECT_GT(withdrawn_tokens, 0);
  EXPECT_EQ(VerifyAll(h, old_items), 0) << "withdrawn key still verifies";
  EXPECT_EQ(KidsOf(fresh).count(withdrawn), 0u) << fresh;
  // The emergency is on the audit chain of the replica that made it, with
  // the custodian's reason.
  int emergencies = 0;
  for (const std::string& log : {h.Path("a-audit.log"), h.Path("b-audit.log")}) {
    for (const nlohmann::json& line : h.AuditLines(log)) {
      if (line.value("kind", "") == "key_admin.RotateKey" &&
          line.value("outcome", "") == "requested" &&
          line.value("reason", "").find("EMERGENCY") != std::string::npos &&
          line.value("reason", "").find("key leaked") != std::string::npos)
        ++emergencies;
    }
  }
  EXPECT_EQ(emergencies, 1);
  std::cout << "[ lifecycle ] tokens " << total << " (sampled "
            << issued.size() << "), planned/scheduled " << planned_tokens
            << ", emergency " << emergency_tokens << ", withdrawn "
            << withdrawn_tokens << ", failures " << failures.load() << "\n";
  EXPECT_EQ(h.Stop(a, SIGTERM), 0);
  EXPECT_EQ(h.Stop(b, SIGTERM), 0);
}

v1::ListKeysResponse ListKeys(DaemonHarness& h, const DaemonProcess& d) {
  grpc::ClientContext ctx;
  v1::ListKeysRequest req;
  req.set_issuer("dev");
  v1::ListKeysResponse keys;
  grpc::Status st = v1::KeyAdmin::NewStub(h.Insecure(d))->ListKeys(&ctx, req, &keys);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return keys;
}

// kill -9 at every step of scheduled rotations (key created and pending,
// activated, in between): after each restart the daemon starts without an
// operator, exactly one key is active, the schedule goes on (the next
// rotation happens after the restart), and the audit chain verifies.
TEST(DaemonLifecycleTest, KillNineDuringScheduledRotationsKeepsOneActiveKeyAndTheSchedule) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  WriteAll(h.Path("a.toml"), Config(h, state, "a", "10s"));
  const std::vector<std::string> env = {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"};
  std::set<std::string> seen_active;
  int kills = 0;
  for (int round = 0; round < 6; ++round) {
    DaemonProcess d = h.Start({"--config", h.Path("a.toml")}, env);
    ASSERT_GT(d.pid, 0) << "round " << round;
    v1::ListKeysResponse keys = ListKeys(h, d);
    int active = 0, pending = 0;
    for (const auto& k : keys.keys()) {
      active += k.state() == v1::ACTIVE;
      pending += k.state() == v1::PENDING;
      if (k.state() == v1::ACTIVE) seen_active.insert(k.kid());
    }
    EXPECT_EQ(active, 1) << keys.DebugString();
    EXPECT_LE(pending, 1) << keys.DebugString();
    // Let it run into a different step of the schedule each round, then
    // kill -9 (no clean shutdown, no final checkpoint).
    std::this_thread::sleep_for(std::chrono::milliseconds(1700 + 900 * round));
    kill(d.pid, SIGKILL);
    h.Stop(d, SIGKILL);
    ++kills;
  }
  DaemonProcess d = h.Start({"--config", h.Path("a.toml")}, env);
  ASSERT_GT(d.pid, 0);
  const v1::ListKeysResponse last = ListKeys(h, d);
  for (const auto& k : last.keys())
    if (k.state() == v1::ACTIVE) seen_active.insert(k.kid());
  // ~20 s of a 10 s schedule across 6 kills: it went on rotating.
  EXPECT_GE(seen_active.size(), 2u);
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
  std::string out;
  const int rc = Shell(std::string(TOKENSIGNCTL_PATH) + " audit verify " +
                           h.Path("a-audit.log") + " 2>&1",
                       &out);
  EXPECT_EQ(rc, 0) << out;
  std::cout << "[ lifecycle ] kill -9: " << kills << " kills, "
            << seen_active.size() << " distinct active keys seen\n";
}

}  // namespace
}  // namespace tokensign::testing
