#include "signer/audit/audit_format.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "signer/audit/line_writer.h"
#include "signer/audit/ordered_json.h"
#include "signer/audit/unique_fd.h"

namespace tokensign::audit {
namespace {

absl::StatusOr<std::string> GetString(const nlohmann::json& j,
                                      const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": missing or not a string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> GetStrings(const nlohmann::json& j,
                                                    const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": missing or not an array"));
  }
  std::vector<std::string> out;
  for (const auto& e : *it) {
    if (!e.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": array element is not a string"));
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

// The optional checkpoint members of genesis, continuation and checkpoint
// lines (checkpoint.h); their contents are checked by the verifier.
absl::Status ParseCheckpointMembers(const nlohmann::json& j, ParsedLine* out) {
  for (auto [field, dest] : {std::pair{"log_id", &out->log_id},
                             std::pair{"instance", &out->instance},
                             std::pair{"checkpoint", &out->checkpoint}}) {
    auto it = j.find(field);
    if (it == j.end()) continue;
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": not a non-empty string"));
    }
    *dest = it->get<std::string>();
  }
  for (auto [field, dest] : {std::pair{"key", &out->key_jwk},
                             std::pair{"follows", &out->follows},
                             std::pair{"acknowledged", &out->acknowledged}}) {
    auto it = j.find(field);
    if (it == j.end()) continue;
    if (!it->is_object())
      return absl::InvalidArgumentError(absl::StrCat(field, ": not an object"));
    *dest = it->dump();
  }
  if (!out->checkpoint.empty() && out->key_jwk.empty())
    return absl::InvalidArgumentError("key: missing beside a checkpoint");
  return absl::OkStatus();
}

// The optional members of a decision record (absent in lines written before
// they existed): ttl, cnf, txn, req_wl, rctx/tctx_sha256, extra_claims(_sha256).
absl::Status ParseDecisionExtras(const nlohmann::json& j, AuditRecord* r) {
  if (auto ttl = j.find("ttl"); ttl != j.end()) {
    if (!ttl->is_number_integer())
      return absl::InvalidArgumentError("ttl: not an integer");
    r->ttl = ttl->get<int64_t>();
  }
  if (auto cnf = j.find("cnf"); cnf != j.end()) {
    if (!cnf->is_object())
      return absl::InvalidArgumentError("cnf: not an object");
    for (const auto& [name, out] :
         {std::pair<const char*, std::string*>{"jkt", &r->cnf_jkt},
          {"x5t#S256", &r->cnf_x5t_s256}}) {
      if (!cnf->contains(name)) continue;
      auto v = GetString(*cnf, name);
      if (!v.ok())
        return absl::InvalidArgumentError(
            absl::StrCat("cnf.", name, ": not a string"));
      *out = *std::move(v);
    }
  }
  for (const auto& [name, out] :
       {std::pair<const char*, std::string*>{"txn", &r->txn},
        {"req_wl", &r->req_wl},
        {"rctx_sha256", &r->rctx_sha256},
        {"tctx_sha256", &r->tctx_sha256},
        {"extra_claims_sha256", &r->extra_claims_sha256},
        {"status_uri", &r->status_uri},
        {"parent_token_sha256", &r->parent_token_sha256}}) {
    if (!j.contains(name)) continue;
    auto v = GetString(j, name);
    if (!v.ok()) return v.status();
    *out = *std::move(v);
  }
  for (const auto& [name, out] :
       {std::pair<const char*, int64_t*>{"status_idx", &r->status_idx},
        {"status_list_size", &r->status_list_size},
        {"status_list_set", &r->status_list_set}}) {
    auto it = j.find(name);
    if (it == j.end()) continue;
    if (!it->is_number_integer())
      return absl::InvalidArgumentError(absl::StrCat(name, ": not an integer"));
    *out = it->get<int64_t>();
  }
  if (auto cnf = j.find("parent_cnf"); cnf != j.end()) {
    if (!cnf->is_object())
      return absl::InvalidArgumentError("parent_cnf: not an object");
    for (const auto& [name, out] :
         {std::pair<const char*, std::string*>{"jkt", &r->parent_cnf_jkt},
          {"x5t#S256", &r->parent_cnf_x5t_s256}}) {
      if (!cnf->contains(name)) continue;
      auto v = GetString(*cnf, name);
      if (!v.ok())
        return absl::InvalidArgumentError(
            absl::StrCat("parent_cnf.", name, ": not a string"));
      *out = *std::move(v);
    }
  }
  if (j.contains("extra_claims")) {
    auto names = GetStrings(j, "extra_claims");
    if (!names.ok()) return names.status();
    r->extra_claims = *std::move(names);
  }
  return absl::OkStatus();
}

