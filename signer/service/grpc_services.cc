#include "signer/service/grpc_services.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "signer/service/grpc_convert.h"
#include "signer/service/http/metrics.h"
#include "signer/service/raw_messages.h"

namespace tokensign::service {
namespace {

// What a KeyAdmin request asks beyond its method, for the "requested"
// audit record: an emergency rotation, a forced activation or destruction,
// and the custodian's reason.
std::string AdminRequestNote(const v1::RotateKeyRequest& req) {
  if (req.mode() != v1::EMERGENCY) return "planned rotation";
  return "EMERGENCY rotation (old key withdrawn): " + req.reason();
}
std::string AdminRequestNote(const v1::ActivateKeyRequest& req) {
  return req.force() ? "FORCED before publish_lead: " + req.reason() : "";
}
std::string AdminRequestNote(const v1::DestroyKeyRequest& req) {
  return req.force() ? "FORCED while still published: " + req.reason() : "";
}
template <typename Req>
std::string AdminRequestNote(const Req&) {
  return "";
}

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

// Finishes the reactor and counts the answer.
void Finish(grpc::ServerUnaryReactor* reactor, Metrics* metrics,
            const char* method, const absl::Status& st) {
  if (metrics != nullptr)
    metrics->CountRequest(method, absl::StatusCodeToString(st.code()));
  reactor->Finish(ToGrpcStatus(st));
}

absl::Status Busy(const WorkPool* pool) {
  if (pool->stopping())
    return absl::UnavailableError("server: shutting down; retry elsewhere");
  return absl::ResourceExhaustedError(
      "server: work queue full; retry with backoff");
}

// One call of a raw method: the service parses the request and serializes the
// response itself (see raw_messages.h). Shared by the call's pool tasks and
// callbacks; `out` belongs to gRPC and lives until the call finishes.
template <typename Req, typename Resp>
struct RawCall {
  RawCall(grpc::ServerUnaryReactor* r, grpc::ByteBuffer* o)
      : reactor(r), out(o) {}
  grpc::ServerUnaryReactor* reactor;
  grpc::ByteBuffer* out;
  Req req;
  Resp resp;
  absl::Status parsed;  // OK, or why the request is malformed
};

// Serializes `call.resp` when `st` is OK, then finishes and counts the answer.
template <typename Req, typename Resp>
void FinishCall(RawCall<Req, Resp>& call, Metrics* metrics, const char* method,
                absl::Status st) {
  if (st.ok()) st = SerializeResponse(call.resp, call.out);
  Finish(call.reactor, metrics, method, st);
}

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

absl::StatusOr<crypto::SignAlgorithm> AlgFor(SigningCore* core,
                                          const std::string& issuer,
                                          const std::string& alg) {
  if (!alg.empty()) {
    auto parsed = crypto::ParseSignAlgorithm(alg);
    if (!parsed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "alg: must be ES256, ES384, EdDSA, PS256 or RS256, got \"", alg,
          "\""));
    }
    return *parsed;
  }
  auto snap = core->policy();
  auto it = snap->config.issuers.find(issuer);
  if (it == snap->config.issuers.end()) {
    return absl::NotFoundError(
        absl::StrCat("issuer: unknown issuer \"", issuer, "\""));
  }
  return it->second.algorithm;
}

}  // namespace

grpc::ServerUnaryReactor* TokenSignerService::SignToken(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  using Call = RawCall<v1::SignTokenRequest, v1::SignTokenResponse>;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto call = std::make_shared<Call>(reactor, raw_resp);
  call->parsed = ParseRequest(*raw_req, &call->req);
  std::string caller = Caller(ctx, core_);
  absl::Time deadline = Deadline(ctx);
  // The worker mints (or audits the malformed request); the audit writer
  // thread finishes the reactor once the record is durable, so the worker
  // never waits for fdatasync.
  core_->ExpectSigns(+1);
  bool queued = pool_->TrySubmit([this, call, caller, deadline] {
    core_->ExpectSigns(-1);
    SignInto(core_, caller, call->parsed, call->req, deadline, &call->resp,
             [this, call](absl::Status st) {
               FinishCall(*call, metrics_, "SignToken", std::move(st));
             });
  });
  if (!queued) {
    core_->ExpectSigns(-1);
    Finish(reactor, metrics_, "SignToken", Busy(pool_));
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
    FinishCall(*call, metrics_, "SignTokens", std::move(st));
  };
  std::string caller = Caller(ctx, core_);
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
  absl::Time deadline = Deadline(ctx);
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
              FinishCall(*call, metrics_, "SignTokens", absl::OkStatus());
            }
          });
    });
  }
  core_->ExpectSigns(+n);
  if (!pool_->TrySubmitAll(std::move(items))) {
    core_->ExpectSigns(-n);
    Finish(reactor, metrics_, "SignTokens", Busy(pool_));
  }
  return reactor;
}

