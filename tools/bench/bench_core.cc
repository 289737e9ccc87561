// Mode `core`: the token core (policy -> claims -> JWS via the HSM-backed
// provider key -> verify) on one fresh SoftHSM ES256 key, against the ceiling
// of the same work measured in the same run on the same key: threads doing raw
// C_Sign + one OpenSSL verify per signature and nothing else. Prints, at 1 and
// 2 threads:
//   core_vs_ceiling ES256 t=2 0.91          Mint (verify on) / (C_Sign +
//   verify) core_noverify_vs_raw ES256 t=2 0.93     Mint (verify off) / C_Sign
//   alone audit_fsync_vs_off ES256 t=2 0.95       Mint + durable audit record /
//   Mint alone
//   audit_ckpt_vs_plain ES256 t=2 1.00      the same with signed checkpoints
//   (HSM audit key, anchors in HSM data objects, defaults 1000 records / 10 s)
//   / without
// The audit cell keeps a window of records in flight per thread (AppendAsync),
// as the daemon does, so one fdatasync covers many records (the log's default
// group-commit linger, AuditLogOptions.commit_linger, applies).
//   tokensign-bench core [seconds_per_cell] [commit_linger_us]
#include <openssl/sha.h>
#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "crypto/algorithm.h"
#include "crypto/spki.h"
#include "signer/service/hsm_anchor_store.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/audit_log.h"
#include "signer/audit/checkpoint.h"
#include "signer/keyset/hsm_jws_signer.h"
#include "signer/token/jwk.h"
#include "signer/token/jws.h"
#include "signer/token/minter.h"
#include "tools/bench/bench_util.h"

namespace tokensign::bench {
namespace {

token::IssuerPolicy ScenarioPolicy() {
  token::IssuerPolicy policy;
  policy.iss = "https://issuer.example";
  policy.allowed_audiences = {"https://api.example", "https://tools.example"};
  policy.allowed_scopes = {"read", "write"};
  policy.any_actor = true;
  return policy;
}

// DOMAIN.md's scenario: alice via app, agent-7 acting for planner, read on
// api.example.
token::TokenRequest ScenarioRequest() {
  token::TokenRequest req;
  req.subject = "alice";
  req.client_id = "app";
  req.audience = {"https://api.example"};
  req.scope = {"read"};
  req.actor_chain = {{"agent-7", ""}, {"planner", ""}};
  req.ttl_seconds = 600;
  return req;
}

audit::AuditRecord RecordOf(const token::MintedToken& minted,
                            const token::TokenRequest& req) {
  audit::AuditRecord r;
  r.caller = "bench";
  r.issuer = "bench";
  r.kind = token::TokenKindName(req.kind);
  r.kid = minted.kid;
  r.jti = minted.jti;
  r.sub = req.subject;
  r.client_id = req.client_id;
  for (const auto& a : req.actor_chain) r.actor_chain.push_back({a.sub, a.iss});
  r.aud = req.audience;
  r.scope = req.scope;
  r.exp = minted.exp;
  // As the service does: hex SHA-256 of the token (a reused digest context
  // per thread; one-shot SHA256() re-fetches the algorithm on every call).
  r.token_sha256 = audit::Sha256Hex(minted.token);
  r.outcome = "signed";
  return r;
}

// Bounds the records one thread has in flight in the audit log.
class Window {
 public:
  explicit Window(int size) : size_(size) {}
  void Acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ < size_; });
    ++in_flight_;
  }
  void Release(bool ok) {
    std::lock_guard lock(mu_);
    --in_flight_;
    if (!ok) failed_ = true;
    cv_.notify_all();
  }
  bool Drain() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
    return !failed_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int size_;
  int in_flight_ = 0;
  bool failed_ = false;
};

void PrintCell(const char* name, const char* ceiling_name,
               const char* measured_name, int threads, const RatePair& rates,
               std::vector<std::string>& lines) {
  std::printf("%-22s t=%d  %-22s %9.0f/s  %-22s %9.0f/s  ratio %.2f\n", name,
              threads, ceiling_name, rates.ceiling, measured_name,
              rates.measured, rates.ratio());
  char line[128];
  std::snprintf(line, sizeof(line), "%s ES256 t=%d %.2f", name, threads,
                rates.ratio());
  lines.push_back(line);
}

}  // namespace

