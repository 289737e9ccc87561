#include "signer/audit/chain_writer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "signer/audit/audit_format.h"

namespace tokensign::audit {

void ChainWriter::Reset(int64_t next_seq, std::string prev_hash) {
  next_seq_ = next_seq;
  prev_hash_ = std::move(prev_hash);
}

int64_t ChainWriter::AppendBody(std::string_view body, std::string* out) {
  const size_t start = out->size();
  absl::StrAppend(out, "{\"v\":", kAuditFormatVersion, ",\"seq\":", next_seq_,
                  ",");
  out->append(body);
  out->append(",\"prev\":\"");
  out->append(prev_hash_);
  out->append("\"}");
  return Chain(out, start, next_seq_);
}

int64_t ChainWriter::AppendRaw(std::string_view line, int64_t seq,
                               std::string* out) {
  const size_t start = out->size();
  out->append(line);
  return Chain(out, start, seq);
}

int64_t ChainWriter::Chain(std::string* out, size_t start, int64_t seq) {
  std::string_view line(out->data() + start, out->size() - start);
  prev_hash_.resize(64);
  if (!hasher_.HexDigest(line, prev_hash_.data())) prev_hash_.clear();
  out->push_back('\n');
  next_seq_ = seq + 1;
  return seq;
}

}  // namespace tokensign::audit
