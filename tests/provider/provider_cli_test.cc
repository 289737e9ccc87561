// The openssl command line loading tokensign-provider.so (OPENSSL_MODULES) and signing
// with pkcs11: URIs; signatures and CSRs verify with the exported public key.
#include <openssl/pem.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "crypto/algorithm.h"
#include "hsm/hsm.h"
#include "hsm/provider/pkcs11_uri.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm::provider {
namespace {

using testing::GlobalToken;
using testing::RunCommand;
using testing::SoftHsmToken;

class ProviderCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto hsm = Hsm::Open(GlobalToken().config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::move(*hsm).release();
    auto ec = hsm_->GenerateKey(crypto::KeyType::kEcP256, "cli-ec");
    ASSERT_TRUE(ec.ok()) << ec.status();
    ec_id_ = ec->id;
    auto rsa = hsm_->GenerateKey(crypto::KeyType::kRsa, "cli-rsa", 2048);
    ASSERT_TRUE(rsa.ok()) << rsa.status();
    rsa_id_ = rsa->id;
    dir_ = new std::string(GlobalToken().dir() + "/cli");
    ASSERT_EQ(std::system(("mkdir -p " + *dir_).c_str()), 0);
    std::ofstream(*dir_ + "/data") << "data to sign\n";
    WritePub(ec_id_, *dir_ + "/ec.pem");
    WritePub(rsa_id_, *dir_ + "/rsa.pem");
    setenv("OPENSSL_MODULES", TOKENSIGN_PROVIDER_DIR, 1);
    // The test's module (SoftHSM, or p11-kit's client with
    // TOKENSIGN_TEST_MODULE=p11kit), not the provider's built-in default.
    setenv("TOKENSIGN_PKCS11_MODULE", GlobalToken().module_path().c_str(), 1);
    setenv("TOKENSIGN_PIN_ENV", SoftHsmToken::kPinEnv, 1);
    unsetenv("TOKENSIGN_PIN_FILE");
    unsetenv("TOKENSIGN_TOKEN_LABEL");
  }
  static void TearDownTestSuite() {
    delete hsm_;
    hsm_ = nullptr;
    delete dir_;
  }

  // The public key as tokensign exports it (Hsm::PublicKey), independent of the provider.
  static void WritePub(const std::string& id, const std::string& path) {
    auto pub = hsm_->PublicKey(id);
    ASSERT_TRUE(pub.ok()) << pub.status();
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(PEM_write_PUBKEY(f, pub->get()), 1);
    std::fclose(f);
  }

  static std::string Uri(const std::string& object, UriObjectType type) {
    return FormatPkcs11Uri(GlobalToken().label(), object, "", type);
  }
  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }

  // In an ASan or TSan build the openssl CLI (not instrumented) loads the
  // instrumented tokensign-provider.so only with the sanitizer's runtime
  // preloaded (before any LD_PRELOAD of the command's own). Leak checking
  // stays off there: the CLI's exit-time allocations are OpenSSL's, and the
  // provider's own leaks are checked in-process by provider_module_test.
  static std::vector<std::string> WithSanitizerRuntime(std::vector<std::string> argv) {
#if defined(TOKENSIGN_ASAN_RUNTIME) || defined(TOKENSIGN_TSAN_RUNTIME)
#ifdef TOKENSIGN_ASAN_RUNTIME
    std::string preload = TOKENSIGN_ASAN_RUNTIME;
#else
    std::string preload = TOKENSIGN_TSAN_RUNTIME;
#endif
    std::vector<std::string> rest;
    size_t i = !argv.empty() && argv[0] == "env" ? 1 : 0;
    for (; i < argv.size() && argv[i].find('=') != std::string::npos; ++i) {
      if (argv[i].rfind("LD_PRELOAD=", 0) == 0) {
        preload += ":" + argv[i].substr(sizeof("LD_PRELOAD=") - 1);
      } else {
        rest.push_back(argv[i]);
      }
    }
    rest.insert(rest.end(), argv.begin() + i, argv.end());
    argv = {"env", "LD_PRELOAD=" + preload};
#ifdef TOKENSIGN_ASAN_RUNTIME
    const char* opts = std::getenv("ASAN_OPTIONS");
    argv.push_back(std::string("ASAN_OPTIONS=") + (opts != nullptr ? opts : "") +
                   ":detect_leaks=0");
#endif
    argv.insert(argv.end(), rest.begin(), rest.end());
#endif
    return argv;
  }

  static testing::CommandResult Run(std::vector<std::string> argv) {
    auto r = RunCommand(WithSanitizerRuntime(std::move(argv)));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : testing::CommandResult{};
  }

  static Hsm* hsm_;
  static std::string ec_id_, rsa_id_;
  static std::string* dir_;
};

