#include "tools/tokensignctl/audit_commands.h"

#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "signer/audit/audit_verify.h"
#include "signer/audit/checkpoint_keys.h"

namespace tokensign::ctl {
namespace {

int Rank(int code) {
  switch (code) {
    case kAuditIntact:
      return 0;
    case kAuditUnanchored:
      return 1;
    case kAuditCannotRead:
      return 2;
    default:
      return 3;
  }
}

int Worse(int a, int b) { return Rank(a) >= Rank(b) ? a : b; }

}  // namespace

int RunAuditVerify(const AuditVerifyArgs& args) {
  using audit::CheckpointTrust;
  std::optional<CheckpointTrust> trust;
  if (!args.keys_file.empty()) {
    std::ifstream in(args.keys_file);
    if (!in) {
      std::cerr << "tokensignctl: --keys: cannot read " << args.keys_file
                << "\n";
      return kAuditCannotRead;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto t = CheckpointTrust::FromJwks(ss.str());
    if (!t.ok()) {
      std::cerr << "tokensignctl: --keys " << args.keys_file << ": "
                << t.status().message() << "\n";
      return kAuditCannotRead;
    }
    trust = *std::move(t);
  } else if (!args.pins.empty()) {
    trust = CheckpointTrust::Pinned(args.pins);
  }
  int exit_code = kAuditIntact;
  for (const std::string& file : args.files) {
    auto report = audit::VerifyAuditChain(
        file, {.trust = trust ? &*trust : nullptr});
    if (!report.ok()) {
      std::cerr << "tokensignctl: " << report.status().message() << "\n";
      exit_code = Worse(exit_code, kAuditCannotRead);
      continue;
    }
    if (args.files.size() > 1) std::cout << "== " << file << "\n";
    std::cout << audit::FormatVerifyReport(*report) << "\n";
    switch (audit::Verdict(*report)) {
      case audit::VerifyVerdict::kIntact:
        break;
      case audit::VerifyVerdict::kUnanchoredTail:
        exit_code = Worse(exit_code, kAuditUnanchored);
        break;
      case audit::VerifyVerdict::kBroken:
        exit_code = Worse(exit_code, kAuditBroken);
        break;
    }
  }
  return exit_code;
}

}  // namespace tokensign::ctl