int RunCoreBench(int argc, char** argv) {
  double seconds = argc >= 2 ? std::atof(argv[1]) : 2.0;
  if (seconds <= 0) seconds = 2.0;
  auto env = OpenBenchHsm();
  if (!env.ok()) return Fail("core", "set-up", env.status());
  auto key = env->hsm->GenerateKey(crypto::KeyType::kEcP256, "bench-core");
  if (!key.ok()) return Fail("core", "GenerateKey", key.status());
  auto pub = env->hsm->PublicKey(key->id);
  if (!pub.ok()) return Fail("core", "PublicKey", pub.status());
  auto kid = token::JwkThumbprint(pub->get());
  if (!kid.ok()) return Fail("core", "thumbprint", kid.status());
  std::shared_ptr<EVP_PKEY> public_key(pub->release(), EVP_PKEY_free);
  // As the daemon's keyset does: one JwsSigner for this key, signing through
  // the hsm facade.
  auto signer = keyset::HsmJwsSigner::Create(
      env->hsm, key->id, crypto::SignAlgorithm::kES256, public_key);
  if (!signer.ok()) return Fail("core", "HsmJwsSigner", signer.status());
  token::SigningKey signing_key{*std::move(signer), public_key,
                                crypto::SignAlgorithm::kES256, *kid};
  token::IssuerPolicy policy = ScenarioPolicy();
  token::IssuerPolicy policy_noverify = policy;
  policy_noverify.verify_before_release = false;
  const token::TokenRequest req = ScenarioRequest();

  // The ceiling signs and verifies a signing input of a real token's size.
  auto sample = token::Mint(policy, signing_key, req, absl::Now());
  if (!sample.ok()) return Fail("core", "Mint", sample.status());
  const std::string signing_input =
      sample->token.substr(0, sample->token.rfind('.'));
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(signing_input.data()),
         signing_input.size(), reinterpret_cast<unsigned char*>(digest.data()));

  std::string audit_dir = env->token->dir() + "/audit";
  std::string mkdir = "mkdir -p '" + audit_dir + "'";
  if (std::system(mkdir.c_str()) != 0) return 1;
  audit::AuditLogOptions audit_options;
  audit_options.path = audit_dir + "/audit.log";
  audit_options.durability = audit::Durability::kFsync;
  if (argc >= 3)
    audit_options.commit_linger = absl::Microseconds(std::atoi(argv[2]));
  auto audit_log = audit::AuditLog::Open(audit_options);
  if (!audit_log.ok())
    return Fail("core", "AuditLog::Open", audit_log.status());
  // A second log with checkpoints signed by an HSM audit key (as the daemon's).
  auto audit_hsm_key =
      env->hsm->GenerateKey(crypto::KeyType::kEcP256, "tokensign-audit:bench");
  if (!audit_hsm_key.ok())
    return Fail("core", "GenerateKey(audit)", audit_hsm_key.status());
  auto audit_priv = env->provider->PrivateKey(audit_hsm_key->id);
  if (!audit_priv.ok()) return Fail("core", "PrivateKey(audit)", audit_priv.status());
  auto audit_pub = crypto::ParseSpki(audit_hsm_key->spki_der);
  if (!audit_pub.ok()) return Fail("core", "audit public key", audit_pub.status());
  auto checkpoint_key = audit::CheckpointKey::Create(
      *audit_priv, crypto::SignAlgorithm::kES256, audit_pub->get());
  if (!checkpoint_key.ok())
    return Fail("core", "CheckpointKey", checkpoint_key.status());
  // Anchors in the bench token's private data objects, as the daemon keeps them.
  service::HsmAnchorStore anchors(env->hsm);
  audit::AuditLogOptions ckpt_options = audit_options;
  ckpt_options.path = audit_dir + "/audit-checkpointed.log";
  ckpt_options.checkpoint_key = *checkpoint_key;
  ckpt_options.instance = "bench";
  ckpt_options.anchors = &anchors;
  auto ckpt_log = audit::AuditLog::Open(ckpt_options);
  if (!ckpt_log.ok()) return Fail("core", "AuditLog::Open(checkpoints)", ckpt_log.status());

  hsm::Hsm& hsm = *env->hsm;
  auto raw_op = [&](bool verify) {
    return [&, verify](int) {
      auto signer = std::make_shared<RawSigner>(std::move(
          *RawSigner::Create(hsm, key->id, crypto::SignAlgorithm::kES256)));
      return [&, signer, verify]() {
        std::string sig = signer->Sign(digest);
        if (sig.empty()) return false;
        if (!verify) return true;
        return token::VerifyRaw(signing_key.public_key.get(),
                                crypto::SignAlgorithm::kES256, signing_input, sig)
            .ok();
      };
    };
  };
  auto mint_op = [&](const token::IssuerPolicy& p) {
    return [&](int) {
      return
          [&]() { return token::Mint(p, signing_key, req, absl::Now()).ok(); };
    };
  };
  constexpr int kWindowPerThread = 128;
  auto audited_into = [&](audit::AuditLog* log) {
    return [&, log](int) {
      auto window = std::make_shared<Window>(kWindowPerThread);
      // The window drains when the operation (last copy) is destroyed at the
      // end of a round.
      std::shared_ptr<void> drain(nullptr,
                                  [window](void*) { window->Drain(); });
      return [&, log, window, drain]() {
        auto minted = token::Mint(policy, signing_key, req, absl::Now());
        if (!minted.ok()) return false;
        window->Acquire();
        log->AppendAsync(RecordOf(*minted, req), [window](absl::Status st) {
          window->Release(st.ok());
        });
        return true;
      };
    };
  };
  auto audited_op = audited_into(audit_log->get());
  auto checkpointed_op = audited_into(ckpt_log->get());

  std::printf(
      "tokensign-bench core: SoftHSM ES256, %u hw threads, pool %d sessions, "
      "%.1f s/cell"
      ", audit fsync window %d/thread, commit linger %.0f us\n",
      std::thread::hardware_concurrency(), hsm.pool_size(), seconds,
      kWindowPerThread,
      absl::ToDoubleMicroseconds(audit_options.commit_linger));
  std::vector<std::string> lines;
  int rc = 0;
  for (int threads : {1, 2}) {
    RatePair core =
        MeasurePair(threads, seconds, raw_op(true), mint_op(policy));
    PrintCell("core_vs_ceiling", "C_Sign+verify", "Mint", threads, core, lines);
    RatePair noverify =
        MeasurePair(threads, seconds, raw_op(false), mint_op(policy_noverify));
    PrintCell("core_noverify_vs_raw", "C_Sign", "Mint(verify off)", threads,
              noverify, lines);
    RatePair audited =
        MeasurePair(threads, seconds, mint_op(policy), audited_op);
    PrintCell("audit_fsync_vs_off", "Mint", "Mint+audit(fsync)", threads,
              audited, lines);
    RatePair checkpointed =
        MeasurePair(threads, seconds, audited_op, checkpointed_op);
    PrintCell("audit_ckpt_vs_plain", "Mint+audit(fsync)", "+checkpoints",
              threads, checkpointed, lines);
    if (core.failed || noverify.failed || audited.failed ||
        checkpointed.failed)
      rc = 1;
  }
  // CPU (user, sys) per token of the whole process at 2 threads: where the
  // audit's cost goes, independent of other load on the machine.
  auto cpu_per_op = [&](auto make_op, const char* name) {
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    double rate = MeasureOps(2, seconds / 2, make_op);
    getrusage(RUSAGE_SELF, &b);
    auto us = [](const timeval& t) { return t.tv_sec * 1e6 + t.tv_usec; };
    double ops = rate * seconds / 2;
    std::printf("cpu/token %-18s user %6.1f us  sys %6.1f us\n", name,
                (us(b.ru_utime) - us(a.ru_utime)) / ops,
                (us(b.ru_stime) - us(a.ru_stime)) / ops);
  };
  cpu_per_op(mint_op(policy), "Mint");
  cpu_per_op(audited_op, "Mint+audit(fsync)");
  audit::AuditLogStats stats = (*audit_log)->stats();
  std::printf(
      "audit: %lld records in %lld fdatasync commits (%.1f per commit)\n",
      static_cast<long long>(stats.records),
      static_cast<long long>(stats.commits),
      stats.commits > 0 ? static_cast<double>(stats.records) / stats.commits
                        : 0.0);
  audit::AuditLogStats ck = (*ckpt_log)->stats();
  // Per checkpoint: one C_Sign with the audit key and one anchor write
  // (Hsm::PutData: C_CreateObject of the new copy, then C_DestroyObject of
  // the old one by its remembered handle, read back first; a search only
  // when that handle is stale), none of them on an Append's path.
  const double per_k =
      ck.records > 0 ? 1000.0 * static_cast<double>(ck.checkpoints) /
                           static_cast<double>(ck.records)
                     : 0.0;
  std::printf(
      "audit checkpoints: %lld records, %lld checkpoints, %lld anchor writes, "
      "%lld errors: %.2f HSM signatures + %.2f anchor writes per 1000 "
      "records\n",
      static_cast<long long>(ck.records),
      static_cast<long long>(ck.checkpoints),
      static_cast<long long>(ck.anchor_writes),
      static_cast<long long>(ck.checkpoint_errors), per_k,
      ck.records > 0 ? 1000.0 * static_cast<double>(ck.anchor_writes) /
                           static_cast<double>(ck.records)
                     : 0.0);
  for (const std::string& line : lines) std::printf("%s\n", line.c_str());
  return rc;
}

}  // namespace tokensign::bench
