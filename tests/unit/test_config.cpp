// Config loading (agent/config.h): every file in conf/ loads, every mistake in a file is reported
// with its line and key, and passwords never leak into conninfo, Redacted() or messages.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "agent/config.h"
#include "checks/registry.h"

namespace fs = std::filesystem;

namespace {

// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "rw-config-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& text) const {
    const fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

 private:
  fs::path path_;
};

// Sets an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_.c_str(), old_->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

std::string AllErrors(const rw::ConfigLoad& load) {
  std::string out;
  for (const auto& e : load.errors) out += e.ToString() + "\n";
  return out;
}

rw::Config LoadOk(const std::string& text, const std::string& file = "test.toml") {
  rw::ConfigLoad load = rw::LoadConfigText(text, file);
  INFO(AllErrors(load));
  REQUIRE(load.errors.empty());
  REQUIRE(load.config.has_value());
  return *load.config;
}

std::vector<rw::ConfigError> LoadErrors(const std::string& text,
                                        const std::string& file = "test.toml") {
  rw::ConfigLoad load = rw::LoadConfigText(text, file);
  CHECK_FALSE(load.config.has_value());
  CHECK_FALSE(load.errors.empty());
  return load.errors;
}

const rw::ConfigError* Find(const std::vector<rw::ConfigError>& errors, const std::string& key) {
  for (const auto& e : errors)
    if (e.key == key) return &e;
  return nullptr;
}

// A valid target; keys appended to it land in the [[target]] table, from line 6 on.
const char kTarget[] = R"(
[[target]]
name = "blog"
source = "host=db1 dbname=blog user=rw"
backup.path = "/backups/blog"
)";

}  // namespace

TEST_CASE("config: every file in conf/ loads cleanly", "[unit][config]") {
  // The examples read their passwords from secrets/ beside the file and from the environment.
  TempDir dir;
  dir.Write("secrets/blog.password", "blog-secret\n");
  dir.Write("secrets/scratch.password", "scratch-secret\n");
  dir.Write("secrets/s3-access-key-id", "AKIAEXAMPLE\n");
  dir.Write("secrets/s3-secret-access-key", "example-secret\n");
  ScopedEnv shop("RW_SHOP_PASSWORD", "shop-secret");
  ScopedEnv version("RW_EXAMPLE_SCHEMA_VERSION", "20261125");

  int files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(RW_SOURCE_DIR) / "conf")) {
    if (entry.path().extension() != ".toml") continue;
    ++files;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    const std::string file = (dir.path() / entry.path().filename()).string();
    rw::ConfigLoad load = rw::LoadConfigText(text.str(), file);
    INFO(entry.path() << "\n" << AllErrors(load));
    CHECK(load.errors.empty());
    REQUIRE(load.config.has_value());
    CHECK(load.config->path == file);
    CHECK_FALSE(load.config->targets.empty());
  }
  CHECK(files >= 3);
}

