// KeyAdminService (key_admin_service.h): each method parses its request,
// passes KeyAdminGate and runs its key operation on the pool.
#include "signer/service/key_admin_service.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "signer/service/grpc_convert.h"
#include "signer/service/rpc_call.h"

namespace tokensign::service {
namespace {

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

template <typename Req, typename Resp, typename Op>
grpc::ServerUnaryReactor* KeyAdminService::Run(grpc::CallbackServerContext* ctx,
                                               const grpc::ByteBuffer* raw_req,
                                               grpc::ByteBuffer* raw_resp,
                                               const char* method,
                                               bool read_only, Op op) {
  auto call = std::make_shared<RawCall<Req, Resp>>(ctx->DefaultReactor(),
                                                   *raw_req, raw_resp);
  KeyAdminGate::Call gated{CallerOf(ctx, *core_->policy()), method, read_only,
                           call->req.issuer(), call->parsed,
                           KeyAdminGate::RequestNote(call->req)};
  gate_.Submit(
      std::move(gated),
      [call, op = std::move(op)](std::string* kid) mutable {
        return op(call->req, &call->resp, kid);
      },
      [this, call, method](absl::Status st) {
        call->Finish(metrics_, method, std::move(st));
      });
  return call->reactor;
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
