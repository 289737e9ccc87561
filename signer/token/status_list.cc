#include "signer/token/status_list.h"

#include <zlib.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "signer/token/jws.h"
#include "signer/token/policy_fields.h"

namespace tokensign::token {
namespace {

using policy_fields::AllowedList;
using policy_fields::Quote;

// Checks the entries against a list of `size` entries of `bits` bits.
absl::Status CheckEntries(const StatusListConfig& list,
                          const std::vector<StatusEntry>& entries) {
  if (static_cast<int64_t>(entries.size()) > list.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("entries: ", entries.size(), " entries for a list of ",
                     list.size));
  }
  const uint32_t max_status = (uint32_t{1} << list.bits) - 1;
  std::set<int64_t> seen;
  for (size_t i = 0; i < entries.size(); ++i) {
    const StatusEntry& e = entries[i];
    if (e.idx < 0 || e.idx >= list.size) {
      return absl::InvalidArgumentError(
          absl::StrCat("entries[", i, "].idx: ", e.idx, " is outside the list ",
                       Quote(list.uri), "; allowed: 0..", list.size - 1));
    }
    if (e.status < 1 || e.status > max_status) {
      return absl::InvalidArgumentError(absl::StrCat(
          "entries[", i, "].status: ", e.status, " does not fit ", list.bits,
          " bit(s); allowed: 1..", max_status, " (0, VALID, is the default)"));
    }
    if (!seen.insert(e.idx).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "entries[", i, "].idx: ", e.idx, " is listed twice; list each once"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> EncodeStatusList(
    int bits, int64_t size, const std::vector<StatusEntry>& entries) {
  if ((bits != 1 && bits != 2 && bits != 4 && bits != 8) || size <= 0 ||
      size > kMaxStatusListSize || size * bits > kMaxStatusListBytes * 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("status list: ", size, " entries of ", bits,
                     " bits is not a list tokensign signs"));
  }
  std::string bytes(static_cast<size_t>((size * bits + 7) / 8), '\0');
  for (const StatusEntry& e : entries) {
    if (e.idx < 0 || e.idx >= size || e.status >= (uint32_t{1} << bits)) {
      return absl::InvalidArgumentError(
          absl::StrCat("status list: entry ", e.idx, " = ", e.status,
                       " does not fit"));
    }
    const int64_t bit = e.idx * bits;
    bytes[static_cast<size_t>(bit / 8)] |=
        static_cast<char>(e.status << (bit % 8));
  }
  uLongf len = compressBound(static_cast<uLong>(bytes.size()));
  std::string out(len, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &len,
                reinterpret_cast<const Bytef*>(bytes.data()),
                static_cast<uLong>(bytes.size()), Z_BEST_COMPRESSION) != Z_OK) {
    return absl::InternalError("status list: zlib compress2 failed");
  }
  out.resize(len);
  return Base64UrlEncode(out);
}

absl::StatusOr<SignedStatusList> SignStatusList(const IssuerPolicy& policy,
                                                const SigningKey& key,
                                                const StatusListRequest& req,
                                                absl::Time now) {
  if (absl::Status s = CheckSigningKey(key); !s.ok()) return s;
  const StatusListConfig* list = nullptr;
  std::vector<std::string> uris;
  for (const StatusListConfig& l : policy.status_lists) {
    uris.push_back(l.uri);
    if (l.uri == req.uri) list = &l;
  }
  if (list == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("uri: ", Quote(req.uri),
                     " is not one of this issuer's status lists; configured: ",
                     AllowedList(uris)));
  }
  if (absl::Status s = CheckEntries(*list, req.entries); !s.ok()) return s;
  if (req.lifetime_seconds < 0 || req.lifetime_seconds > kMaxStatusListLifetime) {
    return absl::InvalidArgumentError(
        absl::StrCat("lifetime_seconds: ", req.lifetime_seconds,
                     " is outside 0 (default ", kDefaultStatusListLifetime,
                     ")..", kMaxStatusListLifetime));
  }
  if (req.ttl_seconds < 0 || req.ttl_seconds > kMaxStatusListLifetime) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl_seconds: ", req.ttl_seconds, " is outside 0 (default ",
                     kDefaultStatusListTtl, ")..", kMaxStatusListLifetime));
  }
  absl::StatusOr<std::string> lst =
      EncodeStatusList(list->bits, list->size, req.entries);
  if (!lst.ok()) return lst.status();
  SignedStatusList out;
  out.kid = key.kid;
  out.size = list->size;
  out.bits = list->bits;
  out.set_entries = static_cast<int64_t>(req.entries.size());
  out.iat = absl::ToUnixSeconds(now);
  out.exp = out.iat + (req.lifetime_seconds != 0 ? req.lifetime_seconds
                                                 : kDefaultStatusListLifetime);
  nlohmann::ordered_json claims;
  claims["iss"] = policy.iss;
  claims["sub"] = req.uri;
  claims["iat"] = out.iat;
  claims["exp"] = out.exp;
  claims["ttl"] =
      req.ttl_seconds != 0 ? req.ttl_seconds : kDefaultStatusListTtl;
  claims["status_list"] = {{"bits", list->bits}, {"lst", *lst}};
  out.payload = claims.dump();
  std::string signing_input =
      Base64UrlEncode(JwsHeaderJson(key.alg, key.kid, kStatusListTyp)) + "." +
      Base64UrlEncode(out.payload);
  absl::StatusOr<std::string> sig = key.signer->Sign(signing_input);
  if (!sig.ok()) return sig.status();
  if (policy.verify_before_release) {
    if (key.public_key == nullptr) {
      return absl::FailedPreconditionError(
          "key: no public key; verify-before-release needs one");
    }
    absl::Status v = key.signer->Verify(signing_input, *sig);
    if (!v.ok()) {
      return absl::InternalError(absl::StrCat(
          "verify-before-release: fresh status list does not verify, "
          "withheld: ",
          v.message()));
    }
  }
  out.token = signing_input + "." + Base64UrlEncode(*sig);
  return out;
}

}  // namespace tokensign::token
