// Allocation-free building blocks for audit lines on the append hot path: a
// JSON string/number appender byte-identical to nlohmann::ordered_json::dump
// (indent -1, ensure_ascii false, invalid UTF-8 replaced by U+FFFD) except
// that C1 controls, format characters, U+2028/U+2029 and noncharacters are
// written as \u escapes (text/unicode.h), the audit
// time format, the decision body appended into a caller's buffer, and a
// reusable SHA-256 hasher.
//
// Contract: AppendDecisionBody(r, t, &out) appends exactly the bytes
// FormatDecisionBody(r with time t) returns (audit_format.h); the line format
// is unchanged. Thread-safety: the free functions are pure; Sha256Hasher is
// NOT thread-safe (one per thread or under the owner's lock).
#ifndef TOKENSIGN_SIGNER_AUDIT_LINE_WRITER_H_
#define TOKENSIGN_SIGNER_AUDIT_LINE_WRITER_H_

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "signer/audit/audit_record.h"

namespace tokensign::audit {

// Appends `s` as a JSON string literal (quotes included). Plain printable
// ASCII is copied; anything needing escapes or UTF-8 checks goes through
// nlohmann so the bytes match the reader's and the old writer's exactly, then
// C1 controls and text::UnsafeCharacterClass code points become \uXXXX (a
// surrogate pair above U+FFFF): the same JSON value, never raw in a line.
void AppendJsonString(std::string_view s, std::string* out);

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
  struct MdFree {
    void operator()(EVP_MD* md) const { EVP_MD_free(md); }
  };
  struct CtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD, MdFree> md_;
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx_;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_LINE_WRITER_H_
