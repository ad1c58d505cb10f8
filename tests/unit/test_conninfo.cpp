// Connection strings (agent/pg/conninfo.h, ConnSpec in agent/config.h): parsed by libpq in both
// forms, rebuilt with correct quoting, ${VAR} expanded inside parsed values, malformed input
// reported without any of its values; and the secret registry (agent/secrets.h) with the layers
// that apply it (logging, libpq errors, child environments).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <optional>
#include <string>

#include "agent/config.h"
#include "agent/pg/conninfo.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/pg_conn.h"
#include "agent/pg/process.h"
#include "agent/secrets.h"

using rw::ConnKeyword;
using rw::ConnKeywords;

namespace Catch {
template <>
struct StringMaker<ConnKeyword> {
  static std::string convert(const ConnKeyword& k) { return k.key + "=[" + k.value + "]"; }
};
}  // namespace Catch

namespace {

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

ConnKeywords Parse(const std::string& text) {
  ConnKeywords kw;
  std::string why;
  INFO(text);
  REQUIRE(rw::ParseConnInfo(text, &kw, &why));
  CHECK(why.empty());
  return kw;
}

// The keywords in a fixed order (libpq reports them in its own order, not the text's).
ConnKeywords Sorted(ConnKeywords kw) {
  std::sort(kw.begin(), kw.end(), [](const ConnKeyword& a, const ConnKeyword& b) {
    return a.key != b.key ? a.key < b.key : a.value < b.value;
  });
  return kw;
}

std::string Value(const ConnKeywords& kw, const std::string& key) {
  const std::string* v = rw::FindKeyword(kw, key);
  return v != nullptr ? *v : "(absent)";
}

std::string AllErrors(const rw::ConfigLoad& load) {
  std::string out;
  for (const auto& e : load.errors) out += e.ToString() + "\n";
  return out;
}

rw::Config LoadOk(const std::string& text) {
  rw::ConfigLoad load = rw::LoadConfigText(text, "test.toml");
  INFO(AllErrors(load));
  REQUIRE(load.config.has_value());
  return *load.config;
}

// A TOML basic string holding `s`.
std::string Toml(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string Target(const std::string& source_toml) {
  return "[[target]]\nname = \"blog\"\nsource = " + source_toml + "\nbackup.path = \"/b\"\n";
}

// Passwords that a naive text expansion or quoting gets wrong.
const char* const kHardPasswords[] = {"pw with space",
                                      "it's",
                                      R"(back\slash)",
                                      "a=b",
                                      R"(dq"uote)",
                                      R"(all of' it \ = "x" )",
                                      "",
                                      "trailing\\",
                                      "'",
                                      "%41%",
                                      "${NOT_A_VAR}"};

}  // namespace

TEST_CASE("conninfo: key=value and URIs parse into libpq's keywords", "[unit][config]") {
  const ConnKeywords kv = Parse("host=db1 port=5433 dbname=blog user=rw sslmode=require");
  CHECK(kv == ConnKeywords{{"host", "db1"},
                           {"port", "5433"},
                           {"dbname", "blog"},
                           {"user", "rw"},
                           {"sslmode", "require"}});

  // The same as a URI, without and with a password.
  CHECK(Parse("postgresql://rw@db1:5433/blog?sslmode=require") == kv);
  const ConnKeywords with_pw = Parse("postgres://rw:s3cret@db1:5433/blog?sslmode=require");
  CHECK(Value(with_pw, "password") == "s3cret");

  // Percent-encoding is undone: user "r@w", password "p w'q\".
  const ConnKeywords enc = Parse("postgresql://r%40w:p%20w%27q%5C@db1/bl%2Fog");
  CHECK(Value(enc, "user") == "r@w");
  CHECK(Value(enc, "password") == "p w'q\\");
  CHECK(Value(enc, "dbname") == "bl/og");

  // Several hosts, query parameters, a unix socket directory as host.
  const ConnKeywords multi =
      Parse("postgresql://h1:5432,h2:5433/app?target_session_attrs=read-write&connect_timeout=3");
  CHECK(Value(multi, "host") == "h1,h2");
  CHECK(Value(multi, "port") == "5432,5433");
  CHECK(Value(multi, "target_session_attrs") == "read-write");
  CHECK(Value(multi, "connect_timeout") == "3");
  CHECK(Value(Parse("postgresql:///app?host=%2Fvar%2Frun%2Fpostgresql"), "host") ==
        "/var/run/postgresql");
  CHECK(Value(Parse("host='/tmp/a dir' dbname=x"), "host") == "/tmp/a dir");

  // The last occurrence wins, as in libpq.
  CHECK(Value(Parse("host=a host=b"), "host") == "b");
  CHECK(rw::IsConnInfoUri("postgres://x"));
  CHECK(rw::IsConnInfoUri("postgresql://x"));
  CHECK_FALSE(rw::IsConnInfoUri("host=x"));
}

