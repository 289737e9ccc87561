// Test helpers that reach PKCS#11 objects directly, the way a second program
// holding the PIN would, to change them behind tokensign's back. Test-only;
// header-only (gtest expectations). Thread-safety: as the session used.
#ifndef TOKENSIGN_TESTS_SUPPORT_P11_OBJECTS_H_
#define TOKENSIGN_TESTS_SUPPORT_P11_OBJECTS_H_

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "hsm/pkcs11.h"

namespace tokensign::testing {

// The private-key object with CKA_ID `id_hex` on `session` (the first, if
// several); expects exactly one.
inline CK_OBJECT_HANDLE FindPrivateKeyObject(CK_FUNCTION_LIST_PTR f,
                                             CK_SESSION_HANDLE session,
                                             const std::string& id_hex) {
  std::string id = absl::HexStringToBytes(id_hex);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)},
                         {CKA_ID, id.data(), id.size()}};
  CK_OBJECT_HANDLE found = CK_INVALID_HANDLE;
  CK_ULONG count = 0;
  EXPECT_EQ(f->C_FindObjectsInit(session, tmpl, 2), CKR_OK);
  EXPECT_EQ(f->C_FindObjects(session, &found, 1, &count), CKR_OK);
  EXPECT_EQ(f->C_FindObjectsFinal(session), CKR_OK);
  EXPECT_EQ(count, 1u) << id_hex;
  return found;
}

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SUPPORT_P11_OBJECTS_H_
