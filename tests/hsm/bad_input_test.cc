// Bad input for every public function and bad configurations: a clear Status,
// no crash.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "crypto/algorithm.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "hsm/pin.h"
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
  ASSERT_EQ(::chmod(pin_file.c_str(), 0600), 0);  // whatever the umask (0664 is refused)
  HsmConfig config = token.config();
  config.pin_env = "";
  config.pin_file = pin_file;
  auto hsm = Hsm::Open(config);
  ASSERT_TRUE(hsm.ok()) << hsm.status();
  EXPECT_EQ((*hsm)->token_label(), token.label());
}

// The PIN file is checked as ssh checks key files (issue 11 item 9).
class PinFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& token = tokensign::testing::GlobalToken();
    path_ = token.dir() + "/pin-file-test";
    ::unlink(path_.c_str());
    FILE* f = fopen(path_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fprintf(f, "%s\n", token.pin().c_str());
    fclose(f);
    config_ = token.config();
    config_.pin_env = "";
    config_.pin_file = path_;
  }
  void TearDown() override { ::unlink(path_.c_str()); }
  void Chmod(mode_t mode) { ASSERT_EQ(::chmod(path_.c_str(), mode), 0); }

  std::string path_;
  HsmConfig config_;
};

TEST_F(PinFileTest, WritableByGroupOrOthersRefusesToOpen) {
  const std::string pin = tokensign::testing::GlobalToken().pin();
  struct Case {
    mode_t mode;
    const char* text;
  };
  for (const Case& c : {Case{0666, "mode 0666 lets group and others write it"},
                        Case{0620, "mode 0620 lets group write it"},
                        Case{0602, "mode 0602 lets others write it"}}) {
    Chmod(c.mode);
    auto hsm = Hsm::Open(config_);
    EXPECT_EQ(hsm.status().code(), absl::StatusCode::kFailedPrecondition) << c.text;
    EXPECT_EQ(Msg(hsm.status()),
              "pin_file " + path_ + ": " + c.text + "; chmod 600 " + path_);
    EXPECT_THAT(Msg(hsm.status()), ::testing::Not(HasSubstr(pin)));
    std::string warning = "unchanged";
    EXPECT_EQ(ReadPin(config_, &warning).status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(CheckPinFile(config_).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

TEST_F(PinFileTest, ReadableByOthersOpensWithAWarning) {
  Chmod(0644);
  auto hsm = Hsm::Open(config_);
  ASSERT_TRUE(hsm.ok()) << hsm.status();
  std::string warning;
  auto pin = ReadPin(config_, &warning);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(*pin, tokensign::testing::GlobalToken().pin());
  const std::string want = "pin_file " + path_ +
                           ": mode 0644 lets others read the PIN; chmod 600 " + path_ +
                           " (or 640 with a group that must read it)";
  EXPECT_EQ(warning, want);
  auto checked = CheckPinFile(config_);
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(*checked, want);
  for (mode_t quiet : {mode_t{0600}, mode_t{0640}, mode_t{0400}, mode_t{0440}}) {
    Chmod(quiet);
    ASSERT_TRUE(ReadPin(config_, &warning).ok()) << quiet;
    EXPECT_EQ(warning, "") << quiet;
  }
  // pin_env: nothing to check.
  HsmConfig env = tokensign::testing::GlobalToken().config();
  checked = CheckPinFile(env);
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(*checked, "");
}

TEST_F(PinFileTest, OwnedByAnotherUserIsRefusedRootIsFine) {
  struct stat st {};
  st.st_mode = S_IFREG | 0600;
  st.st_uid = 1000;
  std::string warning;
  EXPECT_TRUE(CheckPinFileStat("/run/pin", st, 1000, &warning).ok());
  st.st_uid = 0;  // root-owned secrets are fine for any user
  EXPECT_TRUE(CheckPinFileStat("/run/pin", st, 1000, &warning).ok());
  st.st_uid = 1001;
  absl::Status refused = CheckPinFileStat("/run/pin", st, 1000, &warning);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Msg(refused),
            "pin_file /run/pin: owned by uid 1001, who could change the PIN it "
            "holds; it must belong to this user (uid 1000) or root: chown 1000 "
            "/run/pin && chmod 600 /run/pin");
  st.st_uid = 1000;
  st.st_mode = S_IFDIR | 0700;
  EXPECT_EQ(Msg(CheckPinFileStat("/run/pin", st, 1000, &warning)),
            "pin_file /run/pin: not a regular file");
  // Through the real file when this test may chown (it runs as root here).
  if (::geteuid() == 0) {
    Chmod(0600);
    ASSERT_EQ(::chown(path_.c_str(), 4242, 4242), 0);
    auto hsm = Hsm::Open(config_);
    EXPECT_EQ(hsm.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(Msg(hsm.status()), HasSubstr("owned by uid 4242"));
  }
}

TEST_F(PinFileTest, SymlinkIsJudgedByTheFileItNamesAndAFifoIsRefused) {
  // Secret mounts are symlinks into a data directory: allowed, the target is checked.
  Chmod(0600);
  std::string link = path_ + "-link";
  ::unlink(link.c_str());
  ASSERT_EQ(::symlink(path_.c_str(), link.c_str()), 0);
  HsmConfig via_link = config_;
  via_link.pin_file = link;
  EXPECT_TRUE(ReadPin(via_link).ok());
  Chmod(0662);
  EXPECT_EQ(ReadPin(via_link).status().code(), absl::StatusCode::kFailedPrecondition);
  ::unlink(link.c_str());
  std::string fifo = path_ + "-fifo";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  HsmConfig via_fifo = config_;
  via_fifo.pin_file = fifo;
  EXPECT_EQ(Msg(ReadPin(via_fifo).status()), "pin_file " + fifo + ": not a regular file");
  ::unlink(fifo.c_str());
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hsm = Hsm::Open(tokensign::testing::GlobalToken().config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::move(*hsm);
    auto ec = hsm_->GenerateKey(crypto::KeyType::kEcP256, "bad-input-ec");
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
    EXPECT_EQ(hsm_->Sign(bad, crypto::SignAlgorithm::kES256, "m").status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(hsm_->PublicKey(bad).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(hsm_->DestroyKey(bad).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(hsm_->FindKey(unknown).status().code(),
            absl::StatusCode::kNotFound);
  // Signing needs the key to exist: a precondition, not a lookup (a key
  // that vanished under a signer must not read as "unknown issuer/kid").
  EXPECT_EQ(hsm_->Sign(unknown, crypto::SignAlgorithm::kES256, "m").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(hsm_->SignDigest(unknown, crypto::SignAlgorithm::kES256, std::string(32, 0))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(hsm_->PublicKey(unknown).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(hsm_->DestroyKey(unknown).code(), absl::StatusCode::kNotFound);
}

TEST_F(BadInputTest, WrongAlgorithmForKey) {
  for (crypto::SignAlgorithm alg : {crypto::SignAlgorithm::kES384, crypto::SignAlgorithm::kEdDSA,
                            crypto::SignAlgorithm::kPS256, crypto::SignAlgorithm::kRS256}) {
    auto sig = hsm_->Sign(ec_id_, alg, "m");
    EXPECT_EQ(sig.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(sig.status()),
                HasSubstr(std::string(crypto::SignAlgorithmName(alg))));
  }
}

TEST_F(BadInputTest, Digests) {
  EXPECT_EQ(
      hsm_->SignDigest(ec_id_, crypto::SignAlgorithm::kES256, "short").status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->SignDigest(ec_id_, crypto::SignAlgorithm::kES256, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->SignDigest(ec_id_, crypto::SignAlgorithm::kEdDSA, std::string(32, 0))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      hsm_->SignDigest(ec_id_, crypto::SignAlgorithm::kES256, std::string(32, 0)).ok());
}

TEST_F(BadInputTest, GenerateKey) {
  EXPECT_EQ(hsm_->GenerateKey(crypto::KeyType::kRsa, "r", 1024).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->GenerateKey(crypto::KeyType::kRsa, "r", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->GenerateKey(crypto::KeyType::kEcP256, "e", 2048).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->GenerateKey(crypto::KeyType::kEcP256, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm_->GenerateKey(crypto::KeyType::kEcP256, std::string(200, 'l'))
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
  for (crypto::SignAlgorithm alg :
       {crypto::SignAlgorithm::kES256, crypto::SignAlgorithm::kES384, crypto::SignAlgorithm::kEdDSA,
        crypto::SignAlgorithm::kPS256, crypto::SignAlgorithm::kRS256}) {
    EXPECT_EQ(crypto::ParseSignAlgorithm(crypto::SignAlgorithmName(alg)), alg);
  }
  EXPECT_EQ(crypto::ParseSignAlgorithm("none"), std::nullopt);
  EXPECT_EQ(crypto::ParseSignAlgorithm("HS256"), std::nullopt);
  EXPECT_EQ(crypto::ParseSignAlgorithm("es256"), std::nullopt);
}

}  // namespace
}  // namespace tokensign::hsm
