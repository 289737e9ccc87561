#include "hsm/key_store.h"

#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "crypto/algorithm.h"
#include "crypto/spki.h"
#include "crypto/ssl_ptr.h"
#include "hsm/objects.h"
#include "hsm/public_key.h"
#include "hsm/strcat.h"

namespace tokensign::hsm {
namespace {

// DER of the curve identifiers used in CKA_EC_PARAMS.
constexpr unsigned char kP256Oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                      0xce, 0x3d, 0x03, 0x01, 0x07};
constexpr unsigned char kP384Oid[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
// PrintableString "edwards25519" (what SoftHSM 2.6.1 accepts for Ed25519).
constexpr unsigned char kEd25519Name[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                                          'd',  's',  '2', '5', '5', '1', '9'};
// OID 1.3.101.112 (id-Ed25519), accepted as an alternative when reading.
constexpr unsigned char kEd25519Oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

std::string_view AsView(const unsigned char* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace

absl::Status CheckPrivateKeyAttributes(const P11& p11, CK_SESSION_HANDLE session,
                                       CK_OBJECT_HANDLE private_key) {
  struct Expect {
    CK_ATTRIBUTE_TYPE type;
    bool value;
    const char* name;
  };
  static constexpr Expect kExpect[] = {
      {CKA_TOKEN, true, "CKA_TOKEN"},
      {CKA_PRIVATE, true, "CKA_PRIVATE"},
      {CKA_SENSITIVE, true, "CKA_SENSITIVE"},
      {CKA_ALWAYS_SENSITIVE, true, "CKA_ALWAYS_SENSITIVE"},
      {CKA_NEVER_EXTRACTABLE, true, "CKA_NEVER_EXTRACTABLE"},
      {CKA_LOCAL, true, "CKA_LOCAL"},
      {CKA_EXTRACTABLE, false, "CKA_EXTRACTABLE"},
      {CKA_DECRYPT, false, "CKA_DECRYPT"},
      {CKA_UNWRAP, false, "CKA_UNWRAP"},
      {CKA_DERIVE, false, "CKA_DERIVE"},
      {CKA_SIGN_RECOVER, false, "CKA_SIGN_RECOVER"},
  };
  absl::StatusOr<CK_ULONG> cls =
      GetUlongAttribute(p11, session, private_key, CKA_CLASS);
  if (!cls.ok()) return cls.status();
  if (*cls != CKO_PRIVATE_KEY) {
    return absl::FailedPreconditionError(
        Cat("CKA_CLASS = 0x", absl::Hex(*cls), " (want CKO_PRIVATE_KEY)"));
  }
  for (const Expect& expect : kExpect) {
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

absl::StatusOr<KeyInfo> KeyStore::Generate(crypto::KeyType type, std::string_view label,
                                           int rsa_bits) {
  // SoftHSM 2.6.1 now and then fails C_GenerateKeyPair (seen:
  // CKR_GENERAL_ERROR, CKR_TEMPLATE_INCONSISTENT) while other sessions of the
  // process search and sign; the failed attempt is cleaned up (GenerateOnce),
  // so one more try with a fresh CKA_ID is safe. A real template problem
  // fails twice.
  absl::StatusOr<KeyInfo> info = GenerateOnce(type, label, rsa_bits);
  if (!info.ok() &&
      (absl::IsInternal(info.status()) ||
       absl::IsInvalidArgument(info.status())) &&
      absl::StrContains(info.status().message(), "C_GenerateKeyPair:")) {
    info = GenerateOnce(type, label, rsa_bits);
  }
  return info;
}

absl::StatusOr<KeyInfo> KeyStore::GenerateOnce(crypto::KeyType type,
                                               std::string_view label,
                                               int rsa_bits) {
  if (label.empty() || label.size() > 128) {
    return absl::InvalidArgumentError(
        "GenerateKey: label must be 1..128 bytes");
  }
  if (type == crypto::KeyType::kRsa) {
    if (rsa_bits != 2048 && rsa_bits != 3072 && rsa_bits != 4096) {
      return absl::InvalidArgumentError(Cat("GenerateKey: rsa_bits ", rsa_bits,
                                            " not one of 2048/3072/4096"));
    }
  } else if (rsa_bits != 0) {
    return absl::InvalidArgumentError(Cat(
        "GenerateKey: rsa_bits is only for RSA keys, not ", crypto::KeyTypeName(type)));
  }
  unsigned char id[16];
  if (RAND_bytes(id, sizeof(id)) != 1) {
    return absl::InternalError("GenerateKey: RAND_bytes failed");
  }
  std::string id_bytes(reinterpret_cast<const char*>(id), sizeof(id));

  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ULONG modulus_bits = static_cast<CK_ULONG>(rsa_bits);
  static constexpr unsigned char kExponent[] = {0x01, 0x00, 0x01};
  CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  // The public half only verifies: no encrypt, wrap or verify-recover.
  std::vector<CK_ATTRIBUTE> pub = {
      Attr(CKA_TOKEN, &yes),          Attr(CKA_PRIVATE, &no),
      Attr(CKA_VERIFY, &yes),         Attr(CKA_ENCRYPT, &no),
      Attr(CKA_WRAP, &no),            Attr(CKA_VERIFY_RECOVER, &no),
      Attr(CKA_ID, id_bytes),         Attr(CKA_LABEL, label),
  };
  switch (type) {
    case crypto::KeyType::kEcP256:
      pub.push_back(Attr(CKA_EC_PARAMS, kP256Oid, sizeof(kP256Oid)));
      break;
    case crypto::KeyType::kEcP384:
      pub.push_back(Attr(CKA_EC_PARAMS, kP384Oid, sizeof(kP384Oid)));
      break;
    case crypto::KeyType::kEd25519:
      mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
      pub.push_back(Attr(CKA_EC_PARAMS, kEd25519Name, sizeof(kEd25519Name)));
      break;
    case crypto::KeyType::kRsa:
      mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
      pub.push_back(Attr(CKA_MODULUS_BITS, &modulus_bits));
      pub.push_back(Attr(CKA_PUBLIC_EXPONENT, kExponent, sizeof(kExponent)));
      break;
  }
  // The private half only signs (C_Sign): no sign-recover, decrypt, unwrap
  // or derive; never leaves the token. SoftHSM's CKA_DECRYPT default is true,
  // even for EC.
  std::vector<CK_ATTRIBUTE> priv = {
      Attr(CKA_TOKEN, &yes),        Attr(CKA_PRIVATE, &yes),
      Attr(CKA_SENSITIVE, &yes),    Attr(CKA_SIGN, &yes),
      Attr(CKA_SIGN_RECOVER, &no),  Attr(CKA_EXTRACTABLE, &no),
      Attr(CKA_UNWRAP, &no),        Attr(CKA_DERIVE, &no),
      Attr(CKA_DECRYPT, &no),       Attr(CKA_COPYABLE, &no),
      Attr(CKA_ID, id_bytes),       Attr(CKA_LABEL, label),
  };

  std::lock_guard<std::mutex> lifecycle(*lifecycle_mu_);
  absl::StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  if (!lease.ok()) return lease.status();
  const P11& p11 = pool_->p11();
  CK_OBJECT_HANDLE pub_handle = CK_INVALID_HANDLE,
                   priv_handle = CK_INVALID_HANDLE;
  absl::Status status = lease->Check(
      TS_P11(p11, C_GenerateKeyPair, lease->session(), &mech, pub.data(),
             static_cast<CK_ULONG>(pub.size()), priv.data(),
             static_cast<CK_ULONG>(priv.size()), &pub_handle, &priv_handle));
  if (!status.ok()) {
    // The token may have made the pair even though the call failed (reply
    // lost on a device error): destroy whatever carries the fresh CKA_ID, on
    // a working session (release this one first: the pool may have only one).
    lease = absl::UnavailableError("released");
    absl::StatusOr<SessionPool::Lease> cleanup = pool_->Acquire();
    if (cleanup.ok()) {
      absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> orphans = FindObjects(
          p11, cleanup->session(), {Attr(CKA_ID, std::string_view(id_bytes))});
      if (orphans.ok()) {
        for (CK_OBJECT_HANDLE orphan : *orphans) {
          (void)TS_P11(p11, C_DestroyObject, cleanup->session(), orphan);
        }
      }
    }
    return absl::Status(status.code(), Cat("GenerateKey(", crypto::KeyTypeName(type),
                                           "): ", status.message()));
  }
  auto destroy_both = [&] {
    (void)TS_P11(p11, C_DestroyObject, lease->session(), priv_handle);
    (void)TS_P11(p11, C_DestroyObject, lease->session(), pub_handle);
  };
  // Read back what the token actually made.
  if (absl::Status checked = CheckPrivateKeyAttributes(p11, lease->session(),
                                                       priv_handle);
      !checked.ok()) {
    destroy_both();
    return absl::FailedPreconditionError(
        Cat("GenerateKey: token made a private key with ", checked.message(),
            "; key destroyed"));
  }
  absl::StatusOr<KeyHandles> handles = Describe(*lease, priv_handle);
  if (!handles.ok()) {
    destroy_both();
    return handles.status();
  }
  handles->public_key = pub_handle;
  // The public half as the token made it in this call: the one moment its
  // object can be trusted (later anyone may swap or delete a public object).
  absl::StatusOr<crypto::UniquePkey> pub_key =
      ExportPublicKey(p11, lease->session(), pub_handle, handles->type);
  absl::StatusOr<std::string> spki =
      pub_key.ok() ? crypto::SpkiDer(pub_key->get()) : pub_key.status();
  if (!spki.ok()) {
    destroy_both();
    return lease->Check(spki.status());
  }
  std::string id_hex = HexEncode(id_bytes);
  {
    std::unique_lock<std::shared_mutex> lock(cache_mu_);
    if (cache_epoch_ == pool_->epoch()) cache_[id_hex] = *handles;
  }
  return KeyInfo{id_hex, std::string(label), handles->type, handles->bits,
                 *std::move(spki)};
}

absl::StatusOr<KeyHandles> KeyStore::Describe(SessionPool::Lease& lease,
                                              CK_OBJECT_HANDLE private_key) {
  const P11& p11 = pool_->p11();
  absl::StatusOr<CK_ULONG> key_type =
      GetUlongAttribute(p11, lease.session(), private_key, CKA_KEY_TYPE);
  if (!key_type.ok()) return lease.Check(key_type.status());
  KeyHandles handles;
  handles.private_key = private_key;
  if (*key_type == CKK_RSA) {
    absl::StatusOr<std::string> modulus =
        GetAttribute(p11, lease.session(), private_key, CKA_MODULUS);
    if (!modulus.ok()) return lease.Check(modulus.status());
    size_t size = modulus->size();
    size_t skip = 0;
    while (skip < size && (*modulus)[skip] == '\0') ++skip;
    handles.type = crypto::KeyType::kRsa;
    handles.bits = static_cast<int>((size - skip) * 8);
    handles.signature_size = size - skip;
    return handles;
  }
  if (*key_type != CKK_EC && *key_type != CKK_EC_EDWARDS) {
    return absl::UnimplementedError(
        Cat("key: CKA_KEY_TYPE 0x", absl::Hex(*key_type), " is not supported"));
  }
  absl::StatusOr<std::string> params =
      GetAttribute(p11, lease.session(), private_key, CKA_EC_PARAMS);
  if (!params.ok()) return lease.Check(params.status());
  if (*params == AsView(kP256Oid, sizeof(kP256Oid))) {
    handles.type = crypto::KeyType::kEcP256;
    handles.bits = 256;
    handles.signature_size = 64;
  } else if (*params == AsView(kP384Oid, sizeof(kP384Oid))) {
    handles.type = crypto::KeyType::kEcP384;
    handles.bits = 384;
    handles.signature_size = 96;
  } else if (*params == AsView(kEd25519Name, sizeof(kEd25519Name)) ||
             *params == AsView(kEd25519Oid, sizeof(kEd25519Oid))) {
    handles.type = crypto::KeyType::kEd25519;
    handles.bits = 256;
    handles.signature_size = 64;
  } else {
    return absl::UnimplementedError(
        "key: CKA_EC_PARAMS names a curve tokensign does not support");
  }
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
  if (!privs.ok()) return lease.Check(privs.status());
  if (privs->empty()) {
    return absl::NotFoundError(
        Cat("key id ", id_hex, ": no private key with this CKA_ID"));
  }
  if (privs->size() > 1) {
    return absl::FailedPreconditionError(
        Cat("key id ", id_hex, ": ", privs->size(),
            " private keys share this CKA_ID; refusing to guess"));
  }
  if (absl::Status checked =
          CheckPrivateKeyAttributes(p11, lease.session(), privs->front());
      !checked.ok()) {
    if (IsBrokenSessionRv(RvOf(checked))) return lease.Check(checked);
    return absl::FailedPreconditionError(
        Cat("key id ", id_hex, ": private key has ", checked.message(),
            "; tokensign uses only keys generated in the HSM as sensitive and "
            "never extractable"));
  }
  absl::StatusOr<KeyHandles> handles = Describe(lease, privs->front());
  if (!handles.ok()) return handles.status();
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> pubs =
      FindObjects(p11, lease.session(),
                  {Attr(CKA_CLASS, &pub_class), Attr(CKA_ID, id_bytes)});
  if (!pubs.ok()) return lease.Check(pubs.status());
  if (pubs->size() == 1) handles->public_key = pubs->front();
  return handles;
}

absl::StatusOr<KeyHandles> KeyStore::Resolve(std::string_view id_hex) {
  uint64_t epoch = pool_->epoch();
  {
    std::shared_lock<std::shared_mutex> lock(cache_mu_);
    if (cache_epoch_ == epoch) {
      auto it = cache_.find(AbslView(id_hex));
      if (it != cache_.end()) return it->second;
    }
  }
  absl::StatusOr<std::string> id_bytes = ParseKeyId(id_hex);
  if (!id_bytes.ok()) return id_bytes.status();
  std::string key = AsciiLower(id_hex);
  absl::StatusOr<KeyHandles> handles;
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<SessionPool::Lease> lease = pool_->Acquire();
    if (!lease.ok()) return lease.status();
    handles = Search(*lease, *id_bytes, key);
    // Private keys are invisible while logged out: re-login and search again
    // before calling a key absent.
    if (handles.ok()) break;
    if (!lease->broken() && lease->CheckLoggedIn()) break;  // really absent
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

void KeyStore::PinPublicKey(std::string_view id_hex, std::string spki_der) {
  std::unique_lock<std::shared_mutex> lock(cache_mu_);
  pinned_[AsciiLower(id_hex)] = std::move(spki_der);
}

std::optional<std::string> KeyStore::PinnedPublicKey(std::string_view id_hex) {
  std::shared_lock<std::shared_mutex> lock(cache_mu_);
  auto it = pinned_.find(AsciiLower(id_hex));
  if (it == pinned_.end()) return std::nullopt;
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
  if (!label.ok()) return lease.Check(label.status());
  return KeyInfo{std::string(id_hex), *label, handles.type, handles.bits, ""};
}

absl::StatusOr<KeyInfo> KeyStore::Find(std::string_view id_hex) {
  Invalidate(id_hex);  // Find is the explicit lookup: always ask the token
  absl::StatusOr<KeyHandles> handles = Resolve(id_hex);
  if (!handles.ok()) return handles.status();
  absl::StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  if (!lease.ok()) return lease.status();
  return ToInfo(*lease, AsciiLower(id_hex), *handles);
}

absl::StatusOr<std::vector<KeyAttributes>> KeyStore::Inspect(
    std::string_view id_hex) {
  absl::StatusOr<std::string> id_bytes = ParseKeyId(id_hex);
  if (!id_bytes.ok()) return id_bytes.status();
  absl::StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  if (!lease.ok()) return lease.status();
  const P11& p11 = pool_->p11();
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found = FindObjects(
      p11, lease->session(), {Attr(CKA_CLASS, &cls), Attr(CKA_ID, *id_bytes)});
  if (!found.ok()) return lease->Check(found.status());
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
    if (auto label = GetAttribute(p11, lease->session(), handle, CKA_LABEL);
        label.ok())
      a.label = *label;
    for (const auto& [type, name] : kFlags) {
      absl::StatusOr<bool> v = GetBoolAttribute(p11, lease->session(), handle, type);
      if (v.ok()) a.flags.emplace_back(name, *v);
    }
    absl::StatusOr<KeyHandles> described = Describe(*lease, handle);
    if (described.ok()) {
      a.key_type = std::string(crypto::KeyTypeName(described->type));
      a.bits = described->bits;
    } else {
      a.key_type = "unsupported";
    }
    absl::Status checked =
        CheckPrivateKeyAttributes(p11, lease->session(), handle);
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
  absl::StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  if (!lease.ok()) return lease.status();
  CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
  CK_BBOOL yes = CK_TRUE;
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> privs = FindObjects(
      pool_->p11(), lease->session(),
      {Attr(CKA_CLASS, &priv_class), Attr(CKA_TOKEN, &yes),
       Attr(CKA_PRIVATE, &yes)});
  if (!privs.ok()) return lease->Check(privs.status());
  std::vector<KeyInfo> out;
  for (CK_OBJECT_HANDLE handle : *privs) {
    absl::StatusOr<std::string> id =
        GetAttribute(pool_->p11(), lease->session(), handle, CKA_ID);
    if (!id.ok() || id->empty()) continue;
    absl::StatusOr<KeyHandles> handles = Describe(*lease, handle);
    if (!handles.ok()) continue;  // a key type tokensign does not use
    absl::StatusOr<KeyInfo> info = ToInfo(*lease, HexEncode(*id), *handles);
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
  absl::StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  if (!lease.ok()) return lease.status();
  CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY};
  int destroyed = 0;
  for (CK_OBJECT_CLASS& cls : classes) {
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
        FindObjects(pool_->p11(), lease->session(),
                    {Attr(CKA_CLASS, &cls), Attr(CKA_ID, *id_bytes)});
    if (!found.ok()) return lease->Check(found.status());
    for (CK_OBJECT_HANDLE handle : *found) {
      absl::Status status = lease->Check(
          TS_P11(pool_->p11(), C_DestroyObject, lease->session(), handle));
      if (!status.ok()) return status;
      ++destroyed;
    }
  }
  if (destroyed == 0) {
    return absl::NotFoundError(Cat("DestroyKey: no key with id ", id_hex));
  }
  return absl::OkStatus();
}

}  // namespace tokensign::hsm
