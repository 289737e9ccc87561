// HSM keys through the tokensign provider as EVP_PKEYs: every algorithm signs with the
// token layer's exact EVP call pattern and verifies under OpenSSL's default provider;
// public export, clean errors for wrong types / digests / PSS params, threads.
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "hsm/hsm.h"
#include "hsm/provider/provider_keys.h"
#include "signer/token/jws.h"
#include "signer/token/evp_jws_signer.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm::provider {
namespace {

std::string DrainErrors() {
  std::string out;
  unsigned long e;
  const char* data = nullptr;
  int flags = 0;
  while ((e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += buf;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr) out += std::string(" ") + data;
    out += "\n";
  }
  return out;
}

enum class Pad { kNone, kPkcs1, kPss };

// The token layer's call pattern, verbatim.
absl::StatusOr<std::string> SignLikeTokenLayer(EVP_PKEY* pkey, const char* mdname, Pad pad,
                                               std::string_view msg) {
  crypto::UniqueMdCtx mdctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit_ex(mdctx.get(), &pctx, mdname, nullptr, nullptr, pkey, nullptr) !=
      1) {
    return absl::InternalError("EVP_DigestSignInit_ex: " + DrainErrors());
  }
  if (pad == Pad::kPss) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0) {
      return absl::InternalError("PSS params: " + DrainErrors());
    }
  } else if (pad == Pad::kPkcs1) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) {
      return absl::InternalError("PKCS1 padding: " + DrainErrors());
    }
  }
  const auto* m = reinterpret_cast<const unsigned char*>(msg.data());
  size_t len = 0;
  if (EVP_DigestSign(mdctx.get(), nullptr, &len, m, msg.size()) != 1) {
    return absl::InternalError("EVP_DigestSign(size): " + DrainErrors());
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(mdctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, m,
                     msg.size()) != 1) {
    return absl::InternalError("EVP_DigestSign: " + DrainErrors());
  }
  sig.resize(len);
  return sig;
}

bool Verify(EVP_PKEY* pub, const char* mdname, Pad pad, std::string_view msg,
            std::string_view sig) {
  crypto::UniqueMdCtx mdctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit_ex(mdctx.get(), &pctx, mdname, nullptr, "provider=default", pub,
                              nullptr) != 1) {
    return false;
  }
  if (pad == Pad::kPss &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) <= 0 ||
       EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)) {
    return false;
  }
  return EVP_DigestVerify(mdctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                          sig.size(), reinterpret_cast<const unsigned char*>(msg.data()),
                          msg.size()) == 1;
}

// The provider key's public half, round-tripped through DER SubjectPublicKeyInfo.
crypto::UniquePkey ExportedPublic(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0) return nullptr;
  const unsigned char* p = der;
  crypto::UniquePkey pub(d2i_PUBKEY(nullptr, &p, len));
  OPENSSL_free(der);
  return pub;
}

class ProviderSignTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto hsm = Hsm::Open(testing::GlobalToken().config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::shared_ptr<Hsm>(std::move(*hsm));
    auto provider = HsmKeyProvider::Create(hsm_);
    ASSERT_TRUE(provider.ok()) << provider.status();
    provider_ = std::move(*provider).release();
    auto gen = [](crypto::KeyType t, const char* label, int bits, std::string* id) {
      auto k = hsm_->GenerateKey(t, label, bits);
      ASSERT_TRUE(k.ok()) << k.status();
      *id = k->id;
    };
    gen(crypto::KeyType::kEcP256, "p256", 0, &p256_);
    gen(crypto::KeyType::kEcP384, "p384", 0, &p384_);
    if (testing::GlobalToken().offers_ed25519()) {
      gen(crypto::KeyType::kEd25519, "ed", 0, &ed_);
    }
    gen(crypto::KeyType::kRsa, "rsa", 2048, &rsa_);
  }
  static void TearDownTestSuite() {
    delete provider_;
    provider_ = nullptr;
    hsm_.reset();
  }

  std::shared_ptr<EVP_PKEY> Key(const std::string& id) {
    auto k = provider_->PrivateKey(id);
    EXPECT_TRUE(k.ok()) << k.status();
    return k.ok() ? *k : nullptr;
  }
  crypto::UniquePkey Pub(const std::string& id) {
    auto p = hsm_->PublicKey(id);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  void SignAndVerify(const std::string& id, const char* md, Pad pad) {
    auto key = Key(id);
    ASSERT_NE(key, nullptr);
    const std::string msg = "header.payload-" + id;
    auto sig = SignLikeTokenLayer(key.get(), md, pad, msg);
    ASSERT_TRUE(sig.ok()) << sig.status();
    crypto::UniquePkey pub = Pub(id);
    EXPECT_TRUE(Verify(pub.get(), md, pad, msg, *sig)) << DrainErrors();
    crypto::UniquePkey exported = ExportedPublic(key.get());
    ASSERT_NE(exported, nullptr) << DrainErrors();
    EXPECT_TRUE(Verify(exported.get(), md, pad, msg, *sig)) << DrainErrors();
    EXPECT_FALSE(Verify(pub.get(), md, pad, msg + "x", *sig));
  }

  static std::shared_ptr<Hsm> hsm_;
  static HsmKeyProvider* provider_;
  static std::string p256_, p384_, ed_, rsa_;
};

std::shared_ptr<Hsm> ProviderSignTest::hsm_;
HsmKeyProvider* ProviderSignTest::provider_ = nullptr;
std::string ProviderSignTest::p256_, ProviderSignTest::p384_, ProviderSignTest::ed_,
    ProviderSignTest::rsa_;

TEST_F(ProviderSignTest, ES256SignsDerThatVerifies) {
  SignAndVerify(p256_, "SHA256", Pad::kNone);
  auto sig = SignLikeTokenLayer(Key(p256_).get(), "SHA256", Pad::kNone, "m");
  ASSERT_TRUE(sig.ok()) << sig.status();
  const unsigned char* p = reinterpret_cast<const unsigned char*>(sig->data());
  ECDSA_SIG* parsed = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig->size()));
  EXPECT_NE(parsed, nullptr) << "ECDSA signature must be DER";
  ECDSA_SIG_free(parsed);
}

TEST_F(ProviderSignTest, ES384SignsAndVerifies) { SignAndVerify(p384_, "SHA384", Pad::kNone); }
TEST_F(ProviderSignTest, EdDSASignsAndVerifies) {
  if (ed_.empty()) GTEST_SKIP() << "the test module offers no Ed25519 (p11-kit's RPC)";
  SignAndVerify(ed_, nullptr, Pad::kNone);
}
TEST_F(ProviderSignTest, RS256SignsAndVerifies) { SignAndVerify(rsa_, "SHA256", Pad::kPkcs1); }
TEST_F(ProviderSignTest, PS256SignsAndVerifies) { SignAndVerify(rsa_, "SHA256", Pad::kPss); }

