// The per-issuer keyset record: which HSM keys an issuer has and their
// lifecycle state.
//
// Contract: a KeysetRecord serializes to JSON
//   {"issuer":"dev","generation":N,"writer":"<16 hex>",
//    "keys":[{"id":"<hex CKA_ID>","kid":"<thumbprint>","alg":"ES256",
//     "spki":"<base64url DER SubjectPublicKeyInfo>",
//     "state":"pending|active|retired|withdrawn|destroyed",
//     "created_at":<unix s>,"activated_at":<unix s|0>,"retired_at":<unix s|0>,
//     "activate_at":<unix s|0>,"expires_at":<unix s|0>,
//     "withdrawn_at":<unix s|0>}],"next_rotation_at":<unix s|0>}
// and is stored on the token as the CKO_DATA object named
// KeysetObjectName(issuer). ParseKeysetRecord rejects malformed records naming
// the field (keys[1].state: ...), and a record with more than one active key.
// `spki` is the key's public key as the HSM returned it when the key was
// generated: the record is a private HSM object, the key's public-key object
// is not, so the record's copy is the one trusted (absent in records written
// before it existed; then the public object is used only after a signature
// proves it matches the private key).
// Thread-safety: value types and pure functions.
#ifndef TOKENSIGN_SIGNER_KEYSET_KEYSET_RECORD_H_
#define TOKENSIGN_SIGNER_KEYSET_KEYSET_RECORD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/algorithm.h"

namespace tokensign::keyset {

enum class KeyState { kPending, kActive, kRetired, kWithdrawn, kDestroyed };
// "pending" / "active" / "retired" / "withdrawn" / "destroyed".
const char* KeyStateName(KeyState state);
std::optional<KeyState> ParseKeyState(std::string_view name);

struct KeyRecord {
  std::string id;   // CKA_ID, lowercase hex
  std::string kid;  // RFC 7638 thumbprint of the public key
  std::string spki;  // DER SubjectPublicKeyInfo (raw bytes); may be empty
  crypto::SignAlgorithm alg = crypto::SignAlgorithm::kES256;
  KeyState state = KeyState::kPending;
  int64_t created_at = 0;    // unix seconds; also when it was published
  int64_t activated_at = 0;  // 0 = never
  int64_t retired_at = 0;    // 0 = not retired
  // Planned automatic activation of a pending key; 0 = none.
  int64_t activate_at = 0;
  // A retired key leaves the JWKS at this time (retired_at + the retire
  // window frozen at retirement); 0 = records written before it existed.
  int64_t expires_at = 0;
  int64_t withdrawn_at = 0;  // emergency rotation; 0 = not withdrawn
};

struct KeysetRecord {
  std::string issuer;
  // +1 on every write. A crash between writing a record and removing the old
  // one leaves two on the token; the higher generation is the current one.
  int64_t generation = 0;
  // Random id of the write that made this record (16 lowercase hex digits).
  // PKCS#11 has no compare-and-swap: when two writers race and leave two
  // records of one generation, the smaller writer id wins everywhere.
  std::string writer;
  int64_t written_at = 0;  // unix seconds, the writer's clock
  // Scheduled rotation: when the next key is due to become active; 0 = none.
  int64_t next_rotation_at = 0;
  std::vector<KeyRecord> keys;  // oldest first

  // The active key, or nullptr.
  const KeyRecord* Active() const;
  // The key with this kid, or nullptr.
  KeyRecord* FindByKid(std::string_view kid);
  const KeyRecord* FindByKid(std::string_view kid) const;
};

// "keyset/<issuer>".
std::string KeysetObjectName(std::string_view issuer);

std::string SerializeKeysetRecord(const KeysetRecord& record);
// The current record among copies of one issuer's record: the highest
// generation; among equal generations, the smallest writer id. nullptr when
// `records` is empty.
const KeysetRecord* CurrentRecord(const std::vector<KeysetRecord>& records);
absl::StatusOr<KeysetRecord> ParseKeysetRecord(std::string_view json_text);

}  // namespace tokensign::keyset

#endif  // TOKENSIGN_SIGNER_KEYSET_KEYSET_RECORD_H_
