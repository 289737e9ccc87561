// libFuzzer target: the request path of SignToken / SignTokens up to the
// bytes that get signed: raw request bytes -> ParseRequest / ParseBatch /
// DiagnoseMalformed (signer/service/raw_messages.h) -> ToTokenRequest
// (Struct -> JSON) -> CheckRequest against a permissive issuer policy ->
// ClaimsJson, the claims text Mint signs.
// The first byte picks the mode: 0 mod 3 one SignTokenRequest, 1 a batch,
// 2 DiagnoseMalformed of a SignTokenRequest (the cold path, also for bytes
// that do parse).
// Properties: ParseRequest accepts exactly what protobuf accepts, less enum
// values the enum does not define (proto3 enums are open); a request
// the policy accepts yields claims that are one valid
// JSON object carrying the request's sub; DiagnoseMalformed never answers OK
// with a message-less status for bytes protobuf refuses.
#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"
#include "signer/service/grpc_convert.h"
#include "signer/service/raw_messages.h"
#include "signer/token/minter.h"
#include "signer/token/policy.h"

namespace {

using namespace tokensign;  // NOLINT(build/namespaces): a fuzz harness

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "sign_request_fuzzer: property violated: %s\n", what);
    std::abort();
  }
}

const token::IssuerPolicy& Policy() {
  static const token::IssuerPolicy* policy = [] {
    auto* p = new token::IssuerPolicy;
    p->iss = "https://issuer.example";
    p->allowed_audiences = {"https://api.example", "aud"};
    p->allowed_scopes = {"read", "write"};
    p->any_actor = true;
    p->max_chain_depth = 16;
    p->any_extra_claims = true;
    p->status_lists = {{"https://issuer.example/status/1", 1000, 2}};
    return p;
  }();
  return *policy;
}

void Process(const v1::SignTokenRequest& in) {
  absl::StatusOr<token::TokenRequest> req = service::ToTokenRequest(in);
  if (!req.ok()) return;
  if (!token::CheckRequest(Policy(), *req).ok()) return;
  const int64_t iat = 1700000000;
  const int64_t exp = iat + token::EffectiveTtl(Policy(), *req);
  absl::StatusOr<std::string> claims =
      token::ClaimsJson(Policy(), *req, iat, exp, "jti-fuzz");
  if (!claims.ok()) return;
  nlohmann::json parsed = nlohmann::json::parse(*claims, nullptr, false);
  Check(!parsed.is_discarded() && parsed.is_object(), "claims are one JSON object");
  Check(parsed.value("iss", "") == Policy().iss, "claims carry the issuer's iss");
  Check(parsed.value("sub", "") == req->subject, "claims carry the request's sub");
}

}  // namespace

// protobuf logs every refused string field; quiet, fuzzing is ~2x faster.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

// proto3 enums are open: protobuf keeps any int32 in an enum field, and
// ParseRequest refuses a value the field's enum does not define (top-level
// singular enum fields: the requests have no others).
static bool TopLevelEnumsDefined(const google::protobuf::Message& m) {
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->type() != google::protobuf::FieldDescriptor::TYPE_ENUM ||
        f->is_repeated())
      continue;
    if (f->enum_type()->FindValueByNumber(
            m.GetReflection()->GetEnumValue(m, f)) == nullptr)
      return false;
  }
  return true;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  grpc::Slice slice(bytes.data(), bytes.size());
  grpc::ByteBuffer raw(&slice, 1);
  switch (data[0] % 3) {
    case 0: {
      v1::SignTokenRequest req;
      const bool ok = service::ParseRequest(raw, &req).ok();
      v1::SignTokenRequest check;
      const bool parses =
          check.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      Check(ok == (parses && TopLevelEnumsDefined(check)),
            "ParseRequest accepts exactly what protobuf's parser accepts, "
            "less enum values the enum does not define");
      if (ok) Process(req);
      break;
    }
    case 1: {
      v1::SignTokensRequest batch;
      std::vector<absl::Status> item_status;
      if (!service::ParseBatch(raw, &batch, &item_status).ok()) break;
      Check(item_status.size() == static_cast<size_t>(batch.requests_size()),
            "one status per batch item");
      for (int i = 0; i < batch.requests_size() && i < 8; ++i) {
        if (item_status[i].ok()) Process(batch.requests(i));
      }
      break;
    }
    default: {
      v1::SignTokenRequest req;
      absl::Status s = service::DiagnoseMalformed(bytes, &req);
      v1::SignTokenRequest check;
      if (!check.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        Check(!s.ok() && !s.message().empty(),
              "bytes protobuf refuses are diagnosed with a message");
      }
      break;
    }
  }
  return 0;
}
