// Provider entry: init/teardown, algorithm tables, module-mode configuration and the
// per-library-context registry of built-in Hsm instances.
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "crypto/openssl_error.h"
#include "crypto/str_cat.h"
#include "hsm/pin.h"
#include "hsm/provider/provider_internal.h"

namespace tokensign::hsm::provider {
namespace {

constexpr char kDefaultModule[] = "/usr/lib/softhsm/libsofthsm2.so";

std::mutex& RegistryMu() {
  static std::mutex mu;
  return mu;
}
std::map<OSSL_LIB_CTX*, std::shared_ptr<Hsm>>& Registry() {
  static auto* m = new std::map<OSSL_LIB_CTX*, std::shared_ptr<Hsm>>();
  return *m;
}

const OSSL_ALGORITHM kKeymgmtAlgs[] = {
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", kProviderProps, kEcKeymgmt,
     "tokensign HSM EC keys"},
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", kProviderProps, kRsaKeymgmt,
     "tokensign HSM RSA keys"},
    {"ED25519:1.3.101.112", kProviderProps, kEd25519Keymgmt, "tokensign HSM Ed25519 keys"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kSignatureAlgs[] = {
    {"ECDSA", kProviderProps, kEcdsaSignature, "tokensign HSM ECDSA"},
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", kProviderProps, kRsaSignature,
     "tokensign HSM RSA PKCS#1 v1.5 / PSS"},
    {"ED25519:1.3.101.112", kProviderProps, kEd25519Signature, "tokensign HSM Ed25519"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kStoreAlgs[] = {
    {"pkcs11", kProviderProps, kPkcs11Store, "tokensign RFC 7512 pkcs11: URIs"},
    {nullptr, nullptr, nullptr, nullptr}};

const OSSL_ALGORITHM* Query(void* /*provctx*/, int operation_id, int* no_cache) {
  *no_cache = 0;
  switch (operation_id) {
    case OSSL_OP_KEYMGMT:
      return kKeymgmtAlgs;
    case OSSL_OP_SIGNATURE:
      return kSignatureAlgs;
    case OSSL_OP_STORE:
      return kStoreAlgs;
    default:
      return nullptr;
  }
}

// Module mode: provider contexts that may hold Hsm instances of their own. At process
// exit OpenSSL tears providers down from its atexit handler, which runs after the
// PKCS#11 module's own static destructors (SoftHSM crashes in C_CloseSession then), so
// an atexit handler registered after the first Hsm::Open closes them first.
std::mutex& ModuleCtxMu() {
  static std::mutex mu;
  return mu;
}
std::set<ProviderCtx*>& ModuleCtxs() {
  static auto* s = new std::set<ProviderCtx*>();
  return *s;
}

void ReleaseModuleHsms() {
  std::lock_guard<std::mutex> lock(ModuleCtxMu());
  for (ProviderCtx* ctx : ModuleCtxs()) {
    std::lock_guard<std::mutex> ctx_lock(ctx->mu);
    ctx->opened.clear();
  }
}

void Teardown(void* provctx) {
  auto* ctx = static_cast<ProviderCtx*>(provctx);
  {
    std::lock_guard<std::mutex> lock(ModuleCtxMu());
    ModuleCtxs().erase(ctx);
  }
  delete ctx;
}

const OSSL_PARAM* GettableParams(void* /*provctx*/) {
  static const OSSL_PARAM kParams[] = {
      OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, nullptr, 0),
      OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, nullptr, 0),
      OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, nullptr), OSSL_PARAM_END};
  return kParams;
}

int GetParams(void* /*provctx*/, OSSL_PARAM params[]) {
  OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
  if (p != nullptr && !OSSL_PARAM_set_utf8_ptr(p, "tokensign PKCS#11 provider")) return 0;
  p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
  if (p != nullptr && !OSSL_PARAM_set_utf8_ptr(p, "0.1.0")) return 0;
  p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
  if (p != nullptr && !OSSL_PARAM_set_int(p, 1)) return 0;
  return 1;
}

