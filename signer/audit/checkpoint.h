// Signed checkpoints of the audit log, the way Certificate Transparency signs
// tree heads. A checkpoint is a compact JWS (header {"alg","kid","typ":
// "tokensign-audit-checkpoint"}) over a canonical JSON payload naming the log
// (its random id and the daemon instance), the last line it covers (seq and
// the hex SHA-256 of that line, the "head"), how many decision records the
// chain gained since the previous checkpoint, the time, whether it was
// written at a clean shutdown, and the previous checkpoint line (so a reader
// holding only the latest checkpoint can tell "the one before" from "older").
//
// Line types added to the log (see audit_format.h for the others):
//   checkpoint    {"v":1,"seq":N,"checkpoint":JWS,"key":JWK,"prev":HEX}
//   continuation  {"v":1,"seq":N,"continues":FILE,"log_id":ID,"time":..,
//                  "checkpoint":JWS,"key":JWK,"prev":HEX}  (rotation: the
//                  first line of the new file is also a checkpoint)
//   genesis       {"v":1,"genesis":true,"log":NAME,"log_id":ID,
//                  "instance":NAME,"created":TIME[,"follows":{..},
//                  "acknowledged":{..}],"prev":""}
// "key" is the public JWK of the signing key, so a verifier can pin its
// RFC 7638 thumbprint instead of fetching keys. The payload's "seq" is
// always smaller than the checkpoint line's own seq: it is signed off the
// commit path, so lines may be chained while the HSM signs.
//
// No PKCS#11 here: signing goes through an EVP_PKEY (in the daemon an HSM key
// behind the OpenSSL provider). Thread-safety: pure functions; a
// CheckpointKey is immutable and may be shared (OpenSSL allows concurrent use
// of one EVP_PKEY).
#ifndef TOKENSIGN_SIGNER_AUDIT_CHECKPOINT_H_
#define TOKENSIGN_SIGNER_AUDIT_CHECKPOINT_H_

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/algorithm.h"
#include "nlohmann/json.hpp"

namespace tokensign::audit {

inline constexpr std::string_view kCheckpointTyp = "tokensign-audit-checkpoint";

// A checkpoint line of a log: its seq and the hex SHA-256 of its bytes.
struct CheckpointRef {
  std::string log_id;
  int64_t seq = -1;
  std::string sha256;
  bool operator==(const CheckpointRef& o) const {
    return log_id == o.log_id && seq == o.seq && sha256 == o.sha256;
  }
};

struct CheckpointPayload {
  std::string log_id;
  std::string instance;
  int64_t seq = 0;      // last line covered
  std::string head;     // hex SHA-256 of that line
  int64_t records = 0;  // decision records in (previous checkpoint's seq, seq]
  absl::Time time;
  // Written at clean shutdown: the next line, if any, must be the checkpoint
  // a restarted daemon writes first; anything else was added while no daemon
  // ran.
  bool final = false;
  // The previous checkpoint line (of this log, or of the lost log a new
  // segment follows). Absent for a log's first checkpoint.
  std::optional<CheckpointRef> prev;
};

// The audit signing key.
struct CheckpointKey {
  std::shared_ptr<EVP_PKEY> key;  // private half (signs)
  crypto::SignAlgorithm alg = crypto::SignAlgorithm::kES256;
  std::string kid;         // RFC 7638 thumbprint of the public key
  std::string public_jwk;  // JSON text: the published JWK (kid, alg, use)
  // Computes kid and the JWK from `public_key` (null = from `key`, which then
  // must expose its public half; an HSM-backed key is given its proven
  // public key); fails if the key does not fit `alg`.
  static absl::StatusOr<std::shared_ptr<const CheckpointKey>> Create(
      std::shared_ptr<EVP_PKEY> key,
      crypto::SignAlgorithm alg = crypto::SignAlgorithm::kES256,
      const EVP_PKEY* public_key = nullptr);
};

// 128 random bits as 32 lowercase hex characters.
std::string NewLogId();

// Canonical payload JSON (fixed member order, no whitespace).
std::string FormatCheckpointPayload(const CheckpointPayload& payload);
// Errors name the member: "checkpoint.head: not a hex SHA-256".
absl::StatusOr<CheckpointPayload> ParseCheckpointPayload(
    const nlohmann::json& payload);

// The compact JWS of a checkpoint (one signature with `key`), verified with
// the public key of key.public_jwk before it is returned (Internal if it does
// not verify: an HSM fault must not put a signature into the log that verify
// would call BROKEN).
absl::StatusOr<std::string> SignCheckpoint(const CheckpointKey& key,
                                           const CheckpointPayload& payload);

// Line bodies (members without braces, see AssembleLine).
std::string FormatCheckpointBody(std::string_view jws,
                                 std::string_view public_jwk);
std::string FormatCheckpointContinuationBody(std::string_view previous_file,
                                             std::string_view log_id,
                                             absl::Time t, std::string_view jws,
                                             std::string_view public_jwk);

// What a genesis record says about the log it starts.
struct GenesisInfo {
  std::string log_name;
  std::string log_id;
  std::string instance;  // omitted when empty
  absl::Time created;
  // A new segment after a custodian acknowledged a lost or tampered log: the
  // last checkpoint the HSM held for the old log, and who acknowledged what.
  std::optional<CheckpointRef> follows;
  std::string acknowledged_by;
  std::string acknowledged_reason;
  std::string acknowledged_finding;  // why the daemon refused the old log
};
std::string FormatGenesisLine(const GenesisInfo& genesis);

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_CHECKPOINT_H_
