// Hash-chained, append-only audit log: one JSON line per signing decision.
// Each line carries `prev` = hex SHA-256 of the previous line (the first line's prev is
// the hash of a genesis record naming the log). Append blocks until the record is durable
// (group-committed by a writer thread with fdatasync) unless durability is kNone.
// Thread-safety: AuditLog is safe for concurrent Append from many threads.
#ifndef TOKENSIGN_SIGNER_AUDIT_AUDIT_LOG_H_
#define TOKENSIGN_SIGNER_AUDIT_AUDIT_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tokensign::audit {

struct AuditActor {
  std::string sub;
  std::string iss;
};

// One decision. Never holds the token itself, only its SHA-256.
struct AuditRecord {
  absl::Time time;
  std::string caller;     // mTLS identity or "dev"
  std::string issuer;     // issuer name in config
  std::string kind;       // "access_token" / "transaction_token"
  std::string kid;
  std::string jti;
  std::string sub;
  std::string client_id;
  std::vector<AuditActor> actor_chain;  // [0] = current actor
  std::vector<std::string> aud;
  std::vector<std::string> scope;
  int64_t exp = 0;
  std::string parent_jti;
  std::string token_sha256;  // hex; empty when denied
  std::string outcome;       // "signed" | "denied"
  std::string reason;        // empty when signed; the rule when denied
};

enum class Durability { kFsync, kNone };

struct AuditLogOptions {
  std::string path;                    // active file; rotated files get .1, .2, ...
  std::string log_name = "tokensign";  // named in the genesis record
  Durability durability = Durability::kFsync;
  int64_t rotate_bytes = 64 << 20;     // rotate when the active file exceeds this; 0 = never
};

class AuditLog {
 public:
  // Opens (0600, O_APPEND) or creates the log; resumes the chain from the last complete
  // line, truncating a torn last line (reported via torn_tail_repaired()).
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const AuditLogOptions& options);
  virtual ~AuditLog() = default;
  // Appends and waits until durable. Fails (and the caller must not release a token) if
  // the record could not be written.
  virtual absl::Status Append(const AuditRecord& record) = 0;
  virtual bool torn_tail_repaired() const = 0;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_AUDIT_LOG_H_
