// hsm::InitializeToken: a token made with in-memory PINs is usable by
// Hsm::Open, and bad input is refused with a message naming what was wrong.
#include "hsm/token_init.h"

#include <cstdlib>

#include "crypto/algorithm.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm {
namespace {

using ::testing::HasSubstr;

TEST(TokenInitTest, InitializedTokenOpensWithItsUserPin) {
  const auto& token = tokensign::testing::GlobalToken();
  ASSERT_TRUE(InitializeToken(token.module_path(), "init-test", "so-pin-1234",
                              "user-pin-5678")
                  .ok());
  setenv("TOKEN_INIT_TEST_PIN", "user-pin-5678", 1);
  HsmConfig config;
  config.module_path = token.module_path();
  config.token_label = "init-test";
  config.pin_env = "TOKEN_INIT_TEST_PIN";
  auto hsm = Hsm::Open(config);
  ASSERT_TRUE(hsm.ok()) << hsm.status();
  auto key = (*hsm)->GenerateKey(crypto::KeyType::kEcP256, "k1");
  ASSERT_TRUE(key.ok()) << key.status();

  // A second initialization with the same label is refused, not a second token.
  absl::Status again = InitializeToken(token.module_path(), "init-test",
                                       "so-pin-1234", "user-pin-5678");
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;

  // The wrong user PIN does not log in. (Login state is per process in PKCS#11:
  // close the logged-in Hsm first, or C_Login would answer
  // CKR_USER_ALREADY_LOGGED_IN.)
  hsm->reset();
  setenv("TOKEN_INIT_TEST_PIN", "wrong-pin-0000", 1);
  auto wrong = Hsm::Open(config);
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("CKR_PIN_INCORRECT"));
}

TEST(TokenInitTest, RejectsBadInputNamingTheField) {
  const auto& token = tokensign::testing::GlobalToken();
  EXPECT_THAT(
      InitializeToken(token.module_path(), "", "so-pin-1234", "user-pin-5678")
          .message(),
      HasSubstr("token label"));
  EXPECT_THAT(InitializeToken(token.module_path(), std::string(33, 'x'),
                              "so-pin-1234", "user-pin-5678")
                  .message(),
              HasSubstr("1..32"));
  EXPECT_THAT(
      InitializeToken(token.module_path(), "short-pin", "so", "user-pin-5678")
          .message(),
      HasSubstr("SO PIN"));
  EXPECT_THAT(
      InitializeToken(token.module_path(), "short-pin", "so-pin-1234", "u")
          .message(),
      HasSubstr("user PIN"));
  EXPECT_FALSE(InitializeToken("/nonexistent/libmodule.so", "x", "so-pin-1234",
                               "user-pin-5678")
                   .ok());
}

}  // namespace
}  // namespace tokensign::hsm
