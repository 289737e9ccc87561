// Unit tests for the tokensignd TOML config: defaults, full parse, and errors
// naming keys.
#include "crypto/algorithm.h"
#include "signer/service/config.h"

#include <gtest/gtest.h>

#include <string>

namespace tokensign::service {
namespace {

constexpr char kMinimal[] = R"(
[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "t"
pin_env = "PIN"

[server]
insecure = true

[issuers.dev]
iss = "https://issuer.example"
audiences = ["https://api.example"]
scopes = ["read"]
)";

std::string Err(const std::string& text) {
  auto cfg = ParseConfig(text);
  EXPECT_FALSE(cfg.ok());
  return cfg.ok() ? "" : std::string(cfg.status().message());
}

TEST(ConfigTest, MinimalGetsDefaults) {
  auto cfg = ParseConfig(kMinimal);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server.grpc_listen, "127.0.0.1:50051");
  EXPECT_EQ(cfg->server.max_queue, 1024);
  EXPECT_EQ(cfg->server.keyset_refresh_seconds, 15);
  EXPECT_EQ(cfg->audit.durability, audit::Durability::kFsync);
  ASSERT_EQ(cfg->issuers.count("dev"), 1u);
  const IssuerConfig& dev = cfg->issuers.at("dev");
  EXPECT_EQ(dev.algorithm, crypto::SignAlgorithm::kES256);
  EXPECT_EQ(dev.policy.iss, "https://issuer.example");
  EXPECT_EQ(dev.policy.max_chain_depth, 4);
  EXPECT_TRUE(dev.policy.verify_before_release);
}

TEST(ConfigTest, FullConfigParses) {
  auto cfg = ParseConfig(R"(
[hsm]
module = "/m.so"
token_serial = "abc"
pin_file = "/p"
pool_size = 4
[server]
grpc_listen = "0.0.0.0:443"
http_listen = ""
tls_cert = "c.pem"
tls_key = "k.pem"
client_ca = "ca.pem"
worker_threads = 2
max_queue = 10
jwks_max_age = 60
keyset_refresh_seconds = 5
[audit]
path = "/tmp/a.log"
durability = "none"
rotate_bytes = 0
[[callers]]
id = "spiffe://example/as"
roles = ["signer"]
issuers = ["corp"]
[[callers]]
id = "custodian-1"
roles = ["custodian", "auditor"]
issuers = ["corp"]
[issuers.corp]
iss = "https://corp.example"
algorithm = "EdDSA"
token_kinds = ["transaction_token"]
max_ttl_access = 100
default_ttl_access = 50
max_ttl_transaction = 30
audiences = ["https://a"]
scopes = ["x", "y"]
max_chain_depth = 2
require_cnf = true
max_extra_claims_bytes = 10
verify_before_release = false
[[issuers.corp.actors]]
sub = "agent-7"
iss = "https://agents"
clients = ["app"]
)");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->hsm.token_serial, "abc");
  EXPECT_EQ(cfg->hsm.pool_size, 4);
  EXPECT_EQ(cfg->server.keyset_refresh_seconds, 5);
  EXPECT_EQ(cfg->audit.durability, audit::Durability::kNone);
  ASSERT_EQ(cfg->callers.size(), 2u);
  EXPECT_EQ(cfg->callers[1].roles.size(), 2u);
  const IssuerConfig& corp = cfg->issuers.at("corp");
  EXPECT_EQ(corp.algorithm, crypto::SignAlgorithm::kEdDSA);
  ASSERT_EQ(corp.policy.allowed_kinds.size(), 1u);
  EXPECT_EQ(corp.policy.allowed_kinds[0], token::TokenKind::kTransactionToken);
  EXPECT_EQ(corp.policy.default_ttl_access, 50);
  EXPECT_EQ(corp.policy.default_ttl_transaction, 30);  // clamped to the max
  ASSERT_EQ(corp.policy.allowed_actors.size(), 1u);
  EXPECT_EQ(corp.policy.allowed_actors[0].clients[0], "app");
  EXPECT_FALSE(corp.policy.verify_before_release);
}

// Issue 12: audit checkpoints and the instance name their anchor is kept
// under.
TEST(ConfigTest, AuditCheckpointSettings) {
  auto cfg = ParseConfig(kMinimal);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->audit.instance, "");  // the host name at start
  EXPECT_EQ(cfg->audit.checkpoint_every_records, 1000);
  EXPECT_EQ(cfg->audit.checkpoint_every_seconds, 10);
  EXPECT_EQ(cfg->audit.checkpoint_min_interval_ms, 1000);
  EXPECT_EQ(cfg->audit.checkpoint_alg, crypto::SignAlgorithm::kES256);
  cfg = ParseConfig(std::string(kMinimal) +
                    "[audit]\ninstance = \"replica-a.eu\"\n"
                    "checkpoint_every_records = 50\n"
                    "checkpoint_every_seconds = 2\ncheckpoint_alg = \"EdDSA\"\n"
                    "checkpoint_min_interval_ms = 0\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->audit.instance, "replica-a.eu");
  EXPECT_EQ(cfg->audit.checkpoint_every_records, 50);
  EXPECT_EQ(cfg->audit.checkpoint_every_seconds, 2);
  EXPECT_EQ(cfg->audit.checkpoint_min_interval_ms, 0);
  EXPECT_EQ(cfg->audit.checkpoint_alg, crypto::SignAlgorithm::kEdDSA);
  EXPECT_EQ(Err(std::string(kMinimal) + "[audit]\ninstance = \"a:b\"\n"),
            "audit.instance: must be at most 128 characters of "
            "[A-Za-z0-9._-] (empty = the host name)");
  EXPECT_EQ(Err(std::string(kMinimal) + "[audit]\ncheckpoint_alg = \"RS256\"\n"),
            "audit.checkpoint_alg: must be ES256, ES384 or EdDSA, got \"RS256\"");
  EXPECT_EQ(
      Err(std::string(kMinimal) + "[audit]\ncheckpoint_every_records = 0\n"),
      "audit.checkpoint_every_records: must be 1..100000000, got 0");
  EXPECT_EQ(
      Err(std::string(kMinimal) + "[audit]\ncheckpoint_min_interval_ms = -1\n"),
      "audit.checkpoint_min_interval_ms: must be 0..86400000, got -1");
}

TEST(ConfigTest, OutOfRangeNamesKeyPath) {
  std::string text = std::string(kMinimal) + "max_chain_depth = 40\n";
  EXPECT_EQ(Err(text), "issuers.dev.max_chain_depth: must be 0..16, got 40");
}

TEST(ConfigTest, UnknownKeysAreErrors) {
  EXPECT_EQ(Err(std::string(kMinimal) + "colour = \"red\"\n"),
            "issuers.dev.colour: unknown key");
  EXPECT_EQ(Err(std::string(kMinimal) + "[extra]\n"), "extra: unknown key");
  std::string bad_server = kMinimal;
  bad_server.replace(bad_server.find("insecure"), 0, "tls = 1\n");
  EXPECT_EQ(Err(bad_server), "server.tls: unknown key");
}

// Issue 15: status lists, require_status, [issuers.X.exchange] and the
// status-publisher role.
TEST(ConfigTest, StatusListsExchangeAndStatusPublisher) {
  const std::string second = R"(
[issuers.other]
iss = "https://other.example"
audiences = ["https://api.example", "https://tools.example", "trust.example"]
scopes = ["read"]
require_status = true
[[issuers.other.status_lists]]
uri = "https://other.example/status/1"
size = 1000
bits = 2
[issuers.other.exchange]
trusted_parent_issuers = ["dev"]
trust_domain = "trust.example"
allow_cnf_rebind = true
[issuers.other.exchange.audience_map]
"https://api.example" = ["https://tools.example"]
[[callers]]
id = "publisher"
roles = ["status-publisher"]
issuers = ["other"]
)";
  auto cfg = ParseConfig(std::string(kMinimal) + second);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const token::IssuerPolicy& p = cfg->issuers.at("other").policy;
  EXPECT_TRUE(p.require_status);
  ASSERT_EQ(p.status_lists.size(), 1u);
  EXPECT_EQ(p.status_lists[0].uri, "https://other.example/status/1");
  EXPECT_EQ(p.status_lists[0].size, 1000);
  EXPECT_EQ(p.status_lists[0].bits, 2);
  EXPECT_EQ(p.exchange.trusted_parent_issuers,
            std::vector<std::string>{"dev"});
  EXPECT_EQ(p.exchange.trust_domain, "trust.example");
  EXPECT_TRUE(p.exchange.allow_cnf_rebind);
  EXPECT_EQ(p.exchange.audience_map.at("https://api.example"),
            std::vector<std::string>{"https://tools.example"});
  EXPECT_EQ(cfg->callers[0].roles, std::vector<Role>{Role::kStatusPublisher});

  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = std::string(kMinimal) + second;
    text.replace(text.find(from), from.size(), to);
    return Err(text);
  };
  EXPECT_EQ(with("bits = 2", "bits = 3"),
            "issuers.other.status_lists[0].bits: must be 1, 2, 4 or 8");
  EXPECT_EQ(with("size = 1000\n", ""),
            "issuers.other.status_lists[0].size: required");
  EXPECT_EQ(with("trusted_parent_issuers = [\"dev\"]",
                 "trusted_parent_issuers = [\"nobody\"]"),
            "issuers.other.exchange.trusted_parent_issuers[0]: unknown issuer "
            "\"nobody\"");
  EXPECT_EQ(with("trust_domain = \"trust.example\"",
                 "trust_domain = \"elsewhere.example\""),
            "issuers.other.exchange.trust_domain: \"elsewhere.example\" must "
            "be one of the issuer's audiences (it is the aud of its "
            "transaction tokens)");
  EXPECT_EQ(with("[\"https://tools.example\"]\n[[callers]]",
                 "[\"https://x.example\"]\n[[callers]]"),
            "issuers.other.exchange.audience_map.https://api.example: "
            "\"https://x.example\" is not one of the issuer's audiences");
  EXPECT_EQ(with("allow_cnf_rebind", "rebind"),
            "issuers.other.exchange.rebind: unknown key");
}

