// One audit decision (AuditRecord) and the actor chain it names: the value the
// service hands to AuditLog::Append and the verifier parses back from a line
// (audit_format.h). Plain data: no behaviour, copyable; thread-compatible.
#ifndef TOKENSIGN_SIGNER_AUDIT_AUDIT_RECORD_H_
#define TOKENSIGN_SIGNER_AUDIT_AUDIT_RECORD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tokensign::audit {

struct AuditActor {
  std::string sub;
  std::string iss;
};

// One decision. Never holds the token itself, only its SHA-256.
struct AuditRecord {
  // absl::UnixEpoch() (the default) means "stamp with absl::Now() at Append".
  absl::Time time;
  std::string caller;  // mTLS identity or "dev"
  std::string issuer;  // issuer name in config
  std::string kind;    // "access_token" / "transaction_token"
  std::string kid;
  std::string jti;
  std::string sub;
  std::string client_id;
  std::vector<AuditActor> actor_chain;  // [0] = current actor
  std::vector<std::string> aud;
  std::vector<std::string> scope;
  int64_t exp = 0;
  // What else the token carries (or would have). Empty / 0 = not in the
  // request; such members are left out of the line.
  // Lifetime in seconds: exp - iat when a token was minted; otherwise the
  // requested ttl_seconds as given (0 = the issuer default).
  int64_t ttl = 0;
  std::string cnf_jkt;       // cnf.jkt as requested
  std::string cnf_x5t_s256;  // cnf.x5t#S256 as requested
  std::string txn;
  std::string req_wl;
  std::string rctx_sha256;  // hex SHA-256 of rctx's canonical JSON
  std::string tctx_sha256;  // hex SHA-256 of tctx's canonical JSON
  std::vector<std::string> extra_claims;  // the extra claims' names, sorted
  std::string extra_claims_sha256;  // hex SHA-256 of their canonical JSON
  std::string parent_jti;
  // Token exchange: hex SHA-256 of the verified parent token, and the
  // parent's cnf when the child was bound to another key (empty otherwise).
  std::string parent_token_sha256;
  std::string parent_cnf_jkt;
  std::string parent_cnf_x5t_s256;
  // Revocation: the token's status list entry (status_idx -1 = none); for a
  // signed status list (kind "status_list"), status_uri is the list, with its
  // size and the number of entries not 0.
  std::string status_uri;
  int64_t status_idx = -1;
  int64_t status_list_size = 0;
  int64_t status_list_set = 0;
  std::string token_sha256;  // hex; empty when denied
  std::string outcome;       // "signed" | "denied"
  std::string reason;        // empty when signed; the rule when denied
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_AUDIT_RECORD_H_
