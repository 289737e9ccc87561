#include "tools/bench/daemon_bench_options.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace tokensign::bench {

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
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
