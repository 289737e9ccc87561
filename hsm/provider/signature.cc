// Signature operations on HSM keys: ECDSA (SHA-256/384, DER output), RSA PKCS#1 v1.5 and
// PSS (SHA-256, MGF1-SHA-256, salt = digest length), Ed25519 one-shot.
//
// The message digest is computed here with the default provider's SHA-2 (fetched once);
// the HSM signs the digest (Hsm::SignDigest). Ed25519 hands the message to Hsm::Sign.
// Verification is not implemented: OpenSSL's default provider verifies with the
// exported public key.
//
// Thread-safety: a SigCtx belongs to one EVP_PKEY_CTX (one thread at a time); the key it
// points to is shared and immutable, so many contexts may sign with one key at once.
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include <atomic>
#include <cctype>
#include <cstring>

#include "crypto/algorithm.h"
#include "crypto/ecdsa_encoding.h"
#include "crypto/str_cat.h"
#include "hsm/provider/provider_internal.h"

namespace tokensign::hsm::provider {
namespace {

enum class Digest { kNone, kSha256, kSha384 };
enum class Family { kEc, kRsa, kEd25519 };

size_t DigestLen(Digest d) { return d == Digest::kSha384 ? 48 : 32; }
const char* DigestName(Digest d) {
  return d == Digest::kSha256 ? "SHA2-256" : d == Digest::kSha384 ? "SHA2-384" : "";
}

absl::StatusOr<Digest> ParseDigest(std::string_view name) {
  std::string n(name);
  for (char& ch : n) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (n == "SHA256" || n == "SHA2-256" || n == "SHA-256" || n == "2.16.840.1.101.3.4.2.1") {
    return Digest::kSha256;
  }
  if (n == "SHA384" || n == "SHA2-384" || n == "SHA-384" || n == "2.16.840.1.101.3.4.2.2") {
    return Digest::kSha384;
  }
  return absl::InvalidArgumentError(
      Cat("digest '", name, "' is not supported by HSM keys (use SHA256 or SHA384)"));
}

// The default provider's SHA-2, fetched once per process (fetched again only until a
// fetch succeeds, e.g. while the default provider is not loaded yet).
const EVP_MD* Md(Digest d) {
  static std::atomic<EVP_MD*> cache[2];
  std::atomic<EVP_MD*>& slot = cache[d == Digest::kSha384 ? 1 : 0];
  EVP_MD* md = slot.load(std::memory_order_acquire);
  if (md != nullptr) return md;
  md = EVP_MD_fetch(nullptr, d == Digest::kSha384 ? "SHA2-384" : "SHA2-256", nullptr);
  if (md == nullptr) return nullptr;
  EVP_MD* expected = nullptr;
  if (!slot.compare_exchange_strong(expected, md)) {
    EVP_MD_free(md);
    return expected;
  }
  return md;
}

struct SigCtx {
  ProviderCtx* prov = nullptr;
  Family family = Family::kEc;
  std::shared_ptr<const ProvKey> key;
  Digest digest = Digest::kNone;
  crypto::UniqueMdCtx mdctx;    // digest-sign streaming state
  std::string buffer;           // Ed25519 one-shot message
  int pad = RSA_PKCS1_PADDING;
  int saltlen = RSA_PSS_SALTLEN_DIGEST;
  Digest mgf1 = Digest::kNone;  // kNone = same as digest
};

int Fail(const absl::Status& s) { return RaiseStatus(s); }
int Fail(std::string_view msg) {
  return RaiseStatus(absl::InvalidArgumentError(AbslView(msg)));
}

template <Family F>
void* NewCtx(void* provctx, const char* /*propq*/) {
  auto* c = new SigCtx;
  c->prov = static_cast<ProviderCtx*>(provctx);
  c->family = F;
  return c;
}

void FreeCtx(void* ctx) { delete static_cast<SigCtx*>(ctx); }

void* DupCtx(void* ctx) {
  const auto* src = static_cast<SigCtx*>(ctx);
  auto* c = new SigCtx;
  c->prov = src->prov;
  c->family = src->family;
  c->key = src->key;
  c->digest = src->digest;
  c->buffer = src->buffer;
  c->pad = src->pad;
  c->saltlen = src->saltlen;
  c->mgf1 = src->mgf1;
  if (src->mdctx != nullptr) {
    c->mdctx.reset(EVP_MD_CTX_new());
    if (c->mdctx == nullptr || !EVP_MD_CTX_copy_ex(c->mdctx.get(), src->mdctx.get())) {
      delete c;
      return nullptr;
    }
  }
  return c;
}

int SetCtxParams(void* ctx, const OSSL_PARAM params[]);

int InitKey(SigCtx* c, void* keydata, const OSSL_PARAM params[]) {
  // keydata NULL = re-initialisation with the key already set.
  if (keydata != nullptr) c->key = SharedKeyOf(keydata);
  if (c->key == nullptr) return Fail("signature init: key object holds no HSM key");
  c->buffer.clear();
  return SetCtxParams(c, params);
}

int SignInit(void* ctx, void* keydata, const OSSL_PARAM params[]) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (c->family == Family::kEd25519) {
    return Fail("Ed25519: use EVP_DigestSign (one-shot) with no digest");
  }
  return InitKey(c, keydata, params);
}

// Checks the request against what the key and the HSM support; returns the algorithm
// for Hsm::SignDigest.
absl::StatusOr<crypto::SignAlgorithm> Plan(const SigCtx& c, size_t digest_len) {
  const KeyInfo& k = c.key->info;
  if (c.family == Family::kEc) {
    // The HSM layer pairs P-256 with SHA-256 (ES256) and P-384 with SHA-384 (ES384).
    bool p384 = k.type == crypto::KeyType::kEcP384;
    if (digest_len != (p384 ? 48u : 32u)) {
      return absl::InvalidArgumentError(Cat(
          "ECDSA: ", p384 ? "P-384 keys sign SHA-384" : "P-256 keys sign SHA-256",
          " digests only (got a ", digest_len, "-byte digest)"));
    }
    return p384 ? crypto::SignAlgorithm::kES384 : crypto::SignAlgorithm::kES256;
  }
  // RSA: the HSM layer signs SHA-256 digests only.
  if (c.digest != Digest::kNone && c.digest != Digest::kSha256) {
    return absl::InvalidArgumentError("RSA: only SHA-256 digests are supported by HSM keys");
  }
  if (digest_len != 32) {
    return absl::InvalidArgumentError(
        Cat("RSA: input length ", digest_len, " is not a SHA-256 digest (32)"));
  }
  if (c.pad == RSA_PKCS1_PADDING) return crypto::SignAlgorithm::kRS256;
  if (c.pad == RSA_PKCS1_PSS_PADDING) {
    if (c.saltlen != RSA_PSS_SALTLEN_DIGEST && c.saltlen != 32) {
      return absl::InvalidArgumentError(Cat(
          "RSA-PSS: salt length ", c.saltlen, " refused; only digest length (32) is supported"));
    }
    if (c.mgf1 != Digest::kNone && c.mgf1 != Digest::kSha256) {
      return absl::InvalidArgumentError("RSA-PSS: MGF1 digest must be SHA-256");
    }
    return crypto::SignAlgorithm::kPS256;
  }
  return absl::InvalidArgumentError(
      Cat("RSA: padding mode ", c.pad, " refused (PKCS#1 v1.5 or PSS only)"));
}

size_t MaxSize(const SigCtx& c) { return static_cast<size_t>(EVP_PKEY_get_size(c.key->pub.get())); }

// raw r||s -> DER ECDSA-Sig-Value into `sig` (no BIGNUM work on the signing
// path).
int EmitEcdsaDer(const std::string& raw, unsigned char* sig, size_t* siglen,
                 size_t sigsize) {
  absl::StatusOr<std::string> der = crypto::EcdsaRawToDer(raw);
  if (!der.ok()) return Fail(der.status());
  if (der->size() > sigsize) {
    return Fail(Cat("signature: buffer of ", sigsize, " bytes < ", der->size()));
  }
  std::memcpy(sig, der->data(), der->size());
  *siglen = der->size();
  return 1;
}

int Emit(const std::string& sig, unsigned char* out, size_t* outlen, size_t outsize) {
  if (sig.size() > outsize) {
    return Fail(Cat("signature: buffer of ", outsize, " bytes < ", sig.size()));
  }
  std::memcpy(out, sig.data(), sig.size());
  *outlen = sig.size();
  return 1;
}

int SignDigestNow(SigCtx* c, const unsigned char* dgst, size_t dlen, unsigned char* sig,
                  size_t* siglen, size_t sigsize) {
  absl::StatusOr<crypto::SignAlgorithm> alg = Plan(*c, dlen);
  if (!alg.ok()) return Fail(alg.status());
  absl::StatusOr<std::string> raw = c->key->hsm->SignDigest(
      c->key->info.id, *alg, std::string_view(reinterpret_cast<const char*>(dgst), dlen));
  if (!raw.ok()) return Fail(raw.status());
  if (c->family == Family::kEc) return EmitEcdsaDer(*raw, sig, siglen, sigsize);
  return Emit(*raw, sig, siglen, sigsize);
}

int Sign(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize,
         const unsigned char* tbs, size_t tbslen) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (c->key == nullptr) return Fail("sign: not initialised");
  if (sig == nullptr) {
    *siglen = MaxSize(*c);
    return 1;
  }
  if (c->digest != Digest::kNone && tbslen != DigestLen(c->digest)) {
    return Fail(Cat("sign: input of ", tbslen, " bytes is not a ",
                             DigestName(c->digest), " digest"));
  }
  return SignDigestNow(c, tbs, tbslen, sig, siglen, sigsize);
}

