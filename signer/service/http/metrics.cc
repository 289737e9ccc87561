#include "signer/service/http/metrics.h"

#include <algorithm>
#include <utility>

#include "prometheus/text_serializer.h"

namespace tokensign::service {
namespace {

// Separator between label values in a cache key; label values never hold it
// in practice and a collision would only merge two series' cache entries
// if both also matched every other value, which a control byte rules out.
constexpr char kSep = '\x1f';

std::string JoinKey(std::initializer_list<std::string_view> values) {
  std::string key;
  for (std::string_view v : values) {
    key.append(v);
    key.push_back(kSep);
  }
  return key;
}

const prometheus::Histogram::BucketBoundaries& SignLatencyBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
  return *kBuckets;
}

}  // namespace

template <typename T>
T& LabelCache<T>::Get(std::initializer_list<std::string_view> values) {
  std::string key = JoinKey(values);
  {
    std::shared_lock lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return *it->second;
  }
  std::unique_lock lock(mu_);
  auto it = cache_.find(key);
  if (it != cache_.end()) return *it->second;
  prometheus::Labels labels;
  size_t i = 0;
  for (std::string_view v : values) {
    labels.emplace(keys_.at(i++), std::string(v));
  }
  T& metric = family_.Add(labels);
  cache_.emplace(std::move(key), &metric);
  return metric;
}

template class LabelCache<prometheus::Counter>;

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_family_(prometheus::BuildCounter()
                           .Name("tokensign_requests_total")
                           .Help("Finished RPCs by method and status code.")
                           .Register(*registry_)),
      latency_family_(prometheus::BuildHistogram()
                          .Name("tokensign_sign_latency_seconds")
                          .Help("Time to sign and verify one token.")
                          .Register(*registry_)),
      hsm_errors_family_(prometheus::BuildCounter()
                             .Name("tokensign_hsm_errors_total")
                             .Help("Failed PKCS#11 calls by function.")
                             .Register(*registry_)),
      queue_family_(prometheus::BuildGauge()
                        .Name("tokensign_queue_depth")
                        .Help("Requests waiting for a worker.")
                        .Register(*registry_)),
      key_age_family_(prometheus::BuildGauge()
                          .Name("tokensign_key_age_seconds")
                          .Help("Age of each published key by state.")
                          .Register(*registry_)),
      signed_family_(prometheus::BuildCounter()
                         .Name("tokensign_tokens_signed_total")
                         .Help("Tokens signed by issuer and kind.")
                         .Register(*registry_)),
      denied_family_(prometheus::BuildCounter()
                         .Name("tokensign_denied_total")
                         .Help("Denied requests by issuer and rejected field.")
                         .Register(*registry_)),
      sign_latency_(latency_family_.Add({}, SignLatencyBuckets())),
      queue_depth_(queue_family_.Add({})),
      requests_(requests_family_, {"method", "code"}),
      hsm_errors_(hsm_errors_family_, {"function"}),
      signed_(signed_family_, {"issuer", "kind"}),
      denied_(denied_family_, {"issuer", "reason_field"}),
      keyset_events_family_(
          prometheus::BuildCounter()
              .Name("tokensign_keyset_events_total")
              .Help("Keyset changes adopted from the HSM (event=changed), "
                    "records/keys/look-alikes that failed a check and were "
                    "not used (event=rejected), orphan keys destroyed "
                    "(event=swept), by issuer.")
              .Register(*registry_)),
      keyset_events_(keyset_events_family_, {"issuer", "event"}),
      http_closed_family_(
          prometheus::BuildCounter()
              .Name("tokensign_http_connections_closed_total")
              .Help("HTTP connections the listener closed on its own: the "
                    "idle one evicted at the connection cap (evicted), a "
                    "request not complete within the header deadline "
                    "(header_timeout), or a new one at the cap while every "
                    "connection was busy (refused).")
              .Register(*registry_)),
      http_closed_(http_closed_family_, {"reason"}) {
  for (std::string_view reason : {"evicted", "header_timeout", "refused"}) {
    http_closed_.Get({reason});  // visible at 0 before the first one
  }
  auto counter = [this](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_).Add({});
  };
  audit_.records = counter("tokensign_audit_records_total",
                           "Decision records made durable in the audit log.");
  audit_.commits = counter("tokensign_audit_commits_total",
                           "Audit log commits (one write and one fdatasync each).");
  audit_.lingered = counter("tokensign_audit_lingered_commits_total",
                            "Audit commits that waited for records being signed.");
  audit_.bytes = counter("tokensign_audit_bytes_total", "Bytes written to the audit log.");
  audit_.rotations = counter("tokensign_audit_rotations_total", "Audit log files rotated.");
  audit_.checkpoints = counter("tokensign_audit_checkpoints_total",
                               "Signed audit checkpoints made durable in the log.");
  audit_.checkpoint_errors =
      counter("tokensign_audit_checkpoint_errors_total",
              "Audit checkpoints not signed or not anchored in the HSM (retried).");
  audit_.anchor_writes = counter("tokensign_audit_anchor_writes_total",
                                 "Audit checkpoints anchored in the HSM.");
  audit_.healthy = &prometheus::BuildGauge()
                        .Name("tokensign_audit_healthy")
                        .Help("1 while the audit log accepts records, 0 once it failed.")
                        .Register(*registry_)
                        .Add({});
  audit_.healthy->Set(1);
}