const OSSL_DISPATCH kProviderDispatch[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, reinterpret_cast<void (*)()>(Teardown)},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, reinterpret_cast<void (*)()>(Query)},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, reinterpret_cast<void (*)()>(GettableParams)},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, reinterpret_cast<void (*)()>(GetParams)},
    {0, nullptr}};

std::string Getenv(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

// Module-mode defaults: environment first, then the openssl.cnf provider section.
void ReadModuleDefaults(const OSSL_CORE_HANDLE* handle, OSSL_FUNC_core_get_params_fn* get,
                        HsmConfig& cfg) {
  char* module = nullptr;
  char* label = nullptr;
  char* pin_env = nullptr;
  char* pin_file = nullptr;
  if (get != nullptr) {
    OSSL_PARAM params[] = {OSSL_PARAM_utf8_ptr("pkcs11-module", &module, 0),
                           OSSL_PARAM_utf8_ptr("token-label", &label, 0),
                           OSSL_PARAM_utf8_ptr("pin-env", &pin_env, 0),
                           OSSL_PARAM_utf8_ptr("pin-file", &pin_file, 0), OSSL_PARAM_END};
    get(handle, params);
  }
  auto pick = [](const char* env, const char* cnf, const char* fallback) {
    std::string v = Getenv(env);
    if (!v.empty()) return v;
    if (cnf != nullptr && *cnf != '\0') return std::string(cnf);
    return std::string(fallback);
  };
  cfg.module_path = pick("TOKENSIGN_PKCS11_MODULE", module, kDefaultModule);
  cfg.token_label = pick("TOKENSIGN_TOKEN_LABEL", label, "");
  // The PIN source is one setting: a variable or a file. If the environment
  // names either, it wins over openssl.cnf's pin-env / pin-file as a whole
  // (mixing them would leave both set, which the HSM refuses).
  cfg.pin_env = Getenv("TOKENSIGN_PIN_ENV");
  cfg.pin_file = Getenv("TOKENSIGN_PIN_FILE");
  if (cfg.pin_env.empty() && cfg.pin_file.empty()) {
    cfg.pin_env = pin_env != nullptr ? pin_env : "";
    cfg.pin_file = pin_file != nullptr ? pin_file : "";
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<Hsm>> ProviderCtx::GetHsm(const Pkcs11Uri* uri) {
  if (builtin_hsm != nullptr) {
    if (uri != nullptr && (!uri->module_path.empty() || !uri->pin_value.empty() ||
                           !uri->pin_file.empty() || !uri->pin_env.empty())) {
      return absl::InvalidArgumentError(
          "pkcs11 URI: module-path, pin-source and pin-value are refused by the built-in "
          "provider: it signs only with the program's own logged-in token");
    }
    if (uri != nullptr && !uri->token.empty() && uri->token != builtin_hsm->token_label()) {
      return absl::NotFoundError(Cat("pkcs11 URI token '", uri->token,
                                              "' is not the daemon's token '",
                                              builtin_hsm->token_label(), "'"));
    }
    return builtin_hsm;
  }
  HsmConfig cfg = defaults;
  if (uri != nullptr) {
    if (absl::Status s = CheckUriModulePath(*uri, cfg.module_path); !s.ok()) return s;
    if (!uri->token.empty()) cfg.token_label = uri->token;
    if (!uri->serial.empty()) {
      cfg.token_serial = uri->serial;
      if (uri->token.empty()) cfg.token_label.clear();
    }
    // The URI's PIN source, if any, replaces the configured one as a whole.
    if (!uri->pin_file.empty() || !uri->pin_env.empty() || !uri->pin_value.empty()) {
      cfg.pin_file = uri->pin_file;
      cfg.pin_env = uri->pin_env;
      cfg.pin_value = uri->pin_value;
    }
  }
  if (cfg.token_label.empty() && cfg.token_serial.empty()) {
    return absl::InvalidArgumentError(
        "tokensign provider: no token: set token= in the pkcs11 URI or "
        "TOKENSIGN_TOKEN_LABEL");
  }
  if (cfg.pin_env.empty() && cfg.pin_file.empty() && cfg.pin_value.empty()) {
    return absl::InvalidArgumentError(
        "tokensign provider: no PIN source: set pin-source= in the pkcs11 URI, "
        "TOKENSIGN_PIN_ENV or TOKENSIGN_PIN_FILE");
  }
  // Read the PIN once: the login and the comparison with an earlier login use the same
  // value (a file or variable changing in between cannot split them).
  absl::StatusOr<std::string> pin = ReadPin(cfg);
  if (!pin.ok()) return pin.status();
  cfg.pin_env.clear();
  cfg.pin_file.clear();
  cfg.pin_value = *std::move(pin);
  struct Wipe {
    std::string& s;
    ~Wipe() { OPENSSL_cleanse(s.data(), s.size()); }
  } wipe{cfg.pin_value};
  absl::StatusOr<std::string> digest = PinDigest(cfg.pin_value);
  if (!digest.ok()) return digest.status();

  std::string key = Cat(cfg.module_path, "|", cfg.token_label, "|", cfg.token_serial);
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = opened.find(key);
      it != opened.end() && it->second.pin_digest.size() == digest->size() &&
      CRYPTO_memcmp(it->second.pin_digest.data(), digest->data(), digest->size()) == 0) {
    return it->second.hsm;
  }
  // New here, or another PIN: OpenModuleHsm decides (and refuses a PIN that differs from
  // the one the token is logged in with).
  absl::StatusOr<std::shared_ptr<Hsm>> hsm = OpenModuleHsm(cfg, *digest);
  if (!hsm.ok()) return hsm.status();
  opened[key] = Opened{*digest, *hsm};
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(ReleaseModuleHsms); });
  return *hsm;
}

