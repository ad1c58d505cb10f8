#include "agent/ledger.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <tuple>

#include "agent/errors.h"
#include "agent/json.h"
#include "agent/log.h"
#include "agent/state_file.h"
#include "agent/units.h"

namespace rw {
namespace {

constexpr const char* kLedgerFile = "ledger.toml";

bool SaneTime(double t) { return std::isfinite(t) && t >= 0; }

// One [[backup]] table into *e; false with *problem on a missing id or impossible values.
bool EntryFromToml(const toml::table& t, LedgerEntry* e, std::string* problem) {
  e->id = t["id"].value_or(std::string());
  if (e->id.empty()) {
    *problem = "a [[backup]] without id";
    return false;
  }
  e->kind = t["kind"].value_or(std::string());
  e->verdict = t["verdict"].value_or(std::string());
  if (e->verdict != "success" && e->verdict != "failure" && e->verdict != "error") {
    *problem = "backup " + e->id + ": verdict \"" + e->verdict + "\" is not success/failure/error";
    return false;
  }
  e->completed_at = t["completed_at"].value_or(0.0);
  e->last_drilled = t["last_drilled"].value_or(-1.0);
  if (auto p = t["last_passed"].value<double>()) e->last_passed = *p;
  e->drills = t["drills"].value_or(std::int64_t{-1});
  if (!SaneTime(e->completed_at) || !SaneTime(e->last_drilled) ||
      (e->last_passed && !SaneTime(*e->last_passed)) || e->drills < 1) {
    *problem = "backup " + e->id + ": impossible times or drill count";
    return false;
  }
  e->run_id = t["run_id"].value_or(std::string());
  e->reason = t["reason"].value_or(std::string());
  e->wal_verified_to = t["wal_verified_to"].value_or(std::string());
  e->wal_timeline = static_cast<int>(t["wal_timeline"].value_or(std::int64_t{0}));
  return true;
}

toml::table EntryToToml(const LedgerEntry& e) {
  toml::table t;
  t.insert_or_assign("id", e.id);
  t.insert_or_assign("kind", e.kind);
  t.insert_or_assign("completed_at", e.completed_at);
  t.insert_or_assign("verdict", e.verdict);
  t.insert_or_assign("last_drilled", e.last_drilled);
  t.insert_or_assign("last_drilled_text", FormatTimestamp(e.last_drilled));
  if (e.last_passed) t.insert_or_assign("last_passed", *e.last_passed);
  t.insert_or_assign("drills", e.drills);
  t.insert_or_assign("run_id", e.run_id);
  if (!e.reason.empty()) t.insert_or_assign("reason", e.reason);
  if (!e.wal_verified_to.empty()) {
    t.insert_or_assign("wal_verified_to", e.wal_verified_to);
    t.insert_or_assign("wal_timeline", static_cast<std::int64_t>(e.wal_timeline));
  }
  return t;
}

std::optional<Ledger> ParseLedger(const std::string& text, std::string* problem) {
  auto t = ParseState(text, problem);
  if (!t) return std::nullopt;
  Ledger out;
  const toml::node* backups = t->get("backup");
  if (backups == nullptr) return out;
  const toml::array* a = backups->as_array();
  if (a == nullptr) {
    *problem = "backup is not an array of tables";
    return std::nullopt;
  }
  for (const auto& n : *a) {
    const toml::table* bt = n.as_table();
    LedgerEntry e;
    if (bt == nullptr) {
      *problem = "backup holds something other than tables";
      return std::nullopt;
    }
    if (!EntryFromToml(*bt, &e, problem)) return std::nullopt;
    out[e.id] = std::move(e);
  }
  return out;
}

}  // namespace

VerificationLedger::VerificationLedger(std::string dir)
    : path_(std::move(dir) + "/" + kLedgerFile) {}

Ledger VerificationLedger::Load() {
  std::optional<std::string> text;
  try {
    text = ReadState(path_);
  } catch (const Error& e) {
    LogError("cannot read the verification ledger", {{"file", path_}, {"error", e.what()}});
    return {};
  }
  if (!text) return {};
  std::string problem;
  auto ledger = ParseLedger(*text, &problem);
  if (!ledger) {
    MoveAside(path_, problem,
              "an empty ledger: every backup counts as unverified until drilled again");
    return {};
  }
  return *ledger;
}

void VerificationLedger::Record(const DrillReport& r) {
  if (!r.backup || r.backup->id.empty()) return;
  Ledger ledger = Load();
  LedgerEntry& e = ledger[r.backup->id];
  e.id = r.backup->id;
  e.kind = r.backup->kind;
  e.completed_at = r.backup->completed_at;
  e.verdict = DrillResultName(r.result);
  e.last_drilled = r.finished_at;
  e.run_id = r.run_id;
  ++e.drills;
  if (r.result == DrillResult::kSuccess) {
    e.last_passed = r.finished_at;
    e.reason.clear();
    e.wal_verified_to = r.copy_lsn;
    e.wal_timeline = r.copy_timeline;
  } else {
    e.reason = r.reason;
  }
  // Bounded: the least recently drilled go first (backups long gone from the catalogue).
  while (ledger.size() > kMaxEntries) {
    auto oldest = std::min_element(ledger.begin(), ledger.end(), [](const auto& a, const auto& b) {
      return a.second.last_drilled < b.second.last_drilled;
    });
    ledger.erase(oldest);
  }
  toml::array backups;
  for (const auto& [id, entry] : ledger) backups.push_back(EntryToToml(entry));
  toml::table root;
  root.insert_or_assign("backup", std::move(backups));
  std::ostringstream out;
  out << toml::toml_formatter{root};
  WriteAtomically(path_, Framed(out.str()));
}

VerifiedCounts CountVerified(const std::vector<BackupInfo>& backups, const Ledger& ledger) {
  VerifiedCounts c;
  for (const auto& b : backups) {
    auto it = ledger.find(b.id);
    if (it != ledger.end() && it->second.verified())
      ++c.verified;
    else
      ++c.unverified;
  }
  return c;
}

std::optional<PickedBackup> PickBackup(const std::vector<BackupInfo>& backups, const Ledger& ledger,
                                       std::uint64_t seed) {
  if (backups.empty()) return std::nullopt;
  // Sorted by id first, so the same seed picks the same backup whatever order a listing has.
  std::vector<const BackupInfo*> sorted;
  for (const auto& b : backups) sorted.push_back(&b);
  std::sort(sorted.begin(), sorted.end(),
            [](const BackupInfo* a, const BackupInfo* b) { return a->id < b->id; });
  std::vector<const BackupInfo*> never, failing, verified;
  for (const BackupInfo* b : sorted) {
    auto it = ledger.find(b->id);
    if (it == ledger.end())
      never.push_back(b);
    else if (!it->second.verified())
      failing.push_back(b);
    else
      verified.push_back(b);
  }
  std::mt19937_64 rng(seed);
  auto at_random = [&](const std::vector<const BackupInfo*>& tier) {
    return tier[std::uniform_int_distribution<std::size_t>(0, tier.size() - 1)(rng)];
  };
  const std::string of = " of " + std::to_string(backups.size()) + " backups";
  PickedBackup p;
  const BackupInfo* chosen = nullptr;
  if (!never.empty()) {
    chosen = at_random(never);
    p.reason = "never drilled (" + std::to_string(never.size()) + of + "), chosen at random";
  } else if (!failing.empty()) {
    chosen = at_random(failing);
    p.reason = "its last drill did not pass (" + std::to_string(failing.size()) + of +
               " unverified), chosen at random";
  } else {
    // Every one verified: the least recently verified (ties: the first by id).
    chosen = *std::min_element(verified.begin(), verified.end(), [&](const auto* a, const auto* b) {
      return ledger.at(a->id).last_passed.value_or(0) < ledger.at(b->id).last_passed.value_or(0);
    });
    p.reason = "all " + std::to_string(backups.size()) +
               " backups verified; the least recently verified (last passed " +
               FormatTimestamp(ledger.at(chosen->id).last_passed.value_or(0)) + ")";
  }
  p.backup = *chosen;
  // Newest by completion time; backups completed within the same second (catalogue times are
  // whole seconds) are ordered by start time, then by id, so exactly one of them is the newest.
  auto key = [](const BackupInfo& b) { return std::tie(b.completed_at, b.started_at, b.id); };
  p.newest = std::none_of(backups.begin(), backups.end(),
                          [&](const BackupInfo& b) { return key(b) > key(*chosen); });
  return p;
}

std::string LedgerToJson(const std::string& target, const Ledger& ledger,
                         const BackupCatalogue* catalogue) {
  std::string out = "{";
  json::PutKey(out, "target", true);
  json::PutString(out, target);
  if (catalogue != nullptr) {
    VerifiedCounts c = CountVerified(catalogue->backups, ledger);
    json::PutKey(out, "verified");
    json::PutNumber(out, static_cast<double>(c.verified));
    json::PutKey(out, "unverified");
    json::PutNumber(out, static_cast<double>(c.unverified));
    // The catalogue's backups not verified, newest first: what the next random drills will take.
    std::vector<const BackupInfo*> todo;
    for (const auto& b : catalogue->backups) {
      auto it = ledger.find(b.id);
      if (it == ledger.end() || !it->second.verified()) todo.push_back(&b);
    }
    std::sort(todo.begin(), todo.end(), [](const BackupInfo* a, const BackupInfo* b) {
      return a->completed_at > b->completed_at;
    });
    json::PutKey(out, "unverified_backups");
    out += "[";
    for (std::size_t i = 0; i < todo.size(); ++i) {
      if (i) out += ",";
      out += "{";
      json::PutKey(out, "id", true);
      json::PutString(out, todo[i]->id);
      json::PutKey(out, "kind");
      json::PutString(out, todo[i]->kind);
      json::PutKey(out, "completed_at");
      json::PutNumber(out, todo[i]->completed_at);
      out += "}";
    }
    out += "]";
  }
  // Most recently drilled first.
  std::vector<const LedgerEntry*> entries;
  for (const auto& [id, e] : ledger) entries.push_back(&e);
  std::sort(entries.begin(), entries.end(), [](const LedgerEntry* a, const LedgerEntry* b) {
    return a->last_drilled > b->last_drilled;
  });
  json::PutKey(out, "backups");
  out += "[";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const LedgerEntry& e = *entries[i];
    if (i) out += ",";
    out += "{";
    json::PutKey(out, "id", true);
    json::PutString(out, e.id);
    json::PutKey(out, "kind");
    json::PutString(out, e.kind);
    json::PutKey(out, "completed_at");
    json::PutNumber(out, e.completed_at);
    json::PutKey(out, "verdict");
    json::PutString(out, e.verdict);
    json::PutKey(out, "verified");
    out += e.verified() ? "true" : "false";
    json::PutKey(out, "last_drilled");
    json::PutNumber(out, e.last_drilled);
    json::PutKey(out, "last_passed");
    if (e.last_passed)
      json::PutNumber(out, *e.last_passed);
    else
      out += "null";
    json::PutKey(out, "drills");
    json::PutNumber(out, static_cast<double>(e.drills));
    json::PutKey(out, "run_id");
    json::PutString(out, e.run_id);
    json::PutKey(out, "reason");
    json::PutString(out, e.reason);
    if (!e.wal_verified_to.empty()) {
      json::PutKey(out, "wal_verified_to");
      json::PutString(out, e.wal_verified_to);
      json::PutKey(out, "wal_timeline");
      json::PutNumber(out, e.wal_timeline);
    }
    out += "}";
  }
  out += "]}";
  return out;
}

}  // namespace rw
