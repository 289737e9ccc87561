// tokensign::testing::SoftHsmToken — a fresh SoftHSM2 token in its own temp
// directory.
//
// Create() makes a temp dir, writes softhsm2.conf there (file object store),
// points SOFTHSM2_CONF of this process at it, and initializes one token with a
// random label, user PIN and SO PIN (softhsm2-util --init-token --free). The
// destructor removes the dir. config() returns an hsm::HsmConfig for the token;
// the user PIN is put into the process environment variable kPinEnv so that the
// config carries only the variable's name.
//
// SoftHSM reads SOFTHSM2_CONF once, at C_Initialize: make one SoftHsmToken per
// process (the test main below does) before any Hsm is opened; AddToken() puts
// more tokens into the same directory.
//
// Second PKCS#11 module: with TOKENSIGN_TEST_MODULE=p11kit in the
// environment, Create() also starts `p11-kit server` (its own socket in the
// temp dir, SoftHSM as its provider, every token) and module_path() is
// p11-kit's client module (p11-kit-client.so, Debian package
// p11-kit-modules; TOKENSIGN_P11KIT_CLIENT overrides the path), so the same
// tests run against SoftHSM behind p11-kit's remote protocol: other slot ids,
// a process boundary, RPC latency. P11_KIT_SERVER_ADDRESS is set in this
// process for it and for the commands it starts. If the client module or the
// p11-kit command is missing, Create() fails with NotFound (the test main
// then skips with exit code 77, or fails when CI=true). "softhsm" or unset =
// SoftHSM directly.
//
// Typical use with tokensign_test_main (a gtest main that creates the token):
//   auto hsm =
//   tokensign::hsm::Hsm::Open(tokensign::testing::GlobalToken().config());
//
// Thread-safety: create/destroy on one thread; accessors are const and
// thread-safe.
#ifndef TOKENSIGN_TESTS_SUPPORT_SOFTHSM_TOKEN_H_
#define TOKENSIGN_TESTS_SUPPORT_SOFTHSM_TOKEN_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hsm/hsm_types.h"

namespace tokensign::testing {

class SoftHsmToken {
 public:
  static constexpr char kPinEnv[] = "TOKENSIGN_TEST_PIN";

  static absl::StatusOr<std::unique_ptr<SoftHsmToken>> Create();
  ~SoftHsmToken();
  SoftHsmToken(const SoftHsmToken&) = delete;
  SoftHsmToken& operator=(const SoftHsmToken&) = delete;

  // Initializes one more token (same PINs) in this directory; returns its
  // label. Call before the first Hsm::Open in the process to have it visible.
  absl::StatusOr<std::string> AddToken();

  // libsofthsm2.so, or p11-kit-client.so in p11kit mode.
  const std::string& module_path() const { return module_path_; }
  // libsofthsm2.so in either mode (what p11-kit's server forwards to).
  const std::string& softhsm_module_path() const {
    return softhsm_module_path_;
  }
  // "softhsm" or "p11kit".
  const std::string& module_kind() const { return module_kind_; }
  // Whether module_path() offers Ed25519 (CKM_EC_EDWARDS_KEY_PAIR_GEN and
  // CKM_EDDSA): SoftHSM 2.6 does; p11-kit 0.24's RPC does not carry those
  // mechanisms, so through p11kit the Ed25519 cases are skipped.
  bool offers_ed25519() const { return offers_ed25519_; }
  const std::string& dir() const { return dir_; }
  const std::string& conf_path() const { return conf_path_; }
  const std::string& label() const { return label_; }
  const std::string& pin() const { return pin_; }
  const std::string& so_pin() const { return so_pin_; }
  // module_path, token_label, pin_env = kPinEnv.
  hsm::HsmConfig config() const;

 private:
  SoftHsmToken() = default;
  absl::Status InitToken(const std::string& label);
  absl::Status StartP11KitServer();

  std::string module_path_, dir_, conf_path_, label_, pin_, so_pin_;
  std::string softhsm_module_path_, module_kind_ = "softhsm";
  pid_t p11kit_server_pid_ = -1;
  bool offers_ed25519_ = true;
};

// The token made for this test program by tokensign_test_main's environment.
SoftHsmToken& GlobalToken();

// Runs `argv` (argv[0] looked up in PATH) and waits; returns its exit status
// and combined stdout+stderr. For test helpers only (softhsm2-util,
// pkcs11-tool, openssl).
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv);

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SUPPORT_SOFTHSM_TOKEN_H_
