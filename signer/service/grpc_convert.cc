#include "signer/service/grpc_convert.h"

#include <cctype>

#include "absl/strings/str_format.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cmath>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "signer/service/config.h"
#include "signer/service/signing_core.h"

namespace tokensign::service {
namespace {

nlohmann::json ValueToJson(const google::protobuf::Value& v);

nlohmann::json StructToJson(const google::protobuf::Struct& s) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : s.fields()) out[k] = ValueToJson(v);
  return out;
}

nlohmann::json ValueToJson(const google::protobuf::Value& v) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kNullValue:
      return nullptr;
    case google::protobuf::Value::kNumberValue: {
      double d = v.number_value();
      // Range first: casting NaN, +-Inf or |d| >= 2^63 to int64_t is undefined.
      if (std::isfinite(d) && d > -9.0e15 && d < 9.0e15 &&
          d == static_cast<double>(static_cast<int64_t>(d))) {
        return static_cast<int64_t>(d);
      }
      if (!std::isfinite(d)) return nullptr;  // JSON has no NaN/Inf
      return d;
    }
    case google::protobuf::Value::kStringValue:
      return v.string_value();
    case google::protobuf::Value::kBoolValue:
      return v.bool_value();
    case google::protobuf::Value::kStructValue:
      return StructToJson(v.struct_value());
    case google::protobuf::Value::kListValue: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& e : v.list_value().values())
        arr.push_back(ValueToJson(e));
      return arr;
    }
    default:
      return nullptr;
  }
}

// URI SANs and every CN (as UTF-8; "" for one that cannot be converted) of a
// PEM certificate.
void NamesFromPem(const std::string& pem, std::vector<std::string>* uris,
                  std::vector<std::string>* cns) {
  crypto::SslPtr<BIO> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return;
  crypto::SslPtr<X509> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return;
  crypto::SslPtr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
      if (n->type != GEN_URI) continue;
      const ASN1_IA5STRING* s = n->d.uniformResourceIdentifier;
      uris->emplace_back(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          ASN1_STRING_length(s));
    }
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  for (int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
       idx >= 0;
       idx = X509_NAME_get_index_by_NID(subject, NID_commonName, idx)) {
    ASN1_STRING* s =
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, s);
    cns->emplace_back(len >= 0 ? std::string(reinterpret_cast<char*>(utf8), len)
                               : std::string());
    OPENSSL_free(utf8);
  }
}

google::protobuf::Timestamp Seconds(int64_t s) {
  google::protobuf::Timestamp t;
  t.set_seconds(s);
  return t;
}

