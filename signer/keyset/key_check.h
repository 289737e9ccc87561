// Checking a key named by a keyset record before it is used or published.
//
// Contract: VerifyRecordedKey(hsm, loader, key) succeeds only when
//   - the HSM holds a private token key with the record's CKA_ID that passes
//     hsm::CheckPrivateKeyAttributes (sensitive, always sensitive, never
//     extractable, local, ...), and no other private key has that CKA_ID:
//     as `scan` found it (Hsm::ScanKeys taken for this Load/Refresh; at
//     daemon start, LoadAuditKey's Hsm::ResolveKey answer from the cache that
//     scan filled), or, without one, as Hsm::FindKey reads it now (no cache);
//   - its key type and size fit the record's algorithm (RSA >= 2048 bits);
//   - the public key (the record's `spki`; for records written before it
//     existed, the token's public object) has the record's kid as its RFC 7638
//     thumbprint;
//   - a fresh random message signed by the private key (through the HSM-backed
//     EVP_PKEY the daemon signs with) verifies under that public key.
// Otherwise FailedPrecondition saying which check failed ("key missing from
// the HSM", "kid does not match its public key", ...). On success the public
// key is pinned in the Hsm (Hsm::PinPublicKey), so nothing later reads the
// token's public object for it.
//
// Thread-safety: VerifyRecordedKey is a pure function over thread-safe
// objects; KeyScanOnce is not thread-safe (one Load or Refresh owns it).
#ifndef TOKENSIGN_SIGNER_KEYSET_KEY_CHECK_H_
#define TOKENSIGN_SIGNER_KEYSET_KEY_CHECK_H_

#include <openssl/evp.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "hsm/hsm.h"
#include "signer/keyset/keyset_record.h"

namespace tokensign::keyset {

// Returns an EVP_PKEY that signs with the HSM private key `id_hex`
// (hsm/provider).
using PrivateKeyLoader =
    std::function<absl::StatusOr<std::shared_ptr<EVP_PKEY>>(
        std::string_view id_hex)>;

struct VerifiedKey {
  std::shared_ptr<EVP_PKEY> public_key;   // the proven public key
  std::shared_ptr<EVP_PKEY> private_key;  // HSM-backed (tokensign provider)
  std::string spki;  // DER SubjectPublicKeyInfo of public_key
};

absl::StatusOr<VerifiedKey> VerifyRecordedKey(
    hsm::Hsm& hsm, const PrivateKeyLoader& loader, const KeyRecord& key,
    const hsm::KeyScan* scan = nullptr);

// The token's keys for one Load or Refresh: Hsm::ScanKeys, taken the first
// time a keyset is checked (a Refresh in which nothing changed scans
// nothing), then shared by every key checked in that call. The public-key
// objects are scanned too only when `with_public_keys`: a record whose keys
// all carry their SPKI never reads them (one object search less).
class KeyScanOnce {
 public:
  explicit KeyScanOnce(hsm::Hsm& hsm, bool with_public_keys = true)
      : hsm_(hsm), with_public_keys_(with_public_keys) {}
  // The scan; Unavailable when the HSM is down (as FindKey would answer);
  // nullptr when the scan failed otherwise (each key is then looked up with
  // FindKey, which says what is wrong with it).
  absl::StatusOr<const hsm::KeyScan*> Get();

 private:
  hsm::Hsm& hsm_;
  bool with_public_keys_;
  std::optional<absl::StatusOr<hsm::KeyScan>> scan_;
};

}  // namespace tokensign::keyset

#endif  // TOKENSIGN_SIGNER_KEYSET_KEY_CHECK_H_
