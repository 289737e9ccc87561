// The gRPC edge of signer/service: absl::Status -> grpc::Status (the ONE place
// that maps them), caller identity from the peer certificate, and proto <->
// internal conversions.
//
// Contract:
// - ToGrpcStatus keeps the code (absl and gRPC codes share their numbering) and
// message.
// - CallerIdentity: in dev mode "dev"; on an insecure (plaintext loopback)
// listener
//   "loopback" (config may grant that id roles like any other caller);
//   otherwise the first URI SAN of the
// verified client
//   certificate that names a configured caller, else the first URI SAN, else
//   the CN; "" when the peer presented no certificate.
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
#include "signer/keyset/keyset_record.h"
#include "signer/token/minter.h"
#include "signer/token/token_request.h"
#include "tokensign/v1/tokensign.pb.h"

namespace tokensign::service {

grpc::Status ToGrpcStatus(const absl::Status& status);

// `is_known(id)` says whether a SAN URI is a configured caller id.
std::string CallerIdentity(
    const grpc::ServerContextBase& ctx, bool dev, bool insecure,
    const std::function<bool(const std::string&)>& is_known);

absl::StatusOr<token::TokenRequest> ToTokenRequest(
    const v1::SignTokenRequest& in);
void ToResponse(const token::MintedToken& minted, v1::SignTokenResponse* out);
// Fills an ItemError: code, message and the field the message names.
void ToItemError(const absl::Status& status, v1::ItemError* out);
void ToKeyInfo(const keyset::KeyRecord& key, v1::KeyInfo* out);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_GRPC_CONVERT_H_
