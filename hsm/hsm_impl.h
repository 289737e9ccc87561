// tokensign::hsm::HsmImpl — the pieces behind the Hsm facade, for hsm/provider
// and the benchmark. Owns the module, the session pool, the key store and the
// data store. Thread-safety: as Hsm (all methods thread-safe).
#ifndef TOKENSIGN_HSM_HSM_IMPL_H_
#define TOKENSIGN_HSM_HSM_IMPL_H_

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "hsm/data_objects.h"
#include "hsm/hsm.h"
#include "hsm/key_store.h"
#include "hsm/module.h"
#include "hsm/recovery.h"
#include "hsm/session_pool.h"
#include "hsm/signing.h"

namespace tokensign::hsm {

class HsmImpl {
 public:
  static absl::StatusOr<std::unique_ptr<HsmImpl>> Open(const HsmConfig& config);

  // Signs on a pooled session through the recovery engine (broken sessions,
  // re-initialized modules and stale handles are retried). `digest` = true:
  // `data` is a digest (SignDigest semantics).
  absl::StatusOr<std::string> Sign(std::string_view id_hex, crypto::SignAlgorithm alg,
                                   std::string_view data, bool digest);

  Module& module() { return *module_; }
  SessionPool& pool() { return *pool_; }
  Recovery& recovery() { return *recovery_; }
  KeyStore& keys() { return *keys_; }
  DataStore& data() { return *data_; }
  const Mechanisms& mechanisms() const { return mechanisms_; }
  const std::string& token_label() const { return token_label_; }

  // Tests only (hsm/hsm_testing.h has the raw access the benchmark uses).
  CK_FUNCTION_LIST_PTR RawFunctionList() const {
    return module_->p11().functions();
  }
  CK_SLOT_ID slot() const { return pool_->slot(); }
  absl::StatusOr<KeyHandles> Handles(std::string_view id_hex) {
    return keys_->Resolve(id_hex);
  }

  ~HsmImpl();

 private:
  HsmImpl() = default;

  // Declared in destruction order reversed: the pool closes sessions before the
  // module finalizes.
  std::unique_ptr<Module> module_;
  std::mutex object_writes_;  // KeyStore and DataStore object writes
  std::unique_ptr<SessionPool> pool_;
  std::unique_ptr<Recovery> recovery_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<DataStore> data_;
  Mechanisms mechanisms_;
  std::string token_label_;
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_HSM_IMPL_H_
