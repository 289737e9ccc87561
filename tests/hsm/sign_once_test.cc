// SignOnce's classification of failures, against a fake PKCS#11 function
// list: return values that leave the session's operation state stuck must
// mark the session broken (re-opened); others must not.
#include <cstring>
#include <string>

#include "crypto/algorithm.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsm/pkcs11_call.h"
#include "hsm/signing.h"

namespace tokensign::hsm {
namespace {

using ::testing::HasSubstr;

CK_RV g_init_rv = CKR_OK;
CK_RV g_sign_rv = CKR_OK;

CK_RV FakeSignInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) {
  return g_init_rv;
}

CK_RV FakeSign(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR sig,
               CK_ULONG_PTR size) {
  if (g_sign_rv != CKR_OK) return g_sign_rv;
  std::memset(sig, 0x5a, *size);
  return CKR_OK;
}

class SignOnceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::memset(&functions_, 0, sizeof(functions_));
    functions_.C_SignInit = FakeSignInit;
    functions_.C_Sign = FakeSign;
    g_init_rv = CKR_OK;
    g_sign_rv = CKR_OK;
    key_.private_key = 7;
    key_.type = crypto::KeyType::kEcP256;
    key_.bits = 256;
    key_.signature_size = 64;
    Mechanisms mechs;
    mechs.ecdsa = true;
    ASSERT_TRUE(
        PrepareMessage(mechs, key_, crypto::SignAlgorithm::kES256, "m", input_).ok());
  }
  absl::Status Sign() {
    return SignOnce(P11(&functions_), 1, key_, input_).status();
  }
  CK_FUNCTION_LIST functions_;
  KeyHandles key_;
  SignInput input_;
};

TEST_F(SignOnceTest, Succeeds) {
  auto sig = SignOnce(P11(&functions_), 1, key_, input_);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(sig->size(), 64u);
}

struct Stuck {
  const char* function;
  CK_RV rv;
  const char* name;
};

class SignOnceStuck : public SignOnceTest,
                      public ::testing::WithParamInterface<Stuck> {};

TEST_P(SignOnceStuck, MarksTheSessionBroken) {
  const Stuck& p = GetParam();
  (std::string(p.function) == "C_SignInit" ? g_init_rv : g_sign_rv) = p.rv;
  absl::Status s = Sign();
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(IsBrokenSessionRv(RvOf(s))) << s;
  EXPECT_FALSE(NeedsModuleReinitRv(RvOf(s))) << "a new session is enough";
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(std::string(p.function) + ": " + p.name));
}

INSTANTIATE_TEST_SUITE_P(
    Rvs, SignOnceStuck,
    ::testing::Values(
        Stuck{"C_SignInit", CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
        Stuck{"C_SignInit", CKR_OPERATION_NOT_INITIALIZED,
              "CKR_OPERATION_NOT_INITIALIZED"},
        Stuck{"C_Sign", CKR_OPERATION_NOT_INITIALIZED,
              "CKR_OPERATION_NOT_INITIALIZED"},
        Stuck{"C_Sign", CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
        Stuck{"C_Sign", CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"}),
    [](const auto& info) {
      return std::string(info.param.function) + "_" +
             std::to_string(info.index);
    });

TEST_F(SignOnceTest, OtherErrorsKeepTheirRvAndTheSession) {
  for (CK_RV rv : {CKR_GENERAL_ERROR, CKR_DATA_LEN_RANGE,
                   CKR_KEY_HANDLE_INVALID, CKR_FUNCTION_FAILED}) {
    g_sign_rv = rv;
    absl::Status s = Sign();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(RvOf(s), rv) << s;
    EXPECT_FALSE(IsBrokenSessionRv(RvOf(s))) << s;
    EXPECT_THAT(std::string(s.message()),
                ::testing::Not(HasSubstr("re-opened")));
  }
  g_sign_rv = CKR_OK;
  g_init_rv = CKR_KEY_HANDLE_INVALID;
  EXPECT_EQ(RvOf(Sign()), CKR_KEY_HANDLE_INVALID)
      << "the key-handle retry in Sign still sees the real rv";
}

}  // namespace
}  // namespace tokensign::hsm
