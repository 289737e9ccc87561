// libFuzzer target: reading an audit log someone may have tampered with.
// The first byte picks the mode:
//   even: the rest is one line for ParseAuditLine; a line carrying a checkpoint
//         also goes through CheckpointTrust::Embedded().Verify (embedded JWK
//         parse, JWS parse and signature check);
//   odd:  the rest is a whole log file for VerifyAuditChain and
//         FormatVerifyReport (written to a private temporary file).
// Property: a chain verified intact has no break, and a report is printable.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "signer/audit/audit_format.h"
#include "signer/audit/audit_verify.h"
#include "signer/audit/checkpoint_keys.h"

namespace {

using namespace tokensign::audit;  // NOLINT(build/namespaces): a fuzz harness

std::string* TempLog() {
  static std::string* path = [] {
    const char* dir = std::getenv("TMPDIR");
    auto* p = new std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp");
    *p += "/tokensign-audit-fuzz-" + std::to_string(getpid()) + ".log";
    return p;
  }();
  return path;
}

void VerifyFile(std::string_view bytes) {
  const std::string& path = *TempLog();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    std::abort();
  }
  std::fclose(f);
  absl::StatusOr<VerifyReport> report = VerifyAuditChain(path);
  std::remove(path.c_str());
  if (!report.ok()) return;
  if (report->ok && report->first_break.has_value()) {
    std::fprintf(stderr, "audit_fuzzer: a chain reported ok has a break\n");
    std::abort();
  }
  (void)FormatVerifyReport(*report);
  (void)Verdict(*report);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) != 0) {
    VerifyFile(rest);
    return 0;
  }
  absl::StatusOr<ParsedLine> line = ParseAuditLine(rest);
  if (line.ok() && !line->checkpoint.empty()) {
    static const CheckpointTrust* embedded = new CheckpointTrust(CheckpointTrust::Embedded());
    (void)embedded->Verify(line->checkpoint, line->key_jwk);
  }
  return 0;
}
