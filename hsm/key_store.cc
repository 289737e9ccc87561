#include "hsm/key_store.h"

#include "absl/strings/ascii.h"
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "crypto/str_cat.h"
#include "hsm/ec_params.h"
#include "hsm/objects.h"
#include "hsm/pkcs11_call.h"
#include "hsm/public_key.h"

namespace tokensign::hsm {

using ec_params::AsView;
using ec_params::kEd25519Name;
using ec_params::kEd25519Oid;
using ec_params::kP256Oid;
using ec_params::kP384Oid;

absl::Status CheckPrivateKeyAttributes(const P11& p11, CK_SESSION_HANDLE session,
                                       CK_OBJECT_HANDLE private_key) {
  absl::StatusOr<CK_ULONG> cls =
      GetUlongAttribute(p11, session, private_key, CKA_CLASS);
  if (!cls.ok()) return cls.status();
  if (*cls != CKO_PRIVATE_KEY) {
    return absl::FailedPreconditionError(
        Cat("CKA_CLASS = 0x", absl::Hex(*cls), " (want CKO_PRIVATE_KEY)"));
  }
  for (const KeyAttributeRule& expect : kPrivateKeyRules) {
    absl::StatusOr<bool> got =
        GetBoolAttribute(p11, session, private_key, expect.type);
    if (!got.ok() && IsBrokenSessionRv(RvOf(got.status()))) return got.status();
    if (!got.ok() || *got != expect.value) {
      return absl::FailedPreconditionError(
          Cat(expect.name, " = ",
              got.ok() ? (*got ? "true" : "false")
                       : std::string(got.status().message()),
              " (want ", expect.value ? "true" : "false", ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status RefuseKeyAttributes(std::string_view id_hex,
                                 const absl::Status& checked) {
  return absl::FailedPreconditionError(
      Cat("key id ", id_hex, ": private key has ", checked.message(),
          "; tokensign uses only keys generated in the HSM as sensitive and "
          "never extractable"));
}

absl::Status RefuseSharedId(std::string_view id_hex, size_t count) {
  return absl::FailedPreconditionError(
      Cat("key id ", id_hex, ": ", count,
          " private keys share this CKA_ID; refusing to guess"));
}

absl::StatusOr<KeyHandles> DescribeValues(CK_ULONG key_type,
                                          std::string_view value) {
  KeyHandles handles;
  if (key_type == CKK_RSA) {
    size_t size = value.size();
    size_t skip = 0;
    while (skip < size && value[skip] == '\0') ++skip;
    handles.type = crypto::KeyType::kRsa;
    handles.bits = static_cast<int>((size - skip) * 8);
    handles.signature_size = size - skip;
    return handles;
  }
  if (key_type != CKK_EC && key_type != CKK_EC_EDWARDS) {
    return absl::UnimplementedError(
        Cat("key: CKA_KEY_TYPE 0x", absl::Hex(key_type), " is not supported"));
  }
  if (value == AsView(kP256Oid, sizeof(kP256Oid))) {
    handles.type = crypto::KeyType::kEcP256;
    handles.bits = 256;
    handles.signature_size = 64;
  } else if (value == AsView(kP384Oid, sizeof(kP384Oid))) {
    handles.type = crypto::KeyType::kEcP384;
    handles.bits = 384;
    handles.signature_size = 96;
  } else if (value == AsView(kEd25519Name, sizeof(kEd25519Name)) ||
             value == AsView(kEd25519Oid, sizeof(kEd25519Oid))) {
    handles.type = crypto::KeyType::kEd25519;
    handles.bits = 256;
    handles.signature_size = 64;
  } else {
    return absl::UnimplementedError(
        "key: CKA_EC_PARAMS names a curve tokensign does not support");
  }
  return handles;
}

absl::StatusOr<KeyHandles> KeyStore::Describe(SessionPool::Lease& lease,
                                              CK_OBJECT_HANDLE private_key) {
  const P11& p11 = pool_->p11();
  absl::StatusOr<CK_ULONG> key_type =
      GetUlongAttribute(p11, lease.session(), private_key, CKA_KEY_TYPE);
  if (!key_type.ok()) return key_type.status();
  std::string value;
  if (*key_type == CKK_RSA || *key_type == CKK_EC ||
      *key_type == CKK_EC_EDWARDS) {
    absl::StatusOr<std::string> read =
        GetAttribute(p11, lease.session(), private_key,
                     *key_type == CKK_RSA ? CKA_MODULUS : CKA_EC_PARAMS);
    if (!read.ok()) return read.status();
    value = *std::move(read);
  }
  absl::StatusOr<KeyHandles> handles = DescribeValues(*key_type, value);
  if (handles.ok()) handles->private_key = private_key;
  return handles;
}

absl::StatusOr<KeyHandles> KeyStore::Search(SessionPool::Lease& lease,
                                            std::string_view id_bytes,
                                            std::string_view id_hex) {
  const P11& p11 = pool_->p11();
  CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY, pub_class = CKO_PUBLIC_KEY;
  CK_BBOOL yes = CK_TRUE;
  // Only private token objects: a look-alike created without the PIN
  // (CKA_PRIVATE false) is not a candidate.
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> privs =
      FindObjects(p11, lease.session(),
                  {Attr(CKA_CLASS, &priv_class), Attr(CKA_TOKEN, &yes),
                   Attr(CKA_PRIVATE, &yes), Attr(CKA_ID, id_bytes)});
  if (!privs.ok()) return privs.status();
  if (privs->empty()) {
    return absl::NotFoundError(
        Cat("key id ", id_hex, ": no private key with this CKA_ID"));
  }
  if (privs->size() > 1) return RefuseSharedId(id_hex, privs->size());
  if (absl::Status checked =
          CheckPrivateKeyAttributes(p11, lease.session(), privs->front());
      !checked.ok()) {
    if (IsBrokenSessionRv(RvOf(checked))) return checked;
    return RefuseKeyAttributes(id_hex, checked);
  }
  absl::StatusOr<KeyHandles> handles = Describe(lease, privs->front());
  if (!handles.ok()) return handles.status();
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> pubs =
      FindObjects(p11, lease.session(),
                  {Attr(CKA_CLASS, &pub_class), Attr(CKA_ID, id_bytes)});
  if (!pubs.ok()) return pubs.status();
  if (pubs->size() == 1) handles->public_key = pubs->front();
  return handles;
}

std::optional<KeyHandles> KeyStore::Cached(uint64_t epoch,
                                           std::string_view id_hex) {
  std::shared_lock<std::shared_mutex> lock(cache_mu_);
  if (cache_epoch_ != epoch) return std::nullopt;
  auto it = cache_.find(AbslView(id_hex));
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<KeyHandles> KeyStore::Resolve(std::string_view id_hex) {
  if (std::optional<KeyHandles> cached = Cached(pool_->epoch(), id_hex)) {
    return *cached;
  }
  return recovery_.Run(KeyPolicy("Resolve", id_hex),
                       [&](SessionPool::Lease& lease, uint64_t epoch) {
                         return Resolve(lease, epoch, id_hex);
                       });
}

absl::StatusOr<KeyHandles> KeyStore::Resolve(SessionPool::Lease& lease,
                                             uint64_t epoch,
                                             std::string_view id_hex) {
  if (std::optional<KeyHandles> cached = Cached(epoch, id_hex)) return *cached;
  absl::StatusOr<std::string> id_bytes = ParseKeyId(id_hex);
  if (!id_bytes.ok()) return id_bytes.status();
  std::string key = AsciiLower(id_hex);
  absl::StatusOr<KeyHandles> handles = Search(lease, *id_bytes, key);
  // Private keys are invisible while logged out: re-login (CheckLoggedIn
  // marks the session broken) and search again before calling a key absent.
  if (absl::IsNotFound(handles.status()) && !lease.CheckLoggedIn()) {
    return CkStatus("C_FindObjects", CKR_USER_NOT_LOGGED_IN);
  }
  if (!handles.ok()) return handles.status();
  std::unique_lock<std::shared_mutex> lock(cache_mu_);
  if (cache_epoch_ != epoch) {
    cache_.clear();
    cache_epoch_ = epoch;
  }
  cache_[key] = *handles;
  if (key != id_hex) cache_[std::string(id_hex)] = *handles;
  return handles;
}

Recovery::Policy KeyStore::KeyPolicy(std::string_view op,
                                     const std::string_view& id_hex) {
  Recovery::Policy policy;
  policy.op = op;
  policy.subject = id_hex;
  // Two pointers: kept inside std::function, no allocation on the sign path.
  policy.on_stale_handle = [this, id = &id_hex] { Invalidate(*id); };
  return policy;
}

void KeyStore::PinPublicKey(std::string_view id_hex,
                            std::shared_ptr<EVP_PKEY> key) {
  std::unique_lock<std::shared_mutex> lock(cache_mu_);
  pinned_[AsciiLower(id_hex)] = std::move(key);
}

std::shared_ptr<EVP_PKEY> KeyStore::PinnedPublicKey(std::string_view id_hex) {
  std::shared_lock<std::shared_mutex> lock(cache_mu_);
  auto it = pinned_.find(AsciiLower(id_hex));
  if (it == pinned_.end()) return nullptr;
  return it->second;
}

void KeyStore::Invalidate(std::string_view id_hex) {
  std::unique_lock<std::shared_mutex> lock(cache_mu_);
  cache_.erase(AbslView(id_hex));
  cache_.erase(AsciiLower(id_hex));
}

absl::StatusOr<KeyInfo> KeyStore::ToInfo(SessionPool::Lease& lease,
                                         std::string_view id_hex,
                                         const KeyHandles& handles) {
  absl::StatusOr<std::string> label = GetAttribute(
      pool_->p11(), lease.session(), handles.private_key, CKA_LABEL);
  if (!label.ok()) return label.status();
  return KeyInfo{std::string(id_hex), *label, handles.type, handles.bits, ""};
}

absl::StatusOr<KeyInfo> KeyStore::Find(std::string_view id_hex) {
  Invalidate(id_hex);  // Find is the explicit lookup: always ask the token
  return recovery_.Run(
      KeyPolicy("FindKey", id_hex),
      [&](SessionPool::Lease& lease, uint64_t epoch) -> absl::StatusOr<KeyInfo> {
        absl::StatusOr<KeyHandles> handles = Resolve(lease, epoch, id_hex);
        if (!handles.ok()) return handles.status();
        return ToInfo(lease, AsciiLower(id_hex), *handles);
      });
}

absl::StatusOr<std::vector<KeyAttributes>> KeyStore::Inspect(
    std::string_view id_hex) {
  absl::StatusOr<std::string> id_bytes = ParseKeyId(id_hex);
  if (!id_bytes.ok()) return id_bytes.status();
  return recovery_.Run(KeyPolicy("InspectKey", id_hex),
                       [&](SessionPool::Lease& lease, uint64_t) {
                         return InspectOn(lease, id_hex, *id_bytes);
                       });
}

absl::StatusOr<std::vector<KeyAttributes>> KeyStore::InspectOn(
    SessionPool::Lease& lease, std::string_view id_hex,
    std::string_view id_bytes) {
  const P11& p11 = pool_->p11();
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found = FindObjects(
      p11, lease.session(), {Attr(CKA_CLASS, &cls), Attr(CKA_ID, id_bytes)});
  if (!found.ok()) return found.status();
  static constexpr std::pair<CK_ATTRIBUTE_TYPE, const char*> kFlags[] = {
      {CKA_TOKEN, "CKA_TOKEN"},
      {CKA_PRIVATE, "CKA_PRIVATE"},
      {CKA_SENSITIVE, "CKA_SENSITIVE"},
      {CKA_ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE"},
      {CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE"},
      {CKA_EXTRACTABLE, "CKA_EXTRACTABLE"},
      {CKA_LOCAL, "CKA_LOCAL"},
      {CKA_SIGN, "CKA_SIGN"},
      {CKA_DECRYPT, "CKA_DECRYPT"},
      {CKA_UNWRAP, "CKA_UNWRAP"},
      {CKA_DERIVE, "CKA_DERIVE"},
      {CKA_SIGN_RECOVER, "CKA_SIGN_RECOVER"},
  };
  std::vector<KeyAttributes> out;
  for (CK_OBJECT_HANDLE handle : *found) {
    KeyAttributes a;
    a.id = AsciiLower(id_hex);
    if (auto label = GetAttribute(p11, lease.session(), handle, CKA_LABEL);
        label.ok())
      a.label = *label;
    for (const auto& [type, name] : kFlags) {
      absl::StatusOr<bool> v = GetBoolAttribute(p11, lease.session(), handle, type);
      if (v.ok()) a.flags.emplace_back(name, *v);
    }
    absl::StatusOr<KeyHandles> described = Describe(lease, handle);
    if (described.ok()) {
      a.key_type = std::string(crypto::KeyTypeName(described->type));
      a.bits = described->bits;
    } else {
      a.key_type = "unsupported";
    }
    absl::Status checked =
        CheckPrivateKeyAttributes(p11, lease.session(), handle);
    if (!checked.ok()) a.refused = std::string(checked.message());
    else if (!described.ok()) a.refused = std::string(described.status().message());
    out.push_back(std::move(a));
  }
  if (out.empty()) {
    return absl::NotFoundError(
        Cat("key id ", id_hex, ": no private-key object with this CKA_ID"));
  }
  return out;
}

absl::StatusOr<std::vector<KeyInfo>> KeyStore::List() {
  Recovery::Policy policy;
  policy.op = "ListKeys";
  return recovery_.Run(policy, [&](SessionPool::Lease& lease, uint64_t) {
    return ListOn(lease);
  });
}

absl::StatusOr<std::vector<KeyInfo>> KeyStore::ListOn(
    SessionPool::Lease& lease) {
  CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
  CK_BBOOL yes = CK_TRUE;
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> privs = FindObjects(
      pool_->p11(), lease.session(),
      {Attr(CKA_CLASS, &priv_class), Attr(CKA_TOKEN, &yes),
       Attr(CKA_PRIVATE, &yes)});
  if (!privs.ok()) return privs.status();
  std::vector<KeyInfo> out;
  for (CK_OBJECT_HANDLE handle : *privs) {
    absl::StatusOr<std::string> id =
        GetAttribute(pool_->p11(), lease.session(), handle, CKA_ID);
    if (!id.ok() || id->empty()) continue;
    absl::StatusOr<KeyHandles> handles = Describe(lease, handle);
    if (!handles.ok()) continue;  // a key type tokensign does not use
    absl::StatusOr<KeyInfo> info = ToInfo(lease, HexEncode(*id), *handles);
    if (!info.ok()) return info.status();
    out.push_back(std::move(*info));
  }
  return out;
}

absl::Status KeyStore::Destroy(std::string_view id_hex) {
  std::lock_guard<std::mutex> lifecycle(*lifecycle_mu_);
  Invalidate(id_hex);
  {
    std::unique_lock<std::shared_mutex> lock(cache_mu_);
    pinned_.erase(AsciiLower(id_hex));
  }
  absl::StatusOr<std::string> id_bytes = ParseKeyId(id_hex);
  if (!id_bytes.ok()) return id_bytes.status();
  int destroyed = 0;  // over all attempts: a retry finds fewer objects
  absl::Status status = recovery_.Run(
      KeyPolicy("DestroyKey", id_hex),
      [&](SessionPool::Lease& lease, uint64_t) -> absl::Status {
        CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY};
        for (CK_OBJECT_CLASS& cls : classes) {
          absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
              FindObjects(pool_->p11(), lease.session(),
                          {Attr(CKA_CLASS, &cls), Attr(CKA_ID, *id_bytes)});
          if (!found.ok()) return found.status();
          for (CK_OBJECT_HANDLE handle : *found) {
            absl::Status destroy =
                TS_P11(pool_->p11(), C_DestroyObject, lease.session(), handle);
            if (!destroy.ok()) return destroy;
            ++destroyed;
          }
        }
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  if (destroyed == 0) {
    return absl::NotFoundError(Cat("DestroyKey: no key with id ", id_hex));
  }
  return absl::OkStatus();
}

}  // namespace tokensign::hsm