int DigestSignInit(void* ctx, const char* mdname, void* keydata, const OSSL_PARAM params[]) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (c->family == Family::kEd25519) {
    if (mdname != nullptr && mdname[0] != '\0') {
      return Fail(Cat("Ed25519: no digest may be given (got ", mdname, ")"));
    }
    return InitKey(c, keydata, params);
  }
  if (!InitKey(c, keydata, params)) return 0;
  const char* deflt = c->key->info.type == crypto::KeyType::kEcP384 ? "SHA384" : "SHA256";
  absl::StatusOr<Digest> d =
      ParseDigest(mdname == nullptr || mdname[0] == '\0' ? deflt : mdname);
  if (!d.ok()) return Fail(d.status());
  c->digest = *d;
  const EVP_MD* md = Md(*d);
  if (md == nullptr) return Fail("digest-sign: cannot fetch SHA-2 from the default provider");
  if (c->mdctx == nullptr) c->mdctx.reset(EVP_MD_CTX_new());
  if (c->mdctx == nullptr || !EVP_DigestInit_ex2(c->mdctx.get(), md, nullptr)) {
    return Fail("digest-sign: EVP_DigestInit_ex2 failed");
  }
  return 1;
}

int DigestSignUpdate(void* ctx, const unsigned char* data, size_t len) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (c->mdctx == nullptr) return Fail("digest-sign update: not initialised");
  return EVP_DigestUpdate(c->mdctx.get(), data, len);
}

