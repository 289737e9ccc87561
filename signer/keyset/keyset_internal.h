// Helpers shared by the keyset library's .cc files (not part of its API):
// the string_view bridge for Debian's abseil, status prefixing, and the
// label tokensign gives issuer keys in the HSM. Thread-safety: pure functions.
#ifndef TOKENSIGN_SIGNER_KEYSET_KEYSET_INTERNAL_H_
#define TOKENSIGN_SIGNER_KEYSET_KEYSET_INTERNAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/str_cat.h"
#include "signer/keyset/keyset_record.h"

namespace tokensign::keyset::internal {

// "kid1=active kid2=retired" for logs and the audit.
inline std::string KeyStates(const KeysetRecord& record) {
  std::vector<std::string> parts;
  for (const KeyRecord& k : record.keys)
    parts.push_back(absl::StrCat(k.kid, "=", KeyStateName(k.state)));
  return parts.empty() ? "no keys" : absl::StrJoin(parts, " ");
}

// The label CreateKey gives an issuer's keys: "tokensign:<issuer>:<unix s>".
inline std::string KeyLabel(std::string_view issuer, int64_t created) {
  return absl::StrCat("tokensign:", AbslView(issuer), ":", created);
}

// Issuer and creation time from such a label, or nullopt.
inline std::optional<std::pair<std::string, int64_t>> ParseKeyLabel(
    std::string_view label) {
  constexpr std::string_view kPrefix = "tokensign:";
  if (label.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  size_t colon = label.rfind(':');
  if (colon <= kPrefix.size()) return std::nullopt;
  int64_t created = 0;
  if (!absl::SimpleAtoi(AbslView(label.substr(colon + 1)), &created))
    return std::nullopt;
  return std::pair{std::string(label.substr(kPrefix.size(),
                                            colon - kPrefix.size())),
                   created};
}

}  // namespace tokensign::keyset::internal

#endif  // TOKENSIGN_SIGNER_KEYSET_KEYSET_INTERNAL_H_
