#include "signer/service/grpc_services.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "signer/service/grpc_convert.h"
#include "signer/service/http/metrics.h"
#include "signer/service/rpc_call.h"

namespace tokensign::service {
namespace {

// A SignTokens call: one parse status and one outcome per item.
struct BatchCall : RawCall<v1::SignTokensRequest, v1::SignTokensResponse> {
  using RawCall::RawCall;
  std::vector<absl::Status> item_parsed;
  std::atomic<int> remaining{0};
};

// Converts and signs `req` (`parsed`: its parse status); `done` gets the
// outcome once the decision's audit record is durable (see
// SigningCore::SignAsync), with `resp` filled on OK. `done` runs on the audit
// writer thread or inline: it must be quick.
void SignInto(SigningCore* core, const std::string& caller,
              const absl::Status& parsed, const v1::SignTokenRequest& req,
              absl::Time deadline, v1::SignTokenResponse* resp,
              absl::AnyInvocable<void(absl::Status) &&> done) {
  absl::StatusOr<token::TokenRequest> treq =
      parsed.ok() ? ToTokenRequest(req)
                  : absl::StatusOr<token::TokenRequest>(parsed);
  if (!treq.ok()) {  // malformed: a decision too, so audited
    core->DenyAsync(caller, req.issuer(), "malformed_request", treq.status(),
                    std::move(done));
    return;
  }
  core->SignAsync(caller, req.issuer(), *treq, deadline,
                  [resp, done = std::move(done)](
                      absl::StatusOr<token::MintedToken> minted) mutable {
                    if (!minted.ok()) {
                      std::move(done)(minted.status());
                      return;
                    }
                    ToResponse(*minted, resp);
                    std::move(done)(absl::OkStatus());
                  });
}

}  // namespace

grpc::ServerUnaryReactor* TokenSignerService::SignToken(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  using Call = RawCall<v1::SignTokenRequest, v1::SignTokenResponse>;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto call = std::make_shared<Call>(reactor, *raw_req, raw_resp);
  std::string caller = CallerOf(ctx, *core_->policy());
  absl::Time deadline = CallDeadline(ctx);
  // The worker mints (or audits the malformed request); the audit writer
  // thread finishes the reactor once the record is durable, so the worker
  // never waits for fdatasync.
  core_->ExpectSigns(+1);
  bool queued = pool_->TrySubmit([this, call, caller, deadline] {
    core_->ExpectSigns(-1);
    SignInto(core_, caller, call->parsed, call->req, deadline, &call->resp,
             [this, call](absl::Status st) {
               call->Finish(metrics_, "SignToken", std::move(st));
             });
  });
  if (!queued) {
    core_->ExpectSigns(-1);
    FinishAnswer(reactor, metrics_, "SignToken", QueueRefusal(*pool_));
  }
  return reactor;
}

grpc::ServerUnaryReactor* TokenSignerService::SignTokens(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto call = std::make_shared<BatchCall>(reactor, raw_resp);
  call->parsed = ParseBatch(*raw_req, &call->req, &call->item_parsed);
  auto finish = [this, call](absl::Status st) {
    call->Finish(metrics_, "SignTokens", std::move(st));
  };
  std::string caller = CallerOf(ctx, *core_->policy());
  if (!call->parsed.ok()) {  // not even the items can be told apart
    core_->DenyAsync(caller, "", "malformed_request", call->parsed,
                     std::move(finish));
    return reactor;
  }
  const int n = call->req.requests_size();
  if (n == 0) {
    finish(absl::OkStatus());
    return reactor;
  }
  absl::Time deadline = CallDeadline(ctx);
  // Refused as a whole (one audit line, nothing queued): an unauthorized
  // caller, then a batch above kMaxBatchItems or the queue's capacity.
  absl::Status refuse = core_->CheckSignerCaller(caller);
  const int cap = std::min(kMaxBatchItems, pool_->max_queue());
  if (refuse.ok() && n > cap) {
    refuse = absl::InvalidArgumentError(
        absl::StrCat("requests: ", n, " items exceed max ", cap));
  }
  if (!refuse.ok()) {
    core_->DenyAsync(caller, "", "batch", std::move(refuse), std::move(finish));
    return reactor;
  }
  // Results exist before any item runs: item i writes only results(i).
  for (int i = 0; i < n; ++i) call->resp.add_results();
  // One pool task per item; the reactor finishes when the last item's outcome
  // (its audit record durable, or its error) is in.
  call->remaining.store(n, std::memory_order_relaxed);
  std::vector<std::function<void()>> items;
  items.reserve(n);
  for (int i = 0; i < n; ++i) {
    items.emplace_back([this, call, caller, deadline, i] {
      core_->ExpectSigns(-1);
      v1::SignTokenResult* result = call->resp.mutable_results(i);
      SignInto(
          core_, caller, call->item_parsed[i], call->req.requests(i), deadline,
          result->mutable_response(), [this, call, result](absl::Status st) {
            if (!st.ok()) ToItemError(st, result->mutable_error());
            if (call->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
              call->Finish(metrics_, "SignTokens", absl::OkStatus());
            }
          });
    });
  }
  core_->ExpectSigns(+n);
  if (!pool_->TrySubmitAll(std::move(items))) {
    core_->ExpectSigns(-n);
    FinishAnswer(reactor, metrics_, "SignTokens", QueueRefusal(*pool_));
  }
  return reactor;
}

grpc::ServerUnaryReactor* TokenSignerService::GetJwks(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  // Answered inline (in memory: no pool), so the call lives on the stack.
  RawCall<v1::GetJwksRequest, v1::GetJwksResponse> call(ctx->DefaultReactor(),
                                                        *raw_req, raw_resp);
  absl::Status st = call.parsed;
  if (st.ok()) {
    auto jwks = core_->Jwks(CallerOf(ctx, *core_->policy()), call.req.issuer());
    if (jwks.ok()) call.resp.set_jwks_json(*jwks);
    st = jwks.status();
  }
  call.Finish(metrics_, "GetJwks", std::move(st));
  return call.reactor;
}

grpc::ServerUnaryReactor* TokenSignerService::ExchangeToken(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  using C = RawCall<v1::ExchangeTokenRequest, v1::SignTokenResponse>;
  auto call = std::make_shared<C>(ctx->DefaultReactor(), *raw_req, raw_resp);
  std::string caller = CallerOf(ctx, *core_->policy());
  absl::Time deadline = CallDeadline(ctx);
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
    call->Finish(metrics_, "ExchangeToken", QueueRefusal(*pool_));
  }
  return call->reactor;
}

grpc::ServerUnaryReactor* TokenSignerService::SignStatusList(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  using C = RawCall<v1::SignStatusListRequest, v1::SignStatusListResponse>;
  auto call = std::make_shared<C>(ctx->DefaultReactor(), *raw_req, raw_resp);
  std::string caller = CallerOf(ctx, *core_->policy());
  absl::Time deadline = CallDeadline(ctx);
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
  if (!queued) call->Finish(metrics_, "SignStatusList", QueueRefusal(*pool_));
  return call->reactor;
}

}  // namespace tokensign::service