TEST(ConfigTest, WrongTypesAndValues) {
  EXPECT_EQ(Err(std::string(kMinimal) + "any_actor = \"yes\"\n"),
            "issuers.dev.any_actor: must be true or false");
  EXPECT_EQ(Err(std::string(kMinimal) + "algorithm = \"HS256\"\n"),
            "issuers.dev.algorithm: must be ES256, ES384, EdDSA, PS256 or "
            "RS256, got \"HS256\"");
  std::string mixed = kMinimal;
  mixed.replace(mixed.find("scopes = [\"read\"]"), 17, "scopes = [\"a\", 2]");
  EXPECT_EQ(Err(mixed), "issuers.dev.scopes[1]: must be a string");
  EXPECT_EQ(
      Err(std::string(kMinimal) +
          "[[callers]]\nid = \"x\"\nroles = [\"root\"]\n"),
      "callers[0].roles: must hold signer / custodian / auditor / "
      "status-publisher, got \"root\"");
  EXPECT_EQ(Err(std::string(kMinimal) +
                "[[callers]]\nid = \"x\"\nissuers = [\"nope\"]\n"),
            "callers[0].issuers: unknown issuer \"nope\"");
  EXPECT_EQ(Err(std::string(kMinimal) +
                "[[callers]]\nid = \"x\"\nroles = [\"custodian\"]\n"),
            "callers[0].issuers: required with roles: the issuers this "
            "caller's roles apply to (\"*\" = all)");
  EXPECT_EQ(Err(std::string(kMinimal) + "[audit]\ndurability = \"maybe\"\n"),
            "audit.durability: must be \"fsync\" or \"none\", got \"maybe\"");
}