TEST_CASE("conninfo: keywords -> text -> PQconninfoParse gives the same keywords",
          "[unit][config]") {
  for (const char* pw : kHardPasswords) {
    const ConnKeywords kw{{"host", "db 1"},      {"port", "5432"},
                          {"dbname", "my'db"},   {"user", R"(u\s=r)"},
                          {"password", pw},      {"application_name", "a \"b\" c"},
                          {"options", "-c x=1"}, {"sslmode", "prefer"}};
    const std::string text = rw::FormatConnInfo(kw);
    INFO(text);
    CHECK(Sorted(Parse(text)) == Sorted(kw));
    // And through ConnSpec, whose ForLibpq() is what Connect() formats.
    const rw::ConnSpec spec(text);
    CHECK(spec.password == pw);
    ConnKeywords expected = kw;
    if (std::string(pw).empty()) rw::RemoveKeyword(&expected, "password");  // empty = none
    CHECK(Sorted(Parse(rw::FormatConnInfo(spec.ForLibpq()))) == Sorted(expected));
  }
  CHECK(rw::ConnInfoValue("plain") == "plain");
  CHECK(rw::ConnInfoValue("") == "''");
  CHECK(rw::ConnInfoValue("a b") == "'a b'");
  CHECK(rw::ConnInfoValue(R"(it's \)") == R"('it\'s \\')");

  ConnKeywords kw{{"host", "a"}, {"port", "1"}, {"host", "b"}};
  rw::SetKeyword(&kw, "host", "c");
  CHECK(kw == ConnKeywords{{"host", "c"}, {"port", "1"}});
  rw::SetKeyword(&kw, "dbname", "d");
  CHECK(kw.back() == ConnKeyword{"dbname", "d"});
  rw::RemoveKeyword(&kw, "port");
  CHECK(rw::FormatConnInfo(kw) == "host=c dbname=d");
}

TEST_CASE("conninfo: a malformed conninfo is an error that shows none of its values",
          "[unit][config]") {
  const std::string secret = "hunter2-Zq9";
  const std::string inputs[] = {
      "host=db1 password='" + secret,                // unterminated quote
      "host=db1 password=" + secret + " x",          // missing "=" after x
      "host=db1 password=a " + secret + "=1",        // unknown option
      "postgresql://rw:" + secret + "@[db1/blog",    // unclosed IPv6 bracket
      "postgresql://rw:" + secret + "%zz@db1/blog",  // bad percent-encoding
      "postgresql://rw@db1/blog?" + secret + "=1",   // unknown query parameter
      "postgresql://rw@db1/blog?password=" + secret + " connect_timeout=5",  // text appended
      "postgresql://rw:" + secret + "@db1/blog?sslmode=a=b",
      "postgresql://rw:" + secret + "@db1:5432:x/blog",
  };
  for (const auto& in : inputs) {
    INFO(in);
    ConnKeywords kw;
    std::string why;
    const bool parsed = rw::ParseConnInfo(in, &kw, &why);
    if (parsed) {
      // libpq accepts some of these at parse time (they fail at connect): then the secret is the
      // password, kept apart and out of Redacted().
      rw::ConnSpec spec(in);
      CHECK(spec.Redacted().find(secret) == std::string::npos);
      continue;
    }
    INFO(why);
    CHECK_FALSE(why.empty());
    CHECK(why.find(secret) == std::string::npos);
    CHECK(why.find("Zq9") == std::string::npos);

    // The same through the config loader: a clear error on the line and key, no value in it.
    rw::ConfigLoad load = rw::LoadConfigText(Target(Toml(in)), "test.toml");
    REQUIRE_FALSE(load.config.has_value());
    REQUIRE(load.errors.size() == 1);
    CHECK(load.errors[0].key == "target.blog.source");
    CHECK(load.errors[0].line == 3);
    CHECK(load.errors[0].message.find("malformed conninfo") != std::string::npos);
    CHECK(load.errors[0].ToString().find("Zq9") == std::string::npos);
  }
  // The cause is still named where libpq names it by keyword or structure.
  ConnKeywords kw;
  std::string why;
  CHECK_FALSE(rw::ParseConnInfo("host=a passwd=x", &kw, &why));
  CHECK(why == "invalid connection option (not shown)");
  CHECK_FALSE(rw::ParseConnInfo("postgresql://u:x@h/d?sslmode=a=b", &kw, &why));
  CHECK(why == "extra key/value separator \"=\" in URI query parameter: \"sslmode\"");
}

