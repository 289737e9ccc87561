#include "tools/tokensignctl/audit_commands.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "signer/audit/audit_verify.h"
#include "signer/audit/checkpoint_keys.h"
#include "tokensign/v1/tokensign.grpc.pb.h"
#include "tools/tokensignctl/key_commands.h"

namespace tokensign::ctl {
namespace {

namespace v1 = tokensign::v1;

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

std::string GrpcError(const grpc::Status& st) {
  return absl::StrCat(
      absl::StatusCodeToString(static_cast<absl::StatusCode>(st.error_code())),
      ": ", st.error_message());
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  return ctx;
}

// Compares the report's newest checkpoint with the one the HSM holds. Returns
// the line to print; *broken when they show the log truncated, replaced or
// rewritten.
// *absent when the HSM holds no anchor for the log (see below).
std::string CompareWithAnchor(const audit::VerifyReport& r,
                              const tokensign::v1::GetAuditAnchorResponse& a,
                              bool* broken, bool* absent) {
  *broken = false;
  *absent = false;
  std::string out = "server: ";
  if (!a.refused().empty())
    absl::StrAppend(&out, "the daemon refuses its log (", a.refused(), "); ");
  if (!a.found()) {
    // Not proof of tampering by whoever can write the file (the checkpoints
    // still verify): the anchor of an old log is gone once a custodian
    // retired it. But nothing vouches that this copy is complete.
    *absent = true;
    return absl::StrCat(
        out, "ABSENT: the HSM holds no anchor for log ", r.log_id,
        " of instance \"", a.instance(),
        "\" (retired by a custodian: see the audit_admin.RetireAuditAnchor "
        "records; or never anchored): the checkpoints verify, but the HSM "
        "cannot confirm that this copy is complete");
  }
  const audit::CheckpointRef held{a.log_id(), a.checkpoint_seq(),
                                  a.checkpoint_sha256()};
  if (!r.last_checkpoint) {
    *broken = true;
    return absl::StrCat(out, "BROKEN: the HSM holds checkpoint seq ",
                        held.seq, " but the files hold none");
  }
  const audit::CheckpointRef& last = *r.last_checkpoint;
  if (last == held) {
    return absl::StrCat(out, "the newest checkpoint (", r.last_checkpoint_file,
                        " line ", r.last_checkpoint_line,
                        ") is the one the HSM holds",
                        a.final() ? " (written at clean shutdown)" : "");
  }
  if (r.last_checkpoint_prev && *r.last_checkpoint_prev == held) {
    return absl::StrCat(out, "the newest checkpoint (seq ", last.seq,
                        ") follows the one the HSM holds (seq ", held.seq,
                        "): its anchor write is pending or was interrupted");
  }
  // A daemon under load writes checkpoints faster than a slow HSM takes the
  // anchors: the one the HSM holds is then an older link of the same signed
  // chain, and the files only extend it.
  if (std::find(r.segment_checkpoints.begin(), r.segment_checkpoints.end(),
                held) != r.segment_checkpoints.end()) {
    return absl::StrCat(out, "the newest checkpoint (seq ", last.seq,
                        ") extends the chain through the one the HSM holds "
                        "(seq ", held.seq,
                        "): anchor writes are behind (a running daemon)");
  }
  *broken = true;
  if (last.seq < held.seq) {
    return absl::StrCat(out, "BROKEN: the HSM holds checkpoint seq ", held.seq,
                        " of log ", held.log_id,
                        "; the files' newest is seq ", last.seq,
                        ": truncated, or replaced by an older copy");
  }
  return absl::StrCat(out, "BROKEN: the files' newest checkpoint (seq ",
                      last.seq, ") is not the one the HSM holds (seq ",
                      held.seq, "): rewritten");
}

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
    std::string server_line;
    bool server_broken = false;
    bool server_absent = false;
    if (args.channel != nullptr) {
      tokensign::v1::GetAuditAnchorRequest req;
      req.set_instance(report->instance);
      req.set_log_id(report->log_id);
      tokensign::v1::GetAuditAnchorResponse resp;
      auto ctx = Context();
      grpc::Status st = tokensign::v1::AuditAdmin::NewStub(args.channel)
                            ->GetAuditAnchor(ctx.get(), req, &resp);
      if (!st.ok()) {
        std::cerr << "tokensignctl: --server " << args.server << ": "
                  << GrpcError(st) << "\n";
        exit_code = Worse(exit_code, kAuditCannotRead);
        continue;
      }
      if (!trust) {
        // The daemon's audit keys (as kept in its HSM) instead of the ones
        // the log carries.
        auto server_trust = CheckpointTrust::FromJwks(resp.jwks_json());
        if (!server_trust.ok()) {
          std::cerr << "tokensignctl: --server " << args.server
                    << ": audit keys: " << server_trust.status().message()
                    << "\n";
          exit_code = Worse(exit_code, kAuditCannotRead);
          continue;
        }
        report = audit::VerifyAuditChain(file, {.trust = &*server_trust});
        if (!report.ok()) {
          std::cerr << "tokensignctl: " << report.status().message() << "\n";
          exit_code = Worse(exit_code, kAuditCannotRead);
          continue;
        }
      }
      server_line =
          CompareWithAnchor(*report, resp, &server_broken, &server_absent);
    }
    if (args.files.size() > 1) std::cout << "== " << file << "\n";
    std::cout << audit::FormatVerifyReport(*report);
    if (!server_line.empty()) std::cout << server_line << "\n";
    std::cout << "\n";
    if (server_broken) exit_code = Worse(exit_code, kAuditBroken);
    if (server_absent) exit_code = Worse(exit_code, kAuditUnanchored);
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

int RunAuditKeys(const std::shared_ptr<grpc::Channel>& channel,
                 const std::string& instance) {
  v1::GetAuditAnchorRequest req;
  req.set_instance(instance);
  v1::GetAuditAnchorResponse resp;
  auto ctx = Context();
  grpc::Status st =
      v1::AuditAdmin::NewStub(channel)->GetAuditAnchor(ctx.get(), req, &resp);
  if (!st.ok()) {
    std::cerr << "tokensignctl: " << GrpcError(st) << "\n";
    return 1;
  }
  nlohmann::json jwks = nlohmann::json::parse(resp.jwks_json(), nullptr, false);
  std::cout << (jwks.is_discarded() ? resp.jwks_json() : jwks.dump(2)) << "\n";
  return 0;
}

int RunAuditAcknowledge(const std::shared_ptr<grpc::Channel>& channel,
                        const std::string& reason) {
  v1::AcknowledgeAuditLossRequest req;
  req.set_reason(reason);
  v1::AcknowledgeAuditLossResponse resp;
  auto ctx = Context();
  grpc::Status st = v1::AuditAdmin::NewStub(channel)->AcknowledgeAuditLoss(
      ctx.get(), req, &resp);
  if (!st.ok()) {
    std::cerr << "tokensignctl: " << GrpcError(st) << "\n";
    return 1;
  }
  std::cout << "acknowledged; new audit log segment " << resp.log_id() << "\n";
  return 0;
}

namespace {

int AnchorFail(const grpc::Status& st) {
  std::cerr << "tokensignctl: " << GrpcError(st) << "\n";
  return KeysExitCode(st.error_code());
}

std::string AnchorTime(const v1::AuditAnchorInfo& a) {
  if (!a.has_checkpoint_time()) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                          absl::FromUnixSeconds(a.checkpoint_time().seconds()),
                          absl::UTCTimeZone());
}

}  // namespace

int RunAuditAnchors(const std::shared_ptr<grpc::Channel>& channel,
                    const std::string& instance, bool json) {
  v1::ListAuditAnchorsRequest req;
  req.set_instance(instance);
  v1::ListAuditAnchorsResponse resp;
  auto ctx = Context();
  grpc::Status st =
      v1::AuditAdmin::NewStub(channel)->ListAuditAnchors(ctx.get(), req, &resp);
  if (!st.ok()) return AnchorFail(st);
  if (json) {
    google::protobuf::util::JsonPrintOptions o;
    o.add_whitespace = true;
    o.preserve_proto_field_names = true;
    o.always_print_primitive_fields = true;
    std::string out;
    (void)google::protobuf::util::MessageToJsonString(resp, &out, o);
    std::cout << out;
    if (out.empty() || out.back() != '\n') std::cout << "\n";
    return kKeysOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"LOG_ID", "STATE", "CHECKPOINT_SEQ", "COVERED_SEQ", "CHECKPOINT_TIME",
       "FINAL"}};
  for (const v1::AuditAnchorInfo& a : resp.anchors()) {
    rows.push_back({a.log_id(), a.live() ? "live" : "archived",
                    std::to_string(a.checkpoint_seq()),
                    std::to_string(a.covered_seq()), AnchorTime(a),
                    a.final() ? "yes" : "no"});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  std::cout << "instance \"" << resp.instance() << "\"\n";
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
  return kKeysOk;
}

int RunAuditRetireAnchor(const std::shared_ptr<grpc::Channel>& channel,
                         const std::string& instance,
                         const std::string& log_id, const std::string& reason) {
  v1::RetireAuditAnchorRequest req;
  req.set_instance(instance);
  req.set_log_id(log_id);
  req.set_reason(reason);
  v1::RetireAuditAnchorResponse resp;
  auto ctx = Context();
  grpc::Status st = v1::AuditAdmin::NewStub(channel)->RetireAuditAnchor(
      ctx.get(), req, &resp);
  if (!st.ok()) return AnchorFail(st);
  const v1::AuditAnchorInfo& r = resp.retired();
  std::cout << "retired the anchor of log " << r.log_id() << " of instance \""
            << r.instance() << "\" (checkpoint seq " << r.checkpoint_seq()
            << ", " << AnchorTime(r)
            << "); verify --server now reports shipped copies of it as "
               "ABSENT\n";
  return kKeysOk;
}

}  // namespace tokensign::ctl
