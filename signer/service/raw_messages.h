// Request and response messages of the gRPC services, parsed and serialized by
// the service itself: its methods are registered as raw callback methods
// (grpc::ByteBuffer in and out) so that a request the protobuf parser refuses
// reaches a handler at all. gRPC's generated callback handlers refuse such a
// request before any handler runs, with a bare UNIMPLEMENTED: no message, no
// metric, no audit record. The wire contract is unchanged: clients built from
// tokensign.proto send and receive the same bytes.
//
// Contract:
// - ParseRequest parses like gRPC's own deserializer (protobuf's default
//   recursion limit, 100 nested messages; proto3 strings must be UTF-8). On
//   failure it answers InvalidArgument "<field>: <rule> (not a valid
//   <message type>)", e.g. "actor_chain[1].sub: invalid UTF-8 in a string field
//   (not a valid tokensign.v1.SignTokenRequest)" or "extra_claims: nested
//   deeper than the parser's limit of 100 messages (...)"; a field inside a
//   google.protobuf type (Struct, Value, ...) is named by the request field
//   that holds it. `out` then holds only the request's top-level singular
//   string fields that are valid UTF-8 (e.g. `issuer`, for the audit record).
//   A request that parses but sets an enum field to a value its enum does not
//   define (proto3 enums are open) is refused too, `out` kept whole:
//   "mode: 7 is not a RotationMode (allowed: PLANNED, EMERGENCY)".
// - ParseBatch parses a SignTokensRequest. When the whole message parses, the
//   item statuses are all OK. When it does not, each item is parsed on its own
//   (one bad item never fails the others): a bad item's status is its
//   ParseRequest error and its entry in `out` is its salvaged fields. Only
//   bytes outside any item that are not valid wire data fail the whole call.
// - DiagnoseMalformed is the cold path of both: why `bytes` is not a valid
//   `type`. It walks the wire data guided by the descriptor, recursing never
//   deeper than the parser's recursion limit (a 4 MB request nested a million
//   levels deep cannot exhaust the stack).
// - SerializeResponse fills `out` as gRPC's generated handler would.
//
// Thread-safety: pure functions.
#ifndef TOKENSIGN_SIGNER_SERVICE_RAW_MESSAGES_H_
#define TOKENSIGN_SIGNER_SERVICE_RAW_MESSAGES_H_

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "tokensign/v1/tokensign.pb.h"

namespace tokensign::service {

absl::Status ParseRequest(const grpc::ByteBuffer& raw,
                          google::protobuf::Message* out);

// `item_status` gets one entry per item in `out` (see the file comment).
absl::Status ParseBatch(const grpc::ByteBuffer& raw, v1::SignTokensRequest* out,
                        std::vector<absl::Status>* item_status);

// Why `bytes` is not a valid message of `out`'s type, as an InvalidArgument
// status (see ParseRequest); clears `out`, then sets its salvaged fields.
absl::Status DiagnoseMalformed(std::string_view bytes,
                               google::protobuf::Message* out);

absl::Status SerializeResponse(const google::protobuf::Message& msg,
                               grpc::ByteBuffer* out);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_RAW_MESSAGES_H_