TEST_CASE("config: conf/example.toml sets every key", "[unit][config]") {
  TempDir dir;
  dir.Write("secrets/blog.password", "blog-secret\n");
  ScopedEnv version("RW_EXAMPLE_SCHEMA_VERSION", "20261125");
  std::ifstream in(fs::path(RW_SOURCE_DIR) / "conf" / "example.toml");
  std::stringstream text;
  text << in.rdbuf();
  const rw::Config c = LoadOk(text.str(), (dir.path() / "example.toml").string());

  CHECK(c.agent.listen == "127.0.0.1:9847");
  CHECK(c.agent.log_format == rw::LogFormat::kText);
  CHECK(c.agent.shutdown_timeout == std::chrono::seconds(5));
  REQUIRE(c.targets.size() == 1);
  const rw::TargetConfig& t = c.targets[0];
  CHECK(c.FindTarget("blog") == &t);
  CHECK(c.FindTarget("nope") == nullptr);
  CHECK(t.source.password == "blog-secret");
  CHECK(rw::FindKeyword(t.source.keywords, "password") == nullptr);
  CHECK(t.source.Redacted() ==
        "host=db1.example.com port=5432 dbname=blog user=restorewatch "
        "application_name=restorewatch");
  REQUIRE(t.standbys.size() == 2);
  CHECK(t.standby_names == std::vector<std::string>{"db2", "dr-site"});
  CHECK(t.standbys[1].password == "blog-secret");  // standbys share the source's password
  CHECK(t.backup.paths == std::vector<std::string>{"/backups/blog", "/backups/blog-archive"});
  CHECK(t.backup.pattern == "blog-*.dump");
  CHECK(t.backup.max_age == std::chrono::hours(26));
  CHECK(t.backup.catalogue_interval == std::chrono::minutes(5));
  CHECK(t.backup.wal_archive == "/var/lib/postgresql/wal-archive");
  REQUIRE(t.drill.schedule.has_value());
  CHECK(t.drill.schedule->text() == "15 3 * * *");
  CHECK(t.drill.rto == std::chrono::minutes(45));
  CHECK(t.drill.sandbox == rw::SandboxKind::kEphemeral);
  CHECK(t.drill.allow_restore_errors.size() == 1);
  CHECK(t.drill.database == "blog");
  CHECK(t.checks.compare == rw::CompareMode::kChurn);
  CHECK(t.checks.row_count.enabled);
  REQUIRE(t.checks.checksum.append_only.size() == 2);
  CHECK(t.checks.checksum.append_only[0].table == "public.events");
  CHECK(t.checks.checksum.append_only[0].key == "id");
  CHECK(t.checks.freshness.at("public.posts") == "created_at");
  CHECK(t.checks.exclude_tables.size() == 2);
  REQUIRE(t.checks.sql.size() == 3);
  CHECK(t.checks.sql[1].compare_source);
  CHECK(t.checks.sql[1].expect.empty());
  CHECK(t.checks.sql[2].expect == "= '20261125'");
}

TEST_CASE("config: unset keys keep the struct defaults", "[unit][config]") {
  const rw::Config c = LoadOk(kTarget);
  const rw::AgentConfig agent_defaults;
  const rw::TargetConfig d;
  CHECK(c.agent.listen == agent_defaults.listen);
  CHECK(c.agent.state_dir == agent_defaults.state_dir);
  CHECK(c.agent.log_level == agent_defaults.log_level);
  const rw::TargetConfig& t = c.targets.at(0);
  CHECK(t.monitor_interval == d.monitor_interval);
  CHECK(t.drill_statement_timeout == d.drill_statement_timeout);
  CHECK(t.backup.type == d.backup.type);
  CHECK(t.backup.pattern == d.backup.pattern);
  CHECK(t.backup.paths == std::vector<std::string>{"/backups/blog"});
  CHECK_FALSE(t.drill.schedule.has_value());
  CHECK(t.drill.jobs == d.drill.jobs);
  CHECK(t.drill.timeout == d.drill.timeout);
  CHECK(t.drill.database.empty());  // the drill runner picks the source's name
  CHECK(t.checks.stats_settle == d.checks.stats_settle);
  CHECK(t.checks.row_count.slack_rows == d.checks.row_count.slack_rows);
  CHECK(t.checks.checksum.sample_keys == d.checks.checksum.sample_keys);
  CHECK(t.standbys.empty());
}

TEST_CASE("config: zero targets is a valid (if idle) configuration", "[unit][config]") {
  CHECK(LoadOk("").targets.empty());
  CHECK(LoadOk("[agent]\nlisten = \"127.0.0.1:0\"\n").agent.listen == "127.0.0.1:0");
}

TEST_CASE("config: three mistakes are all reported with their lines", "[unit][config]") {
  const std::string text = R"([agent]
listen = "127.0.0.1:9847"
log_levle = "debug"

[[target]]
name = "blog"
source = "host=db1 dbname=blog"
monitor_interval = true

[target.backup]
path = "/backups"

[target.drill]
jobs = 65
)";
  const auto errors = LoadErrors(text, "/etc/rw.toml");
  INFO([&] {
    std::string s;
    for (const auto& e : errors) s += e.ToString() + "\n";
    return s;
  }());
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].line == 3);
  CHECK(errors[0].key == "agent.log_levle");
  CHECK(errors[0].message.find("unknown key") != std::string::npos);
  CHECK(errors[0].message.find("log_level") != std::string::npos);  // did you mean
  CHECK(errors[1].line == 8);
  CHECK(errors[1].key == "target.blog.monitor_interval");
  CHECK(errors[1].message.find("boolean") != std::string::npos);
  CHECK(errors[2].line == 14);
  CHECK(errors[2].key == "target.blog.drill.jobs");
  CHECK(errors[2].message.find("between 1 and 64") != std::string::npos);
  CHECK(errors[2].file == "/etc/rw.toml");
  CHECK(errors[2].ToString() ==
        "/etc/rw.toml:14: target.blog.drill.jobs: must be between 1 and 64, got 65");
}

