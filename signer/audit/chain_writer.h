// ChainWriter owns the head of the hash chain (the next seq and `prev`, the
// hex SHA-256 of the last line) and writes chained lines into a caller's
// buffer: {"v":1,"seq":N,BODY,"prev":"PREV"} plus '\n', the bytes
// AssembleLine (audit_format.h) makes, with no temporary line. It knows no
// file: the audit log hands it the group committer's pending segment.
// Thread-safety: not thread-safe; the owner calls it under its own lock.
#ifndef TOKENSIGN_SIGNER_AUDIT_CHAIN_WRITER_H_
#define TOKENSIGN_SIGNER_AUDIT_CHAIN_WRITER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "signer/audit/line_writer.h"

namespace tokensign::audit {

class ChainWriter {
 public:
  // Continue after the line with seq next_seq - 1 whose hash is prev_hash.
  void Reset(int64_t next_seq, std::string prev_hash);

  // Appends the chained line for `body` (members without braces) and '\n' to
  // *out; returns its seq.
  int64_t AppendBody(std::string_view body, std::string* out);
  // Appends an already complete line (a genesis record, which carries its own
  // seq 0 and empty prev) and '\n'; it becomes the chain's head.
  int64_t AppendRaw(std::string_view line, int64_t seq, std::string* out);

  int64_t next_seq() const { return next_seq_; }
  // Hex SHA-256 of the last line ("" only if OpenSSL failed to hash it).
  const std::string& prev_hash() const { return prev_hash_; }

 private:
  // The line is out[start..]: hash it, end it with '\n'.
  int64_t Chain(std::string* out, size_t start, int64_t seq);

  int64_t next_seq_ = 0;
  std::string prev_hash_;
  Sha256Hasher hasher_;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_CHAIN_WRITER_H_
