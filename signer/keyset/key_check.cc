#include "signer/keyset/key_check.h"

#include <openssl/rand.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "crypto/spki.h"
#include "crypto/ssl_ptr.h"
#include "signer/keyset/keyset_internal.h"
#include "signer/token/evp_jws_signer.h"
#include "signer/token/jwk.h"

namespace tokensign::keyset {


namespace {

absl::Status Refuse(absl::string_view why) {
  return absl::FailedPreconditionError(why);
}

std::shared_ptr<EVP_PKEY> Share(crypto::UniquePkey key) {
  return std::shared_ptr<EVP_PKEY>(std::move(key));
}

}  // namespace

absl::StatusOr<const hsm::KeyScan*> KeyScanOnce::Get() {
  if (!scan_.has_value()) scan_ = hsm_.ScanKeys(with_public_keys_);
  if (scan_->ok()) return &**scan_;
  if (absl::IsUnavailable(scan_->status())) return scan_->status();
  return nullptr;
}

absl::StatusOr<VerifiedKey> VerifyRecordedKey(hsm::Hsm& hsm,
                                              const PrivateKeyLoader& loader,
                                              const KeyRecord& key,
                                              const hsm::KeyScan* scan) {
  auto info = scan != nullptr ? scan->Find(key.id) : hsm.FindKey(key.id);
  if (absl::IsNotFound(info.status())) {
    return Refuse(absl::StrCat("private key (CKA_ID ", key.id,
                               ") is missing from the HSM"));
  }
  if (!info.ok()) {
    if (absl::IsUnavailable(info.status())) return info.status();
    return Refuse(info.status().message());
  }
  const crypto::KeyType want = crypto::KeyTypeFor(key.alg);
  if (info->type != want || (want == crypto::KeyType::kRsa && info->bits < 2048)) {
    return Refuse(absl::StrCat(
        "the HSM key is ", AbslView(crypto::KeyTypeName(info->type)), " ", info->bits,
        " bits; the record's alg ", AbslView(crypto::SignAlgorithmName(key.alg)),
        " needs ", AbslView(crypto::KeyTypeName(want)), want == crypto::KeyType::kRsa ? " >= 2048 bits" : ""));
  }
  absl::StatusOr<crypto::UniquePkey> pub =
      key.spki.empty() ? hsm.PublicKey(key.id) : crypto::ParseSpki(key.spki);
  if (!pub.ok()) {
    return Refuse(absl::StrCat("public key: ", pub.status().message()));
  }
  // The DER of the proven key: the record's own bytes, which ParseSpki took
  // whole as one SubjectPublicKeyInfo of this key (encoding it again costs
  // OpenSSL 3 an encoder set-up per key); encoded only for a record written
  // before keys carried their SPKI.
  std::string spki = key.spki;
  if (spki.empty()) {
    auto der = crypto::SpkiDer(pub->get());
    if (!der.ok()) return der.status();
    spki = *std::move(der);
  }
  auto kid = token::JwkThumbprint(pub->get());
  if (!kid.ok()) {
    return Refuse(absl::StrCat("public key: ", kid.status().message()));
  }
  if (*kid != key.kid) {
    return Refuse(absl::StrCat("the record's kid does not match its public key "
                               "(thumbprint ", *kid, ")"));
  }
  // Pin before the provider loads the private key: its public half then comes
  // from here, never from the token's public object. The key just checked is
  // pinned itself, not parsed again.
  std::shared_ptr<EVP_PKEY> shared = Share(*std::move(pub));
  if (absl::Status st = hsm.PinPublicKey(key.id, shared); !st.ok()) return st;
  auto priv = loader(key.id);
  if (!priv.ok()) {
    if (absl::IsUnavailable(priv.status())) return priv.status();
    return Refuse(absl::StrCat("private key: ", priv.status().message()));
  }
  auto ops = token::EvpJwsSigner::Create(*priv, shared, key.alg);
  if (!ops.ok()) return Refuse(ops.status().message());
  unsigned char challenge[32];
  if (RAND_bytes(challenge, sizeof(challenge)) != 1) {
    return absl::InternalError("key check: RAND_bytes failed");
  }
  std::string_view message(reinterpret_cast<const char*>(challenge),
                           sizeof(challenge));
  auto signature = (*ops)->Sign(message);
  if (!signature.ok()) {
    if (absl::IsUnavailable(signature.status())) return signature.status();
    return Refuse(absl::StrCat("test signature: ", signature.status().message()));
  }
  if (absl::Status st = (*ops)->Verify(message, *signature); !st.ok()) {
    return Refuse(absl::StrCat(
        "the private key does not match the public key (a test signature did "
        "not verify: ", st.message(), ")"));
  }
  return VerifiedKey{std::move(shared), *std::move(priv), std::move(spki)};
}

}  // namespace tokensign::keyset
