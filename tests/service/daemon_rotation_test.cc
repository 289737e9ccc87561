// End-to-end: the custodian's planned key rotation as README describes it,
// driven with tokensignctl (the CLI operators use) against a real tokensignd,
// checked with PyJWT (an independent JOSE library) the way relying parties
// check: a verifier that cached the JWKS before the new key signed anything
// must accept its tokens, and tokens of the retired key must keep verifying
// until the key is withdrawn.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/service/daemon_harness.h"

#ifndef TOKENSIGNCTL_PATH
#error "TOKENSIGNCTL_PATH must name the built tokensignctl"
#endif

namespace tokensign::testing {
namespace {

// Runs tokensignctl against `d` (plaintext dev daemon); returns the exit code.
int Ctl(const DaemonProcess& d, const std::string& args, std::string* out) {
  out->clear();
  return Shell(std::string(TOKENSIGNCTL_PATH) +
                   " --server 127.0.0.1:" + std::to_string(d.grpc_port) +
                   " --insecure " + args + " 2>&1",
               out);
}

// The kid `keys create|activate|destroy --json` answers.
std::string KidOfKeyJson(const std::string& out) {
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  return j.is_discarded() ? "" : j["key"].value("kid", "");
}

// The kids the JWKS publishes.
std::vector<std::string> Kids(const std::string& jwks_json) {
  std::vector<std::string> kids;
  const nlohmann::json jwks = nlohmann::json::parse(jwks_json);
  for (const auto& k : jwks["keys"])
    kids.push_back(k["kid"].get<std::string>());
  return kids;
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  for (const std::string& x : v)
    if (x == s) return true;
  return false;
}

std::string Verify(DaemonHarness& h, const std::string& token,
                   const std::string& jwks) {
  return PyJwtVerify(h, token, jwks, "ES256", "https://issuer.example");
}

TEST(DaemonRotationTest, PlannedRotationKeepsCachedVerifiersWorking) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  DaemonProcess d = h.Start({"--dev", "--state-dir", state});
  ASSERT_GT(d.pid, 0);
  const std::string sign_args =
      "sign --issuer dev --sub alice --client-id app --aud "
      "https://api.example --scope read --actor agent-7 --actor planner "
      "--ttl 600";
  std::string old_token, out;
  ASSERT_EQ(Ctl(d, sign_args, &old_token), 0) << old_token;
  while (!old_token.empty() && old_token.back() == '\n') old_token.pop_back();
  const std::string before = h.HttpGet(d, "/issuers/dev/jwks.json");
  ASSERT_EQ(Kids(before).size(), 1u) << before;
  const std::string old_kid = Kids(before)[0];

  // Step 1: a pending key, published at once, not signing.
  ASSERT_EQ(Ctl(d, "keys create --issuer dev --json", &out), 0) << out;
  EXPECT_NE(out.find("PENDING"), std::string::npos) << out;
  const std::string new_kid = KidOfKeyJson(out);
  ASSERT_NE(new_kid, old_kid);
  // What a relying party fetches (and caches) between the two steps.
  const std::string cached = h.HttpGet(d, "/issuers/dev/jwks.json");
  EXPECT_TRUE(Has(Kids(cached), old_kid)) << cached;
  EXPECT_TRUE(Has(Kids(cached), new_kid)) << cached;
  std::string still_old;
  ASSERT_EQ(Ctl(d, sign_args, &still_old), 0) << still_old;
  EXPECT_EQ(Verify(h, still_old, before), "ES256 at+jwt alice")
      << "a pending key must not sign";

  // Step 2 (after the publish lead in production; dev mode has none):
  // activate. The verifier still holding the JWKS from step 1 accepts the new
  // key's tokens.
  ASSERT_EQ(Ctl(d, "keys activate --issuer dev --kid " + new_kid, &out), 0)
      << out;
  EXPECT_NE(out.find("ACTIVE"), std::string::npos) << out;
  std::string new_token;
  ASSERT_EQ(Ctl(d, sign_args, &new_token), 0) << new_token;
  while (!new_token.empty() && new_token.back() == '\n') new_token.pop_back();
  EXPECT_EQ(Verify(h, new_token, cached), "ES256 at+jwt alice");
  EXPECT_NE(Verify(h, new_token, before), "ES256 at+jwt alice")
      << "negative control: a JWKS without the new key must not verify";
  // The retired key stays published: its live tokens keep verifying.
  const std::string after = h.HttpGet(d, "/issuers/dev/jwks.json");
  EXPECT_TRUE(Has(Kids(after), old_kid)) << after;
  EXPECT_EQ(Verify(h, old_token, after), "ES256 at+jwt alice");

  // Destroying the retired key while its tokens may be live is refused,
  // naming why (exit 2: the rules); forcing it needs a reason (exit 1 before
  // anything is sent); forced with one, it is withdrawn from the JWKS.
  EXPECT_EQ(Ctl(d, "keys destroy --issuer dev --kid " + old_kid, &out), 2);
  EXPECT_NE(out.find("FAILED_PRECONDITION"), std::string::npos) << out;
  EXPECT_NE(out.find("force"), std::string::npos) << out;
  EXPECT_TRUE(Has(Kids(h.HttpGet(d, "/issuers/dev/jwks.json")), old_kid));
  EXPECT_EQ(Ctl(d, "keys destroy --force --issuer dev --kid " + old_kid, &out),
            1)
      << out;
  EXPECT_NE(out.find("--reason"), std::string::npos) << out;
  ASSERT_EQ(Ctl(d,
                "keys destroy --force --reason 'tokens revoked' --issuer dev "
                "--kid " + old_kid,
                &out),
            0)
      << out;
  const std::string withdrawn = h.HttpGet(d, "/issuers/dev/jwks.json");
  EXPECT_FALSE(Has(Kids(withdrawn), old_kid)) << withdrawn;
  EXPECT_NE(Verify(h, old_token, withdrawn), "ES256 at+jwt alice");

  // Every custodian step is on the audit chain, requested then done (the
  // refused destroy: requested then denied), and the chain verifies.
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
  std::vector<std::string> admin;
  for (const auto& line : h.AuditLines(state + "/audit.log")) {
    const std::string kind = line.value("kind", "");
    if (kind.rfind("key_admin.", 0) == 0)
      admin.push_back(kind + " " + line.value("outcome", ""));
  }
  const std::vector<std::string> want = {
      "key_admin.CreateKey requested",   "key_admin.CreateKey done",
      "key_admin.ActivateKey requested", "key_admin.ActivateKey done",
      "key_admin.DestroyKey requested",  "key_admin.DestroyKey denied",
      "key_admin.DestroyKey requested",  "key_admin.DestroyKey done"};
  EXPECT_EQ(admin, want);
  // The daemon still runs: lines after its last checkpoint are reported as
  // not yet anchored (exit 2), the chain itself must be intact (not 3).
  const int rc = Shell(std::string(TOKENSIGNCTL_PATH) + " audit verify " +
                           state + "/audit.log 2>&1",
                       &out);
  EXPECT_TRUE(rc == 0 || rc == 2) << rc << "\n" << out;
}

}  // namespace
}  // namespace tokensign::testing