Hsm* ProviderCliTest::hsm_ = nullptr;
std::string ProviderCliTest::ec_id_, ProviderCliTest::rsa_id_;
std::string* ProviderCliTest::dir_ = nullptr;

TEST_F(ProviderCliTest, DgstSignVerifiesEcAndRsa) {
  for (const char* key : {"ec", "rsa"}) {
    std::string sig = Path(std::string("dgst-") + key + ".sig");
    auto sign = Run({"openssl", "dgst", "-sha256", "-sign",
                     Uri(std::string("cli-") + key, UriObjectType::kPrivate), "-provider",
                     "tokensign", "-provider", "default", "-out", sig, Path("data")});
    ASSERT_EQ(sign.exit_code, 0) << sign.output;
    auto verify = Run({"openssl", "dgst", "-sha256", "-verify", Path(std::string(key) + ".pem"),
                       "-signature", sig, Path("data")});
    EXPECT_EQ(verify.exit_code, 0) << verify.output;
    EXPECT_NE(verify.output.find("Verified OK"), std::string::npos) << verify.output;
  }
}

TEST_F(ProviderCliTest, PkeyutlSignWithIdAndPinFile) {
  // Digest first, then a plain signature over it; PIN from pin-source=file:.
  std::string pin_file = Path("pin");
  std::ofstream(pin_file) << GlobalToken().pin() << "\n";
  auto dg = Run({"openssl", "dgst", "-sha256", "-binary", "-out", Path("data.sha256"),
                 Path("data")});
  ASSERT_EQ(dg.exit_code, 0) << dg.output;
  std::string uri = FormatPkcs11Uri(GlobalToken().label(), "", ec_id_, UriObjectType::kAny) +
                    "?pin-source=file:" + pin_file;
  unsetenv("TOKENSIGN_PIN_ENV");
  auto sign = Run({"openssl", "pkeyutl", "-sign", "-inkey", uri, "-provider", "tokensign",
                   "-provider", "default", "-in", Path("data.sha256"), "-out",
                   Path("pkeyutl.sig")});
  setenv("TOKENSIGN_PIN_ENV", SoftHsmToken::kPinEnv, 1);
  ASSERT_EQ(sign.exit_code, 0) << sign.output;
  auto verify = Run({"openssl", "pkeyutl", "-verify", "-pubin", "-inkey", Path("ec.pem"),
                     "-in", Path("data.sha256"), "-sigfile", Path("pkeyutl.sig")});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_NE(verify.output.find("Signature Verified Successfully"), std::string::npos);
}

TEST_F(ProviderCliTest, ReqMakesACsrWhoseSignatureVerifies) {
  auto req = Run({"openssl", "req", "-new", "-key", Uri("cli-ec", UriObjectType::kAny),
                  "-subj", "/CN=test", "-provider", "tokensign", "-provider", "default",
                  "-out", Path("req.pem")});
  ASSERT_EQ(req.exit_code, 0) << req.output;
  auto verify = Run({"openssl", "req", "-verify", "-noout", "-in", Path("req.pem")});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_NE(verify.output.find("verify OK"), std::string::npos) << verify.output;
  // The CSR carries the HSM key's public key.
  auto pub = Run({"openssl", "req", "-noout", "-pubkey", "-in", Path("req.pem"), "-out",
                  Path("req-pub.pem")});
  ASSERT_EQ(pub.exit_code, 0) << pub.output;
  auto cmp = Run({"cmp", Path("req-pub.pem"), Path("ec.pem")});
  EXPECT_EQ(cmp.exit_code, 0) << cmp.output;
}

