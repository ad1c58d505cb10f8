#include "agent/sources/pg_dump_text.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "agent/errors.h"

extern char** environ;

namespace rw::pgdump {
namespace {

using Clock = std::chrono::steady_clock;

bool StartsWith(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

std::string Upper(std::string s) {
  for (auto& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

std::string Lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Feeds complete lines of a byte stream to a callback; keeps the unfinished tail.
class LineSplitter {
 public:
  explicit LineSplitter(const std::function<bool(const std::string&)>& f) : f_(f) {}
  // False once the callback asked to stop.
  bool Feed(const char* data, std::size_t n) {
    std::size_t start = 0;
    for (;;) {
      const void* nl = std::memchr(data + start, '\n', n - start);
      if (!nl) break;
      std::size_t end = static_cast<const char*>(nl) - data;
      if (pending_.empty()) {
        line_.assign(data + start, end - start);
      } else {
        pending_.append(data + start, end - start);
        line_.swap(pending_);
        pending_.clear();
      }
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      if (!f_(line_)) return false;
      start = end + 1;
    }
    pending_.append(data + start, n - start);
    return true;
  }
  bool Finish() {
    if (pending_.empty()) return true;
    std::string last;
    last.swap(pending_);
    return f_(last);
  }

 private:
  const std::function<bool(const std::string&)>& f_;
  std::string pending_;
  std::string line_;
};

// A token of one SQL line: a bare word (lowercased when used as a name), a "quoted identifier",
// a 'string literal', or one punctuation character. depth counts open parentheses.
struct Token {
  enum class Kind { kWord, kQuoted, kString, kPunct } kind;
  std::string text;
  int depth = 0;
};

std::vector<Token> Tokenize(const std::string& s) {
  std::vector<Token> out;
  int depth = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
    } else if (c == '"' || c == '\'') {
      std::string t;
      ++i;
      while (i < s.size()) {
        if (s[i] == c) {
          if (i + 1 < s.size() && s[i + 1] == c) {
            t += c;
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        t += s[i++];
      }
      out.push_back({c == '"' ? Token::Kind::kQuoted : Token::Kind::kString, t, depth});
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' || c == '.' ||
               (static_cast<unsigned char>(c) & 0x80)) {
      std::size_t b = i;
      while (i < s.size() &&
             (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' || s[i] == '$' ||
              s[i] == '.' || (static_cast<unsigned char>(s[i]) & 0x80)))
        ++i;
      out.push_back({Token::Kind::kWord, s.substr(b, i - b), depth});
    } else {
      if (c == '(') ++depth;
      if (c == ')') --depth;
      out.push_back({Token::Kind::kPunct, std::string(1, c), c == '(' ? depth - 1 : depth});
      ++i;
    }
  }
  return out;
}

bool IsWord(const std::vector<Token>& t, std::size_t i, const char* w) {
  return i < t.size() && t[i].kind == Token::Kind::kWord && Upper(t[i].text) == w;
}

// A role list at t[i]: name [, name]*. Pseudo-roles are skipped; "GROUP" (old GRANT syntax) too.
void RoleList(const std::vector<Token>& t, std::size_t i, std::vector<std::string>* out) {
  while (i < t.size()) {
    if (IsWord(t, i, "GROUP")) ++i;
    if (i >= t.size()) return;
    if (t[i].kind == Token::Kind::kQuoted) {
      out->push_back(t[i].text);
    } else if (t[i].kind == Token::Kind::kWord) {
      std::string u = Upper(t[i].text);
      if (u != "PUBLIC" && u != "CURRENT_USER" && u != "SESSION_USER" && u != "CURRENT_ROLE")
        out->push_back(Lower(t[i].text));
    } else {
      return;
    }
    ++i;
    if (i < t.size() && t[i].kind == Token::Kind::kPunct && t[i].text == ",") {
      ++i;
      continue;
    }
    return;
  }
}

// Index after the last (or first) top-level word w, or npos.
std::size_t AfterWord(const std::vector<Token>& t, const char* w, bool last) {
  std::size_t found = std::string::npos;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i].depth == 0 && IsWord(t, i, w)) {
      found = i + 1;
      if (!last) break;
    }
  }
  return found;
}

// "pg_restore: error: could not execute query: ERROR:  x" style blocks.
std::vector<ToolError> Blocks(const std::string& err,
                              const std::function<int(const std::string&)>& classify) {
  // classify: 1 starts an error block, 2 ends any block (another message), 0 continues.
  std::vector<ToolError> out;
  bool open = false;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    line = TrimRight(line);
    int k = classify(line);
    if (k == 1) {
      out.push_back({line, line});
      open = true;
    } else if (k == 2) {
      open = false;
    } else if (open && !line.empty()) {
      out.back().context += "\n" + line;
    }
  }
  return out;
}

}  // namespace

