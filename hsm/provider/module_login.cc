// Module mode: which PIN each token was logged in with, process-wide, so that a URI with
// a wrong or missing PIN never rides on an earlier login (see OpenModuleHsm in
// provider_internal.h).
//
// Thread-safety: every function here is thread-safe; OpenModuleHsm serializes itself on
// one process-wide mutex (opening a token is rare; signing never comes here).
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "crypto/openssl_error.h"
#include "crypto/str_cat.h"
#include "hsm/module.h"
#include "hsm/pkcs11_call.h"
#include "hsm/provider/provider_internal.h"

namespace tokensign::hsm::provider {
namespace {

// A token some provider instance in this process opened (and so logged in).
struct Login {
  CK_FUNCTION_LIST_PTR module = nullptr;  // one per loaded library, however it was named
  // A remote module (p11-kit's client) hands out a new function list, with a
  // connection and login of its own, on every load: the path names it then.
  std::string module_path;
  CK_SLOT_ID slot = 0;
  std::string pin_digest;
  std::weak_ptr<Hsm> hsm;  // owned by the provider instances' `opened` maps
};

std::mutex& LoginMu() {
  static auto* mu = new std::mutex();
  return *mu;
}
std::vector<Login>& Logins() {
  static auto* logins = new std::vector<Login>();
  return *logins;
}

bool SameDigest(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// True when a session on `slot` is in a logged-in state (someone in this process holds
// the token's login).
absl::StatusOr<bool> LoggedIn(const Module& module, CK_SLOT_ID slot) {
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  absl::Status status =
      TS_P11(module.p11(), C_OpenSession, slot, CKF_SERIAL_SESSION, nullptr, nullptr, &session);
  if (!status.ok()) return status;
  CK_SESSION_INFO info{};
  status = TS_P11(module.p11(), C_GetSessionInfo, session, &info);
  (void)TS_P11(module.p11(), C_CloseSession, session);
  if (!status.ok()) return status;
  return info.state == CKS_RO_USER_FUNCTIONS || info.state == CKS_RW_USER_FUNCTIONS ||
         info.state == CKS_RW_SO_FUNCTIONS;
}

}  // namespace

absl::StatusOr<std::string> PinDigest(std::string_view pin) {
  std::string input = Cat("tokensign provider PIN", std::string_view("\0", 1), pin);
  unsigned char md[EVP_MAX_MD_SIZE];
  size_t len = 0;
  int ok = EVP_Q_digest(nullptr, "SHA256", nullptr, input.data(), input.size(), md, &len);
  OPENSSL_cleanse(input.data(), input.size());
  if (ok != 1) return crypto::OpenSslError("tokensign provider: SHA-256 of the PIN");
  return std::string(reinterpret_cast<const char*>(md), len);
}

absl::StatusOr<std::shared_ptr<Hsm>> OpenModuleHsm(const HsmConfig& config,
                                                   std::string_view pin_digest) {
  std::lock_guard<std::mutex> lock(LoginMu());
  // Which token the config names (kept loaded until Hsm::Open has its own reference).
  absl::StatusOr<std::unique_ptr<Module>> module = Module::Load(config.module_path);
  if (!module.ok()) return module.status();
  absl::StatusOr<CK_SLOT_ID> slot = (*module)->FindSlot(config.token_label, config.token_serial);
  if (!slot.ok()) return slot.status();
  const std::string token = config.token_label.empty()
                                ? Cat("token with serial '", config.token_serial, "'")
                                : Cat("token '", config.token_label, "'");

  std::vector<Login>& logins = Logins();
  logins.erase(std::remove_if(logins.begin(), logins.end(),
                              [](const Login& l) { return l.hsm.expired(); }),
               logins.end());
  for (const Login& login : logins) {
    if ((login.module != (*module)->p11().functions() &&
         login.module_path != config.module_path) ||
        login.slot != *slot) {
      continue;
    }
    std::shared_ptr<Hsm> hsm = login.hsm.lock();
    if (hsm == nullptr) continue;
    if (!SameDigest(login.pin_digest, pin_digest)) {
      return absl::PermissionDeniedError(
          Cat("tokensign provider: ", token,
              ": this process is logged in to it with another PIN; a login is reused only "
              "for the same PIN (check pin-value, pin-source or the configured PIN)"));
    }
    return hsm;
  }
  // Nobody here holds the login, so C_Login will check the PIN, unless other code in the
  // process logged in (then C_Login would accept any PIN).
  absl::StatusOr<bool> logged_in = LoggedIn(**module, *slot);
  if (!logged_in.ok()) return logged_in.status();
  if (*logged_in) {
    return absl::FailedPreconditionError(
        Cat("tokensign provider: ", token,
            " is already logged in by other code in this process; the provider cannot "
            "check the PIN against that login and does not reuse it"));
  }
  absl::StatusOr<std::unique_ptr<Hsm>> opened = Hsm::Open(config);
  if (!opened.ok()) return opened.status();
  std::shared_ptr<Hsm> hsm = std::move(*opened);
  logins.push_back(Login{(*module)->p11().functions(), config.module_path, *slot,
                         std::string(pin_digest), hsm});
  return hsm;
}

}  // namespace tokensign::hsm::provider
