// KeyStore's key generation: tokensign's key template, the one-shot retry of
// C_GenerateKeyPair (through the recovery engine), clean-up of a pair whose
// reply was lost, and the read-back checks (see hsm/key_store.h).
#include <openssl/rand.h>

#include "absl/strings/match.h"
#include "crypto/algorithm.h"
#include "crypto/spki.h"
#include "crypto/ssl_ptr.h"
#include "crypto/str_cat.h"
#include "hsm/ec_params.h"
#include "hsm/key_store.h"
#include "hsm/objects.h"
#include "hsm/pkcs11_call.h"
#include "hsm/public_key.h"

namespace tokensign::hsm {

using ec_params::kEd25519Name;
using ec_params::kP256Oid;
using ec_params::kP384Oid;

absl::StatusOr<KeyInfo> KeyStore::Generate(crypto::KeyType type, std::string_view label,
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
  // CKA_ID of an attempt whose C_GenerateKeyPair failed: the token may have
  // made the pair even so (reply lost on a device error); whatever carries it
  // is destroyed on a working session once the attempt's lease is back.
  std::string orphan_id;
  Recovery::Policy policy;
  // SoftHSM 2.6.1 now and then fails C_GenerateKeyPair (seen:
  // CKR_GENERAL_ERROR, CKR_TEMPLATE_INCONSISTENT) while other sessions of the
  // process search and sign; the failed attempt is cleaned up, so one more
  // try with a fresh CKA_ID is safe. A real template problem fails twice.
  policy.attempts = 2;
  policy.retry_if = [](const absl::Status& status) {
    return (absl::IsInternal(status) || absl::IsInvalidArgument(status)) &&
           absl::StrContains(status.message(), "C_GenerateKeyPair:");
  };
  // After a lost session the pair may exist: never generate a second one.
  policy.retry_session_loss = false;
  policy.after_failure = [&](const absl::Status&) {
    if (!orphan_id.empty()) DestroyById(orphan_id);
    orphan_id.clear();
  };
  std::lock_guard<std::mutex> lifecycle(*lifecycle_mu_);
  return recovery_.Run(policy, [&](SessionPool::Lease& lease, uint64_t epoch) {
    return GenerateOn(lease, epoch, type, label, rsa_bits, &orphan_id);
  });
}

void KeyStore::DestroyById(std::string_view id_bytes) {
  absl::StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  if (!lease.ok()) return;
  const P11& p11 = pool_->p11();
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
      FindObjects(p11, lease->session(), {Attr(CKA_ID, id_bytes)});
  if (!found.ok()) return;
  for (CK_OBJECT_HANDLE handle : *found) {
    (void)TS_P11(p11, C_DestroyObject, lease->session(), handle);
  }
}

absl::StatusOr<KeyInfo> KeyStore::GenerateOn(SessionPool::Lease& lease,
                                             uint64_t epoch,
                                             crypto::KeyType type,
                                             std::string_view label,
                                             int rsa_bits,
                                             std::string* orphan_id) {
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

  const P11& p11 = pool_->p11();
  CK_OBJECT_HANDLE pub_handle = CK_INVALID_HANDLE,
                   priv_handle = CK_INVALID_HANDLE;
  *orphan_id = id_bytes;
  absl::Status status =
      TS_P11(p11, C_GenerateKeyPair, lease.session(), &mech, pub.data(),
             static_cast<CK_ULONG>(pub.size()), priv.data(),
             static_cast<CK_ULONG>(priv.size()), &pub_handle, &priv_handle);
  if (!status.ok()) {
    // Keeps the CK_RV: a lost session is marked broken by the engine.
    return WithRvOf(absl::Status(status.code(),
                                 Cat("GenerateKey(", crypto::KeyTypeName(type),
                                     "): ", status.message())),
                    status);
  }
  orphan_id->clear();  // from here on, failures destroy the pair themselves
  auto destroy_both = [&] {
    (void)TS_P11(p11, C_DestroyObject, lease.session(), priv_handle);
    (void)TS_P11(p11, C_DestroyObject, lease.session(), pub_handle);
  };
  // Read back what the token actually made.
  if (absl::Status checked = CheckPrivateKeyAttributes(p11, lease.session(),
                                                       priv_handle);
      !checked.ok()) {
    destroy_both();
    return absl::FailedPreconditionError(
        Cat("GenerateKey: token made a private key with ", checked.message(),
            "; key destroyed"));
  }
  absl::StatusOr<KeyHandles> handles = Describe(lease, priv_handle);
  if (!handles.ok()) {
    destroy_both();
    return handles.status();
  }
  handles->public_key = pub_handle;
  // The public half as the token made it in this call: the one moment its
  // object can be trusted (later anyone may swap or delete a public object).
  absl::StatusOr<crypto::UniquePkey> pub_key =
      ExportPublicKey(p11, lease.session(), pub_handle, handles->type);
  absl::StatusOr<std::string> spki =
      pub_key.ok() ? crypto::SpkiDer(pub_key->get()) : pub_key.status();
  if (!spki.ok()) {
    destroy_both();
    return spki.status();
  }
  std::string id_hex = HexEncode(id_bytes);
  {
    std::unique_lock<std::shared_mutex> lock(cache_mu_);
    if (cache_epoch_ == epoch) cache_[id_hex] = *handles;
  }
  return KeyInfo{id_hex, std::string(label), handles->type, handles->bits,
                 *std::move(spki)};
}

}  // namespace tokensign::hsm