// token::EvpJwsSigner over a provider key (as the audit log's checkpoints use
// it) keeps EVP_PKEY_sign contexts on the HSM key (and verify contexts on its
// public key) and reuses them across threads; every signature must verify
// under OpenSSL's one-shot path too.
TEST_F(ProviderSignTest, EvpJwsSignerReusesContextsOnHsmKeysAcrossThreads) {
  for (auto [id, alg] : {std::pair{p256_, crypto::SignAlgorithm::kES256},
                         std::pair{p384_, crypto::SignAlgorithm::kES384}}) {
    std::shared_ptr<EVP_PKEY> pub(Pub(id).release(), EVP_PKEY_free);
    auto ops = token::EvpJwsSigner::Create(Key(id), pub, alg);
    ASSERT_TRUE(ops.ok()) << ops.status();
    std::atomic<int> good{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 25; ++i) {
          const std::string input = "h.p" + std::to_string(t * 100 + i);
          auto sig = (*ops)->Sign(input);
          if (sig.ok() && (*ops)->Verify(input, *sig).ok() &&
              token::VerifyRaw(pub.get(), alg, input, *sig).ok()) {
            ++good;
          } else {
            ++bad;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0) << crypto::SignAlgorithmName(alg);
    EXPECT_EQ(good.load(), 100);
  }
}

TEST_F(ProviderSignTest, PublicParametersMatchTheHsmPublicKey) {
  struct Case {
    std::string id;
    int bits;
    int max_size;
  } cases[] = {{p256_, 256, 72}, {p384_, 384, 104}, {ed_, 253, 64}, {rsa_, 2048, 256}};
  for (const Case& c : cases) {
    if (c.id.empty()) continue;  // no Ed25519 through this module
    auto key = Key(c.id);
    crypto::UniquePkey pub = Pub(c.id);
    ASSERT_NE(key, nullptr);
    EXPECT_EQ(EVP_PKEY_get_bits(key.get()), EVP_PKEY_get_bits(pub.get())) << c.id;
    if (c.id != ed_) {
      EXPECT_EQ(EVP_PKEY_get_bits(key.get()), c.bits) << c.id;
    }
    EXPECT_EQ(EVP_PKEY_get_size(key.get()), c.max_size) << c.id;
    EXPECT_EQ(EVP_PKEY_get_security_bits(key.get()), EVP_PKEY_get_security_bits(pub.get()));
    crypto::UniquePkey exported = ExportedPublic(key.get());
    ASSERT_NE(exported, nullptr) << DrainErrors();
    EXPECT_EQ(EVP_PKEY_eq(exported.get(), pub.get()), 1) << c.id;
    BIO* bio = BIO_new(BIO_s_mem());
    EXPECT_EQ(PEM_write_bio_PUBKEY(bio, key.get()), 1) << DrainErrors();
    BIO_free(bio);
  }
  // Encoded public key (EC point) / raw Ed25519 key / RSA modulus as JWK code reads them.
  for (const std::string& id : {p256_, p384_}) {
    auto key = Key(id);
    crypto::UniquePkey pub = Pub(id);
    unsigned char* a = nullptr;
    unsigned char* b = nullptr;
    size_t la = EVP_PKEY_get1_encoded_public_key(key.get(), &a);
    size_t lb = EVP_PKEY_get1_encoded_public_key(pub.get(), &b);
    ASSERT_GT(la, 0u) << DrainErrors();
    EXPECT_EQ(std::string(reinterpret_cast<char*>(a), la),
              std::string(reinterpret_cast<char*>(b), lb));
    OPENSSL_free(a);
    OPENSSL_free(b);
  }
  if (!ed_.empty()) {
    unsigned char a[32], b[32];
    size_t la = sizeof(a), lb = sizeof(b);
    ASSERT_EQ(EVP_PKEY_get_raw_public_key(Key(ed_).get(), a, &la), 1) << DrainErrors();
    ASSERT_EQ(EVP_PKEY_get_raw_public_key(Pub(ed_).get(), b, &lb), 1);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(a), la),
              std::string(reinterpret_cast<char*>(b), lb));
  }
  {
    BIGNUM* n1 = nullptr;
    BIGNUM* n2 = nullptr;
    ASSERT_EQ(EVP_PKEY_get_bn_param(Key(rsa_).get(), "n", &n1), 1) << DrainErrors();
    ASSERT_EQ(EVP_PKEY_get_bn_param(Pub(rsa_).get(), "n", &n2), 1);
    EXPECT_EQ(BN_cmp(n1, n2), 0);
    BN_free(n1);
    BN_free(n2);
  }
  char digest[32] = {};
  EXPECT_GT(EVP_PKEY_get_default_digest_name(Key(p384_).get(), digest, sizeof(digest)), 0);
  EXPECT_STREQ(digest, "SHA384");
}

