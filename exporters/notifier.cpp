#include "exporters/notifier.h"

#include <httplib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/drill_failure.h"
#include "agent/json.h"
#include "agent/log.h"
#include "agent/secrets.h"
#include "agent/units.h"
#include "version.h"

namespace rw {

using SteadyClock = std::chrono::steady_clock;

namespace {

// The URL without its path, for messages (credentials are refused at load, but be safe).
std::string Origin(const std::string& url) {
  const std::size_t scheme = url.find("://");
  const std::size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return Redact(slash == std::string::npos ? url : url.substr(0, slash));
}

// One attempt: POST the request of `n` to the notifier's URL. False with *error (one line, no
// secret) on a transport error, a timeout or a non-2xx answer.
bool SendOnce(const NotifierConfig& cfg, const Notification& n, std::string* error) {
  const NotifierRequest req = BuildNotifierRequest(cfg, n);
  const std::string origin =
      cfg.url.substr(0, std::min(cfg.url.size(), cfg.url.find('/', cfg.url.find("://") + 3)));
  std::string path = origin.size() < cfg.url.size() ? cfg.url.substr(origin.size()) : "";
  if (!req.path.empty() && !path.empty() && path.back() == '/') path.pop_back();
  path += req.path;
  if (path.empty()) path = "/";
  httplib::Client cli(origin);
  if (!cli.is_valid()) {
    *error = "invalid notifier URL " + Origin(cfg.url);
    return false;
  }
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(cfg.timeout);
  const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(cfg.timeout - secs);
  cli.set_connection_timeout(secs.count(), usecs.count());
  cli.set_read_timeout(secs.count(), usecs.count());
  cli.set_write_timeout(secs.count(), usecs.count());
  cli.set_keep_alive(false);
  if (!cfg.ca_file.empty()) cli.set_ca_cert_path(cfg.ca_file.c_str());
  cli.enable_server_certificate_verification(true);
  if (!cfg.bearer_token.empty()) cli.set_bearer_token_auth(cfg.bearer_token.c_str());
  if (!cfg.username.empty()) cli.set_basic_auth(cfg.username.c_str(), cfg.password.c_str());
  httplib::Headers headers{{"User-Agent", std::string("restorewatch/") + kVersion}};
  auto res = cli.Post(path.c_str(), headers, req.body, "application/json");
  if (!res) {
    *error = "cannot deliver to " + Origin(cfg.url) + ": " + httplib::to_string(res.error());
    return false;
  }
  if (res->status < 200 || res->status > 299) {
    std::string body = res->body.substr(0, 200);
    std::replace(body.begin(), body.end(), '\n', ' ');
    *error = "HTTP " + std::to_string(res->status) + " from " + Origin(cfg.url) +
             (body.empty() ? "" : ": " + body);
    return false;
  }
  return true;
}

}  // namespace

// One [[notifier]]: its queue, its delivery thread and its counters. Enqueue() never blocks on
// delivery. Thread-safe.
class NotifierChannel {
 public:
  NotifierChannel(NotifierConfig cfg, std::function<void()> changed)
      : cfg_(std::move(cfg)), changed_(std::move(changed)) {}
  ~NotifierChannel() { Stop(SteadyClock::now()); }

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }

  const std::string& name() const { return cfg_.name; }  // never changes
  void Update(const NotifierConfig& cfg) {
    std::lock_guard<std::mutex> lk(mu_);
    if (cfg.type != cfg_.type) firing_.clear();
    cfg_ = cfg;
    while (queue_.size() > static_cast<std::size_t>(cfg_.queue_size)) DropOldestLocked();
  }
  bool Wants(const std::string& target) const {
    std::lock_guard<std::mutex> lk(mu_);
    return cfg_.targets.empty() ||
           std::find(cfg_.targets.begin(), cfg_.targets.end(), target) != cfg_.targets.end();
  }
  bool alertmanager() const {
    std::lock_guard<std::mutex> lk(mu_);
    return cfg_.type == NotifierType::kAlertmanager;
  }

