// Small named records on the token: CKO_DATA objects with CKA_APPLICATION
// "tokensign", CKA_LABEL = name, CKA_VALUE = bytes, CKA_TOKEN and CKA_PRIVATE
// true.
//
// Trust: only private token objects are records. Anyone who can open a
// read/write session may create *public* objects without the PIN, so searches
// ask for CKA_PRIVATE = CKA_TOKEN = true and every match is read back and
// checked before its value is returned; a public look-alike of a record is
// never returned (CountPublic tells how many there are, for reporting).
//
// Writes: Put creates the new object, then destroys older ones of that name;
// Add only creates (the caller decides which copy wins and removes the others
// with Remove). Handles say nothing about age (a module may renumber objects
// when it reloads them), so a caller that must tell old from new keeps a
// version inside the value and reads every copy with GetAll; Get returns one
// of them. Every operation runs through the recovery engine (hsm/recovery.h):
// a lost session is re-established and the operation repeated.
// Thread-safety: thread-safe; writes are serialized by an internal mutex.
#ifndef TOKENSIGN_HSM_DATA_OBJECTS_H_
#define TOKENSIGN_HSM_DATA_OBJECTS_H_

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hsm/hsm_types.h"
#include "hsm/recovery.h"
#include "hsm/session_pool.h"

namespace tokensign::hsm {

class DataStore {
 public:
  // `object_writes`: shared with KeyStore (every object creation and
  // destruction on the token is serialized; SoftHSM 2.6.1 races there).
  DataStore(SessionPool* pool, std::mutex* object_writes)
      : pool_(pool), recovery_(pool), put_mu_(object_writes) {}
  absl::Status Put(std::string_view name, std::string_view value);
  absl::Status Add(std::string_view name, std::string_view value);
  // Destroys the records of that name whose value is exactly `value`; OK when
  // there is none.
  absl::Status Remove(std::string_view name, std::string_view value);
  absl::StatusOr<std::optional<std::string>> Get(std::string_view name);
  // Every private record of that name (normally zero or one).
  absl::StatusOr<std::vector<std::string>> GetAll(std::string_view name);
  // Public (CKA_PRIVATE false) look-alikes of the record: planted without the
  // PIN, never trusted.
  absl::StatusOr<int> CountPublic(std::string_view name);
  // Every record whose name starts with `prefix`, in ONE object search (a
  // search per name is linear in the token's objects, so reading N records
  // one by one is quadratic): the private records' values by name, and how
  // many public look-alikes each name has.
  absl::StatusOr<DataScan> Scan(std::string_view prefix);

 private:
  absl::Status Create(std::string_view name, std::string_view value,
                      bool replace);
  absl::Status CreateOn(SessionPool::Lease& lease, std::string_view name,
                        std::string_view value, bool replace);
  static Recovery::Policy Policy(std::string_view op, std::string_view name);
  SessionPool* pool_;
  Recovery recovery_;
  std::mutex* put_mu_;
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_DATA_OBJECTS_H_
