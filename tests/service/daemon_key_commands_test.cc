// End-to-end: the custodian's `tokensignctl keys ...` commands and `audit
// tail` against a real tokensignd, as an operator or a script uses them: the
// table and --json output, the exit codes a script acts on, connection flags
// before or after the command, the publish lead refusing an early activation
// (and --force --reason overriding it), planned and emergency rotation, the
// schedule, `keys inspect` (KeyAdmin.InspectKeys) for custodians and auditors
// of the issuer only, and the audit log decoded one record per line.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/service/daemon_harness.h"

#ifndef TOKENSIGNCTL_PATH
#error "TOKENSIGNCTL_PATH must name the built tokensignctl"
#endif

namespace tokensign::testing {
namespace {

const std::string kCtl = TOKENSIGNCTL_PATH;

std::string Plain(const DaemonProcess& d) {
  return "--server 127.0.0.1:" + std::to_string(d.grpc_port) + " --insecure";
}

// Runs `tokensignctl ARGS` (stdout and stderr into *out); the exit code.
int Ctl(const std::string& args, std::string* out) {
  out->clear();
  return Shell(kCtl + " " + args + " 2>&1", out);
}

// `keys ... --json` that must succeed: its answer.
nlohmann::json Json(const std::string& args) {
  std::string out;
  const int rc = Ctl(args + " --json", &out);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << out;
  return j.is_discarded() ? nlohmann::json::object() : j;
}

// kid -> state of `keys list --json`.
std::map<std::string, std::string> States(const nlohmann::json& list) {
  std::map<std::string, std::string> out;
  for (const auto& k : list.value("keys", nlohmann::json::array()))
    out[k["kid"].get<std::string>()] = k["state"].get<std::string>();
  return out;
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Polls `done` every 100 ms for up to 60 s (a generous bound on a loaded
// machine; the condition, not the time, is what the test checks).
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 600; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

// Config mode on the dev token made in `state`: plaintext loopback, the
// loopback caller signer + custodian + auditor; `dev` with the publish lead
// jwks_max_age 2 + keyset_refresh 1 + clock skew 1 = 4 s; `slow` with a
// publish lead of an hour and a 30-day rotation schedule.
std::string LifecycleConfig(DaemonHarness& h, const std::string& state,
                            const std::string& audit_extra = "") {
  const std::string issuer_body =
      "audiences = [\"https://api.example\"]\nscopes = [\"read\"]\n"
      "any_actor = true\n";
  return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
         "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
         state +
         "/pin\"\n\n[server]\ninsecure = true\njwks_max_age = 2\n"
         "keyset_refresh_seconds = 1\nclock_skew_seconds = 1\n\n"
         "[audit]\npath = \"" +
         h.Path("audit.log") + "\"\n" + audit_extra +
         "\n[[callers]]\nid = \"loopback\"\nroles = [\"signer\", "
         "\"custodian\", \"auditor\"]\nissuers = [\"*\"]\n\n"
         "[issuers.dev]\niss = \"https://issuer.example\"\n" +
         issuer_body +
         "\n[issuers.slow]\niss = \"https://slow.example\"\n"
         "publish_lead_seconds = 3600\nrotation_period = \"30d\"\n" +
         issuer_body;
}

std::vector<std::string> SoftHsmEnv(const std::string& state) {
  return {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"};
}

TEST(DaemonKeyCommandsTest, LifecycleFromTheCliInDevMode) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  DaemonProcess d = h.Start({"--dev", "--state-dir", state});
  ASSERT_GT(d.pid, 0);
  const std::string conn = Plain(d);
  std::string out;

  // Connection flags before and after the command give the same answer.
  const nlohmann::json first = Json(conn + " keys list --issuer dev");
  EXPECT_EQ(Json("keys list --issuer dev " + conn), first);
  ASSERT_EQ(first["keys"].size(), 1u) << first;
  const std::string k1 = first["keys"][0]["kid"];
  EXPECT_EQ(first["keys"][0]["state"], "ACTIVE");
  EXPECT_TRUE(Contains(first["keys"][0]["pkcs11_uri"], "pkcs11:token=tokensign-dev;id=%"))
      << first;
  // The table: a header, then one row per key.
  ASSERT_EQ(Ctl("keys list --issuer dev " + conn, &out), 0) << out;
  EXPECT_EQ(out.rfind("KID", 0), 0u) << out;
  EXPECT_TRUE(Contains(out, "\n" + k1 + "  ES256  ACTIVE")) << out;

  // create + activate (dev mode: no publish lead).
  const std::string k2 = Json("keys create --issuer dev " + conn)["key"]["kid"];
  EXPECT_EQ(States(Json("keys list --issuer dev " + conn))[k2], "PENDING");
  EXPECT_EQ(Json("keys activate --issuer dev --kid " + k2 + " " + conn)["key"]["state"],
            "ACTIVE");

  // Planned rotation: without a publish lead the new key is active at once
  // and says so; the previous key retires and stays in the JWKS until a
  // stated time.
  ASSERT_EQ(Ctl("keys rotate --issuer dev " + conn, &out), 0) << out;
  EXPECT_TRUE(Contains(out, "is active now (no publish lead); " + k2 +
                                " is retired and stays in the JWKS until "))
      << out;
  std::map<std::string, std::string> states =
      States(Json("keys list --issuer dev " + conn));
  ASSERT_EQ(states.size(), 3u);
  std::string k3;
  for (const auto& [kid, st] : states)
    if (st == "ACTIVE") k3 = kid;
  EXPECT_EQ(states[k2], "RETIRED");

  // Emergency rotation needs a reason: refused before anything is sent.
  EXPECT_EQ(Ctl("keys rotate --now --issuer dev " + conn, &out), 1) << out;
  EXPECT_TRUE(Contains(out, "--reason")) << out;
  EXPECT_EQ(States(Json("keys list --issuer dev " + conn)).size(), 3u);
  const nlohmann::json emergency =
      Json("keys rotate --now --reason 'key leaked' --issuer dev " + conn);
  EXPECT_EQ(emergency["active"]["state"], "ACTIVE") << emergency;
  EXPECT_EQ(emergency["retired"]["kid"], k3) << emergency;
  EXPECT_EQ(emergency["retired"]["state"], "WITHDRAWN") << emergency;
  EXPECT_TRUE(emergency["retired"].contains("withdrawn_at")) << emergency;
  const std::string jwks = h.HttpGet(d, "/issuers/dev/jwks.json");
  EXPECT_FALSE(Contains(jwks, k3)) << "withdrawn at once: " << jwks;
  const std::string k4 = emergency["active"]["kid"];

  // Exit codes: 2 refused by the rules, 1 usage, 4 unknown issuer/kid.
  EXPECT_EQ(Ctl("keys destroy --issuer dev --kid " + k2 + " " + conn, &out), 2)
      << out;
  EXPECT_TRUE(Contains(out, "FAILED_PRECONDITION")) << out;
  EXPECT_EQ(Ctl("keys destroy --force --issuer dev --kid " + k2 + " " + conn, &out),
            1)
      << out;
  EXPECT_TRUE(Contains(out, "--reason")) << out;
  EXPECT_EQ(Ctl("keys destroy --force --reason 'x' --issuer dev --kid " + k4 +
                    " " + conn,
                &out),
            2)
      << "never the active key: " << out;
  EXPECT_EQ(Ctl("keys activate --issuer dev --kid no-such-kid " + conn, &out), 4)
      << out;
  EXPECT_EQ(Ctl("keys list --issuer nope " + conn, &out), 4) << out;
  EXPECT_EQ(Ctl("keys list " + conn, &out), 1) << "usage: " << out;
  const nlohmann::json destroyed = Json(
      "keys destroy --force --reason 'tokens revoked' --issuer dev --kid " +
      k2 + " " + conn);
  EXPECT_EQ(destroyed["key"]["state"], "DESTROYED") << destroyed;

  // The schedule: each key's timeline; no rotation_period in dev mode.
  ASSERT_EQ(Ctl("keys schedule --issuer dev " + conn, &out), 0) << out;
  EXPECT_TRUE(Contains(out, "EXPIRES_FROM_JWKS")) << out;
  EXPECT_TRUE(Contains(out, "next scheduled rotation: none")) << out;
  EXPECT_TRUE(Contains(out, "\n" + k1 + "  RETIRED  ")) << out;

  // inspect: the live keys' objects carry the attributes tokensign requires;
  // the destroyed key has no object left.
  const nlohmann::json inspected = Json("keys inspect --issuer dev " + conn);
  ASSERT_EQ(inspected["keys"].size(), 4u) << inspected;
  for (const auto& k : inspected["keys"]) {
    const std::string kid = k["key"]["kid"];
    if (kid == k2) {
      EXPECT_TRUE(k["objects"].empty()) << k;
      EXPECT_TRUE(Contains(k["hsm_error"], "no private-key object")) << k;
      continue;
    }
    ASSERT_EQ(k["objects"].size(), 1u) << k;
    const auto& o = k["objects"][0];
    EXPECT_EQ(o["key_type"], "EC-P256") << o;
    EXPECT_EQ(o["bits"], 256) << o;
    EXPECT_EQ(o["refused"], "") << o;
    std::map<std::string, bool> attrs;
    for (const auto& a : o["attributes"]) attrs[a["name"]] = a["value"];
    EXPECT_TRUE(attrs["CKA_SENSITIVE"]) << o;
    EXPECT_TRUE(attrs["CKA_ALWAYS_SENSITIVE"]) << o;
    EXPECT_TRUE(attrs["CKA_NEVER_EXTRACTABLE"]) << o;
    EXPECT_TRUE(attrs["CKA_LOCAL"]) << o;
    EXPECT_TRUE(attrs["CKA_PRIVATE"]) << o;
    EXPECT_FALSE(attrs.at("CKA_EXTRACTABLE")) << o;
  }
  const nlohmann::json one = Json("keys inspect --issuer dev --kid " + k4 + " " + conn);
  ASSERT_EQ(one["keys"].size(), 1u) << one;
  EXPECT_EQ(one["keys"][0]["key"]["kid"], k4);
  EXPECT_EQ(Ctl("keys inspect --issuer dev --kid no-such-kid " + conn, &out), 4)
      << out;
  ASSERT_EQ(Ctl("keys inspect --issuer dev --kid " + k4 + " " + conn, &out), 0)
      << out;
  // Header, then the key's one object: state, type, bits, sensitive,
  // always-sensitive, never-extractable, local, URI, verdict.
  const std::vector<std::string> rows = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 2u) << out;
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(rows[0], ' ', absl::SkipEmpty())),
            (std::vector<std::string>{"KID", "STATE", "TYPE", "BITS", "SENSITIVE",
                                      "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE",
                                      "LOCAL", "PKCS11_URI", "VERDICT"}));
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(rows[1], ' ', absl::SkipEmpty())),
            (std::vector<std::string>{
                k4, "ACTIVE", "EC-P256", "256", "yes", "yes", "yes", "yes",
                one["keys"][0]["key"]["pkcs11_uri"], "ok"}));
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
}