int DigestSignFinal(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (c->mdctx == nullptr || c->key == nullptr) return Fail("digest-sign final: not initialised");
  if (sig == nullptr) {
    *siglen = MaxSize(*c);
    return 1;
  }
  unsigned char dgst[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (!EVP_DigestFinal_ex(c->mdctx.get(), dgst, &dlen)) return Fail("digest-sign: digest failed");
  return SignDigestNow(c, dgst, dlen, sig, siglen, sigsize);
}

int DigestSign(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize,
               const unsigned char* tbs, size_t tbslen) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (c->key == nullptr) return Fail("digest-sign: not initialised");
  if (sig == nullptr) {
    *siglen = MaxSize(*c);
    return 1;
  }
  if (c->family == Family::kEd25519) {
    absl::StatusOr<std::string> out = c->key->hsm->Sign(
        c->key->info.id, crypto::SignAlgorithm::kEdDSA,
        std::string_view(reinterpret_cast<const char*>(tbs), tbslen));
    if (!out.ok()) return Fail(out.status());
    return Emit(*out, sig, siglen, sigsize);
  }
  if (c->mdctx == nullptr) return Fail("digest-sign: not initialised");
  if (!EVP_DigestUpdate(c->mdctx.get(), tbs, tbslen)) return Fail("digest-sign: digest failed");
  return DigestSignFinal(ctx, sig, siglen, sigsize);
}

