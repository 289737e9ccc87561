// The p11-kit peer of `tokensign-bench daemon`: what a user would run instead
// of tokensignd. The HSM is shared through p11-kit's remote module (`p11-kit
// server --provider MODULE pkcs11:token=LABEL` on a socket in a fresh temp
// dir, SOFTHSM2_CONF inherited from this process) and this process opens
// p11-kit-client.so (Debian: p11-kit-modules) with P11_KIT_SERVER_ADDRESS
// pointing at it; the bench then signs through it in its own threads (C_Sign
// on the token key + one OpenSSL verify). The destructor closes the client
// and stops the server (SIGTERM, SIGKILL after 5 s) and removes the dir.
// Thread-safety: Start/ServerCpu/destructor from one thread; hsm() is as
// thread-safe as hsm::Hsm.
#ifndef TOKENSIGN_TOOLS_BENCH_DAEMON_PEER_H_
#define TOKENSIGN_TOOLS_BENCH_DAEMON_PEER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "hsm/hsm.h"

namespace tokensign::bench {

inline constexpr char kP11KitClientModule[] =
    "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so";

class P11KitPeer {
 public:
  // `provider`: the module p11-kit server loads (SoftHSM); `client`: the
  // p11-kit client module this process loads; `p11kit`: the p11-kit binary
  // (PATH is searched). NotFound when the client module is missing.
  static absl::StatusOr<std::unique_ptr<P11KitPeer>> Start(
      const std::string& provider, const std::string& token_label,
      const std::string& pin_file, const std::string& client = kP11KitClientModule,
      const std::string& p11kit = "p11-kit");
  ~P11KitPeer();
  P11KitPeer(const P11KitPeer&) = delete;
  P11KitPeer& operator=(const P11KitPeer&) = delete;

  // The token as this process sees it through p11-kit-client.so.
  hsm::Hsm& hsm() { return *hsm_; }
  // CPU seconds used so far by the server and its per-connection children
  // (-1 if unreadable), for CPU per peer signature.
  double ServerCpu() const;

 private:
  P11KitPeer() = default;
  std::shared_ptr<hsm::Hsm> hsm_;
  std::string dir_;
  pid_t server_pid_ = -1;
};

}  // namespace tokensign::bench

#endif  // TOKENSIGN_TOOLS_BENCH_DAEMON_PEER_H_