// A status message travels in a trailer, and gRPC clients refuse metadata
// beyond 8 KiB by default: a longer message (one that quotes a huge request
// value, e.g. a 1 MiB issuer name) turned the answer into the client's own
// RESOURCE_EXHAUSTED "received initial metadata size exceeds limit". Messages
// are cut to kMaxStatusMessageBytes on a UTF-8 boundary, saying so.
std::string BoundedMessage(absl::string_view m) {
  if (m.size() <= kMaxStatusMessageBytes) return std::string(m);
  size_t cut = kMaxStatusMessageBytes;
  while (cut > 0 && (static_cast<unsigned char>(m[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(m.substr(0, cut), "... (message of ", m.size(),
                      " bytes cut)");
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      BoundedMessage(status.message()));
}

std::string IdentityFromCertificate(const std::string& pem) {
  std::vector<std::string> uris;
  std::vector<std::string> cns;
  NamesFromPem(pem, &uris, &cns);
  // A certificate with URI SANs is named by its URI SAN alone: a CN chosen by
  // whoever requested the certificate must never stand in for it. Several URI
  // SANs are ambiguous. Ids with ':' are URIs and ids without are CNs (config
  // enforces the same, CallerIdProblem), so neither kind can pose as the
  // other: a URI SAN without ':' (URI:custodian-1) or a CN with one names
  // nobody, and so does a subject with several CNs.
  if (!uris.empty()) {
    if (uris.size() == 1 && uris[0].find(':') != std::string::npos &&
        CallerIdProblem(uris[0]).empty()) {
      return uris[0];
    }
    return "";
  }
  if (cns.size() == 1 && cns[0].find(':') == std::string::npos &&
      CallerIdProblem(cns[0]).empty()) {
    return cns[0];
  }
  return "";
}

std::string CachedIdentityFromCertificate(const std::string& pem) {
  // A client's connection presents the same certificate on every call; the
  // identity is a pure function of its PEM, so each distinct certificate is
  // parsed once (a PEM decode and X.509 parse cost more than the rest of the
  // request's conversion). Bounded: cleared when full, then refilled.
  constexpr size_t kMaxEntries = 1024;
  static std::mutex mu;
  static auto* cache = new std::unordered_map<std::string, std::string>();
  {
    std::lock_guard lock(mu);
    auto it = cache->find(pem);
    if (it != cache->end()) return it->second;
  }
  std::string id = IdentityFromCertificate(pem);
  std::lock_guard lock(mu);
  if (cache->size() >= kMaxEntries) cache->clear();
  cache->emplace(pem, id);
  return id;
}

std::string CallerIdentity(const grpc::ServerContextBase& ctx, bool dev, bool insecure) {
  if (dev) return "dev";
  if (insecure) return "loopback";
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return "";
  std::vector<grpc::string_ref> pems =
      auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.empty()) return "";
  return CachedIdentityFromCertificate(std::string(pems[0].data(), pems[0].size()));
}

absl::StatusOr<token::TokenRequest> ToTokenRequest(
    const v1::SignTokenRequest& in) {
  token::TokenRequest r;
  switch (in.kind()) {
    case v1::ACCESS_TOKEN:
      r.kind = token::TokenKind::kAccessToken;
      break;
    case v1::TRANSACTION_TOKEN:
      r.kind = token::TokenKind::kTransactionToken;
      break;
    case v1::TOKEN_KIND_UNSPECIFIED:
      return absl::InvalidArgumentError(
          "kind: must be ACCESS_TOKEN or TRANSACTION_TOKEN, got "
          "TOKEN_KIND_UNSPECIFIED");
    default:  // proto3 enums are open: any int32 arrives as itself
      return absl::InvalidArgumentError(absl::StrCat(
          "kind: ", static_cast<int>(in.kind()),
          " is not a TokenKind (allowed: ACCESS_TOKEN, TRANSACTION_TOKEN)"));
  }
  r.subject = in.subject();
  r.client_id = in.client_id();
  r.audience.assign(in.audience().begin(), in.audience().end());
  r.scope.assign(in.scope().begin(), in.scope().end());
  for (const v1::Actor& a : in.actor_chain())
    r.actor_chain.push_back({a.sub(), a.iss()});
  r.ttl_seconds = in.ttl_seconds();
  if (in.has_cnf()) {
    token::Confirmation c;
    if (in.cnf().has_jkt()) {
      c.jkt = in.cnf().jkt();
    } else if (in.cnf().has_x5t_s256()) {
      c.x5t_s256 = in.cnf().x5t_s256();
    } else {
      return absl::InvalidArgumentError("cnf: set jkt or x5t_s256");
    }
    r.cnf = c;
  }
  if (in.has_status()) {
    r.status = token::StatusReference{in.status().uri(), in.status().idx()};
  }
  if (in.has_may_act()) {
    r.may_act = token::Actor{in.may_act().sub(), in.may_act().iss()};
  }
  r.parent_jti = in.parent_jti();
  r.txn = in.txn();
  r.req_wl = in.req_wl();
  if (in.has_rctx()) r.rctx = StructToJson(in.rctx());
  if (in.has_tctx()) r.tctx = StructToJson(in.tctx());
  if (in.has_extra_claims()) r.extra_claims = StructToJson(in.extra_claims());
  return r;
}

void ToResponse(const token::MintedToken& minted, v1::SignTokenResponse* out) {
  out->set_token(minted.token);
  out->set_kid(minted.kid);
  out->set_jti(minted.jti);
  *out->mutable_expires_at() = Seconds(minted.exp);
  if (!minted.txn.empty()) out->set_txn(minted.txn);
}

absl::StatusOr<token::ExchangeRequest> ToExchangeRequest(
    const v1::ExchangeTokenRequest& in) {
  token::ExchangeRequest r;
  switch (in.kind()) {
    case v1::ACCESS_TOKEN:
      r.kind = token::TokenKind::kAccessToken;
      break;
    case v1::TRANSACTION_TOKEN:
      r.kind = token::TokenKind::kTransactionToken;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "kind: ", static_cast<int>(in.kind()),
          " is not ACCESS_TOKEN or TRANSACTION_TOKEN; set the kind wanted"));
  }
  if (in.has_actor()) r.actor = token::Actor{in.actor().sub(), in.actor().iss()};
  if (in.has_may_act()) {
    r.may_act = token::Actor{in.may_act().sub(), in.may_act().iss()};
  }
  r.audience.assign(in.audience().begin(), in.audience().end());
  r.scope.assign(in.scope().begin(), in.scope().end());
  r.ttl_seconds = in.ttl_seconds();
  if (in.has_cnf()) {
    token::Confirmation c;
    if (in.cnf().has_jkt()) {
      c.jkt = in.cnf().jkt();
    } else if (in.cnf().has_x5t_s256()) {
      c.x5t_s256 = in.cnf().x5t_s256();
    } else {
      return absl::InvalidArgumentError("cnf: set jkt or x5t_s256");
    }
    r.cnf = c;
  }
  r.req_wl = in.req_wl();
  if (in.has_rctx()) r.rctx = StructToJson(in.rctx());
  if (in.has_tctx()) r.tctx = StructToJson(in.tctx());
  return r;
}

