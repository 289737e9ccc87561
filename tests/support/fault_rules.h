// WriteFaultRules: replaces the fault module's control file (the rules
// TOKENSIGN_FAULT_CONTROL names, tests/fault/fault_module.c) atomically, as
// the module requires: a reader sees the old rules or the new ones, never
// half a file. Each write starts with a new generation line, so writing the
// same rules again re-arms their counts. Header-only test support.
// Thread-safety: one writer per control file; the counter is per process.
#ifndef TOKENSIGN_TESTS_SUPPORT_FAULT_RULES_H_
#define TOKENSIGN_TESTS_SUPPORT_FAULT_RULES_H_

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

namespace tokensign::testing {

inline void WriteFaultRules(const std::string& control_path,
                            const std::string& rules) {
  static std::atomic<int> generation{0};
  const std::string tmp = control_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "# generation " << ++generation << "\n" << rules;
  }
  std::filesystem::rename(tmp, control_path);
}

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SUPPORT_FAULT_RULES_H_
