#include "signer/audit/anchor_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "signer/token/jws.h"

namespace tokensign::audit {

std::string AnchorRecordName(std::string_view instance) {
  return absl::StrCat("tokensign-audit-anchor:", std::string(instance));
}

std::string ArchivedAnchorRecordName(std::string_view instance,
                                     std::string_view log_id) {
  return absl::StrCat("tokensign-audit-anchor:", std::string(instance), ":",
                      std::string(log_id));
}

std::string ArchivedAnchorIndexName(std::string_view instance) {
  return absl::StrCat("tokensign-audit-archived:", std::string(instance));
}

std::string SerializeAnchor(const Anchor& a) {
  nlohmann::ordered_json j;
  j["version"] = a.version;
  j["instance"] = a.instance;
  j["log_id"] = a.checkpoint.log_id;
  j["seq"] = a.checkpoint.seq;
  j["sha256"] = a.checkpoint.sha256;
  j["covered_seq"] = a.covered_seq;
  j["final"] = a.final;
  j["jws"] = a.jws;
  return j.dump();
}

absl::StatusOr<Anchor> ParseAnchor(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  auto bad = [](std::string_view what) {
    return absl::DataLossError(
        absl::StrCat("audit anchor: ", std::string(what),
                     " missing or of the wrong type"));
  };
  if (!j.is_object()) return bad("object");
  Anchor a;
  auto num = [&](const char* f, int64_t* out) {
    auto it = j.find(f);
    if (it == j.end() || !it->is_number_integer()) return false;
    *out = it->get<int64_t>();
    return true;
  };
  auto str = [&](const char* f, std::string* out) {
    auto it = j.find(f);
    if (it == j.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  if (!num("version", &a.version)) return bad("version");
  if (!str("instance", &a.instance)) return bad("instance");
  if (!str("log_id", &a.checkpoint.log_id)) return bad("log_id");
  if (!num("seq", &a.checkpoint.seq)) return bad("seq");
  if (!str("sha256", &a.checkpoint.sha256)) return bad("sha256");
  if (!num("covered_seq", &a.covered_seq)) return bad("covered_seq");
  if (!j.contains("final") || !j["final"].is_boolean()) return bad("final");
  a.final = j["final"].get<bool>();
  if (!str("jws", &a.jws)) return bad("jws");
  return a;
}

absl::StatusOr<CheckpointPayload> AnchorPayload(const Anchor& anchor) {
  std::string_view jws = anchor.jws;
  size_t a = jws.find('.');
  size_t b = a == std::string_view::npos ? a : jws.find('.', a + 1);
  if (b == std::string_view::npos)
    return absl::DataLossError("audit anchor: jws: not a compact JWS");
  auto bytes = token::Base64UrlDecode(jws.substr(a + 1, b - a - 1),
                                      "audit anchor: jws payload");
  if (!bytes.ok()) return bytes.status();
  return ParseCheckpointPayload(nlohmann::json::parse(*bytes, nullptr, false));
}

absl::StatusOr<std::optional<Anchor>> LoadAnchor(AnchorStore& store,
                                                 std::string_view name) {
  auto copies = store.GetAll(name);
  if (!copies.ok()) return copies.status();
  std::optional<Anchor> best;
  for (const std::string& c : *copies) {
    auto a = ParseAnchor(c);
    if (!a.ok()) {
      return absl::DataLossError(absl::StrCat("record ", std::string(name), ": ",
                                              a.status().message()));
    }
    if (!best || a->version > best->version) best = *std::move(a);
  }
  return best;
}

absl::Status ArchiveAnchor(AnchorStore& store, std::string_view instance,
                           const Anchor& anchor) {
  const std::string& log_id = anchor.checkpoint.log_id;
  auto listed = ArchivedLogIds(store, instance);
  if (!listed.ok()) return listed.status();
  if (!std::binary_search(listed->begin(), listed->end(), log_id)) {
    if (absl::Status s = store.Add(ArchivedAnchorIndexName(instance), log_id);
        !s.ok()) {
      return s;
    }
  }
  return store.Put(ArchivedAnchorRecordName(instance, log_id),
                   SerializeAnchor(anchor));
}

absl::StatusOr<std::vector<std::string>> ArchivedLogIds(
    AnchorStore& store, std::string_view instance) {
  auto ids = store.GetAll(ArchivedAnchorIndexName(instance));
  if (!ids.ok()) return ids.status();
  std::sort(ids->begin(), ids->end());
  ids->erase(std::unique(ids->begin(), ids->end()), ids->end());
  return ids;
}

absl::Status RemoveArchivedAnchor(AnchorStore& store,
                                  std::string_view instance,
                                  std::string_view log_id) {
  const std::string name = ArchivedAnchorRecordName(instance, log_id);
  auto copies = store.GetAll(name);
  if (!copies.ok()) return copies.status();
  for (const std::string& c : *copies) {
    if (absl::Status s = store.Remove(name, c); !s.ok()) return s;
  }
  return store.Remove(ArchivedAnchorIndexName(instance), log_id);
}

absl::Status MemoryAnchorStore::Put(std::string_view name,
                                    std::string_view value) {
  std::lock_guard<std::mutex> lock(mu_);
  ++puts_;
  records_[std::string(name)] = {std::string(value)};
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MemoryAnchorStore::GetAll(
    std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(name);
  if (it == records_.end()) return std::vector<std::string>{};
  return it->second;
}

absl::Status MemoryAnchorStore::Add(std::string_view name,
                                    std::string_view value) {
  AddCopy(name, value);
  return absl::OkStatus();
}

absl::Status MemoryAnchorStore::Remove(std::string_view name,
                                       std::string_view value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(name);
  if (it == records_.end()) return absl::OkStatus();
  std::erase(it->second, std::string(value));
  if (it->second.empty()) records_.erase(it);
  return absl::OkStatus();
}

void MemoryAnchorStore::AddCopy(std::string_view name, std::string_view value) {
  std::lock_guard<std::mutex> lock(mu_);
  records_[std::string(name)].push_back(std::string(value));
}

int64_t MemoryAnchorStore::puts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return puts_;
}

}  // namespace tokensign::audit
