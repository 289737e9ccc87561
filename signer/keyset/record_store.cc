#include "signer/keyset/record_store.h"

#include <openssl/rand.h>

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "signer/keyset/keyset_internal.h"

namespace tokensign::keyset {


std::string RandomWriterId() {
  unsigned char bytes[8] = {};
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // Never expected; a fixed id still works (ties resolve the same way
    // everywhere), it only loses the tie-break's randomness.
    return "ffffffffffffffff";
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

absl::StatusOr<std::vector<KeysetRecord>> RecordStore::ParseAll(
    std::string_view issuer, const std::vector<std::string>& texts) {
  std::string what = absl::StrCat("keyset ", AbslView(issuer));
  std::vector<KeysetRecord> records;
  for (const std::string& text : texts) {
    auto rec = ParseKeysetRecord(text);
    if (!rec.ok()) {
      return absl::DataLossError(absl::StrCat(what, ": ", rec.status().message()));
    }
    if (rec->issuer != issuer) {
      return absl::DataLossError(absl::StrCat(
          what, ": record names issuer \"", rec->issuer, "\""));
    }
    records.push_back(*std::move(rec));
  }
  return records;
}

absl::StatusOr<std::vector<KeysetRecord>> RecordStore::ReadAll(
    std::string_view issuer, std::vector<std::string>* texts) const {
  auto data = hsm_->GetAllData(KeysetObjectName(issuer));
  if (!data.ok()) {
    return Prefix(data.status(), absl::StrCat("keyset ", AbslView(issuer)));
  }
  auto records = ParseAll(issuer, *data);
  if (records.ok() && texts != nullptr) *texts = *std::move(data);
  return records;
}

namespace {

// The current record among the copies (an empty one when there is none).
absl::StatusOr<KeysetRecord> CurrentOf(
    std::string_view issuer,
    const absl::StatusOr<std::vector<KeysetRecord>>& records) {
  if (!records.ok()) return records.status();
  if (const KeysetRecord* current = CurrentRecord(*records)) return *current;
  KeysetRecord empty;
  empty.issuer = std::string(issuer);
  return empty;
}

}  // namespace

absl::StatusOr<KeysetRecord> RecordStore::Read(std::string_view issuer) const {
  return CurrentOf(issuer, ReadAll(issuer, nullptr));
}

absl::StatusOr<std::map<std::string, IssuerRecords>> RecordStore::ReadEvery(
    const std::vector<std::string>& issuers,
    const hsm::DataScan* records) const {
  absl::StatusOr<hsm::DataScan> own;
  const hsm::DataScan* scan = records;
  if (scan == nullptr) {
    own = hsm_->ScanData(KeysetObjectName(""));
    if (!own.ok()) return Prefix(own.status(), "keyset records");
    scan = &*own;
  }
  std::map<std::string, IssuerRecords> out;
  for (const std::string& issuer : issuers) {
    const std::string name = KeysetObjectName(issuer);
    auto values = scan->values.find(name);
    static const std::vector<std::string> kNone;
    out[issuer].current = CurrentOf(
        issuer,
        ParseAll(issuer, values != scan->values.end() ? values->second : kNone));
    if (auto it = scan->public_counts.find(name); it != scan->public_counts.end())
      out[issuer].lookalikes = it->second;
  }
  return out;
}

absl::StatusOr<int> RecordStore::PublicLookalikes(
    std::string_view issuer) const {
  return hsm_->CountPublicData(KeysetObjectName(issuer));
}

absl::StatusOr<WriteResult> RecordStore::Write(const KeysetRecord& base,
                                               KeysetRecord next,
                                               int64_t now) const {
  const std::string name = KeysetObjectName(base.issuer);
  auto before = ReadAll(base.issuer, nullptr);
  if (!before.ok()) return before.status();
  KeysetRecord empty;
  empty.issuer = base.issuer;
  const KeysetRecord* on_token = CurrentRecord(*before);
  if (on_token == nullptr) on_token = &empty;
  // Same generation is not enough: a reader may have adopted a racing
  // writer's copy that lost (and is gone); (generation, writer) names one
  // write.
  if (on_token->generation != base.generation ||
      on_token->writer != base.writer) {
    return WriteResult{false, *on_token};
  }
  const int64_t current_generation = on_token->generation;
  int copies = 0;
  int64_t newest = 0;
  for (const KeysetRecord& r : *before) {
    if (r.generation != current_generation) continue;
    ++copies;
    newest = std::max(newest, r.written_at);
  }
  if (copies > 1 && now - newest < kSettleSeconds) {
    return WriteResult{false, *on_token};
  }
  if (next.generation != base.generation + 1 || next.writer.empty()) {
    return absl::InternalError(
        "RecordStore::Write: next must be of generation base + 1 with a "
        "writer id");
  }
  const std::string mine = SerializeKeysetRecord(next);
  if (absl::Status st = hsm_->AddData(name, mine); !st.ok()) {
    // The token may have made the object although the call failed: take it
    // back so that a write reported as failed never becomes current.
    (void)hsm_->RemoveData(name, mine);
    return Prefix(st, absl::StrCat("keyset ", base.issuer, ": writing record"));
  }
  std::vector<std::string> texts;
  auto all = ReadAll(base.issuer, &texts);
  if (!all.ok()) {
    (void)hsm_->RemoveData(name, mine);  // undecided: take ours back
    return all.status();
  }
  // Ours counts only when no other copy is of our generation or newer: a
  // rival of the same generation either won before us (it saw no rival, so
  // it never removes its record) or is racing us (it sees ours and also
  // gives up). At most one writer of a generation answers "written".
  bool rival = false;
  for (const KeysetRecord& r : *all) {
    if (r.writer != next.writer && r.generation >= next.generation) rival = true;
  }
  if (rival) {
    (void)hsm_->RemoveData(name, mine);  // if this fails, ours is the loser
                                         // readers may still pick: see below
    const KeysetRecord* current = CurrentRecord(*all);
    return WriteResult{false, current != nullptr ? *current : base};
  }
  for (const std::string& text : texts) {
    if (text == mine) continue;
    // Best effort: a copy left behind is never current (older generation or
    // larger writer id) and the next write tries again.
    (void)hsm_->RemoveData(name, text);
  }
  return WriteResult{true, std::move(next)};
}

}  // namespace tokensign::keyset
