#include "signer/token/minter.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "signer/token/jws.h"

namespace tokensign::token {

namespace {

// Bumped in a forked child so no process reuses its parent's buffered bytes.
std::atomic<uint64_t> fork_generation{0};

void OnFork() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

// Per-thread buffer of CSPRNG output: one RAND_bytes call serves kJtis jtis
// (RAND_bytes has a fixed cost of a DRBG lookup, lock and reseed check per
// call, several times the cost of 16 bytes of output). Bytes are handed out
// once and wiped as they are taken.
class JtiRandom {
 public:
  static constexpr size_t kJtiBytes = 16;
  static constexpr size_t kJtis = 16;

  bool Take(unsigned char* out) {
    const uint64_t gen = fork_generation.load(std::memory_order_relaxed);
    if (next_ == kJtis || gen != generation_) {
      if (RAND_bytes(buf_, sizeof(buf_)) != 1) return false;
      next_ = 0;
      generation_ = gen;
    }
    unsigned char* src = buf_ + next_ * kJtiBytes;
    std::memcpy(out, src, kJtiBytes);
    OPENSSL_cleanse(src, kJtiBytes);
    ++next_;
    return true;
  }

  ~JtiRandom() { OPENSSL_cleanse(buf_, sizeof(buf_)); }

 private:
  unsigned char buf_[kJtiBytes * kJtis];
  size_t next_ = kJtis;  // empty
  uint64_t generation_ = 0;
};

bool TakeJtiBytes(unsigned char* out) {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, OnFork);
    return true;
  }();
  (void)registered;
  thread_local JtiRandom random;
  return random.Take(out);
}

}  // namespace

absl::StatusOr<std::string> NewJti() {
  unsigned char bytes[JtiRandom::kJtiBytes];
  if (!TakeJtiBytes(bytes)) return hsm::OpenSslError("RAND_bytes(jti)");
  return Base64UrlEncode(
      std::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

nlohmann::json BuildClaims(const IssuerPolicy& policy, const TokenRequest& req,
                           int64_t iat, int64_t exp, std::string_view jti) {
  nlohmann::json claims = nlohmann::json::object();
  claims["iss"] = policy.iss;
  claims["sub"] = req.subject;
  claims["client_id"] = req.client_id;
  if (req.audience.size() == 1) {
    claims["aud"] = req.audience.front();
  } else {
    claims["aud"] = req.audience;
  }
  if (!req.scope.empty()) claims["scope"] = absl::StrJoin(req.scope, " ");
  claims["iat"] = iat;
  claims["nbf"] = iat;
  claims["exp"] = exp;
  claims["jti"] = std::string(jti);
  // Innermost (oldest) actor first, wrapped outwards; actor_chain[0] ends
  // outermost.
  nlohmann::json act;
  for (auto it = req.actor_chain.rbegin(); it != req.actor_chain.rend(); ++it) {
    nlohmann::json level = nlohmann::json::object();
    level["sub"] = it->sub;
    if (!it->iss.empty()) level["iss"] = it->iss;
    if (!act.is_null()) level["act"] = std::move(act);
    act = std::move(level);
  }
  if (!act.is_null()) claims["act"] = std::move(act);
  if (req.cnf.has_value()) {
    claims["cnf"] = req.cnf->jkt.empty()
                        ? nlohmann::json{{"x5t#S256", req.cnf->x5t_s256}}
                        : nlohmann::json{{"jkt", req.cnf->jkt}};
  }
  if (req.kind == TokenKind::kTransactionToken) {
    if (!req.txn.empty()) claims["txn"] = req.txn;
    if (!req.req_wl.empty()) claims["req_wl"] = req.req_wl;
    if (req.rctx.is_object()) claims["rctx"] = req.rctx;
    if (req.tctx.is_object()) claims["tctx"] = req.tctx;
  }
  if (req.extra_claims.is_object()) {
    for (const auto& item : req.extra_claims.items())
      claims[item.key()] = item.value();
  }
  return claims;
}

absl::StatusOr<MintedToken> Mint(const IssuerPolicy& policy,
                                 const SigningKey& key, const TokenRequest& req,
                                 absl::Time now) {
  if (policy.iss.empty()) {
    return absl::FailedPreconditionError(
        "iss: issuer policy has no iss value; configure one");
  }
  if (key.private_key == nullptr || key.kid.empty()) {
    return absl::FailedPreconditionError(
        "key: signing key has no private key or no kid");
  }
  // Prepared contexts were checked against the key once, when made.
  const KeyOps* ops =
      key.ops != nullptr && key.ops->Serves(key.private_key.get(),
                                            key.public_key.get(), key.alg)
          ? key.ops.get()
          : nullptr;
  if (ops == nullptr) {
    if (absl::Status s = CheckKeyForAlgorithm(key.private_key.get(), key.alg);
        !s.ok()) {
      return absl::FailedPreconditionError(s.message());
    }
  }
  if (policy.verify_before_release && key.public_key == nullptr) {
    return absl::FailedPreconditionError(
        "key: no public key; verify-before-release needs one (or turn it off "
        "per issuer)");
  }
  if (absl::Status s = CheckRequest(policy, req); !s.ok()) return s;

  MintedToken out;
  out.iat = absl::ToUnixSeconds(now);
  out.exp = out.iat + EffectiveTtl(policy, req);
  absl::StatusOr<std::string> jti = NewJti();
  if (!jti.ok()) return jti.status();
  out.jti = *std::move(jti);
  out.kid = key.kid;
  out.claims = BuildClaims(policy, req, out.iat, out.exp, out.jti);
  std::string payload;
  try {
    payload = out.claims.dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("claims: cannot serialize: ", e.what()));
  }
  const char* typ = TokenKindTyp(req.kind);
  // SignCompact's steps, keeping the raw signature: verify-before-release
  // checks it over the exact signing input with the public key. (Parsing back
  // the header and payload just serialized, as VerifyCompact would, proves
  // nothing about the HSM's signature and cost ~4% of a token.)
  std::string token = Base64UrlEncode(JwsHeaderJson(key.alg, key.kid, typ));
  token.push_back('.');
  token += Base64UrlEncode(payload);
  absl::StatusOr<std::string> sig =
      ops != nullptr ? ops->Sign(token)
                     : SignRaw(key.private_key.get(), key.alg, token);
  if (!sig.ok()) return sig.status();
  if (policy.verify_before_release) {
    if (absl::Status s =
            ops != nullptr
                ? ops->Verify(token, *sig)
                : VerifyRaw(key.public_key.get(), key.alg, token, *sig);
        !s.ok()) {
      return absl::InternalError(absl::StrCat(
          "verify-before-release: fresh token does not verify, withheld: ",
          s.message()));
    }
  }
  token.push_back('.');
  token += Base64UrlEncode(*sig);
  out.token = std::move(token);
  return out;
}

}  // namespace tokensign::token