std::string ForEachLine(const std::string& path, const std::string& decompressor,
                        const std::function<bool(const std::string&)>& on_line, CancelToken* cancel,
                        Duration timeout) {
  LineSplitter split(on_line);
  std::vector<char> buf(1 << 16);
  if (decompressor.empty()) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "cannot open " + path + ": " + std::strerror(errno);
    std::string problem;
    std::size_t chunks = 0;
    for (;;) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        problem = "cannot read " + path + ": " + std::strerror(errno);
        break;
      }
      if (n == 0) {
        split.Finish();
        break;
      }
      if (!split.Feed(buf.data(), static_cast<std::size_t>(n))) break;
      if (cancel && (++chunks % 64) == 0 && cancel->cancelled()) {
        close(fd);
        throw Error(ErrorKind::kCancelled, "cancelled while reading " + path);
      }
    }
    close(fd);
    return problem;
  }

  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> args = {decompressor, "-dc", path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The child starts with no blocked signals and SIGPIPE at its default, whatever the agent set.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, pipe_only;
  sigemptyset(&none);
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &pipe_only);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, decompressor.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (rc != 0) {
    close(p[0]);
    return "cannot run " + decompressor + ": " + std::strerror(rc);
  }
  auto deadline = Clock::now() + timeout;
  bool stopped = false, cancelled = false, timed_out = false;
  for (;;) {
    if (cancel && cancel->cancelled()) {
      cancelled = true;
      break;
    }
    if (Clock::now() > deadline) {
      timed_out = true;
      break;
    }
    pollfd pf{p[0], POLLIN, 0};
    int n = poll(&pf, 1, 200);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    ssize_t got = read(p[0], buf.data(), buf.size());
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) {
      split.Finish();
      break;
    }
    if (!split.Feed(buf.data(), static_cast<std::size_t>(got))) {
      stopped = true;
      break;
    }
  }
  close(p[0]);
  if (stopped || cancelled || timed_out) kill(pid, SIGKILL);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (cancelled) throw Error(ErrorKind::kCancelled, "cancelled while reading " + path);
  if (timed_out) throw Error(ErrorKind::kTimeout, "reading " + path + " timed out");
  if (stopped) return {};
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::string prog = decompressor.substr(decompressor.rfind('/') + 1);
    return prog + " -dc " + path + " failed" +
           (WIFEXITED(st) ? " with exit code " + std::to_string(WEXITSTATUS(st)) : "");
  }
  return {};
}

std::string ReadHead(const std::string& path, const std::string& decompressor,
                     std::size_t max_bytes) {
  std::string head;
  ForEachLine(
      path, decompressor,
      [&](const std::string& line) {
        head += line;
        head += '\n';
        return head.size() < max_bytes;
      },
      nullptr, std::chrono::seconds(60));
  return head;
}

std::vector<std::string> RolesInStatement(const std::string& line) {
  std::vector<std::string> roles;
  auto t = Tokenize(line);
  if (t.empty() || t[0].kind != Token::Kind::kWord) return roles;
  std::string first = Upper(t[0].text);
  if (first == "ALTER") {
    if (IsWord(t, 1, "DEFAULT") && IsWord(t, 2, "PRIVILEGES")) {
      if (IsWord(t, 3, "FOR") && (IsWord(t, 4, "ROLE") || IsWord(t, 4, "USER")))
        RoleList(t, 5, &roles);
      std::size_t to = AfterWord(t, "TO", true), from = AfterWord(t, "FROM", true);
      if (to != std::string::npos) RoleList(t, to, &roles);
      if (from != std::string::npos) RoleList(t, from, &roles);
    } else if ((IsWord(t, 1, "ROLE") || IsWord(t, 1, "USER")) && !IsWord(t, 2, "MAPPING")) {
      RoleList(t, 2, &roles);
      roles.resize(std::min<std::size_t>(roles.size(), 1));
    } else if (IsWord(t, 1, "USER") && IsWord(t, 2, "MAPPING") && IsWord(t, 3, "FOR")) {
      RoleList(t, 4, &roles);
    } else {
      for (std::size_t i = 0; i + 2 < t.size(); ++i)
        if (t[i].depth == 0 && IsWord(t, i, "OWNER") && IsWord(t, i + 1, "TO"))
          RoleList(t, i + 2, &roles);
    }
  } else if (first == "GRANT") {
    std::size_t to = AfterWord(t, "TO", true);
    if (to != std::string::npos) RoleList(t, to, &roles);
    std::size_t by = AfterWord(t, "GRANTED", true);
    if (by != std::string::npos && IsWord(t, by, "BY")) RoleList(t, by + 1, &roles);
  } else if (first == "REVOKE") {
    std::size_t from = AfterWord(t, "FROM", true);
    if (from != std::string::npos) RoleList(t, from, &roles);
  } else if (first == "CREATE") {
    if (IsWord(t, 1, "POLICY")) {
      std::size_t to = AfterWord(t, "TO", false);
      if (to != std::string::npos) RoleList(t, to, &roles);
    } else if (IsWord(t, 1, "USER") && IsWord(t, 2, "MAPPING") && IsWord(t, 3, "FOR")) {
      RoleList(t, 4, &roles);
    }
  } else if (first == "SET") {
    std::size_t i = IsWord(t, 1, "SESSION") && IsWord(t, 2, "AUTHORIZATION") ? 3
                    : IsWord(t, 1, "ROLE")                                   ? 2
                                                                             : 0;
    if (i && i < t.size()) {
      if (t[i].kind == Token::Kind::kString || t[i].kind == Token::Kind::kQuoted) {
        roles.push_back(t[i].text);
      } else if (t[i].kind == Token::Kind::kWord && !IsWord(t, i, "DEFAULT") &&
                 !IsWord(t, i, "NONE")) {
        RoleList(t, i, &roles);
      }
    }
  }
  return roles;
}

