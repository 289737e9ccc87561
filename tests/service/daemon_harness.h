// Test harness for end-to-end tests of tokensignd: a private temp dir, a
// dev-mode token, test certificates made with the openssl CLI, a real daemon
// process on ephemeral loopback ports (read from its --ready-file), gRPC
// channels and audit-log reading. Thread-safety: one harness per test; not
// shared.
#ifndef TOKENSIGN_TESTS_SERVICE_DAEMON_HARNESS_H_
#define TOKENSIGN_TESTS_SERVICE_DAEMON_HARNESS_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::testing {

struct DaemonProcess {
  pid_t pid = -1;
  int grpc_port = 0;
  int http_port = 0;
  std::string log_path;
};

class DaemonHarness {
 public:
  DaemonHarness();   // makes the temp dir
  ~DaemonHarness();  // kills any daemon still running, removes the temp dir

  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Starts `tokensignd` with `args` (+ --ready-file, ephemeral listen addresses
  // unless given) and `env` (NAME=VALUE); waits until it is listening. Fails
  // the test otherwise.
  DaemonProcess Start(const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {});
  // Runs tokensignd to completion (for refused configs); returns exit code,
  // fills output.
  int RunToExit(const std::vector<std::string>& args, std::string* output);
  // Sends `signo` and waits for exit; returns the exit status (or -1).
  int Stop(DaemonProcess& d, int signo);
  void Signal(const DaemonProcess& d, int signo);

  // Runs tokensignd --dev once in `state` to create the token and its `dev`
  // key.
  void InitDevState(const std::string& state);
  // CA, server cert (DNS:localhost, IP:127.0.0.1), clients: signer (URI
  // spiffe://test/signer), custodian (CN custodian-1), rogue (from another CA).
  void MakeCerts();

  std::shared_ptr<grpc::Channel> Insecure(const DaemonProcess& d);
  // mTLS channel with client cert `name` (empty = no client cert).
  std::shared_ptr<grpc::Channel> Tls(const DaemonProcess& d,
                                     const std::string& name);

  // GET http://127.0.0.1:port/path via curl; returns the body, fills the status
  // code.
  std::string HttpGet(const DaemonProcess& d, const std::string& path,
                      int* code = nullptr);
  // Every line of the audit log as JSON.
  std::vector<nlohmann::json> AuditLines(const std::string& path);

 private:
  std::string dir_;
  std::vector<DaemonProcess*> running_;
  std::vector<pid_t> pids_;
};

// The DOMAIN.md scenario request.
v1::SignTokenRequest ScenarioRequest(const std::string& issuer = "dev");
std::string ReadAll(const std::string& path);
void WriteAll(const std::string& path, const std::string& content);
// Runs a shell command; returns its exit code; output appended to *out if
// given.
int Shell(const std::string& cmd, std::string* out = nullptr);

// Debian's Python, which has python3-jwt and grpcio (not a pyenv shim).
inline constexpr char kSystemPython[] = "/usr/bin/python3";

// PyJWT (an independent JOSE implementation) verifies `token` with `jwks`:
// only `alg` allowed ("" = the alg of the JWK the token's kid names),
// audience https://api.example and issuer `iss` checked. Returns
// "<alg> <typ> <sub>" or PyJWT's failure output.
std::string PyJwtVerify(DaemonHarness& h, const std::string& token,
                        const std::string& jwks, const std::string& alg,
                        const std::string& iss);

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SERVICE_DAEMON_HARNESS_H_
