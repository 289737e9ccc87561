// OpenSSL's pkcs11 engine (libengine-pkcs11-openssl, libp11 underneath) signs
// with keys that tokensign made, addressed by an RFC 7512 URI (token label +
// CKA_ID), in a separate `openssl` process; the signatures verify with the
// OpenSSL CLI and in-process against the PEM of Hsm::PublicKey().
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "tests/interop/verify_sha256.h"
#include "tests/support/softhsm_token.h"

#ifndef TOKENSIGN_PKCS11_ENGINE
#define TOKENSIGN_PKCS11_ENGINE "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
#endif

namespace tokensign::hsm {
namespace {

using tokensign::testing::GlobalToken;
using tokensign::testing::RunCommand;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// "%0a%1b..." for the id attribute of a PKCS#11 URI.
std::string PercentHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += "%" + hex.substr(i, 2);
  return out;
}

class EngineInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(TOKENSIGN_PKCS11_ENGINE)) {
      GTEST_SKIP() << "no pkcs11 engine at " << TOKENSIGN_PKCS11_ENGINE;
    }
    const auto& token = GlobalToken();
    dir_ = token.dir() + "/engine";
    std::filesystem::create_directories(dir_);
    // The engine learns the module from this config (not p11-kit's proxy).
    WriteFile(dir_ + "/openssl.cnf",
              "openssl_conf = conf\n[conf]\nengines = engines\n"
              "[engines]\npkcs11 = pkcs11\n[pkcs11]\n"
              "dynamic_path = " TOKENSIGN_PKCS11_ENGINE
              "\n"
              "MODULE_PATH = " +
                  token.module_path() + "\ninit = 0\n");
    setenv("OPENSSL_CONF", (dir_ + "/openssl.cnf").c_str(), 1);
    auto hsm = Hsm::Open(token.config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::move(*hsm);
  }
  void TearDown() override { unsetenv("OPENSSL_CONF"); }

  // Generates a key with tokensign and writes its public PEM; returns the URI.
  std::string MakeKey(crypto::KeyType type, const std::string& label, int bits,
                      crypto::UniquePkey& pub) {
    auto info = hsm_->GenerateKey(type, label, bits);
    EXPECT_TRUE(info.ok()) << info.status();
    if (!info.ok()) return "";
    auto exported = hsm_->PublicKey(info->id);
    EXPECT_TRUE(exported.ok()) << exported.status();
    if (!exported.ok()) return "";
    pub = std::move(*exported);
    BIO* bio = BIO_new_file((dir_ + "/" + label + ".pem").c_str(), "w");
    EXPECT_EQ(PEM_write_bio_PUBKEY(bio, pub.get()), 1);
    BIO_free(bio);
    const auto& token = GlobalToken();
    return "pkcs11:token=" + token.label() + ";id=" + PercentHex(info->id) +
           ";type=private;pin-value=" + token.pin();
  }

  std::string dir_;
  std::unique_ptr<Hsm> hsm_;
};


TEST_F(EngineInteropTest, PkeyutlSignsADigestWithOurEcKey) {
  crypto::UniquePkey pub;
  std::string uri = MakeKey(crypto::KeyType::kEcP256, "engine-ec", 0, pub);
  ASSERT_FALSE(uri.empty());
  const std::string message = "signed by the pkcs11 engine";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(message.data()), message.size(),
         digest);
  WriteFile(dir_ + "/digest.bin",
            std::string(reinterpret_cast<char*>(digest), sizeof(digest)));
  auto sign = RunCommand({"openssl", "pkeyutl", "-engine", "pkcs11", "-keyform",
                          "engine", "-inkey", uri, "-sign", "-in",
                          dir_ + "/digest.bin", "-out", dir_ + "/ec.sig"});
  ASSERT_TRUE(sign.ok()) << sign.status();
  ASSERT_EQ(sign->exit_code, 0) << sign->output;
  auto verify =
      RunCommand({"openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                  dir_ + "/engine-ec.pem", "-in", dir_ + "/digest.bin",
                  "-sigfile", dir_ + "/ec.sig"});
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_EQ(verify->exit_code, 0) << verify->output;
  EXPECT_NE(verify->output.find("Signature Verified Successfully"),
            std::string::npos)
      << verify->output;
  // Independently of the CLI: DER ECDSA over SHA-256 of the message.
  std::string sig = ReadFile(dir_ + "/ec.sig");
  EXPECT_TRUE(tokensign::testing::VerifySha256(pub.get(), message, sig));
  EXPECT_FALSE(tokensign::testing::VerifySha256(pub.get(), message + "?", sig));
}

TEST_F(EngineInteropTest, DgstSignsWithOurRsaKey) {
  crypto::UniquePkey pub;
  std::string uri = MakeKey(crypto::KeyType::kRsa, "engine-rsa", 2048, pub);
  ASSERT_FALSE(uri.empty());
  const std::string message = "rsa via openssl dgst -engine pkcs11";
  WriteFile(dir_ + "/msg.txt", message);
  auto sign = RunCommand({"openssl", "dgst", "-sha256", "-engine", "pkcs11",
                          "-keyform", "engine", "-sign", uri, "-out",
                          dir_ + "/rsa.sig", dir_ + "/msg.txt"});
  ASSERT_TRUE(sign.ok()) << sign.status();
  ASSERT_EQ(sign->exit_code, 0) << sign->output;
  auto verify = RunCommand({"openssl", "dgst", "-sha256", "-verify",
                            dir_ + "/engine-rsa.pem", "-signature",
                            dir_ + "/rsa.sig", dir_ + "/msg.txt"});
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_EQ(verify->exit_code, 0) << verify->output;
  EXPECT_NE(verify->output.find("Verified OK"), std::string::npos)
      << verify->output;
  std::string sig = ReadFile(dir_ + "/rsa.sig");
  EXPECT_EQ(sig.size(), 256u);
  EXPECT_TRUE(tokensign::testing::VerifySha256(pub.get(), message, sig));
  // The CLI must reject a tampered message (the check can fail).
  WriteFile(dir_ + "/msg.txt", message + "!");
  auto bad = RunCommand({"openssl", "dgst", "-sha256", "-verify",
                         dir_ + "/engine-rsa.pem", "-signature",
                         dir_ + "/rsa.sig", dir_ + "/msg.txt"});
  ASSERT_TRUE(bad.ok());
  EXPECT_NE(bad->exit_code, 0) << bad->output;
}

TEST_F(EngineInteropTest, WrongIdIsRefused) {
  crypto::UniquePkey pub;
  ASSERT_FALSE(MakeKey(crypto::KeyType::kEcP256, "engine-ec2", 0, pub).empty());
  const auto& token = GlobalToken();
  std::string uri = "pkcs11:token=" + token.label() +
                    ";id=" + PercentHex(std::string(32, 'f')) +
                    ";type=private;pin-value=" + token.pin();
  WriteFile(dir_ + "/msg2.txt", "x");
  auto sign = RunCommand({"openssl", "dgst", "-sha256", "-engine", "pkcs11",
                          "-keyform", "engine", "-sign", uri, "-out",
                          dir_ + "/none.sig", dir_ + "/msg2.txt"});
  ASSERT_TRUE(sign.ok());
  EXPECT_NE(sign->exit_code, 0) << sign->output;
}

}  // namespace
}  // namespace tokensign::hsm
