// Line format of the audit log, shared by the writer (AuditLog),
// VerifyAuditChain and Lineage. Every line is one compact JSON object; `prev`
// is the hex SHA-256 of the previous line's bytes (without its newline). Line
// types, all with "v":1:
//   genesis       {"v":1,"genesis":true,"log":NAME,"created":TIME,"prev":""}
//   (seq 0) decision
//   {"v":1,"seq":N,"time":..,"caller":..,"issuer":..,"kind":..,"kid":..,
//                  "jti":..,"sub":..,"client_id":..,"act":[{"sub":..,"iss":..}],"aud":[..],
//                  "scope":[..],"exp":N,["ttl":N,"cnf":{"jkt"|"x5t#S256":..},
//                  "txn":..,"req_wl":..,"rctx_sha256":HEX,"tctx_sha256":HEX,
//                  "extra_claims":[NAME..],"extra_claims_sha256":HEX,]
//                  ["status_uri":..,"status_idx":N,"status_list_size":N,
//                  "status_list_set":N,]"parent_jti":..,
//                  ["parent_token_sha256":HEX,"parent_cnf":{..},]
//                  "token_sha256":..,"outcome":..,
//                  "reason":..,"prev":HEX}
//                  The bracketed members appear only when set (ttl != 0).
//                  ttl = exp - iat of a minted token, else the requested
//                  ttl_seconds (0 = issuer default). The *_sha256 members hash
//                  the canonical JSON of the value (nlohmann::json::dump():
//                  object keys sorted bytewise, no whitespace, UTF-8 as is);
//                  extra_claims lists the names, sorted.
//   continuation  {"v":1,"seq":N,"continues":FILE,"time":..,"prev":HEX}  first
//   line of a
//                  file created by rotation; prev = hash of the last line of
//                  FILE
//   repair        {"v":1,"seq":N,"repair":"torn_tail","dropped_bytes":N,
//                  "dropped_sha256":HEX,"time":..,"prev":HEX}  written after
//                  Open truncated a torn last line
//   checkpoint    see checkpoint.h (signed checkpoints); genesis records
//                  also carry "log_id" (and "instance"), see there too
// seq numbers every line of the whole chain (across rotated files) from 0 =
// genesis. Thread-safety: all functions are pure / reentrant.
#ifndef TOKENSIGN_SIGNER_AUDIT_AUDIT_FORMAT_H_
#define TOKENSIGN_SIGNER_AUDIT_AUDIT_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "signer/audit/audit_record.h"

namespace tokensign::audit {

inline constexpr int kAuditFormatVersion = 1;

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// RFC 3339, UTC, millisecond precision: 2024-05-01T12:00:00.123Z.
std::string FormatAuditTime(absl::Time t);
absl::StatusOr<absl::Time> ParseAuditTime(std::string_view s);

// JSON members of a decision record from "time" to "reason", without braces.
// Strings that are not valid UTF-8 are written with U+FFFD replacements.
std::string FormatDecisionBody(const AuditRecord& record);
std::string FormatContinuationBody(std::string_view previous_file,
                                   absl::Time t);
std::string FormatRepairBody(int64_t dropped_bytes,
                             std::string_view dropped_sha256, absl::Time t);
// {"v":1,"seq":SEQ,BODY,"prev":"PREV"} (no newline).
std::string AssembleLine(int64_t seq, std::string_view body,
                         std::string_view prev);
std::string FormatGenesisLine(std::string_view log_name, absl::Time created);

// kCheckpoint: see signer/audit/checkpoint.h (a continuation may carry a
// checkpoint too: then `checkpoint` is set on a kContinuation line).
enum class LineType { kGenesis, kDecision, kContinuation, kRepair, kCheckpoint };

struct ParsedLine {
  LineType type = LineType::kDecision;
  int64_t seq = 0;        // 0 for genesis
  std::string prev;       // "" for genesis
  AuditRecord record;     // filled for kDecision
  std::string continues;  // kContinuation: the file named in the record
  // Checkpoint fields (checkpoint.h); empty when absent.
  std::string log_id;      // genesis, continuation
  std::string instance;    // genesis
  std::string checkpoint;  // kCheckpoint, or a checkpointing continuation
  std::string key_jwk;     // JSON text of "key" beside a checkpoint
  std::string follows;     // genesis of a new segment: JSON text of "follows"
  std::string acknowledged;  // and of "acknowledged"
};

// Parses and checks one line (no newline). Errors name the field and the rule.
absl::StatusOr<ParsedLine> ParseAuditLine(std::string_view line);

// Files of the chain that ends in `path`, oldest first: path.N ... path.1,
// path. Only files that exist are listed (path itself too).
std::vector<std::string> AuditChainFiles(const std::string& path);

// Reads a whole file. NotFound / Internal errors name the path and errno text.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_AUDIT_FORMAT_H_
