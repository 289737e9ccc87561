// tokensignctl: command-line client for tokensignd and the audit log.
//   tokensignctl [conn] sign --issuer dev --sub alice --client-id app --aud A
//   --scope read
//                            --actor agent-7 --actor planner [--ttl 600]
//                            [--kind access|transaction] [--parent-jti J]
//                            [--decode]
//                            [--req-wl W] [--status-uri U --status-idx N]
//                            [--may-act SUB]
//   tokensignctl [conn] exchange --issuer I --subject-token-file F [...]
//   tokensignctl [conn] status-list sign --issuer I --uri U [--set IDX]...
//                       (tools/tokensignctl/exchange_commands.h)
//   tokensignctl [conn] jwks --issuer dev
//   tokensignctl [conn] keys list|create|rotate|activate|retire|destroy|
//                       schedule|inspect --issuer I [...] [--json]
//                       (tools/tokensignctl/key_commands.h: output, exit codes)
//   tokensignctl [conn] audit verify FILE... [--keys JWKS | --pin THUMBPRINT]
//                       [--server HOST:PORT]
//   tokensignctl audit lineage FILE [--] JTI   (local files, no server;
//                       `--` when the jti begins with '-')
//   tokensignctl audit tail FILE [--follow]   (local file, no server)
//   tokensignctl [conn] audit keys [--instance NAME]
//   tokensignctl [conn] audit acknowledge --reason TEXT
//   tokensignctl [conn] audit anchors [--instance NAME] [--json]
//   tokensignctl [conn] audit retire-anchor --instance NAME --log-id ID --reason TEXT
// conn: --server HOST:PORT (default 127.0.0.1:50051) and --cacert/--cert/--key
// for mTLS, or --insecure (plaintext, for dev mode on loopback); accepted
// before or after the command. Usage errors exit 1.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "signer/audit/audit_verify.h"
#include "signer/audit/lineage.h"
#include "signer/token/jws.h"
#include "tokensign/v1/tokensign.grpc.pb.h"
#include "tools/tokensignctl/audit_commands.h"
#include "tools/tokensignctl/exchange_commands.h"
#include "tools/tokensignctl/audit_tail.h"
#include "tools/tokensignctl/key_commands.h"

