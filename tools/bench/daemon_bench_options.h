// Options of `tokensign-bench daemon` and their parsing (flags: see
// bench_daemon.cc). Thread-safety: plain data.
#ifndef TOKENSIGN_TOOLS_BENCH_DAEMON_BENCH_OPTIONS_H_
#define TOKENSIGN_TOOLS_BENCH_DAEMON_BENCH_OPTIONS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#ifndef TOKENSIGN_SOFTHSM_MODULE
#define TOKENSIGN_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

namespace tokensign::bench {

struct Options {
  double seconds = 3.0;  // per cell (split over the rounds)
  double warmup = 1.0;
  int rounds = 3;
  int in_flight = 32;
  int batch_in_flight = 4;
  int batch_size = 64;
  int client_threads = 1;
  std::string tokensignd, module = TOKENSIGN_SOFTHSM_MODULE;
  std::string server, state_dir;
  pid_t daemon_pid =
      0;  // --server: for CPU per token (default: STATE_DIR/tokensignd.pid)
  bool no_ceiling = false, daemon_verify = true, keep_state = false,
       json = false, noverify_phase = true;
  std::string daemon_audit = "fsync";     // own daemon: --dev-audit-durability
  std::string only;                       // "", "unary" or "batch"
  std::vector<std::string> daemon_flags;  // extra flags for the own daemon
  bool help = false;                      // --help / -h: print usage, exit 0
  // The p11-kit peer (daemon_peer.h): on unless --no-peer or --no-ceiling.
  bool peer = true;
  std::string p11kit_client;  // --p11kit-client SO; "" = Debian's path
};

// The flags and what they do (printed by --help).
extern const char kDaemonBenchUsage[];

// Parses argv[1..]; prints what is wrong to stderr and returns false on a bad
// flag or value.
bool ParseArgs(int argc, char** argv, Options& o);

}  // namespace tokensign::bench

#endif  // TOKENSIGN_TOOLS_BENCH_DAEMON_BENCH_OPTIONS_H_
