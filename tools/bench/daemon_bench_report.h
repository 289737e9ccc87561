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
};

// Prints the table (stderr with --json) and the ratios (stdout); returns 1
// when a cell that ran produced no tokens, else 0.
int PrintReport(const Options& o, Report& r);

}  // namespace tokensign::bench

#endif  // TOKENSIGN_TOOLS_BENCH_DAEMON_BENCH_REPORT_H_
