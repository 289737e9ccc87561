// A tokensignd --dev child process for `tokensign-bench daemon`: a fresh temp
// state dir, ephemeral loopback ports (read back from --ready-file), ready when
// GET /readyz says 200. Stop() sends SIGTERM and waits for exit 0 (SIGKILL
// after 20 s). Restart() stops it and starts it again on the same state dir
// (same token and key) with other extra flags, e.g. the dev/benchmark knobs
// --dev-verify-before-release=false / --dev-audit-durability=none. The destructor stops the child if still running and removes the
// state dir unless asked to keep it. Thread-safety: one thread.
#ifndef TOKENSIGN_TOOLS_BENCH_DAEMON_PROCESS_H_
#define TOKENSIGN_TOOLS_BENCH_DAEMON_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tokensign::bench {

class DaemonProcess {
 public:
  // `binary` empty = tokensignd in this build tree
  // (../../signer/service/tokensignd next to tools/bench/tokensign-bench).
  static absl::StatusOr<std::unique_ptr<DaemonProcess>> StartDev(
      const std::string& binary, const std::string& module, bool keep_state,
      std::vector<std::string> extra_args = {});
  // Stop() then start again in the same state dir with `extra_args`.
  absl::Status Restart(std::vector<std::string> extra_args);
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  std::string grpc_target() const {
    return "127.0.0.1:" + std::to_string(grpc_port_);
  }
  const std::string& state_dir() const { return state_dir_; }
  pid_t pid() const { return pid_; }
  absl::Status Stop();

 private:
  DaemonProcess() = default;
  absl::Status Spawn(const std::vector<std::string>& extra_args);
  std::string binary_, module_, state_dir_;
  pid_t pid_ = -1;
  int grpc_port_ = 0, http_port_ = 0;
  bool keep_state_ = false;
};

// CPU seconds used so far by this process (getrusage) and by `daemon_pid`
// (/proc/PID/stat; daemon = -1 when daemon_pid <= 0 or unreadable), for CPU per
// signed token.
struct CpuTimes {
  double self = 0, daemon = -1;
};
CpuTimes ReadCpu(pid_t daemon_pid);

// CPU of one bench cell accumulated over its rounds.
struct CellCpu {
  double self = 0, daemon = 0;
  bool daemon_known = true;
  void Add(const CpuTimes& before, const CpuTimes& after);
};

}  // namespace tokensign::bench

#endif  // TOKENSIGN_TOOLS_BENCH_DAEMON_PROCESS_H_