int RaiseStatus(const absl::Status& status) {
  // Code and message travel in the error queue across EVP (crypto::OpenSslError).
  crypto::RaiseStatusError(status);
  return 0;
}

void RegisterBuiltinHsm(OSSL_LIB_CTX* libctx, std::shared_ptr<Hsm> hsm) {
  std::lock_guard<std::mutex> lock(RegistryMu());
  Registry()[libctx] = std::move(hsm);
}

void UnregisterBuiltinHsm(OSSL_LIB_CTX* libctx) {
  std::lock_guard<std::mutex> lock(RegistryMu());
  Registry().erase(libctx);
}

int ProviderInit(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
                 const OSSL_DISPATCH** out, void** provctx) {
  OSSL_FUNC_core_get_libctx_fn* get_libctx = nullptr;
  OSSL_FUNC_core_get_params_fn* get_params = nullptr;
  for (; in != nullptr && in->function_id != 0; ++in) {
    if (in->function_id == OSSL_FUNC_CORE_GET_LIBCTX) get_libctx = OSSL_FUNC_core_get_libctx(in);
    if (in->function_id == OSSL_FUNC_CORE_GET_PARAMS) get_params = OSSL_FUNC_core_get_params(in);
  }
  auto ctx = std::make_unique<ProviderCtx>();
  ctx->handle = handle;
  if (get_libctx != nullptr) {
    ctx->libctx = reinterpret_cast<OSSL_LIB_CTX*>(get_libctx(handle));
  }
  {
    std::lock_guard<std::mutex> lock(RegistryMu());
    if (auto it = Registry().find(ctx->libctx); it != Registry().end()) {
      ctx->builtin_hsm = it->second;
    }
  }
  if (ctx->builtin_hsm == nullptr) {
    ReadModuleDefaults(handle, get_params, ctx->defaults);
    std::lock_guard<std::mutex> lock(ModuleCtxMu());
    ModuleCtxs().insert(ctx.get());
  }
  *out = kProviderDispatch;
  *provctx = ctx.release();
  return 1;
}

}  // namespace tokensign::hsm::provider
