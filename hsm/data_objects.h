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
//
// Put without a search: an object search is linear in the token's objects on
// SoftHSM (~0.15 s of CPU at 3,000 objects), and the daemon Puts its audit
// anchor at every checkpoint. So Put remembers the handle it created (with
// the pool's module epoch); the next Put of that name in this process reads
// that object's attributes back (class CKO_DATA, CKA_TOKEN and CKA_PRIVATE
// true, our CKA_APPLICATION, CKA_LABEL = name) and, when they still match,
// destroys it by handle after creating the new copy: a handle the module
// reused for another object is never destroyed. It searches for every copy,
// as the first Put of a name does, when there is no remembered handle (first
// Put, after an Add or Remove of that name, after a failed Put: the entry is
// dropped before C_CreateObject, so a retry after a lost reply searches and
// leaves no extra copy), after a module re-initialization (epoch), or when
// the remembered object is gone or no longer that record. The one case the
// remembered handle does not cover: a copy of the name that ANOTHER process
// added since this process's last Put of it survives that Put (readers take
// the highest version, as after a crash inside Put). Each name Put repeatedly
// has one writing process (the daemon instance's audit anchor).
// Thread-safety: thread-safe; writes are serialized by an internal mutex
// (shared with KeyStore), which also guards the remembered handles.
#ifndef TOKENSIGN_HSM_DATA_OBJECTS_H_
#define TOKENSIGN_HSM_DATA_OBJECTS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hsm/hsm_types.h"
#include "hsm/pkcs11.h"
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

  // Tests only: the handle Put remembers for `name` (CK_INVALID_HANDLE when
  // none), and replacing it in the current epoch (as if the module had
  // renumbered the object: a handle of something else).
  CK_OBJECT_HANDLE RememberedForTesting(std::string_view name);
  void RememberForTesting(std::string_view name, CK_OBJECT_HANDLE handle);

 private:
  // The copy of a record this process's last Put created.
  struct Remembered {
    uint64_t epoch = 0;  // pool epoch the handle belongs to
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  };

  absl::Status Create(std::string_view name, std::string_view value,
                      bool replace);
  // `remembered`: taken (reset) by the first run; a retry searches.
  absl::Status CreateOn(SessionPool::Lease& lease, uint64_t epoch,
                        std::string_view name, std::string_view value,
                        bool replace, std::optional<Remembered>* remembered);
  // Drops and returns the entry of `name`. Caller holds *put_mu_.
  std::optional<Remembered> TakeRemembered(std::string_view name);
  static Recovery::Policy Policy(std::string_view op, std::string_view name);
  SessionPool* pool_;
  Recovery recovery_;
  std::mutex* put_mu_;
  // name -> the copy its last Put created; guarded by *put_mu_.
  std::map<std::string, Remembered, std::less<>> remembered_;
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_DATA_OBJECTS_H_
