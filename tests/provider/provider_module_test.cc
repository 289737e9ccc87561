// tokensign-provider.so loaded as a module into this process (as an OpenSSL program
// loads it), keys taken through pkcs11: URIs with OSSL_STORE: a login is reused only for
// the PIN it was made with, and a token that other code here logged in is not reused.
//
// PKCS#11 keeps one login per token per process (C_Login elsewhere then answers
// CKR_USER_ALREADY_LOGGED_IN without checking the PIN), so these tests never keep an Hsm
// of their own open while the provider opens the token, except where that is the point.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "hsm/hsm.h"
#include "hsm/provider/pkcs11_uri.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm::provider {
namespace {

using testing::GlobalToken;
using testing::SoftHsmToken;

constexpr char kWrongPinEnv[] = "TOKENSIGN_TEST_WRONG_PIN";

std::string DrainErrors() {
  std::string out;
  unsigned long e;
  const char* data = nullptr;
  int flags = 0;
  while ((e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr) out += std::string(data) + "\n";
  }
  return out;
}

// One library context with tokensign-provider.so and the default provider, configured
// from the environment at load time (as the openssl CLI would be).
class ModuleContext {
 public:
  // `pin_env`: TOKENSIGN_PIN_ENV while the provider loads ("" = no configured PIN).
  explicit ModuleContext(const char* pin_env) {
    setenv("TOKENSIGN_PKCS11_MODULE", GlobalToken().module_path().c_str(), 1);
    unsetenv("TOKENSIGN_PIN_FILE");
    unsetenv("TOKENSIGN_TOKEN_LABEL");
    if (*pin_env != '\0') {
      setenv("TOKENSIGN_PIN_ENV", pin_env, 1);
    } else {
      unsetenv("TOKENSIGN_PIN_ENV");
    }
    libctx_ = OSSL_LIB_CTX_new();
    OSSL_PROVIDER_set_default_search_path(libctx_, TOKENSIGN_PROVIDER_DIR);
    tokensign_ = OSSL_PROVIDER_load(libctx_, "tokensign-provider");
    default_ = OSSL_PROVIDER_load(libctx_, "default");
    unsetenv("TOKENSIGN_PIN_ENV");
  }
  ~ModuleContext() {
    if (tokensign_ != nullptr) OSSL_PROVIDER_unload(tokensign_);
    if (default_ != nullptr) OSSL_PROVIDER_unload(default_);
    OSSL_LIB_CTX_free(libctx_);
  }
  ModuleContext(const ModuleContext&) = delete;
  ModuleContext& operator=(const ModuleContext&) = delete;

  bool loaded() const { return tokensign_ != nullptr && default_ != nullptr; }

  // The private key the URI names, or the provider's error text.
  absl::StatusOr<crypto::UniquePkey> Load(const std::string& uri) {
    ERR_clear_error();
    OSSL_STORE_CTX* store =
        OSSL_STORE_open_ex(uri.c_str(), libctx_, nullptr, nullptr, nullptr, nullptr,
                           nullptr, nullptr);
    if (store == nullptr) return absl::InternalError("OSSL_STORE_open_ex: " + DrainErrors());
    crypto::UniquePkey pkey;
    while (pkey == nullptr && !OSSL_STORE_eof(store)) {
      OSSL_STORE_INFO* info = OSSL_STORE_load(store);
      if (info == nullptr) break;
      if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
        pkey.reset(OSSL_STORE_INFO_get1_PKEY(info));
      }
      OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(store);
    if (pkey == nullptr) return absl::InternalError("no key: " + DrainErrors());
    return pkey;
  }

  // Signs with `pkey` in the HSM (ECDSA P-256, SHA-256): true on success.
  bool Signs(EVP_PKEY* pkey) {
    crypto::UniqueMdCtx md(EVP_MD_CTX_new());
    size_t len = 0;
    const unsigned char msg[] = "m";
    return EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", libctx_, nullptr, pkey,
                                 nullptr) == 1 &&
           EVP_DigestSign(md.get(), nullptr, &len, msg, 1) == 1 && len > 0;
  }

 private:
  OSSL_LIB_CTX* libctx_ = nullptr;
  OSSL_PROVIDER* tokensign_ = nullptr;
  OSSL_PROVIDER* default_ = nullptr;
};

class ProviderModuleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Make a key, then close the Hsm again: the token is not logged in afterwards.
    auto hsm = Hsm::Open(GlobalToken().config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    auto key = (*hsm)->GenerateKey(crypto::KeyType::kEcP256, "module-ec");
    ASSERT_TRUE(key.ok()) << key.status();
    setenv(kWrongPinEnv, ("wrong-" + GlobalToken().pin()).c_str(), 1);
  }

  static std::string Uri(const std::string& query) {
    std::string uri =
        FormatPkcs11Uri(GlobalToken().label(), "module-ec", "", UriObjectType::kPrivate);
    return query.empty() ? uri : uri + "?" + query;
  }
  static std::string PinValue(const std::string& pin) { return "pin-value=" + pin; }
};