  void Enqueue(const Notification& n) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_) return;
      TrackLocked(n);
      PushLocked(n);
    }
    cv_.notify_all();
    changed_();
  }
  // Alertmanager: the latest word on a condition that keeps firing, for the next re-send (no
  // notification of its own).
  void Refresh(const Notification& n) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = firing_.find(DedupKey(n));
    if (it != firing_.end()) it->second = n;
  }

  // Stops taking notifications; sends what is queued until `drain_until`, then ends the thread.
  void Stop(SteadyClock::time_point drain_until) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!stopping_) {
        stopping_ = true;
        drain_until_ = drain_until;
      }
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::size_t left;
    {
      std::lock_guard<std::mutex> lk(mu_);
      left = queue_.size();
      dropped_ += static_cast<std::int64_t>(left);
      queue_.clear();
    }
    if (left > 0)
      LogWarn("notifications dropped unsent at stop",
              {{"notifier", cfg_.name}, {"count", static_cast<std::int64_t>(left)}});
  }

  struct Counters {
    std::int64_t sent = 0, failed = 0, dropped = 0;
    std::size_t queued = 0;
  };
  Counters counters() const {
    std::lock_guard<std::mutex> lk(mu_);
    return {sent_, failed_, dropped_, queue_.size()};
  }

 private:
  void TrackLocked(const Notification& n) {
    if (cfg_.type != NotifierType::kAlertmanager) return;
    const std::string key = DedupKey(n);
    if (n.firing) {
      if (firing_.empty()) next_resend_ = SteadyClock::now() + cfg_.repeat_interval;
      firing_[key] = n;
    } else {
      firing_.erase(key);
    }
  }
  void PushLocked(const Notification& n) {
    while (queue_.size() >= static_cast<std::size_t>(cfg_.queue_size)) DropOldestLocked();
    queue_.push_back(n);
  }
  void DropOldestLocked() {
    LogWarn("notification queue full, dropping the oldest",
            {{"notifier", cfg_.name}, {"dropped", SummaryLine(queue_.front())}});
    queue_.pop_front();
    ++dropped_;
  }

  // Waits for a notification to send (or a re-send due); false when the thread is to end.
  bool Next(Notification* n) {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      const auto now = SteadyClock::now();
      if (stopping_ && (queue_.empty() || now >= drain_until_)) return false;
      if (!queue_.empty()) break;
      if (stopping_) {
        cv_.wait_until(lk, drain_until_);
      } else if (cfg_.type == NotifierType::kAlertmanager && !firing_.empty()) {
        if (now >= next_resend_) {
          for (const auto& [key, f] : firing_) PushLocked(f);
          next_resend_ = now + cfg_.repeat_interval;
          continue;
        }
        cv_.wait_until(lk, next_resend_);
      } else {
        cv_.wait(lk);
      }
    }
    *n = queue_.front();
    queue_.pop_front();
    return true;
  }

  void Loop() {
    Notification n;
    while (Next(&n)) {
      changed_();
      Deliver(n);
      changed_();
    }
  }

  // Up to max_attempts attempts, waiting retry_backoff, then twice that, ... (at most 5 min)
  // between them; a stop past its drain deadline cuts the waits short.
  void Deliver(const Notification& n) {
    Duration backoff;
    int attempts;
    {
      std::lock_guard<std::mutex> lk(mu_);
      backoff = cfg_.retry_backoff;
      attempts = cfg_.max_attempts;
    }
    std::string error;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      NotifierConfig cfg;
      {
        std::lock_guard<std::mutex> lk(mu_);
        cfg = cfg_;
      }
      if (SendOnce(cfg, n, &error)) {
        std::lock_guard<std::mutex> lk(mu_);
        ++sent_;
        return;
      }
      LogWarn("notification not delivered", {{"notifier", cfg.name},
                                             {"target", n.target},
                                             {"condition", n.condition},
                                             {"attempt", attempt},
                                             {"error", error}});
      if (attempt == attempts) break;
      std::unique_lock<std::mutex> lk(mu_);
      const auto until = SteadyClock::now() + backoff;
      if (cv_.wait_until(lk, until,
                         [&] { return stopping_ && SteadyClock::now() >= drain_until_; }))
        break;
      lk.unlock();
      backoff = std::min<Duration>(backoff * 2, std::chrono::minutes(5));
    }
    std::lock_guard<std::mutex> lk(mu_);
    ++failed_;
    LogError("notification given up", {{"notifier", cfg_.name},
                                       {"target", n.target},
                                       {"condition", n.condition},
                                       {"status", n.firing ? "firing" : "resolved"},
                                       {"error", error}});
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  NotifierConfig cfg_;  // guarded by mu_ (name never changes)
  std::function<void()> changed_;
  std::deque<Notification> queue_;                    // guarded by mu_
  std::map<std::string, Notification> firing_;        // alertmanager: dedup key -> alert; mu_
  SteadyClock::time_point next_resend_;               // guarded by mu_
  bool stopping_ = false;                             // guarded by mu_
  SteadyClock::time_point drain_until_;               // guarded by mu_
  std::int64_t sent_ = 0, failed_ = 0, dropped_ = 0;  // guarded by mu_
  std::thread thread_;
};