// A custodian cannot activate a key before verifiers can know it: refused
// with exit 2 naming the rule, unless --force with a reason (audited). A
// planned rotation's key becomes active by itself after the publish lead.
TEST(DaemonKeyCommandsTest, PublishLeadRefusesEarlyActivationAndDrivesPlannedRotation) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  WriteAll(h.Path("tokensignd.toml"), LifecycleConfig(h, state));
  DaemonProcess d =
      h.Start({"--config", h.Path("tokensignd.toml")}, SoftHsmEnv(state));
  ASSERT_GT(d.pid, 0);
  const std::string conn = Plain(d);
  std::string out;

  // `slow`: its first key may activate at once (no verifier can hold a
  // token it would break).
  const std::string s1 = Json("keys create --issuer slow " + conn)["key"]["kid"];
  Json("keys activate --issuer slow --kid " + s1 + " " + conn);
  // The 30-day schedule is set by the daemon once the issuer has an active
  // key, and `keys schedule` shows it.
  nlohmann::json list;
  ASSERT_TRUE(Eventually([&] {
    list = Json("keys list --issuer slow " + conn);
    return list.contains("next_rotation_at");
  })) << list;
  ASSERT_EQ(Ctl("keys schedule --issuer slow " + conn, &out), 0) << out;
  EXPECT_TRUE(Contains(out, "next scheduled rotation: " +
                                list["next_rotation_at"].get<std::string>()))
      << out;

  const std::string s2 = Json("keys create --issuer slow " + conn)["key"]["kid"];
  EXPECT_EQ(Ctl("keys activate --issuer slow --kid " + s2 + " " + conn, &out), 2)
      << out;
  EXPECT_TRUE(Contains(out, "FAILED_PRECONDITION")) << out;
  EXPECT_TRUE(Contains(out, "has been published for")) << out;
  EXPECT_EQ(States(Json("keys list --issuer slow " + conn))[s2], "PENDING");
  EXPECT_EQ(Ctl("keys activate --force --issuer slow --kid " + s2 + " " + conn, &out),
            1)
      << "--force needs --reason: " << out;
  EXPECT_EQ(Json("keys activate --force --reason 'drill' --issuer slow --kid " +
                 s2 + " " + conn)["key"]["state"],
            "ACTIVE");

  // `dev`: a planned rotation announces when its key activates, and it does
  // (the daemon's timer), the old key retiring.
  const std::string d1 = Json("keys list --issuer dev " + conn)["keys"][0]["kid"];
  ASSERT_EQ(Ctl("keys rotate --issuer dev " + conn, &out), 0) << out;
  EXPECT_TRUE(Contains(out, "is pending (published in the JWKS now); it becomes "
                            "active at "))
      << out;
  EXPECT_TRUE(Contains(out, "and " + d1 + " then retires")) << out;
  nlohmann::json keys = Json("keys list --issuer dev " + conn);
  ASSERT_EQ(keys["keys"].size(), 2u) << keys;
  const std::string d2 = keys["keys"][1]["kid"];
  ASSERT_EQ(keys["keys"][1]["state"], "PENDING") << keys;
  EXPECT_TRUE(keys["keys"][1].contains("activate_at")) << keys;
  ASSERT_TRUE(Eventually([&] {
    return States(Json("keys list --issuer dev " + conn))[d2] == "ACTIVE";
  }));
  EXPECT_EQ(States(Json("keys list --issuer dev " + conn))[d1], "RETIRED");
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);

  // The forced activation is on the audit record: refused, then done.
  std::vector<std::string> activations;
  for (const auto& line : h.AuditLines(h.Path("audit.log"))) {
    if (line.value("kind", "") == "key_admin.ActivateKey" &&
        line.value("issuer", "") == "slow" && line.value("kid", "") == s2)
      activations.push_back(line.value("outcome", ""));
  }
  EXPECT_EQ(activations, (std::vector<std::string>{"denied", "done"}));
}

