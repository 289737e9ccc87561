// The report of `tokensign-bench daemon`: the measured cells, the table, and
// the ratio lines (or --json). Thread-safety: plain data.
#ifndef TOKENSIGN_TOOLS_BENCH_DAEMON_BENCH_REPORT_H_
#define TOKENSIGN_TOOLS_BENCH_DAEMON_BENCH_REPORT_H_

#include "tools/bench/daemon_bench_options.h"
#include "tools/bench/daemon_load.h"
#include "tools/bench/daemon_process.h"

namespace tokensign::bench {

struct Report {
  // floor: GetJwks closed loop (gRPC alone), measured beside each unary cell.
  LoadResult unary, batch, half, floor;
  // ExchangeToken closed loop beside each unary cell (same in flight).
  LoadResult exchange;
  CellCpu exchange_cpu;
  double ceiling = 0, raw = 0, half_rate_target = 0;
  double ceiling_ops = 0, raw_ops = 0;
  CellCpu ceiling_cpu, raw_cpu, unary_cpu, batch_cpu, half_cpu, floor_cpu;
  bool have_ceiling = false;
  // Verify-off phase (own daemon restarted with
  // --dev-verify-before-release=false), against raw C_Sign measured in its
  // own alternating rounds.
  bool have_noverify = false;
  LoadResult unary_nv, batch_nv;
  double raw_nv = 0, raw_nv_ops = 0;
  CellCpu raw_nv_cpu, unary_nv_cpu, batch_nv_cpu;
  // The p11-kit peer (daemon_peer.h): C_Sign + one verify through
  // p11-kit-client.so in the bench's own threads, 2 and 4 threads in the
  // ceiling's rounds; the peer rate is the better of the two. CellCpu.daemon
  // here is the p11-kit server's (and its connection children's) CPU.
  bool want_peer = false, have_peer = false;
  std::string peer_missing;  // why there is no peer (want_peer && !have_peer)
  double peer2 = 0, peer4 = 0, peer2_ops = 0, peer4_ops = 0;
  CellCpu peer2_cpu, peer4_cpu;
  double peer() const { return peer2 > peer4 ? peer2 : peer4; }
};

// Prints the table (stderr with --json) and the ratios (stdout); returns 1
// when a cell that ran produced no tokens, else 0.
int PrintReport(const Options& o, Report& r);

}  // namespace tokensign::bench

#endif  // TOKENSIGN_TOOLS_BENCH_DAEMON_BENCH_REPORT_H_
