#include "signer/audit/line_writer.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "signer/audit/audit_format.h"
#include "signer/text/json_string.h"

namespace tokensign::audit {
namespace {

void AppendDigits(int64_t v, int width, std::string* out) {
  char buf[20];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out->append(buf, static_cast<size_t>(width));
}

// "name": with the name a plain literal.
void Key(const char* name, std::string* out) {
  out->push_back('"');
  out->append(name);
  out->append("\":");
}

void StringMember(const char* name, std::string_view value, std::string* out) {
  out->push_back(',');
  Key(name, out);
  text::AppendLogSafeJsonString(value, out);
}

void StringArray(const std::vector<std::string>& values, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out->push_back(',');
    text::AppendLogSafeJsonString(values[i], out);
  }
  out->push_back(']');
}

}  // namespace

void AppendAuditTime(absl::Time t, std::string* out) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilSecond cs = absl::ToCivilSecond(t, utc);
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture() ||
      cs.year() < 0 || cs.year() > 9999) {
    out->append(FormatAuditTime(t));  // rare: let absl decide the spelling
    return;
  }
  const int64_t ms =
      absl::ToInt64Milliseconds(t - absl::FromCivil(cs, utc));  // [0, 999]
  AppendDigits(cs.year(), 4, out);
  out->push_back('-');
  AppendDigits(cs.month(), 2, out);
  out->push_back('-');
  AppendDigits(cs.day(), 2, out);
  out->push_back('T');
  AppendDigits(cs.hour(), 2, out);
  out->push_back(':');
  AppendDigits(cs.minute(), 2, out);
  out->push_back(':');
  AppendDigits(cs.second(), 2, out);
  out->push_back('.');
  AppendDigits(ms, 3, out);
  out->push_back('Z');
}

void AppendDecisionBody(const AuditRecord& r, absl::Time time,
                        std::string* out) {
  Key("time", out);
  out->push_back('"');
  AppendAuditTime(time, out);
  out->push_back('"');
  StringMember("caller", r.caller, out);
  StringMember("issuer", r.issuer, out);
  StringMember("kind", r.kind, out);
  StringMember("kid", r.kid, out);
  StringMember("jti", r.jti, out);
  StringMember("sub", r.sub, out);
  StringMember("client_id", r.client_id, out);
  out->append(",\"act\":[");
  for (size_t i = 0; i < r.actor_chain.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append("{\"sub\":");
    text::AppendLogSafeJsonString(r.actor_chain[i].sub, out);
    if (!r.actor_chain[i].iss.empty()) {
      out->append(",\"iss\":");
      text::AppendLogSafeJsonString(r.actor_chain[i].iss, out);
    }
    out->push_back('}');
  }
  out->append("],\"aud\":");
  StringArray(r.aud, out);
  out->append(",\"scope\":");
  StringArray(r.scope, out);
  out->append(",\"exp\":");
  absl::StrAppend(out, r.exp);
  // Optional members: only when the request had them.
  if (r.ttl != 0) {
    out->append(",\"ttl\":");
    absl::StrAppend(out, r.ttl);
  }
  if (!r.cnf_jkt.empty() || !r.cnf_x5t_s256.empty()) {
    out->append(",\"cnf\":{");
    if (!r.cnf_jkt.empty()) {
      Key("jkt", out);
      text::AppendLogSafeJsonString(r.cnf_jkt, out);
    }
    if (!r.cnf_x5t_s256.empty()) {
      if (!r.cnf_jkt.empty()) out->push_back(',');
      Key("x5t#S256", out);
      text::AppendLogSafeJsonString(r.cnf_x5t_s256, out);
    }
    out->push_back('}');
  }
  if (!r.txn.empty()) StringMember("txn", r.txn, out);
  if (!r.req_wl.empty()) StringMember("req_wl", r.req_wl, out);
  if (!r.rctx_sha256.empty()) StringMember("rctx_sha256", r.rctx_sha256, out);
  if (!r.tctx_sha256.empty()) StringMember("tctx_sha256", r.tctx_sha256, out);
  if (!r.extra_claims.empty()) {
    out->append(",\"extra_claims\":");
    StringArray(r.extra_claims, out);
  }
  if (!r.extra_claims_sha256.empty()) {
    StringMember("extra_claims_sha256", r.extra_claims_sha256, out);
  }
  if (!r.status_uri.empty()) StringMember("status_uri", r.status_uri, out);
  if (r.status_idx >= 0) {
    out->append(",\"status_idx\":");
    absl::StrAppend(out, r.status_idx);
  }
  if (r.status_list_size > 0) {
    out->append(",\"status_list_size\":");
    absl::StrAppend(out, r.status_list_size);
    out->append(",\"status_list_set\":");
    absl::StrAppend(out, r.status_list_set);
  }
  StringMember("parent_jti", r.parent_jti, out);
  if (!r.parent_token_sha256.empty()) {
    StringMember("parent_token_sha256", r.parent_token_sha256, out);
  }
  if (!r.parent_cnf_jkt.empty() || !r.parent_cnf_x5t_s256.empty()) {
    out->append(",\"parent_cnf\":{");
    Key(r.parent_cnf_jkt.empty() ? "x5t#S256" : "jkt", out);
    text::AppendLogSafeJsonString(r.parent_cnf_jkt.empty() ? r.parent_cnf_x5t_s256
                                              : r.parent_cnf_jkt,
                     out);
    out->push_back('}');
  }
  StringMember("token_sha256", r.token_sha256, out);
  StringMember("outcome", r.outcome, out);
  StringMember("reason", r.reason, out);
}

Sha256Hasher::Sha256Hasher()
    : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {}

bool Sha256Hasher::HexDigest(std::string_view data, char* hex) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (md_ == nullptr || ctx_ == nullptr ||
      EVP_DigestInit_ex(ctx_.get(), md_.get(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1 || len != 32) {
    return false;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    hex[2 * i] = kHex[md[i] >> 4];
    hex[2 * i + 1] = kHex[md[i] & 15];
  }
  return true;
}

}  // namespace tokensign::audit