TEST_CASE("config: a syntax error is one error with its line", "[unit][config]") {
  const auto errors = LoadErrors("[agent]\nlisten = \"x\n\n[[target]]\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].line == 2);
  CHECK(errors[0].file == "test.toml");
}

TEST_CASE("config: unknown keys at every level, inline tables included", "[unit][config]") {
  const std::string text = std::string("colour = 1\n") + kTarget + R"(flavour = 2
[target.drill]
jbos = 3
[target.checks]
row_count = { enabled = true, slack_row = 1 }
checksum = { enabled = false, sample = 3 }
standby = 1
[[target.checks.sql]]
name = "x"
query = "select 1"
expect = "1"
extra = true
)";
  const auto errors = LoadErrors(text);
  for (const char* key :
       {"colour", "target.blog.flavour", "target.blog.drill.jbos",
        "target.blog.checks.row_count.slack_row", "target.blog.checks.checksum.sample",
        "target.blog.checks.standby", "target.blog.checks.sql[0].extra"}) {
    INFO(key);
    const rw::ConfigError* e = Find(errors, key);
    REQUIRE(e != nullptr);
    CHECK(e->message.find("unknown key") == 0);
    CHECK(e->line > 0);
  }
  CHECK(errors.size() == 7);
  CHECK(Find(errors, "target.blog.drill.jbos")->message.find("\"jobs\"") != std::string::npos);
}

TEST_CASE("config: wrong types and ranges", "[unit][config]") {
  const std::string text = std::string(kTarget) + R"(connect_timeout = "5 minutes"
lock_timeout = -1
statement_timeout = 1.5
[target.drill]
sandbox = "docker"
timeout = "0s"
schedule = "61 * * * *"
[target.checks]
compare = "fuzzy"
schema = "yes"
row_count = { slack_rows = -1, fallback_tolerance = 1.5 }
checksum = { sample_keys = 1001, append_only = ["events"] }
exclude_tables = "public.x"
freshness = { posts = "created_at" }
[[target.checks.sql]]
name = "a"
query = "select 1"
expect = "> nothing"
[[target.checks.sql]]
name = "b"
query = "select 1"
[[target.checks.sql]]
name = "c"
query = "select 1"
expect = "about 3"
)";
  const auto errors = LoadErrors(text);
  for (const char* key :
       {"target.blog.connect_timeout", "target.blog.lock_timeout", "target.blog.statement_timeout",
        "target.blog.drill.sandbox", "target.blog.drill.timeout", "target.blog.drill.schedule",
        "target.blog.checks.compare", "target.blog.checks.schema",
        "target.blog.checks.row_count.slack_rows",
        "target.blog.checks.row_count.fallback_tolerance",
        "target.blog.checks.checksum.sample_keys", "target.blog.checks.checksum.append_only",
        "target.blog.checks.exclude_tables", "target.blog.checks.freshness.posts",
        "target.blog.checks.sql[0].expect", "target.blog.checks.sql[1].expect",
        "target.blog.checks.sql[2].expect"}) {
    INFO(key);
    CHECK(Find(errors, key) != nullptr);
  }
  CHECK(errors.size() == 17);
}

TEST_CASE("config: durations accept unit strings and integer seconds", "[unit][config]") {
  const rw::Config c = LoadOk(std::string(kTarget) +
                              "[target.drill]\ntimeout = 600\nrto = \"1h30m\"\n"
                              "schedule = \"*/30 2-4 * * sat,sun\"\n");
  CHECK(c.targets[0].drill.timeout == std::chrono::minutes(10));
  CHECK(c.targets[0].drill.rto == std::chrono::minutes(90));
  CHECK(c.targets[0].drill.schedule.has_value());
}

