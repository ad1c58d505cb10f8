// The web config (exporters/web_config.h): the YAML subset, its errors, bcrypt through libcrypt,
// basic-auth headers, and what counts as loopback; the state-dir and drill locks
// (agent/state_lock.h).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "agent/config.h"
#include "agent/errors.h"
#include "agent/pg/process.h"
#include "agent/state_lock.h"
#include "exporters/web_config.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

using test::WriteFile;

// bcrypt of "not-a-password", cost 10 (made with Python's crypt module, i.e. libxcrypt).
const char* kHash = "$2b$10$YY1c3q9rGQgGIItct.HD4OnB/UEQxwIO3Nbbo6ZFpv.lpDS43O5n.";

std::string AllErrors(const WebConfigLoad& l) {
  std::string s;
  for (const auto& e : l.errors) s += e + "\n";
  return s;
}

std::string Basic(const std::string& user_pass) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < user_pass.size(); i += 3) {
    unsigned v = (unsigned char)user_pass[i] << 16 | (unsigned char)user_pass[i + 1] << 8 |
                 (unsigned char)user_pass[i + 2];
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == user_pass.size()) {
    unsigned v = (unsigned char)user_pass[i] << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == user_pass.size()) {
    unsigned v = (unsigned char)user_pass[i] << 16 | (unsigned char)user_pass[i + 1] << 8;
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return "Basic " + out;
}

}  // namespace

TEST_CASE("web config: the exporter-toolkit format parses, relative paths anchor at the file",
          "[unit][web]") {
  test::TestDir dir;
  WriteFile(dir / "tls.crt", "x");
  WriteFile(dir / "tls.key", "x");
  const std::string text = std::string("---\n# comment\n") +
                           "tls_server_config:\n"
                           "  cert_file: tls.crt   # relative\n"
                           "  key_file: \"" +
                           (dir / "tls.key") +
                           "\"\n"
                           "\n"
                           "basic_auth_users:\n"
                           "  prometheus: " +
                           kHash +
                           "\n"
                           "  'ops team': '" +
                           kHash + "'\n";
  WebConfigLoad l = ParseWebConfig(text, dir / "web.yml");
  INFO(AllErrors(l));
  REQUIRE(l.config);
  CHECK(l.config->tls());
  CHECK(l.config->auth());
  CHECK(l.config->cert_file == dir / "tls.crt");
  CHECK(l.config->key_file == dir / "tls.key");
  REQUIRE(l.config->users.size() == 2);
  CHECK(l.config->users.at("prometheus") == kHash);
  CHECK(l.config->users.at("ops team") == kHash);
}

TEST_CASE(
    "web config: everything outside the subset or the supported keys is an error with its line",
    "[unit][web]") {
  test::TestDir dir;
  struct Case {
    std::string text;
    std::string line;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"basic_auth_users:\n\tbob: x\n", ":2:", "tabs"},
      {"http_server_config:\n  http2: false\n", ":1:", "not supported"},
      {"tls_server_config:\n  cert_file: a\n  client_auth_type: RequireAndVerifyClientCert\n",
       ":3:", "not supported"},
      {"basic_auth_users: {bob: x}\n", ":1:", "not supported"},
      {"basic_auth_users:\n  bob: plaintext\n", ":2:", "bcrypt"},
      {"basic_auth_users:\n  bob: $1$abc$def\n", ":2:", "bcrypt"},
      {"tls_server_config:\n  cert_file: missing.crt\n", ":2:", "needs both"},
      {"tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
       ":2:", "cannot read"},
      {"basic_auth_users:\n  bob: \"unterminated\n", ":2:", "unterminated"},
      {"basic_auth_users:\n  - bob\n", ":2:", "block mappings"},
      {std::string("basic_auth_users:\n  bob: ") + kHash + "\n  bob: " + kHash + "\n",
       ":3:", "duplicate"},
      {std::string("basic_auth_users:\n  bob: ") + kHash + "\n    carol: " + kHash + "\n",
       ":3:", "indentation"},
  };
  for (const auto& c : cases) {
    WebConfigLoad l = ParseWebConfig(c.text, dir / "web.yml");
    INFO(c.text << "\n---\n" << AllErrors(l));
    CHECK_FALSE(l.config);
    REQUIRE_FALSE(l.errors.empty());
    CHECK(l.errors[0].find(dir / "web.yml" + c.line) == 0);
    CHECK(AllErrors(l).find(c.needle) != std::string::npos);
  }
  WebConfigLoad missing = LoadWebConfig(dir / "nope.yml");
  CHECK_FALSE(missing.config);
  CHECK(AllErrors(missing).find("cannot read") != std::string::npos);
}

TEST_CASE("web config: enable_drill_api needs basic auth", "[unit][web]") {
  test::TestDir dir;
  Config cfg;
  cfg.path = dir / "agent.toml";
  cfg.agent.enable_drill_api = true;
  WebConfigLoad none = LoadAgentWebConfig(cfg);
  CHECK_FALSE(none.config);
  CHECK(AllErrors(none).find("enable_drill_api") != std::string::npos);
  CHECK_THROWS(AgentWebConfig(cfg));

  WriteFile(dir / "web.yml", std::string("basic_auth_users:\n  ops: ") + kHash + "\n");
  cfg.agent.web_config_file = "web.yml";  // relative to the config file
  WebConfigLoad ok = LoadAgentWebConfig(cfg);
  INFO(AllErrors(ok));
  REQUIRE(ok.config);
  CHECK(ok.config->auth());
  CHECK_FALSE(ok.config->tls());
  cfg.agent.enable_drill_api = false;
  cfg.agent.web_config_file.clear();
  REQUIRE(LoadAgentWebConfig(cfg).config);
  CHECK_FALSE(LoadAgentWebConfig(cfg).config->auth());
}

