#pragma once
// The agent's own notifications ([[notifier]], agent/notifier_options.h).
//
// NotificationHub turns what the agent learns into notifications: a recorded drill (OnDrill, a
// DrillRecorder listener) and the backup freshness objective (OnFreshness, from the
// backup_catalogue collector). Per target and condition (drill_failed, backup_stale) it keeps
// whether the condition is firing, persisted in state_dir/<target>/notifications.json so that a
// restart neither re-pages an ongoing failure nor forgets to resolve it: a condition notifies
// once when it starts and once (resolved) when it clears, never in between.
//
// Each notifier delivers on its own thread from its own bounded queue (queue_size; when full the
// oldest waiting notification is dropped and counted), retrying a failed attempt with
// exponential backoff up to max_attempts. Alertmanager notifiers also re-send each firing alert
// every repeat_interval until it resolves (Alertmanager expires alerts it stops hearing about).
// OnDrill/OnFreshness only update the state file and enqueue: a receiver that is down or hangs
// never blocks a drill, a collector or a scrape.
//
// Metrics (docs/METRICS.md), published through the callback after every change:
// restorewatch_notifier_{sent,failed,dropped}_total{notifier}, restorewatch_notifier_queue_length.
//
// Thread-safety: every public method may be called from any thread. Configure() (start, SIGHUP)
// keeps the queue of a notifier whose name stays (its new settings apply from the next attempt),
// starts new ones and stops removed ones (what they still had queued is dropped, counted).
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/metrics_model.h"
#include "agent/model.h"
#include "agent/notifier_options.h"
#include "exporters/notifier_payload.h"

namespace rw {

class NotifierChannel;

// Whether a backup freshness objective holds, from the backup_catalogue collector's families
// (restorewatch_backup_last_completion_timestamp_seconds): nullopt when max_age is 0 (no
// objective). `missed` with a one-line reason naming the newest backup's age and the objective.
struct Freshness {
  bool missed = false;
  std::string reason;
};
std::optional<Freshness> FreshnessFromCatalogue(const std::vector<MetricFamilyData>& families,
                                                Duration max_age, double now);

class NotificationHub {
 public:
  using Publish = std::function<void(std::vector<MetricFamilyData>)>;
  // state_dir: the agent's state dir (per-target files go to state_dir/<target>/).
  NotificationHub(std::string state_dir, Publish publish);
  ~NotificationHub();  // Stop(now)
  NotificationHub(const NotificationHub&) = delete;
  NotificationHub& operator=(const NotificationHub&) = delete;

  // Applies the [[notifier]] list. Alertmanager notifiers (new ones too) learn the conditions
  // already firing for their targets, so they keep re-asserting them after a restart or reload.
  void Configure(const std::vector<NotifierConfig>& notifiers,
                 const std::vector<std::string>& targets);
  // A recorded drill: failed or error starts (or continues) drill_failed; a pass resolves it.
  void OnDrill(const DrillReport& report);
  // A freshness evaluation of `target` at `at`: missed starts (or continues) backup_stale; met
  // resolves it.
  void OnFreshness(const std::string& target, const Freshness& f, double at);
  // Lets each notifier send what it has queued until `drain` has passed (no retry waits past
  // it), then stops and joins the threads. Idempotent.
  void Stop(Duration drain);

 private:
  struct Condition {
    bool firing = false;
    double since = 0;
    std::string reason, stage, kind, run_id;
  };
  // (target, condition) -> state, loaded lazily from the target's file (mu_ held).
  Condition& StateLocked(const std::string& target, const std::string& condition);
  void SaveLocked(const std::string& target);
  void Transition(const std::string& target, const std::string& condition, bool bad,
                  const Notification& event);
  void Dispatch(const Notification& n);
  void PublishMetrics();

  const std::string state_dir_;
  Publish publish_;
  std::mutex mu_;  // guards states_, loaded_, channels_ (never held while joining a channel)
  std::map<std::pair<std::string, std::string>, Condition> states_;
  std::map<std::string, bool> loaded_;  // targets whose file was read
  std::map<std::string, std::shared_ptr<NotifierChannel>> channels_;
  std::mutex publish_mu_;
};

}  // namespace rw