TEST_CASE("conninfo: ${VAR} is expanded inside parsed values, in both forms", "[unit][config]") {
  for (const char* pw : kHardPasswords) {
    if (std::string(pw).empty()) continue;
    INFO("password: " << pw);
    ScopedEnv env("RW_TEST_CI_PASSWORD", pw);
    ScopedEnv host("RW_TEST_CI_HOST", "db 9");
    const rw::Config c = LoadOk(Target(
        "\"host='${RW_TEST_CI_HOST}' dbname=blog password=${RW_TEST_CI_PASSWORD}\"\n"
        "standbys = ['postgresql://rw:${RW_TEST_CI_PASSWORD}@db2:5433/blog?application_name=s1',"
        " 'postgresql://rw@db3/blog?password=${RW_TEST_CI_PASSWORD}']"));
    const rw::TargetConfig& t = c.targets[0];
    CHECK(t.source.password == pw);
    CHECK(t.source.Redacted() == "host='db 9' dbname=blog");
    REQUIRE(t.standbys.size() == 2);
    CHECK(t.standbys[0].password == pw);
    CHECK(t.standbys[0].Redacted() == "host=db2 port=5433 dbname=blog user=rw application_name=s1");
    CHECK(t.standby_names == std::vector<std::string>{"s1", "db3:5432"});
    CHECK(t.standbys[1].password == pw);
    CHECK(t.standbys[1].Redacted() == "host=db3 dbname=blog user=rw");
    // What libpq gets carries the password intact.
    CHECK(*rw::FindKeyword(t.source.ForLibpq(), "password") == pw);
  }

  // A standby without application_name is named by its first host and port.
  {
    const rw::Config c = LoadOk(
        Target("\"host=db1\"\nstandbys = ['postgresql://h1:5433,h2:5434/db', 'host=h3,h4']"));
    CHECK(c.targets[0].standby_names == std::vector<std::string>{"h1:5433", "h3:5432"});
  }
  // A conninfo that is exactly one ${VAR} comes whole from the environment.
  {
    ScopedEnv url("RW_TEST_CI_URL", "postgresql://rw:from%20env@db4:6432/shop?sslmode=disable");
    const rw::Config c = LoadOk(Target("\" ${RW_TEST_CI_URL} \""));
    CHECK(c.targets[0].source.password == "from env");
    CHECK(c.targets[0].source.Redacted() ==
          "host=db4 port=6432 dbname=shop user=rw sslmode=disable");
  }
  // $${ stays a literal ${; an unset variable is an error naming it, not the conninfo.
  {
    ScopedEnv unset("RW_TEST_CI_UNSET", nullptr);
    const rw::Config c = LoadOk(Target("\"host=db1 application_name=$${x}\""));
    CHECK(c.targets[0].source.Get("application_name") == std::optional<std::string>("${x}"));
    for (const char* src :
         {"\"host=db1 password=${RW_TEST_CI_UNSET}\"", "\"postgresql://u:${RW_TEST_CI_UNSET}@h/d\"",
          "\"${RW_TEST_CI_UNSET}\""}) {
      INFO(src);
      rw::ConfigLoad load = rw::LoadConfigText(Target(src), "test.toml");
      REQUIRE(load.errors.size() == 1);
      CHECK(load.errors[0].key == "target.blog.source");
      CHECK(load.errors[0].message == "environment variable RW_TEST_CI_UNSET is not set");
    }
  }
  // A whole conninfo from the environment that is malformed: the error says so, quoting nothing.
  {
    ScopedEnv url("RW_TEST_CI_URL", "postgresql://rw:Env-Secret-77@[db4/shop");
    rw::ConfigLoad load = rw::LoadConfigText(Target("\"${RW_TEST_CI_URL}\""), "test.toml");
    REQUIRE(load.errors.size() == 1);
    CHECK(load.errors[0].message.find("malformed conninfo (from the environment)") !=
          std::string::npos);
    CHECK(load.errors[0].ToString().find("Env-Secret-77") == std::string::npos);
  }
}

TEST_CASE("conninfo: Redacted() never shows password or sslpassword, in either form",
          "[unit][config]") {
  const rw::ConnSpec kv("host=db1 user=rw password='a b' sslpassword=kp sslmode=verify-full");
  CHECK(kv.Redacted() == "host=db1 user=rw sslmode=verify-full");
  CHECK(kv.password == "a b");
  const rw::ConnSpec uri("postgresql://rw:a%20b@db1/blog?sslpassword=kp&application_name=x%20y");
  CHECK(uri.Redacted() == "host=db1 dbname=blog user=rw application_name='x y'");
  CHECK(uri.password == "a b");
  // sslpassword still reaches libpq.
  CHECK(*rw::FindKeyword(uri.ForLibpq(), "sslpassword") == "kp");
  // Redacted() is itself a valid conninfo.
  CHECK(Parse(uri.Redacted()) ==
        ConnKeywords{
            {"host", "db1"}, {"dbname", "blog"}, {"user", "rw"}, {"application_name", "x y"}});
}