std::optional<Freshness> FreshnessFromCatalogue(const std::vector<MetricFamilyData>& families,
                                                Duration max_age, double now) {
  if (max_age.count() <= 0) return std::nullopt;
  std::optional<double> newest;
  for (const auto& f : families)
    if (f.name == "restorewatch_backup_last_completion_timestamp_seconds")
      for (const auto& s : f.samples) newest = std::max(newest.value_or(s.value), s.value);
  Freshness out;
  const std::string objective = "backup.max_age " + FormatDuration(max_age);
  if (!newest) {
    out.missed = true;
    out.reason = "no complete backup found (" + objective + ")";
    return out;
  }
  const double age = std::max(0.0, now - *newest);
  const Duration age_d(static_cast<Duration::rep>(age) * 1000);
  out.missed = age > ToSeconds(max_age);
  out.reason = "newest backup completed " + FormatDuration(age_d) + " ago (" +
               FormatTimestamp(*newest) + "), " + (out.missed ? "more than " : "within ") +
               objective;
  // As the ticket-level RestorewatchBackupTooOld rule: held back while a backup is being taken
  // (a long full backup), but not past twice max_age (where the page-level rule fires).
  bool running = false;
  for (const auto& f : families)
    if (f.name == "restorewatch_backup_running")
      for (const auto& s : f.samples) running |= s.value == 1;
  if (out.missed && running && age <= 2 * ToSeconds(max_age)) {
    out.missed = false;
    out.reason += "; held back: a backup is being taken (not past twice the objective)";
  }
  return out;
}

NotificationHub::NotificationHub(std::string state_dir, Publish publish)
    : state_dir_(std::move(state_dir)), publish_(std::move(publish)) {}

NotificationHub::~NotificationHub() { Stop(Duration::zero()); }

