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
#include "crypto/openssl_error.h"
#include "crypto/str_cat.h"
#include "signer/token/json_text.h"
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

absl::Status CheckSigningKey(const SigningKey& key) {
  if (key.signer == nullptr || key.kid.empty()) {
    return absl::FailedPreconditionError(
        "key: signing key has no signer or no kid");
  }
  if (key.signer->alg() != key.alg) {
    return absl::FailedPreconditionError(absl::StrCat(
        "key: its signer signs ",
        std::string(crypto::SignAlgorithmName(key.signer->alg())),
        "; it does not fit alg ", std::string(crypto::SignAlgorithmName(key.alg))));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NewJti() {
  unsigned char bytes[JtiRandom::kJtiBytes];
  if (!TakeJtiBytes(bytes)) return crypto::OpenSslError("RAND_bytes(jti)");
  return Base64UrlEncode(
      std::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

namespace {

// Appends ,"name":<value> where value is any JSON (rctx, tctx, extra claims).
absl::Status AppendJsonMember(std::string_view name, const nlohmann::json& value,
                              std::string* out) {
  out->push_back(',');
  if (absl::Status s = AppendJsonString(name, out); !s.ok()) return s;
  out->push_back(':');
  try {
    out->append(value.dump());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "claims.", std::string(name).substr(0, 64), ": cannot serialize: ",
        e.what()));
  }
  return absl::OkStatus();
}

// Appends ,"name":"value".
absl::Status AppendStringMember(std::string_view name, std::string_view value,
                                std::string* out) {
  absl::StrAppend(out, ",\"", AbslView(name),
                  "\":");
  return AppendJsonString(value, out);
}

}  // namespace

absl::StatusOr<std::string> ClaimsJson(const IssuerPolicy& policy,
                                       const TokenRequest& req, int64_t iat,
                                       int64_t exp, std::string_view jti) {
  std::string out;
  out.reserve(384);
  out.append("{\"iss\":");
  absl::Status st = AppendJsonString(policy.iss, &out);
  if (st.ok()) st = AppendStringMember("sub", req.subject, &out);
  if (st.ok()) st = AppendStringMember("client_id", req.client_id, &out);
  if (st.ok() && req.audience.size() == 1) {
    st = AppendStringMember("aud", req.audience.front(), &out);
  } else if (st.ok()) {
    out.append(",\"aud\":[");
    for (size_t i = 0; i < req.audience.size() && st.ok(); ++i) {
      if (i > 0) out.push_back(',');
      st = AppendJsonString(req.audience[i], &out);
    }
    out.push_back(']');
  }
  if (st.ok() && !req.scope.empty()) {
    st = AppendStringMember("scope", absl::StrJoin(req.scope, " "), &out);
  }
  if (!st.ok()) return st;
  absl::StrAppend(&out, ",\"iat\":", iat, ",\"nbf\":", iat, ",\"exp\":", exp);
  if (st = AppendStringMember("jti", jti, &out); !st.ok()) return st;
  // actor_chain[0] is the current actor: the outermost act; each older actor
  // nests one level deeper.
  if (!req.actor_chain.empty()) {
    out.append(",\"act\":");
    for (size_t i = 0; i < req.actor_chain.size(); ++i) {
      const Actor& a = req.actor_chain[i];
      if (i > 0) out.append(",\"act\":");
      out.append("{\"sub\":");
      if (st = AppendJsonString(a.sub, &out); !st.ok()) return st;
      if (!a.iss.empty()) {
        if (st = AppendStringMember("iss", a.iss, &out); !st.ok()) return st;
      }
    }
    out.append(req.actor_chain.size(), '}');
  }
  if (req.may_act.has_value()) {
    out.append(",\"may_act\":{\"sub\":");
    if (st = AppendJsonString(req.may_act->sub, &out); !st.ok()) return st;
    if (!req.may_act->iss.empty()) {
      if (st = AppendStringMember("iss", req.may_act->iss, &out); !st.ok())
        return st;
    }
    out.push_back('}');
  }
  if (req.cnf.has_value()) {
    out.append(",\"cnf\":{");
    st = req.cnf->jkt.empty() ? AppendJsonString("x5t#S256", &out)
                              : AppendJsonString("jkt", &out);
    out.push_back(':');
    if (st.ok()) {
      st = AppendJsonString(
          req.cnf->jkt.empty() ? req.cnf->x5t_s256 : req.cnf->jkt, &out);
    }
    if (!st.ok()) return st;
    out.push_back('}');
  }
  if (req.status.has_value()) {
    absl::StrAppend(&out, ",\"status\":{\"status_list\":{\"idx\":",
                    req.status->idx);
    if (st = AppendStringMember("uri", req.status->uri, &out); !st.ok())
      return st;
    out.append("}}");
  }
  if (req.kind == TokenKind::kTransactionToken) {
    if (!req.txn.empty()) st = AppendStringMember("txn", req.txn, &out);
    if (st.ok() && !req.req_wl.empty())
      st = AppendStringMember("req_wl", req.req_wl, &out);
    if (st.ok() && req.rctx.is_object())
      st = AppendJsonMember("rctx", req.rctx, &out);
    if (st.ok() && req.tctx.is_object())
      st = AppendJsonMember("tctx", req.tctx, &out);
    if (!st.ok()) return st;
  }
  if (req.extra_claims.is_object()) {
    for (const auto& item : req.extra_claims.items()) {
      // CheckRequest refuses these; a caller that skipped it must not get a
      // payload with two values for one claim.
      if (IsReservedClaim(item.key())) {
        return absl::InvalidArgumentError(
            absl::StrCat(ExtraClaimField(item.key()),
                         ": reserved claim; extra claims may not overwrite it"));
      }
      if (st = AppendJsonMember(item.key(), item.value(), &out); !st.ok())
        return st;
    }
  }
  out.push_back('}');
  return out;
}

absl::StatusOr<MintedToken> Mint(const IssuerPolicy& policy,
                                 const SigningKey& key,
                                 const TokenRequest& request, absl::Time now) {
  if (policy.iss.empty()) {
    return absl::FailedPreconditionError(
        "iss: issuer policy has no iss value; configure one");
  }
  if (absl::Status s = CheckSigningKey(key); !s.ok()) return s;
  if (policy.verify_before_release && key.public_key == nullptr) {
    return absl::FailedPreconditionError(
        "key: no public key; verify-before-release needs one (or turn it off "
        "per issuer)");
  }
  if (absl::Status s = CheckRequest(policy, request); !s.ok()) return s;
  // A transaction token always has a txn (draft-ietf-oauth-transaction-
  // tokens-10): a fresh one, like a jti, when the caller gave none.
  const TokenRequest* with_txn = &request;
  TokenRequest generated;
  if (request.kind == TokenKind::kTransactionToken && request.txn.empty()) {
    generated = request;
    absl::StatusOr<std::string> txn = NewJti();
    if (!txn.ok()) return txn.status();
    generated.txn = *std::move(txn);
    with_txn = &generated;
  }
  const TokenRequest& req = *with_txn;

  MintedToken out;
  out.txn = req.txn;
  out.iat = absl::ToUnixSeconds(now);
  out.exp = out.iat + EffectiveTtl(policy, req);
  absl::StatusOr<std::string> jti = NewJti();
  if (!jti.ok()) return jti.status();
  out.jti = *std::move(jti);
  out.kid = key.kid;
  absl::StatusOr<std::string> payload =
      ClaimsJson(policy, req, out.iat, out.exp, out.jti);
  if (!payload.ok()) return payload.status();
  const char* typ = TokenKindTyp(req.kind);
  // SignCompact's steps, keeping the raw signature: verify-before-release
  // checks it over the exact signing input with the public key. (Parsing back
  // the header and payload just serialized, as VerifyCompact would, proves
  // nothing about the HSM's signature and cost ~4% of a token.)
  std::string token = Base64UrlEncode(JwsHeaderJson(key.alg, key.kid, typ));
  token.push_back('.');
  token += Base64UrlEncode(*payload);
  absl::StatusOr<std::string> sig = key.signer->Sign(token);
  if (!sig.ok()) return sig.status();
  if (policy.verify_before_release) {
    if (absl::Status s = key.signer->Verify(token, *sig); !s.ok()) {
      return absl::InternalError(absl::StrCat(
          "verify-before-release: fresh token does not verify, withheld: ",
          s.message()));
    }
  }
  token.push_back('.');
  token += Base64UrlEncode(*sig);
  out.token = std::move(token);
  out.payload = *std::move(payload);
  return out;
}

}  // namespace tokensign::token
