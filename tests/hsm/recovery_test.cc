// Concurrency and recovery: 8 signing threads; sessions closed or logged out
// behind the pool's back; fork.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "hsm/hsm_impl.h"
#include "hsm/module.h"
#include "hsm/pkcs11_call.h"
#include "tests/hsm/verify_util.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm {
namespace {

using ::tokensign::hsm::testing::VerifyJose;

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hsm = Hsm::Open(tokensign::testing::GlobalToken().config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::move(*hsm);
    auto key = hsm_->GenerateKey(crypto::KeyType::kEcP256, "recovery");
    ASSERT_TRUE(key.ok()) << key.status();
    id_ = key->id;
    auto pub = hsm_->PublicKey(id_);
    ASSERT_TRUE(pub.ok());
    pub_ = std::move(*pub);
  }
  void SignAndVerify(const std::string& message) {
    auto sig = hsm_->Sign(id_, crypto::SignAlgorithm::kES256, message);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE(VerifyJose(pub_.get(), crypto::SignAlgorithm::kES256, message, *sig));
  }
  std::unique_ptr<Hsm> hsm_;
  std::string id_;
  crypto::UniquePkey pub_;
};

TEST_F(RecoveryTest, EightThreadsAllVerify) {
  constexpr int kThreads = 8, kPerThread = 400;
  std::vector<std::vector<std::string>> sigs(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto sig =
            hsm_->Sign(id_, crypto::SignAlgorithm::kES256,
                       "msg-" + std::to_string(t) + "-" + std::to_string(i));
        if (!sig.ok()) {
          failures.fetch_add(1);
          continue;
        }
        sigs[t].push_back(*sig);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(sigs[t].size(), static_cast<size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) {
      ASSERT_TRUE(VerifyJose(
          pub_.get(), crypto::SignAlgorithm::kES256,
          "msg-" + std::to_string(t) + "-" + std::to_string(i), sigs[t][i]))
          << t << "/" << i;
    }
  }
}

TEST_F(RecoveryTest, CloseAllSessionsBehindThePoolsBack) {
  SignAndVerify("before");
  // A second handle on the same module (same process), as another library would
  // have.
  auto other = Module::Load(tokensign::testing::GlobalToken().module_path());
  ASSERT_TRUE(other.ok()) << other.status();
  CK_SLOT_ID slot = hsm_->impl().slot();
  ASSERT_TRUE(TS_P11((*other)->p11(), C_CloseAllSessions, slot).ok());
  SignAndVerify("after close-all");
  SignAndVerify("and again");
  EXPECT_TRUE(hsm_->Healthy());
}

TEST_F(RecoveryTest, LogoutBehindThePoolsBack) {
  SignAndVerify("before");
  auto other = Module::Load(tokensign::testing::GlobalToken().module_path());
  ASSERT_TRUE(other.ok()) << other.status();
  const P11& p11 = (*other)->p11();
  CK_SESSION_HANDLE session;
  ASSERT_TRUE(TS_P11(p11, C_OpenSession, hsm_->impl().slot(),
                     CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                     &session)
                  .ok());
  ASSERT_TRUE(TS_P11(p11, C_Logout, session).ok());
  ASSERT_TRUE(TS_P11(p11, C_CloseSession, session).ok());
  // Every pool session is now logged out; each must recover as it is used.
  for (int i = 0; i < 2 * hsm_->impl().pool().size(); ++i) {
    SignAndVerify("after logout " + std::to_string(i));
  }
  EXPECT_TRUE(hsm_->Healthy());
}

TEST_F(RecoveryTest, SessionsWithAStuckSignOperationAreReopened) {
  SignAndVerify("before");
  HsmImpl& impl = hsm_->impl();
  ASSERT_GE(impl.pool().size(), 2);
  auto key = impl.Handles(id_);
  ASSERT_TRUE(key.ok()) << key.status();
  {
    // Two pooled sessions go back with a C_SignInit never finished (as after
    // a C_Sign that failed without ending its operation): their next
    // C_SignInit returns CKR_OPERATION_ACTIVE.
    auto a = impl.pool().Acquire();
    auto b = impl.pool().Acquire();
    ASSERT_TRUE(a.ok() && b.ok());
    for (auto* lease : {&*a, &*b}) {
      CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
      ASSERT_TRUE(TS_P11(impl.pool().p11(), C_SignInit, lease->session(),
                         &mech, key->private_key)
                      .ok());
      CK_MECHANISM again{CKM_ECDSA, nullptr, 0};
      EXPECT_EQ(RvOf(TS_P11(impl.pool().p11(), C_SignInit, lease->session(),
                            &again, key->private_key)),
                CKR_OPERATION_ACTIVE);
    }
  }
  // Each stuck session costs one retried attempt inside a call, then is
  // re-opened: no call fails, now or later.
  for (int i = 0; i < 3 * impl.pool().size(); ++i) {
    SignAndVerify("after stuck " + std::to_string(i));
  }
  EXPECT_TRUE(hsm_->Healthy());
}

TEST_F(RecoveryTest, ModuleFinalizedBehindThePoolsBack) {
  SignAndVerify("before");
  // Simulates a module that lost all state: C_Finalize + C_Initialize.
  ASSERT_TRUE(hsm_->impl().module().Reinitialize().ok());
  SignAndVerify("after reinit");
  EXPECT_TRUE(hsm_->Healthy());
}

TEST_F(RecoveryTest, SignsInForkedChild) {
  SignAndVerify("parent");
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto sig = hsm_->Sign(id_, crypto::SignAlgorithm::kES256, "child");
    bool ok = sig.ok() &&
              VerifyJose(pub_.get(), crypto::SignAlgorithm::kES256, "child", *sig);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  SignAndVerify("parent after fork");
}

}  // namespace
}  // namespace tokensign::hsm
