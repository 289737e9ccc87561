#include "tools/bench/daemon_bench_options.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace tokensign::bench {

const char kDaemonBenchUsage[] =
    "usage: tokensign-bench daemon [flags]\n"
    "Loads tokensignd over gRPC and measures, in the same run on the same\n"
    "SoftHSM key, the ceiling (raw C_Sign + one OpenSSL verify per token, and\n"
    "C_Sign alone); beside each unary cell, GetJwks (gRPC alone) and the\n"
    "unary ratio that floor leaves at best; the last lines are the ratios.\n"
    "  --seconds S           measured time per cell, split over the rounds "
    "(3)\n"
    "  --rounds R            ceiling and load cells alternate R times (3)\n"
    "  --warmup S            warm-up per kind of load (1)\n"
    "  --in-flight N         unary calls in flight (32)\n"
    "  --batch-in-flight N   SignTokens calls in flight (4)\n"
    "  --batch-size N        items per SignTokens call (64)\n"
    "  --client-threads T    completion-queue threads of the client (1)\n"
    "  --only unary|batch    just that closed-loop cell (profiling)\n"
    "  --json                the report as JSON on stdout\n"
    "  --no-peer             skip the p11-kit peer (p11-kit server on the\n"
    "                        same token + p11-kit-client.so in this process:\n"
    "                        C_Sign + verify, best of 2 and 4 threads)\n"
    "  --p11kit-client SO    the p11-kit client module (Debian's\n"
    "                        p11-kit-modules path by default)\n"
    "Own daemon (default): starts tokensignd --dev in a temp state dir\n"
    "  --tokensignd PATH     the daemon binary (default: the build tree's)\n"
    "  --module SO           PKCS#11 module (SoftHSM)\n"
    "  --daemon-audit fsync|none   audit durability of the own daemon (fsync)\n"
    "  --daemon-flag FLAG    add FLAG to the own daemon's command line\n"
    "  --no-noverify         skip the verify-off phase\n"
    "  --keep-state          keep the temp state dir\n"
    "A running daemon:\n"
    "  --server HOST:PORT    plaintext dev daemon to load\n"
    "  --state-dir DIR       its state dir (for the ceiling on the same key)\n"
    "  --daemon-pid PID      for CPU per token (default: DIR/tokensignd.pid)\n"
    "  --daemon-verify on|off   whether that daemon verifies before release\n"
    "  --no-ceiling          no ceiling (no state dir needed)\n";

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      o.help = true;
      return true;
    }
    auto value = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    const char* v = nullptr;
    if (a == "--no-ceiling") {
      o.no_ceiling = true;
      continue;
    }
    if (a == "--keep-state") {
      o.keep_state = true;
      continue;
    }
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (a == "--no-noverify") {
      o.noverify_phase = false;
      continue;
    }
    if (a == "--no-peer") {
      o.peer = false;
      continue;
    }
    if ((v = value()) == nullptr) {
      std::fprintf(stderr, "daemon bench: %s: unknown flag or missing value\n",
                   a.c_str());
      return false;
    }
    if (a == "--seconds")
      o.seconds = std::atof(v);
    else if (a == "--warmup")
      o.warmup = std::atof(v);
    else if (a == "--rounds")
      o.rounds = std::atoi(v);
    else if (a == "--in-flight")
      o.in_flight = std::atoi(v);
    else if (a == "--batch-in-flight")
      o.batch_in_flight = std::atoi(v);
    else if (a == "--batch-size")
      o.batch_size = std::atoi(v);
    else if (a == "--client-threads")
      o.client_threads = std::atoi(v);
    else if (a == "--tokensignd")
      o.tokensignd = v;
    else if (a == "--module")
      o.module = v;
    else if (a == "--server")
      o.server = v;
    else if (a == "--daemon-pid")
      o.daemon_pid = std::atoi(v);
    else if (a == "--state-dir")
      o.state_dir = v;
    else if (a == "--daemon-verify")
      o.daemon_verify = std::strcmp(v, "off") != 0;
    else if (a == "--daemon-audit")
      o.daemon_audit = v;
    else if (a == "--only")
      o.only = v;
    else if (a == "--daemon-flag")
      o.daemon_flags.push_back(v);
    else if (a == "--p11kit-client")
      o.p11kit_client = v;
    else {
      std::fprintf(stderr, "daemon bench: unknown flag %s\n", a.c_str());
      return false;
    }
  }
  if (!o.only.empty() && o.only != "unary" && o.only != "batch") {
    std::fprintf(stderr, "daemon bench: --only must be unary or batch\n");
    return false;
  }
  if (o.seconds <= 0 || o.rounds < 1 || o.in_flight < 1 ||
      o.batch_in_flight < 1 || o.batch_size < 1 || o.client_threads < 1) {
    std::fprintf(stderr,
                 "daemon bench: --seconds/--rounds/--in-flight/--batch-*/"
                 "--client-threads must be positive\n");
    return false;
  }
  if (!o.server.empty() && o.state_dir.empty() && !o.no_ceiling) {
    std::fprintf(
        stderr,
        "daemon bench: --server needs --state-dir DIR (the dev daemon's, "
        "for the ceiling) or --no-ceiling\n");
    return false;
  }
  return true;
}

}  // namespace tokensign::bench
