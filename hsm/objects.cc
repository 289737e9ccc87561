#include "hsm/objects.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "crypto/str_cat.h"

namespace tokensign::hsm {

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(
    const P11& p11, CK_SESSION_HANDLE session, std::vector<CK_ATTRIBUTE> tmpl) {
  absl::Status status = TS_P11(p11, C_FindObjectsInit, session, tmpl.data(),
                               static_cast<CK_ULONG>(tmpl.size()));
  if (!status.ok()) return status;
  std::vector<CK_OBJECT_HANDLE> found;
  CK_OBJECT_HANDLE batch[64];
  while (true) {
    CK_ULONG count = 0;
    status = TS_P11(p11, C_FindObjects, session, batch, 64, &count);
    if (!status.ok()) break;
    found.insert(found.end(), batch, batch + count);
    if (count == 0) break;
  }
  absl::Status final_status = TS_P11(p11, C_FindObjectsFinal, session);
  if (!status.ok()) return status;
  if (!final_status.ok()) return final_status;
  return found;
}

absl::StatusOr<std::string> GetAttribute(const P11& p11,
                                         CK_SESSION_HANDLE session,
                                         CK_OBJECT_HANDLE object,
                                         CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE attr{type, nullptr, 0};
  absl::Status status =
      TS_P11(p11, C_GetAttributeValue, session, object, &attr, 1);
  if (!status.ok()) return status;
  if (attr.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
    return absl::NotFoundError(Cat("C_GetAttributeValue: attribute 0x",
                                   absl::Hex(type), " unavailable"));
  }
  std::string value(attr.ulValueLen, '\0');
  attr.pValue = value.data();
  status = TS_P11(p11, C_GetAttributeValue, session, object, &attr, 1);
  if (!status.ok()) return status;
  value.resize(attr.ulValueLen);
  return value;
}

absl::StatusOr<bool> GetBoolAttribute(const P11& p11, CK_SESSION_HANDLE session,
                                      CK_OBJECT_HANDLE object,
                                      CK_ATTRIBUTE_TYPE type) {
  CK_BBOOL value = CK_FALSE;
  CK_ATTRIBUTE attr = Attr(type, &value);
  absl::Status status =
      TS_P11(p11, C_GetAttributeValue, session, object, &attr, 1);
  if (!status.ok()) return status;
  return value == CK_TRUE;
}

absl::StatusOr<CK_ULONG> GetUlongAttribute(const P11& p11,
                                           CK_SESSION_HANDLE session,
                                           CK_OBJECT_HANDLE object,
                                           CK_ATTRIBUTE_TYPE type) {
  CK_ULONG value = 0;
  CK_ATTRIBUTE attr = Attr(type, &value);
  absl::Status status =
      TS_P11(p11, C_GetAttributeValue, session, object, &attr, 1);
  if (!status.ok()) return status;
  return value;
}

std::string HexEncode(std::string_view bytes) {
  return absl::BytesToHexString(AbslView(bytes));
}

absl::StatusOr<std::string> ParseKeyId(std::string_view id_hex) {
  if (id_hex.empty() || id_hex.size() % 2 != 0 || id_hex.size() > 128) {
    return absl::InvalidArgumentError(
        Cat("key id '", id_hex.substr(0, 140),
            "': must be an even number (2..128) of hex digits"));
  }
  for (char c : id_hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(Cat("key id '", id_hex,
                                            "': not hex (bad character '",
                                            std::string(1, c), "')"));
    }
  }
  return absl::HexStringToBytes(AbslView(id_hex));
}

}  // namespace tokensign::hsm
