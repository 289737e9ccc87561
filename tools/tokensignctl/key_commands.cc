#include "tools/tokensignctl/key_commands.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::ctl {
namespace {

namespace v1 = tokensign::v1;
using google::protobuf::Timestamp;

// Columns padded to their widest cell, two spaces apart; the last column is
// not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) {
    rows_.push_back(std::move(header));
  }
  void Row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void Print(std::ostream& out) const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      if (width.size() < row.size()) width.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i)
        width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      out << line << "\n";
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// RFC 3339 UTC, or "-" when unset.
std::string When(bool has, const Timestamp& t) {
  if (!has) return "-";
  const std::time_t secs = static_cast<std::time_t>(t.seconds());
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string State(const v1::KeyInfo& k) { return v1::KeyState_Name(k.state()); }

// KID ALG STATE CREATED ACTIVATED RETIRED: ACTIVATED shows a planned
// activation as "planned <time>"; RETIRED shows when a withdrawn key was
// withdrawn.
Table KeyTable() {
  return Table({"KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED"});
}
void AddKeyRow(Table& t, const v1::KeyInfo& k) {
  std::string activated = When(k.has_activated_at(), k.activated_at());
  if (!k.has_activated_at() && k.has_activate_at())
    activated = "planned " + When(true, k.activate_at());
  std::string retired = k.has_retired_at()
                            ? When(true, k.retired_at())
                            : When(k.has_withdrawn_at(), k.withdrawn_at());
  t.Row({k.kid(), k.alg(), State(k), When(k.has_created_at(), k.created_at()),
         activated, retired});
}

void PrintJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  std::cout << out;
  if (out.empty() || out.back() != '\n') std::cout << "\n";
}

int Fail(const grpc::Status& st) {
  std::cerr << "tokensignctl: "
            << absl::StatusCodeToString(
                   static_cast<absl::StatusCode>(st.error_code()))
            << ": " << st.error_message() << "\n";
  return KeysExitCode(st.error_code());
}

void PrintKeys(const std::vector<const v1::KeyInfo*>& keys) {
  Table t = KeyTable();
  for (const v1::KeyInfo* k : keys) AddKeyRow(t, *k);
  t.Print(std::cout);
}

void PrintSchedule(const v1::ListKeysResponse& resp) {
  Table t({"KID", "STATE", "CREATED", "PUBLISHED", "ACTIVATE_AT", "ACTIVATED",
           "RETIRED", "EXPIRES_FROM_JWKS", "WITHDRAWN"});
  for (const v1::KeyInfo& k : resp.keys()) {
    t.Row({k.kid(), State(k), When(k.has_created_at(), k.created_at()),
           When(k.has_published_at(), k.published_at()),
           When(k.has_activate_at(), k.activate_at()),
           When(k.has_activated_at(), k.activated_at()),
           When(k.has_retired_at(), k.retired_at()),
           When(k.has_expires_from_jwks_at(), k.expires_from_jwks_at()),
           When(k.has_withdrawn_at(), k.withdrawn_at())});
  }
  t.Print(std::cout);
  std::cout << "next scheduled rotation: "
            << (resp.has_next_rotation_at()
                    ? When(true, resp.next_rotation_at())
                    : std::string("none (no rotation_period, or not set yet)"))
            << "\n";
}

std::string Flag(const v1::HsmKeyObject& o, const std::string& name) {
  for (const v1::HsmAttribute& a : o.attributes())
    if (a.name() == name) return a.value() ? "yes" : "no";
  return "?";
}

void PrintInspection(const v1::InspectKeysResponse& resp) {
  Table t({"KID", "STATE", "TYPE", "BITS", "SENSITIVE", "ALWAYS_SENSITIVE",
           "NEVER_EXTRACTABLE", "LOCAL", "PKCS11_URI", "VERDICT"});
  for (const v1::InspectedKey& k : resp.keys()) {
    const v1::KeyInfo& key = k.key();
    const std::string uri = key.pkcs11_uri().empty() ? "-" : key.pkcs11_uri();
    if (k.objects().empty()) {
      t.Row({key.kid(), State(key), "-", "-", "-", "-", "-", "-", uri,
             "no HSM object: " + k.hsm_error()});
      continue;
    }
    for (const v1::HsmKeyObject& o : k.objects()) {
      t.Row({key.kid(), State(key), o.key_type(), std::to_string(o.bits()),
             Flag(o, "CKA_SENSITIVE"), Flag(o, "CKA_ALWAYS_SENSITIVE"),
             Flag(o, "CKA_NEVER_EXTRACTABLE"), Flag(o, "CKA_LOCAL"), uri,
             o.refused().empty() ? "ok" : "refused: " + o.refused()});
    }
  }
  t.Print(std::cout);
}