TEST_CASE("conninfo: a URI source connects (session keywords are not appended as text)",
          "[unit][config]") {
  // Nothing listens on the port: the error must be libpq's connection error, not a complaint
  // about the URI, and must not carry the password.
  const int port = rw::PickFreePort();
  const rw::ConnSpec spec("postgresql://rw:Uri-Secret-31@127.0.0.1:" + std::to_string(port) +
                          "/blog?sslmode=disable");
  rw::SessionLimits limits;
  limits.connect_timeout = std::chrono::seconds(2);
  try {
    rw::Connect(spec, limits);
    FAIL("connected to a port nothing listens on");
  } catch (const rw::Error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(e.kind() == rw::ErrorKind::kConnect);
    CHECK(what.find("Connection refused") != std::string::npos);
    CHECK(what.find("URI") == std::string::npos);
    CHECK(what.find("Uri-Secret-31") == std::string::npos);
  }
}

TEST_CASE("secrets: Redact() removes registered secrets and password patterns", "[unit][secrets]") {
  const std::string secret = "Reg 'Sec\\ret\" 42";
  rw::RegisterSecret(secret);
  rw::RegisterSecret("");  // ignored
  CHECK(rw::Redact("before " + secret + " after") == "before *** after");
  // Its quoted spellings too: inside a conninfo value and inside a JSON string.
  CHECK(rw::Redact(R"(x='Reg \'Sec\\ret" 42')") == "x='***'");
  CHECK(rw::Redact(R"({"e":"Reg 'Sec\\ret\" 42"})") == R"({"e":"***"})");

  // Patterns catch what was never registered.
  CHECK(rw::Redact("host=h password=abc user=u") == "host=h password=*** user=u");
  CHECK(rw::Redact(R"(host=h password='a b\' c' user=u)") == "host=h password=*** user=u");
  CHECK(rw::Redact("sslpassword=k PGPASSWORD=p") == "sslpassword=*** PGPASSWORD=***");
  CHECK(rw::Redact("in URI: \"postgresql://u:pw@[h/db?password=x&sslmode=y\"") ==
        "in URI: \"postgresql://u:***@[h/db?password=***&sslmode=y\"");
  CHECK(rw::Redact("postgres://u@h/db") == "postgres://u@h/db");
  CHECK(rw::Redact("https://example.org/a:b@c") == "https://example.org/a:b@c");
  // No false positives on libpq's own words.
  const std::string msg = "FATAL:  password authentication failed for user \"rw\"";
  CHECK(rw::Redact(msg) == msg);
  CHECK(rw::Redact("password_file = x") == "password_file = x");
}

TEST_CASE("secrets: the logging layer redacts messages and fields", "[unit][secrets]") {
  const std::string secret = "Log-Secret 'q\" 7";
  rw::RegisterSecret(secret);
  for (rw::LogFormat f : {rw::LogFormat::kText, rw::LogFormat::kJson}) {
    const std::string line = rw::FormatLogLine(
        f, "cannot connect: " + secret,
        {{"reason", "bad URI \"postgresql://u:unregistered@[h\""}, {"pw", secret}});
    INFO(line);
    CHECK(line.find("Log-Secret") == std::string::npos);
    CHECK(line.find("unregistered") == std::string::npos);
    CHECK(line.find("***") != std::string::npos);
  }
}

TEST_CASE("secrets: children get a minimal environment", "[unit][secrets]") {
  ScopedEnv secret("RW_TEST_AGENT_SECRET", "Env-Leak-Token-5");
  ScopedEnv pg("PGPASSWORD", "Agent-PGPASSWORD-6");
  ScopedEnv lc("LC_ALL", "C.UTF-8");
  rw::ProcessSpec spec;
  spec.argv = {"env"};
  spec.env = {{"PGAPPNAME", "given"}};
  const rw::ProcessResult r = rw::RunProcess(spec);
  INFO(r.out << r.err);
  REQUIRE(r.ok());
  CHECK(r.out.find("Env-Leak-Token-5") == std::string::npos);
  CHECK(r.out.find("Agent-PGPASSWORD-6") == std::string::npos);
  CHECK(r.out.find("RW_TEST_AGENT_SECRET") == std::string::npos);
  CHECK(r.out.find("PATH=") != std::string::npos);
  CHECK(r.out.find("LC_ALL=C.UTF-8\n") != std::string::npos);
  CHECK(r.out.find("PGAPPNAME=given\n") != std::string::npos);
  // What the caller passes is all a client tool gets beyond the minimum.
  spec.env = {{"PGPASSWORD", "for-the-tool"}};
  const rw::ProcessResult tool = rw::RunProcess(spec);
  CHECK(tool.out.find("PGPASSWORD=for-the-tool\n") != std::string::npos);
}
