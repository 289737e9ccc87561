// Where the latest checkpoint of each audit log is kept outside the log: an
// anchor. The daemon implements AnchorStore on the HSM's private CKO_DATA
// records (signer/service/audit_anchor_store.*); tests use MemoryAnchorStore.
//
// Write order (AuditLog): a checkpoint line is durable in the log first, then
// its anchor is stored; so at start the anchor is the log's last checkpoint,
// or the one before it after a crash between the two writes.
//
// Records, by name:
//   tokensign-audit-anchor:<instance>            the instance's current log
//   tokensign-audit-anchor:<instance>:<log_id>   an old log's last anchor,
//                                                kept for shipped copies
//                                                until a custodian retires it
//   tokensign-audit-archived:<instance>          one copy per archived log,
//                                                its value the log id (the
//                                                list of archived anchors:
//                                                copies are added and removed
//                                                one by one, never rewritten,
//                                                so concurrent writers cannot
//                                                lose each other's entries)
// A record may exist twice after a crash inside Put (create, then destroy
// the old copy); the copy with the highest version wins.
//
// Thread-safety: implementations must be safe for concurrent calls.
#ifndef TOKENSIGN_SIGNER_AUDIT_ANCHOR_STORE_H_
#define TOKENSIGN_SIGNER_AUDIT_ANCHOR_STORE_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "signer/audit/checkpoint.h"

namespace tokensign::audit {

// Named small records (values of a few hundred bytes).
class AnchorStore {
 public:
  virtual ~AnchorStore() = default;
  // Creates or replaces the record `name`.
  virtual absl::Status Put(std::string_view name, std::string_view value) = 0;
  // Every stored copy of `name` (normally zero or one).
  virtual absl::StatusOr<std::vector<std::string>> GetAll(
      std::string_view name) = 0;
  // Adds a copy of `name` beside the existing ones.
  virtual absl::Status Add(std::string_view name, std::string_view value) = 0;
  // Removes the copies of `name` whose value is exactly `value` (none: OK).
  virtual absl::Status Remove(std::string_view name,
                              std::string_view value) = 0;
};

// The HSM's copy of a checkpoint.
struct Anchor {
  int64_t version = 0;   // +1 per store; the highest copy wins
  std::string instance;  // daemon instance name
  CheckpointRef checkpoint;  // the checkpoint line (log id, seq, line hash)
  int64_t covered_seq = 0;   // last line the checkpoint signs
  bool final = false;        // written at clean shutdown
  std::string jws;           // the checkpoint itself
};

std::string AnchorRecordName(std::string_view instance);
std::string ArchivedAnchorRecordName(std::string_view instance,
                                     std::string_view log_id);

std::string ArchivedAnchorIndexName(std::string_view instance);

std::string SerializeAnchor(const Anchor& anchor);
absl::StatusOr<Anchor> ParseAnchor(std::string_view text);
// The checkpoint payload inside anchor.jws, decoded without checking the
// signature (the anchor comes from the HSM's private record).
absl::StatusOr<CheckpointPayload> AnchorPayload(const Anchor& anchor);

// The newest copy of record `name`, nullopt if there is none. A copy that
// does not parse is an error (DataLoss naming the record).
absl::StatusOr<std::optional<Anchor>> LoadAnchor(AnchorStore& store,
                                                 std::string_view name);

// Keeps `anchor` (of an old log of `instance`) as an archived record: its log
// id is listed first, then the record is written, so a crash between the two
// leaves a listed id without a record (ignored by ArchivedLogIds' callers),
// never a record nobody lists.
absl::Status ArchiveAnchor(AnchorStore& store, std::string_view instance,
                           const Anchor& anchor);
// The log ids listed as archived for `instance`, sorted, without duplicates.
absl::StatusOr<std::vector<std::string>> ArchivedLogIds(
    AnchorStore& store, std::string_view instance);
// Removes every copy of the archived record of `log_id`, then its entry in
// the list (a crash between the two leaves a listed id without a record).
// Does not check whether the log is live: callers do.
absl::Status RemoveArchivedAnchor(AnchorStore& store,
                                  std::string_view instance,
                                  std::string_view log_id);

// In memory, for tests and tools. Thread-safe. Counts Puts.
class MemoryAnchorStore final : public AnchorStore {
 public:
  absl::Status Put(std::string_view name, std::string_view value) override;
  absl::StatusOr<std::vector<std::string>> GetAll(
      std::string_view name) override;
  absl::Status Add(std::string_view name, std::string_view value) override;
  absl::Status Remove(std::string_view name, std::string_view value) override;
  // Adds a copy beside the existing ones (as a crash inside Put leaves it).
  void AddCopy(std::string_view name, std::string_view value);
  int64_t puts() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::vector<std::string>, std::less<>> records_;
  int64_t puts_ = 0;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_ANCHOR_STORE_H_
