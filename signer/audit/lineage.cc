#include "signer/audit/lineage.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "signer/audit/audit_format.h"

namespace tokensign::audit {
namespace {

LineageHop HopFrom(const AuditRecord& r, const std::string& file,
                   int64_t line) {
  LineageHop h;
  h.jti = r.jti;
  h.sub = r.sub;
  h.client_id = r.client_id;
  h.actors = r.actor_chain;
  h.aud = r.aud;
  h.scope = r.scope;
  h.time = r.time;
  h.issuer = r.issuer;
  h.kind = r.kind;
  h.kid = r.kid;
  h.outcome = r.outcome;
  h.parent_jti = r.parent_jti;
  h.file = file;
  h.line = line;
  return h;
}

// The exact bytes a record with this jti contains ("jti":"<escaped>").
std::string JtiNeedle(std::string_view jti) {
  return absl::StrCat(
      "\"jti\":",
      nlohmann::json(std::string(jti))
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// Characters a printed value may show bare. Everything else (spaces, the
// separators "<-", "@", ",", "[", "]", "=", quotes, control and non-ASCII
// characters such as a no-break space or a bidi override) makes the value
// print as a JSON string with non-ASCII escaped, so no name can fake a hop, an
// issuer or another field.
bool IsBareChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
         c == ':' || c == '/' || c == '~' || c == '+' || c == '#' || c == '%';
}

std::string Quoted(const std::string& v) {
  if (!v.empty() && std::all_of(v.begin(), v.end(), IsBareChar)) return v;
  return nlohmann::json(v).dump(-1, ' ', /*ensure_ascii=*/true,
                                nlohmann::json::error_handler_t::replace);
}

std::string QuotedList(const std::vector<std::string>& values,
                       absl::string_view sep) {
  std::vector<std::string> out;
  out.reserve(values.size());
  for (const std::string& v : values) out.push_back(Quoted(v));
  return absl::StrJoin(out, sep);
}

}  // namespace

absl::StatusOr<std::vector<LineageHop>> Lineage(const std::string& path,
                                                std::string_view jti) {
  if (jti.empty())
    return absl::InvalidArgumentError("lineage: jti must not be empty");
  std::vector<std::string> files = AuditChainFiles(path);
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "lineage: ", path, " does not exist (nor any ", path, ".N)"));
  }
  std::vector<LineageHop> hops;  // newest first while walking
  std::string wanted(jti);
  std::string needle = JtiNeedle(wanted);
  // Walk newest -> oldest, each file from its last line up: parents come
  // earlier.
  for (auto f = files.rbegin(); f != files.rend() && !wanted.empty(); ++f) {
    auto content = ReadWholeFile(*f);
    if (!content.ok()) return content.status();
    std::string_view all(*content);
    std::vector<std::string_view> lines;
    for (size_t pos = 0; pos < all.size();) {
      size_t nl = all.find('\n', pos);
      if (nl == std::string_view::npos) break;  // torn tail: skipped
      lines.push_back(all.substr(pos, nl - pos));
      pos = nl + 1;
    }
    for (size_t i = lines.size(); i-- > 0 && !wanted.empty();) {
      if (lines[i].find(needle) == std::string_view::npos) continue;
      auto p = ParseAuditLine(lines[i]);
      if (!p.ok() || p->type != LineType::kDecision || p->record.jti != wanted)
        continue;
      if (!hops.empty() && p->record.outcome != "signed") continue;
      hops.push_back(HopFrom(p->record, *f, static_cast<int64_t>(i) + 1));
      wanted = p->record.parent_jti;
      if (std::any_of(hops.begin(), hops.end(),
                      [&](const LineageHop& h) { return h.jti == wanted; })) {
        wanted.clear();  // a cycle cannot come from real tokens; stop rather
                         // than loop
      }
      needle = JtiNeedle(wanted);
    }
  }
  if (hops.empty()) {
    return absl::NotFoundError(absl::StrCat("lineage: no record with jti ",
                                            std::string(jti), " in ", path));
  }
  if (!wanted.empty()) {
    LineageHop missing;
    missing.jti = wanted;
    missing.in_log = false;
    hops.push_back(std::move(missing));
  }
  std::reverse(hops.begin(), hops.end());
  return hops;
}

std::string FormatLineage(const std::vector<LineageHop>& hops) {
  std::string out;
  int n = 0;
  for (const LineageHop& h : hops) {
    absl::StrAppend(&out, ++n, ". jti=", Quoted(h.jti));
    if (!h.in_log) {
      absl::StrAppend(
          &out,
          " (not in this log: the delegation chain continues outside it)\n");
      continue;
    }
    std::vector<std::string> actors;
    for (const AuditActor& a : h.actors) {
      actors.push_back(a.iss.empty()
                           ? Quoted(a.sub)
                           : absl::StrCat(Quoted(a.sub), "@", Quoted(a.iss)));
    }
    absl::StrAppend(
        &out, " sub=", Quoted(h.sub), " client=", Quoted(h.client_id),
        " actors=[", absl::StrJoin(actors, " <- "), "]",
        " aud=", QuotedList(h.aud, ","), " scope=", QuotedList(h.scope, ","),
        " issuer=", Quoted(h.issuer), " time=", FormatAuditTime(h.time));
    if (h.outcome != "signed")
      absl::StrAppend(&out, " outcome=", Quoted(h.outcome));
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace tokensign::audit
