// Small helpers over one session for object search and attribute reads, plus
// CKA_ID hex conversion. Every call goes through the P11 choke point.
// Thread-safety: stateless functions; the caller owns the session (a pool
// lease).
#ifndef TOKENSIGN_HSM_OBJECTS_H_
#define TOKENSIGN_HSM_OBJECTS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hsm/pkcs11.h"
#include "hsm/pkcs11_call.h"

namespace tokensign::hsm {

// C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal; all matches (in handle
// order).
absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(
    const P11& p11, CK_SESSION_HANDLE session, std::vector<CK_ATTRIBUTE> tmpl);

// One attribute's value (two-call C_GetAttributeValue).
absl::StatusOr<std::string> GetAttribute(const P11& p11,
                                         CK_SESSION_HANDLE session,
                                         CK_OBJECT_HANDLE object,
                                         CK_ATTRIBUTE_TYPE type);
absl::StatusOr<bool> GetBoolAttribute(const P11& p11, CK_SESSION_HANDLE session,
                                      CK_OBJECT_HANDLE object,
                                      CK_ATTRIBUTE_TYPE type);
absl::StatusOr<CK_ULONG> GetUlongAttribute(const P11& p11,
                                           CK_SESSION_HANDLE session,
                                           CK_OBJECT_HANDLE object,
                                           CK_ATTRIBUTE_TYPE type);

// CKA_ID as lowercase hex, and back. ParseKeyId accepts 2..128 hex digits
// (either case) and names the rule it broke otherwise.
std::string HexEncode(std::string_view bytes);
absl::StatusOr<std::string> ParseKeyId(std::string_view id_hex);

// Attribute builders (the pointed-to value must outlive the template).
inline CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, const void* value,
                         size_t size) {
  return CK_ATTRIBUTE{type, const_cast<void*>(value),
                      static_cast<CK_ULONG>(size)};
}
inline CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, std::string_view value) {
  return Attr(type, value.data(), value.size());
}
template <typename T>
CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, const T* value) {
  return Attr(type, value, sizeof(T));
}

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_OBJECTS_H_