TEST(ConfigCallerIdTest, IdsAreUrisWithColonOrCommonNamesWithout) {
  auto caller = [](const std::string& id) {
    return std::string(kMinimal) + "[[callers]]\nid = \"ok-1\"\n[[callers]]\nid = \"" +
           id + "\"\n[[callers]]\nid = \"ok-2\"\n";
  };
  for (const char* good : {"spiffe://example.org/authz-server", "urn:uuid:1234",
                           "custodian-1", "key custodian", "loopback",
                           "k\u00e9y-cust\u00f6dian"}) {
    auto cfg = ParseConfig(caller(good));
    EXPECT_TRUE(cfg.ok()) << good << ": " << cfg.status();
  }
  const std::string uri_rule =
      "callers[1].id: contains ':' so it must be a URI (scheme \":\" rest, only URI "
      "characters, e.g. spiffe://example.org/svc), matched only against a client "
      "certificate's URI SAN; got ";
  const std::string cn_rule =
      "callers[1].id: has no ':' so it must be a common name (1-64 characters, no "
      "control characters, no leading or trailing space), matched only against a "
      "client certificate's CN; got ";
  EXPECT_EQ(Err(caller(":custodian")), uri_rule + "\":custodian\"");
  EXPECT_EQ(Err(caller("1spiffe://x")), uri_rule + "\"1spiffe://x\"");
  EXPECT_EQ(Err(caller("spiffe:")), uri_rule + "\"spiffe:\"");
  EXPECT_EQ(Err(caller("spiffe://x/a b")), uri_rule + "\"spiffe://x/a b\"");
  EXPECT_EQ(Err(caller("CN=custodian-1, O=corp: ops")).substr(0, uri_rule.size()),
            uri_rule);
  EXPECT_EQ(Err(caller(std::string(65, 'c'))),
            cn_rule + "\"" + std::string(65, 'c') + "\"");
  EXPECT_EQ(Err(caller("custodian\\u0007")), cn_rule + "\"custodian\\x07\"");
  EXPECT_EQ(Err(caller("custodian\\u0085")).substr(0, cn_rule.size()), cn_rule);
  EXPECT_EQ(Err(caller(" custodian-1")), cn_rule + "\" custodian-1\"");
  EXPECT_EQ(CallerIdProblem(std::string(64, 'c')), "");
  EXPECT_NE(CallerIdProblem(""), "");
}

