// The plumbing every gRPC method of tokensignd shares: who is calling, until
// when, why the pool refused the work, and one raw call (request parsed and
// response serialized by the service, see raw_messages.h) finished and
// counted in one place.
//
// Contract: CallerOf is the caller identity the policy checks (grpc_convert.h
// CallerIdentity under the snapshot's dev/insecure settings). CallDeadline is
// the client's deadline (InfiniteFuture when it set none). QueueRefusal is
// Unavailable while the pool drains (shutdown), else ResourceExhausted.
// FinishAnswer counts the answer in Metrics (method, code; metrics may be
// null) and finishes the reactor with it. RawCall::Finish serializes the
// response first when the status is OK.
//
// Thread-safety: the functions are pure; a RawCall is shared (shared_ptr) by
// its call's pool tasks and completion callbacks, which write disjoint parts
// of it and finish it exactly once.
#ifndef TOKENSIGN_SIGNER_SERVICE_RPC_CALL_H_
#define TOKENSIGN_SIGNER_SERVICE_RPC_CALL_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "signer/service/policy_snapshot.h"
#include "signer/service/raw_messages.h"
#include "signer/service/work_pool.h"

namespace tokensign::service {

class Metrics;

std::string CallerOf(const grpc::CallbackServerContext* ctx,
                     const PolicySnapshot& policy);
absl::Time CallDeadline(const grpc::CallbackServerContext* ctx);
absl::Status QueueRefusal(const WorkPool& pool);
void FinishAnswer(grpc::ServerUnaryReactor* reactor, Metrics* metrics,
                  const char* method, const absl::Status& st);

// One call of a raw method; `out` belongs to gRPC and lives until the call
// finishes.
template <typename Req, typename Resp>
struct RawCall {
  RawCall(grpc::ServerUnaryReactor* r, grpc::ByteBuffer* o)
      : reactor(r), out(o) {}
  // Parses `raw` into `req` (`parsed`: OK or why it is malformed).
  RawCall(grpc::ServerUnaryReactor* r, const grpc::ByteBuffer& raw,
          grpc::ByteBuffer* o)
      : reactor(r), out(o), parsed(ParseRequest(raw, &req)) {}

  // Serializes `resp` when `st` is OK, then finishes and counts the answer.
  void Finish(Metrics* metrics, const char* method, absl::Status st) {
    if (st.ok()) st = SerializeResponse(resp, out);
    FinishAnswer(reactor, metrics, method, st);
  }

  grpc::ServerUnaryReactor* reactor;
  grpc::ByteBuffer* out;
  Req req;
  Resp resp;
  absl::Status parsed;  // OK, or why the request is malformed
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_RPC_CALL_H_