TEST_F(ProviderSignTest, KeysAreCachedAndMatch) {
  auto a = Key(p256_);
  auto b = Key(p256_);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(EVP_PKEY_eq(a.get(), b.get()), 1);
  EXPECT_NE(EVP_PKEY_eq(a.get(), Key(p384_).get()), 1);
  auto missing = provider_->PrivateKey("00112233445566778899");
  EXPECT_FALSE(missing.ok());
  ERR_clear_error();
}

TEST_F(ProviderSignTest, WrongDigestsAreRefused) {
  struct Case {
    std::string id;
    const char* md;
    Pad pad;
  } cases[] = {{p256_, "SHA1", Pad::kNone},   {p256_, "MD5", Pad::kNone},
               {rsa_, "SHA1", Pad::kPkcs1},   {rsa_, "MD5", Pad::kPkcs1},
               {rsa_, "SHA384", Pad::kPkcs1}, {p256_, "SHA384", Pad::kNone},
               {p384_, "SHA256", Pad::kNone}, {ed_, "SHA256", Pad::kNone}};
  for (const Case& c : cases) {
    if (c.id.empty()) continue;  // no Ed25519 through this module
    auto sig = SignLikeTokenLayer(Key(c.id).get(), c.md, c.pad, "m");
    EXPECT_FALSE(sig.ok()) << c.id << " " << c.md;
    EXPECT_NE(sig.status().message().find("tokensign"), std::string::npos)
        << c.md << ": " << sig.status();
  }
}

TEST_F(ProviderSignTest, WrongTypeAndPssParamsAreRefused) {
  // PSS padding on an EC key: OpenSSL refuses the RSA control for an EC context.
  auto ec = SignLikeTokenLayer(Key(p256_).get(), "SHA256", Pad::kPss, "m");
  EXPECT_FALSE(ec.ok());
  // PSS with a salt length other than the digest length.
  crypto::UniqueMdCtx mdctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestSignInit_ex(mdctx.get(), &pctx, "SHA256", nullptr, nullptr,
                                  Key(rsa_).get(), nullptr),
            1);
  ASSERT_GT(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 0);
  EXPECT_LE(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 20), 0);
  std::string err = DrainErrors();
  EXPECT_NE(err.find("salt length = digest length"), std::string::npos) << err;
  EXPECT_LE(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_X931_PADDING), 0);
  ERR_clear_error();
}

TEST_F(ProviderSignTest, PlainSignOnADigest) {
  // What `openssl pkeyutl -sign` does: EVP_PKEY_sign over a precomputed digest.
  auto key = Key(p256_);
  unsigned char dgst[32];
  unsigned int dlen = 0;
  ASSERT_EQ(EVP_Digest("data", 4, dgst, &dlen, EVP_sha256(), nullptr), 1);
  crypto::UniquePkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_sign_init(ctx.get()), 1) << DrainErrors();
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_sign(ctx.get(), nullptr, &len, dgst, dlen), 1);
  std::string sig(len, '\0');
  ASSERT_EQ(EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, dgst,
                          dlen),
            1)
      << DrainErrors();
  sig.resize(len);
  crypto::UniquePkey pub = Pub(p256_);
  crypto::UniquePkeyCtx vctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pub.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_verify_init(vctx.get()), 1);
  EXPECT_EQ(EVP_PKEY_verify(vctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                            sig.size(), dgst, dlen),
            1);
}

TEST_F(ProviderSignTest, EightThreadsSignWithOneKey) {
  auto key = Key(p256_);
  crypto::UniquePkey pub = Pub(p256_);
  std::atomic<int> good{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::string msg = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto sig = SignLikeTokenLayer(key.get(), "SHA256", Pad::kNone, msg);
        if (sig.ok() && Verify(pub.get(), "SHA256", Pad::kNone, msg, *sig)) {
          ++good;
        } else {
          ++bad;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), 8 * 40);
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace tokensign::hsm::provider
