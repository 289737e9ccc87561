// Test and benchmark access below the Hsm facade: the module's raw function
// list, the token's slot and a key's cached object handles, for the
// benchmark's raw C_Sign ceiling and for tests that act on the token behind
// the pool's back. Production code never includes this header; everything
// else goes through Hsm (hsm/hsm.h) and, inside hsm/, through P11.
// Thread-safety: as Hsm (any thread); the handles are those of the current
// module epoch and go stale if the module is re-initialized.
#ifndef TOKENSIGN_HSM_HSM_TESTING_H_
#define TOKENSIGN_HSM_HSM_TESTING_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "hsm/hsm.h"
#include "hsm/hsm_impl.h"
#include "hsm/pkcs11.h"

namespace tokensign::hsm::testing {

struct RawKeyAccess {
  CK_FUNCTION_LIST_PTR functions = nullptr;  // the module's function list
  CK_SLOT_ID slot = 0;                       // the token's slot
  CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE;
};

// Resolves `key_id` (hex CKA_ID) through the Hsm's handle cache.
inline absl::StatusOr<RawKeyAccess> RawAccess(Hsm& hsm,
                                              std::string_view key_id) {
  HsmImpl& impl = hsm.impl();
  absl::StatusOr<KeyHandles> handles = impl.keys().Resolve(key_id);
  if (!handles.ok()) return handles.status();
  RawKeyAccess out;
  out.functions = impl.module().p11().functions();
  out.slot = impl.pool().slot();
  out.private_key = handles->private_key;
  out.public_key = handles->public_key;
  return out;
}

}  // namespace tokensign::hsm::testing

#endif  // TOKENSIGN_HSM_HSM_TESTING_H_
