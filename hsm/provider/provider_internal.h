// Internals shared by the tokensign OpenSSL 3 provider's pieces (provider.cc, keymgmt.cc,
// signature.cc, store.cc). Not a public contract; the public entry points are
// provider_keys.h (built in) and the module's OSSL_provider_init.
//
// Thread-safety: ProviderCtx is shared by every thread using the provider; its Hsm map is
// guarded by `mu`. A ProvKey is immutable after creation and shared read-only (Hsm is
// thread-safe), so one key may sign from many threads at once.
#ifndef TOKENSIGN_HSM_PROVIDER_PROVIDER_INTERNAL_H_
#define TOKENSIGN_HSM_PROVIDER_PROVIDER_INTERNAL_H_

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "hsm/hsm.h"
#include "hsm/provider/pkcs11_uri.h"

namespace tokensign::hsm::provider {

inline constexpr char kProviderName[] = "tokensign";
inline constexpr char kProviderProps[] = "provider=tokensign";
// Import parameter that names an HSM key (CKA_ID hex) for EVP_PKEY_fromdata().
inline constexpr char kParamKeyId[] = "tokensign-key-id";

struct ProviderCtx {
  const OSSL_CORE_HANDLE* handle = nullptr;
  OSSL_LIB_CTX* libctx = nullptr;  // the library context the provider lives in
  // Built-in mode: the Hsm handed in by HsmKeyProvider (never re-opened).
  std::shared_ptr<Hsm> builtin_hsm;
  // Module mode: defaults from the environment / openssl.cnf.
  HsmConfig defaults;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Hsm>> opened;  // by token label

  // The Hsm for `uri` (nullptr = the default token). Module mode opens it on first use,
  // taking token / pin / module from the URI where given.
  absl::StatusOr<std::shared_ptr<Hsm>> GetHsm(const Pkcs11Uri* uri);
};

// One HSM key as the provider's keymgmt holds it.
struct ProvKey {
  std::shared_ptr<Hsm> hsm;
  KeyInfo info;
  EVP_PKEY* pub = nullptr;  // public half (default library context), owned
  ~ProvKey();
};

// Builds a key object for `id_hex` on `hsm` (FindKey + PublicKey).
absl::StatusOr<std::unique_ptr<ProvKey>> LoadProvKey(std::shared_ptr<Hsm> hsm,
                                                     std::string_view id_hex);
// Keydata accessors (keymgmt.cc): the key behind a keymgmt keydata pointer, and
// keydata the store hands to OpenSSL by reference (its address is the reference).
const ProvKey* KeyOf(const void* keydata);
std::shared_ptr<const ProvKey> SharedKeyOf(const void* keydata);
void* NewKeyDataForStore(ProviderCtx* prov, std::shared_ptr<const ProvKey> key);
void FreeKeyDataForStore(void* keydata);
// Keymgmt name ("EC", "RSA", "ED25519") for a key type.
const char* KeymgmtName(KeyType type);
// Raises an OpenSSL error (ERR_raise_data) carrying the status message; returns 0.
int RaiseStatus(const absl::Status& status);

// Dispatch tables (keymgmt.cc, signature.cc, store.cc).
extern const OSSL_DISPATCH kEcKeymgmt[];
extern const OSSL_DISPATCH kRsaKeymgmt[];
extern const OSSL_DISPATCH kEd25519Keymgmt[];
extern const OSSL_DISPATCH kEcdsaSignature[];
extern const OSSL_DISPATCH kRsaSignature[];
extern const OSSL_DISPATCH kEd25519Signature[];
extern const OSSL_DISPATCH kPkcs11Store[];

// The provider init function (same for built-in and module loading).
int ProviderInit(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
                 const OSSL_DISPATCH** out, void** provctx);

// Built-in registration: the Hsm a provider instance loaded into `libctx` uses.
void RegisterBuiltinHsm(OSSL_LIB_CTX* libctx, std::shared_ptr<Hsm> hsm);
void UnregisterBuiltinHsm(OSSL_LIB_CTX* libctx);

}  // namespace tokensign::hsm::provider

#endif  // TOKENSIGN_HSM_PROVIDER_PROVIDER_INTERNAL_H_
