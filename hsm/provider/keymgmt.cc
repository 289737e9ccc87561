// Key management for HSM keys: EC (P-256, P-384), RSA and Ed25519.
//
// A key object (ProvKey) holds the shared Hsm, the key's KeyInfo and its public half as
// an ordinary default-provider EVP_PKEY. Public parameters (bits, security-bits,
// max-size, default digest, encoded public key, group/n/e/pub) are answered from that
// public key, and only public parameters are exported: an export that asks for the
// private key fails, so OpenSSL never builds a public-only copy of the key in another
// provider and signs there. Import only accepts a key reference (`tokensign-key-id`),
// never key material.
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "crypto/str_cat.h"
#include "hsm/provider/provider_internal.h"

namespace tokensign::hsm::provider {

const char* KeymgmtName(crypto::KeyType type) {
  switch (type) {
    case crypto::KeyType::kEcP256:
    case crypto::KeyType::kEcP384:
      return "EC";
    case crypto::KeyType::kRsa:
      return "RSA";
    case crypto::KeyType::kEd25519:
      return "ED25519";
  }
  return "";
}

absl::StatusOr<std::unique_ptr<ProvKey>> LoadProvKey(std::shared_ptr<Hsm> hsm,
                                                     std::string_view id_hex) {
  absl::StatusOr<KeyInfo> info = hsm->ResolveKey(id_hex);
  if (!info.ok()) return info.status();
  absl::StatusOr<crypto::UniquePkey> pub = hsm->PublicKey(id_hex);
  if (!pub.ok()) return pub.status();
  auto key = std::make_unique<ProvKey>();
  key->hsm = std::move(hsm);
  key->info = *std::move(info);
  key->pub = *std::move(pub);
  return key;
}

namespace {

// Keydata as OpenSSL sees it: the provider context plus (once loaded) the key.
struct KeyData {
  ProviderCtx* prov = nullptr;
  std::shared_ptr<const ProvKey> key;
};

enum class Family { kEc, kRsa, kEd25519 };

bool InFamily(crypto::KeyType type, Family family) {
  switch (family) {
    case Family::kEc:
      return type == crypto::KeyType::kEcP256 || type == crypto::KeyType::kEcP384;
    case Family::kRsa:
      return type == crypto::KeyType::kRsa;
    case Family::kEd25519:
      return type == crypto::KeyType::kEd25519;
  }
  return false;
}

void* NewKey(void* provctx) {
  auto* kd = new KeyData;
  kd->prov = static_cast<ProviderCtx*>(provctx);
  return kd;
}

void FreeKey(void* keydata) { delete static_cast<KeyData*>(keydata); }

void* DupKey(const void* keydata, int /*selection*/) {
  return new KeyData(*static_cast<const KeyData*>(keydata));
}

// The store passes a pointer to its KeyData as the reference.
void* LoadKey(const void* reference, size_t reference_sz) {
  if (reference == nullptr || reference_sz != sizeof(KeyData*)) return nullptr;
  KeyData* src = nullptr;
  std::memcpy(&src, reference, sizeof(src));
  return new KeyData(*src);
}

int HasKey(const void* keydata, int /*selection*/) {
  const auto* kd = static_cast<const KeyData*>(keydata);
  return kd != nullptr && kd->key != nullptr ? 1 : 0;
}

int MatchKeys(const void* a, const void* b, int /*selection*/) {
  const auto* ka = static_cast<const KeyData*>(a);
  const auto* kb = static_cast<const KeyData*>(b);
  if (ka->key == nullptr || kb->key == nullptr) return 0;
  return EVP_PKEY_eq(ka->key->pub.get(), kb->key->pub.get()) == 1 ? 1 : 0;
}

template <Family F>
int ImportKey(void* keydata, int /*selection*/, const OSSL_PARAM params[]) {
  auto* kd = static_cast<KeyData*>(keydata);
  const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, kParamKeyId);
  const char* id = nullptr;
  if (p == nullptr || !OSSL_PARAM_get_utf8_string_ptr(p, &id)) {
    // Not ours (e.g. OpenSSL trying to copy a software key in): refuse quietly.
    return 0;
  }
  absl::StatusOr<std::shared_ptr<Hsm>> hsm = kd->prov->GetHsm(nullptr);
  if (!hsm.ok()) return RaiseStatus(hsm.status());
  absl::StatusOr<std::unique_ptr<ProvKey>> key = LoadProvKey(*hsm, id);
  if (!key.ok()) return RaiseStatus(key.status());
  if (!InFamily((*key)->info.type, F)) {
    return RaiseStatus(absl::InvalidArgumentError(
        Cat("key ", id, " is ", crypto::KeyTypeName((*key)->info.type),
                     ", not a key for this key manager")));
  }
  kd->key = std::shared_ptr<const ProvKey>(std::move(*key));
  return 1;
}

const OSSL_PARAM* ImportTypes(int /*selection*/) {
  static const OSSL_PARAM kTypes[] = {OSSL_PARAM_utf8_string(kParamKeyId, nullptr, 0),
                                      OSSL_PARAM_END};
  return kTypes;
}

int ExportKey(void* keydata, int selection, OSSL_CALLBACK* cb, void* cbarg) {
  const auto* kd = static_cast<const KeyData*>(keydata);
  if (kd->key == nullptr) return 0;
  // The private key never leaves the HSM; refuse without noise (OpenSSL tries this
  // first when it looks for another provider to run an operation in).
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) return 0;
  int what = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 ? EVP_PKEY_PUBLIC_KEY
                                                                : EVP_PKEY_KEY_PARAMETERS;
  OSSL_PARAM* raw = nullptr;
  if (EVP_PKEY_todata(kd->key->pub.get(), what, &raw) != 1) return 0;
  crypto::SslPtr<OSSL_PARAM> params(raw);
  return cb(params.get(), cbarg);
}