TEST_CASE("config: target names are checked and unique", "[unit][config]") {
  const std::string two = std::string(kTarget) + kTarget;
  const auto dup = LoadErrors(two);
  REQUIRE(dup.size() == 1);
  CHECK(dup[0].key == "target[1].name");
  CHECK(dup[0].line == 8);
  CHECK(dup[0].message.find("duplicate target name") != std::string::npos);
  CHECK(dup[0].message.find("line 3") != std::string::npos);

  const auto bad = LoadErrors(
      "[[target]]\nname = \"Blog DB\"\nsource = \"host=x\"\n"
      "[target.backup]\npath = \"/b\"\n");
  REQUIRE(bad.size() == 1);
  CHECK(bad[0].key == "target[0].name");

  const auto missing = LoadErrors("[[target]]\nmonitor_interval = \"1s\"\n");
  CHECK(Find(missing, "target[0].name") != nullptr);
  CHECK(Find(missing, "target[0].source") != nullptr);
  CHECK(Find(missing, "target[0].backup") != nullptr);

  const auto single = LoadErrors("[target]\nname = \"blog\"\n");
  REQUIRE(single.size() == 1);
  CHECK(single[0].key == "target");
}

TEST_CASE("config: backup type and path", "[unit][config]") {
  const auto errors = LoadErrors(
      "[[target]]\nname = \"a\"\nsource = \"host=x\"\n[target.backup]\ntype = \"tape\"\n");
  REQUIRE(Find(errors, "target.a.backup.type") != nullptr);
  CHECK(Find(errors, "target.a.backup.type")->message.find("pg_dump") != std::string::npos);
  CHECK(Find(errors, "target.a.backup.path") == nullptr);  // only pg_dump needs a path

  const auto no_path =
      LoadErrors("[[target]]\nname = \"a\"\nsource = \"host=x\"\n[target.backup]\n");
  CHECK(Find(no_path, "target.a.backup.path") != nullptr);
}

TEST_CASE("config: scratch sandbox needs scratch_dsn", "[unit][config]") {
  const auto missing = LoadErrors(std::string(kTarget) + "[target.drill]\nsandbox = \"scratch\"\n");
  REQUIRE(missing.size() == 1);
  CHECK(missing[0].key == "target.blog.drill.scratch_dsn");
  CHECK(missing[0].message.find("required") != std::string::npos);

  const auto unused =
      LoadErrors(std::string(kTarget) + "[target.drill]\nscratch_dsn = \"host=scratch\"\n");
  REQUIRE(unused.size() == 1);
  CHECK(unused[0].key == "target.blog.drill.scratch_dsn");

  const rw::Config ok = LoadOk(std::string(kTarget) +
                               "[target.drill]\nsandbox = \"scratch\"\n"
                               "scratch_dsn = \"host=scratch user=drill password=pw-scratch\"\n");
  CHECK(ok.targets[0].drill.sandbox == rw::SandboxKind::kScratch);
  CHECK(ok.targets[0].drill.scratch.Redacted() == "host=scratch user=drill");
  CHECK(ok.targets[0].drill.scratch.password == "pw-scratch");
}