grpc::ServerUnaryReactor* TokenSignerService::GetJwks(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  // Answered inline (in memory: no pool), so the call lives on the stack.
  RawCall<v1::GetJwksRequest, v1::GetJwksResponse> call(ctx->DefaultReactor(),
                                                        raw_resp);
  absl::Status st = ParseRequest(*raw_req, &call.req);
  if (st.ok()) {
    auto jwks = core_->Jwks(Caller(ctx, core_), call.req.issuer());
    if (jwks.ok()) call.resp.set_jwks_json(*jwks);
    st = jwks.status();
  }
  FinishCall(call, metrics_, "GetJwks", std::move(st));
  return call.reactor;
}

template <typename Req, typename Resp, typename Op>
grpc::ServerUnaryReactor* KeyAdminService::Run(grpc::CallbackServerContext* ctx,
                                               const grpc::ByteBuffer* raw_req,
                                               grpc::ByteBuffer* raw_resp,
                                               const char* method,
                                               bool read_only, Op op) {
  using Call = RawCall<Req, Resp>;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto call = std::make_shared<Call>(reactor, raw_resp);
  call->parsed = ParseRequest(*raw_req, &call->req);
  std::string caller = Caller(ctx, core_);
  bool queued = pool_->TrySubmit([this, call, caller, method, read_only,
                                  op = std::move(op)] {
    const std::string& issuer = call->req.issuer();  // "" if unreadable
    absl::Status st;
    if (!call->parsed.ok()) {
      // Malformed: refused and audited like any other refused call.
      st = call->parsed;
      absl::Status audited = core_->AuditAdmin(caller, method, issuer, "", st);
      if (!audited.ok()) st = std::move(audited);
      FinishCall(*call, metrics_, method, std::move(st));
      return;
    }
    st = core_->AuthorizeAdmin(caller, method, issuer, read_only);
    // A change is on record before it touches the HSM.
    if (st.ok() && !read_only)
      st = core_->AuditAdminIntent(caller, method, issuer,
                                   AdminRequestNote(call->req));
    if (st.ok()) {
      std::string kid;
      st = op(call->req, &call->resp, &kid);
      if (!read_only) {
        // Not recorded -> the caller must learn it (Unavailable names the
        // operation's own outcome).
        absl::Status audited =
            core_->AuditAdmin(caller, method, issuer, kid, st);
        if (!audited.ok()) st = std::move(audited);
      }
    }
    FinishCall(*call, metrics_, method, std::move(st));
  });
  if (!queued) {
    // Refused for load: audited like every other refused KeyAdmin call, and
    // answered once the record is durable (UNAVAILABLE if it cannot be).
    core_->DenyAsync(caller, call->req.issuer(),
                     absl::StrCat("key_admin.", method), Busy(pool_),
                     [this, reactor, method](absl::Status st) {
                       Finish(reactor, metrics_, method, st);
                     });
  }
  return reactor;
}

