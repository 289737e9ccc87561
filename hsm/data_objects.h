// Small named records on the token: CKO_DATA objects with CKA_APPLICATION
// "tokensign", CKA_LABEL = name, CKA_VALUE = bytes, CKA_TOKEN and CKA_PRIVATE
// true. Put creates the new object, then destroys older ones of that name; if a
// crash leaves two, Get returns the newest (highest handle) one and the next
// Put removes the rest. Thread-safety: thread-safe; Put is serialized by an
// internal mutex.
#ifndef TOKENSIGN_HSM_DATA_OBJECTS_H_
#define TOKENSIGN_HSM_DATA_OBJECTS_H_

#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hsm/session_pool.h"

namespace tokensign::hsm {

class DataStore {
 public:
  explicit DataStore(SessionPool* pool) : pool_(pool) {}
  absl::Status Put(std::string_view name, std::string_view value);
  absl::StatusOr<std::optional<std::string>> Get(std::string_view name);

 private:
  SessionPool* pool_;
  std::mutex put_mu_;
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_DATA_OBJECTS_H_
