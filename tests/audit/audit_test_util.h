// Helpers shared by the audit tests: a temp directory, record factories, line
// I/O.
#ifndef TOKENSIGN_TESTS_AUDIT_AUDIT_TEST_UTIL_H_
#define TOKENSIGN_TESTS_AUDIT_AUDIT_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "signer/audit/audit_log.h"

namespace tokensign::audit::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl =
        std::string(base ? base : "/tmp") + "/tokensign-audit-XXXXXX";
    char* p = mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline AuditRecord MakeRecord(const std::string& jti,
                              const std::string& parent = "") {
  AuditRecord r;
  r.time = absl::FromUnixMillis(1714564800123);
  r.caller = "spiffe://example/authz";
  r.issuer = "main";
  r.kind = "access_token";
  r.kid = "kid-1";
  r.jti = jti;
  r.sub = "user-" + jti;
  r.client_id = "app";
  r.actor_chain = {{"agent-7", ""}, {"planner", "https://idp.example"}};
  r.aud = {"https://api.example"};
  r.scope = {"read", "write"};
  r.exp = 1714565100;
  r.parent_jti = parent;
  r.token_sha256 = std::string(64, 'a');
  r.outcome = "signed";
  return r;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// Complete lines without their newlines (a torn tail is dropped).
inline std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::string all = ReadAll(path);
  size_t pos = 0;
  for (size_t nl; (nl = all.find('\n', pos)) != std::string::npos;
       pos = nl + 1) {
    lines.push_back(all.substr(pos, nl - pos));
  }
  return lines;
}

inline void WriteLines(const std::string& path,
                       const std::vector<std::string>& lines) {
  std::string data;
  for (const auto& l : lines) data += l + "\n";
  WriteAll(path, data);
}

}  // namespace tokensign::audit::testing

#endif  // TOKENSIGN_TESTS_AUDIT_AUDIT_TEST_UTIL_H_
