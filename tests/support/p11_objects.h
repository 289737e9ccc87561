// Test helpers that reach PKCS#11 objects directly, the way a second program
// holding the PIN would, to change them behind tokensign's back. Test-only;
// header-only (gtest expectations; links OpenSSL). Thread-safety: as the session used.
#ifndef TOKENSIGN_TESTS_SUPPORT_P11_OBJECTS_H_
#define TOKENSIGN_TESTS_SUPPORT_P11_OBJECTS_H_

#include <openssl/bn.h>
#include <openssl/evp.h>

#include <string>

#include "absl/strings/escaping.h"
#include "crypto/ssl_ptr.h"
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

// Imports a fresh P-256 private key with CKA_ID `id` (bytes) on `session` as
// a PIN holder could (C_CreateObject): every rule flag as on a generated key
// (token, private, sensitive, not extractable, sign only), so what sets it
// apart is what only generation gives, CKA_LOCAL and CKA_ALWAYS_SENSITIVE.
// Expects CKR_OK; returns the object (CK_INVALID_HANDLE on failure).
inline CK_OBJECT_HANDLE ImportP256PrivateKey(CK_FUNCTION_LIST_PTR f,
                                             CK_SESSION_HANDLE session,
                                             const std::string& id) {
  crypto::UniquePkey key(EVP_EC_gen("P-256"));
  EXPECT_NE(key, nullptr);
  if (key == nullptr) return CK_INVALID_HANDLE;
  BIGNUM* d = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(key.get(), "priv", &d), 1);
  crypto::UniqueBn owned(d);
  unsigned char scalar[32] = {};
  if (d != nullptr) BN_bn2binpad(d, scalar, sizeof(scalar));
  static constexpr unsigned char kP256Oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                               0xce, 0x3d, 0x03, 0x01, 0x07};
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_KEY_TYPE type = CKK_EC;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_KEY_TYPE, &type, sizeof(type)},
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_SENSITIVE, &yes, sizeof(yes)},
      {CKA_EXTRACTABLE, &no, sizeof(no)},
      {CKA_SIGN, &yes, sizeof(yes)},
      {CKA_DECRYPT, &no, sizeof(no)},
      {CKA_DERIVE, &no, sizeof(no)},
      {CKA_UNWRAP, &no, sizeof(no)},
      {CKA_SIGN_RECOVER, &no, sizeof(no)},
      {CKA_ID, const_cast<char*>(id.data()), id.size()},
      {CKA_EC_PARAMS, const_cast<unsigned char*>(kP256Oid), sizeof(kP256Oid)},
      {CKA_VALUE, scalar, sizeof(scalar)},
  };
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  EXPECT_EQ(f->C_CreateObject(session, tmpl, 14, &h), CKR_OK);
  return h;
}

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SUPPORT_P11_OBJECTS_H_