namespace {

namespace v1 = tokensign::v1;

struct Conn {
  std::string server = "127.0.0.1:50051";
  std::string cacert, cert, key;
  bool insecure = false;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw CLI::ValidationError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<grpc::Channel> Channel(const Conn& c) {
  if (c.insecure)
    return grpc::CreateChannel(c.server, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions ssl;
  if (!c.cacert.empty()) ssl.pem_root_certs = ReadFile(c.cacert);
  if (!c.cert.empty()) ssl.pem_cert_chain = ReadFile(c.cert);
  if (!c.key.empty()) ssl.pem_private_key = ReadFile(c.key);
  return grpc::CreateChannel(c.server, grpc::SslCredentials(ssl));
}

int Fail(const grpc::Status& st) {
  // gRPC and absl share the canonical code numbering.
  std::cerr << "tokensignctl: "
            << absl::StatusCodeToString(
                   static_cast<absl::StatusCode>(st.error_code()))
            << ": " << st.error_message() << "\n";
  return 1;
}

// One JWS segment decoded as JSON ("(not base64url JSON)" if it is not).
nlohmann::json DecodeSegment(const std::string& segment) {
  auto bytes = tokensign::token::Base64UrlDecode(segment, "token segment");
  if (!bytes.ok())
    return "(not base64url: " + std::string(bytes.status().message()) + ")";
  return nlohmann::json::parse(*bytes, nullptr, false);
}

void PrintDecoded(const std::string& token) {
  size_t a = token.find('.'), b = token.find('.', a + 1);
  nlohmann::json header = DecodeSegment(token.substr(0, a));
  nlohmann::json claims = DecodeSegment(token.substr(a + 1, b - a - 1));
  std::cout << "header: " << header.dump(2) << "\nclaims: " << claims.dump(2)
            << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tokensignctl: sign tokens, read JWKS, manage keys, check the audit log"};
  app.require_subcommand(1);
  // Connection flags also after the command (`keys list --insecure`):
  // subcommands (all made below, they inherit this) pass what they do not
  // know up to here.
  app.fallthrough();
  Conn conn;
  app.add_option("--server", conn.server, "tokensignd gRPC address")
      ->capture_default_str();
  app.add_option("--cacert", conn.cacert,
                 "CA bundle (PEM) that signed the server certificate");
  app.add_option("--cert", conn.cert, "client certificate (PEM) for mTLS");
  app.add_option("--key", conn.key, "client private key (PEM) for mTLS");
  app.add_flag("--insecure", conn.insecure,
               "plaintext (dev mode on loopback only)");

  // sign
  auto* sign =
      app.add_subcommand("sign", "sign one delegated token and print it");
  std::string issuer, sub, client_id, kind = "access", parent_jti, txn;
  std::vector<std::string> aud, scope, actors;
  int64_t ttl = 0;
  bool decode = false;
  sign->add_option("--issuer", issuer, "issuer name in the daemon config")
      ->required();
  sign->add_option("--sub", sub, "subject (the delegating user)")->required();
  sign->add_option("--client-id", client_id, "client_id")->required();
  sign->add_option("--aud", aud, "audience (repeatable)")->required();
  sign->add_option("--scope", scope, "scope (repeatable)");
  sign->add_option("--actor", actors,
                   "actor, current first, then prior actors (repeatable)");
  sign->add_option("--ttl", ttl, "lifetime in seconds (0 = issuer default)");
  sign->add_option("--kind", kind, "access|transaction")
      ->check(CLI::IsMember({"access", "transaction"}));
  sign->add_option("--parent-jti", parent_jti,
                   "jti of the token this one is exchanged from");
  sign->add_option("--txn", txn,
                   "transaction id (transaction tokens; default: generated)");
  std::string req_wl, status_uri, may_act;
  int64_t status_idx = -1;
  sign->add_option("--req-wl", req_wl,
                   "requesting workload (required for transaction tokens)");
  sign->add_option("--status-uri", status_uri,
                   "status list URI (with --status-idx): revocation entry");
  sign->add_option("--status-idx", status_idx, "index in that status list");
  sign->add_option("--may-act", may_act,
                   "may_act.sub: the one party that may act next");
  sign->add_flag("--decode", decode, "also print the header and claims");

  // jwks
  auto* jwks = app.add_subcommand("jwks", "print an issuer's JWKS");
  std::string jwks_issuer;
  jwks->add_option("--issuer", jwks_issuer, "issuer name")->required();

  // keys (custodian role; list, schedule, inspect also auditor)
  tokensign::ctl::KeyCommands key_commands(&app);

  // exchange, status-list sign (signer / status-publisher)
  tokensign::ctl::ExchangeCommands exchange_commands(&app);

  // audit (local files; no server)
  auto* audit = app.add_subcommand(
      "audit", "check audit log files; the daemon's audit keys and anchors");
  audit->require_subcommand(1);
  std::string audit_file, lineage_jti;
  tokensign::ctl::AuditVerifyArgs verify_args;
  auto* averify = audit->add_subcommand(
      "verify",
      "check the hash chain and every checkpoint signature; exit 0 intact, "
      "2 intact but lines after the last checkpoint (not yet anchored) or, "
      "with --server, no anchor in the HSM for the log (retired), "
      "3 broken, 1 cannot read");
  averify->add_option("file", verify_args.files,
                      "audit log path(s); rotated files PATH.N are included")
      ->required();
  auto* keys_opt = averify->add_option(
      "--keys", verify_args.keys_file,
      "JWKS of the audit keys (tokensignctl audit keys, /audit/jwks.json)");
  averify
      ->add_option("--pin", verify_args.pins,
                   "trusted audit key thumbprint (RFC 7638; repeatable)")
      ->excludes(keys_opt);
  averify->add_option(
      "--server", verify_args.server,
      "also ask this daemon (role auditor; TLS options as for other commands) "
      "whether each log's newest checkpoint is the one its HSM holds; its "
      "audit keys are trusted unless --keys or --pin is given");
  std::string audit_instance, ack_reason;
  auto* akeys = audit->add_subcommand(
      "keys",
      "print the daemon's audit keys (JWKS for --keys; each kid is a "
      "thumbprint for --pin)");
  akeys->add_option("--instance", audit_instance,
                    "instance name (default: the daemon's own)");
  auto* aack = audit->add_subcommand(
      "acknowledge",
      "custodian: acknowledge that the daemon's refused audit log was lost or "
      "tampered with; a new log segment records who and why");
  aack->add_option("--reason", ack_reason, "why (recorded)")->required();
  std::string anchors_instance, retire_log_id, retire_reason;
  bool anchors_json = false;
  auto* aanchors = audit->add_subcommand(
      "anchors",
      "list the anchors the HSM holds for an instance: its live log's and the "
      "archived ones of old logs (auditor or custodian)");
  aanchors->add_option("--instance", anchors_instance,
                       "instance name (default: the daemon's own)");
  aanchors->add_flag("--json", anchors_json,
                     "print the answer as JSON (proto field names)");
  auto* aretire = audit->add_subcommand(
      "retire-anchor",
      "custodian: remove an old log's archived anchor from the HSM (audited; "
      "never the live log's). Exit 0 done, 2 refused, 4 unknown or not "
      "allowed, 1 connection");
  aretire->add_option("--instance", anchors_instance, "instance name")
      ->required();
  aretire->add_option("--log-id", retire_log_id, "the old log's id")
      ->required();
  aretire->add_option("--reason", retire_reason, "why (recorded)")->required();
  auto* alineage =
      audit->add_subcommand("lineage", "print the delegation path of a jti");
  alineage->add_option("file", audit_file, "audit log path")->required();
  alineage->add_option("jti", lineage_jti, "jti")->required();
  bool tail_follow = false;
  auto* atail = audit->add_subcommand(
      "tail",
      "print an audit log's records decoded, one line each (does not verify: "
      "see audit verify)");
  atail->add_option("file", audit_file, "audit log path")->required();
  atail->add_flag("--follow,-f", tail_follow,
                  "keep printing records as they are appended (follows "
                  "rotation), until interrupted");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;  // --help: 0; usage errors: 1
  }

  if (key_commands.parsed())
    return key_commands.Run([&] { return Channel(conn); });
  if (atail->parsed())
    return tokensign::ctl::RunAuditTail(audit_file, tail_follow);

  if (averify->parsed()) {
    if (!verify_args.server.empty()) {
      Conn verify_conn = conn;
      verify_conn.server = verify_args.server;
      verify_args.channel = Channel(verify_conn);
    }
    return tokensign::ctl::RunAuditVerify(verify_args);
  }
  if (akeys->parsed())
    return tokensign::ctl::RunAuditKeys(Channel(conn), audit_instance);
  if (aack->parsed())
    return tokensign::ctl::RunAuditAcknowledge(Channel(conn), ack_reason);
  if (aanchors->parsed())
    return tokensign::ctl::RunAuditAnchors(Channel(conn), anchors_instance,
                                           anchors_json);
  if (aretire->parsed())
    return tokensign::ctl::RunAuditRetireAnchor(
        Channel(conn), anchors_instance, retire_log_id, retire_reason);
  if (exchange_commands.parsed())
    return exchange_commands.Run([&] { return Channel(conn); });
  if (alineage->parsed()) {
    auto hops = tokensign::audit::Lineage(audit_file, lineage_jti);
    if (!hops.ok()) {
      std::cerr << "tokensignctl: " << hops.status().message() << "\n";
      return 1;
    }
    std::cout << tokensign::audit::FormatLineage(*hops);
    return 0;
  }

  auto channel = Channel(conn);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (sign->parsed()) {
    v1::SignTokenRequest req;
    req.set_issuer(issuer);
    req.set_kind(kind == "transaction" ? v1::TRANSACTION_TOKEN
                                       : v1::ACCESS_TOKEN);
    req.set_subject(sub);
    req.set_client_id(client_id);
    for (const auto& a : aud) req.add_audience(a);
    for (const auto& s : scope) req.add_scope(s);
    for (const auto& a : actors) req.add_actor_chain()->set_sub(a);
    req.set_ttl_seconds(ttl);
    req.set_parent_jti(parent_jti);
    req.set_txn(txn);
    req.set_req_wl(req_wl);
    if (!status_uri.empty() || status_idx >= 0) {
      req.mutable_status()->set_uri(status_uri);
      req.mutable_status()->set_idx(status_idx);
    }
    if (!may_act.empty()) req.mutable_may_act()->set_sub(may_act);
    v1::SignTokenResponse resp;
    grpc::Status st =
        v1::TokenSigner::NewStub(channel)->SignToken(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    std::cout << resp.token() << "\n";
    if (decode) {
      std::cout << "kid: " << resp.kid() << "\njti: " << resp.jti()
                << "\nexpires_at: " << resp.expires_at().seconds() << "\n";
      if (!resp.txn().empty()) std::cout << "txn: " << resp.txn() << "\n";
      PrintDecoded(resp.token());
    }
    return 0;
  }
  if (jwks->parsed()) {
    v1::GetJwksRequest req;
    req.set_issuer(jwks_issuer);
    v1::GetJwksResponse resp;
    grpc::Status st =
        v1::TokenSigner::NewStub(channel)->GetJwks(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    const nlohmann::json parsed =
        nlohmann::json::parse(resp.jwks_json(), nullptr, false);
    if (parsed.is_discarded()) {  // a server's answer is checked, not trusted
      std::cerr << "tokensignctl: jwks: the server's jwks_json is not JSON\n";
      return 1;
    }
    std::cout << parsed.dump(2) << "\n";
    return 0;
  }
  return 0;
}