TEST_F(ProviderCliTest, PublicKeyThroughTheStore) {
  auto out = Run({"openssl", "pkey", "-pubin", "-in", Uri("cli-rsa", UriObjectType::kPublic),
                  "-provider", "tokensign", "-provider", "default", "-out",
                  Path("store-rsa.pem")});
  ASSERT_EQ(out.exit_code, 0) << out.output;
  EXPECT_EQ(Run({"cmp", Path("store-rsa.pem"), Path("rsa.pem")}).exit_code, 0);
}

// Operators configure the provider in openssl.cnf (hsm/provider/README.md's
// snippet): token and PIN file from there, no -provider flags, no token in the
// URI. A PIN variable in the environment replaces the cnf's pin-file.
TEST_F(ProviderCliTest, OpensslCnfConfiguresTheProviderAndEnvironmentPinWins) {
  const std::string pin_file = Path("cnf-pin");
  std::ofstream(pin_file) << GlobalToken().pin() << "\n";
  const std::string cnf = Path("openssl.cnf");
  std::ofstream(cnf) << "openssl_conf = openssl_init\n[openssl_init]\n"
                        "providers = provider_sect\n[provider_sect]\n"
                        "default = default_sect\ntokensign = tokensign_sect\n"
                        "[default_sect]\nactivate = 1\n[tokensign_sect]\n"
                        "module = " TOKENSIGN_PROVIDER_DIR
                        "/tokensign-provider.so\npkcs11-module = "
                     << GlobalToken().module_path()
                     << "\ntoken-label = " << GlobalToken().label()
                     << "\npin-file = " << pin_file << "\nactivate = 1\n";
  setenv("OPENSSL_CONF", cnf.c_str(), 1);
  for (bool env_pin : {false, true}) {
    SCOPED_TRACE(env_pin ? "TOKENSIGN_PIN_ENV set, pin-file in openssl.cnf"
                         : "everything from openssl.cnf");
    if (env_pin) {
      setenv("TOKENSIGN_PIN_ENV", SoftHsmToken::kPinEnv, 1);
    } else {
      unsetenv("TOKENSIGN_PIN_ENV");
    }
    const std::string sig = Path(env_pin ? "cnf-env.sig" : "cnf.sig");
    auto sign = Run({"openssl", "dgst", "-sha256", "-sign",
                     "pkcs11:object=cli-ec;type=private", "-out", sig,
                     Path("data")});
    EXPECT_EQ(sign.exit_code, 0) << sign.output;
    auto verify = Run({"openssl", "dgst", "-sha256", "-verify", Path("ec.pem"),
                       "-signature", sig, Path("data")});
    EXPECT_EQ(verify.exit_code, 0) << verify.output;
  }
  unsetenv("OPENSSL_CONF");
  setenv("TOKENSIGN_PIN_ENV", SoftHsmToken::kPinEnv, 1);
}

// A URI's module-path used to make openssl dlopen any library it named (running that
// library's code). Now only the configured module is loaded: another path is refused
// with a message, before any dlopen (the spy library writes a file when loaded).
TEST_F(ProviderCliTest, ModulePathOfAnotherLibraryIsRefused) {
  const std::string loaded = Path("spy-loaded");
  std::remove(loaded.c_str());
  std::string uri = Uri("cli-ec", UriObjectType::kPrivate) + "?module-path=" +
                    TOKENSIGN_TEST_SPY_MODULE;
  auto refused = Run({"env", "TOKENSIGN_SPY_LOADED=" + loaded, "openssl", "dgst", "-sha256",
                      "-sign", uri, "-provider", "tokensign", "-provider", "default", "-out",
                      Path("spy.sig"), Path("data")});
  EXPECT_NE(refused.exit_code, 0) << refused.output;
  EXPECT_NE(refused.output.find("module-path: '" TOKENSIGN_TEST_SPY_MODULE
                                "' is not the configured PKCS#11 module"),
            std::string::npos)
      << refused.output;
  EXPECT_FALSE(std::ifstream(loaded).good()) << "the URI's module was loaded";

  // Naming the configured module itself is fine.
  uri = Uri("cli-ec", UriObjectType::kPrivate) + "?module-path=" + GlobalToken().module_path();
  auto same = Run({"openssl", "dgst", "-sha256", "-sign", uri, "-provider", "tokensign",
                   "-provider", "default", "-out", Path("same-module.sig"), Path("data")});
  EXPECT_EQ(same.exit_code, 0) << same.output;
}