TEST(ConfigTest, RequiredKeys) {
  EXPECT_EQ(Err("[server]\ninsecure = true\n").substr(0, 4), "hsm:");
  std::string no_pin = kMinimal;
  no_pin.erase(no_pin.find("pin_env"),
               std::string("pin_env = \"PIN\"\n").size());
  EXPECT_EQ(Err(no_pin),
            "hsm.pin_env: exactly one of pin_env / pin_file is required");
  std::string tls = kMinimal;
  tls.erase(tls.find("insecure = true"), std::string("insecure = true").size());
  EXPECT_EQ(Err(tls), "server.tls_cert: required unless insecure (loopback)");
}

TEST(ConfigTest, InsecureOnlyOnLoopback) {
  std::string text = kMinimal;
  text.replace(text.find("insecure"), 0, "grpc_listen = \"0.0.0.0:50051\"\n");
  EXPECT_EQ(Err(text),
            "server.insecure: plaintext is only allowed on a loopback "
            "grpc_listen, got "
            "\"0.0.0.0:50051\"");
}

TEST(ConfigTest, SyntaxErrorNamesLine) {
  std::string msg = Err("[hsm\nmodule = 1\n");
  EXPECT_NE(msg.find("config:1:"), std::string::npos) << msg;
}

TEST(ConfigTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:1"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:1"));
  EXPECT_TRUE(IsLoopbackAddress("unix:/tmp/s"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:1"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:1"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:1"));
  EXPECT_FALSE(IsLoopbackAddress("127.example.com:1"));  // a name, not an IP literal
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:1"));
}

TEST(ConfigTest, DevConfigMatchesIssue) {
  Config cfg = DevConfig("/tmp/x", "/m.so");
  EXPECT_TRUE(cfg.dev);
  EXPECT_TRUE(cfg.server.insecure);
  const token::IssuerPolicy& p = cfg.issuers.at("dev").policy;
  EXPECT_EQ(p.iss, "https://issuer.example");
  EXPECT_EQ(p.allowed_audiences.size(), 2u);
  EXPECT_TRUE(p.any_actor);
  EXPECT_EQ(p.max_ttl_access, 3600);
  EXPECT_EQ(p.max_ttl_transaction, 300);
  EXPECT_EQ(cfg.hsm.pin_file, "/tmp/x/pin");
}

}  // namespace
}  // namespace tokensign::service

