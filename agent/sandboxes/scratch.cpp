#include "agent/sandboxes/scratch.h"

#include <optional>
#include <set>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/pg/pg_conn.h"

namespace rw {
namespace {

// [a-z0-9_] of s (lowercased); anything else becomes '_'.
std::string IdentSafe(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
  return out;
}

// The scratch conninfo (already parsed by libpq at config load, agent/pg/conninfo.h) in keyword
// form without password, sslpassword and dbname, so that a dbname can be appended and the result
// put on a command line.
std::string BaseConnInfo(const ConnSpec& spec) {
  ConnKeywords kw = spec.keywords;
  for (const char* k : {"password", "sslpassword", "dbname"}) RemoveKeyword(&kw, k);
  return FormatConnInfo(kw);
}

std::string OneLineOf(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return s;
}

// The owner a mark names, when it is provably gone (see orphans.h); a mark without an identity
// (written by an older version) or of another host never is.
std::optional<ProcessIdentity> GoneOwner(const std::string& mark) {
  if (mark.rfind("restorewatch:", 0) != 0) return std::nullopt;
  auto space = mark.find(' ');
  if (space == std::string::npos) return std::nullopt;
  auto id = ParseIdentity(mark.substr(space));
  if (!id || id->host.empty()) return std::nullopt;
  if (OwnerStateOf(*id) != OwnerState::kGone) return std::nullopt;
  return id;
}

// Drops the databases (then roles) on the scratch server whose mark names an owner that is gone.
// Never an unmarked one, one whose owner lives, or one marked on another host.
std::vector<std::string> SweepOn(pqxx::connection& c, int major, const std::string& where) {
  std::vector<std::string> dropped;
  pqxx::nontransaction tx(c);
  auto dbs = tx.exec(
      "select datname, shobj_description(oid, 'pg_database') from pg_database "
      "where datname like 'restorewatch\\_%' and shobj_description(oid, 'pg_database') like "
      "'restorewatch:%' order by datname");
  for (const auto& row : dbs) {
    std::string name = row[0].c_str(), mark = row[1].c_str();
    auto owner = GoneOwner(mark);
    if (!owner) continue;
    try {
      // Re-check the mark in the statement's own snapshot: drop only what still carries it.
      auto again = tx.exec_params(
          "select 1 from pg_database where datname = $1 and "
          "shobj_description(oid, 'pg_database') = $2",
          name, mark);
      if (again.empty()) continue;
      tx.exec0("drop database " + tx.quote_name(name) + (major >= 13 ? " with (force)" : ""));
      dropped.push_back(name);
      LogWarn(
          "dropped a scratch database left by a previous run",
          {{"database", name}, {"server", where}, {"owner_pid", static_cast<int64_t>(owner->pid)}});
    } catch (const std::exception& e) {
      LogError("cannot drop a leftover scratch database",
               {{"database", name}, {"server", where}, {"error", OneLineOf(e.what())}});
    }
  }
  auto roles = tx.exec(
      "select rolname, shobj_description(oid, 'pg_authid') from pg_roles "
      "where shobj_description(oid, 'pg_authid') like 'restorewatch:%' order by rolname");
  for (const auto& row : roles) {
    std::string name = row[0].c_str(), mark = row[1].c_str();
    if (!GoneOwner(mark)) continue;
    try {
      tx.exec0("drop role " + tx.quote_name(name));
      LogWarn("dropped a scratch role left by a previous run", {{"role", name}, {"server", where}});
    } catch (const std::exception& e) {
      // It still owns something in a database that is not ours: leave it.
      LogWarn("cannot drop a leftover scratch role",
              {{"role", name}, {"server", where}, {"error", OneLineOf(e.what())}});
    }
  }
  return dropped;
}

SessionLimits ScratchLimits(Duration connect_timeout) {
  SessionLimits limits;
  limits.connect_timeout = connect_timeout;
  limits.statement_timeout = std::chrono::minutes(10);  // create/drop database copy files
  limits.lock_timeout = std::chrono::seconds(30);
  limits.read_only = false;
  limits.application_name = "restorewatch-scratch";
  return limits;
}

// A database (or role) this object created, and whether it is still there to drop.
struct Created {
  std::string name;
  bool dropped = false;
};

// Databases on a server the agent does not own: each created database carries ScratchMark() in
// its comment, and only databases this object created and that still carry the mark are dropped.
// Missing roles that a plain dump needs are created the same way (marked, dropped on cleanup).
class ScratchSandbox : public Sandbox {
 public:
  ScratchSandbox(const TargetConfig& target, std::string run_id, std::string source_system_id)
      : spec_(target.drill.scratch),
        target_(target.name),
        run_id_(std::move(run_id)),
        source_system_id_(std::move(source_system_id)),
        mark_(ScratchMark(target.name, run_id_)),
        connect_timeout_(target.connect_timeout) {
    try {
      base_conninfo_ = BaseConnInfo(spec_);
    } catch (const Error& e) {
      parse_error_ = e.what();  // reported by Start()
    }
  }
  ~ScratchSandbox() override { Cleanup(); }

