// Hsm::ScanKeys — every key on the token in two object searches — answers for
// each CKA_ID exactly what FindKey answers (the key, or the same refusal
// naming the key and the rule), and leaves the keys that passed resolvable
// without a search. What it must refuse is made here the way a second module
// user with the PIN could: a flag flipped on a key's private object, a second
// private key given an existing CKA_ID, a key imported rather than generated.
#include <openssl/evp.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "crypto/algorithm.h"
#include "crypto/spki.h"
#include "crypto/ssl_ptr.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "hsm/hsm_impl.h"
#include "tests/support/p11_objects.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm {
namespace {

class KeyScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hsm = Hsm::Open(tokensign::testing::GlobalToken().config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::move(*hsm);
    f_ = hsm_->impl().RawFunctionList();
    // Shares the process's login: what another program holding the PIN does.
    ASSERT_EQ(f_->C_OpenSession(hsm_->impl().slot(),
                                CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                                nullptr, &session_),
              CKR_OK);
  }
  void TearDown() override {
    if (session_ != CK_INVALID_HANDLE) f_->C_CloseSession(session_);
  }

  KeyInfo Generate(crypto::KeyType type, const std::string& label,
                   int bits = 0) {
    auto key = hsm_->GenerateKey(type, label, bits);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? *key : KeyInfo{};
  }

  // The private-key object with CKA_ID `id_hex`.
  CK_OBJECT_HANDLE PrivateObject(const std::string& id_hex) {
    return tokensign::testing::FindPrivateKeyObject(f_, session_, id_hex);
  }

  CK_RV SetBool(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type, bool value) {
    CK_BBOOL v = value ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE attr{type, &v, sizeof(v)};
    return f_->C_SetAttributeValue(session_, object, &attr, 1);
  }

  // The scan's answer for `id` must be FindKey's, code and message.
  void ExpectSameAnswer(const KeyScan& scan, const std::string& id) {
    absl::StatusOr<KeyInfo> scanned = scan.Find(id);
    absl::StatusOr<KeyInfo> found = hsm_->FindKey(id);
    ASSERT_EQ(scanned.status(), found.status()) << id;
    if (!found.ok()) return;
    EXPECT_EQ(scanned->id, found->id);
    EXPECT_EQ(scanned->label, found->label);
    EXPECT_EQ(scanned->type, found->type);
    EXPECT_EQ(scanned->bits, found->bits);
  }

