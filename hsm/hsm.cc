#include "hsm/hsm.h"

#include "absl/strings/ascii.h"
#include "crypto/algorithm.h"
#include "crypto/spki.h"
#include "crypto/ssl_ptr.h"
#include "crypto/str_cat.h"
#include "hsm/hsm_impl.h"
#include "hsm/pin.h"
#include "hsm/public_key.h"

namespace tokensign::hsm {

// ---- HsmImpl ----

absl::StatusOr<std::unique_ptr<HsmImpl>> HsmImpl::Open(
    const HsmConfig& config) {
  if (config.token_label.empty() == config.token_serial.empty()) {
    return absl::InvalidArgumentError(
        "HsmConfig.token_label/token_serial: exactly one must be set");
  }
  if (config.pool_size < 0) {
    return absl::InvalidArgumentError("HsmConfig.pool_size: must be >= 0");
  }
  absl::StatusOr<std::string> pin = ReadPin(config);
  if (!pin.ok()) return pin.status();
  std::unique_ptr<HsmImpl> impl(new HsmImpl());
  absl::StatusOr<std::unique_ptr<Module>> module =
      Module::Load(config.module_path);
  if (!module.ok()) return module.status();
  impl->module_ = std::move(*module);
  SessionPool::Options options;
  options.token_label = config.token_label;
  options.token_serial = config.token_serial;
  options.pin = std::move(*pin);
  options.size = config.pool_size;
  absl::StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Create(impl->module_.get(), std::move(options));
  if (!pool.ok()) return pool.status();
  impl->pool_ = std::move(*pool);
  absl::StatusOr<std::vector<CK_MECHANISM_TYPE>> mechs =
      impl->module_->Mechanisms(impl->pool_->slot());
  if (!mechs.ok()) return mechs.status();
  impl->mechanisms_ = Mechanisms::From(*mechs);
  absl::StatusOr<CK_TOKEN_INFO> info =
      impl->module_->TokenInfo(impl->pool_->slot());
  if (!info.ok()) return info.status();
  impl->token_label_ = TrimPadded(info->label, sizeof(info->label));
  impl->recovery_ = std::make_unique<Recovery>(impl->pool_.get());
  impl->keys_ =
      std::make_unique<KeyStore>(impl->pool_.get(), &impl->object_writes_);
  impl->data_ =
      std::make_unique<DataStore>(impl->pool_.get(), &impl->object_writes_);
  return impl;
}

HsmImpl::~HsmImpl() {
  data_.reset();
  keys_.reset();
  pool_.reset();
  module_.reset();
}

absl::StatusOr<std::string> HsmImpl::Sign(std::string_view id_hex,
                                          crypto::SignAlgorithm alg,
                                          std::string_view data, bool digest) {
  Recovery::Policy policy = keys_->KeyPolicy("Sign", id_hex);
  return recovery_->Run(
      policy,
      [&](SessionPool::Lease& lease,
          uint64_t epoch) -> absl::StatusOr<std::string> {
        absl::StatusOr<KeyHandles> key = keys_->Resolve(lease, epoch, id_hex);
        if (absl::IsNotFound(key.status())) {
          // A key the caller was told to use is gone from the token
          // (destroyed outside tokensign, or by another replica): a
          // precondition, not a lookup miss.
          return absl::FailedPreconditionError(
              Cat("Sign: ", key.status().message(),
                  " (the key was removed from the HSM)"));
        }
        if (!key.ok()) return key.status();
        SignInput input;
        absl::Status prepared =
            digest ? PrepareDigest(mechanisms_, *key, alg, data, input)
                   : PrepareMessage(mechanisms_, *key, alg, data, input);
        if (!prepared.ok()) return prepared;
        return SignOnce(pool_->p11(), lease.session(), *key, input);
      });
}

// ---- Hsm ----

absl::StatusOr<std::unique_ptr<Hsm>> Hsm::Open(const HsmConfig& config) {
  absl::StatusOr<std::unique_ptr<HsmImpl>> impl = HsmImpl::Open(config);
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<Hsm>(new Hsm(std::move(*impl)));
}

Hsm::Hsm(std::unique_ptr<HsmImpl> impl) : impl_(std::move(impl)) {}
Hsm::~Hsm() = default;

absl::StatusOr<KeyInfo> Hsm::GenerateKey(crypto::KeyType type, std::string_view label,
                                         int rsa_bits) {
  return impl_->keys().Generate(type, label, rsa_bits);
}

absl::StatusOr<KeyInfo> Hsm::FindKey(std::string_view id_hex) {
  return impl_->keys().Find(id_hex);
}

absl::StatusOr<KeyScan> Hsm::ScanKeys(bool with_public_keys) {
  return impl_->keys().Scan(with_public_keys);
}

absl::StatusOr<KeyInfo> Hsm::ResolveKey(std::string_view id_hex) {
  absl::StatusOr<KeyHandles> handles = impl_->keys().Resolve(id_hex);
  if (!handles.ok()) return handles.status();
  return KeyInfo{AsciiLower(id_hex), "", handles->type, handles->bits, ""};
}

absl::StatusOr<std::vector<KeyInfo>> Hsm::ListKeys() {
  return impl_->keys().List();
}

absl::Status Hsm::DestroyKey(std::string_view id_hex) {
  return impl_->keys().Destroy(id_hex);
}

absl::StatusOr<std::vector<KeyAttributes>> Hsm::InspectKey(
    std::string_view id_hex) {
  return impl_->keys().Inspect(id_hex);
}

absl::Status Hsm::PinPublicKey(std::string_view id_hex,
                               std::string_view spki_der) {
  absl::StatusOr<crypto::UniquePkey> key = crypto::ParseSpki(spki_der);
  if (!key.ok()) return key.status();
  impl_->keys().PinPublicKey(
      id_hex, std::shared_ptr<EVP_PKEY>(key->release(), EVP_PKEY_free));
  return absl::OkStatus();
}

absl::Status Hsm::PinPublicKey(std::string_view id_hex,
                               std::shared_ptr<EVP_PKEY> key) {
  if (key == nullptr) {
    return absl::InvalidArgumentError("PinPublicKey: no public key");
  }
  impl_->keys().PinPublicKey(id_hex, std::move(key));
  return absl::OkStatus();
}

absl::StatusOr<crypto::UniquePkey> Hsm::PublicKey(std::string_view id_hex) {
  // The pinned key itself, one more reference (not parsed again).
  if (std::shared_ptr<EVP_PKEY> pinned = impl_->keys().PinnedPublicKey(id_hex)) {
    if (EVP_PKEY_up_ref(pinned.get()) != 1)
      return absl::InternalError("PublicKey: EVP_PKEY_up_ref failed");
    return crypto::UniquePkey(pinned.get());
  }
  KeyStore& keys = impl_->keys();
  return impl_->recovery().Run(
      keys.KeyPolicy("PublicKey", id_hex),
      [&](SessionPool::Lease& lease,
          uint64_t epoch) -> absl::StatusOr<crypto::UniquePkey> {
        absl::StatusOr<KeyHandles> key = keys.Resolve(lease, epoch, id_hex);
        if (!key.ok()) return key.status();
        CK_OBJECT_HANDLE public_key = key->public_key;
        if (public_key == CK_INVALID_HANDLE) {  // a scan without public keys
          absl::StatusOr<CK_OBJECT_HANDLE> found =
              keys.FindPublicObject(lease, id_hex);
          if (!found.ok()) return found.status();
          public_key = *found;
        }
        return ExportPublicKey(impl_->pool().p11(), lease.session(),
                               public_key, key->type);
      });
}

absl::StatusOr<std::string> Hsm::Sign(std::string_view id_hex,
                                      crypto::SignAlgorithm alg,
                                      std::string_view message) {
  return impl_->Sign(id_hex, alg, message, /*digest=*/false);
}

absl::StatusOr<std::string> Hsm::SignDigest(std::string_view id_hex,
                                            crypto::SignAlgorithm alg,
                                            std::string_view digest) {
  return impl_->Sign(id_hex, alg, digest, /*digest=*/true);
}

absl::Status Hsm::PutData(std::string_view name, std::string_view value) {
  return impl_->data().Put(name, value);
}

absl::StatusOr<std::optional<std::string>> Hsm::GetData(std::string_view name) {
  return impl_->data().Get(name);
}

absl::StatusOr<std::vector<std::string>> Hsm::GetAllData(std::string_view name) {
  return impl_->data().GetAll(name);
}

absl::Status Hsm::AddData(std::string_view name, std::string_view value) {
  return impl_->data().Add(name, value);
}

absl::Status Hsm::RemoveData(std::string_view name, std::string_view value) {
  return impl_->data().Remove(name, value);
}

absl::StatusOr<int> Hsm::CountPublicData(std::string_view name) {
  return impl_->data().CountPublic(name);
}

absl::StatusOr<DataScan> Hsm::ScanData(std::string_view prefix) {
  return impl_->data().Scan(prefix);
}

void Hsm::SetErrorObserver(HsmErrorObserver observer) {
  impl_->module().errors().Set(std::move(observer));
}

// Answers from the pool's state: no PKCS#11 call, never blocks (/readyz runs
// on the HTTP io thread). Recovery is driven by the next Acquire.
bool Hsm::Healthy() { return impl_->pool().Healthy(); }

const std::string& Hsm::token_label() const { return impl_->token_label(); }

int Hsm::pool_size() const { return impl_->pool().size(); }

const std::string& Hsm::pool_note() const {
  return impl_->pool().size_note();
}

}  // namespace tokensign::hsm