void NotificationHub::Configure(const std::vector<NotifierConfig>& notifiers,
                                const std::vector<std::string>& targets) {
  std::vector<std::shared_ptr<NotifierChannel>> removed;
  std::vector<std::shared_ptr<NotifierChannel>> seed;
  std::vector<Notification> firing;
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::map<std::string, std::shared_ptr<NotifierChannel>> next;
    for (const auto& cfg : notifiers) {
      auto it = channels_.find(cfg.name);
      if (it != channels_.end()) {
        it->second->Update(cfg);
        next[cfg.name] = it->second;
        continue;
      }
      auto ch = std::make_shared<NotifierChannel>(cfg, [this] { PublishMetrics(); });
      ch->Start();
      next[cfg.name] = ch;
      if (cfg.type == NotifierType::kAlertmanager) seed.push_back(ch);
    }
    for (auto& [name, ch] : channels_)
      if (!next.count(name)) removed.push_back(ch);
    channels_ = std::move(next);
    // A new Alertmanager notifier re-asserts what is firing (the others only hear of changes).
    for (const auto& t : targets)
      for (const char* cond : {kConditionDrill, kConditionFreshness}) {
        const Condition& c = StateLocked(t, cond);
        if (c.firing)
          firing.push_back({t, cond, true, c.reason, c.stage, c.kind, c.run_id, c.since, c.since});
      }
  }
  // Outside mu_: Enqueue publishes the metrics, which takes mu_.
  for (const auto& n : firing)
    for (auto& ch : seed)
      if (ch->Wants(n.target)) ch->Enqueue(n);
  for (auto& ch : removed) ch->Stop(SteadyClock::now());
  PublishMetrics();
}

void NotificationHub::OnDrill(const DrillReport& r) {
  Notification n;
  n.target = r.target;
  n.condition = kConditionDrill;
  n.run_id = r.run_id;
  n.at = r.finished_at > 0 ? r.finished_at : NowUnix();
  const auto why = ClassifyDrillFailure(r);
  if (why) {
    n.reason = r.reason.empty() ? std::string("the drill did not pass") : r.reason;
    n.stage = why->stage;
    n.kind = why->kind;
  } else {
    n.reason = "drill " + r.run_id + " passed";
  }
  Transition(r.target, kConditionDrill, why.has_value(), n);
}

void NotificationHub::OnFreshness(const std::string& target, const Freshness& f, double at) {
  Notification n;
  n.target = target;
  n.condition = kConditionFreshness;
  n.reason = f.reason;
  n.at = at;
  Transition(target, kConditionFreshness, f.missed, n);
}

void NotificationHub::Transition(const std::string& target, const std::string& condition, bool bad,
                                 const Notification& event) {
  Notification n = event;
  // One line, whatever a tool's output put in it (Slack and PagerDuty summaries are lines too).
  for (char& ch : n.reason)
    if (ch == '\n' || ch == '\r') ch = ' ';
  std::vector<std::shared_ptr<NotifierChannel>> channels;
  bool refresh_only = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    Condition& c = StateLocked(target, condition);
    if (bad) {
      refresh_only = c.firing;  // an ongoing condition: never a second notification
      if (!c.firing) c.since = event.at;
      c.firing = true;
      c.reason = n.reason;
      c.stage = event.stage;
      c.kind = event.kind;
      c.run_id = event.run_id;
      n.firing = true;
      n.since = c.since;
    } else {
      if (!c.firing) return;
      n.firing = false;
      n.since = c.since;
      c = Condition{};
    }
    SaveLocked(target);
    for (auto& [name, ch] : channels_) channels.push_back(ch);
  }
  if (!refresh_only)
    LogInfo(n.firing ? "notifying: condition started" : "notifying: condition cleared",
            {{"target", target}, {"condition", condition}, {"reason", n.reason}});
  for (auto& ch : channels) {
    if (!ch->Wants(target)) continue;
    if (refresh_only)
      ch->Refresh(n);
    else
      ch->Enqueue(n);
  }
}

