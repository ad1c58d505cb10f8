#include "agent/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "agent/backup_source.h"
#include "agent/config_reader.h"
#include "agent/errors.h"
#include "agent/path_guard.h"
#include "agent/secrets.h"

namespace rw {
namespace {

using namespace config;

// ---------------------------------------------------------------------------------------------
// Validation helpers.

bool ValidTargetName(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

bool ValidListen(const std::string& s) {
  const std::size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  const std::string host = s.substr(0, colon), port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  if (std::stoi(port) > 65535) return false;
  if (host.find(':') != std::string::npos)  // IPv6 needs brackets: [::1]:9847
    return host.size() > 2 && host.front() == '[' && host.back() == ']';
  return true;
}

bool IsNumber(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  (void)v;
  return end == s.c_str() + s.size() && errno == 0 && s.find_first_of("xXnN") == std::string::npos;
}

// A SQL-style literal: single quotes, a quote inside doubled ('it''s').
bool IsQuoted(const std::string& s) {
  if (s.size() < 2 || s.front() != '\'' || s.back() != '\'') return false;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] != '\'') continue;
    if (i + 2 < s.size() && s[i + 1] == '\'') {
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

// expect: an optional operator (=, ==, !=, <>, <, <=, >, >=) and a number, a single-quoted string
// or null (null only with equality). The same grammar as checks/drill/sql_check.cpp, which
// evaluates it.
bool ValidExpect(const std::string& raw, std::string* why) {
  std::string s = raw;
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  static const char* const kOps[] = {"==", "!=", "<>", "<=", ">=", "=", "<", ">"};
  std::string op;
  for (const char* o : kOps) {
    if (s.rfind(o, 0) == 0) {
      op = o;
      break;
    }
  }
  std::string value = s.substr(op.size());
  value.erase(0, value.find_first_not_of(" \t"));
  if (value.empty()) {
    *why = "expect needs a value, e.g. \">= 1\", \"= 0\" or \"'ok'\"";
    return false;
  }
  if (IsNumber(value) || IsQuoted(value)) return true;
  std::string lower = value;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "null") {
    if (op.empty() || op == "=" || op == "==" || op == "!=" || op == "<>") return true;
    *why = "null can only be compared with = or !=";
    return false;
  }
  *why =
      "expect must be an operator (=, !=, <>, <, <=, >, >=) followed by a number, a quoted "
      "string or null, e.g. \">= 1\" or \"= 'ok'\" (inside quotes, write '' for ')";
  return false;
}

// "schema.table:keycol"
bool ParseAppendOnly(const std::string& s, AppendOnlyTable* out) {
  const std::size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  out->table = s.substr(0, colon);
  out->key = s.substr(colon + 1);
  const std::size_t dot = out->table.find('.');
  return !out->key.empty() && dot != std::string::npos && dot > 0 && dot + 1 < out->table.size();
}

bool IsQualifiedTable(const std::string& s) {
  const std::size_t dot = s.find('.');
  return dot != std::string::npos && dot > 0 && dot + 1 < s.size();
}

// ---------------------------------------------------------------------------------------------
// The schema. Each key is one line; defaults are those of the structs in config.h.

void ReadAgent(Reader& r, AgentConfig* a) {
  if (r.Name("listen", &a->listen) && !ValidListen(a->listen))
    r.Error("listen", "must be host:port with a port 0-65535, e.g. \"127.0.0.1:9847\"");
  r.Name("state_dir", &a->state_dir);
  r.Name("work_dir", &a->work_dir);
  if (auto why = UnsafeWorkDir(a->work_dir, a->state_dir)) r.Error("work_dir", *why);
  r.Name("pg_bin_dir", &a->pg_bin_dir);
  r.Name("run_as", &a->run_as);
  r.Choice("log_format", &a->log_format, {{"text", LogFormat::kText}, {"json", LogFormat::kJson}});
  r.Choice("log_level", &a->log_level,
           {{"trace", std::string("trace")},
            {"debug", std::string("debug")},
            {"info", std::string("info")},
            {"warn", std::string("warn")},
            {"error", std::string("error")}});
  r.Dur("shutdown_timeout", &a->shutdown_timeout);
  r.Str("web_config_file", &a->web_config_file);
  r.Bool("enable_drill_api", &a->enable_drill_api);
  r.Int("max_concurrent_drills", &a->max_concurrent_drills, 1, 64);
}

// [target.backup] max_age_by_kind = { full = "8d", incr = "26h" }: the kinds the source makes.
void ReadMaxAgeByKind(Reader& m, BackupConfig* b) {
  std::vector<std::string> kinds;
  if (b->type == "pg_dump") kinds = {"logical"};
  if (b->type == "basebackup" || b->type == "barman") kinds = {"full"};
  if (b->type == "pgbackrest") kinds = {"full", "diff", "incr"};
  std::vector<std::string> keys;
  for (auto&& [k, v] : m.table()) keys.emplace_back(k.str());
  for (const auto& kind : keys) {
    Duration d{};
    if (!m.Dur(kind.c_str(), &d, Reader::Zero::kRefused)) continue;
    std::string known;
    for (const auto& k : kinds) known += (known.empty() ? "\"" : ", \"") + k + "\"";
    if (!kinds.empty() && std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
      m.Error(kind.c_str(), "backup type \"" + b->type + "\" makes no backups of kind \"" + kind +
                                "\" (its kinds: " + known + ")");
    else if (kind.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
      m.Error(kind.c_str(), "a kind is written with a-z, 0-9, '_' and '-'");
    else
      b->max_age_by_kind[kind] = d;
  }
}

void ReadBackup(Reader& r, BackupConfig* b) {
  bool expanded = false;
  if (r.Str("type", &b->type, &expanded)) {
    const std::vector<std::string> types = BackupSourceTypes();
    if (std::find(types.begin(), types.end(), b->type) == types.end()) {
      std::string known;
      for (const auto& t : types) known += (known.empty() ? "" : ", ") + t;
      r.Error("type",
              "unknown backup type " + Shown(b->type, expanded) + " (known: " + known + ")");
    }
  }
  if (r.StrList("path", &b->paths, /*accept_single=*/true)) {
    for (const auto& p : b->paths)
      if (p.empty()) r.Error("path", "must not contain an empty path");
  }
  // The source's own keys, read by its row of the source table.
  if (const SourceOptionReaders* own = BackupSourceOptionReaders(b->type); own && own->backup)
    own->backup(r, b);
  r.Dur("max_age", &b->max_age);
  r.Table("max_age_by_kind", [&](Reader& m) { ReadMaxAgeByKind(m, b); });
  r.Dur("min_retention", &b->min_retention);
  r.Dur("pitr_window", &b->pitr_window);
  r.Dur("settle", &b->settle);
  r.Dur("catalogue_interval", &b->catalogue_interval, Reader::Zero::kRefused);
  ReadCopiesBackupOptions(r, b);  // copies, verify_checksum (agent/copies_options.h)
  r.Table("s3", [&](Reader& s3) { ReadS3Options(s3, &b->s3); });
  // An s3:// wal_archive is checked with the other s3:// locations (ValidateS3).
  if (r.Str("wal_archive", &b->wal_archive) && !IsS3Url(b->wal_archive)) {
    if (b->wal_archive.empty() || b->wal_archive[0] != '/')
      r.Error("wal_archive",
              "must be an absolute path (the directory archive_command writes into)");
    else if (b->wal_archive.find_first_of("'\"\\$`") != std::string::npos)
      r.Error("wal_archive",
              "must not contain quotes, backslashes, '$' or '`' (it goes into the "
              "sandbox's restore_command)");
  }
  if (b->type == "pg_dump" && b->paths.empty() && r.Take("path") == nullptr)
    r.Error("path", "is required for backup type \"pg_dump\" (the directory holding the dumps)");
}

// drill.pick = "random" with a physical source: an older backup can be recovered to a point
// only if the point is after its end. Refuses what no older backup could prove.
void CheckPick(Reader& r, const DrillConfig& d, const std::string& backup_type) {
  if (d.pick != DrillPick::kRandom || !d.recovery_target_given) return;
  const std::string& t = d.recovery_target;
  const bool physical = backup_type != "pg_dump";
  if (!physical) return;
  if (!t.empty() && t[0] == '-')
    r.Error("pick", "pick = \"random\" cannot be combined with recovery_target = \"" + t +
                        "\": a backup picked from the last " + t.substr(1) +
                        " has no commit that old after it to recover to; use \"immediate\" (each "
                        "backup's own consistent end), \"latest\", \"random\" or \"snapshot\"");
  else if (t != "latest" && t != "immediate" && t != "random" && t != "snapshot")
    r.Error("pick",
            "pick = \"random\" cannot be combined with a fixed recovery_target time (\"" + t +
                "\"): a backup that ended after it cannot be recovered to it, and one long "
                "before it proves only the WAL up to it; leave recovery_target out (an older "
                "backup then recovers to its own consistent end) or use \"immediate\", "
                "\"latest\", \"random\" or \"snapshot\"");
}

void ReadDrill(Reader& r, DrillConfig* d, const std::string& backup_type) {
  std::string schedule;
  if (r.Str("schedule", &schedule)) {
    std::string why;
    d->schedule = CronSchedule::Parse(schedule, &why);
    if (!d->schedule) r.Error("schedule", "invalid cron schedule: " + why);
  }
  r.Dur("jitter", &d->jitter);
  r.Dur("timeout", &d->timeout, Reader::Zero::kRefused);
  r.Table("stage_timeouts", [&](Reader& s) {
    s.Dur("discover", &d->stage_timeouts.discover, Reader::Zero::kRefused);
    s.Dur("restore", &d->stage_timeouts.restore, Reader::Zero::kRefused);
    s.Dur("checks", &d->stage_timeouts.checks, Reader::Zero::kRefused);
  });
  r.Dur("rto", &d->rto);
  r.Choice("sandbox", &d->sandbox,
           {{"ephemeral", SandboxKind::kEphemeral}, {"scratch", SandboxKind::kScratch}});
  const bool has_dsn = r.Take("scratch_dsn") != nullptr;
  r.Conn("scratch_dsn", &d->scratch);
  std::string password_file;
  if (r.Str("scratch_password_file", &password_file)) {
    const toml::node* n = r.Take("scratch_password_file");
    std::string password;
    if (r.loader().ReadPasswordFile(password_file, LineOf(*n), r.Key("scratch_password_file"),
                                    &password)) {
      if (!d->scratch.password.empty())
        r.Error("scratch_password_file",
                "scratch_dsn already has a password; give it in one place");
      else
        d->scratch.password = password;
    }
  }
  if (d->sandbox == SandboxKind::kScratch && !has_dsn)
    r.Error("scratch_dsn", "is required when sandbox = \"scratch\"");
  if (d->sandbox != SandboxKind::kScratch) {
    if (has_dsn) r.Error("scratch_dsn", "is only used with sandbox = \"scratch\"");
    if (r.Take("scratch_password_file") != nullptr)
      r.Error("scratch_password_file", "is only used with sandbox = \"scratch\"");
  }
  if (const SourceOptionReaders* own = BackupSourceOptionReaders(backup_type); own && own->drill)
    own->drill(r, d);
  d->recovery_target_given = r.table().get("recovery_target") != nullptr;
  r.Choice("pick", &d->pick, {{"latest", DrillPick::kLatest}, {"random", DrillPick::kRandom}});
  CheckPick(r, *d, backup_type);
  r.Name("database", &d->database);
  ReadCopiesDrillOptions(r, d);  // from (agent/copies_options.h)
}

void ReadFreshness(Reader& t, const std::string& table, const toml::node& v, ChecksConfig* c) {
  const std::string key = t.Key(table);
  std::string column;
  if (!StringNode(t.loader(), v, key, &column)) return;
  if (!IsQualifiedTable(table))
    t.loader().Error(LineOf(v), key, "table must be written \"schema.table\"");
  else if (column.empty())
    t.loader().Error(LineOf(v), key, "column must not be empty");
  else
    c->freshness[table] = column;
}

void ReadChecks(Reader& r, ChecksConfig* c) {
  r.Choice("compare", &c->compare,
           {{"churn", CompareMode::kChurn}, {"exact", CompareMode::kExact}});
  r.Bool("schema", &c->schema);
  r.BoolOrTable("row_count", &c->row_count.enabled, [&](Reader& t) {
    t.Int("slack_rows", &c->row_count.slack_rows, 0, std::numeric_limits<std::int64_t>::max());
    // Removed: a relative tolerance let a broken backup pass. Say so instead of "unknown key".
    if (t.Take("fallback_tolerance") != nullptr)
      t.Error("fallback_tolerance",
              "was removed: a difference that no activity sample explains is now reported as "
              "unverified (an error), never absorbed by a tolerance; delete this key, and run the "
              "daemon so that its samples cover your backups");
  });
  r.BoolOrTable("checksum", &c->checksum.enabled, [&](Reader& t) {
    std::vector<std::string> specs;
    if (t.StrList("append_only", &specs)) {
      for (const auto& s : specs) {
        AppendOnlyTable a;
        if (ParseAppendOnly(s, &a))
          c->checksum.append_only.push_back(a);
        else
          t.Error("append_only",
                  "entries must look like \"schema.table:key_column\", got \"" + s + "\"");
      }
    }
    t.Int("sample_keys", &c->checksum.sample_keys, 0, 1000);
  });
  r.Table("freshness", [&](Reader& t) {
    // "schema.table" = "column"; an unquoted schema.table is a dotted key, i.e. a table of
    // tables, and is accepted as well.
    for (auto&& [k, v] : t.table()) {
      const std::string top(k.str());
      t.Take(top.c_str());
      if (const auto* schema = v.as_table()) {
        for (auto&& [k2, v2] : *schema) ReadFreshness(t, top + "." + std::string(k2.str()), v2, c);
      } else {
        ReadFreshness(t, top, v, c);
      }
    }
  });
  r.Bool("amcheck", &c->amcheck);
  r.StrList("exclude_tables", &c->exclude_tables);
  r.Dur("stats_settle", &c->stats_settle);
  std::set<std::string> sql_names;
  r.TableArray("sql", [&](Reader& t, std::size_t) {
    SqlCheckConfig s;
    if (t.Require("name") && t.Name("name", &s.name) && !sql_names.insert(s.name).second)
      t.Error("name", "duplicate sql check name \"" + s.name + "\"");
    if (t.Require("query")) t.Name("query", &s.query);
    t.Bool("compare_source", &s.compare_source);
    if (t.Str("expect", &s.expect)) {
      std::string why;
      if (!ValidExpect(s.expect, &why)) t.Error("expect", why);
    } else if (!s.compare_source && t.Take("expect") == nullptr) {
      t.Error("expect", "is required unless compare_source = true");
    }
    c->sql.push_back(s);
  });
}

void ReadTarget(Reader& r, std::map<std::string, int>* names, TargetConfig* t) {
  if (r.Require("name") && r.Str("name", &t->name)) {
    if (!ValidTargetName(t->name)) {
      r.Error("name", "must be lowercase letters, digits, '_' or '-', got \"" + t->name + "\"");
    } else {
      const int line = LineOf(*r.Take("name"));
      const auto [it, inserted] = names->emplace(t->name, line);
      // Keys read the target's name from here on, except in a duplicate, where the index is
      // the only unambiguous name.
      if (inserted)
        r.set_path("target." + t->name);
      else
        r.Error("name", "duplicate target name \"" + t->name + "\" (first at line " +
                            std::to_string(it->second) + ")");
    }
  }
  if (r.Require("source")) r.Conn("source", &t->source);
  std::string password_file;
  if (r.Str("password_file", &password_file)) {
    std::string password;
    if (r.loader().ReadPasswordFile(password_file, LineOf(*r.Take("password_file")),
                                    r.Key("password_file"), &password)) {
      if (!t->source.password.empty())
        r.Error("password_file",
                "the source conninfo already has a password; give it in one place");
      else
        t->source.password = password;
    }
  }

  if (const toml::node* n = r.Take("standbys")) {
    const auto* a = n->as_array();
    if (a == nullptr) r.TypeError("standbys", *n, "an array of conninfo strings or tables");
    for (std::size_t i = 0; a != nullptr && i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      const std::string key = r.Key("standbys") + "[" + std::to_string(i) + "]";
      ConnSpec spec;
      std::string name;
      if (const auto* tbl = e.as_table()) {
        Reader s(r.loader(), *tbl, key);
        s.Name("name", &name);
        if (!s.Require("dsn") || !s.Conn("dsn", &spec)) continue;
      } else if (!ConnNode(r.loader(), e, key, &spec)) {
        continue;
      }
      // A standby is a copy of the source: it shares the source's roles, hence its password.
      if (spec.password.empty()) spec.password = t->source.password;
      if (name.empty()) name = spec.Get("application_name").value_or("");
      if (name.empty()) {
        // Only the first host of a list (and its port) names the standby.
        auto first = [](const std::optional<std::string>& v, const char* fallback) {
          const std::string s = v.value_or("").substr(0, v.value_or("").find(','));
          return s.empty() ? std::string(fallback) : s;
        };
        name = first(spec.Get("host"), "localhost") + ":" + first(spec.Get("port"), "5432");
      }
      // "source" labels the primary's own restorewatch_pg_in_recovery{server} series.
      if (name == "source")
        r.loader().Error(LineOf(e), key,
                         "a standby cannot be named \"source\" (it labels the primary)");
      else if (std::find(t->standby_names.begin(), t->standby_names.end(), name) !=
               t->standby_names.end())
        r.loader().Error(LineOf(e), key,
                         "duplicate standby name \"" + name + "\" (give each a name = \"...\")");
      t->standbys.push_back(spec);
      t->standby_names.push_back(name);
    }
  }

  r.Dur("monitor_interval", &t->monitor_interval, Reader::Zero::kRefused);
  r.Dur("connect_timeout", &t->connect_timeout, Reader::Zero::kRefused);
  r.Dur("statement_timeout", &t->statement_timeout);
  r.Dur("drill_statement_timeout", &t->drill_statement_timeout);
  r.Dur("lock_timeout", &t->lock_timeout);

  bool has_backup = false;
  r.Table("backup", [&](Reader& b) {
    has_backup = true;
    ReadBackup(b, &t->backup);
  });
  if (!has_backup && r.Take("backup") == nullptr)
    r.Error("backup", "a [target.backup] table with path is required");
  r.Table("drill", [&](Reader& d) { ReadDrill(d, &t->drill, t->backup.type); });
  r.Table("checks", [&](Reader& c) { ReadChecks(c, &t->checks); });
  ValidateCopies(r, *t);
  ValidateS3(r, *t);
}

}  // namespace

ConnSpec::ConnSpec(const std::string& conninfo, std::string pw) {
  std::string why;
  std::optional<ConnSpec> parsed = Parse(conninfo, &why);
  if (!parsed) throw Error(ErrorKind::kConfig, "malformed conninfo: " + why);
  *this = std::move(*parsed);
  if (!pw.empty()) password = std::move(pw);
}

std::optional<ConnSpec> ConnSpec::Parse(const std::string& conninfo, std::string* error) {
  ConnKeywords parsed;
  if (!ParseConnInfo(conninfo, &parsed, error)) return std::nullopt;
  ConnSpec spec;
  for (auto& kw : parsed) {
    if (IsSecretKeyword(kw.key)) RegisterSecret(kw.value);
    if (kw.key == "password")
      spec.password = std::move(kw.value);
    else
      spec.keywords.push_back(std::move(kw));
  }
  return spec;
}

std::optional<std::string> ConnSpec::Get(const std::string& key) const {
  if (key == "password") return password.empty() ? std::nullopt : std::optional(password);
  const std::string* v = FindKeyword(keywords, key);
  return v != nullptr ? std::optional(*v) : std::nullopt;
}

ConnKeywords ConnSpec::ForLibpq() const {
  ConnKeywords out = keywords;
  RemoveKeyword(&out, "password");
  if (!password.empty()) out.push_back({"password", password});
  return out;
}

std::string ConnSpec::Redacted() const {
  ConnKeywords shown = keywords;
  RemoveKeyword(&shown, "password");
  RemoveKeyword(&shown, "sslpassword");
  return FormatConnInfo(shown);
}

const TargetConfig* Config::FindTarget(const std::string& name) const {
  for (const auto& t : targets)
    if (t.name == name) return &t;
  return nullptr;
}

std::string ConfigError::ToString() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

ConfigLoad LoadConfigText(const std::string& text, const std::string& file) {
  ConfigLoad result;
  toml::table root;
  try {
    root = toml::parse(std::string_view(text), std::string_view(file));
  } catch (const toml::parse_error& e) {
    result.errors.push_back(ConfigError{file, static_cast<int>(e.source().begin.line), "",
                                        "syntax error: " + std::string(e.description())});
    return result;
  }

  Loader loader(file);
  Config config;
  config.path = file;
  {
    Reader r(loader, root, "");
    r.Table("agent", [&](Reader& a) { ReadAgent(a, &config.agent); });
    // Zero targets is valid: the agent then serves its HTTP endpoint and nothing else, which
    // the daemon logs as a warning.
    std::map<std::string, int> names;
    const toml::node* targets = r.Take("target");
    if (targets != nullptr && targets->is_table()) {
      r.Error("target", "targets are an array of tables: write [[target]], not [target]");
    } else {
      r.TableArray("target", [&](Reader& t, std::size_t) {
        TargetConfig target;
        ReadTarget(t, &names, &target);
        config.targets.push_back(std::move(target));
      });
    }
    std::vector<std::string> target_names;
    for (const auto& t : config.targets) target_names.push_back(t.name);
    ReadNotifiers(r, target_names, &config.notifiers);
  }
  result.errors = loader.Finish();
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

ConfigLoad LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigLoad result;
    result.errors.push_back(
        ConfigError{path, 0, "", std::string("cannot read config file: ") + std::strerror(errno)});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return LoadConfigText(text.str(), path);
}

}  // namespace rw
