// tokensign-bench: benchmarks that report ratios measured in one run.
//   tokensign-bench [mode] [mode args...]
// Modes: hsm, provider, core, daemon (see --help). With no mode, runs every
// mode.
#include <cstdio>
#include <cstring>

namespace tokensign::bench {
int RunHsmBench(int argc, char** argv);
int RunProviderBench(int argc, char** argv);
int RunCoreBench(int argc, char** argv);
int RunDaemonBench(int argc, char** argv);
}  // namespace tokensign::bench

using tokensign::bench::RunCoreBench;
using tokensign::bench::RunDaemonBench;
using tokensign::bench::RunHsmBench;
using tokensign::bench::RunProviderBench;

namespace {

struct Mode {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* help;
};

constexpr Mode kModes[] = {
    {"hsm", &RunHsmBench,
     "raw C_Sign vs Hsm::Sign, ES256 and EdDSA, 1/2/4 threads"},
    {"provider", &RunProviderBench,
     "raw C_Sign vs EVP_DigestSign via the tokensign provider, ES256, 1/2 threads"},
    {"core", &RunCoreBench,
     "token core (Mint) vs C_Sign+verify; verify off vs C_Sign; audit fsync vs off"},
    {"daemon", &RunDaemonBench,
     "tokensignd over gRPC (unary, batch 64, p99 at half rate) vs C_Sign+verify ceiling"},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "-h") == 0 ||
                    std::strcmp(argv[1], "--help") == 0)) {
    std::printf("usage: %s [mode] [args]\n", argv[0]);
    for (const Mode& mode : kModes)
      std::printf("  %-8s %s\n", mode.name, mode.help);
    return 0;
  }
  if (argc < 2) {
    int rc = 0;
    for (const Mode& mode : kModes) {
      char* args[] = {const_cast<char*>(mode.name), nullptr};
      rc |= mode.run(1, args);
    }
    return rc;
  }
  for (const Mode& mode : kModes) {
    if (std::strcmp(argv[1], mode.name) == 0)
      return mode.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "%s: unknown mode '%s' (try --help)\n", argv[0],
               argv[1]);
  return 2;
}
