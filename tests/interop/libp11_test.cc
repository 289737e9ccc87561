// libp11 (Debian libp11-dev 0.4.12) finds and uses keys that tokensign made:
// tokensign generates EC P-256 and RSA 2048 pairs, then libp11 loads the same
// SoftHSM module, finds the token by label, logs in, enumerates the private
// keys, picks ours by CKA_ID and label, signs through PKCS11_get_private_key's
// EVP_PKEY, and the signature is verified with plain OpenSSL against
// Hsm::PublicKey().
#include <libp11.h>
#include <openssl/evp.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "tests/interop/verify_sha256.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm {
namespace {

struct MadeKey {
  KeyInfo info;
  crypto::UniquePkey pub;
};

// EVP_DigestSign / EVP_DigestVerify with SHA-256 (ECDSA DER, RSA PKCS#1 v1.5).
std::string SignSha256(EVP_PKEY* pkey, const std::string& message) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t size = 0;
  std::string sig;
  const auto* data = reinterpret_cast<const unsigned char*>(message.data());
  if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
      EVP_DigestSign(ctx, nullptr, &size, data, message.size()) == 1) {
    sig.resize(size);
    if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &size,
                       data, message.size()) == 1) {
      sig.resize(size);
    } else {
      sig.clear();
    }
  }
  EVP_MD_CTX_free(ctx);
  return sig;
}


class Libp11InteropTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto& token = tokensign::testing::GlobalToken();
    auto hsm = Hsm::Open(token.config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    for (auto [type, label, bits] :
         {std::tuple{crypto::KeyType::kEcP256, "interop-ec", 0},
          std::tuple{crypto::KeyType::kRsa, "interop-rsa", 2048}}) {
      auto info = (*hsm)->GenerateKey(type, label, bits);
      ASSERT_TRUE(info.ok()) << info.status();
      auto pub = (*hsm)->PublicKey(info->id);
      ASSERT_TRUE(pub.ok()) << pub.status();
      keys_->push_back(MadeKey{*info, std::move(*pub)});
    }
    // tokensign is done: its C_Finalize must not pull the module from under
    // libp11, so close it before libp11 initializes the module.
  }
  static void TearDownTestSuite() { keys_->clear(); }

  void SetUp() override {
    ASSERT_EQ(keys_->size(), 2u);
    ctx_ = PKCS11_CTX_new();
    ASSERT_NE(ctx_, nullptr);
    const auto& token = tokensign::testing::GlobalToken();
    ASSERT_EQ(PKCS11_CTX_load(ctx_, token.module_path().c_str()), 0);
    loaded_ = true;
    ASSERT_EQ(PKCS11_enumerate_slots(ctx_, &slots_, &nslots_), 0);
    for (unsigned i = 0; i < nslots_; ++i) {
      if (slots_[i].token != nullptr && slots_[i].token->label != nullptr &&
          token.label() == slots_[i].token->label) {
        slot_ = &slots_[i];
      }
    }
    ASSERT_NE(slot_, nullptr) << "libp11: no token labelled " << token.label();
    ASSERT_EQ(PKCS11_login(slot_, 0, token.pin().c_str()), 0);
  }
  void TearDown() override {
    if (slots_ != nullptr) PKCS11_release_all_slots(ctx_, slots_, nslots_);
    if (loaded_) PKCS11_CTX_unload(ctx_);
    if (ctx_ != nullptr) PKCS11_CTX_free(ctx_);
  }

  // The private key libp11 lists with our CKA_ID; checks the label too.
  PKCS11_KEY* FindOurs(const KeyInfo& info) {
    PKCS11_KEY* keys = nullptr;
    unsigned int nkeys = 0;
    EXPECT_EQ(PKCS11_enumerate_keys(slot_->token, &keys, &nkeys), 0);
    std::string id = absl::HexStringToBytes(info.id);
    PKCS11_KEY* found = nullptr;
    for (unsigned i = 0; i < nkeys; ++i) {
      if (keys[i].id_len == id.size() &&
          std::memcmp(keys[i].id, id.data(), id.size()) == 0) {
        EXPECT_EQ(found, nullptr)
            << "two private keys share CKA_ID " << info.id;
        found = &keys[i];
      }
    }
    if (found != nullptr) {
      EXPECT_TRUE(found->isPrivate);
      EXPECT_STREQ(found->label, info.label.c_str());
    }
    return found;
  }

  void SignWithLibp11(const MadeKey& made) {
    PKCS11_KEY* key = FindOurs(made.info);
    ASSERT_NE(key, nullptr) << "libp11 did not list key " << made.info.id;
    // libp11's public key for it is the one tokensign exported.
    EVP_PKEY* libp11_pub = PKCS11_get_public_key(key);
    ASSERT_NE(libp11_pub, nullptr);
    EXPECT_EQ(EVP_PKEY_eq(libp11_pub, made.pub.get()), 1);
    EVP_PKEY_free(libp11_pub);

    EVP_PKEY* priv = PKCS11_get_private_key(key);
    ASSERT_NE(priv, nullptr);
    const std::string message = "signed by libp11 with " + made.info.label;
    std::string sig = SignSha256(priv, message);
    EVP_PKEY_free(priv);
    ASSERT_FALSE(sig.empty()) << "libp11 signing failed";
    EXPECT_TRUE(tokensign::testing::VerifySha256(made.pub.get(), message, sig));
    EXPECT_FALSE(tokensign::testing::VerifySha256(made.pub.get(), message + "!", sig));
  }

  static inline std::vector<MadeKey>* keys_ = new std::vector<MadeKey>();
  PKCS11_CTX* ctx_ = nullptr;
  bool loaded_ = false;
  PKCS11_SLOT* slots_ = nullptr;
  unsigned int nslots_ = 0;
  PKCS11_SLOT* slot_ = nullptr;
};

TEST_F(Libp11InteropTest, EcP256KeyFoundAndUsed) {
  SignWithLibp11((*keys_)[0]);
}

TEST_F(Libp11InteropTest, Rsa2048KeyFoundAndUsed) {
  ASSERT_EQ((*keys_)[1].info.bits, 2048);
  SignWithLibp11((*keys_)[1]);
}

TEST_F(Libp11InteropTest, UnknownIdIsNotListed) {
  KeyInfo bogus = (*keys_)[0].info;
  bogus.id = std::string(bogus.id.size(), '0');
  EXPECT_EQ(FindOurs(bogus), nullptr);
}

}  // namespace
}  // namespace tokensign::hsm