TEST_CASE("config: ${VAR} expansion in string values", "[unit][config]") {
  ScopedEnv host("RW_TEST_HOST", "db9");
  ScopedEnv dir("RW_TEST_DIR", "/srv/dumps");
  ScopedEnv unset("RW_TEST_UNSET", nullptr);
  const rw::Config c = LoadOk(R"(
[agent]
state_dir = "${RW_TEST_DIR}/state"
[[target]]
name = "blog"
source = "host=${RW_TEST_HOST} dbname=blog"
[target.backup]
path = ["${RW_TEST_DIR}", "/other"]
pattern = "$${literal}"
[[target.checks.sql]]
name = "dollar"
query = "SELECT $$x$$"
expect = "'x'"
)");
  CHECK(c.agent.state_dir == "/srv/dumps/state");
  CHECK(c.targets[0].source.Redacted() == "host=db9 dbname=blog");
  CHECK(c.targets[0].backup.paths[0] == "/srv/dumps");
  CHECK(c.targets[0].backup.pattern == "${literal}");
  CHECK(c.targets[0].checks.sql[0].query == "SELECT $$x$$");

  const auto errors =
      LoadErrors(std::string(kTarget) + "[target.drill]\ndatabase = \"${RW_TEST_UNSET}\"\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].key == "target.blog.drill.database");
  CHECK(errors[0].line == 7);
  CHECK(errors[0].message == "environment variable RW_TEST_UNSET is not set");
}

TEST_CASE("config: password_file is read relative to the config file", "[unit][config]") {
  TempDir dir;
  dir.Write("secrets/pw", "file-secret\r\n");
  const std::string file = dir.path().string() + "/rw.toml";
  const std::string text = R"([[target]]
name = "blog"
source = "host=db1 dbname=blog"
password_file = "secrets/pw"
standbys = ["host=db2 application_name=replica1 password=own-secret", "host=db3 port=5433"]
[target.backup]
path = "/b"
)";
  const rw::Config c = LoadOk(text, file);
  const rw::TargetConfig& t = c.targets[0];
  CHECK(t.source.password == "file-secret");
  CHECK(t.standby_names == std::vector<std::string>{"replica1", "db3:5433"});
  CHECK(t.standbys[0].password == "own-secret");
  CHECK(t.standbys[1].password == "file-secret");

  // Through LoadConfig from disk too, with an absolute path.
  const std::string abs_file =
      dir.Write("abs.toml", "[[target]]\nname = \"a\"\nsource = \"host=x\"\npassword_file = \"" +
                                (dir.path() / "secrets/pw").string() +
                                "\"\n[target.backup]\npath = \"/b\"\n");
  rw::ConfigLoad from_disk = rw::LoadConfig(abs_file);
  INFO(AllErrors(from_disk));
  REQUIRE(from_disk.config.has_value());
  CHECK(from_disk.config->targets[0].source.password == "file-secret");

  const auto missing = LoadErrors(std::string(kTarget) + "password_file = \"nope\"\n",
                                  dir.path().string() + "/x.toml");
  REQUIRE(missing.size() == 1);
  CHECK(missing[0].key == "target.blog.password_file");
  CHECK(missing[0].line == 6);
  CHECK(missing[0].message.find(dir.path().string() + "/nope") != std::string::npos);

  const auto twice = LoadErrors(
      "[[target]]\nname = \"a\"\nsource = \"host=x password=inline-secret\"\n"
      "password_file = \"secrets/pw\"\n[target.backup]\npath = \"/b\"\n",
      file);
  REQUIRE(twice.size() == 1);
  CHECK(twice[0].key == "target.a.password_file");
}