NotificationHub::Condition& NotificationHub::StateLocked(const std::string& target,
                                                         const std::string& condition) {
  if (!loaded_[target]) {
    loaded_[target] = true;
    const std::string path = state_dir_ + "/" + target + "/notifications.json";
    std::ifstream in(path);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      json::Value v;
      std::string error;
      if (!json::Parse(text.str(), &v, &error) || v.t != json::Value::T::kObj) {
        LogWarn("notification state unreadable; starting afresh",
                {{"file", path}, {"error", error}});
      } else {
        for (const auto& [cond, s] : v.o) {
          Condition c;
          const json::Value* f = s.Get("firing");
          c.firing = f != nullptr && f->t == json::Value::T::kBool && f->b;
          c.since = s.Num("since");
          c.reason = s.Str("reason");
          c.stage = s.Str("stage");
          c.kind = s.Str("kind");
          c.run_id = s.Str("run_id");
          states_[{target, cond}] = c;
        }
      }
    }
  }
  return states_[{target, condition}];
}

void NotificationHub::SaveLocked(const std::string& target) {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, c] : states_) {
    if (key.first != target || !c.firing) continue;
    json::PutKey(out, key.second.c_str(), first);
    first = false;
    out += "{\"firing\":true";
    json::PutKey(out, "since");
    json::PutNumber(out, c.since);
    for (const auto& [k, v] : {std::pair<const char*, const std::string*>{"reason", &c.reason},
                               {"stage", &c.stage},
                               {"kind", &c.kind},
                               {"run_id", &c.run_id}}) {
      json::PutKey(out, k);
      json::PutString(out, *v);
    }
    out += "}";
  }
  out += "}\n";
  const std::string dir = state_dir_ + "/" + target;
  const std::string path = dir + "/notifications.json", tmp = path + ".tmp";
  bool ok = false;
  ::mkdir(dir.c_str(), 0755);  // normally there already (the target's state); EEXIST is fine
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << out;
    f.flush();
    ok = static_cast<bool>(f);
  }
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    LogWarn("cannot save notification state (a restart may notify again)", {{"file", path}});
  }
}

void NotificationHub::PublishMetrics() {
  std::vector<std::shared_ptr<NotifierChannel>> channels;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& [name, ch] : channels_) channels.push_back(ch);
  }
  MetricFamilyData sent{"restorewatch_notifier_sent_total",
                        "Notifications the receiver accepted (2xx), re-sends included.",
                        MetricType::kCounter,
                        {}};
  MetricFamilyData failed{"restorewatch_notifier_failed_total",
                          "Notifications given up after max_attempts failed attempts.",
                          MetricType::kCounter,
                          {}};
  MetricFamilyData dropped{"restorewatch_notifier_dropped_total",
                           "Notifications dropped unsent (queue full: the oldest goes; or the "
                           "notifier was removed or stopped).",
                           MetricType::kCounter,
                           {}};
  MetricFamilyData queued{"restorewatch_notifier_queue_length",
                          "Notifications waiting to be sent.",
                          MetricType::kGauge,
                          {}};
  for (const auto& ch : channels) {
    const auto c = ch->counters();
    const std::vector<std::pair<std::string, std::string>> l{{"notifier", ch->name()}};
    sent.samples.push_back({l, static_cast<double>(c.sent)});
    failed.samples.push_back({l, static_cast<double>(c.failed)});
    dropped.samples.push_back({l, static_cast<double>(c.dropped)});
    queued.samples.push_back({l, static_cast<double>(c.queued)});
  }
  std::vector<MetricFamilyData> fams;
  if (!channels.empty()) fams = {sent, failed, dropped, queued};
  std::lock_guard<std::mutex> lk(publish_mu_);
  if (publish_) publish_(std::move(fams));
}

void NotificationHub::Stop(Duration drain) {
  std::map<std::string, std::shared_ptr<NotifierChannel>> channels;
  {
    std::lock_guard<std::mutex> lk(mu_);
    channels.swap(channels_);
  }
  const auto until = SteadyClock::now() + drain;
  // Signal all first, so their drains run side by side, then join each.
  std::vector<std::thread> stoppers;
  for (auto& [name, ch] : channels) stoppers.emplace_back([ch = ch, until] { ch->Stop(until); });
  for (auto& t : stoppers) t.join();
}

}  // namespace rw
