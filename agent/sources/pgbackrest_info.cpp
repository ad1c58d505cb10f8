#include "agent/sources/pgbackrest_info.h"

#include <cmath>

#include "agent/json.h"

namespace rw::pgbackrest {
namespace {

std::uint64_t U64(const json::Value* v, const char* key) {
  if (v == nullptr) return 0;
  const double d = v->Num(key);
  return d > 0 ? static_cast<std::uint64_t>(std::llround(d)) : 0;
}

int Int(const json::Value* v, const char* key) {
  return v == nullptr ? 0 : static_cast<int>(v->Num(key));
}

Backup ReadBackup(const json::Value& b) {
  Backup out;
  out.label = b.Str("label");
  out.type = b.Str("type");
  out.prior = b.Str("prior");
  const json::Value* ts = b.Get("timestamp");
  if (ts != nullptr) {
    out.start = ts->Num("start");
    out.stop = ts->Num("stop");
  }
  const json::Value* info = b.Get("info");
  out.size = U64(info, "size");
  const json::Value* repo = info != nullptr ? info->Get("repository") : nullptr;
  out.repo_size = U64(repo, "size");
  out.repo_delta = U64(repo, "delta");
  if (const json::Value* lsn = b.Get("lsn")) {
    out.start_lsn = lsn->Str("start");
    out.stop_lsn = lsn->Str("stop");
  }
  if (const json::Value* a = b.Get("archive")) {
    out.wal_start = a->Str("start");
    out.wal_stop = a->Str("stop");
  }
  const json::Value* err = b.Get("error");
  out.error = err != nullptr && err->t == json::Value::T::kBool && err->b;
  const json::Value* db = b.Get("database");
  out.db_id = Int(db, "id");
  out.repo_key = Int(db, "repo-key");
  return out;
}

}  // namespace

const Backup* StanzaInfo::Newest() const {
  const Backup* best = nullptr;
  for (const auto& b : backups)
    if (best == nullptr || b.stop >= best->stop) best = &b;
  return best;
}

const Backup* StanzaInfo::Find(const std::string& label) const {
  for (const auto& b : backups)
    if (b.label == label) return &b;
  return nullptr;
}

std::string StanzaInfo::VersionOf(const Backup& b) const {
  for (const auto& d : databases)
    if (d.id == b.db_id && (d.repo_key == b.repo_key || b.repo_key == 0)) return d.version;
  return {};
}

const ArchiveRange* StanzaInfo::ArchiveOf(const Backup& b) const {
  for (const auto& a : archives)
    if (a.db_id == b.db_id && (a.repo_key == b.repo_key || b.repo_key == 0)) return &a;
  return nullptr;
}

std::string StanzaInfo::Problem() const {
  if (status_code == 0 || status_code == 2) return {};
  // The stanza's status is a summary ("other" for an unreachable repository): the failing
  // repository's own message says more.
  for (const auto& r : repos)
    if (r.code != 0 && r.code != 2 && !r.message.empty())
      return repos.size() > 1 || r.message != status_message
                 ? "repo" + std::to_string(r.key) + ": " + r.message
                 : r.message;
  return status_message.empty() ? "status " + std::to_string(status_code) : status_message;
}

std::optional<StanzaInfo> ParseInfo(const std::string& text, const std::string& stanza,
                                    std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<StanzaInfo> {
    if (error != nullptr) *error = why;
    return std::nullopt;
  };
  json::Value root;
  std::string why;
  if (!json::Parse(text, &root, &why)) return fail("not JSON: " + why);
  if (root.t != json::Value::T::kArr) return fail("not a JSON array of stanzas");
  for (const auto& s : root.a) {
    if (s.t != json::Value::T::kObj || s.Str("name") != stanza) continue;
    StanzaInfo out;
    out.name = stanza;
    if (const json::Value* st = s.Get("status")) {
      out.status_code = static_cast<int>(st->Num("code"));
      out.status_message = st->Str("message");
      const json::Value* lock = st->Get("lock");
      const json::Value* bl = lock != nullptr ? lock->Get("backup") : nullptr;
      const json::Value* held = bl != nullptr ? bl->Get("held") : nullptr;
      out.backup_running = held != nullptr && held->t == json::Value::T::kBool && held->b;
    }
    if (const json::Value* repos = s.Get("repo"); repos && repos->t == json::Value::T::kArr)
      for (const auto& r : repos->a) {
        const json::Value* st = r.Get("status");
        out.repos.push_back({Int(&r, "key"), Int(st, "code"), st ? st->Str("message") : ""});
      }
    if (const json::Value* bs = s.Get("backup"); bs && bs->t == json::Value::T::kArr)
      for (const auto& b : bs->a)
        if (b.t == json::Value::T::kObj) out.backups.push_back(ReadBackup(b));
    if (const json::Value* as = s.Get("archive"); as && as->t == json::Value::T::kArr)
      for (const auto& a : as->a) {
        const json::Value* db = a.Get("database");
        out.archives.push_back(
            {a.Str("id"), Int(db, "id"), Int(db, "repo-key"), a.Str("min"), a.Str("max")});
      }
    if (const json::Value* ds = s.Get("db"); ds && ds->t == json::Value::T::kArr)
      for (const auto& d : ds->a) {
        Database db;
        db.id = Int(&d, "id");
        db.repo_key = Int(&d, "repo-key");
        db.version = d.Str("version");
        if (const json::Value* sid = d.Get("system-id")) db.system_id = sid->s;
        out.databases.push_back(db);
      }
    return out;
  }
  return fail("no stanza '" + stanza + "' in the output");
}

}  // namespace rw::pgbackrest

namespace rw::pgbackrest {
namespace {
std::string Trimmed(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}
}  // namespace

std::string VerifyProblem(const std::string& output) {
  static const char* kFileProblems[] = {"file missing '", "invalid checksum '", "invalid size '",
                                        "invalid result '"};
  bool ok = false, error = false;
  std::string file, error_line, invalid;
  std::size_t start = 0;
  while (start <= output.size()) {
    std::size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    const std::string line = Trimmed(output.substr(start, end - start));
    start = end + 1;
    if (line.empty()) continue;
    // "status: ok" / "status: error" of the text output (alone on its line, or after the log
    // prefix "P00   INFO: " when the console log repeats it).
    if (line == "status: ok") ok = true;
    if (line == "status: error") error = true;
    // A WAL segment missing from the archive is only a warning (expire may have removed it);
    // the backup's own WAL missing shows as the backup being invalid.
    const bool warning = line.find("WARN:") != std::string::npos;
    for (const char* p : kFileProblems) {
      const auto at = line.find(p);
      if (at != std::string::npos && !warning && file.empty()) file = line.substr(at);
    }
    if (error_line.empty() && line.find("ERROR:") != std::string::npos)
      error_line = line.substr(line.find("ERROR:"));
    if (invalid.empty() && line.find("backup: ") != std::string::npos &&
        line.find("status: invalid") != std::string::npos)
      invalid = line.substr(line.find("backup: "));
  }
  if (!file.empty()) return file;
  if (!error_line.empty()) return error_line;
  if (!invalid.empty()) return invalid;
  if (error) return "status: error";
  if (!ok) return "verify printed no status (expected \"status: ok\")";
  return {};
}

}  // namespace rw::pgbackrest