// --- parameters ---

absl::StatusOr<Digest> DigestParam(const OSSL_PARAM* p) {
  const char* name = nullptr;
  if (!OSSL_PARAM_get_utf8_string_ptr(p, &name)) {
    return absl::InvalidArgumentError(Cat(p->key, ": must be a string"));
  }
  return ParseDigest(name);
}

int SetCtxParams(void* ctx, const OSSL_PARAM params[]) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (params == nullptr) return 1;
  const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
  if (p != nullptr) {
    absl::StatusOr<Digest> d = DigestParam(p);
    if (!d.ok()) return Fail(d.status());
    if (c->mdctx != nullptr && *d != c->digest) {
      return Fail("digest: cannot change the digest of a started digest-sign");
    }
    c->digest = *d;
  }
  if (c->family != Family::kRsa) return 1;
  p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
  if (p != nullptr) {
    int pad = 0;
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
      std::string_view s = static_cast<const char*>(p->data);
      if (s == OSSL_PKEY_RSA_PAD_MODE_PKCSV15) pad = RSA_PKCS1_PADDING;
      else if (s == OSSL_PKEY_RSA_PAD_MODE_PSS) pad = RSA_PKCS1_PSS_PADDING;
      else return Fail(Cat("pad-mode: '", s, "' refused (pkcs1 or pss only)"));
    } else if (!OSSL_PARAM_get_int(p, &pad)) {
      return Fail("pad-mode: must be an integer or a name");
    }
    if (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_PSS_PADDING) {
      return Fail(Cat("pad-mode: ", pad, " refused (PKCS#1 v1.5 or PSS only)"));
    }
    c->pad = pad;
  }
  p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
  if (p != nullptr) {
    int salt = 0;
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
      std::string_view s = static_cast<const char*>(p->data);
      if (s == OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) salt = RSA_PSS_SALTLEN_DIGEST;
      else if (s == OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) salt = RSA_PSS_SALTLEN_MAX;
      else if (s == OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) salt = RSA_PSS_SALTLEN_AUTO;
      else salt = std::atoi(std::string(s).c_str());
    } else if (!OSSL_PARAM_get_int(p, &salt)) {
      return Fail("saltlen: must be an integer or a name");
    }
    if (salt != RSA_PSS_SALTLEN_DIGEST && salt != 32) {
      return Fail(Cat("saltlen: ", salt,
                               " refused; HSM keys use salt length = digest length"));
    }
    c->saltlen = salt;
  }
  p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
  if (p != nullptr) {
    absl::StatusOr<Digest> d = DigestParam(p);
    if (!d.ok()) return Fail(d.status());
    if (*d != Digest::kSha256) return Fail("mgf1-digest: only SHA-256 is supported");
    c->mgf1 = *d;
  }
  return 1;
}