TEST_F(ProviderModuleTest, WrongOrMissingPinNeverRidesOnAnEarlierLogin) {
  ModuleContext ctx("");
  ASSERT_TRUE(ctx.loaded()) << DrainErrors();
  const std::string pin = GlobalToken().pin();

  auto good = ctx.Load(Uri(PinValue(pin)));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(ctx.Signs(good->get())) << DrainErrors();

  // The token is logged in now; each of these used to get that login.
  auto wrong = ctx.Load(Uri(PinValue("wrong-" + pin)));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("logged in to it with another PIN"),
            std::string::npos)
      << wrong.status();
  auto wrong_env = ctx.Load(Uri(std::string("pin-source=env:") + kWrongPinEnv));
  ASSERT_FALSE(wrong_env.ok());
  EXPECT_NE(wrong_env.status().message().find("another PIN"), std::string::npos)
      << wrong_env.status();
  auto none = ctx.Load(Uri(""));  // no PIN in the URI, none configured
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no PIN source"), std::string::npos)
      << none.status();

  // The same PIN, from any source, reuses the login.
  auto again = ctx.Load(Uri(std::string("pin-source=env:") + SoftHsmToken::kPinEnv));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(ctx.Signs(again->get())) << DrainErrors();
}

// A second provider instance (another library context) in the same process: the login
// is per process, so the check is too. A URI without PIN uses the configured PIN.
TEST_F(ProviderModuleTest, ConfiguredPinIsCheckedAcrossProviderInstances) {
  ModuleContext first("");
  ASSERT_TRUE(first.loaded()) << DrainErrors();
  auto good = first.Load(Uri(PinValue(GlobalToken().pin())));
  ASSERT_TRUE(good.ok()) << good.status();

  ModuleContext wrong_configured(kWrongPinEnv);
  ASSERT_TRUE(wrong_configured.loaded()) << DrainErrors();
  auto wrong = wrong_configured.Load(Uri(""));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("another PIN"), std::string::npos)
      << wrong.status();

  ModuleContext right_configured(SoftHsmToken::kPinEnv);
  ASSERT_TRUE(right_configured.loaded()) << DrainErrors();
  auto right = right_configured.Load(Uri(""));
  ASSERT_TRUE(right.ok()) << right.status();
  EXPECT_TRUE(right_configured.Signs(right->get())) << DrainErrors();
}

// Other code in the process holds the token's login: the provider cannot check a PIN
// against it, so it does not use it, whatever PIN the URI gives.
TEST_F(ProviderModuleTest, TokenLoggedInByOtherCodeIsNotReused) {
  auto own = Hsm::Open(GlobalToken().config());
  ASSERT_TRUE(own.ok()) << own.status();
  ModuleContext ctx("");
  ASSERT_TRUE(ctx.loaded()) << DrainErrors();
  if (GlobalToken().module_kind() == "p11kit") {
    // A remote module's login belongs to its connection, and every load has
    // its own: the other code's login is not visible here, so the provider
    // logs in itself and the token checks the PIN.
    auto wrong = ctx.Load(Uri(PinValue("wrong-" + GlobalToken().pin())));
    ASSERT_FALSE(wrong.ok());
    EXPECT_NE(wrong.status().message().find("CKR_PIN_INCORRECT"), std::string::npos)
        << wrong.status();
    auto right = ctx.Load(Uri(PinValue(GlobalToken().pin())));
    ASSERT_TRUE(right.ok()) << right.status();
    EXPECT_TRUE(ctx.Signs(right->get())) << DrainErrors();
    return;
  }
  for (const std::string& pin : {"wrong-" + GlobalToken().pin(), GlobalToken().pin()}) {
    auto key = ctx.Load(Uri(PinValue(pin)));
    ASSERT_FALSE(key.ok());
    EXPECT_NE(key.status().message().find("already logged in by other code"),
              std::string::npos)
        << key.status();
  }
}

// Only the configured module is ever loaded.
TEST_F(ProviderModuleTest, UriNamingAnotherModuleIsRefused) {
  ModuleContext ctx("");
  ASSERT_TRUE(ctx.loaded()) << DrainErrors();
  auto key = ctx.Load(Uri(PinValue(GlobalToken().pin()) + "&module-path=/tmp/not-the-module.so"));
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("module-path: '/tmp/not-the-module.so' is not the "
                                        "configured PKCS#11 module"),
            std::string::npos)
      << key.status();
}

}  // namespace
}  // namespace tokensign::hsm::provider
