// HsmFaultTest: tokensign's Hsm opened through tokensign_fault_pkcs11
// (fault_module.c), which forwards to the test process's SoftHSM token and
// fails chosen PKCS#11 calls on demand (SetFaults writes its rules file), with
// the module's own counters (calls failed, calls inside it now, calls sleeping
// in a DELAY, C_Finalize under a running call) for the tests to prove that a
// fault was injected. Shared by hsm_fault_test.cc (faults while signing) and
// hsm_fault_recovery_test.cc (key generation, login, re-initialization, fork,
// a pulled token).
// Thread-safety: a gtest fixture; SignVerified may be called from the test's
// threads (the Hsm is thread-safe), SetFaults from the test thread only.
#ifndef TOKENSIGN_TESTS_FAULT_HSM_FAULT_FIXTURE_H_
#define TOKENSIGN_TESTS_FAULT_HSM_FAULT_FIXTURE_H_

#include <dlfcn.h>
#include <stdlib.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "tests/hsm/verify_util.h"
#include "tests/support/fault_rules.h"
#include "tests/support/softhsm_token.h"

#ifndef TOKENSIGN_FAULT_MODULE
#error "TOKENSIGN_FAULT_MODULE must name the built fault module"
#endif

namespace tokensign::hsm::testing {

class HsmFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& token = tokensign::testing::GlobalToken();
    control_ = token.dir() + "/fault.ctl";
    setenv("TOKENSIGN_FAULT_CONTROL", control_.c_str(), 1);
    setenv("TOKENSIGN_FAULT_TARGET", token.module_path().c_str(), 1);
    SetFaults("");
    HsmConfig config = token.config();
    config.module_path = TOKENSIGN_FAULT_MODULE;
    config.pool_size = 4;
    auto hsm = Hsm::Open(config);
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::move(*hsm);
    auto key = hsm_->GenerateKey(crypto::KeyType::kEcP256, "fault");
    ASSERT_TRUE(key.ok()) << key.status();
    id_ = key->id;
    auto pub = hsm_->PublicKey(id_);
    ASSERT_TRUE(pub.ok()) << pub.status();
    pub_ = std::move(*pub);
    // The module is loaded now; its counter tells how many calls it failed.
    void* module = dlopen(TOKENSIGN_FAULT_MODULE, RTLD_NOW | RTLD_NOLOAD);
    ASSERT_NE(module, nullptr);
    injected_ = reinterpret_cast<unsigned long (*)()>(
        dlsym(module, "tokensign_fault_injected"));
    overlaps_ = reinterpret_cast<unsigned long (*)()>(
        dlsym(module, "tokensign_fault_finalize_overlaps"));
    inside_ =
        reinterpret_cast<int (*)()>(dlsym(module, "tokensign_fault_inside"));
    delayed_ =
        reinterpret_cast<int (*)()>(dlsym(module, "tokensign_fault_delayed"));
    dlclose(module);  // Hsm keeps its own reference
    ASSERT_NE(injected_, nullptr);
    ASSERT_NE(overlaps_, nullptr);
    ASSERT_NE(inside_, nullptr);
    ASSERT_NE(delayed_, nullptr);
  }
  void TearDown() override {
    SetFaults("");
    if (hsm_ != nullptr && !id_.empty()) (void)hsm_->DestroyKey(id_);
  }

  // Replaces the rules atomically; the generation line makes every write a
  // change, so counts are re-armed even for identical rules.
  void SetFaults(const std::string& rules) {
    ::tokensign::testing::WriteFaultRules(control_, rules);
  }

  // Signs and verifies; an error is returned as is, a bad signature fails the
  // test.
  absl::Status SignVerified(const std::string& message) {
    auto sig = hsm_->Sign(id_, crypto::SignAlgorithm::kES256, message);
    if (!sig.ok()) return sig.status();
    EXPECT_TRUE(::tokensign::hsm::testing::VerifyJose(pub_.get(), crypto::SignAlgorithm::kES256, message, *sig))
        << "a signature that does not verify was returned for " << message;
    return absl::OkStatus();
  }

  // Waits (bounded) until `n` calls sleep in a DELAY inside the module (past
  // every SoftHSM lock, the rule already taken): a state change, not a
  // timing assertion.
  bool AwaitDelayed(int n) {
    for (int i = 0; i < 3000 && delayed_() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return delayed_() >= n;
  }

  std::string control_;
  std::unique_ptr<Hsm> hsm_;
  std::string id_;
  crypto::UniquePkey pub_;
  unsigned long (*injected_)() = nullptr;
  unsigned long (*overlaps_)() = nullptr;  // C_Finalize under a running call
  int (*inside_)() = nullptr;              // calls inside the module now
  int (*delayed_)() = nullptr;             // of those, sleeping in a DELAY
};

}  // namespace tokensign::hsm::testing

#endif  // TOKENSIGN_TESTS_FAULT_HSM_FAULT_FIXTURE_H_