void RoleScanner::Line(const std::string& line) {
  if (in_copy_) {
    if (line == "\\.") in_copy_ = false;
    return;
  }
  if (line.empty()) return;
  switch (line[0]) {
    case 'A':
    case 'G':
    case 'R':
    case 'S':
    case 'C':
      break;
    default:
      return;
  }
  if (StartsWith(line, "COPY ")) {
    if (line.size() >= 11 && line.compare(line.size() - 11, 11, "FROM stdin;") == 0)
      in_copy_ = true;
    return;
  }
  if (!(StartsWith(line, "ALTER ") || StartsWith(line, "GRANT ") || StartsWith(line, "REVOKE ") ||
        StartsWith(line, "SET SESSION AUTHORIZATION ") || StartsWith(line, "SET ROLE ") ||
        StartsWith(line, "CREATE POLICY ") || StartsWith(line, "CREATE USER MAPPING ")))
    return;
  for (auto& r : RolesInStatement(line))
    if (!r.empty()) roles_.insert(r);
}

std::vector<ToolError> ParsePgRestoreErrors(const std::string& err, int* ignored_count) {
  if (ignored_count) *ignored_count = -1;
  return Blocks(err, [ignored_count](const std::string& line) {
    if (StartsWith(line, "pg_restore: error:")) return 1;
    if (StartsWith(line, "pg_restore: detail:") || StartsWith(line, "pg_restore: hint:")) return 0;
    if (StartsWith(line, "pg_restore:")) {
      const char* k = "pg_restore: warning: errors ignored on restore:";
      if (ignored_count && StartsWith(line, k))
        *ignored_count = std::atoi(line.c_str() + strlen(k));
      return 2;
    }
    return 0;
  });
}

std::vector<ToolError> ParsePsqlErrors(const std::string& err) {
  return Blocks(err, [](const std::string& line) {
    if (StartsWith(line, "psql: error:")) return 1;
    if (StartsWith(line, "psql:")) {
      // Server errors, and psql's own ("error: invalid command \\foo", restricted commands).
      for (const char* k : {": ERROR:", ": FATAL:", ": PANIC:", ": error:"})
        if (line.find(k) != std::string::npos) return 1;
      return 2;
    }
    if (StartsWith(line, "gzip:") || StartsWith(line, "zstd:") || StartsWith(line, "lz4:") ||
        StartsWith(line, "Error "))
      return 1;
    return 0;
  });
}

bool Allowed(const ToolError& e, const std::vector<std::string>& allow) {
  for (const auto& a : allow)
    if (!a.empty() && e.context.find(a) != std::string::npos) return true;
  return false;
}

std::vector<ToolError> RejectedErrors(const std::vector<ToolError>& errors,
                                      const std::vector<std::string>& allow,
                                      std::vector<std::string>* accepted) {
  std::vector<ToolError> bad;
  for (const auto& e : errors) {
    if (Allowed(e, allow))
      accepted->push_back(e.line);
    else
      bad.push_back(e);
  }
  return bad;
}

std::string JoinFirst(const std::vector<ToolError>& errors, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < errors.size() && i < n; ++i) out += (i ? " | " : "") + errors[i].line;
  return out;
}

}  // namespace rw::pgdump
