// A token that gives fewer sessions than the pool asks for (some HSMs allow 16;
// other applications may hold some): the pool keeps what it got and works,
// instead of failing Open. Driven through the fault module: the first session
// opens, then C_OpenSession answers CKR_SESSION_COUNT.
#include <dlfcn.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "tests/hsm/verify_util.h"
#include "tests/support/fault_rules.h"
#include "tests/support/softhsm_token.h"

#ifndef TOKENSIGN_FAULT_MODULE
#error "TOKENSIGN_FAULT_MODULE must name the built fault module"
#endif

namespace tokensign::hsm {
namespace {

using ::testing::HasSubstr;

class SessionLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& token = tokensign::testing::GlobalToken();
    control_ = token.dir() + "/limit.ctl";
    setenv("TOKENSIGN_FAULT_CONTROL", control_.c_str(), 1);
    setenv("TOKENSIGN_FAULT_TARGET", token.module_path().c_str(), 1);
    SetFaults("");
    config_ = token.config();
    config_.module_path = TOKENSIGN_FAULT_MODULE;
    config_.pool_size = 4;
    // Loaded here for its counters; Hsm::Open shares this copy.
    module_ = dlopen(TOKENSIGN_FAULT_MODULE, RTLD_NOW);
    ASSERT_NE(module_, nullptr) << dlerror();
    delayed_ =
        reinterpret_cast<int (*)()>(dlsym(module_, "tokensign_fault_delayed"));
    ASSERT_NE(delayed_, nullptr);
  }
  void TearDown() override {
    SetFaults("");
    if (module_ != nullptr) dlclose(module_);
  }

  void SetFaults(const std::string& rules) {
    ::tokensign::testing::WriteFaultRules(control_, rules);
  }

  // Waits (bounded) until a call sleeps in a DELAY inside the module: a state
  // change, not a timing assertion.
  bool AwaitDelayed() {
    for (int i = 0; i < 3000 && delayed_() < 1; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return delayed_() >= 1;
  }

  std::string control_;
  HsmConfig config_;
  void* module_ = nullptr;
  int (*delayed_)() = nullptr;
};

TEST_F(SessionLimitTest, PoolKeepsTheSessionsTheTokenGives) {
  // The first session's C_Login waits inside the module; meanwhile the token
  // stops giving sessions, as one limited to a single session would.
  SetFaults("C_Login DELAY 1 3000\n");
  absl::StatusOr<std::unique_ptr<Hsm>> opened = absl::UnknownError("not run");
  std::thread open([&] { opened = Hsm::Open(config_); });
  ASSERT_TRUE(AwaitDelayed());
  SetFaults("C_OpenSession CKR_SESSION_COUNT always\n");
  open.join();
  ASSERT_TRUE(opened.ok()) << opened.status();
  Hsm& hsm = **opened;
  EXPECT_EQ(hsm.pool_size(), 1);
  EXPECT_THAT(hsm.pool_note(), HasSubstr("1 of 4"));
  EXPECT_THAT(hsm.pool_note(), HasSubstr("CKR_SESSION_COUNT"));
  EXPECT_TRUE(hsm.Healthy());

  // The one session serves concurrent callers, still without new sessions.
  auto key = hsm.GenerateKey(crypto::KeyType::kEcP256, "limited");
  ASSERT_TRUE(key.ok()) << key.status();
  auto pub = hsm.PublicKey(key->id);
  ASSERT_TRUE(pub.ok()) << pub.status();
  std::atomic<int> good{0};
  std::vector<std::thread> signers;
  for (int t = 0; t < 4; ++t) {
    signers.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        std::string message = "limited " + std::to_string(t * 10 + i);
        auto sig = hsm.Sign(key->id, crypto::SignAlgorithm::kES256, message);
        if (sig.ok() && testing::VerifyJose(pub->get(),
                                            crypto::SignAlgorithm::kES256,
                                            message, *sig)) {
          ++good;
        }
      }
    });
  }
  for (auto& signer : signers) signer.join();
  EXPECT_EQ(good.load(), 20);
  SetFaults("");
  EXPECT_TRUE(hsm.DestroyKey(key->id).ok());
}

TEST_F(SessionLimitTest, NoSessionAtAllStillFailsOpen) {
  SetFaults("C_OpenSession CKR_SESSION_COUNT always\n");
  auto opened = Hsm::Open(config_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kUnavailable)
      << opened.status();
  EXPECT_THAT(std::string(opened.status().message()),
              HasSubstr("CKR_SESSION_COUNT"));
}

}  // namespace
}  // namespace tokensign::hsm
