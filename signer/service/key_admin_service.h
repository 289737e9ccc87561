// KeyAdminService: the KeyAdmin gRPC service of tokensignd (callback API,
// every method raw: see raw_messages.h). Owns nothing but the glue between a
// call and KeyAdminGate (key_admin_gate.h), which decides, audits and runs
// the key operation on the WorkPool; a handler never blocks. Every answer is
// counted in Metrics (method, code).
//
// Thread-safety: called by gRPC from many threads; all state it touches
// (SigningCore, WorkPool, Metrics) is thread-safe. It must outlive the server.
#ifndef TOKENSIGN_SIGNER_SERVICE_KEY_ADMIN_SERVICE_H_
#define TOKENSIGN_SIGNER_SERVICE_KEY_ADMIN_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "signer/service/key_admin_gate.h"
#include "signer/service/signing_core.h"
#include "signer/service/work_pool.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::service {

class Metrics;

// KeyAdmin with every method raw.
using KeyAdminRawService = v1::KeyAdmin::WithRawCallbackMethod_CreateKey<
    v1::KeyAdmin::WithRawCallbackMethod_ListKeys<
        v1::KeyAdmin::WithRawCallbackMethod_RotateKey<
            v1::KeyAdmin::WithRawCallbackMethod_ActivateKey<
                v1::KeyAdmin::WithRawCallbackMethod_RetireKey<
                    v1::KeyAdmin::WithRawCallbackMethod_DestroyKey<
                        v1::KeyAdmin::WithRawCallbackMethod_InspectKeys<
                            v1::KeyAdmin::Service>>>>>>>;

class KeyAdminService final : public KeyAdminRawService {
 public:
  KeyAdminService(SigningCore* core, WorkPool* pool, Metrics* metrics)
      : core_(core), metrics_(metrics), gate_(core, pool) {}

  // Each takes and answers the method's request and response messages.
  grpc::ServerUnaryReactor* CreateKey(grpc::CallbackServerContext* ctx,
                                      const grpc::ByteBuffer* req,
                                      grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ListKeys(grpc::CallbackServerContext* ctx,
                                     const grpc::ByteBuffer* req,
                                     grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* RotateKey(grpc::CallbackServerContext* ctx,
                                      const grpc::ByteBuffer* req,
                                      grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ActivateKey(grpc::CallbackServerContext* ctx,
                                        const grpc::ByteBuffer* req,
                                        grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* RetireKey(grpc::CallbackServerContext* ctx,
                                      const grpc::ByteBuffer* req,
                                      grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* DestroyKey(grpc::CallbackServerContext* ctx,
                                       const grpc::ByteBuffer* req,
                                       grpc::ByteBuffer* resp) override;
  // Read-only like ListKeys (custodian or auditor, only denials audited):
  // each key's record and its HSM objects' attributes (Hsm::InspectKey); a
  // key whose objects cannot be read carries hsm_error instead.
  grpc::ServerUnaryReactor* InspectKeys(grpc::CallbackServerContext* ctx,
                                        const grpc::ByteBuffer* req,
                                        grpc::ByteBuffer* resp) override;

 private:
  // Parses the request and hands it with `op` to the gate (defined in the
  // .cc, used only there).
  template <typename Req, typename Resp, typename Op>
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* ctx,
                                const grpc::ByteBuffer* raw_req,
                                grpc::ByteBuffer* raw_resp, const char* method,
                                bool read_only, Op op);

  SigningCore* core_;
  Metrics* metrics_;
  KeyAdminGate gate_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_KEY_ADMIN_SERVICE_H_
