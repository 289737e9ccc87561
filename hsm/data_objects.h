// Small named records on the token: CKO_DATA objects with CKA_APPLICATION
// "tokensign", CKA_LABEL = name, CKA_VALUE = bytes, CKA_TOKEN and CKA_PRIVATE
// true. Put creates the new object, then destroys older ones of that name; if a
// crash leaves two, the next Put removes the rest. Handles say nothing about
// age (a module may renumber objects when it reloads them), so a caller that
// must tell old from new keeps a version inside the value and reads every
// copy with GetAll; Get returns one of them. Thread-safety: thread-safe; Put
// is serialized by an internal mutex.
#ifndef TOKENSIGN_HSM_DATA_OBJECTS_H_
#define TOKENSIGN_HSM_DATA_OBJECTS_H_

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hsm/session_pool.h"

namespace tokensign::hsm {

class DataStore {
 public:
  explicit DataStore(SessionPool* pool) : pool_(pool) {}
  absl::Status Put(std::string_view name, std::string_view value);
  absl::StatusOr<std::optional<std::string>> Get(std::string_view name);
  // Every record of that name (normally zero or one).
  absl::StatusOr<std::vector<std::string>> GetAll(std::string_view name);

 private:
  SessionPool* pool_;
  std::mutex put_mu_;
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_DATA_OBJECTS_H_