// InspectKeys is read-only like ListKeys: custodians and auditors of the
// issuer, nobody else; a refusal is audited. mTLS flags after the command.
TEST(DaemonKeyCommandsTest, InspectIsForCustodiansAndAuditorsOfTheIssuer) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  h.MakeCerts();
  const std::string issuer_body =
      "audiences = [\"https://api.example\"]\nscopes = [\"read\"]\n"
      "any_actor = true\n";
  WriteAll(h.Path("tokensignd.toml"),
           "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
           "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
               state + "/pin\"\n\n[server]\ntls_cert = \"" +
               h.Path("server.pem") + "\"\ntls_key = \"" + h.Path("server.key") +
               "\"\nclient_ca = \"" + h.Path("ca.pem") +
               "\"\n\n[audit]\npath = \"" + h.Path("audit.log") +
               "\"\n\n[[callers]]\nid = \"spiffe://test/signer\"\nroles = "
               "[\"signer\"]\nissuers = [\"dev\"]\n"
               "[[callers]]\nid = \"custodian-1\"\nroles = [\"custodian\"]\n"
               "issuers = [\"dev\"]\n"
               "[[callers]]\nid = \"stranger\"\nroles = [\"auditor\"]\n"
               "issuers = [\"dev\"]\n\n"
               "[issuers.dev]\niss = \"https://issuer.example\"\n" +
               issuer_body + "[issuers.other]\niss = \"https://other.example\"\n" +
               issuer_body);
  DaemonProcess d =
      h.Start({"--config", h.Path("tokensignd.toml")}, SoftHsmEnv(state));
  ASSERT_GT(d.pid, 0);
  auto as = [&](const std::string& who) {
    return " --server localhost:" + std::to_string(d.grpc_port) +
           " --cacert " + h.Path("ca.pem") + " --cert " + h.Path(who + ".pem") +
           " --key " + h.Path(who + ".key");
  };
  std::string out;
  EXPECT_EQ(Json("keys inspect --issuer dev" + as("custodian"))["keys"].size(), 1u);
  // The auditor reads, never changes.
  const nlohmann::json seen = Json("keys inspect --issuer dev" + as("stranger"));
  // contains() first: a const json's operator[] on a missing key reads out of
  // bounds (ASan caught it here after a failed command).
  ASSERT_TRUE(seen.contains("keys")) << seen;
  ASSERT_EQ(seen["keys"].size(), 1u) << seen;
  EXPECT_EQ(seen["keys"][0]["objects"][0]["refused"], "") << seen;
  EXPECT_EQ(Ctl("keys rotate --issuer dev" + as("stranger"), &out), 4) << out;
  EXPECT_TRUE(Contains(out, "PERMISSION_DENIED")) << out;
  // Neither the signer, nor an auditor of another issuer.
  EXPECT_EQ(Ctl("keys inspect --issuer dev" + as("signer"), &out), 4) << out;
  EXPECT_TRUE(Contains(out, "PERMISSION_DENIED")) << out;
  EXPECT_EQ(Ctl("keys inspect --issuer other" + as("stranger"), &out), 4) << out;
  // A read that fails is on record too: who looked for which key.
  EXPECT_EQ(Ctl("keys inspect --issuer dev --kid no-such-kid" + as("stranger"),
                &out),
            4)
      << out;
  EXPECT_TRUE(Contains(out, "NOT_FOUND")) << out;
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);

  std::vector<std::string> inspections;
  for (const auto& line : h.AuditLines(h.Path("audit.log"))) {
    if (line.value("kind", "") == "key_admin.InspectKeys")
      inspections.push_back(line.value("caller", "") + " " +
                            line.value("issuer", "") + " " +
                            line.value("kid", "") + " " +
                            line.value("outcome", ""));
  }
  EXPECT_EQ(inspections, (std::vector<std::string>{
                             "spiffe://test/signer dev  denied",
                             "stranger other  denied",
                             "stranger dev no-such-kid denied"}));
}

