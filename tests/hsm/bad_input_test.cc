// Bad input for every public function and bad configurations: a clear Status,
// no crash.
#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(OpenConfigTest, MissingModulePath) {
  HsmConfig config = tokensign::testing::GlobalToken().config();
  config.module_path = "";
  auto hsm = Hsm::Open(config);
  EXPECT_EQ(hsm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(hsm.status()), HasSubstr("module_path"));
}

TEST(OpenConfigTest, NonexistentModule) {
  HsmConfig config = tokensign::testing::GlobalToken().config();
  config.module_path = "/nonexistent/libpkcs11.so";
  auto hsm = Hsm::Open(config);
  EXPECT_EQ(hsm.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(hsm.status()), HasSubstr("dlopen"));
}

TEST(OpenConfigTest, NotAPkcs11Module) {
  HsmConfig config = tokensign::testing::GlobalToken().config();
  config.module_path = "libz.so.1";
  auto hsm = Hsm::Open(config);
  EXPECT_FALSE(hsm.ok());
  EXPECT_THAT(Msg(hsm.status()), HasSubstr("C_GetFunctionList"));
}

TEST(OpenConfigTest, WrongPin) {
  setenv("TOKENSIGN_TEST_WRONG_PIN", "wrong-pin", 1);
  HsmConfig config = tokensign::testing::GlobalToken().config();
  config.pin_env = "TOKENSIGN_TEST_WRONG_PIN";
  auto hsm = Hsm::Open(config);
  EXPECT_EQ(hsm.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Msg(hsm.status()), HasSubstr("C_Login: CKR_PIN_INCORRECT"));
  EXPECT_THAT(Msg(hsm.status()), ::testing::Not(HasSubstr("wrong-pin")));
}

TEST(OpenConfigTest, MissingToken) {
  HsmConfig config = tokensign::testing::GlobalToken().config();
  config.token_label = "no-such-token";
  auto hsm = Hsm::Open(config);
  EXPECT_EQ(hsm.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(hsm.status()), HasSubstr("no-such-token"));
}

TEST(OpenConfigTest, LabelAndSerialBothOrNeither) {
  HsmConfig config = tokensign::testing::GlobalToken().config();
  config.token_serial = "123";
  EXPECT_EQ(Hsm::Open(config).status().code(),
            absl::StatusCode::kInvalidArgument);
  config.token_serial = "";
  config.token_label = "";
  EXPECT_EQ(Hsm::Open(config).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OpenConfigTest, MissingPinEnvAndFile) {
  HsmConfig config = tokensign::testing::GlobalToken().config();
  config.pin_env = "TOKENSIGN_TEST_UNSET_PIN_VAR";
  auto hsm = Hsm::Open(config);
  EXPECT_EQ(hsm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(hsm.status()), HasSubstr("TOKENSIGN_TEST_UNSET_PIN_VAR"));
  config.pin_env = "";
  config.pin_file = "/nonexistent/pin";
  EXPECT_EQ(Hsm::Open(config).status().code(),
            absl::StatusCode::kInvalidArgument);
  config.pin_file = "";
  EXPECT_EQ(Hsm::Open(config).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OpenConfigTest, PinFileAndSerialWork) {
  const auto& token = tokensign::testing::GlobalToken();
  std::string pin_file = token.dir() + "/pin";
  FILE* f = fopen(pin_file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fprintf(f, "%s\n", token.pin().c_str());
  fclose(f);
  HsmConfig config = token.config();
  config.pin_env = "";
  config.pin_file = pin_file;
  auto hsm = Hsm::Open(config);
  ASSERT_TRUE(hsm.ok()) << hsm.status();
  EXPECT_EQ((*hsm)->token_label(), token.label());
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hsm = Hsm::Open(tokensign::testing::GlobalToken().config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::move(*hsm);
    auto ec = hsm_->GenerateKey(KeyType::kEcP256, "bad-input-ec");
    ASSERT_TRUE(ec.ok()) << ec.status();
    ec_id_ = ec->id;
  }
  std::unique_ptr<Hsm> hsm_;
  std::string ec_id_;
};

TEST_F(BadInputTest, KeyIds) {
  const std::string unknown(32, 'a');
  for (const std::string& bad : {std::string("zz"), std::string("abc"),
                                 std::string(), std::string(200, 'a')}) {
    EXPECT_EQ(hsm_->FindKey(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_EQ(hsm_->Sign(bad, SignAlgorithm::kES256, "m").status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(hsm_->PublicKey(bad).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(hsm_->DestroyKey(bad).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(hsm_->FindKey(unknown).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(hsm_->Sign(unknown, SignAlgorithm::kES256, "m").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(hsm_->SignDigest(unknown, SignAlgorithm::kES256, std::string(32, 0))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(hsm_->PublicKey(unknown).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(hsm_->DestroyKey(unknown).code(), absl::StatusCode::kNotFound);
}

TEST_F(BadInputTest, WrongAlgorithmForKey) {
  for (SignAlgorithm alg : {SignAlgorithm::kES384, SignAlgorithm::kEdDSA,
                            SignAlgorithm::kPS256, SignAlgorithm::kRS256}) {
    auto sig = hsm_->Sign(ec_id_, alg, "m");
    EXPECT_EQ(sig.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(sig.status()),
                HasSubstr(std::string(SignAlgorithmName(alg))));
  }
}

TEST_F(BadInputTest, Digests) {
  EXPECT_EQ(
      hsm_->SignDigest(ec_id_, SignAlgorithm::kES256, "short").status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->SignDigest(ec_id_, SignAlgorithm::kES256, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->SignDigest(ec_id_, SignAlgorithm::kEdDSA, std::string(32, 0))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      hsm_->SignDigest(ec_id_, SignAlgorithm::kES256, std::string(32, 0)).ok());
}

TEST_F(BadInputTest, GenerateKey) {
  EXPECT_EQ(hsm_->GenerateKey(KeyType::kRsa, "r", 1024).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->GenerateKey(KeyType::kRsa, "r", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->GenerateKey(KeyType::kEcP256, "e", 2048).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->GenerateKey(KeyType::kEcP256, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->GenerateKey(KeyType::kEcP256, std::string(200, 'l'))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BadInputTest, Data) {
  EXPECT_EQ(hsm_->PutData("", "v").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->GetData("").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->PutData("n", std::string(100 * 1024, 'v')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(hsm_->PutData("empty-value", "").ok());
  auto got = hsm_->GetData("empty-value");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "");
}

TEST(AlgorithmNamesTest, RoundTrip) {
  for (SignAlgorithm alg :
       {SignAlgorithm::kES256, SignAlgorithm::kES384, SignAlgorithm::kEdDSA,
        SignAlgorithm::kPS256, SignAlgorithm::kRS256}) {
    EXPECT_EQ(ParseSignAlgorithm(SignAlgorithmName(alg)), alg);
  }
  EXPECT_EQ(ParseSignAlgorithm("none"), std::nullopt);
  EXPECT_EQ(ParseSignAlgorithm("HS256"), std::nullopt);
  EXPECT_EQ(ParseSignAlgorithm("es256"), std::nullopt);
}

}  // namespace
}  // namespace tokensign::hsm
