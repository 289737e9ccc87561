// The KeysetManager test fixture shared by keyset_manager_test.cc and
// keyset_trust_test.cc: this program's SoftHSM token (tokensign_test_main), a
// provider, a manager with a test clock, one issuer named after the test, and
// InjectRecord for records a crash (or a writer with the PIN) leaves behind.
// Test-only. Thread-safety: the test thread.
#ifndef TOKENSIGN_TESTS_SERVICE_KEYSET_TEST_FIXTURE_H_
#define TOKENSIGN_TESTS_SERVICE_KEYSET_TEST_FIXTURE_H_

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>

#include "hsm/hsm.h"
#include "hsm/hsm_impl.h"
#include "hsm/provider/provider_keys.h"
#include "nlohmann/json.hpp"
#include "signer/keyset/keyset_manager.h"
#include "signer/keyset/keyset_record.h"
#include "tests/service/hsm_test_env.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::keyset {

constexpr int64_t kStart = 1'700'000'000;

// Creates one more keyset CKO_DATA record beside the existing ones, as a crash
// between PutData's create and destroy would leave it (raw PKCS#11, no
// clean-up of older copies).
inline void InjectRecord(hsm::Hsm& hsm, const std::string& issuer,
                  const std::string& value) {
  hsm::HsmImpl& impl = hsm.impl();
  CK_FUNCTION_LIST_PTR f = impl.RawFunctionList();
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  ASSERT_EQ(f->C_OpenSession(impl.slot(), CKF_SERIAL_SESSION | CKF_RW_SESSION,
                             nullptr, nullptr, &session),
            CKR_OK);
  CK_OBJECT_CLASS cls = CKO_DATA;
  CK_BBOOL yes = CK_TRUE;
  std::string app = "tokensign", label = KeysetObjectName(issuer);
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_APPLICATION, app.data(), app.size()},
      {CKA_LABEL, label.data(), label.size()},
      {CKA_VALUE, const_cast<char*>(value.data()), value.size()},
  };
  CK_OBJECT_HANDLE created = CK_INVALID_HANDLE;
  EXPECT_EQ(f->C_CreateObject(session, tmpl, 6, &created), CKR_OK);
  f->C_CloseSession(session);
}

class KeysetManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokensign::testing::OpenHsmWithProvider(&hsm_, &provider_);
    keys_ = NewManager();
    // Each test uses its own issuer name so the shared token's records never
    // collide.
    issuer_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(keys_->Load({issuer_}).ok());
  }

  std::unique_ptr<KeysetManager> NewManager() {
    return std::make_unique<KeysetManager>(
        hsm_,
        [p = provider_.get()](std::string_view id) {
          return p->PrivateKey(id);
        },
        [this] { return absl::FromUnixSeconds(now_.load()); });
  }

  // The kids in the issuer's JWKS.
  std::set<std::string> JwksKids() {
    auto jwks = keys_->Jwks(issuer_);
    EXPECT_TRUE(jwks.ok()) << jwks.status();
    std::set<std::string> kids;
    nlohmann::json parsed = nlohmann::json::parse(*jwks);
    for (const auto& k : parsed["keys"])
      kids.insert(k["kid"].get<std::string>());
    return kids;
  }

  KeyState StateOf(const std::string& kid) {
    auto ks = keys_->Keyset(issuer_);
    EXPECT_TRUE(ks.ok()) << ks.status();
    KeyRecord* k = ks->FindByKid(kid);
    EXPECT_NE(k, nullptr) << kid;
    return k == nullptr ? KeyState::kDestroyed : k->state;
  }

  std::atomic<int64_t> now_{kStart};
  std::shared_ptr<hsm::Hsm> hsm_;
  std::unique_ptr<hsm::provider::HsmKeyProvider> provider_;
  std::unique_ptr<KeysetManager> keys_;
  std::string issuer_;
};

}  // namespace tokensign::keyset

#endif  // TOKENSIGN_TESTS_SERVICE_KEYSET_TEST_FIXTURE_H_