// `audit tail`: one line per record, hostile values escaped so they cannot
// fake a line or a field; --follow keeps up across log rotation.
TEST(DaemonKeyCommandsTest, AuditTailPrintsOneLinePerRecordAndFollowsRotation) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  WriteAll(h.Path("tokensignd.toml"),
           LifecycleConfig(h, state, "rotate_bytes = 1024\n"));
  DaemonProcess d =
      h.Start({"--config", h.Path("tokensignd.toml")}, SoftHsmEnv(state));
  ASSERT_GT(d.pid, 0);
  const std::string log = h.Path("audit.log");
  const std::string follow_out = h.Path("follow.out");
  std::string pid_text;
  ASSERT_EQ(Shell(kCtl + " audit tail --follow " + log + " > " + follow_out +
                      " 2>&1 & echo $!",
                  &pid_text),
            0);
  const pid_t follower = std::stoi(pid_text);
  struct Killer {
    pid_t pid;
    ~Killer() { kill(pid, SIGTERM); }
  } killer{follower};
  // Started once it has printed the file's first record.
  ASSERT_TRUE(Eventually([&] { return Contains(ReadAll(follow_out), " genesis "); }))
      << ReadAll(follow_out);

  // A subject that tries to start a forged record on a new line.
  auto ch = h.Insecure(d);
  std::vector<std::string> jtis;
  for (int i = 0; i < 20; ++i) {
    v1::SignTokenRequest req = ScenarioRequest();
    req.set_issuer("dev");
    if (i == 0)
      req.set_subject("alice\n2030-01-01T00:00:00.000Z access_token signed");
    grpc::ClientContext ctx;
    v1::SignTokenResponse resp;
    grpc::Status st =
        v1::TokenSigner::NewStub(ch)->SignToken(&ctx, req, &resp);
    if (st.ok()) jtis.push_back(resp.jti());
  }
  ASSERT_GE(jtis.size(), 19u);
  // The checkpoint thread rotates (the new file's first line is a
  // checkpoint), after the record that filled the file: a state to wait for,
  // not one to assert the moment the last reply arrives.
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(log + ".1"); }))
      << "the log must rotate";
  // Every signed token shows up exactly once in the follower's output, the
  // ones written after a rotation too.
  std::string followed;
  ASSERT_TRUE(Eventually([&] {
    followed = ReadAll(follow_out);
    return Contains(followed, "jti=" + jtis.back());
  })) << followed;
  for (const std::string& jti : jtis) {
    const size_t at = followed.find("jti=" + jti);
    EXPECT_NE(at, std::string::npos) << jti;
    EXPECT_EQ(followed.find("jti=" + jti, at + 1), std::string::npos) << jti;
  }
  EXPECT_FALSE(Contains(followed, "\n2030-01-01")) << followed;

  // Without --follow: the current file, one output line per record.
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
  std::string out;
  ASSERT_EQ(Ctl("audit tail " + log, &out), 0) << out;
  const std::string raw = ReadAll(log);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'),
            std::count(raw.begin(), raw.end(), '\n'))
      << out;
  EXPECT_TRUE(Contains(out, " checkpoint covers seq ")) << out;
  // Signed or refused, the record is one line with the subject escaped.
  EXPECT_TRUE(Contains(followed,
                       " caller=loopback issuer=dev "
                       "sub=\"alice\\n2030-01-01T00:00:00.000Z access_token "
                       "signed\" actors=[agent-7 <- planner]"))
      << followed;
  EXPECT_EQ(Ctl("audit tail " + h.Path("missing.log"), &out), 1) << out;
}

}  // namespace
}  // namespace tokensign::testing