  std::string kind() const override { return "scratch"; }

  // A server shared with others: it can hold the agent's databases, never its files.
  SandboxCapabilities capabilities() const override {
    SandboxCapabilities c;
    c.can_create_cluster = true;
    return c;
  }

  void Start(int min_major, CancelToken& cancel) override {
    cancel.ThrowIfCancelled();
    if (!parse_error_.empty()) throw Error(ErrorKind::kConfig, parse_error_);
    Connection();
    std::string system_id;
    bool super = false, createdb = false;
    WithPgErrors("cannot inspect the scratch server", [&] {
      pqxx::nontransaction tx(*conn_);
      system_id = tx.exec1("select system_identifier::text from pg_control_system()")[0].c_str();
      auto r = tx.exec1("select rolsuper, rolcreatedb from pg_roles where rolname = current_user");
      super = r[0].as<bool>();
      createdb = r[1].as<bool>();
    });
    major_ = rw::ServerMajor(*conn_);
    // A sandbox must never be the source: same system identifier means the same cluster (or a
    // physical standby of it), whatever database the conninfo names.
    if (source_system_id_.empty())
      throw Error(ErrorKind::kConfig,
                  "cannot prove the scratch server is not the source: the source's system "
                  "identifier is unknown",
                  "make the source reachable so its system identifier can be read");
    if (system_id == source_system_id_)
      throw Error(ErrorKind::kConfig,
                  "the scratch server is the source (system identifier " + system_id + ")",
                  "point drill.scratch at another server");
    if (major_ < min_major)
      throw Error(ErrorKind::kUnsupported,
                  "the dump is of PostgreSQL " + std::to_string(min_major) +
                      " but the scratch server is PostgreSQL " + std::to_string(major_),
                  "use a scratch server of PostgreSQL " + std::to_string(min_major) + " or newer");
    if (!super && !createdb)
      throw Error(ErrorKind::kConfig, "the scratch role may not create databases",
                  "grant it CREATEDB (ALTER ROLE ... CREATEDB)");
    started_ = true;
    // Before each drill: what a crashed agent left on this server goes first.
    try {
      SweepOn(*conn_, major_, spec_.Redacted());
    } catch (const std::exception& e) {
      LogWarn("cannot sweep the scratch server for leftovers",
              {{"target", target_}, {"error", OneLineOf(e.what())}});
    }
  }

