// KeyStore::Scan: every key on the token in two object searches (private key
// objects, then public ones), for loading many keys at once. Each private
// object's attributes are read in two C_GetAttributeValue calls and checked
// against the same rules as Search (kPrivateKeyRules, DescribeValues); an
// object the bulk read does not clear is checked again with the one-by-one
// reads (CheckPrivateKeyAttributes, Describe), so a refused key carries the
// same message as FindKey gives for it.
#include <iterator>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "crypto/str_cat.h"
#include "hsm/key_store.h"
#include "hsm/objects.h"
#include "hsm/pkcs11_call.h"

namespace tokensign::hsm {
namespace {

constexpr size_t kRuleCount = std::size(kPrivateKeyRules);
// Large enough for any CKA_EC_PARAMS tokensign accepts and an 8192-bit
// modulus; a longer value is read again by Describe.
constexpr size_t kTypeValueMax = 1024;
// CKA_ID of a public object: ParseKeyId names at most 64 bytes.
constexpr size_t kIdMax = 64;

bool Vanished(const absl::Status& status) {
  return RvOf(status) == CKR_OBJECT_HANDLE_INVALID;
}

// A C_GetAttributeValue answer that still filled what it could.
bool Partial(const absl::Status& status) {
  const CK_RV rv = RvOf(status);
  return rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE ||
         rv == CKR_BUFFER_TOO_SMALL;
}

// One private-key object as the bulk read saw it.
struct Scanned {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  std::string id;     // CKA_ID bytes
  std::string label;  // CKA_LABEL
  // CKA_CLASS is CKO_PRIVATE_KEY and every kPrivateKeyRules value is exactly
  // CK_TRUE / CK_FALSE as wanted. False: CheckPrivateKeyAttributes decides.
  bool rules_hold = false;
  // From DescribeValues; nullopt: Describe decides (value not read).
  std::optional<absl::StatusOr<KeyHandles>> described;
};

// Reads `handle`'s attributes: call 1 the fixed-size values (class, key type,
// the rule flags) and the lengths of CKA_ID and CKA_LABEL; call 2 those two
// and CKA_EC_PARAMS or CKA_MODULUS (asked only of a key type that has it, so
// a good key never makes a call fail). nullopt: the object is gone or has no
// CKA_ID (no key tokensign can name).
absl::StatusOr<std::optional<Scanned>> ReadPrivate(const P11& p11,
                                                   CK_SESSION_HANDLE session,
                                                   CK_OBJECT_HANDLE handle) {
  CK_ULONG cls = CK_UNAVAILABLE_INFORMATION;
  CK_ULONG key_type = CK_UNAVAILABLE_INFORMATION;
  CK_BBOOL flags[kRuleCount];
  std::vector<CK_ATTRIBUTE> first;
  first.push_back(Attr(CKA_CLASS, &cls));
  first.push_back(Attr(CKA_KEY_TYPE, &key_type));
  for (size_t i = 0; i < kRuleCount; ++i) {
    flags[i] = 0xFF;
    first.push_back(Attr(kPrivateKeyRules[i].type, &flags[i]));
  }
  const size_t id_at = first.size();
  first.push_back(CK_ATTRIBUTE{CKA_ID, nullptr, 0});
  first.push_back(CK_ATTRIBUTE{CKA_LABEL, nullptr, 0});
  absl::Status status = TS_P11(p11, C_GetAttributeValue, session, handle,
                               first.data(), first.size());
  if (Vanished(status)) return std::nullopt;
  if (!status.ok() && !Partial(status)) return status;

  Scanned out;
  out.handle = handle;
  out.rules_hold = first[0].ulValueLen == sizeof(cls) && cls == CKO_PRIVATE_KEY;
  for (size_t i = 0; i < kRuleCount; ++i) {
    const CK_ATTRIBUTE& a = first[2 + i];
    const CK_BBOOL want = kPrivateKeyRules[i].value ? CK_TRUE : CK_FALSE;
    if (a.ulValueLen != sizeof(CK_BBOOL) || flags[i] != want)
      out.rules_hold = false;
  }
  const CK_ULONG id_len = first[id_at].ulValueLen;
  const CK_ULONG label_len = first[id_at + 1].ulValueLen;
  if (id_len == CK_UNAVAILABLE_INFORMATION || id_len == 0) return std::nullopt;
  out.id.assign(id_len, '\0');
  std::vector<CK_ATTRIBUTE> second{Attr(CKA_ID, out.id.data(), id_len)};
  if (label_len != CK_UNAVAILABLE_INFORMATION && label_len > 0) {
    out.label.assign(label_len, '\0');
    second.push_back(Attr(CKA_LABEL, out.label.data(), label_len));
  }
  const bool typed = first[1].ulValueLen == sizeof(key_type) &&
                     (key_type == CKK_RSA || key_type == CKK_EC ||
                      key_type == CKK_EC_EDWARDS);
  std::string value(typed ? kTypeValueMax : 0, '\0');
  if (typed) {
    second.push_back(Attr(key_type == CKK_RSA ? CKA_MODULUS : CKA_EC_PARAMS,
                          value.data(), value.size()));
  }
  status = TS_P11(p11, C_GetAttributeValue, session, handle, second.data(),
                  second.size());
  if (Vanished(status)) return std::nullopt;
  if (!status.ok() && !Partial(status)) return status;
  if (second[0].ulValueLen != id_len) return std::nullopt;  // changed meanwhile
  if (second.size() > 1 && second[1].type == CKA_LABEL) {
    if (second[1].ulValueLen == CK_UNAVAILABLE_INFORMATION) {
      out.label.clear();
    } else {
      out.label.resize(second[1].ulValueLen);
    }
  }
  if (typed && second.back().ulValueLen != CK_UNAVAILABLE_INFORMATION) {
    value.resize(second.back().ulValueLen);
    out.described = DescribeValues(key_type, value);
  } else if (first[1].ulValueLen == sizeof(key_type) && !typed) {
    out.described = DescribeValues(key_type, "");  // unsupported type
  }
  return out;
}

// CKA_ID (bytes) -> how many public-key objects carry it.
absl::StatusOr<std::map<std::string, std::vector<CK_OBJECT_HANDLE>>>
ScanPublic(const P11& p11, CK_SESSION_HANDLE session) {
  CK_OBJECT_CLASS pub_class = CKO_PUBLIC_KEY;
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> pubs =
      FindObjects(p11, session, {Attr(CKA_CLASS, &pub_class)});
  if (!pubs.ok()) return pubs.status();
  std::map<std::string, std::vector<CK_OBJECT_HANDLE>> by_id;
  for (CK_OBJECT_HANDLE handle : *pubs) {
    char id[kIdMax];
    CK_ATTRIBUTE attr = Attr(CKA_ID, id, sizeof(id));
    absl::Status status =
        TS_P11(p11, C_GetAttributeValue, session, handle, &attr, 1);
    // A public object is nobody's proof of anything: skip what cannot be
    // read (gone, an id longer than tokensign names), but not a lost session.
    if (!status.ok() && IsBrokenSessionRv(RvOf(status)) &&
        RvOf(status) != CKR_BUFFER_TOO_SMALL) {
      return status;
    }
    if (!status.ok() || attr.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
        attr.ulValueLen == 0 || attr.ulValueLen > sizeof(id)) {
      continue;
    }
    by_id[std::string(id, attr.ulValueLen)].push_back(handle);
  }
  return by_id;
}

}  // namespace

absl::StatusOr<KeyInfo> KeyScan::Find(std::string_view id_hex) const {
  const std::string id = AsciiLower(id_hex);
  if (auto it = keys.find(id); it != keys.end()) return it->second;
  if (auto it = refused.find(id); it != refused.end()) return it->second;
  return absl::NotFoundError(
      Cat("key id ", id, ": no private key with this CKA_ID"));
}

absl::StatusOr<KeyScan> KeyStore::Scan(bool with_public_keys) {
  Recovery::Policy policy;
  policy.op = "ScanKeys";
  return recovery_.Run(policy, [&](SessionPool::Lease& lease, uint64_t epoch) {
    return ScanOn(lease, epoch, with_public_keys);
  });
}

absl::StatusOr<CK_OBJECT_HANDLE> KeyStore::FindPublicObject(
    SessionPool::Lease& lease, std::string_view id_hex) {
  absl::StatusOr<std::string> id_bytes = ParseKeyId(id_hex);
  if (!id_bytes.ok()) return id_bytes.status();
  CK_OBJECT_CLASS pub_class = CKO_PUBLIC_KEY;
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> pubs =
      FindObjects(pool_->p11(), lease.session(),
                  {Attr(CKA_CLASS, &pub_class), Attr(CKA_ID, *id_bytes)});
  if (!pubs.ok()) return pubs.status();
  return pubs->size() == 1 ? pubs->front() : CK_INVALID_HANDLE;
}

absl::StatusOr<KeyScan> KeyStore::ScanOn(SessionPool::Lease& lease,
                                         uint64_t epoch,
                                         bool with_public_keys) {
  const P11& p11 = pool_->p11();
  CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
  CK_BBOOL yes = CK_TRUE;
  // Only private token objects, as Search (the template is not trusted: the
  // rules read every attribute back).
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> privs = FindObjects(
      p11, lease.session(),
      {Attr(CKA_CLASS, &priv_class), Attr(CKA_TOKEN, &yes),
       Attr(CKA_PRIVATE, &yes)});
  if (!privs.ok()) return privs.status();
  // Private objects are invisible while logged out: re-login and scan again
  // rather than call every key absent.
  if (!lease.CheckLoggedIn()) {
    return CkStatus("C_FindObjects", CKR_USER_NOT_LOGGED_IN);
  }
  std::map<std::string, std::vector<Scanned>> by_id;
  for (CK_OBJECT_HANDLE handle : *privs) {
    absl::StatusOr<std::optional<Scanned>> read =
        ReadPrivate(p11, lease.session(), handle);
    if (!read.ok()) return read.status();
    if (read->has_value()) by_id[(*read)->id].push_back(**std::move(read));
  }
  absl::StatusOr<std::map<std::string, std::vector<CK_OBJECT_HANDLE>>> pubs =
      with_public_keys
          ? ScanPublic(p11, lease.session())
          : std::map<std::string, std::vector<CK_OBJECT_HANDLE>>();
  if (!pubs.ok()) return pubs.status();

  KeyScan scan;
  absl::flat_hash_map<std::string, KeyHandles> good;
  for (auto& [id_bytes, objects] : by_id) {
    const std::string id_hex = HexEncode(id_bytes);
    if (objects.size() > 1) {
      scan.refused[id_hex] = RefuseSharedId(id_hex, objects.size());
      continue;
    }
    Scanned& key = objects.front();
    if (!key.rules_hold) {  // the one-by-one check names the rule
      absl::Status checked =
          CheckPrivateKeyAttributes(p11, lease.session(), key.handle);
      if (IsBrokenSessionRv(RvOf(checked))) return checked;
      if (!checked.ok()) {
        scan.refused[id_hex] = RefuseKeyAttributes(id_hex, checked);
        continue;
      }
    }
    if (!key.described.has_value()) key.described = Describe(lease, key.handle);
    absl::StatusOr<KeyHandles>& handles = *key.described;
    if (!handles.ok()) {
      if (IsBrokenSessionRv(RvOf(handles.status()))) return handles.status();
      scan.refused[id_hex] = handles.status();
      continue;
    }
    handles->private_key = key.handle;
    if (auto it = pubs->find(id_bytes); it != pubs->end() &&
                                         it->second.size() == 1) {
      handles->public_key = it->second.front();
    }
    good[id_hex] = *handles;
    scan.keys[id_hex] =
        KeyInfo{id_hex, std::move(key.label), handles->type, handles->bits, ""};
  }
  std::unique_lock<std::shared_mutex> lock(cache_mu_);
  cache_ = std::move(good);
  cache_epoch_ = epoch;
  return scan;
}

}  // namespace tokensign::hsm