grpc::ServerUnaryReactor* KeyAdminService::CreateKey(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return Run<v1::CreateKeyRequest, v1::CreateKeyResponse>(
      ctx, raw_req, raw_resp, "CreateKey", false,
      [this](const v1::CreateKeyRequest& req, v1::CreateKeyResponse* resp,
             std::string* kid) {
        auto alg = AlgFor(core_, req.issuer(), req.alg());
        if (!alg.ok()) return alg.status();
        auto key = core_->keys().CreateKey(req.issuer(), *alg);
        if (!key.ok()) return key.status();
        *kid = key->kid;
        ToKeyInfo(*key, resp->mutable_key(), core_->keys().token_label());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* KeyAdminService::ListKeys(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return Run<v1::ListKeysRequest, v1::ListKeysResponse>(
      ctx, raw_req, raw_resp, "ListKeys", true,
      [this](const v1::ListKeysRequest& req, v1::ListKeysResponse* resp,
             std::string*) {
        auto keyset = core_->keys().Keyset(req.issuer());
        if (!keyset.ok()) return keyset.status();
        for (const keyset::KeyRecord& k : keyset->keys)
          ToKeyInfo(k, resp->add_keys(), core_->keys().token_label());
        if (keyset->next_rotation_at != 0) {
          resp->mutable_next_rotation_at()->set_seconds(
              keyset->next_rotation_at);
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* KeyAdminService::RotateKey(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return Run<v1::RotateKeyRequest, v1::RotateKeyResponse>(
      ctx, raw_req, raw_resp, "RotateKey", false,
      [this](const v1::RotateKeyRequest& req, v1::RotateKeyResponse* resp,
             std::string* kid) {
        auto alg = AlgFor(core_, req.issuer(), req.alg());
        if (!alg.ok()) return alg.status();
        const keyset::RotationMode mode =
            req.mode() == v1::EMERGENCY ? keyset::RotationMode::kEmergency
                                        : keyset::RotationMode::kPlanned;
        auto rotation =
            core_->keys().RotateKey(req.issuer(), *alg, mode, req.reason());
        if (!rotation.ok()) return rotation.status();
        *kid = rotation->created.kid;
        const std::string& label = core_->keys().token_label();
        ToKeyInfo(rotation->created, resp->mutable_active(), label);
        if (rotation->previous)
          ToKeyInfo(*rotation->previous, resp->mutable_retired(), label);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* KeyAdminService::ActivateKey(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return Run<v1::ActivateKeyRequest, v1::ActivateKeyResponse>(
      ctx, raw_req, raw_resp, "ActivateKey", false,
      [this](const v1::ActivateKeyRequest& req, v1::ActivateKeyResponse* resp,
             std::string* kid) {
        *kid = req.kid();
        auto key = core_->keys().ActivateKey(req.issuer(), req.kid(),
                                            req.force(), req.reason());
        if (!key.ok()) return key.status();
        ToKeyInfo(*key, resp->mutable_key(), core_->keys().token_label());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* KeyAdminService::RetireKey(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return Run<v1::RetireKeyRequest, v1::RetireKeyResponse>(
      ctx, raw_req, raw_resp, "RetireKey", false,
      [this](const v1::RetireKeyRequest& req, v1::RetireKeyResponse* resp,
             std::string* kid) {
        *kid = req.kid();
        auto key = core_->keys().RetireKey(req.issuer(), req.kid());
        if (!key.ok()) return key.status();
        ToKeyInfo(*key, resp->mutable_key(), core_->keys().token_label());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* KeyAdminService::DestroyKey(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return Run<v1::DestroyKeyRequest, v1::DestroyKeyResponse>(
      ctx, raw_req, raw_resp, "DestroyKey", false,
      [this](const v1::DestroyKeyRequest& req, v1::DestroyKeyResponse* resp,
             std::string* kid) {
        *kid = req.kid();
        auto key = core_->keys().DestroyKey(req.issuer(), req.kid(),
                                            req.force(), req.reason());
        if (!key.ok()) return key.status();
        ToKeyInfo(*key, resp->mutable_key(), core_->keys().token_label());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* KeyAdminService::InspectKeys(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_req,
    grpc::ByteBuffer* raw_resp) {
  return Run<v1::InspectKeysRequest, v1::InspectKeysResponse>(
      ctx, raw_req, raw_resp, "InspectKeys", true,
      [this](const v1::InspectKeysRequest& req, v1::InspectKeysResponse* resp,
             std::string* kid) {
        *kid = req.kid();
        auto keyset = core_->keys().Keyset(req.issuer());
        if (!keyset.ok()) return keyset.status();
        if (!req.kid().empty() && keyset->FindByKid(req.kid()) == nullptr) {
          return absl::NotFoundError(absl::StrCat(
              "kid: issuer \"", req.issuer(), "\" has no key \"", req.kid(),
              "\""));
        }
        for (const keyset::KeyRecord& k : keyset->keys) {
          if (!req.kid().empty() && k.kid != req.kid()) continue;
          v1::InspectedKey* out = resp->add_keys();
          ToKeyInfo(k, out->mutable_key(), core_->keys().token_label());
          auto objects = core_->keys().hsm().InspectKey(k.id);
          if (!objects.ok()) {
            out->set_hsm_error(std::string(objects.status().message()));
            continue;
          }
          for (const hsm::KeyAttributes& a : *objects)
            ToHsmKeyObject(a, out->add_objects());
        }
        return absl::OkStatus();
      });
}

}  // namespace tokensign::service