  std::string CreateDatabase(const std::string& wanted_name) override {
    (void)wanted_name;  // the name is always restorewatch_<target>_<runid>: ours to recognise
    RequireStarted();
    std::string name = ScratchDatabaseName(target_, run_id_);
    if (!databases_.empty()) {
      std::string suffix = "_" + std::to_string(databases_.size() + 1);
      name = name.substr(0, 63 - suffix.size()) + suffix;
    }
    WithPgErrors("cannot create database " + name + " on the scratch server", [&] {
      pqxx::nontransaction tx(*Connection());
      tx.exec0("create database " + QuoteIdent(name) + " template template0");
      databases_.push_back({name});
      try {
        tx.exec0("comment on database " + QuoteIdent(name) + " is " + tx.quote(mark_));
      } catch (...) {
        // Unmarked, Cleanup() would leave it: drop it now, we created it a moment ago.
        try {
          tx.exec0("drop database " + QuoteIdent(name));
          databases_.back().dropped = true;
        } catch (...) {
        }
        throw;
      }
    });
    LogDebug("scratch database created", {{"target", target_}, {"database", name}});
    return name;
  }

  std::string ConnInfo(const std::string& dbname) const override {
    // Later keywords win in libpq; base_conninfo_ carries no dbname anyway.
    return base_conninfo_ + (base_conninfo_.empty() ? "" : " ") + "dbname=" + ConnInfoValue(dbname);
  }

  std::map<std::string, std::string> ClientEnv() const override {
    if (spec_.password.empty()) return {};
    return {{"PGPASSWORD", spec_.password}};
  }

  std::string LibpqConnInfo(const std::string& dbname) const override {
    // ConnInfo()'s keywords plus the secrets, for libpq in-process only.
    ConnKeywords kw = spec_.ForLibpq();
    RemoveKeyword(&kw, "dbname");
    RemoveKeyword(&kw, "password");
    kw.push_back({"dbname", dbname});
    if (!spec_.password.empty()) kw.push_back({"password", spec_.password});
    return FormatConnInfo(kw);
  }

  std::vector<std::string> CreateRoles(const std::vector<std::string>& roles) override {
    RequireStarted();
    std::vector<std::string> created;
    WithPgErrors("cannot create roles on the scratch server", [&] {
      pqxx::nontransaction tx(*Connection());
      for (const auto& r : roles) {
        if (!tx.exec_params("select 1 from pg_roles where rolname = $1", r).empty()) continue;
        tx.exec0("create role " + QuoteIdent(r) + " nologin");
        try {
          tx.exec0("comment on role " + QuoteIdent(r) + " is " + tx.quote(mark_));
        } catch (...) {
          try {
            tx.exec0("drop role " + QuoteIdent(r));
          } catch (...) {
            roles_.push_back({r, true});  // unmarked: never dropped later
          }
          throw;
        }
        roles_.push_back({r});
        created.push_back(r);
      }
    });
    return created;
  }

  int ServerMajor() const override { return major_; }

  std::string Cleanup() override {
    std::string problems;
    auto add = [&problems](const std::string& p) {
      problems += (problems.empty() ? "" : "; ") + p;
    };
    bool pending = false;
    for (const auto& d : databases_) pending |= !d.dropped;
    for (const auto& r : roles_) pending |= !r.dropped;
    if (!pending) return {};
    try {
      pqxx::connection& c = *Connection();
      pqxx::nontransaction tx(c);
      for (auto& d : databases_) {
        if (d.dropped) continue;
        try {
          auto rows = tx.exec_params(
              "select coalesce(shobj_description(oid, 'pg_database'), '') from pg_database "
              "where datname = $1",
              d.name);
          if (rows.empty()) {
            d.dropped = true;  // already gone
          } else if (rows[0][0].c_str() != mark_) {
            add("left database " + d.name + " on the scratch server: its mark is gone");
            d.dropped = true;  // never ours again: do not retry
          } else {
            tx.exec0("drop database " + QuoteIdent(d.name) + (major_ >= 13 ? " with (force)" : ""));
            d.dropped = true;
          }
        } catch (const std::exception& e) {
          add("cannot drop database " + d.name + ": " + OneLine(e.what()));
        }
      }
      for (auto& r : roles_) {
        if (r.dropped) continue;
        try {
          auto rows = tx.exec_params(
              "select coalesce(shobj_description(oid, 'pg_authid'), '') from pg_roles "
              "where rolname = $1",
              r.name);
          if (rows.empty()) {
            r.dropped = true;
          } else if (rows[0][0].c_str() != mark_) {
            add("left role " + r.name + " on the scratch server: its mark is gone");
            r.dropped = true;
          } else {
            tx.exec0("drop role " + QuoteIdent(r.name));
            r.dropped = true;
          }
        } catch (const std::exception& e) {
          add("cannot drop role " + r.name + ": " + OneLine(e.what()));
        }
      }
    } catch (const std::exception& e) {
      add("cannot clean up the scratch server: " + OneLine(e.what()));
    } catch (...) {
      add("cannot clean up the scratch server");
    }
    return problems;
  }

