#include "agent/sources/barman_catalogue.h"

#include <cstdlib>

#include "agent/json.h"
#include "agent/units.h"

namespace rw::barman {
namespace {

// A member that barman writes as a string ("1796394810") or a number.
double NumberOf(const json::Value& o, const char* key) {
  const json::Value* v = o.Get(key);
  if (v == nullptr) return 0;
  if (v->t == json::Value::T::kNum) return v->AsDouble();
  if (v->t == json::Value::T::kStr) return std::strtod(v->s.c_str(), nullptr);
  return 0;
}

// "2026-12-04 14:33:17.778224+00:00" (fraction kept), else the whole-second "<key>_timestamp".
double TimeOf(const json::Value& o, const char* key) {
  if (auto t = ParseTimestamp(o.Str(key))) return *t;
  return NumberOf(o, (std::string(key) + "_timestamp").c_str());
}

bool Document(const std::string& text, const std::string& server, json::Value* doc,
              const json::Value** member, std::string* error) {
  std::string why;
  if (!json::Parse(text, doc, &why)) {
    *error = "barman's output is not JSON: " + why;
    return false;
  }
  if (doc->t != json::Value::T::kObj) {
    *error = "barman's output is not a JSON object";
    return false;
  }
  const std::string errors = JsonErrors(text);
  if (!errors.empty()) {
    *error = errors;
    return false;
  }
  *member = doc->Get(server.c_str());
  if (*member == nullptr) {
    *error = "barman's output has no entry for server '" + server + "'";
    return false;
  }
  return true;
}

}  // namespace

std::string JsonErrors(const std::string& text) {
  json::Value doc;
  if (!json::Parse(text, &doc) || doc.t != json::Value::T::kObj) return {};
  const json::Value* e = doc.Get("_ERROR");
  if (e == nullptr) return {};
  std::string out;
  if (e->t == json::Value::T::kStr) return e->s;
  for (const auto& m : e->a)
    if (m.t == json::Value::T::kStr) out += (out.empty() ? "" : "; ") + m.s;
  return out;
}

bool ParseListBackups(const std::string& text, const std::string& server,
                      std::vector<BarmanBackup>* out, std::string* error) {
  json::Value doc;
  const json::Value* list = nullptr;
  if (!Document(text, server, &doc, &list, error)) return false;
  if (list->t != json::Value::T::kArr) {
    *error = "barman list-backups: the entry of server '" + server + "' is not an array";
    return false;
  }
  out->clear();
  for (const auto& e : list->a) {
    if (e.t != json::Value::T::kObj || e.Str("backup_id").empty()) {
      *error = "barman list-backups: an entry without backup_id";
      return false;
    }
    BarmanBackup b;
    b.id = e.Str("backup_id");
    b.status = e.Str("status");
    b.end_time = TimeOf(e, "end_time");
    b.size_bytes = static_cast<std::uint64_t>(NumberOf(e, "size_bytes"));
    out->push_back(std::move(b));
  }
  return true;
}

bool ParseShowBackup(const std::string& text, const std::string& server, BarmanBackup* b,
                     std::string* error) {
  json::Value doc;
  const json::Value* s = nullptr;
  if (!Document(text, server, &doc, &s, error)) return false;
  if (s->t != json::Value::T::kObj || s->Str("backup_id").empty()) {
    *error = "barman show-backup: no backup_id for server '" + server + "'";
    return false;
  }
  b->id = s->Str("backup_id");
  b->status = s->Str("status");
  const int version = static_cast<int>(NumberOf(*s, "postgresql_version"));
  b->server_major = version >= 100000 ? version / 10000 : version / 100;
  // A backup that never finished (FAILED, STARTED) has no base_backup_information.
  if (const json::Value* i = s->Get("base_backup_information");
      i != nullptr && i->t == json::Value::T::kObj) {
    b->begin_time = TimeOf(*i, "begin_time");
    if (double end = TimeOf(*i, "end_time"); end > 0) b->end_time = end;
    b->begin_wal = i->Str("begin_wal");
    b->end_wal = i->Str("end_wal");
    b->begin_lsn = i->Str("begin_lsn");
    b->end_lsn = i->Str("end_lsn");
    b->timeline = static_cast<int>(NumberOf(*i, "timeline"));
    if (double size = NumberOf(*i, "disk_usage_with_wals_bytes"); size > 0)
      b->size_bytes = static_cast<std::uint64_t>(size);
  }
  return true;
}

const BarmanBackup* NewestComplete(const std::vector<BarmanBackup>& backups) {
  const BarmanBackup* best = nullptr;
  for (const auto& b : backups)
    if (b.complete() && (best == nullptr || b.end_time > best->end_time)) best = &b;
  return best;
}

}  // namespace rw::barman
