// tokensign::testing::Planter — what an attacker with PKCS#11 access to the
// token but without the PIN can do: open a read/write session without
// logging in and create or destroy *public* objects. Used by the tests that
// prove tokensign never trusts such objects.
//
// Talks to the module directly (dlopen + C_GetFunctionList), not through
// tokensign's hsm/ code, so the test does not depend on what it tests. In a
// process that has already initialized the same module (a test that also
// opened an hsm::Hsm), C_Initialize answers CKR_CRYPTOKI_ALREADY_INITIALIZED
// and the Planter shares it (that process's login then also applies to the
// Planter's session, but every object it creates is still CKA_PRIVATE false).
//
// Thread-safety: one thread.
#ifndef TOKENSIGN_TESTS_SUPPORT_PLANTER_H_
#define TOKENSIGN_TESTS_SUPPORT_PLANTER_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "hsm/pkcs11.h"

namespace tokensign::testing {

class Planter {
 public:
  static absl::StatusOr<std::unique_ptr<Planter>> Open(
      const std::string& module_path, const std::string& token_label);
  ~Planter();
  Planter(const Planter&) = delete;
  Planter& operator=(const Planter&) = delete;

  // A P-256 key pair from `key` (an OpenSSL key the attacker holds) as two
  // public token objects (CKA_PRIVATE false), CKA_ID `id_bytes`, label.
  absl::Status PlantEcKey(std::string_view id_bytes, std::string_view label,
                          EVP_PKEY* key);
  // A public CKO_DATA object shaped like a tokensign record.
  absl::Status PlantData(std::string_view name, std::string_view value);
  // Destroys the public-key objects with this CKA_ID; returns how many.
  absl::StatusOr<int> DestroyPublicKeys(std::string_view id_bytes);

 private:
  Planter() = default;
  void* lib_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  bool finalize_ = false;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SUPPORT_PLANTER_H_
