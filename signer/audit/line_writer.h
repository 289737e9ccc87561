// Allocation-free building blocks for audit lines on the append hot path: the
// audit time format, the decision body appended into a caller's buffer
// (strings through the project's one JSON string writer,
// text::AppendLogSafeJsonString in signer/text/json_string.h), and a reusable
// SHA-256 hasher.
//
// Contract: AppendDecisionBody(r, t, &out) appends exactly the bytes
// FormatDecisionBody(r with time t) returns (audit_format.h); the line format
// is unchanged. Thread-safety: the free functions are pure; Sha256Hasher is
// NOT thread-safe (one per thread or under the owner's lock).
#ifndef TOKENSIGN_SIGNER_AUDIT_LINE_WRITER_H_
#define TOKENSIGN_SIGNER_AUDIT_LINE_WRITER_H_

#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "crypto/ssl_ptr.h"
#include "signer/audit/audit_record.h"

namespace tokensign::audit {

// Appends "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, milliseconds truncated), the same
// bytes as FormatAuditTime.
void AppendAuditTime(absl::Time t, std::string* out);

// Appends the members of a decision record ("time" .. "reason", no braces)
// with `time` in place of record.time.
void AppendDecisionBody(const AuditRecord& record, absl::Time time,
                        std::string* out);

// SHA-256 with one fetched EVP_MD and one reused EVP_MD_CTX (no per-call
// fetch or allocation). Not thread-safe.
class Sha256Hasher {
 public:
  Sha256Hasher();
  // Writes 64 lowercase hex characters to hex[0..63]. False only if OpenSSL
  // fails (allocation); then hex is left unchanged.
  bool HexDigest(std::string_view data, char* hex);

 private:
  crypto::SslPtr<EVP_MD> md_;
  crypto::SslPtr<EVP_MD_CTX> ctx_;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_LINE_WRITER_H_
