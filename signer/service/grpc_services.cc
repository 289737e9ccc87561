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

namespace tokensign::service {
namespace {

constexpr int64_t kDestroySkewSeconds = 300;

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

// Converts and signs `req`; `done` gets the outcome once the decision's audit
// record is durable (see SigningCore::SignAsync), with `resp` filled on OK.
// `done` runs on the audit writer thread or inline: it must be quick.
void SignInto(SigningCore* core, const std::string& caller,
              const v1::SignTokenRequest& req, absl::Time deadline,
              v1::SignTokenResponse* resp,
              absl::AnyInvocable<void(absl::Status) &&> done) {
  auto treq = ToTokenRequest(req);
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

absl::StatusOr<hsm::SignAlgorithm> AlgFor(SigningCore* core,
                                          const std::string& issuer,
                                          const std::string& alg) {
  if (!alg.empty()) {
    auto parsed = hsm::ParseSignAlgorithm(alg);
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
    grpc::CallbackServerContext* ctx, const v1::SignTokenRequest* req,
    v1::SignTokenResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::string caller = Caller(ctx, core_);
  absl::Time deadline = Deadline(ctx);
  // The worker mints; the audit writer thread finishes the reactor once the
  // record is durable, so the worker never waits for fdatasync.
  core_->ExpectSigns(+1);
  bool queued = pool_->TrySubmit([this, reactor, req, resp, caller, deadline] {
    core_->ExpectSigns(-1);
    SignInto(core_, caller, *req, deadline, resp,
             [this, reactor](absl::Status st) {
               Finish(reactor, metrics_, "SignToken", st);
             });
  });
  if (!queued) {
    core_->ExpectSigns(-1);
    Finish(reactor, metrics_, "SignToken", Busy(pool_));
  }
  return reactor;
}

grpc::ServerUnaryReactor* TokenSignerService::SignTokens(
    grpc::CallbackServerContext* ctx, const v1::SignTokensRequest* req,
    v1::SignTokensResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const int n = req->requests_size();
  if (n == 0) {
    Finish(reactor, metrics_, "SignTokens", absl::OkStatus());
    return reactor;
  }
  std::string caller = Caller(ctx, core_);
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
    core_->DenyAsync(caller, "", "batch", std::move(refuse),
                     [this, reactor](absl::Status st) {
                       Finish(reactor, metrics_, "SignTokens", st);
                     });
    return reactor;
  }
  // Results exist before any item runs: item i writes only results(i).
  for (int i = 0; i < n; ++i) resp->add_results();
  // One pool task per item; the reactor finishes when the last item's outcome
  // (its audit record durable, or its error) is in.
  auto remaining = std::make_shared<std::atomic<int>>(n);
  std::vector<std::function<void()>> items;
  items.reserve(n);
  for (int i = 0; i < n; ++i) {
    items.emplace_back([this, reactor, req, resp, caller, deadline, remaining,
                        i] {
      core_->ExpectSigns(-1);
      v1::SignTokenResult* result = resp->mutable_results(i);
      SignInto(core_, caller, req->requests(i), deadline,
               result->mutable_response(),
               [this, reactor, result, remaining](absl::Status st) {
                 if (!st.ok()) ToItemError(st, result->mutable_error());
                 if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1)
                   Finish(reactor, metrics_, "SignTokens", absl::OkStatus());
               });
    });
  }
  core_->ExpectSigns(+n);
  if (!pool_->TrySubmitAll(std::move(items))) {
    core_->ExpectSigns(-n);
    resp->clear_results();
    Finish(reactor, metrics_, "SignTokens", Busy(pool_));
  }
  return reactor;
}

grpc::ServerUnaryReactor* TokenSignerService::GetJwks(
    grpc::CallbackServerContext* ctx, const v1::GetJwksRequest* req,
    v1::GetJwksResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto jwks =
      core_->Jwks(Caller(ctx, core_), req->issuer());  // in memory: no pool
  if (jwks.ok()) resp->set_jwks_json(*jwks);
  Finish(reactor, metrics_, "GetJwks", jwks.status());
  return reactor;
}

grpc::ServerUnaryReactor* KeyAdminService::Run(
    grpc::CallbackServerContext* ctx, const char* method,
    const std::string& issuer, bool read_only,
    std::function<absl::Status(std::string* kid)> op) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::string caller = Caller(ctx, core_);
  bool queued = pool_->TrySubmit([=, this, op = std::move(op)] {
    absl::Status st = core_->AuthorizeAdmin(caller, method, issuer, read_only);
    // A change is on record before it touches the HSM.
    if (st.ok() && !read_only) st = core_->AuditAdminIntent(caller, method, issuer);
    if (st.ok()) {
      std::string kid;
      st = op(&kid);
      if (!read_only) {
        // Not recorded -> the caller must learn it (Unavailable names the
        // operation's own outcome).
        absl::Status audited = core_->AuditAdmin(caller, method, issuer, kid, st);
        if (!audited.ok()) st = std::move(audited);
      }
    }
    Finish(reactor, metrics_, method, st);
  });
  if (!queued) Finish(reactor, metrics_, method, Busy(pool_));
  return reactor;
}

grpc::ServerUnaryReactor* KeyAdminService::CreateKey(
    grpc::CallbackServerContext* ctx, const v1::CreateKeyRequest* req,
    v1::CreateKeyResponse* resp) {
  return Run(ctx, "CreateKey", req->issuer(), false,
             [this, req, resp](std::string* kid) {
               auto alg = AlgFor(core_, req->issuer(), req->alg());
               if (!alg.ok()) return alg.status();
               auto key = core_->keys().CreateKey(req->issuer(), *alg);
               if (!key.ok()) return key.status();
               *kid = key->kid;
               ToKeyInfo(*key, resp->mutable_key());
               return absl::OkStatus();
             });
}

grpc::ServerUnaryReactor* KeyAdminService::ListKeys(
    grpc::CallbackServerContext* ctx, const v1::ListKeysRequest* req,
    v1::ListKeysResponse* resp) {
  return Run(ctx, "ListKeys", req->issuer(), true,
             [this, req, resp](std::string*) {
               auto keyset = core_->keys().Keyset(req->issuer());
               if (!keyset.ok()) return keyset.status();
               for (const keyset::KeyRecord& k : keyset->keys)
                 ToKeyInfo(k, resp->add_keys());
               return absl::OkStatus();
             });
}

grpc::ServerUnaryReactor* KeyAdminService::RotateKey(
    grpc::CallbackServerContext* ctx, const v1::RotateKeyRequest* req,
    v1::RotateKeyResponse* resp) {
  return Run(ctx, "RotateKey", req->issuer(), false,
             [this, req, resp](std::string* kid) {
               auto alg = AlgFor(core_, req->issuer(), req->alg());
               if (!alg.ok()) return alg.status();
               auto rotation = core_->keys().RotateKey(req->issuer(), *alg);
               if (!rotation.ok()) return rotation.status();
               *kid = rotation->active.kid;
               ToKeyInfo(rotation->active, resp->mutable_active());
               if (rotation->retired)
                 ToKeyInfo(*rotation->retired, resp->mutable_retired());
               return absl::OkStatus();
             });
}

grpc::ServerUnaryReactor* KeyAdminService::ActivateKey(
    grpc::CallbackServerContext* ctx, const v1::ActivateKeyRequest* req,
    v1::ActivateKeyResponse* resp) {
  return Run(ctx, "ActivateKey", req->issuer(), false,
             [this, req, resp](std::string* kid) {
               *kid = req->kid();
               auto key = core_->keys().ActivateKey(req->issuer(), req->kid());
               if (!key.ok()) return key.status();
               ToKeyInfo(*key, resp->mutable_key());
               return absl::OkStatus();
             });
}

grpc::ServerUnaryReactor* KeyAdminService::RetireKey(
    grpc::CallbackServerContext* ctx, const v1::RetireKeyRequest* req,
    v1::RetireKeyResponse* resp) {
  return Run(ctx, "RetireKey", req->issuer(), false,
             [this, req, resp](std::string* kid) {
               *kid = req->kid();
               auto key = core_->keys().RetireKey(req->issuer(), req->kid());
               if (!key.ok()) return key.status();
               ToKeyInfo(*key, resp->mutable_key());
               return absl::OkStatus();
             });
}

grpc::ServerUnaryReactor* KeyAdminService::DestroyKey(
    grpc::CallbackServerContext* ctx, const v1::DestroyKeyRequest* req,
    v1::DestroyKeyResponse* resp) {
  return Run(ctx, "DestroyKey", req->issuer(), false,
             [this, req, resp](std::string* kid) {
               *kid = req->kid();
               auto snap = core_->policy();
               auto it = snap->config.issuers.find(req->issuer());
               if (it == snap->config.issuers.end()) {
                 return absl::NotFoundError("issuer: unknown issuer \"" +
                                            req->issuer() + "\"");
               }
               const token::IssuerPolicy& p = it->second.policy;
               absl::Duration live = absl::Seconds(
                   std::max(p.max_ttl_access, p.max_ttl_transaction) +
                   kDestroySkewSeconds);
               auto key = core_->keys().DestroyKey(req->issuer(), req->kid(),
                                                   req->force(), live);
               if (!key.ok()) return key.status();
               ToKeyInfo(*key, resp->mutable_key());
               return absl::OkStatus();
             });
}

}  // namespace tokensign::service
