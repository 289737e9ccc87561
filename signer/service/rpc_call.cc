#include "signer/service/rpc_call.h"

#include <chrono>

#include "signer/service/grpc_convert.h"
#include "signer/service/http/metrics.h"

namespace tokensign::service {

std::string CallerOf(const grpc::CallbackServerContext* ctx,
                     const PolicySnapshot& policy) {
  return CallerIdentity(*ctx, policy.config.dev, policy.config.server.insecure);
}

absl::Time CallDeadline(const grpc::CallbackServerContext* ctx) {
  auto tp = ctx->deadline();
  if (tp == std::chrono::system_clock::time_point::max())
    return absl::InfiniteFuture();
  return absl::FromChrono(tp);
}

absl::Status QueueRefusal(const WorkPool& pool) {
  if (pool.stopping())
    return absl::UnavailableError("server: shutting down; retry elsewhere");
  return absl::ResourceExhaustedError(
      "server: work queue full; retry with backoff");
}

void FinishAnswer(grpc::ServerUnaryReactor* reactor, Metrics* metrics,
                  const char* method, const absl::Status& st) {
  if (metrics != nullptr)
    metrics->CountRequest(method, absl::StatusCodeToString(st.code()));
  reactor->Finish(ToGrpcStatus(st));
}

}  // namespace tokensign::service
