// KeysetManager's Load checks every key against one scan of the token
// (Hsm::ScanKeys) instead of searching key by key; what the scan reads back
// is still checked before it is trusted. Here a second program holding the
// PIN changes key objects behind the daemon's back: a flag flipped on the
// active key's private object, a second private key given the active key's
// CKA_ID. A restarted daemon must refuse that issuer's key, naming the kid
// and the rule, and keep every other issuer signing.
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "crypto/algorithm.h"
#include "tests/service/keyset_test_fixture.h"
#include "tests/support/p11_objects.h"

namespace tokensign::keyset {
namespace {

class KeysetScanTest : public KeysetManagerTest {
 protected:
  void SetUp() override {
    KeysetManagerTest::SetUp();
    other_ = issuer_ + "-other";
    ASSERT_TRUE(keys_->Load({issuer_, other_}).ok());
    auto mine = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
    ASSERT_TRUE(mine.ok()) << mine.status();
    mine_ = mine->created;
    auto theirs = keys_->RotateKey(other_, crypto::SignAlgorithm::kES256);
    ASSERT_TRUE(theirs.ok()) << theirs.status();
    hsm::HsmImpl& impl = hsm_->impl();
    f_ = impl.RawFunctionList();
    ASSERT_EQ(f_->C_OpenSession(impl.slot(), CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                nullptr, nullptr, &session_),
              CKR_OK);
  }
  void TearDown() override {
    if (session_ != CK_INVALID_HANDLE) f_->C_CloseSession(session_);
  }

  // The private-key object with CKA_ID `id_hex`.
  CK_OBJECT_HANDLE PrivateObject(const std::string& id_hex) {
    return tokensign::testing::FindPrivateKeyObject(f_, session_, id_hex);
  }

  // A restart: a fresh manager loads both issuers; `issuer_` must be refused
  // with a message naming its active kid and `rule`, `other_` must sign.
  void ExpectRestartRefuses(const std::string& rule) {
    keys_ = NewManager();
    ASSERT_TRUE(keys_->Load({issuer_, other_}).ok());
    auto refused = keys_->ActiveKey(issuer_);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(refused.status().message(), mine_.kid))
        << refused.status();
    EXPECT_TRUE(absl::StrContains(refused.status().message(), rule))
        << refused.status();
    EXPECT_FALSE(JwksKids().count(mine_.kid));
    auto other = keys_->ActiveKey(other_);
    ASSERT_TRUE(other.ok()) << other.status();
    auto sig = (*other)->signer->Sign("header.payload");
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE((*other)->signer->Verify("header.payload", *sig).ok());
  }

  std::string other_;
  KeyRecord mine_;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

TEST_F(KeysetScanTest, LoadRefusesAKeyWhoseAttributeWasChanged) {
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE attr{CKA_DERIVE, &yes, sizeof(yes)};
  ASSERT_EQ(f_->C_SetAttributeValue(session_, PrivateObject(mine_.id), &attr, 1),
            CKR_OK);
  ExpectRestartRefuses("CKA_DERIVE = true (want false)");
}

TEST_F(KeysetScanTest, LoadRefusesACkaIdTwoPrivateKeysShare) {
  // Another key generated in the HSM (it passes every attribute rule), its
  // private half then given the active key's CKA_ID.
  auto rogue = hsm_->GenerateKey(crypto::KeyType::kEcP256, "rogue");
  ASSERT_TRUE(rogue.ok()) << rogue.status();
  std::string id = absl::HexStringToBytes(mine_.id);
  CK_ATTRIBUTE attr{CKA_ID, id.data(), id.size()};
  ASSERT_EQ(
      f_->C_SetAttributeValue(session_, PrivateObject(rogue->id), &attr, 1),
      CKR_OK);
  ExpectRestartRefuses("2 private keys share this CKA_ID; refusing to guess");
}

}  // namespace
}  // namespace tokensign::keyset
