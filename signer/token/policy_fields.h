// Field-level checks behind CheckRequest (policy.h): strings, scope tokens,
// JSON contexts, and how values appear in error messages. Internal to
// signer/token. Thread-safety: pure functions.
#ifndef TOKENSIGN_SIGNER_TOKEN_POLICY_FIELDS_H_
#define TOKENSIGN_SIGNER_TOKEN_POLICY_FIELDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "signer/token/token_request.h"

namespace tokensign::token::policy_fields {

// A value as it appears in messages: quoted, cut at 64 bytes.
std::string Quote(absl::string_view v);

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool ValidUtf8(absl::string_view s);

// Non-empty (when `required`), at most kMaxStringBytes, valid UTF-8, no
// control characters (C0, DEL, C1), format characters (Cf), line or paragraph
// separators or noncharacters (text/unicode.h); the error names `field`, the
// code point and its class, and, when empty, `what`.
absl::Status CheckString(absl::string_view field, absl::string_view v,
                         bool required, absl::string_view what);

// A name as it appears in a field path: printable ASCII except the quote and
// the backslash as is, every other byte as \xNN; cut at 64 bytes.
std::string Escaped(absl::string_view v);

bool Contains(const std::vector<std::string>& list, absl::string_view v);

// "a, b, c", or "none configured".
std::string AllowedList(const std::vector<std::string>& list);

// RFC 6749 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ), at most
// kMaxScopeBytes.
absl::Status CheckScopeToken(const std::string& field, absl::string_view s);

// Serialized size of a JSON value, or an error naming `field` (e.g. invalid
// UTF-8).
absl::StatusOr<size_t> JsonSize(absl::string_view field,
                                const nlohmann::json& v);

// rctx / tctx: absent, or a JSON object of at most kMaxContextBytes in a
// transaction token.
absl::Status CheckContext(absl::string_view field, const nlohmann::json& v,
                          TokenKind kind);

}  // namespace tokensign::token::policy_fields

#endif  // TOKENSIGN_SIGNER_TOKEN_POLICY_FIELDS_H_
