#include "signer/service/http/metrics.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tokensign::service {
namespace {

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(MetricsTest, CountersCarryTheirLabels) {
  Metrics m;
  m.CountRequest("SignToken", "OK");
  m.CountRequest("SignToken", "OK");
  m.CountRequest("SignToken", "INVALID_ARGUMENT");
  m.CountHsmError("C_Sign");
  m.CountTokenSigned("dev", "transaction_token");
  m.CountDenied("dev", "act.sub");
  m.CountDenied("dev", "act.sub");
  std::string text = m.Serialize();
  EXPECT_TRUE(Contains(
      text, "tokensign_requests_total{code=\"OK\",method=\"SignToken\"} 2"))
      << text;
  EXPECT_TRUE(Contains(text,
                       "tokensign_requests_total{code=\"INVALID_ARGUMENT\","
                       "method=\"SignToken\"} 1"));
  EXPECT_TRUE(
      Contains(text, "tokensign_hsm_errors_total{function=\"C_Sign\"} 1"));
  EXPECT_TRUE(Contains(text,
                       "tokensign_tokens_signed_total{issuer=\"dev\","
                       "kind=\"transaction_token\"} 1"));
  EXPECT_TRUE(Contains(
      text,
      "tokensign_denied_total{issuer=\"dev\",reason_field=\"act.sub\"} 2"));
  EXPECT_TRUE(Contains(text, "# TYPE tokensign_requests_total counter"));
}

// Operators see connection exhaustion: every reason is exported from the
// start (at 0), so an alert needs no "absent" case.
TEST(MetricsTest, HttpConnectionsClosedHasEveryReasonFromTheStart) {
  Metrics m;
  std::string text = m.Serialize();
  for (const char* reason : {"evicted", "header_timeout", "refused"}) {
    EXPECT_TRUE(Contains(text, std::string("tokensign_http_connections_closed_"
                                           "total{reason=\"") +
                                   reason + "\"} 0"))
        << reason << "\n" << text;
  }
  m.CountHttpConnectionClosed("evicted");
  m.CountHttpConnectionClosed("evicted");
  m.CountHttpConnectionClosed("header_timeout");
  text = m.Serialize();
  EXPECT_TRUE(Contains(
      text, "tokensign_http_connections_closed_total{reason=\"evicted\"} 2"));
  EXPECT_TRUE(Contains(
      text,
      "tokensign_http_connections_closed_total{reason=\"header_timeout\"} 1"));
  EXPECT_TRUE(Contains(
      text, "tokensign_http_connections_closed_total{reason=\"refused\"} 0"));
}

TEST(MetricsTest, HistogramHasTheConfiguredBuckets) {
  Metrics m;
  m.ObserveSignLatency(0.0003);
  m.ObserveSignLatency(0.003);
  m.ObserveSignLatency(2.0);
  std::string text = m.Serialize();
  EXPECT_TRUE(
      Contains(text, "tokensign_sign_latency_seconds_bucket{le=\"0.0005\"} 1"))
      << text;
  EXPECT_TRUE(
      Contains(text, "tokensign_sign_latency_seconds_bucket{le=\"0.005\"} 2"));
  EXPECT_TRUE(
      Contains(text, "tokensign_sign_latency_seconds_bucket{le=\"1\"} 2"));
  EXPECT_TRUE(
      Contains(text, "tokensign_sign_latency_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE(Contains(text, "tokensign_sign_latency_seconds_count 3"));
}

TEST(MetricsTest, QueueDepthGauge) {
  Metrics m;
  m.SetQueueDepth(5);
  m.AddQueueDepth(1);
  m.AddQueueDepth(-3);
  EXPECT_TRUE(Contains(m.Serialize(), "tokensign_queue_depth 3"));
}

TEST(MetricsTest, AuditTotalsAreCountedOnceAndHealthFollows) {
  Metrics m;
  m.SetAudit({.records = 10, .commits = 2, .lingered = 1, .bytes = 4000,
              .rotations = 0, .healthy = true});
  m.SetAudit({.records = 10, .commits = 2, .lingered = 1, .bytes = 4000,
              .rotations = 0, .healthy = true});  // same totals: no change
  m.SetAudit({.records = 25, .commits = 3, .lingered = 2, .bytes = 9000,
              .rotations = 1, .healthy = false, .checkpoints = 4,
              .checkpoint_errors = 1, .anchor_writes = 3});
  const std::string text = m.Serialize();
  EXPECT_TRUE(Contains(text, "tokensign_audit_records_total 25\n")) << text;
  EXPECT_TRUE(Contains(text, "tokensign_audit_commits_total 3\n")) << text;
  EXPECT_TRUE(Contains(text, "tokensign_audit_lingered_commits_total 2\n")) << text;
  EXPECT_TRUE(Contains(text, "tokensign_audit_bytes_total 9000\n")) << text;
  EXPECT_TRUE(Contains(text, "tokensign_audit_rotations_total 1\n")) << text;
  EXPECT_TRUE(Contains(text, "tokensign_audit_healthy 0\n")) << text;
  EXPECT_TRUE(Contains(text, "tokensign_audit_checkpoints_total 4\n")) << text;
  EXPECT_TRUE(Contains(text, "tokensign_audit_checkpoint_errors_total 1\n"))
      << text;
  EXPECT_TRUE(Contains(text, "tokensign_audit_anchor_writes_total 3\n"))
      << text;
}

TEST(MetricsTest, KeyAgesAreReplacedNotAccumulated) {
  Metrics m;
  m.SetKeyAges({{"dev", "k1", "active", 100}, {"dev", "k2", "pending", 5}});
  std::string text = m.Serialize();
  EXPECT_TRUE(Contains(text,
                       "tokensign_key_age_seconds{issuer=\"dev\",kid=\"k1\","
                       "state=\"active\"} 100"))
      << text;
  m.SetKeyAges({{"dev", "k1", "retired", 200}, {"dev", "k2", "active", 10}});
  text = m.Serialize();
  EXPECT_FALSE(Contains(text, "state=\"pending\""));
  EXPECT_FALSE(Contains(text, "kid=\"k1\",state=\"active\""));
  EXPECT_TRUE(Contains(text,
                       "tokensign_key_age_seconds{issuer=\"dev\",kid=\"k1\","
                       "state=\"retired\"} 200"));
  EXPECT_TRUE(Contains(text,
                       "tokensign_key_age_seconds{issuer=\"dev\",kid=\"k2\","
                       "state=\"active\"} 10"));
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  Metrics m;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < kPerThread; ++i) {
        m.CountRequest("SignToken", "OK");
        m.CountDenied("dev", t % 2 ? "aud" : "scope");
        m.AddQueueDepth(1);
        m.AddQueueDepth(-1);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string text = m.Serialize();
  EXPECT_TRUE(Contains(
      text, "tokensign_requests_total{code=\"OK\",method=\"SignToken\"} 20000"))
      << text;
  EXPECT_TRUE(Contains(
      text,
      "tokensign_denied_total{issuer=\"dev\",reason_field=\"aud\"} 10000"));
  EXPECT_TRUE(Contains(text, "tokensign_queue_depth 0"));
}

}  // namespace
}  // namespace tokensign::service
