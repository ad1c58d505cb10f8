// The agent's HTTP API beyond status: POST /api/v1/targets/NAME/drill (agent.enable_drill_api)
// and GET /api/v1/targets/NAME/history. Kept apart from agent.cpp's scheduler: a requested drill
// goes through RunDrillNow, the same path as a scheduled one (one drill at a time, the target's
// drill lock, RecordDrill), on a thread the agent owns and joins in Stop().
#include <toml++/toml.h>

#include <sstream>
#include <thread>

#include "agent/drill_log.h"
#include "agent/ledger.h"
#include "agent/log.h"
#include "agent/runtime/agent.h"
#include "agent/state_lock.h"
#include "exporters/history_report.h"
#include "exporters/http_server.h"
#include "exporters/runbook.h"

namespace rw {

Agent::DrillRequestResult Agent::RequestDrill(const std::string& name, std::string* detail) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!config_->FindTarget(name)) {
      *detail = "no target named '" + name + "'";
      return DrillRequestResult::kUnknownTarget;
    }
  }
  if (stop_.cancelled() || !env_) {
    *detail = "the agent is stopping";
    return DrillRequestResult::kStopping;
  }
  std::lock_guard<std::mutex> lk(requests_mu_);
  auto it = requested_.find(name);
  if (it != requested_.end()) {
    if (!it->second.done->load()) {
      *detail = "a drill of " + name + " was already requested and has not finished";
      return DrillRequestResult::kAlreadyRunning;
    }
    it->second.thread.join();
    requested_.erase(it);
  }
  if (DrillLockHeld(env_->state_dir, name, detail)) return DrillRequestResult::kAlreadyRunning;
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread t([this, name, done] {
    try {
      RunDrillNow(name);
    } catch (const std::exception& e) {
      LogWarn("requested drill could not run", {{"target", name}, {"error", e.what()}});
    }
    *done = true;
  });
  requested_[name] = RequestedDrill{std::move(t), done};
  LogInfo("drill requested through the API", {{"target", name}});
  *detail =
      "drill of " + name + " started; see /api/v1/status and /api/v1/targets/" + name + "/history";
  return DrillRequestResult::kStarted;
}

HttpAnswer Agent::DrillApi(const std::string& target) {
  std::string detail;
  const DrillRequestResult r = RequestDrill(target, &detail);
  HttpAnswer a;
  toml::table body;
  body.insert_or_assign("target", target);
  switch (r) {
    case DrillRequestResult::kStarted:
      a.status = 202;
      body.insert_or_assign("status", "started");
      break;
    case DrillRequestResult::kUnknownTarget:
      a.status = 404;
      body.insert_or_assign("status", "unknown_target");
      break;
    case DrillRequestResult::kAlreadyRunning:
      a.status = 409;
      body.insert_or_assign("status", "already_running");
      break;
    case DrillRequestResult::kStopping:
      a.status = 503;
      body.insert_or_assign("status", "stopping");
      break;
  }
  body.insert_or_assign(a.status == 202 ? "message" : "error", detail);
  std::ostringstream out;
  out << toml::json_formatter{body};
  a.body = out.str() + "\n";
  return a;
}

void Agent::JoinDrillRequests(std::chrono::steady_clock::time_point deadline) {
  std::map<std::string, RequestedDrill> reqs;
  {
    std::lock_guard<std::mutex> lk(requests_mu_);
    reqs.swap(requested_);
  }
  for (auto& [name, r] : reqs) {
    while (!r.done->load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (r.done->load()) {
      r.thread.join();
    } else {
      LogWarn("requested drill did not stop within the shutdown timeout", {{"target", name}});
      r.thread.detach();
    }
  }
}

HttpAnswer Agent::RunbookApi(const std::string& name) const {
  std::shared_ptr<const Config> cfg;
  {
    std::lock_guard<std::mutex> lk(mu_);
    cfg = config_;
  }
  HttpAnswer a;
  a.content_type = "text/plain; charset=utf-8";
  const TargetConfig* t = cfg->FindTarget(name);
  if (!t || !env_) {
    a.status = 404;
    a.body = "no target named '" + name + "'\n";
    return a;
  }
  RunbookResult rb = BuildRunbook(t->name, t->backup.type, t->source.Redacted(),
                                  env_->state_dir + "/" + t->name, NowUnix());
  if (!rb.found) {
    a.status = 404;
    a.body = rb.text + "\n";
    return a;
  }
  a.content_type = "text/markdown; charset=utf-8";
  a.body = rb.text;
  return a;
}

std::optional<std::string> Agent::LedgerJson(const std::string& name) const {
  std::shared_ptr<const Config> cfg;
  {
    std::lock_guard<std::mutex> lk(mu_);
    cfg = config_;
  }
  if (!cfg->FindTarget(name) || !env_) return std::nullopt;
  // The ledger alone: listing the catalogue here would put a slow listing on the request path
  // (its counts against the catalogue are restorewatch_backups_verified/_unverified).
  return LedgerToJson(name, VerificationLedger(env_->state_dir + "/" + name).Load(), nullptr);
}

std::optional<std::string> Agent::HistoryJson(const std::string& name, int last) const {
  std::shared_ptr<const Config> cfg;
  {
    std::lock_guard<std::mutex> lk(mu_);
    cfg = config_;
  }
  if (!cfg->FindTarget(name) || !env_) return std::nullopt;
  DrillHistoryView v;
  v.target = name;
  v.window = static_cast<std::size_t>(last);
  v.drills = DrillLog(env_->state_dir + "/" + name).Read(v.window, &v.unreadable);
  return RenderHistoryJson(v);
}

}  // namespace rw
