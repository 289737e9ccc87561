// Token Status List tokens (draft-ietf-oauth-status-list): the list of an
// issuer's token statuses, signed with the issuer's key, so that setting one
// entry revokes (or suspends) every token that references it.
//
// Contract:
// - EncodeStatusList packs `size` entries of `bits` bits (1, 2, 4 or 8) into a
//   byte array, entry i at bit position (i * bits) % 8 of byte i * bits / 8,
//   least significant bits first (the draft's layout), compresses it with
//   zlib (DEFLATE in the ZLIB format, RFC 1950, best compression) and returns
//   it base64url without padding: the `lst` member.
// - SignStatusList checks the request against the issuer's configured lists
//   (uri configured, each idx in 0..size-1 at most once, each status in
//   1..2^bits-1), then signs {"iss","sub":uri,"iat","exp","ttl",
//   "status_list":{"bits","lst"}} with header typ "statuslist+jwt", and
//   verifies the signature before release (unless the issuer turned that off,
//   as for Mint). Refusals name the field: "uri: ...", "entries[3].idx: ...".
//
// Thread-safety: pure functions (the key as for Mint).
#ifndef TOKENSIGN_SIGNER_TOKEN_STATUS_LIST_H_
#define TOKENSIGN_SIGNER_TOKEN_STATUS_LIST_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "signer/token/minter.h"
#include "signer/token/policy.h"

namespace tokensign::token {

inline constexpr char kStatusListTyp[] = "statuslist+jwt";
inline constexpr int64_t kDefaultStatusListLifetime = 86400;
inline constexpr int64_t kMaxStatusListLifetime = 30 * 86400;
inline constexpr int64_t kDefaultStatusListTtl = 300;

struct StatusEntry {
  int64_t idx = 0;
  uint32_t status = 1;  // 1 = INVALID, 2 = SUSPENDED, ...
};

struct StatusListRequest {
  std::string uri;
  std::vector<StatusEntry> entries;  // entries not 0; the rest are 0
  int64_t lifetime_seconds = 0;      // exp - iat; 0 = the default
  int64_t ttl_seconds = 0;           // the ttl claim; 0 = the default
};

struct SignedStatusList {
  std::string token;
  std::string kid;
  int64_t iat = 0;
  int64_t exp = 0;
  int64_t size = 0;
  int bits = 1;
  int64_t set_entries = 0;
  std::string payload;
};

absl::StatusOr<std::string> EncodeStatusList(
    int bits, int64_t size, const std::vector<StatusEntry>& entries);

absl::StatusOr<SignedStatusList> SignStatusList(const IssuerPolicy& policy,
                                                const SigningKey& key,
                                                const StatusListRequest& req,
                                                absl::Time now);

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_STATUS_LIST_H_
