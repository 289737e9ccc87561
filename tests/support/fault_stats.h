// The fault module's counters as it writes them for other processes
// (TOKENSIGN_FAULT_STATS, tests/fault/fault_module.c): "injected",
// "corrupted", "delayed", "stale" -> count; a missing file is all zero.
// Header-only test support. Thread-safety: pure (reads the file).
#ifndef TOKENSIGN_TESTS_SUPPORT_FAULT_STATS_H_
#define TOKENSIGN_TESTS_SUPPORT_FAULT_STATS_H_

#include <fstream>
#include <map>
#include <string>

namespace tokensign::testing {

inline std::map<std::string, long> FaultStats(const std::string& path) {
  std::map<std::string, long> stats;
  std::ifstream in(path);
  std::string name;
  long value = 0;
  while (in >> name >> value) stats[name] = value;
  return stats;
}

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SUPPORT_FAULT_STATS_H_
