// Metrics: the daemon's Prometheus metrics, backed by prometheus-cpp (core
// only; the HTTP listener in http_server.h serves Serialize() on /metrics).
//
// Contract
// - One Metrics object per daemon; it owns a prometheus::Registry with these
//   families (names and label keys are part of the operational contract):
//     tokensign_requests_total{method,code}            counter
//     tokensign_sign_latency_seconds                    histogram
//         (buckets 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1)
//     tokensign_hsm_errors_total{function}              counter
//     tokensign_queue_depth                             gauge
//     tokensign_key_age_seconds{issuer,kid,state}       gauge
//     tokensign_tokens_signed_total{issuer,kind}        counter
//     tokensign_denied_total{issuer,reason_field}       counter
//     tokensign_audit_records_total                     counter
//     tokensign_audit_commits_total                     counter (write+fdatasync)
//     tokensign_audit_lingered_commits_total            counter
//     tokensign_audit_bytes_total                       counter
//     tokensign_audit_rotations_total                   counter
//     tokensign_audit_healthy                           gauge (1 = accepting)
//     tokensign_http_connections_closed_total{reason}   counter
//         (reason "evicted", "header_timeout" or "refused"; all three
//         series exist from the start, at 0)
// - Label values are taken as given; callers pass bounded sets (gRPC method
//   names, status code names, configured issuers, PKCS#11 function names,
//   field paths), never caller-controlled free text.
// - Serialize() returns the Prometheus text exposition format (0.0.4).
//
// Cost of the hot-path methods
// - ObserveSignLatency / SetQueueDepth / AddQueueDepth: one atomic update on a
//   cached metric, no allocation, no lock.
// - CountRequest / CountHsmError / CountTokenSigned / CountDenied: a shared
//   (reader) lock and one hash lookup in a per-family cache of metric
//   pointers, keyed by the joined label values; the first use of a label set
//   takes the writer lock and registers it with prometheus-cpp. No allocation
//   once the key fits the small-string buffer; otherwise one.
// - SetAudit copies the audit log's running totals (call it before each
//   scrape); records / commits is the group commit's records per fdatasync.
// - SetKeyAges replaces the whole key-age family (stale kid/state series are
//   removed); call it from the keyset refresh timer, not per request.
//
// Thread-safety: every method may be called concurrently from any thread.
#ifndef TOKENSIGN_SIGNER_SERVICE_HTTP_METRICS_H_
#define TOKENSIGN_SIGNER_SERVICE_HTTP_METRICS_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tokensign::service {

// The audit log's running totals (audit::AuditLogStats plus health), as
// SetAudit takes them; totals only grow while the daemon runs.
struct AuditTotals {
  int64_t records = 0;
  int64_t commits = 0;
  int64_t lingered = 0;
  int64_t bytes = 0;
  int64_t rotations = 0;
  bool healthy = true;
  int64_t checkpoints = 0;        // signed checkpoints made durable
  int64_t checkpoint_errors = 0;  // failed signatures or anchor writes
  int64_t anchor_writes = 0;      // checkpoints anchored in the HSM
};

// One row of tokensign_key_age_seconds.
struct KeyAge {
  std::string issuer;
  std::string kid;
  std::string state;  // "pending", "active", "retired"
  double age_seconds = 0;
};

// Caches the metric of each label set of one family. Internal to Metrics.
template <typename T>
class LabelCache {
 public:
  LabelCache(prometheus::Family<T>& family, std::vector<std::string> keys)
      : family_(family), keys_(std::move(keys)) {}

  // Returns the metric for `values` (same order as the label keys).
  T& Get(std::initializer_list<std::string_view> values);

 private:
  prometheus::Family<T>& family_;
  const std::vector<std::string> keys_;
  std::shared_mutex mu_;  // std (pthread) lock: visible to ThreadSanitizer
  absl::flat_hash_map<std::string, T*> cache_;  // guarded by mu_
};

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // A finished RPC: `method` e.g. "SignToken", `code` e.g. "OK".
  void CountRequest(std::string_view method, std::string_view code);
  // Time from dequeue to signed+verified token, in seconds.
  void ObserveSignLatency(double seconds);
  // A failed PKCS#11 call, `function` e.g. "C_Sign".
  void CountHsmError(std::string_view function);
  void SetQueueDepth(int64_t depth);
  void AddQueueDepth(int64_t delta);  // +1 on enqueue, -1 on dequeue
  // `kind` e.g. "access_token" / "transaction_token".
  void CountTokenSigned(std::string_view issuer, std::string_view kind);
  // `reason_field` is the field path the policy rejected, e.g. "act.sub".
  void CountDenied(std::string_view issuer, std::string_view reason_field);
  // `event`: "changed", "rejected" or "swept" (tokensign_keyset_events_total).
  void CountKeysetEvent(std::string_view issuer, std::string_view event);
  // A connection the HTTP listener closed on its own; `reason` is one of
  // "evicted", "header_timeout", "refused" (HttpConnectionCloseName).
  void CountHttpConnectionClosed(std::string_view reason);
  // Brings the tokensign_audit_* series up to `totals`.
  void SetAudit(const AuditTotals& totals);

  // Replaces every tokensign_key_age_seconds series with `ages`.
  void SetKeyAges(const std::vector<KeyAge>& ages);

  // Prometheus text exposition of every family.
  std::string Serialize() const;

  // For registering further families; the daemon should not need it.
  prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_family_;
  prometheus::Family<prometheus::Histogram>& latency_family_;
  prometheus::Family<prometheus::Counter>& hsm_errors_family_;
  prometheus::Family<prometheus::Gauge>& queue_family_;
  prometheus::Family<prometheus::Gauge>& key_age_family_;
  prometheus::Family<prometheus::Counter>& signed_family_;
  prometheus::Family<prometheus::Counter>& denied_family_;

  prometheus::Histogram& sign_latency_;
  prometheus::Gauge& queue_depth_;
  LabelCache<prometheus::Counter> requests_;
  LabelCache<prometheus::Counter> hsm_errors_;
  LabelCache<prometheus::Counter> signed_;
  LabelCache<prometheus::Counter> denied_;
  prometheus::Family<prometheus::Counter>& keyset_events_family_;
  LabelCache<prometheus::Counter> keyset_events_;
  prometheus::Family<prometheus::Counter>& http_closed_family_;
  LabelCache<prometheus::Counter> http_closed_;

  struct AuditSeries {
    prometheus::Counter* records;
    prometheus::Counter* commits;
    prometheus::Counter* lingered;
    prometheus::Counter* bytes;
    prometheus::Counter* rotations;
    prometheus::Gauge* healthy;
    prometheus::Counter* checkpoints;
    prometheus::Counter* checkpoint_errors;
    prometheus::Counter* anchor_writes;
  };
  AuditSeries audit_;
  std::mutex audit_mu_;
  AuditTotals audit_seen_;  // guarded by audit_mu_: totals already counted

  std::mutex key_age_mu_;
  std::vector<prometheus::Gauge*> key_age_series_;  // guarded by key_age_mu_
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_HTTP_METRICS_H_