  std::unique_ptr<Hsm> hsm_;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

TEST_F(KeyScanTest, AnswersForEveryKeyWhatFindKeyAnswers) {
  std::vector<KeyInfo> keys = {
      Generate(crypto::KeyType::kEcP256, "scan-p256"),
      Generate(crypto::KeyType::kEcP384, "scan-p384"),
      Generate(crypto::KeyType::kRsa, "scan-rsa", 2048),
  };
  if (tokensign::testing::GlobalToken().offers_ed25519()) {
    keys.push_back(Generate(crypto::KeyType::kEd25519, "scan-ed25519"));
  }
  auto scan = hsm_->ScanKeys();
  ASSERT_TRUE(scan.ok()) << scan.status();
  for (const KeyInfo& key : keys) {
    ASSERT_TRUE(scan->keys.count(key.id)) << key.id;
    ExpectSameAnswer(*scan, key.id);
    EXPECT_EQ(scan->Find(absl::AsciiStrToUpper(key.id))->id, key.id);
    // Resolved by the scan: the provider's lookup and signing use it.
    auto resolved = hsm_->ResolveKey(key.id);
    ASSERT_TRUE(resolved.ok()) << resolved.status();
    EXPECT_EQ(resolved->type, key.type);
    EXPECT_EQ(resolved->bits, key.bits);
  }
  EXPECT_TRUE(hsm_->Sign(keys[0].id, crypto::SignAlgorithm::kES256, "m").ok());
  // An id no private key has: NotFound, worded as FindKey words it.
  const std::string absent = "00112233445566778899aabbccddeeff";
  EXPECT_EQ(scan->Find(absent).status().code(), absl::StatusCode::kNotFound);
  ExpectSameAnswer(*scan, absent);
}

// A key whose private object was made decrypt-capable after generation is
// refused, naming the key and the attribute, and is not resolvable.
TEST_F(KeyScanTest, RefusesAKeyWhoseFlagWasFlipped) {
  KeyInfo good = Generate(crypto::KeyType::kEcP256, "scan-good");
  KeyInfo bad = Generate(crypto::KeyType::kEcP256, "scan-flipped");
  ASSERT_EQ(SetBool(PrivateObject(bad.id), CKA_DERIVE, true), CKR_OK);
  auto scan = hsm_->ScanKeys();
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_TRUE(scan->keys.count(good.id));
  EXPECT_FALSE(scan->keys.count(bad.id));
  absl::StatusOr<KeyInfo> refused = scan->Find(bad.id);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), bad.id));
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                "CKA_DERIVE = true (want false)"))
      << refused.status();
  ExpectSameAnswer(*scan, bad.id);
  EXPECT_EQ(hsm_->ResolveKey(bad.id).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(hsm_->Sign(bad.id, crypto::SignAlgorithm::kES256, "m")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

// Two private keys with one CKA_ID: neither is picked.
TEST_F(KeyScanTest, RefusesACkaIdThatTwoPrivateKeysShare) {
  KeyInfo first = Generate(crypto::KeyType::kEcP256, "scan-first");
  KeyInfo second = Generate(crypto::KeyType::kEcP256, "scan-second");
  std::string id = absl::HexStringToBytes(first.id);
  CK_ATTRIBUTE attr{CKA_ID, id.data(), id.size()};
  ASSERT_EQ(f_->C_SetAttributeValue(session_, PrivateObject(second.id), &attr,
                                    1),
            CKR_OK);
  auto scan = hsm_->ScanKeys();
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_FALSE(scan->keys.count(first.id));
  absl::StatusOr<KeyInfo> refused = scan->Find(first.id);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(
      refused.status().message(),
      "key id " + first.id + ": 2 private keys share this CKA_ID"))
      << refused.status();
  ExpectSameAnswer(*scan, first.id);
  EXPECT_EQ(hsm_->ResolveKey(first.id).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(hsm_->Sign(first.id, crypto::SignAlgorithm::kES256, "m")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

// A private key imported with the PIN (not generated in the HSM: not local,
// not always sensitive) is refused naming the attribute.
TEST_F(KeyScanTest, RefusesAnImportedKey) {
  const std::string id = "scan-imported-id";
  ASSERT_NE(tokensign::testing::ImportP256PrivateKey(f_, session_, id),
            CK_INVALID_HANDLE);
  const std::string id_hex = absl::BytesToHexString(id);
  auto scan = hsm_->ScanKeys();
  ASSERT_TRUE(scan.ok()) << scan.status();
  absl::StatusOr<KeyInfo> refused = scan->Find(id_hex);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(
      absl::StrContains(refused.status().message(), "CKA_ALWAYS_SENSITIVE") ||
      absl::StrContains(refused.status().message(), "CKA_LOCAL"))
      << refused.status();
  ExpectSameAnswer(*scan, id_hex);
}

// A pinned public key (what a keyset load pins after checking the record's
// SPKI) is what PublicKey answers, not the token's public object, and it is
// parsed once, when pinned: PublicKey hands out that key again (the provider
// asks once per key at every load, and an SPKI parse costs OpenSSL 3 a decoder
// set-up, ~0.25 ms, a quarter of a 1,000-key daemon start's CPU before).
TEST_F(KeyScanTest, PublicKeyAnswersThePinnedKeyParsedOnce) {
  KeyInfo a = Generate(crypto::KeyType::kEcP256, "pin-a");
  KeyInfo b = Generate(crypto::KeyType::kEcP256, "pin-b");
  ASSERT_TRUE(hsm_->PinPublicKey(a.id, b.spki_der).ok());
  auto first = hsm_->PublicKey(a.id);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = hsm_->PublicKey(a.id);
  ASSERT_TRUE(second.ok()) << second.status();
  auto want = crypto::ParseSpki(b.spki_der);
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(EVP_PKEY_eq(first->get(), want->get()), 1);
  EXPECT_EQ(first->get(), second->get());  // the pinned key, not a new parse
  EXPECT_FALSE(hsm_->PinPublicKey(b.id, "not an SPKI").ok());
}

}  // namespace
}  // namespace tokensign::hsm