TEST_CASE("config: passwords never reach conninfo, Redacted() or messages", "[unit][config]") {
  const std::string secret = "Sup3r-Secr3t";
  ScopedEnv pw("RW_TEST_PASSWORD", secret.c_str());
  // Valid config: the password moves out of the conninfo.
  const rw::Config c = LoadOk(std::string(R"([[target]]
name = "blog"
source = "host=db1 password='${RW_TEST_PASSWORD}' dbname=blog"
standbys = ["postgresql://rw:${RW_TEST_PASSWORD}@db2:5433/blog?application_name=s1"]
[target.backup]
path = "/b"
)"));
  const rw::TargetConfig& t = c.targets[0];
  CHECK(t.source.password == secret);
  CHECK(t.source.Redacted() == "host=db1 dbname=blog");
  CHECK(rw::FormatConnInfo(t.source.ForLibpq()) == "host=db1 dbname=blog password=" + secret);
  CHECK(t.standbys[0].password == secret);
  // A URI is parsed by libpq into keywords; its password stays apart like any other.
  CHECK(t.standbys[0].Redacted() == "host=db2 port=5433 dbname=blog user=rw application_name=s1");
  CHECK(t.standby_names[0] == "s1");
  CHECK(rw::FormatConnInfo(t.standbys[0].ForLibpq()) ==
        "host=db2 port=5433 dbname=blog user=rw application_name=s1 password=Sup3r-Secr3t");

  // Invalid config: no message may carry the password, whatever went wrong around it.
  const auto errors = LoadErrors(R"([[target]]
name = "blog"
source = "host=db1 password=Sup3r-Secr3t dbname"
standbys = ["host=db2 password=Sup3r-Secr3t", "host='db3 password=Sup3r-Secr3t"]
password_file = "/nonexistent/Sup3r-Secr3t"
[target.backup]
path = "/b"
[target.drill]
sandbox = "${RW_TEST_PASSWORD}"
database = "Sup3r-Secr3t"
jobs = 0
)");
  CHECK(errors.size() >= 4);
  for (const auto& e : errors) {
    INFO(e.ToString());
    CHECK(e.ToString().find(secret) == std::string::npos);
  }
}

TEST_CASE("config: ConnSpec quoting and redaction", "[unit][config]") {
  rw::ConnSpec s("host=db1 user=rw");
  CHECK(rw::FormatConnInfo(s.ForLibpq()) == "host=db1 user=rw");  // no password, nothing added
  s.password = R"(it's a \ secret)";
  CHECK(rw::FormatConnInfo(s.ForLibpq()) == R"(host=db1 user=rw password='it\'s a \\ secret')");
  CHECK(s.Redacted() == "host=db1 user=rw");

  // Secrets given in the text leave Redacted(): password moves to .password, sslpassword stays
  // a keyword for libpq but is never shown.
  rw::ConnSpec raw("host=db1 password='x y' sslpassword=z application_name='my app'");
  CHECK(raw.password == "x y");
  CHECK(raw.Redacted() == "host=db1 application_name='my app'");
  REQUIRE(raw.Get("sslpassword").has_value());
  CHECK(*raw.Get("sslpassword") == "z");
  rw::ConnSpec uri("postgres://u:pw@h/db?password=x&sslmode=require");
  CHECK(uri.password == "x");  // the query parameter comes later and wins, as in libpq
  CHECK(uri.Redacted() == "host=h dbname=db user=u sslmode=require");
  // A password given beside the conninfo wins over one inside it.
  CHECK(rw::ConnSpec("host=h password=inline", "given").password == "given");

  // A malformed conninfo is an error that quotes none of it.
  std::string why;
  CHECK_FALSE(rw::ConnSpec::Parse("host='unterminated password=x", &why).has_value());
  CHECK_FALSE(why.empty());
  CHECK(why.find("password=x") == std::string::npos);
  CHECK_THROWS_WITH(rw::ConnSpec("postgresql://u:hunter2@[db1/x"),
                    !Catch::Contains("hunter2") && Catch::Contains("malformed conninfo"));
}

TEST_CASE("config: standbys as strings and tables", "[unit][config]") {
  const rw::Config c = LoadOk(
      std::string(kTarget) +
      "standbys = [\"host=10.0.0.2\", { name = \"dr\", dsn = \"host=dr1 application_name=x\" }]\n");
  CHECK(c.targets[0].standby_names == std::vector<std::string>{"10.0.0.2:5432", "dr"});

  const auto errors = LoadErrors(
      std::string(kTarget) +
      "standbys = [\"host=a\", \"host=a\", { name = \"x\" }, 5, { dsn = \"host=b\", pw = 1 }]\n");
  CHECK(Find(errors, "target.blog.standbys[1]") != nullptr);      // duplicate name a:5432
  CHECK(Find(errors, "target.blog.standbys[2].dsn") != nullptr);  // missing dsn
  CHECK(Find(errors, "target.blog.standbys[3]") != nullptr);      // not a string
  CHECK(Find(errors, "target.blog.standbys[4].pw") != nullptr);   // unknown key

  const auto reserved =
      LoadErrors(std::string(kTarget) + "standbys = [{ name = \"source\", dsn = \"host=c\" }]\n");
  CHECK(Find(reserved, "target.blog.standbys[0]") != nullptr);  // labels the primary
}

TEST_CASE("config: sql checks and expect syntax", "[unit][config]") {
  std::string text = kTarget;
  int n = 0;
  for (std::string expect : {"5", "= 5", "== 5", "!= 0", "<> 0", "< 10", "<= 10", "> 1.5", ">= -1",
                             "'text'", "= 'ok'", "!= 'it''s'", "> 'b'", "= null", "NULL"}) {
    for (std::size_t p = 0; (p = expect.find('"', p)) != std::string::npos; p += 2)
      expect.insert(p, "\\");  // TOML basic string
    text += "[[target.checks.sql]]\nname = \"c" + std::to_string(n++) +
            "\"\nquery = \"select 1\"\nexpect = \"" + expect + "\"\n";
  }
  CHECK(LoadOk(text).targets[0].checks.sql.size() == 15);

  const auto errors = LoadErrors(std::string(kTarget) + R"(
[[target.checks.sql]]
name = "a"
query = "select 1"
expect = ">="
[[target.checks.sql]]
name = "a"
query = "select 1"
compare_source = true
[[target.checks.sql]]
name = "b"
expect = "bare words"
[[target.checks.sql]]
name = "c"
query = "select 1"
expect = '"double"'
[[target.checks.sql]]
name = "d"
query = "select 1"
expect = "= 'it's'"
[[target.checks.sql]]
name = "e"
query = "select 1"
expect = "< null"
)");
  CHECK(Find(errors, "target.blog.checks.sql[0].expect") != nullptr);
  CHECK(Find(errors, "target.blog.checks.sql[1].name") != nullptr);  // duplicate
  CHECK(Find(errors, "target.blog.checks.sql[2].query") != nullptr);
  CHECK(Find(errors, "target.blog.checks.sql[2].expect") != nullptr);
  CHECK(Find(errors, "target.blog.checks.sql[3].expect") != nullptr);
  CHECK(Find(errors, "target.blog.checks.sql[4].expect") != nullptr);
  CHECK(Find(errors, "target.blog.checks.sql[5].expect")->message ==
        "null can only be compared with = or !=");
  CHECK(errors.size() == 7);
}

TEST_CASE("config: freshness accepts quoted and dotted table names", "[unit][config]") {
  const rw::Config c = LoadOk(std::string(kTarget) + R"([target.checks.freshness]
"public.posts" = "created_at"
audit.log = "logged_at"
)");
  CHECK(c.targets[0].checks.freshness.size() == 2);
  CHECK(c.targets[0].checks.freshness.at("audit.log") == "logged_at");
}

TEST_CASE("config: agent section validation", "[unit][config]") {
  const auto errors = LoadErrors(R"([agent]
listen = "9847"
log_format = "xml"
log_level = "verbose"
shutdown_timeout = "soon"
run_as = ""
)");
  CHECK(errors.size() == 5);
  CHECK(Find(errors, "agent.listen") != nullptr);
  CHECK(Find(errors, "agent.log_format")->message == "must be one of text, json, got \"xml\"");
  CHECK(LoadOk("[agent]\nlisten = \"[::1]:0\"\nlog_format = \"json\"\n").agent.log_format ==
        rw::LogFormat::kJson);
}

TEST_CASE("config: LoadConfig reports an unreadable file", "[unit][config]") {
  rw::ConfigLoad load = rw::LoadConfig("/nonexistent/restorewatch.toml");
  REQUIRE(load.errors.size() == 1);
  CHECK_FALSE(load.config.has_value());
  CHECK(load.errors[0].line == 0);
  CHECK(load.errors[0].ToString().rfind("/nonexistent/restorewatch.toml: cannot read", 0) == 0);
}

TEST_CASE(
    "config: backup.wal_archive is an absolute directory and enables the wal_archive "
    "collector",
    "[unit][config]") {
  const rw::Config c = LoadOk(std::string(kTarget) + "backup.wal_archive = \"/archive/blog\"\n");
  CHECK(c.targets[0].backup.wal_archive == "/archive/blog");
  auto names = [](const rw::TargetConfig& t) {
    std::vector<std::string> out;
    for (const auto& col : rw::MakeCollectors(t)) out.push_back(col->name());
    return out;
  };
  const auto with = names(c.targets[0]);
  CHECK(std::count(with.begin(), with.end(), "wal_archive") == 1);
  const rw::Config without = LoadOk(kTarget);
  const auto none = names(without.targets[0]);
  CHECK(std::count(none.begin(), none.end(), "wal_archive") == 0);
  auto errors = LoadErrors(std::string(kTarget) + "backup.wal_archive = \"relative/dir\"\n");
  const rw::ConfigError* e = Find(errors, "target.blog.backup.wal_archive");
  REQUIRE(e);
  CHECK(e->message.find("absolute path") != std::string::npos);
}