// What a rotation did, in words, after the keys' table.
void ExplainRotation(const v1::RotateKeyResponse& r, bool emergency) {
  const v1::KeyInfo& fresh = r.active();
  const std::string prev = r.has_retired() ? r.retired().kid() : "";
  if (fresh.state() == v1::PENDING) {
    std::cout << "new key " << fresh.kid()
              << " is pending (published in the JWKS now); it becomes active "
                 "at "
              << When(fresh.has_activate_at(), fresh.activate_at())
              << " (after the publish lead)";
    if (!prev.empty()) std::cout << ", and " << prev << " then retires";
    std::cout << "\n";
    return;
  }
  std::cout << "new key " << fresh.kid() << " is active now";
  if (emergency && !prev.empty()) {
    std::cout << "; " << prev
              << " is withdrawn: out of the JWKS now, tokens it signed no "
                 "longer verify against a fresh JWKS (other replicas stop "
                 "signing with it within keyset_refresh_seconds)";
  } else if (!prev.empty()) {
    std::cout << " (no publish lead); " << prev << " is retired";
    if (r.retired().has_expires_from_jwks_at()) {
      std::cout << " and stays in the JWKS until "
                << When(true, r.retired().expires_from_jwks_at());
    }
  }
  std::cout << "\n";
}

}  // namespace

int KeysExitCode(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kKeysOk;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kKeysRefused;
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return kKeysRetry;
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return kKeysNotAllowed;
    default:
      return kKeysUsageOrConnection;
  }
}

KeyCommands::KeyCommands(CLI::App* app) {
  keys_ = app->add_subcommand(
      "keys",
      "manage issuer keys (custodian role; list, schedule and inspect also "
      "auditor). Exit codes: 0 done, 1 usage or connection, 2 refused by the "
      "lifecycle rules, 3 retry (another replica changed the keyset, or "
      "busy), 4 unknown issuer/kid or not allowed");
  keys_->require_subcommand(1);
  auto common = [&](CLI::App* c) {
    c->add_option("--issuer", args_.issuer, "issuer name")->required();
    c->add_flag("--json", args_.json,
                "print the KeyAdmin answer as JSON (proto field names)");
  };
  auto kid = [&](CLI::App* c) {
    c->add_option("--kid", args_.kid, "the key's kid")->required();
  };
  list_ = keys_->add_subcommand("list", "list the issuer's keys and states");
  common(list_);
  create_ = keys_->add_subcommand(
      "create",
      "create a pending key: published in the JWKS, not signing; `keys "
      "activate` accepts it once it has been published for the publish lead");
  common(create_);
  create_->add_option("--alg", args_.alg,
                      "ES256|ES384|EdDSA|PS256|RS256 (default: issuer's)");
  rotate_ = keys_->add_subcommand(
      "rotate",
      "planned rotation: a new pending key now that becomes active by itself "
      "after the publish lead (verifiers with a cached JWKS keep working); "
      "with --now an emergency rotation: the new key signs now and the "
      "active key is withdrawn from the JWKS now (for a compromised key)");
  common(rotate_);
  rotate_->add_option("--alg", args_.alg, "algorithm of the new key");
  auto* reason_opt = rotate_->add_option(
      "--reason", args_.reason, "why (required with --now; audited)");
  rotate_->add_flag("--now", args_.now, "emergency rotation (needs --reason)")
      ->needs(reason_opt);
  activate_ = keys_->add_subcommand(
      "activate",
      "activate a pending key; the active key retires. Refused before the "
      "key has been published for the publish lead, unless --force");
  common(activate_);
  kid(activate_);
  reason_opt = activate_->add_option("--reason", args_.reason,
                                     "why (required with --force; audited)");
  activate_
      ->add_flag("--force", args_.force,
                 "activate before the publish lead has passed (verifiers with "
                 "a cached JWKS reject the new tokens until it expires)")
      ->needs(reason_opt);
  retire_ = keys_->add_subcommand(
      "retire", "stop signing with a key; it stays published in the JWKS");
  common(retire_);
  kid(retire_);
  destroy_ = keys_->add_subcommand(
      "destroy",
      "destroy a key's HSM objects (the record keeps it as DESTROYED); "
      "refused for the active key, and for a retired key still in the JWKS "
      "unless --force");
  common(destroy_);
  kid(destroy_);
  reason_opt = destroy_->add_option("--reason", args_.reason,
                                    "why (required with --force; audited)");
  destroy_
      ->add_flag("--force", args_.force,
                 "destroy a retired key whose tokens may still be live (they "
                 "stop verifying)")
      ->needs(reason_opt);
  schedule_ = keys_->add_subcommand(
      "schedule",
      "each key's timeline (created, published, activate at, activated, "
      "retired, expires from the JWKS, withdrawn) and the next scheduled "
      "rotation");
  common(schedule_);
  inspect_ = keys_->add_subcommand(
      "inspect",
      "each key's HSM objects and their PKCS#11 attributes as the daemon "
      "reads them (sensitive, always-sensitive, never-extractable, local, "
      "type and size) and whether tokensign would use them");
  common(inspect_);
  inspect_->add_option("--kid", args_.kid, "only this key");
}

