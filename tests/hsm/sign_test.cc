// Generate -> sign -> verify (OpenSSL) for every algorithm, digests, RSA sizes,
// attributes read back, list/destroy, data records.
#include <openssl/sha.h>

#include <string>

#include "crypto/algorithm.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "hsm/hsm_impl.h"
#include "hsm/objects.h"
#include "tests/hsm/verify_util.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm {
namespace {

using ::tokensign::hsm::testing::VerifyJose;

class SignTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hsm = Hsm::Open(tokensign::testing::GlobalToken().config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::move(*hsm);
  }
  std::unique_ptr<Hsm> hsm_;
};

struct AlgCase {
  crypto::SignAlgorithm alg;
  int rsa_bits;
  size_t sig_size;
};

class AlgorithmTest : public SignTest,
                      public ::testing::WithParamInterface<AlgCase> {};

TEST_P(AlgorithmTest, GenerateSignVerify) {
  const AlgCase& c = GetParam();
  if (c.alg == crypto::SignAlgorithm::kEdDSA &&
      !tokensign::testing::GlobalToken().offers_ed25519()) {
    GTEST_SKIP() << "the test module offers no Ed25519 (p11-kit's RPC)";
  }
  auto key = hsm_->GenerateKey(crypto::KeyTypeFor(c.alg), "alg-test", c.rsa_bits);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->id.size(), 32u);
  EXPECT_EQ(key->label, "alg-test");
  EXPECT_EQ(key->type, crypto::KeyTypeFor(c.alg));
  auto pub = hsm_->PublicKey(key->id);
  ASSERT_TRUE(pub.ok()) << pub.status();
  for (std::string message :
       {std::string("header.payload"), std::string(), std::string(5000, 'x')}) {
    auto sig = hsm_->Sign(key->id, c.alg, message);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_EQ(sig->size(), c.sig_size);
    EXPECT_TRUE(VerifyJose(pub->get(), c.alg, message, *sig));
    EXPECT_FALSE(VerifyJose(pub->get(), c.alg, message + "!", *sig));
  }
  if (c.alg != crypto::SignAlgorithm::kEdDSA) {
    std::string message = "digest me";
    std::string digest(c.alg == crypto::SignAlgorithm::kES384 ? 48 : 32, '\0');
    if (c.alg == crypto::SignAlgorithm::kES384) {
      SHA384(reinterpret_cast<const unsigned char*>(message.data()),
             message.size(), reinterpret_cast<unsigned char*>(digest.data()));
    } else {
      SHA256(reinterpret_cast<const unsigned char*>(message.data()),
             message.size(), reinterpret_cast<unsigned char*>(digest.data()));
    }
    auto sig = hsm_->SignDigest(key->id, c.alg, digest);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE(VerifyJose(pub->get(), c.alg, message, *sig));
    EXPECT_TRUE(
        VerifyJose(pub->get(), c.alg, digest, *sig, /*digest_only=*/true));
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, AlgorithmTest,
    ::testing::Values(AlgCase{crypto::SignAlgorithm::kES256, 0, 64},
                      AlgCase{crypto::SignAlgorithm::kES384, 0, 96},
                      AlgCase{crypto::SignAlgorithm::kEdDSA, 0, 64},
                      AlgCase{crypto::SignAlgorithm::kPS256, 2048, 256},
                      AlgCase{crypto::SignAlgorithm::kRS256, 2048, 256}),
    [](const auto& info) {
      return std::string(crypto::SignAlgorithmName(info.param.alg));
    });

class RsaSizeTest : public SignTest,
                    public ::testing::WithParamInterface<int> {};

TEST_P(RsaSizeTest, GenerateAndSign) {
  auto key = hsm_->GenerateKey(crypto::KeyType::kRsa, "rsa-size", GetParam());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->bits, GetParam());
  auto pub = hsm_->PublicKey(key->id);
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_EQ(EVP_PKEY_get_bits(pub->get()), GetParam());
  auto sig = hsm_->Sign(key->id, crypto::SignAlgorithm::kPS256, "m");
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(sig->size(), static_cast<size_t>(GetParam() / 8));
  EXPECT_TRUE(VerifyJose(pub->get(), crypto::SignAlgorithm::kPS256, "m", *sig));
}

INSTANTIATE_TEST_SUITE_P(Sizes, RsaSizeTest, ::testing::Values(3072, 4096));

