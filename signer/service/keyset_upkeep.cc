#include "signer/service/keyset_upkeep.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "signer/service/http/metrics.h"

namespace tokensign::service {
namespace {

constexpr auto kKeyAgeInterval = std::chrono::seconds(15);
constexpr auto kHsmProbeInterval = std::chrono::seconds(2);
// An HSM key of an issuer that no record names is destroyed once it is this
// old: far longer than generating a key and committing its record takes.
constexpr absl::Duration kOrphanGrace = absl::Minutes(10);
constexpr auto kOrphanSweepInterval = std::chrono::minutes(5);

}  // namespace

KeysetUpkeep::KeysetUpkeep(boost::asio::io_context& io, Deps deps,
                           std::chrono::seconds refresh_every)
    : deps_(deps),
      refresh_every_(refresh_every),
      round_timer_(io),
      key_age_timer_(io) {}

void KeysetUpkeep::Start() {
  const auto now = std::chrono::steady_clock::now();
  next_refresh_ = now + refresh_every_;
  next_sweep_ = now;
  UpdateKeyAges();
  ArmKeyAges();
  ArmRound();
}

void KeysetUpkeep::Stop() { stopped_.store(true, std::memory_order_release); }

void KeysetUpkeep::ArmRound() {
  const std::chrono::seconds wake =
      refresh_every_.count() > 0
          ? std::min<std::chrono::seconds>(kHsmProbeInterval, refresh_every_)
          : std::chrono::seconds(kHsmProbeInterval);
  round_timer_.expires_after(wake);
  round_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_.load(std::memory_order_acquire)) return;
    // One round at a time: a round still running (an HSM call that hangs)
    // makes this tick a no-op.
    if (!round_queued_.exchange(true, std::memory_order_acq_rel)) {
      bool queued = deps_.pool->Schedule([this] {
        Round();
        round_queued_.store(false, std::memory_order_release);
      });
      if (!queued) round_queued_.store(false, std::memory_order_release);
    }
    ArmRound();
  });
}

void KeysetUpkeep::ArmKeyAges() {
  key_age_timer_.expires_after(kKeyAgeInterval);
  key_age_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_.load(std::memory_order_acquire)) return;
    UpdateKeyAges();
    ArmKeyAges();
  });
}

void KeysetUpkeep::Round() {
  if (stopped_.load(std::memory_order_acquire)) return;
  if (deps_.hsm->Healthy()) {
    if (!was_healthy_) spdlog::info("hsm: sessions re-established");
    was_healthy_ = true;
    RunDueKeySteps();
    if (refresh_every_.count() > 0 &&
        std::chrono::steady_clock::now() >= next_refresh_) {
      RefreshKeysets();
      if (std::chrono::steady_clock::now() >= next_sweep_) {
        SweepOrphanKeys();
        next_sweep_ = std::chrono::steady_clock::now() + kOrphanSweepInterval;
      }
      next_refresh_ = std::chrono::steady_clock::now() + refresh_every_;
    }
    return;
  }
  // Any pooled call re-establishes a broken session (or re-initializes the
  // module); a latched PIN failure returns at once.
  absl::Status st = deps_.hsm->ListKeys().status();
  if (was_healthy_ && !st.ok())
    spdlog::warn("hsm: not ready: {}", std::string(st.message()));
  was_healthy_ = st.ok() && deps_.hsm->Healthy();
}

void KeysetUpkeep::RunDueKeySteps() {
  absl::StatusOr<int> steps = deps_.keys->Tick();
  if (!steps.ok()) {
    if (!tick_failed_)
      spdlog::warn("keysets: scheduled step failed (retried): {}",
                   std::string(steps.status().message()));
    tick_failed_ = true;
    return;
  }
  tick_failed_ = false;
  if (*steps > 0) UpdateKeyAges();
}

void KeysetUpkeep::RefreshKeysets() {
  absl::StatusOr<int> changed = deps_.keys->Refresh();
  if (!changed.ok()) {
    if (!refresh_failed_)
      spdlog::warn("keysets: refresh failed, keeping the loaded ones: {}",
                   std::string(changed.status().message()));
    refresh_failed_ = true;
    return;
  }
  if (refresh_failed_) spdlog::info("keysets: refresh works again");
  refresh_failed_ = false;
  if (*changed > 0) {
    spdlog::info("keysets: {} issuer(s) changed on the HSM; reloaded",
                 *changed);
    UpdateKeyAges();
  }
}

// Keys of this daemon's issuers that no keyset record names (a crash between
// generating a key and recording it, a destroy that failed after the record
// said "destroyed") are destroyed after kOrphanGrace.
void KeysetUpkeep::SweepOrphanKeys() {
  absl::StatusOr<int> swept = deps_.keys->SweepOrphans(kOrphanGrace);
  if (!swept.ok()) {
    spdlog::warn("keysets: orphan sweep: {}",
                 std::string(swept.status().message()));
  }
}

void KeysetUpkeep::UpdateKeyAges() {
  std::vector<KeyAge> ages;
  int64_t now = absl::ToUnixSeconds(absl::Now());
  for (const auto& [issuer, _] : deps_.core->policy()->config.issuers) {
    auto ks = deps_.keys->Keyset(issuer);
    if (!ks.ok()) continue;
    for (const keyset::KeyRecord& k : ks->keys) {
      if (k.state == keyset::KeyState::kDestroyed) continue;
      ages.push_back({issuer, k.kid, keyset::KeyStateName(k.state),
                      static_cast<double>(now - k.created_at)});
    }
  }
  deps_.metrics->SetKeyAges(ages);
}

void ReportKeysetEvent(const keyset::KeysetEvent& e, DecisionLog* decisions,
                       Metrics* metrics) {
  const char* event = "changed";
  switch (e.kind) {
    case keyset::KeysetEvent::Kind::kChanged:
      spdlog::info("keyset {}: generation {} -> {} adopted from the HSM: {}",
                   e.issuer, e.old_generation, e.new_generation, e.detail);
      break;
    case keyset::KeysetEvent::Kind::kRejected:
      event = "rejected";
      spdlog::error("keyset {}: REJECTED, not used or published: {}", e.issuer,
                    e.detail);
      break;
    case keyset::KeysetEvent::Kind::kSwept:
      event = "swept";
      spdlog::warn("keyset {}: {}", e.issuer, e.detail);
      break;
    case keyset::KeysetEvent::Kind::kScheduled:
      event = "scheduled";
      spdlog::info("keyset {}: {}", e.issuer, e.detail);
      break;
  }
  metrics->CountKeysetEvent(e.issuer, event);
  if (absl::Status st = decisions->Record(KeysetEventRecord(e, event),
                                          DecisionLog::Bounding::kAsBuilt);
      !st.ok()) {
    spdlog::error("audit: keyset event for {} not recorded: {}", e.issuer,
                  std::string(st.message()));
  }
}

}  // namespace tokensign::service
