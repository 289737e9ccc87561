// Seeds an issuer's keyset on a token the way a custodian's `keys create` +
// `keys activate` leave it (a key generated in the HSM, a private record
// naming it active), written directly: CreateKey + ActivateKey read the
// record back around every write, and those searches grow with the token, so
// making 1,000 keys that way takes most of an hour on SoftHSM's file store.
// Test-only (tests/scale); thread-safety: as hsm::Hsm (one caller at a time
// is enough here).
#ifndef TOKENSIGN_TESTS_SCALE_SCALE_SEED_H_
#define TOKENSIGN_TESTS_SCALE_SCALE_SEED_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "crypto/spki.h"
#include "hsm/hsm.h"
#include "signer/keyset/keyset_internal.h"
#include "signer/keyset/keyset_record.h"
#include "signer/keyset/record_store.h"
#include "signer/token/jwk.h"

namespace tokensign::testing {

// One active ES256 (P-256) key for `issuer`, recorded at generation 1;
// returns the key's record. `with_spki` false: a record as written before
// keys carried their SPKI.
inline absl::StatusOr<keyset::KeyRecord> SeedIssuerKey(hsm::Hsm& hsm,
                                                       const std::string& issuer,
                                                       bool with_spki = true) {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  auto info = hsm.GenerateKey(crypto::KeyType::kEcP256,
                              keyset::internal::KeyLabel(issuer, now));
  if (!info.ok()) return info.status();
  auto pub = crypto::ParseSpki(info->spki_der);
  if (!pub.ok()) return pub.status();
  auto kid = token::JwkThumbprint(pub->get());
  if (!kid.ok()) return kid.status();
  keyset::KeyRecord key;
  key.id = info->id;
  key.kid = *kid;
  if (with_spki) key.spki = info->spki_der;
  key.alg = crypto::SignAlgorithm::kES256;
  key.state = keyset::KeyState::kActive;
  key.created_at = key.activated_at = now;
  keyset::KeysetRecord rec;
  rec.issuer = issuer;
  rec.generation = 1;
  rec.writer = keyset::RandomWriterId();
  rec.written_at = now;
  rec.keys.push_back(key);
  if (absl::Status st = hsm.AddData(keyset::KeysetObjectName(issuer),
                                    keyset::SerializeKeysetRecord(rec));
      !st.ok())
    return st;
  return key;
}

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SCALE_SCALE_SEED_H_