namespace tokensign::service {
namespace {

TEST(ConfigExtraClaimsTest, AllowlistParsesAndReservedNamesAreRefused) {
  auto cfg = ParseConfig(std::string(kMinimal) + "extra_claims = [\"tenant\", \"https://x.example/c\"]\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->issuers.at("dev").policy.allowed_extra_claims,
            (std::vector<std::string>{"tenant", "https://x.example/c"}));
  // A registered or service-set claim can never be allowed as an extra claim, in any case.
  EXPECT_EQ(Err(std::string(kMinimal) + "extra_claims = [\"tenant\", \"Scope\"]\n"),
            "issuers.dev.extra_claims[1]: \"Scope\" is a registered or service-set claim "
            "and can never be an extra claim");
  EXPECT_EQ(Err(std::string(kMinimal) + "extra_claims = [\"status\"]\n"),
            "issuers.dev.extra_claims[0]: \"status\" is a registered or service-set claim "
            "and can never be an extra claim");
}

// Issue 11 item 4: extra claims fail closed. No list or [] = none; any
// non-reserved name only with the explicit ["*"].
TEST(ConfigExtraClaimsTest, AbsentOrEmptyMeansNoneAndStarIsTheOptIn) {
  auto none = ParseConfig(kMinimal);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->issuers.at("dev").policy.allowed_extra_claims.empty());
  EXPECT_FALSE(none->issuers.at("dev").policy.any_extra_claims);
  auto empty = ParseConfig(std::string(kMinimal) + "extra_claims = []\n");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_FALSE(empty->issuers.at("dev").policy.any_extra_claims);
  auto any = ParseConfig(std::string(kMinimal) + "extra_claims = [\"*\"]\n");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_TRUE(any->issuers.at("dev").policy.any_extra_claims);
  EXPECT_TRUE(any->issuers.at("dev").policy.allowed_extra_claims.empty());
  EXPECT_EQ(Err(std::string(kMinimal) + "extra_claims = [\"tenant\", \"*\"]\n"),
            "issuers.dev.extra_claims[1]: \"*\" (any non-reserved name) must be the only "
            "entry; list names or give [\"*\"]");
  EXPECT_EQ(Err(std::string(kMinimal) + "extra_claims = [\"my claim\"]\n"),
            "issuers.dev.extra_claims[0]: \"my claim\" is not a claim name: 1..128 bytes "
            "of printable ASCII without \" or \\");
  // Dev mode lists its one extra claim explicitly (the README's "tenant").
  Config dev = DevConfig("/tmp/x", "unused.so");
  EXPECT_EQ(dev.issuers.at("dev").policy.allowed_extra_claims,
            std::vector<std::string>{"tenant"});
  EXPECT_FALSE(dev.issuers.at("dev").policy.any_extra_claims);
}

}  // namespace
}  // namespace tokensign::service

namespace tokensign::service {
namespace {

TEST(ConfigReloadTest, RestartOnlySectionsKeepTheRunningValues) {
  auto running = ParseConfig(std::string(kMinimal));
  ASSERT_TRUE(running.ok()) << running.status();
  running->server.insecure = false;  // as if started with mTLS
  running->server.tls_cert = "c.pem";
  auto next = ParseConfig(std::string(kMinimal) + "max_chain_depth = 2\n");
  ASSERT_TRUE(next.ok()) << next.status();
  next->hsm.pin_file = "/other/pin";
  std::vector<std::string> ignored = KeepRestartOnlySections(*running, &*next);
  // The listener mode and TLS files of the running daemon win; policy changes apply.
  EXPECT_FALSE(next->server.insecure);
  EXPECT_EQ(next->server.tls_cert, "c.pem");
  EXPECT_EQ(next->hsm.pin_file, "");
  EXPECT_EQ(next->issuers.at("dev").policy.max_chain_depth, 2);
  EXPECT_EQ(ignored, (std::vector<std::string>{"server.tls_cert", "server.insecure",
                                               "hsm.pin_file"}));
}

}  // namespace
}  // namespace tokensign::service
