// TokenSignerService: the TokenSigner gRPC service of tokensignd (callback
// API); KeyAdminService is in key_admin_service.h.
//
// Contract: handlers never block. Each checks nothing but the queue: the work
// (role check, deadline, mint, key operations) runs on the WorkPool; signing
// hands its audit record to the audit log asynchronously and the audit writer
// thread finishes the reactor once the record is durable (a worker never
// waits for fdatasync). A full pool answers RESOURCE_EXHAUSTED at once; for
// KeyAdmin only once that refusal is audited "denied" (kind
// "key_admin.<method>"), like every refused KeyAdmin call.
// SignTokens first refuses the whole call, with one audit line and nothing
// queued, when the caller is unknown or lacks the signer role
// (PERMISSION_DENIED) or the batch has more than min(kMaxBatchItems,
// max_queue) items (INVALID_ARGUMENT "requests: 300 items exceed max 256");
// then it submits one pool task per item (admitted all or none, counted
// exactly against max_queue, see WorkPool::TrySubmitAll) and finishes when the
// last item's outcome is in, one result per item, in order. A malformed item
// (ToTokenRequest error) is audited as denied. KeyAdmin: refused with
// UNAVAILABLE while the audit log is unhealthy; a mutation whose outcome could
// not be recorded answers UNAVAILABLE (see KeyAdminGate). Every answer is
// counted in Metrics (method, code).
//
// Malformed requests: every method is registered as a raw callback method
// (grpc::ByteBuffer in and out, see raw_messages.h), so a request the
// protobuf parser refuses (invalid UTF-8 in a string, nesting beyond the
// parser's limit, broken wire data) is answered INVALID_ARGUMENT naming the
// field and the rule, counted like any answer, and, where the caller's
// decision is audited, audited as denied: SignToken and each bad SignTokens
// item as kind "malformed_request" (a bad item fails only itself), KeyAdmin as
// "key_admin.<method>"; GetJwks is not audited. The generated proto contract
// is unchanged for clients.
//
// Thread-safety: the services are called by gRPC from many threads; all state
// they touch (SigningCore, WorkPool, Metrics) is thread-safe. They must outlive
// the server.
#ifndef TOKENSIGN_SIGNER_SERVICE_GRPC_SERVICES_H_
#define TOKENSIGN_SIGNER_SERVICE_GRPC_SERVICES_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "signer/service/key_admin_service.h"  // KeyAdminService
#include "signer/service/signing_core.h"
#include "signer/service/work_pool.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::service {

class Metrics;

// Most items one SignTokens call may carry (also capped by max_queue).
inline constexpr int kMaxBatchItems = 256;

// TokenSigner with every method raw (the service parses and serializes).
using TokenSignerRawService = v1::TokenSigner::WithRawCallbackMethod_SignToken<
    v1::TokenSigner::WithRawCallbackMethod_SignTokens<
        v1::TokenSigner::WithRawCallbackMethod_GetJwks<
            v1::TokenSigner::WithRawCallbackMethod_ExchangeToken<
                v1::TokenSigner::WithRawCallbackMethod_SignStatusList<
                    v1::TokenSigner::Service>>>>>;
class TokenSignerService final : public TokenSignerRawService {
 public:
  TokenSignerService(SigningCore* core, WorkPool* pool, Metrics* metrics)
      : core_(core), pool_(pool), metrics_(metrics) {}

  // Request: a SignTokenRequest; response: a SignTokenResponse.
  grpc::ServerUnaryReactor* SignToken(grpc::CallbackServerContext* ctx,
                                      const grpc::ByteBuffer* req,
                                      grpc::ByteBuffer* resp) override;
  // Request: a SignTokensRequest; response: a SignTokensResponse.
  grpc::ServerUnaryReactor* SignTokens(grpc::CallbackServerContext* ctx,
                                       const grpc::ByteBuffer* req,
                                       grpc::ByteBuffer* resp) override;
  // Request: a GetJwksRequest; response: a GetJwksResponse.
  grpc::ServerUnaryReactor* GetJwks(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override;
  // Request: an ExchangeTokenRequest; response: a SignTokenResponse. Runs
  // SigningCore::ExchangeAsync on the pool like SignToken (a malformed request
  // is audited as "malformed_request").
  grpc::ServerUnaryReactor* ExchangeToken(grpc::CallbackServerContext* ctx,
                                          const grpc::ByteBuffer* req,
                                          grpc::ByteBuffer* resp) override;
  // Request: a SignStatusListRequest; response: a SignStatusListResponse
  // (SigningCore::SignStatusListAsync on the pool).
  grpc::ServerUnaryReactor* SignStatusList(grpc::CallbackServerContext* ctx,
                                           const grpc::ByteBuffer* req,
                                           grpc::ByteBuffer* resp) override;

 private:
  SigningCore* core_;
  WorkPool* pool_;
  Metrics* metrics_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_GRPC_SERVICES_H_
