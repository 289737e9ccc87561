// RecordStore: the keyset records of issuers as private CKO_DATA objects on
// the HSM ("keyset/<issuer>"), with a write that behaves like a
// compare-and-swap although PKCS#11 has none.
//
// Contract: Read returns the current record (CurrentRecord: highest
// generation, then smallest writer id; an empty record of generation 0 when
// there is none). Only private token objects are read (hsm::DataStore); public
// look-alikes are counted by PublicLookalikes and never parsed. Write(base,
// next) writes `next` (which the caller gives generation base.generation + 1
// and a fresh RandomWriterId) only if the token's current record is still of
// base's generation:
//   1. read the current record; another write than base (generation and
//      writer id) -> not written; two copies
//      of the current generation written less than kSettleSeconds ago -> not
//      written (a racing writer has not removed its losing copy yet: building
//      on the wrong one would drop the winner's change);
//   2. add the new record beside the old ones (never overwrite);
//   3. read every copy back; if any other copy is of our generation or newer,
//      remove ours -> not written (Aborted for the caller: retry);
//   4. otherwise remove every older copy -> written.
// At most one writer of a generation is told "written": one that saw no rival
// in step 3 keeps its record, so every later writer of that generation sees
// it in its own step 3 and gives up. Two writers that overlap may both give
// up (both retry). Readers that meet two copies of one generation (between a
// loser's step 2 and its removal, or after a crash there) pick the smaller
// writer id, the same everywhere, instead of failing.
//
// Thread-safety: thread-safe (the HSM facade is); concurrent Writes for one
// issuer from one process should be serialized by the caller.
#ifndef TOKENSIGN_SIGNER_KEYSET_RECORD_STORE_H_
#define TOKENSIGN_SIGNER_KEYSET_RECORD_STORE_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "hsm/hsm.h"
#include "signer/keyset/keyset_record.h"

namespace tokensign::keyset {

struct WriteResult {
  bool written = false;
  KeysetRecord current;  // the record now current on the token
};

inline constexpr int64_t kSettleSeconds = 60;

// What the token holds for one issuer: its current record (an empty record
// of generation 0 when there is none; DataLoss when a private copy cannot be
// parsed or names another issuer) and its public look-alikes (never parsed).
struct IssuerRecords {
  absl::StatusOr<KeysetRecord> current;
  int lookalikes = 0;
};

class RecordStore {
 public:
  explicit RecordStore(std::shared_ptr<hsm::Hsm> hsm) : hsm_(std::move(hsm)) {}

  // DataLoss when a private record cannot be parsed or names another issuer.
  absl::StatusOr<KeysetRecord> Read(std::string_view issuer) const;
  absl::StatusOr<int> PublicLookalikes(std::string_view issuer) const;
  // Read and PublicLookalikes for every issuer listed, in one object search
  // of the token (reading N issuers one by one is N searches, each linear in
  // the token's objects). Fails only when the token cannot be searched.
  // `records`: a Hsm::ScanData the caller took just before with a prefix the
  // keyset record names start with (e.g. "", shared with the audit key's
  // record at start): read from it instead of searching again.
  absl::StatusOr<std::map<std::string, IssuerRecords>> ReadEvery(
      const std::vector<std::string>& issuers,
      const hsm::DataScan* records = nullptr) const;
  // `now`: unix seconds (for the settle rule of step 1).
  absl::StatusOr<WriteResult> Write(const KeysetRecord& base, KeysetRecord next,
                                    int64_t now) const;

 private:
  absl::StatusOr<std::vector<KeysetRecord>> ReadAll(
      std::string_view issuer, std::vector<std::string>* texts) const;
  // The copies' texts of one issuer's record, parsed and checked.
  static absl::StatusOr<std::vector<KeysetRecord>> ParseAll(
      std::string_view issuer, const std::vector<std::string>& texts);
  std::shared_ptr<hsm::Hsm> hsm_;
};

// 16 random lowercase hex digits.
std::string RandomWriterId();

}  // namespace tokensign::keyset

#endif  // TOKENSIGN_SIGNER_KEYSET_RECORD_STORE_H_