absl::Status ParseDecision(const nlohmann::json& j, AuditRecord* r) {
  auto time = GetString(j, "time");
  if (!time.ok()) return time.status();
  auto t = ParseAuditTime(*time);
  if (!t.ok()) return t.status();
  r->time = *t;
  struct Field {
    const char* name;
    std::string* out;
  };
  for (const Field& f :
       {Field{"caller", &r->caller}, Field{"issuer", &r->issuer},
        Field{"kind", &r->kind}, Field{"kid", &r->kid}, Field{"jti", &r->jti},
        Field{"sub", &r->sub}, Field{"client_id", &r->client_id},
        Field{"parent_jti", &r->parent_jti},
        Field{"token_sha256", &r->token_sha256}, Field{"outcome", &r->outcome},
        Field{"reason", &r->reason}}) {
    auto v = GetString(j, f.name);
    if (!v.ok()) return v.status();
    *f.out = *std::move(v);
  }
  auto act = j.find("act");
  if (act == j.end() || !act->is_array()) {
    return absl::InvalidArgumentError("act: missing or not an array");
  }
  for (const auto& a : *act) {
    if (!a.is_object())
      return absl::InvalidArgumentError("act: element is not an object");
    AuditActor actor;
    auto sub = GetString(a, "sub");
    if (!sub.ok())
      return absl::InvalidArgumentError("act[].sub: missing or not a string");
    actor.sub = *sub;
    if (a.contains("iss")) {
      auto iss = GetString(a, "iss");
      if (!iss.ok())
        return absl::InvalidArgumentError("act[].iss: not a string");
      actor.iss = *iss;
    }
    r->actor_chain.push_back(std::move(actor));
  }
  auto aud = GetStrings(j, "aud");
  if (!aud.ok()) return aud.status();
  r->aud = *std::move(aud);
  auto scope = GetStrings(j, "scope");
  if (!scope.ok()) return scope.status();
  r->scope = *std::move(scope);
  auto exp = j.find("exp");
  if (exp == j.end() || !exp->is_number_integer()) {
    return absl::InvalidArgumentError("exp: missing or not an integer");
  }
  r->exp = exp->get<int64_t>();
  return ParseDecisionExtras(j, r);
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  thread_local Sha256Hasher hasher;
  std::string hex(64, '\0');
  // Empty only on OpenSSL allocation failure; never matches a chain.
  if (!hasher.HexDigest(data, hex.data())) return std::string();
  return hex;
}

std::string FormatAuditTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParseAuditTime(std::string_view s) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(s), &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("time: not RFC 3339 (\"", std::string(s), "\"): ", err));
  }
  return t;
}

std::string FormatDecisionBody(const AuditRecord& r) {
  std::string out;
  out.reserve(512);
  AppendDecisionBody(r, r.time, &out);
  return out;
}

std::string FormatContinuationBody(std::string_view previous_file,
                                   absl::Time t) {
  OJson j;
  j["continues"] = std::string(previous_file);
  j["time"] = FormatAuditTime(t);
  return Members(j);
}