TEST_CASE("web config: bcrypt checks and basic-auth headers", "[unit][web]") {
  CHECK(BcryptMatches(kHash, "not-a-password"));
  CHECK_FALSE(BcryptMatches(kHash, "not-a-passwor"));
  CHECK_FALSE(BcryptMatches(kHash, ""));
  CHECK_FALSE(BcryptMatches("$2b$10$short", "not-a-password"));
  BasicAuth auth(std::map<std::string, std::string>{{"prometheus", kHash}});
  CHECK(auth.Allows(Basic("prometheus:not-a-password")));
  CHECK(auth.Allows(Basic("prometheus:not-a-password")));  // from the cache
  CHECK(auth.Allows("basic " + Basic("prometheus:not-a-password").substr(6)));
  CHECK_FALSE(auth.Allows(Basic("prometheus:wrong")));
  CHECK_FALSE(auth.Allows(Basic("nobody:not-a-password")));
  CHECK_FALSE(auth.Allows(Basic("prometheusnot-a-password")));
  CHECK_FALSE(auth.Allows(""));
  CHECK_FALSE(auth.Allows("Bearer abc"));
  CHECK_FALSE(auth.Allows("Basic !!!!"));
  BasicAuth open(std::map<std::string, std::string>{});
  CHECK(open.Allows(""));  // no users configured: no auth
}

TEST_CASE("web config: loopback addresses", "[unit][web]") {
  CHECK(IsLoopbackHost("127.0.0.1"));
  CHECK(IsLoopbackHost("127.1.2.3"));
  CHECK(IsLoopbackHost("::1"));
  CHECK(IsLoopbackHost("localhost"));
  CHECK_FALSE(IsLoopbackHost("0.0.0.0"));
  CHECK_FALSE(IsLoopbackHost("::"));
  CHECK_FALSE(IsLoopbackHost(""));
  CHECK_FALSE(IsLoopbackHost("10.0.0.5"));
  CHECK_FALSE(IsLoopbackHost("db1.example.com"));
}

TEST_CASE("conf/scratch.toml does not listen on every interface", "[unit][web]") {
  std::ifstream in(std::string(RW_SOURCE_DIR) + "/conf/scratch.toml");
  std::stringstream text;
  text << in.rdbuf();
  ::setenv("RW_SHOP_PASSWORD", "x", 0);
  test::TestDir dir;
  MakeDirs(dir / "secrets");
  WriteFile(dir / "secrets/scratch.password", "x\n");
  ConfigLoad l = LoadConfigText(text.str(), dir / "scratch.toml");
  REQUIRE(l.config);
  const std::string host = l.config->agent.listen.substr(0, l.config->agent.listen.rfind(':'));
  CHECK(IsLoopbackHost(host));
}

TEST_CASE("state locks: a second holder is refused and told the pid", "[unit][web]") {
  test::TestDir dir;
  auto a = LockStateDir(dir / "state");
  REQUIRE(a);
  try {
    LockStateDir(dir / "state");
    FAIL("a second lock on the state dir was granted");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("pid " + std::to_string(getpid())) != std::string::npos);
  }
  a.reset();
  CHECK(LockStateDir(dir / "state"));  // released with its holder

  std::string why;
  auto d = TryLockDrill(dir / "state", "t1", &why);
  REQUIRE(d);
  CHECK(DrillLockHeld(dir / "state", "t1", &why));
  CHECK(why == "a drill of t1 is already running (pid " + std::to_string(getpid()) + ")");
  why.clear();
  CHECK_FALSE(TryLockDrill(dir / "state", "t1", &why));
  CHECK(why.find("a drill of t1 is already running") == 0);
  CHECK_FALSE(DrillLockHeld(dir / "state", "t2", nullptr));
  d.reset();
  CHECK_FALSE(DrillLockHeld(dir / "state", "t1", nullptr));
  CHECK(TryLockDrill(dir / "state", "t1", &why));
}

TEST_CASE("conf/web.example.yml parses and its hash is of the password it names", "[unit][web]") {
  std::ifstream in(std::string(RW_SOURCE_DIR) + "/conf/web.example.yml");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  test::TestDir dir;
  const std::string from = "/etc/restorewatch/";
  for (std::size_t p = text.find(from); p != std::string::npos; p = text.find(from, p))
    text.replace(p, from.size(), dir.path() + "/");
  WriteFile(dir / "tls.crt", "x");
  WriteFile(dir / "tls.key", "x");
  WebConfigLoad l = ParseWebConfig(text, dir / "web.yml");
  INFO(AllErrors(l));
  REQUIRE(l.config);
  CHECK(l.config->tls());
  REQUIRE(l.config->users.count("prometheus") == 1);
  CHECK(BcryptMatches(l.config->users.at("prometheus"), "change-me"));
}
