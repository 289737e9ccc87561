// The gRPC edge of signer/service: absl::Status -> grpc::Status (the ONE place
// that maps them), caller identity from the peer certificate, and proto <->
// internal conversions.
//
// Contract:
// - ToGrpcStatus keeps the code (absl and gRPC codes share their numbering) and
//   the message, cut to kMaxStatusMessageBytes (on a UTF-8 boundary, marked):
//   it travels in a trailer, and a client refuses one beyond 8 KiB with its
//   own RESOURCE_EXHAUSTED. ToItemError cuts its message likewise.
// - CallerIdentity: in dev mode "dev"; on an insecure (plaintext loopback)
//   listener "loopback" (config may grant that id roles like any other caller);
//   otherwise IdentityFromCertificate of the verified client certificate; ""
//   when the peer presented no certificate.
// - IdentityFromCertificate: ids containing ':' come only from a URI SAN, ids
//   without ':' only from a CN, so a configured id of one kind never matches a
//   name of the other. The certificate's URI SAN when it has exactly one and it
//   is a URI (CallerIdProblem; a URI SAN without ':' names nobody); "" when it
//   has several (ambiguous). Without URI SANs: its CN when the subject has
//   exactly one and it is a valid common name (no ':'); else "". Never the CN
//   of a certificate that has a URI SAN.
// - ToTokenRequest converts a SignTokenRequest (Structs become JSON objects);
// it only
//   rejects what the proto cannot express internally (TOKEN_KIND_UNSPECIFIED ->
//   "kind").
// Thread-safety: pure functions.
#ifndef TOKENSIGN_SIGNER_SERVICE_GRPC_CONVERT_H_
#define TOKENSIGN_SIGNER_SERVICE_GRPC_CONVERT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "hsm/hsm_types.h"
#include "signer/keyset/keyset_record.h"
#include "signer/token/exchange.h"
#include "signer/token/minter.h"
#include "signer/token/status_list.h"
#include "signer/token/token_request.h"
#include "tokensign/v1/tokensign.pb.h"

namespace tokensign::service {

// The longest status message sent to a client (ToGrpcStatus, ToItemError).
inline constexpr size_t kMaxStatusMessageBytes = 1024;

grpc::Status ToGrpcStatus(const absl::Status& status);

std::string CallerIdentity(const grpc::ServerContextBase& ctx, bool dev, bool insecure);
// The caller named by a client certificate (PEM): its single URI SAN (with
// ':'); else, for a certificate without URI SANs, its single CN (without ':');
// else "" (nobody).
std::string IdentityFromCertificate(const std::string& pem);
// IdentityFromCertificate, remembered per distinct PEM (bounded cache; thread-safe).
std::string CachedIdentityFromCertificate(const std::string& pem);

absl::StatusOr<token::TokenRequest> ToTokenRequest(
    const v1::SignTokenRequest& in);
void ToResponse(const token::MintedToken& minted, v1::SignTokenResponse* out);
// ExchangeToken's request; InvalidArgument for an unset kind or an empty cnf.
absl::StatusOr<token::ExchangeRequest> ToExchangeRequest(
    const v1::ExchangeTokenRequest& in);
token::StatusListRequest ToStatusListRequest(
    const v1::SignStatusListRequest& in);
// Fills an ItemError: code, message and the field the message names.
void ToItemError(const absl::Status& status, v1::ItemError* out);
// The record of a key as KeyAdmin answers it; with the HSM token's label, also
// the key's RFC 7512 URI (pkcs11:token=...;id=...;type=private).
void ToKeyInfo(const keyset::KeyRecord& key, v1::KeyInfo* out,
               std::string_view token_label = "");
// One HSM object's attributes as KeyAdmin.InspectKeys answers them.
void ToHsmKeyObject(const hsm::KeyAttributes& object, v1::HsmKeyObject* out);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_GRPC_CONVERT_H_
