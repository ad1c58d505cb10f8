// docs/runbooks/: every alert in dashboards/alerts.yml has a page (docs/runbooks/<alertname>.md)
// with the four sections on-call reads, its runbook_url points at that page, every page belongs
// to a rule, and the index lists every page.
#include <dirent.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

std::string SourcePath(const std::string& rel) { return std::string(RW_SOURCE_DIR) + "/" + rel; }

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The base every runbook_url starts with (documented in docs/runbooks/README.md).
const char* kRunbookBase = "https://github.com/restorewatch/restorewatch/blob/main/docs/runbooks/";

// One rule of alerts.yml: its name and the runbook_url of its annotations ("" when missing).
struct Rule {
  std::string alert;
  std::string runbook_url;
};

// The rules, split at each "- alert:" line (each rule's annotations follow its alert line).
std::vector<Rule> Rules(const std::string& yaml) {
  std::vector<Rule> rules;
  static const std::regex kAlert(R"(^\s+- alert:\s*([A-Za-z0-9_]+)\s*$)");
  static const std::regex kUrl(R"re(^\s+runbook_url:\s*"?([^"\s]+)"?\s*$)re");
  std::istringstream in(yaml);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, kAlert)) {
      rules.push_back({m[1].str(), ""});
    } else if (!rules.empty() && std::regex_match(line, m, kUrl)) {
      REQUIRE(rules.back().runbook_url.empty());  // one runbook_url per rule
      rules.back().runbook_url = m[1].str();
    }
  }
  return rules;
}

// Names (without .md) of the pages in docs/runbooks/, the index excluded.
std::set<std::string> Pages() {
  std::set<std::string> out;
  DIR* d = opendir(SourcePath("docs/runbooks").c_str());
  REQUIRE(d != nullptr);
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 3 && n.compare(n.size() - 3, 3, ".md") == 0 && n != "README.md")
      out.insert(n.substr(0, n.size() - 3));
  }
  closedir(d);
  return out;
}

}  // namespace

TEST_CASE("every alert rule has a runbook page and a runbook_url pointing at it",
          "[unit][dashboards][runbooks]") {
  const auto rules = Rules(Slurp(SourcePath("dashboards/alerts.yml")));
  REQUIRE(rules.size() >= 29);
  const auto pages = Pages();
  for (const auto& r : rules) {
    INFO("alert " << r.alert);
    CHECK(pages.count(r.alert) == 1);
    CHECK(r.runbook_url == kRunbookBase + r.alert + ".md");
  }
}

TEST_CASE("every runbook page belongs to an alert rule and has the on-call sections",
          "[unit][dashboards][runbooks]") {
  std::set<std::string> alerts;
  for (const auto& r : Rules(Slurp(SourcePath("dashboards/alerts.yml")))) alerts.insert(r.alert);
  const std::string index = Slurp(SourcePath("docs/runbooks/README.md"));
  REQUIRE(!index.empty());
  const auto pages = Pages();
  CHECK(pages.size() == alerts.size());
  for (const auto& p : pages) {
    INFO("docs/runbooks/" << p << ".md");
    CHECK(alerts.count(p) == 1);
    CHECK(index.find("(" + p + ".md)") != std::string::npos);
    const std::string text = Slurp(SourcePath("docs/runbooks/" + p + ".md"));
    CHECK(text.rfind("# " + p + "\n", 0) == 0);
    for (const char* section :
         {"## What it means", "## How to confirm", "## What to do", "## When to escalate"})
      CHECK(text.find(section) != std::string::npos);
    // "Exact commands": every page shows at least one command block.
    CHECK(text.find("```") != std::string::npos);
    // Links to other pages resolve.
    static const std::regex kLink(R"(\]\(((Restorewatch[A-Za-z]+)\.md)\))");
    for (std::sregex_iterator it(text.begin(), text.end(), kLink), end; it != end; ++it) {
      INFO("links to " << (*it)[1].str());
      CHECK(pages.count((*it)[2].str()) == 1);
    }
  }
}
