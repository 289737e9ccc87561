// Internal to the config parser (config.cc, config_sections.cc,
// config_issuer.cc): TableReader, which reads typed values out of one TOML
// table and names the full key path in every error, and the parsers of the
// config's sections. Not part of the config's interface (config.h).
//
// Thread-safety: a TableReader belongs to one parse on one thread; the
// parsers are pure functions.
#ifndef TOKENSIGN_SIGNER_SERVICE_CONFIG_READER_H_
#define TOKENSIGN_SIGNER_SERVICE_CONFIG_READER_H_

#include <toml++/toml.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "signer/service/config.h"

namespace tokensign::service::config_internal {

// InvalidArgument "<path>: <rule>".
inline absl::Status Bad(const std::string& path, const std::string& rule) {
  return absl::InvalidArgumentError(path + ": " + rule);
}

// Reads typed values out of one TOML table; every key read is remembered so
// that CheckUnknown can reject the rest. Error messages carry the full key
// path.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string path)
      : table_(table), path_(std::move(path)) {}

  std::string KeyPath(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  const toml::node* Get(std::string_view key) {
    seen_.insert(std::string(key));
    return table_.get(key);
  }

  absl::Status String(std::string_view key, std::string* out) {
    const toml::node* n = Get(key);
    if (n == nullptr) return absl::OkStatus();
    if (!n->is_string()) return Bad(KeyPath(key), "must be a string");
    *out = n->value<std::string>().value();
    return absl::OkStatus();
  }
  absl::Status Bool(std::string_view key, bool* out) {
    const toml::node* n = Get(key);
    if (n == nullptr) return absl::OkStatus();
    if (!n->is_boolean()) return Bad(KeyPath(key), "must be true or false");
    *out = n->value<bool>().value();
    return absl::OkStatus();
  }
  template <typename Int>
  absl::Status Integer(std::string_view key, Int* out, int64_t min,
                       int64_t max) {
    const toml::node* n = Get(key);
    if (n == nullptr) return absl::OkStatus();
    if (!n->is_integer()) return Bad(KeyPath(key), "must be an integer");
    int64_t v = n->value<int64_t>().value();
    if (v < min || v > max) {
      return Bad(KeyPath(key),
                 absl::StrCat("must be ", min, "..", max, ", got ", v));
    }
    *out = static_cast<Int>(v);
    return absl::OkStatus();
  }
  absl::Status StringList(std::string_view key, std::vector<std::string>* out) {
    const toml::node* n = Get(key);
    if (n == nullptr) return absl::OkStatus();
    const toml::array* arr = n->as_array();
    if (arr == nullptr) return Bad(KeyPath(key), "must be an array of strings");
    out->clear();
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      if (!e.is_string()) {
        return Bad(absl::StrCat(KeyPath(key), "[", i, "]"), "must be a string");
      }
      out->push_back(e.value<std::string>().value());
    }
    return absl::OkStatus();
  }
  absl::Status CheckUnknown() const {
    for (auto&& [k, v] : table_) {
      if (!seen_.contains(std::string(k.str())))
        return Bad(KeyPath(std::string_view(k.str())), "unknown key");
    }
    return absl::OkStatus();
  }

 private:
  const toml::table& table_;
  std::string path_;
  std::set<std::string> seen_;
};

#define RETURN_IF_ERROR(expr)  \
  do {                         \
    absl::Status _st = (expr); \
    if (!_st.ok()) return _st; \
  } while (0)

// A sub-table at `key`, nullptr if absent, error if not a table.
absl::StatusOr<const toml::table*> SubTable(TableReader& r,
                                            std::string_view key);
// "30d", "12h", "45m", "90s" or an integer number of seconds (0 if absent).
absl::StatusOr<int64_t> ParseDuration(TableReader& r, std::string_view key);

// The sections (config_sections.cc).
absl::Status ParseHsm(const toml::table& t, hsm::HsmConfig* out);
absl::Status ParseServer(const toml::table& t, ServerConfig* out);
absl::Status ParseAudit(const toml::table& t, AuditConfig* out);
// [[callers]], checked against the issuers `cfg` already holds.
absl::Status ParseCallers(const toml::array& arr, const Config& cfg,
                          std::vector<CallerConfig>* out);
// [issuers.NAME] (config_issuer.cc).
absl::Status ParseIssuer(const std::string& name, const toml::table& t,
                         IssuerConfig* out);

}  // namespace tokensign::service::config_internal

#endif  // TOKENSIGN_SIGNER_SERVICE_CONFIG_READER_H_
