// Internals shared by the tokensign OpenSSL 3 provider's pieces (provider.cc, keymgmt.cc,
// signature.cc, store.cc). Not a public contract; the public entry points are
// provider_keys.h (built in) and the module's OSSL_provider_init.
//
// Thread-safety: ProviderCtx is shared by every thread using the provider; its Hsm map is
// guarded by `mu` (taken before the process-wide login lock of OpenModuleHsm). A ProvKey is immutable after creation and shared read-only (Hsm is
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
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
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
  // Module mode: defaults from the environment / openssl.cnf. defaults.module_path is
  // the only PKCS#11 module this provider ever loads (a URI may not name another).
  HsmConfig defaults;
  std::mutex mu;
  // Module mode: the Hsm opened for each token a URI named (key module|label|serial),
  // with PinDigest of the PIN it was logged in with; reused only for the same PIN.
  struct Opened {
    std::string pin_digest;
    std::shared_ptr<Hsm> hsm;
  };
  std::map<std::string, Opened> opened;

  // The Hsm for `uri` (nullptr = the default token). Built-in mode: the program's Hsm
  // (a URI naming a module or a PIN is refused). Module mode: token and PIN from the URI
  // where given, else the defaults; the PIN is read once and never put in the
  // environment; an Hsm already open is reused only for the same PIN.
  absl::StatusOr<std::shared_ptr<Hsm>> GetHsm(const Pkcs11Uri* uri);
};

// Module mode (module_login.cc). SHA-256 of a PIN (domain-separated), so that PINs can be
// compared without keeping more copies of them.
absl::StatusOr<std::string> PinDigest(std::string_view pin);
// Opens the token `config` names, with the PIN in config.pin_value. PKCS#11 keeps one
// login per token per process: once a session is logged in, C_Login elsewhere answers
// CKR_USER_ALREADY_LOGGED_IN without checking the PIN. So, process-wide and serialized:
// a token some provider instance already opened is reused only when `pin_digest`
// matches the PIN it was logged in with (else kPermissionDenied); a token logged in by
// other code in the process is refused (kFailedPrecondition: the PIN cannot be checked);
// otherwise Hsm::Open logs in, and a wrong PIN fails there.
absl::StatusOr<std::shared_ptr<Hsm>> OpenModuleHsm(const HsmConfig& config,
                                                   std::string_view pin_digest);

// One HSM key as the provider's keymgmt holds it.
struct ProvKey {
  std::shared_ptr<Hsm> hsm;
  KeyInfo info;
  crypto::UniquePkey pub;  // public half (default library context)
};

// Builds a key object for `id_hex` on `hsm` (ResolveKey: the handle cache,
// a checked search on a miss; + PublicKey).
absl::StatusOr<std::unique_ptr<ProvKey>> LoadProvKey(std::shared_ptr<Hsm> hsm,
                                                     std::string_view id_hex);
// Keydata accessors (keymgmt.cc): the key behind a keymgmt keydata pointer, and
// keydata the store hands to OpenSSL by reference (its address is the reference).
const ProvKey* KeyOf(const void* keydata);
std::shared_ptr<const ProvKey> SharedKeyOf(const void* keydata);
void* NewKeyDataForStore(ProviderCtx* prov, std::shared_ptr<const ProvKey> key);
void FreeKeyDataForStore(void* keydata);
// Keymgmt name ("EC", "RSA", "ED25519") for a key type.
const char* KeymgmtName(crypto::KeyType type);
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