bool KeyCommands::parsed() const { return keys_->parsed(); }

int KeyCommands::Run(
    const std::function<std::shared_ptr<grpc::Channel>()>& channel) const {
  std::shared_ptr<grpc::Channel> ch;
  try {
    ch = channel();
  } catch (const std::exception& e) {
    std::cerr << "tokensignctl: " << e.what() << "\n";
    return kKeysUsageOrConnection;
  }
  return Dispatch(ch);
}

int KeyCommands::Dispatch(
    const std::shared_ptr<grpc::Channel>& channel) const {
  auto admin = v1::KeyAdmin::NewStub(channel);
  grpc::ClientContext ctx;
  // Key generation (RSA 4096 on a slow HSM) may take a while.
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  const Args& a = args_;
  grpc::Status st;
  if (list_->parsed() || schedule_->parsed()) {
    v1::ListKeysRequest req;
    req.set_issuer(a.issuer);
    v1::ListKeysResponse resp;
    st = admin->ListKeys(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    if (a.json) {
      PrintJson(resp);
    } else if (schedule_->parsed()) {
      PrintSchedule(resp);
    } else {
      std::vector<const v1::KeyInfo*> keys;
      for (const v1::KeyInfo& k : resp.keys()) keys.push_back(&k);
      PrintKeys(keys);
    }
  } else if (create_->parsed()) {
    v1::CreateKeyRequest req;
    req.set_issuer(a.issuer);
    req.set_alg(a.alg);
    v1::CreateKeyResponse resp;
    st = admin->CreateKey(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    a.json ? PrintJson(resp) : PrintKeys({&resp.key()});
  } else if (rotate_->parsed()) {
    v1::RotateKeyRequest req;
    req.set_issuer(a.issuer);
    req.set_alg(a.alg);
    req.set_mode(a.now ? v1::EMERGENCY : v1::PLANNED);
    req.set_reason(a.reason);
    v1::RotateKeyResponse resp;
    st = admin->RotateKey(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    if (a.json) {
      PrintJson(resp);
    } else {
      std::vector<const v1::KeyInfo*> keys = {&resp.active()};
      if (resp.has_retired()) keys.insert(keys.begin(), &resp.retired());
      PrintKeys(keys);
      ExplainRotation(resp, a.now);
    }
  } else if (activate_->parsed()) {
    v1::ActivateKeyRequest req;
    req.set_issuer(a.issuer);
    req.set_kid(a.kid);
    req.set_force(a.force);
    req.set_reason(a.reason);
    v1::ActivateKeyResponse resp;
    st = admin->ActivateKey(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    a.json ? PrintJson(resp) : PrintKeys({&resp.key()});
  } else if (retire_->parsed()) {
    v1::RetireKeyRequest req;
    req.set_issuer(a.issuer);
    req.set_kid(a.kid);
    v1::RetireKeyResponse resp;
    st = admin->RetireKey(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    a.json ? PrintJson(resp) : PrintKeys({&resp.key()});
  } else if (destroy_->parsed()) {
    v1::DestroyKeyRequest req;
    req.set_issuer(a.issuer);
    req.set_kid(a.kid);
    req.set_force(a.force);
    req.set_reason(a.reason);
    v1::DestroyKeyResponse resp;
    st = admin->DestroyKey(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    a.json ? PrintJson(resp) : PrintKeys({&resp.key()});
  } else if (inspect_->parsed()) {
    v1::InspectKeysRequest req;
    req.set_issuer(a.issuer);
    req.set_kid(a.kid);
    v1::InspectKeysResponse resp;
    st = admin->InspectKeys(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    a.json ? PrintJson(resp) : PrintInspection(resp);
  }
  return kKeysOk;
}

}  // namespace tokensign::ctl