token::StatusListRequest ToStatusListRequest(
    const v1::SignStatusListRequest& in) {
  token::StatusListRequest r;
  r.uri = in.uri();
  for (const v1::StatusEntry& e : in.entries())
    r.entries.push_back({e.idx(), e.status()});
  r.lifetime_seconds = in.lifetime_seconds();
  r.ttl_seconds = in.ttl_seconds();
  return r;
}

void ToItemError(const absl::Status& status, v1::ItemError* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message(BoundedMessage(status.message()));
  out->set_field(FieldOf(std::string(status.message())));
}

void ToKeyInfo(const keyset::KeyRecord& key, v1::KeyInfo* out,
               std::string_view token_label) {
  out->set_id(key.id);
  out->set_kid(key.kid);
  out->set_alg(std::string(crypto::SignAlgorithmName(key.alg)));
  switch (key.state) {
    case keyset::KeyState::kPending:
      out->set_state(v1::PENDING);
      break;
    case keyset::KeyState::kActive:
      out->set_state(v1::ACTIVE);
      break;
    case keyset::KeyState::kRetired:
      out->set_state(v1::RETIRED);
      break;
    case keyset::KeyState::kWithdrawn:
      out->set_state(v1::WITHDRAWN);
      break;
    case keyset::KeyState::kDestroyed:
      out->set_state(v1::DESTROYED);
      break;
  }
  *out->mutable_created_at() = Seconds(key.created_at);
  *out->mutable_published_at() = Seconds(key.created_at);
  if (key.activated_at != 0)
    *out->mutable_activated_at() = Seconds(key.activated_at);
  if (key.retired_at != 0) *out->mutable_retired_at() = Seconds(key.retired_at);
  if (key.activate_at != 0)
    *out->mutable_activate_at() = Seconds(key.activate_at);
  if (key.state == keyset::KeyState::kRetired && key.expires_at != 0)
    *out->mutable_expires_from_jwks_at() = Seconds(key.expires_at);
  if (key.withdrawn_at != 0)
    *out->mutable_withdrawn_at() = Seconds(key.withdrawn_at);
  if (!token_label.empty()) {
    // RFC 7512: every CKA_ID byte percent-encoded; the label's reserved
    // characters too.
    std::string uri = "pkcs11:token=";
    for (unsigned char c : token_label) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
        uri += static_cast<char>(c);
      else
        absl::StrAppendFormat(&uri, "%%%02X", c);
    }
    uri += ";id=";
    for (size_t i = 0; i + 1 < key.id.size(); i += 2) {
      uri += '%';
      uri += key.id.substr(i, 2);
    }
    uri += ";type=private";
    out->set_pkcs11_uri(uri);
  }
}

void ToHsmKeyObject(const hsm::KeyAttributes& object, v1::HsmKeyObject* out) {
  out->set_id(object.id);
  out->set_label(object.label);
  out->set_key_type(object.key_type);
  out->set_bits(object.bits);
  for (const auto& [name, value] : object.flags) {
    v1::HsmAttribute* a = out->add_attributes();
    a->set_name(name);
    a->set_value(value);
  }
  out->set_refused(object.refused);
}

}  // namespace tokensign::service