template <Family F>
const OSSL_PARAM* ExportTypes(int /*selection*/) {
  static const OSSL_PARAM kEc[] = {
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kRsa[] = {OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
                                    OSSL_PARAM_END};
  static const OSSL_PARAM kEd[] = {OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
                                   OSSL_PARAM_END};
  return F == Family::kEc ? kEc : F == Family::kRsa ? kRsa : kEd;
}

int GetParams(void* keydata, OSSL_PARAM params[]) {
  const auto* kd = static_cast<const KeyData*>(keydata);
  if (kd->key == nullptr) return 0;
  if (!EVP_PKEY_get_params(kd->key->pub.get(), params)) return 0;
  // The HSM signs P-384 digests only with SHA-384 (ES384), so that is the default.
  OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST);
  if (p != nullptr && kd->key->info.type == crypto::KeyType::kEcP384) {
    return OSSL_PARAM_set_utf8_string(p, "SHA384");
  }
  return 1;
}

template <Family F>
const OSSL_PARAM* GettableParams(void* /*provctx*/) {
  static const OSSL_PARAM kEc[] = {
      OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kRsa[] = {
      OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
      OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
      OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kEd[] = {
      OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
      OSSL_PARAM_END};
  return F == Family::kEc ? kEc : F == Family::kRsa ? kRsa : kEd;
}

template <Family F>
const char* QueryOperationName(int operation_id) {
  if (operation_id != OSSL_OP_SIGNATURE) return nullptr;
  return F == Family::kEc ? "ECDSA" : F == Family::kRsa ? "RSA" : "ED25519";
}

#define TS_FN(id, fn) {id, reinterpret_cast<void (*)()>(fn)}

}  // namespace

#define TS_KEYMGMT_TABLE(NAME, F)                                               \
  const OSSL_DISPATCH NAME[] = {                                                \
      TS_FN(OSSL_FUNC_KEYMGMT_NEW, NewKey),                                     \
      TS_FN(OSSL_FUNC_KEYMGMT_FREE, FreeKey),                                   \
      TS_FN(OSSL_FUNC_KEYMGMT_DUP, DupKey),                                     \
      TS_FN(OSSL_FUNC_KEYMGMT_LOAD, LoadKey),                                   \
      TS_FN(OSSL_FUNC_KEYMGMT_HAS, HasKey),                                     \
      TS_FN(OSSL_FUNC_KEYMGMT_MATCH, MatchKeys),                                \
      TS_FN(OSSL_FUNC_KEYMGMT_IMPORT, ImportKey<F>),                            \
      TS_FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, ImportTypes),                       \
      TS_FN(OSSL_FUNC_KEYMGMT_EXPORT, ExportKey),                               \
      TS_FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, ExportTypes<F>),                    \
      TS_FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, GetParams),                           \
      TS_FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, GettableParams<F>),              \
      TS_FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, QueryOperationName<F>),     \
      {0, nullptr}};

TS_KEYMGMT_TABLE(kEcKeymgmt, Family::kEc)
TS_KEYMGMT_TABLE(kRsaKeymgmt, Family::kRsa)
TS_KEYMGMT_TABLE(kEd25519Keymgmt, Family::kEd25519)

// Shared with signature.cc / store.cc through these accessors.
const ProvKey* KeyOf(const void* keydata) {
  return keydata == nullptr ? nullptr : static_cast<const KeyData*>(keydata)->key.get();
}
std::shared_ptr<const ProvKey> SharedKeyOf(const void* keydata) {
  if (keydata == nullptr) return nullptr;
  return static_cast<const KeyData*>(keydata)->key;
}
void* NewKeyDataForStore(ProviderCtx* prov, std::shared_ptr<const ProvKey> key) {
  auto* kd = new KeyData;
  kd->prov = prov;
  kd->key = std::move(key);
  return kd;
}
void FreeKeyDataForStore(void* keydata) { delete static_cast<KeyData*>(keydata); }

}  // namespace tokensign::hsm::provider