void Metrics::SetAudit(const AuditTotals& totals) {
  std::lock_guard lock(audit_mu_);
  auto bump = [](prometheus::Counter* c, int64_t now, int64_t* seen) {
    if (now > *seen) c->Increment(static_cast<double>(now - *seen));
    *seen = std::max(*seen, now);
  };
  bump(audit_.records, totals.records, &audit_seen_.records);
  bump(audit_.commits, totals.commits, &audit_seen_.commits);
  bump(audit_.lingered, totals.lingered, &audit_seen_.lingered);
  bump(audit_.bytes, totals.bytes, &audit_seen_.bytes);
  bump(audit_.rotations, totals.rotations, &audit_seen_.rotations);
  bump(audit_.checkpoints, totals.checkpoints, &audit_seen_.checkpoints);
  bump(audit_.checkpoint_errors, totals.checkpoint_errors,
       &audit_seen_.checkpoint_errors);
  bump(audit_.anchor_writes, totals.anchor_writes, &audit_seen_.anchor_writes);
  audit_.healthy->Set(totals.healthy ? 1 : 0);
}

void Metrics::CountRequest(std::string_view method, std::string_view code) {
  requests_.Get({method, code}).Increment();
}

void Metrics::ObserveSignLatency(double seconds) {
  sign_latency_.Observe(seconds);
}

void Metrics::CountHsmError(std::string_view function) {
  hsm_errors_.Get({function}).Increment();
}

void Metrics::SetQueueDepth(int64_t depth) {
  queue_depth_.Set(static_cast<double>(depth));
}

void Metrics::AddQueueDepth(int64_t delta) {
  queue_depth_.Increment(static_cast<double>(delta));
}

void Metrics::CountTokenSigned(std::string_view issuer, std::string_view kind) {
  signed_.Get({issuer, kind}).Increment();
}

void Metrics::CountKeysetEvent(std::string_view issuer,
                               std::string_view event) {
  keyset_events_.Get({issuer, event}).Increment();
}

void Metrics::CountHttpConnectionClosed(std::string_view reason) {
  http_closed_.Get({reason}).Increment();
}

void Metrics::CountDenied(std::string_view issuer,
                          std::string_view reason_field) {
  denied_.Get({issuer, reason_field}).Increment();
}

void Metrics::SetKeyAges(const std::vector<KeyAge>& ages) {
  std::lock_guard lock(key_age_mu_);
  // Add (or find) every current series first, then drop the stale ones, so a
  // concurrent scrape never sees a live key missing.
  std::vector<prometheus::Gauge*> current;
  current.reserve(ages.size());
  for (const KeyAge& a : ages) {
    prometheus::Gauge& g = key_age_family_.Add(
        {{"issuer", a.issuer}, {"kid", a.kid}, {"state", a.state}});
    g.Set(a.age_seconds);
    current.push_back(&g);
  }
  for (prometheus::Gauge* old : key_age_series_) {
    if (std::find(current.begin(), current.end(), old) == current.end()) {
      key_age_family_.Remove(old);
    }
  }
  key_age_series_ = std::move(current);
}

std::string Metrics::Serialize() const {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace tokensign::service