// pin-value used to pass through setenv (visible to the whole process, and to any
// child it starts). The spy, preloaded, logs every setenv / unsetenv / putenv.
TEST_F(ProviderCliTest, PinValueDoesNotTouchTheEnvironment) {
  const std::string log = Path("spy-env.log");
  std::remove(log.c_str());
  unsetenv("TOKENSIGN_PIN_ENV");
  std::string uri = Uri("cli-ec", UriObjectType::kPrivate) + "?pin-value=" + GlobalToken().pin();
  auto sign = Run({"env", std::string("LD_PRELOAD=") + TOKENSIGN_TEST_SPY_MODULE,
                   "TOKENSIGN_SPY_ENV_LOG=" + log, "openssl", "dgst", "-sha256", "-sign", uri,
                   "-provider", "tokensign", "-provider", "default", "-out",
                   Path("pin-value.sig"), Path("data")});
  setenv("TOKENSIGN_PIN_ENV", SoftHsmToken::kPinEnv, 1);
  ASSERT_EQ(sign.exit_code, 0) << sign.output;
  auto verify = Run({"openssl", "dgst", "-sha256", "-verify", Path("ec.pem"), "-signature",
                     Path("pin-value.sig"), Path("data")});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  std::ifstream in(log);
  std::string calls((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(calls, "") << "openssl with the provider changed its environment";

  // A wrong pin-value fails at C_Login.
  uri = Uri("cli-ec", UriObjectType::kPrivate) + "?pin-value=wrong-" + GlobalToken().pin();
  unsetenv("TOKENSIGN_PIN_ENV");
  auto wrong = Run({"openssl", "dgst", "-sha256", "-sign", uri, "-provider", "tokensign",
                    "-provider", "default", "-out", Path("wrong-pin.sig"), Path("data")});
  setenv("TOKENSIGN_PIN_ENV", SoftHsmToken::kPinEnv, 1);
  EXPECT_NE(wrong.exit_code, 0) << wrong.output;
  EXPECT_NE(wrong.output.find("CKR_PIN_INCORRECT"), std::string::npos) << wrong.output;
}

TEST_F(ProviderCliTest, CleanErrors) {
  auto missing = Run({"openssl", "dgst", "-sha256", "-sign", Uri("no-such-key",
                      UriObjectType::kPrivate), "-provider", "tokensign", "-provider",
                      "default", "-out", Path("x.sig"), Path("data")});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("no key with object='no-such-key'"), std::string::npos)
      << missing.output;
  auto bad = Run({"openssl", "dgst", "-sha256", "-sign", "pkcs11:object=%G1", "-provider",
                  "tokensign", "-provider", "default", "-out", Path("x.sig"), Path("data")});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("bad percent escape"), std::string::npos) << bad.output;
  auto sha1 = Run({"openssl", "dgst", "-sha1", "-sign", Uri("cli-ec", UriObjectType::kPrivate),
                   "-provider", "tokensign", "-provider", "default", "-out", Path("x.sig"),
                   Path("data")});
  EXPECT_NE(sha1.exit_code, 0);
  EXPECT_NE(sha1.output.find("not supported by HSM keys"), std::string::npos) << sha1.output;
}

}  // namespace
}  // namespace tokensign::hsm::provider
