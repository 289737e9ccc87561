// TokenSigner.ExchangeToken and TokenSigner.SignStatusList (grpc_services.h):
// raw callback methods like the other TokenSigner methods; the work runs on
// the pool, the audit writer thread finishes the reactor once the decision's
// record is durable.
#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "signer/service/grpc_convert.h"
#include "signer/service/grpc_services.h"
#include "signer/service/http/metrics.h"
#include "signer/service/raw_messages.h"

namespace tokensign::service {
namespace {

absl::Time Deadline(const grpc::CallbackServerContext* ctx) {
  auto tp = ctx->deadline();
  if (tp == std::chrono::system_clock::time_point::max())
    return absl::InfiniteFuture();
  return absl::FromChrono(tp);
}

std::string Caller(const grpc::CallbackServerContext* ctx, SigningCore* core) {
  std::shared_ptr<const PolicySnapshot> snap = core->policy();
  return CallerIdentity(*ctx, snap->config.dev, snap->config.server.insecure);
}

absl::Status Busy(const WorkPool* pool) {
  if (pool->stopping())
    return absl::UnavailableError("server: shutting down; retry elsewhere");
  return absl::ResourceExhaustedError(
      "server: work queue full; retry with backoff");
}

// One call: the parsed request, the response, where gRPC wants it.
template <typename Req, typename Resp>
struct Call {
  Call(grpc::ServerUnaryReactor* r, grpc::ByteBuffer* o) : reactor(r), out(o) {}
  grpc::ServerUnaryReactor* reactor;
  grpc::ByteBuffer* out;
  Req req;
  Resp resp;
  absl::Status parsed;

  // Serializes the response when `st` is OK, finishes, counts the answer.
  void Finish(Metrics* metrics, const char* method, absl::Status st) {
    if (st.ok()) st = SerializeResponse(resp, out);
    if (metrics != nullptr)
      metrics->CountRequest(method, absl::StatusCodeToString(st.code()));
    reactor->Finish(ToGrpcStatus(st));
  }
};

}  // namespace

grpc::ServerUnaryReactor* TokenSignerService::ExchangeToken(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  using C = Call<v1::ExchangeTokenRequest, v1::SignTokenResponse>;
  auto call = std::make_shared<C>(ctx->DefaultReactor(), raw_resp);
  call->parsed = ParseRequest(*raw_req, &call->req);
  std::string caller = Caller(ctx, core_);
  absl::Time deadline = Deadline(ctx);
  core_->ExpectSigns(+1);
  bool queued = pool_->TrySubmit([this, call, caller, deadline] {
    core_->ExpectSigns(-1);
    auto finish = [this, call](absl::Status st) {
      call->Finish(metrics_, "ExchangeToken", std::move(st));
    };
    absl::StatusOr<token::ExchangeRequest> xreq =
        call->parsed.ok() ? ToExchangeRequest(call->req)
                          : absl::StatusOr<token::ExchangeRequest>(call->parsed);
    if (!xreq.ok()) {  // malformed: audited like any refusal
      core_->DenyAsync(caller, call->req.issuer(), "malformed_request",
                       xreq.status(), std::move(finish));
      return;
    }
    core_->ExchangeAsync(
        caller, call->req.issuer(), call->req.subject_token(), *std::move(xreq),
        deadline,
        [call, finish = std::move(finish)](
            absl::StatusOr<token::MintedToken> minted) mutable {
          if (minted.ok()) ToResponse(*minted, &call->resp);
          finish(minted.status());
        });
  });
  if (!queued) {
    core_->ExpectSigns(-1);
    call->Finish(metrics_, "ExchangeToken", Busy(pool_));
  }
  return call->reactor;
}

grpc::ServerUnaryReactor* TokenSignerService::SignStatusList(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  using C = Call<v1::SignStatusListRequest, v1::SignStatusListResponse>;
  auto call = std::make_shared<C>(ctx->DefaultReactor(), raw_resp);
  call->parsed = ParseRequest(*raw_req, &call->req);
  std::string caller = Caller(ctx, core_);
  absl::Time deadline = Deadline(ctx);
  bool queued = pool_->TrySubmit([this, call, caller, deadline] {
    auto finish = [this, call](absl::Status st) {
      call->Finish(metrics_, "SignStatusList", std::move(st));
    };
    if (!call->parsed.ok()) {
      core_->DenyAsync(caller, call->req.issuer(), "status_list", call->parsed,
                       std::move(finish));
      return;
    }
    core_->SignStatusListAsync(
        caller, call->req.issuer(), ToStatusListRequest(call->req), deadline,
        [call, finish = std::move(finish)](
            absl::StatusOr<token::SignedStatusList> signed_list) mutable {
          if (signed_list.ok()) {
            call->resp.set_token(signed_list->token);
            call->resp.set_kid(signed_list->kid);
            call->resp.mutable_expires_at()->set_seconds(signed_list->exp);
            call->resp.set_size(signed_list->size);
            call->resp.set_set_entries(signed_list->set_entries);
          }
          finish(signed_list.status());
        });
  });
  if (!queued) call->Finish(metrics_, "SignStatusList", Busy(pool_));
  return call->reactor;
}

}  // namespace tokensign::service
