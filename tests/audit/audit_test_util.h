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

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "signer/audit/audit_log.h"
#include "signer/audit/std_mutex.h"

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

// absl::Notification on StdMutex: a completion running on the audit writer
// thread hands its result to the test through it. absl::Notification's
// absl::Mutex is invisible to ThreadSanitizer (Debian's abseil is not
// instrumented), so TSan took every such hand-off for a race.
// Thread-safety: any thread.
class Notification {
 public:
  void Notify() {
    StdMutexLock lock(&mu_);
    notified_ = true;
    cv_.SignalAll();
  }
  void WaitForNotification() {
    StdMutexLock lock(&mu_);
    while (!notified_) cv_.Wait(&mu_);
  }
  // True if notified within `timeout`.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    StdMutexLock lock(&mu_);
    while (!notified_ && !cv_.WaitWithDeadline(&mu_, deadline)) {
    }
    return notified_;
  }

 private:
  StdMutex mu_;
  StdCondVar cv_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tokensign::audit::testing

#endif  // TOKENSIGN_TESTS_AUDIT_AUDIT_TEST_UTIL_H_