std::string FormatRepairBody(int64_t dropped_bytes,
                             std::string_view dropped_sha256, absl::Time t) {
  OJson j;
  j["repair"] = "torn_tail";
  j["dropped_bytes"] = dropped_bytes;
  j["dropped_sha256"] = std::string(dropped_sha256);
  j["time"] = FormatAuditTime(t);
  return Members(j);
}

std::string AssembleLine(int64_t seq, std::string_view body,
                         std::string_view prev) {
  std::string line =
      absl::StrCat("{\"v\":", kAuditFormatVersion, ",\"seq\":", seq, ",");
  line.append(body);
  line.append(",\"prev\":\"");
  line.append(prev);
  line.append("\"}");
  return line;
}

std::string FormatGenesisLine(std::string_view log_name, absl::Time created) {
  OJson j;
  j["v"] = kAuditFormatVersion;
  j["genesis"] = true;
  j["log"] = std::string(log_name);
  j["created"] = FormatAuditTime(created);
  j["prev"] = "";
  return Dump(j);
}

absl::StatusOr<ParsedLine> ParseAuditLine(std::string_view line) {
  nlohmann::json j =
      nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("line is not a JSON object");
  }
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer() ||
      v->get<int64_t>() != kAuditFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("v: missing or not format version ", kAuditFormatVersion));
  }
  ParsedLine out;
  auto prev = GetString(j, "prev");
  if (!prev.ok()) return prev.status();
  out.prev = *prev;
  if (absl::Status s = ParseCheckpointMembers(j, &out); !s.ok()) return s;
  if (j.contains("genesis")) {
    if (!j["genesis"].is_boolean() || !j["genesis"].get<bool>()) {
      return absl::InvalidArgumentError("genesis: must be true");
    }
    if (!out.prev.empty())
      return absl::InvalidArgumentError("prev: genesis prev must be \"\"");
    if (!GetString(j, "log").ok())
      return absl::InvalidArgumentError("log: missing");
    out.type = LineType::kGenesis;
    out.seq = 0;
    return out;
  }
  auto seq = j.find("seq");
  if (seq == j.end() || !seq->is_number_integer() || seq->get<int64_t>() < 1) {
    return absl::InvalidArgumentError("seq: missing or not a positive integer");
  }
  out.seq = seq->get<int64_t>();
  if (out.prev.size() != 64) {
    return absl::InvalidArgumentError(
        "prev: not a hex SHA-256 (64 characters)");
  }
  if (j.contains("continues")) {
    auto c = GetString(j, "continues");
    if (!c.ok()) return c.status();
    out.type = LineType::kContinuation;
    out.continues = *c;
    return out;
  }
  if (j.contains("repair")) {
    out.type = LineType::kRepair;
    return out;
  }
  if (!out.checkpoint.empty()) {
    out.type = LineType::kCheckpoint;
    return out;
  }
  out.type = LineType::kDecision;
  absl::Status s = ParseDecision(j, &out.record);
  if (!s.ok()) return s;
  return out;
}

std::vector<std::string> AuditChainFiles(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::string prefix = p.filename().string() + ".";
  std::vector<std::pair<int64_t, std::string>> rotated;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() ||
        name.compare(0, prefix.size(), prefix) != 0) {
      continue;
    }
    std::string_view suffix = std::string_view(name).substr(prefix.size());
    int64_t n = 0;
    if (!std::all_of(suffix.begin(), suffix.end(),
                     [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(absl::string_view(suffix.data(), suffix.size()),
                          &n) ||
        n < 1) {
      continue;
    }
    rotated.emplace_back(n, absl::StrCat(path, ".", n));
  }
  std::sort(rotated.begin(), rotated.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> files;
  for (auto& [n, f] : rotated) files.push_back(std::move(f));
  if (fs::exists(p, ec)) files.push_back(path);
  return files;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    int e = errno;
    std::string msg = absl::StrCat("open ", path, ": ", std::strerror(e));
    return e == ENOENT ? absl::NotFoundError(msg) : absl::InternalError(msg);
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(
          absl::StrCat("read ", path, ": ", std::strerror(errno)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace tokensign::audit
