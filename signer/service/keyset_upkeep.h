// KeysetUpkeep: the daemon's periodic keyset and HSM work, run by Asio timers
// on the daemon's io_context. Owns its two timers and the state of the rounds.
//
// Contract:
// - Every min(2 s, server.keyset_refresh_seconds) the round timer queues one
//   round onto the WorkPool (WorkPool::Schedule: outside the callers'
//   max_queue bound); the timer never touches the HSM itself (a PKCS#11 call
//   can hang for seconds; the io thread also serves HTTP). A round still
//   running when the timer fires again is not doubled: that tick is skipped.
// - A round, while the HSM's session pool is healthy: KeysetManager::Tick
//   (planned activations, scheduled rotations, JWKS expiry; with several
//   replicas the keyset record write picks one); every
//   keyset_refresh_seconds (0 = never) KeysetManager::Refresh (a key another
//   replica rotated in signs and is published here too) and, at most every 5
//   minutes, SweepOrphans (HSM keys no record names, older than 10 minutes,
//   are destroyed). While unhealthy: one pooled call (Hsm::ListKeys) so an
//   unready daemon, which gets no traffic, re-establishes its sessions; a
//   latched PIN failure stays unready. Failures are logged once per streak.
// - Every 15 s the key-age timer updates the key-age gauges (in memory, on
//   the io thread); UpdateKeyAges may also be called after a reload.
// - ReportKeysetEvent logs, counts and audits what KeysetManager found on the
//   HSM (the KeysetManager observer).
//
// Thread-safety: Start and Stop from the daemon's thread; timer handlers run
// on the io thread; rounds on pool threads, one at a time; UpdateKeyAges and
// ReportKeysetEvent from any thread. Stop before the pool drains; destroy
// after the io thread has stopped and before the io_context.
#ifndef TOKENSIGN_SIGNER_SERVICE_KEYSET_UPKEEP_H_
#define TOKENSIGN_SIGNER_SERVICE_KEYSET_UPKEEP_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

#include "hsm/hsm.h"
#include "signer/keyset/keyset_manager.h"
#include "signer/service/decision_record.h"
#include "signer/service/signing_core.h"
#include "signer/service/work_pool.h"

namespace tokensign::service {

class Metrics;

class KeysetUpkeep {
 public:
  struct Deps {
    hsm::Hsm* hsm;
    keyset::KeysetManager* keys;
    SigningCore* core;  // the configured issuers (policy snapshot)
    Metrics* metrics;
    WorkPool* pool;
  };
  KeysetUpkeep(boost::asio::io_context& io, Deps deps,
               std::chrono::seconds refresh_every);

  void Start();
  // Timers stop re-arming and queue no more rounds; a running round ends.
  void Stop();
  // The key-age gauges from the keysets in memory.
  void UpdateKeyAges();

 private:
  void ArmRound();
  void ArmKeyAges();
  void Round();  // on a pool thread, one at a time
  void RunDueKeySteps();
  void RefreshKeysets();
  void SweepOrphanKeys();

  Deps deps_;
  const std::chrono::seconds refresh_every_;
  boost::asio::steady_timer round_timer_;
  boost::asio::steady_timer key_age_timer_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> round_queued_{false};
  // Round state: touched only by the one running round.
  bool was_healthy_ = true;
  bool refresh_failed_ = false;
  bool tick_failed_ = false;
  std::chrono::steady_clock::time_point next_refresh_;
  std::chrono::steady_clock::time_point next_sweep_;
};

// Logs, counts (Metrics may not be null) and audits, through `decisions`, a
// keyset event KeysetManager found on the HSM.
void ReportKeysetEvent(const keyset::KeysetEvent& e, DecisionLog* decisions,
                       Metrics* metrics);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_KEYSET_UPKEEP_H_