 private:
  static std::string OneLine(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (auto& c : s)
      if (c == '\n') c = ' ';
    return s;
  }

  void RequireStarted() const {
    if (!started_) throw Error(ErrorKind::kConfig, "the scratch sandbox is not started");
  }

  // The maintenance connection, reopened when it was lost. Throws Error(kConnect).
  pqxx::connection* Connection() {
    if (conn_ && conn_->is_open()) return conn_.get();
    conn_ = Connect(spec_, ScratchLimits(connect_timeout_));
    return conn_.get();
  }

  ConnSpec spec_;
  std::string target_;
  std::string run_id_;
  std::string source_system_id_;
  std::string mark_;
  Duration connect_timeout_;
  std::string base_conninfo_;  // the scratch conninfo without password and dbname
  std::string parse_error_;
  std::unique_ptr<pqxx::connection> conn_;
  bool started_ = false;
  int major_ = 0;
  std::vector<Created> databases_;
  std::vector<Created> roles_;
};

}  // namespace

std::string ScratchMark(const std::string& target, const std::string& run_id) {
  return "restorewatch:" + target + ":" + run_id + " " + FormatIdentity(SelfIdentity());
}

std::vector<std::string> RemoveOrphanedScratchDatabases(const TargetConfig& target) {
  std::unique_ptr<pqxx::connection> c;
  std::vector<std::string> dropped;
  WithPgErrors("cannot sweep the scratch server " + target.drill.scratch.Redacted(), [&] {
    c = Connect(target.drill.scratch, ScratchLimits(target.connect_timeout));
    dropped = SweepOn(*c, rw::ServerMajor(*c), target.drill.scratch.Redacted());
  });
  return dropped;
}

void SweepScratchServers(const Config& config) {
  std::set<std::string> done;
  for (const auto& t : config.targets) {
    if (t.drill.sandbox != SandboxKind::kScratch) continue;
    if (!done.insert(t.drill.scratch.Redacted()).second) continue;
    try {
      RemoveOrphanedScratchDatabases(t);
    } catch (const std::exception& e) {
      LogWarn("cannot sweep the scratch server for leftovers",
              {{"target", t.name}, {"error", OneLineOf(e.what())}});
    }
  }
}

std::string ScratchDatabaseName(const std::string& target, const std::string& run_id) {
  const std::string prefix = "restorewatch_";
  std::string t = IdentSafe(target), r = IdentSafe(run_id);
  // Keep the run id whole (it makes the name unique); shorten the target first.
  std::size_t room = 63 - prefix.size() - 1;
  if (r.size() > room) r = r.substr(0, room);
  if (t.size() + r.size() > room) t = t.substr(0, room - r.size());
  return prefix + t + "_" + r;
}

std::unique_ptr<Sandbox> MakeScratchSandbox(const Environment& env, const TargetConfig& target,
                                            const std::string& run_id,
                                            const std::string& source_system_id) {
  (void)env;
  return std::make_unique<ScratchSandbox>(target, run_id, source_system_id);
}

}  // namespace rw