template <Family F>
const OSSL_PARAM* SettableCtxParams(void* /*ctx*/, void* /*provctx*/) {
  static const OSSL_PARAM kEc[] = {
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, nullptr, 0), OSSL_PARAM_END};
  static const OSSL_PARAM kRsa[] = {
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kEd[] = {OSSL_PARAM_END};
  return F == Family::kEc ? kEc : F == Family::kRsa ? kRsa : kEd;
}

// DER AlgorithmIdentifiers for X.509 / CSR signing.
const unsigned char kEcdsaSha256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                      0xce, 0x3d, 0x04, 0x03, 0x02};
const unsigned char kEcdsaSha384[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                      0xce, 0x3d, 0x04, 0x03, 0x03};
const unsigned char kRsaSha256[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                    0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00};
const unsigned char kEd25519Alg[] = {0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70};
const unsigned char kRsaPssSha256[] = {
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30,
    0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
    0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
    0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
    0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20};

int GetCtxParams(void* ctx, OSSL_PARAM params[]) {
  auto* c = static_cast<SigCtx*>(ctx);
  OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
  if (p != nullptr) {
    const unsigned char* der = nullptr;
    size_t len = 0;
    if (c->family == Family::kEd25519) {
      der = kEd25519Alg, len = sizeof(kEd25519Alg);
    } else if (c->family == Family::kEc) {
      if (c->digest == Digest::kSha384) der = kEcdsaSha384, len = sizeof(kEcdsaSha384);
      else der = kEcdsaSha256, len = sizeof(kEcdsaSha256);
    } else if (c->pad == RSA_PKCS1_PSS_PADDING) {
      der = kRsaPssSha256, len = sizeof(kRsaPssSha256);
    } else {
      der = kRsaSha256, len = sizeof(kRsaSha256);
    }
    if (!OSSL_PARAM_set_octet_string(p, der, len)) return 0;
  }
  p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
  if (p != nullptr && !OSSL_PARAM_set_utf8_string(p, DigestName(c->digest))) return 0;
  p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
  if (p != nullptr && c->family == Family::kRsa && !OSSL_PARAM_set_int(p, c->pad)) return 0;
  return 1;
}

const OSSL_PARAM* GettableCtxParams(void* /*ctx*/, void* /*provctx*/) {
  static const OSSL_PARAM kParams[] = {
      OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
      OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr), OSSL_PARAM_END};
  return kParams;
}

#define TS_FN(id, fn) {id, reinterpret_cast<void (*)()>(fn)}

}  // namespace

#define TS_COMMON(F)                                                            \
  TS_FN(OSSL_FUNC_SIGNATURE_NEWCTX, NewCtx<F>),                                 \
      TS_FN(OSSL_FUNC_SIGNATURE_FREECTX, FreeCtx),                              \
      TS_FN(OSSL_FUNC_SIGNATURE_DUPCTX, DupCtx),                                \
      TS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, DigestSignInit),              \
      TS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN, DigestSign),                       \
      TS_FN(OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, GetCtxParams),                  \
      TS_FN(OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, GettableCtxParams),        \
      TS_FN(OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, SetCtxParams),                  \
      TS_FN(OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, SettableCtxParams<F>)

#define TS_STREAMING                                                            \
  TS_FN(OSSL_FUNC_SIGNATURE_SIGN_INIT, SignInit),                               \
      TS_FN(OSSL_FUNC_SIGNATURE_SIGN, Sign),                                    \
      TS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, DigestSignUpdate),          \
      TS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, DigestSignFinal)

const OSSL_DISPATCH kEcdsaSignature[] = {TS_COMMON(Family::kEc), TS_STREAMING, {0, nullptr}};
const OSSL_DISPATCH kRsaSignature[] = {TS_COMMON(Family::kRsa), TS_STREAMING, {0, nullptr}};
const OSSL_DISPATCH kEd25519Signature[] = {TS_COMMON(Family::kEd25519), {0, nullptr}};

}  // namespace tokensign::hsm::provider