TEST_F(SignTest, AttributesReadBack) {
  for (crypto::KeyType type : {crypto::KeyType::kEcP256, crypto::KeyType::kEcP384, crypto::KeyType::kEd25519,
                        crypto::KeyType::kRsa}) {
    SCOPED_TRACE(std::string(crypto::KeyTypeName(type)));
    if (type == crypto::KeyType::kEd25519 &&
        !tokensign::testing::GlobalToken().offers_ed25519()) {
      continue;  // p11-kit's RPC carries no Ed25519 mechanism
    }
    auto key =
        hsm_->GenerateKey(type, "attrs", type == crypto::KeyType::kRsa ? 2048 : 0);
    ASSERT_TRUE(key.ok()) << key.status();
    HsmImpl& impl = hsm_->impl();
    auto handles = impl.Handles(key->id);
    ASSERT_TRUE(handles.ok()) << handles.status();
    auto lease = impl.pool().Acquire();
    ASSERT_TRUE(lease.ok());
    const P11& p11 = impl.pool().p11();
    struct Want {
      CK_ATTRIBUTE_TYPE type;
      bool value;
    };
    std::vector<Want> wants = {
        {CKA_TOKEN, true},
        {CKA_PRIVATE, true},
        {CKA_SENSITIVE, true},
        {CKA_ALWAYS_SENSITIVE, true},
        {CKA_NEVER_EXTRACTABLE, true},
        {CKA_EXTRACTABLE, false},
        {CKA_SIGN, true},
        {CKA_SIGN_RECOVER, false},
        {CKA_DECRYPT, false},
        {CKA_UNWRAP, false},
        {CKA_DERIVE, false},
        {CKA_COPYABLE, false},
    };
    for (const Want& want : wants) {
      auto got = GetBoolAttribute(p11, lease->session(), handles->private_key,
                                  want.type);
      ASSERT_TRUE(got.ok())
          << got.status() << " private attr 0x" << std::hex << want.type;
      EXPECT_EQ(*got, want.value) << "private attr 0x" << std::hex << want.type;
    }
    // The public half only verifies.
    const std::vector<Want> public_wants = {
        {CKA_TOKEN, true},   {CKA_PRIVATE, false},
        {CKA_VERIFY, true},  {CKA_VERIFY_RECOVER, false},
        {CKA_ENCRYPT, false}, {CKA_WRAP, false},
    };
    for (const Want& want : public_wants) {
      auto got = GetBoolAttribute(p11, lease->session(), handles->public_key,
                                  want.type);
      ASSERT_TRUE(got.ok())
          << got.status() << " public attr 0x" << std::hex << want.type;
      EXPECT_EQ(*got, want.value) << "public attr 0x" << std::hex << want.type;
    }
    for (CK_OBJECT_HANDLE h : {handles->private_key, handles->public_key}) {
      auto id = GetAttribute(p11, lease->session(), h, CKA_ID);
      ASSERT_TRUE(id.ok());
      EXPECT_EQ(HexEncode(*id), key->id);
      auto label = GetAttribute(p11, lease->session(), h, CKA_LABEL);
      ASSERT_TRUE(label.ok());
      EXPECT_EQ(*label, "attrs");
    }
    auto value =
        GetAttribute(p11, lease->session(), handles->private_key,
                     type == crypto::KeyType::kRsa ? CKA_PRIVATE_EXPONENT : CKA_VALUE);
    EXPECT_FALSE(value.ok()) << "private value readable";
  }
}

TEST_F(SignTest, FindListDestroy) {
  if (!tokensign::testing::GlobalToken().offers_ed25519()) {
    GTEST_SKIP() << "the test module offers no Ed25519 (p11-kit's RPC)";
  }
  auto a = hsm_->GenerateKey(crypto::KeyType::kEcP256, "list-a");
  auto b = hsm_->GenerateKey(crypto::KeyType::kEd25519, "list-b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->id, b->id);
  auto found = hsm_->FindKey(b->id);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->label, "list-b");
  EXPECT_EQ(found->type, crypto::KeyType::kEd25519);
  auto list = hsm_->ListKeys();
  ASSERT_TRUE(list.ok()) << list.status();
  int seen = 0;
  for (const KeyInfo& info : *list) {
    if (info.id == a->id) {
      ++seen;
      EXPECT_EQ(info.label, "list-a");
      EXPECT_EQ(info.bits, 256);
    }
    if (info.id == b->id) ++seen;
  }
  EXPECT_EQ(seen, 2);
  ASSERT_TRUE(hsm_->Sign(a->id, crypto::SignAlgorithm::kES256, "x").ok());  // cache it
  ASSERT_TRUE(hsm_->DestroyKey(a->id).ok());
  EXPECT_EQ(hsm_->FindKey(a->id).status().code(), absl::StatusCode::kNotFound);
  // A key that disappears under a caller is a precondition failure (the
  // caller's keyset names it), not a lookup miss.
  EXPECT_EQ(hsm_->Sign(a->id, crypto::SignAlgorithm::kES256, "x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(hsm_->DestroyKey(a->id).code(), absl::StatusCode::kNotFound);
  // Upper-case ids name the same key.
  std::string upper = b->id;
  for (char& ch : upper) ch = static_cast<char>(toupper(ch));
  EXPECT_TRUE(hsm_->Sign(upper, crypto::SignAlgorithm::kEdDSA, "x").ok());
}

TEST_F(SignTest, DataRoundTrip) {
  auto missing = hsm_->GetData("keyset/none");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());
  std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(hsm_->PutData("keyset/issuer-a", binary).ok());
  auto got = hsm_->GetData("keyset/issuer-a");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, binary);
  ASSERT_TRUE(hsm_->PutData("keyset/issuer-a", "v2").ok());
  ASSERT_TRUE(hsm_->PutData("keyset/issuer-b", "other").ok());
  got = hsm_->GetData("keyset/issuer-a");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "v2");
  // Records survive a reopen (they are token objects).
  hsm_.reset();
  auto hsm = Hsm::Open(tokensign::testing::GlobalToken().config());
  ASSERT_TRUE(hsm.ok());
  got = (*hsm)->GetData("keyset/issuer-b");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "other");
}

TEST_F(SignTest, HealthyAndLabel) {
  EXPECT_TRUE(hsm_->Healthy());
  EXPECT_EQ(hsm_->token_label(), tokensign::testing::GlobalToken().label());
}

}  // namespace
}  // namespace tokensign::hsm
