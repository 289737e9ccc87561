#include "hsm/provider/provider_keys.h"

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include "crypto/openssl_error.h"
#include "crypto/ssl_ptr.h"
#include "crypto/str_cat.h"
#include "hsm/provider/provider_internal.h"

namespace tokensign::hsm::provider {

// Owns the library context; shared with every EVP_PKEY handed out so that the context
// outlives the last key.
// Members are destroyed in reverse order: the providers are unloaded before
// the library context is freed.
struct HsmKeyProvider::State {
  crypto::SslPtr<OSSL_LIB_CTX> libctx;
  crypto::SslPtr<OSSL_PROVIDER> deflt;
  crypto::SslPtr<OSSL_PROVIDER> tokensign;  // unloaded first
  ~State() {
    if (libctx != nullptr) UnregisterBuiltinHsm(libctx.get());
  }
};

absl::StatusOr<std::unique_ptr<HsmKeyProvider>> HsmKeyProvider::Create(
    std::shared_ptr<Hsm> hsm) {
  if (hsm == nullptr) {
    return absl::InvalidArgumentError("HsmKeyProvider::Create: hsm must not be null");
  }
  auto state = std::make_shared<State>();
  state->libctx.reset(OSSL_LIB_CTX_new());
  if (state->libctx == nullptr) return crypto::OpenSslError("OSSL_LIB_CTX_new");
  RegisterBuiltinHsm(state->libctx.get(), hsm);
  if (OSSL_PROVIDER_add_builtin(state->libctx.get(), kProviderName, ProviderInit) != 1) {
    return crypto::OpenSslError("OSSL_PROVIDER_add_builtin(tokensign)");
  }
  state->tokensign.reset(OSSL_PROVIDER_load(state->libctx.get(), kProviderName));
  if (state->tokensign == nullptr) return crypto::OpenSslError("OSSL_PROVIDER_load(tokensign)");
  state->deflt.reset(OSSL_PROVIDER_load(state->libctx.get(), "default"));
  if (state->deflt == nullptr) return crypto::OpenSslError("OSSL_PROVIDER_load(default)");
  return std::unique_ptr<HsmKeyProvider>(new HsmKeyProvider(std::move(hsm), std::move(state)));
}

HsmKeyProvider::HsmKeyProvider(std::shared_ptr<Hsm> hsm, std::shared_ptr<State> state)
    : hsm_(std::move(hsm)), state_(std::move(state)) {}

HsmKeyProvider::~HsmKeyProvider() = default;

OSSL_LIB_CTX* HsmKeyProvider::libctx() const { return state_->libctx.get(); }

absl::StatusOr<std::shared_ptr<EVP_PKEY>> HsmKeyProvider::PrivateKey(std::string_view id_hex) {
  std::string id = AsciiLower(id_hex);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = cache_.find(id); it != cache_.end()) return it->second;

  // Through the key-handle cache: the keyset check (Hsm::ScanKeys or
  // FindKey) has just resolved and checked this key; a miss searches.
  absl::StatusOr<KeyInfo> info = hsm_->ResolveKey(id);
  if (!info.ok()) return info.status();
  crypto::UniquePkeyCtx ctx(
      EVP_PKEY_CTX_new_from_name(state_->libctx.get(), KeymgmtName(info->type), kProviderProps));
  if (ctx == nullptr) {
    return crypto::OpenSslError(Cat("EVP_PKEY_CTX_new_from_name(", KeymgmtName(info->type),
                                     ", provider=tokensign)"));
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(kParamKeyId, id.data(), id.size()),
      OSSL_PARAM_construct_end()};
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params) != 1) {
    return crypto::OpenSslError(Cat("HsmKeyProvider::PrivateKey(", id, "): EVP_PKEY_fromdata"));
  }
  std::shared_ptr<State> keep = state_;
  std::shared_ptr<EVP_PKEY> pkey(raw, [keep](EVP_PKEY* p) { EVP_PKEY_free(p); });
  cache_.emplace(id, pkey);
  return pkey;
}

void HsmKeyProvider::Evict(std::string_view id_hex) {
  std::lock_guard<std::mutex> lock(mu_);
  cache_.erase(AsciiLower(id_hex));
}

}  // namespace tokensign::hsm::provider
