// deploy/kubernetes and deploy/prometheus (issue 12): every manifest is YAML of the expected
// shape, the PrometheusRule holds exactly the rules of dashboards/alerts.yml, the ConfigMap's
// config passes check-config, the scrape config passes `promtool check config` with the job the
// rules select, and the Alertmanager snippet passes `amtool check-config` and routes/inhibits as
// documented. Without python3 (and PyYAML), promtool or amtool the tool-based parts WARN and skip
// (`.ci/setup` installs python3-yaml, prometheus and prometheus-alertmanager).
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "agent/pg/process.h"
#include "tests/support/pg_fixture.h"

namespace {

std::string SourcePath(const std::string& rel) { return std::string(RW_SOURCE_DIR) + "/" + rel; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

void ReplaceAll(std::string& text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

rw::ProcessResult Run(std::vector<std::string> argv, std::map<std::string, std::string> env = {}) {
  rw::ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.env = std::move(env);
  spec.cwd = RW_SOURCE_DIR;
  spec.timeout = std::chrono::minutes(1);
  return rw::RunProcess(spec);
}

std::string Show(const rw::ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") +
         "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// python3 with PyYAML, or nullopt (the caller WARNs and skips).
std::optional<std::string> PythonWithYaml() {
  auto python = rw::FindProgram("python3");
  if (!python) return std::nullopt;
  if (!Run({*python, "-c", "import yaml"}).ok()) return std::nullopt;
  return python;
}

// Prints one line per document of every deploy/kubernetes/*.yaml ("doc FILE KIND NAME
// APIVERSION"), facts about every restorewatch container ("container ..." lines) and its mounts
// ("mount FILE PATH VOLUMETYPE"), and whether each kustomization resource exists.
const char* kManifests = R"PY(
import glob, os, sys, yaml
root = sys.argv[1]
files = sorted(glob.glob(os.path.join(root, "deploy/kubernetes/*.yaml")))
assert files, "no manifests"
for path in files:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert docs, path + ": empty"
    for d in docs:
        name = os.path.basename(path)
        if d["kind"] == "Kustomization":
            for res in d["resources"]:
                print("kustomize", res, os.path.exists(os.path.join(os.path.dirname(path), res)))
            continue
        print("doc", name, d["kind"], d["metadata"]["name"], d["apiVersion"])
        spec = d.get("spec", {}).get("template", {}).get("spec")
        if not spec:
            continue
        pod_user = spec.get("securityContext", {}).get("runAsUser")
        for c in spec["containers"]:
            if c["name"] != "restorewatch":
                continue
            sc = c.get("securityContext", {})
            user = sc.get("runAsUser", pod_user)
            print("container", name, "user", user)
            print("container", name, "liveness", c["livenessProbe"]["httpGet"]["path"])
            print("container", name, "readiness", c["readinessProbe"]["httpGet"]["path"])
            print("container", name, "privesc", sc.get("allowPrivilegeEscalation"))
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            for m in c["volumeMounts"]:
                v = vols.get(m["name"])
                kind = "claimtemplate"
                if v is not None:
                    kind = [k for k in v if k != "name"][0]
                print("mount", name, m["mountPath"], kind)
)PY";

// Compares the PrometheusRule's groups with dashboards/alerts.yml: prints "rules N" (alerts in
// alerts.yml), then "equal" or one "diff ..." line per difference.
const char* kCompareRules = R"PY(
import sys, yaml
with open(sys.argv[1]) as f:
    src = yaml.safe_load(f)
with open(sys.argv[2]) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
assert len(docs) == 1 and docs[0]["kind"] == "PrometheusRule", "one PrometheusRule expected"
pr = docs[0]
def rules(groups):
    out = {}
    for g in groups:
        for r in g["rules"]:
            key = (g["name"], r.get("alert") or r.get("record"), r["expr"].strip(), r.get("for"))
            out.setdefault(key, []).append((repr(sorted(r.get("labels", {}).items())),
                                            repr(sorted(r.get("annotations", {}).items()))))
    return out
a, b = rules(src["groups"]), rules(pr["spec"]["groups"])
print("rules", sum(len(v) for v in a.values()))
diffs = [("missing", k) for k in a if k not in b] + [("extra", k) for k in b if k not in a]
diffs += [("changed", k) for k in a if k in b and sorted(a[k]) != sorted(b[k])]
for kind, k in diffs:
    print("diff", kind, k[1], repr(k[2]))
if not diffs:
    print("equal")
)PY";

bool HasLine(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("deploy: every Kubernetes manifest parses; probes, non-root, Secret files, work volume",
          "[unit][deploy]") {
  auto python = PythonWithYaml();
  if (!python) {
    WARN("python3 with PyYAML not found (apt-get install python3-yaml): skipping");
    return;
  }
  auto r = Run({*python, "-c", kManifests, RW_SOURCE_DIR});
  INFO(Show(r));
  REQUIRE(r.ok());
  for (const char* doc :
       {"doc configmap.yaml ConfigMap restorewatch-blog v1",
        "doc secret.yaml Secret restorewatch-blog v1",
        "doc deployment.yaml Deployment restorewatch-blog apps/v1",
        "doc deployment.yaml PersistentVolumeClaim restorewatch-blog-state v1",
        "doc service.yaml Service restorewatch-blog v1",
        "doc sidecar.yaml StatefulSet blog-db apps/v1",
        "doc sidecar.yaml Service blog-db-restorewatch v1",
        "doc servicemonitor.yaml ServiceMonitor restorewatch monitoring.coreos.com/v1",
        "doc prometheusrule.yaml PrometheusRule restorewatch monitoring.coreos.com/v1"}) {
    CHECK(HasLine(r.out, doc));
  }
  // Both shapes: probes on /healthz and /readyz, uid 10001, no privilege escalation, config from
  // the ConfigMap, passwords as Secret files, work on an emptyDir, state persistent.
  for (const char* file : {"deployment.yaml", "sidecar.yaml"}) {
    const std::string f = file;
    INFO(f);
    CHECK(HasLine(r.out, "container " + f + " user 10001"));
    CHECK(HasLine(r.out, "container " + f + " liveness /healthz"));
    CHECK(HasLine(r.out, "container " + f + " readiness /readyz"));
    CHECK(HasLine(r.out, "container " + f + " privesc False"));
    CHECK(HasLine(r.out, "mount " + f + " /etc/restorewatch/config configMap"));
    CHECK(HasLine(r.out, "mount " + f + " /etc/restorewatch/secrets secret"));
    CHECK(HasLine(r.out, "mount " + f + " /var/cache/restorewatch emptyDir"));
  }
  CHECK(HasLine(r.out, "mount deployment.yaml /var/lib/restorewatch persistentVolumeClaim"));
  CHECK(HasLine(r.out, "mount sidecar.yaml /var/lib/restorewatch claimtemplate"));
  // kustomization.yaml lists every standalone manifest, and they exist.
  for (const char* res : {"configmap.yaml", "secret.yaml", "deployment.yaml", "service.yaml",
                          "servicemonitor.yaml", "prometheusrule.yaml"})
    CHECK(HasLine(r.out, std::string("kustomize ") + res + " True"));
  CHECK(r.out.find("kustomize ") == r.out.find("kustomize configmap.yaml True"));
}

TEST_CASE("deploy: the PrometheusRule holds exactly the rules of dashboards/alerts.yml",
          "[unit][deploy]") {
  auto python = PythonWithYaml();
  if (!python) {
    WARN("python3 with PyYAML not found (apt-get install python3-yaml): skipping");
    return;
  }
  const std::string rule = SourcePath("deploy/kubernetes/prometheusrule.yaml");
  auto r = Run({*python, "-c", kCompareRules, SourcePath("dashboards/alerts.yml"), rule});
  INFO(Show(r));
  REQUIRE(r.ok());
  CHECK(HasLine(r.out, "equal"));
  const auto lines = std::count(r.out.begin(), r.out.end(), '\n');
  CHECK(lines == 2);
  const std::string text = ReadFile(SourcePath("dashboards/alerts.yml"));
  std::size_t in_source = 0;
  for (auto at = text.find("- alert: "); at != std::string::npos;
       at = text.find("- alert: ", at + 1))
    ++in_source;
  CHECK(r.out.find("rules " + std::to_string(in_source) + "\n") == 0);

  // The generator agrees that the committed file is current.
  auto check = Run({*python, SourcePath("deploy/kubernetes/gen-prometheusrule.py"), "--check"});
  INFO(Show(check));
  CHECK(check.ok());

  // The comparison notices a dropped rule and a changed expression.
  rw::test::TestDir dir("rwdeploy-");
  std::string tampered = ReadFile(rule);
  const auto first = tampered.find("    - alert: RestorewatchDrillFailing\n");
  REQUIRE(first != std::string::npos);
  tampered.replace(first, std::string("    - alert: RestorewatchDrillFailing\n").size(),
                   "    - alert: RestorewatchDrillFailingRenamed\n");
  ReplaceAll(tampered, "expr: restorewatch_source_up == 0", "expr: restorewatch_source_up == 2");
  WriteFile(dir / "tampered.yaml", tampered);
  auto bad = Run(
      {*python, "-c", kCompareRules, SourcePath("dashboards/alerts.yml"), dir / "tampered.yaml"});
  INFO(Show(bad));
  REQUIRE(bad.ok());
  CHECK_FALSE(HasLine(bad.out, "equal"));
  CHECK(bad.out.find("diff missing RestorewatchDrillFailing ") != std::string::npos);
  CHECK(bad.out.find("diff extra RestorewatchDrillFailingRenamed ") != std::string::npos);
  CHECK(bad.out.find("diff extra RestorewatchSourceDown 'restorewatch_source_up == 2'") !=
        std::string::npos);

  // The rule groups themselves pass promtool, as alerts.yml does.
  auto promtool = rw::FindProgram("promtool");
  if (!promtool) {
    WARN("promtool not found: skipping promtool check rules on the PrometheusRule");
    return;
  }
  auto spec = Run({*python, "-c",
                   "import sys,yaml; d=yaml.safe_load(open(sys.argv[1])); "
                   "yaml.safe_dump(d['spec'], open(sys.argv[2],'w'))",
                   rule, dir / "rules.yml"});
  REQUIRE(spec.ok());
  auto lint = Run({*promtool, "check", "rules", dir / "rules.yml"});
  INFO(Show(lint));
  CHECK(lint.ok());
}

TEST_CASE("deploy: the Kubernetes ConfigMap's restorewatch.toml passes check-config",
          "[unit][deploy]") {
  auto python = PythonWithYaml();
  if (!python) {
    WARN("python3 with PyYAML not found (apt-get install python3-yaml): skipping");
    return;
  }
  rw::test::TestDir dir("rwdeploy-");
  auto r = Run({*python, "-c",
                "import sys,yaml; d=yaml.safe_load(open(sys.argv[1])); "
                "open(sys.argv[2],'w').write(d['data']['restorewatch.toml'])",
                SourcePath("deploy/kubernetes/configmap.yaml"), dir / "restorewatch.toml"});
  INFO(Show(r));
  REQUIRE(r.ok());
  // The Secret's key is the file the config names (mounted at /etc/restorewatch/secrets).
  std::string config = ReadFile(dir / "restorewatch.toml");
  const std::string secret = ReadFile(SourcePath("deploy/kubernetes/secret.yaml"));
  CHECK(config.find("password_file = \"/etc/restorewatch/secrets/blog.password\"") !=
        std::string::npos);
  CHECK(secret.find("\n  blog.password: ") != std::string::npos);
  ReplaceAll(config, "/etc/restorewatch/secrets/", dir.path() + "/");
  WriteFile(dir / "blog.password", "secret\n");
  WriteFile(dir / "restorewatch.toml", config);
  auto check = Run({RW_BINARY, "check-config", "-c", dir / "restorewatch.toml"});
  INFO(Show(check));
  CHECK(check.exit_code == 0);
  CHECK(check.out.find("ok, 1 target(s)") != std::string::npos);
}

TEST_CASE("deploy: the Prometheus scrape config passes promtool and scrapes job=\"restorewatch\"",
          "[unit][deploy]") {
  auto promtool = rw::FindProgram("promtool");
  if (!promtool) {
    WARN("promtool not found (apt-get install prometheus): skipping");
    return;
  }
  // rule_files names the package's path; point it at the repository's copy of the same file.
  rw::test::TestDir dir("rwdeploy-");
  std::string config = ReadFile(SourcePath("deploy/prometheus/prometheus.yml"));
  REQUIRE(config.find("/usr/share/restorewatch/alerts.yml") != std::string::npos);
  ReplaceAll(config, "/usr/share/restorewatch/alerts.yml", SourcePath("dashboards/alerts.yml"));
  WriteFile(dir / "prometheus.yml", config);
  auto r = Run({*promtool, "check", "config", dir / "prometheus.yml"});
  INFO(Show(r));
  CHECK(r.ok());
  std::size_t in_source = 0;
  {
    const std::string text = ReadFile(SourcePath("dashboards/alerts.yml"));
    for (auto at = text.find("- alert: "); at != std::string::npos;
         at = text.find("- alert: ", at + 1))
      ++in_source;
  }
  CHECK(in_source >= 29);
  CHECK(r.out.find("SUCCESS: " + std::to_string(in_source) + " rules found") != std::string::npos);
  // The job the rules select is the job the snippet defines.
  CHECK(config.find("  - job_name: restorewatch\n") != std::string::npos);
  const std::string rules = ReadFile(SourcePath("dashboards/alerts.yml"));
  std::size_t jobs = 0;
  for (auto at = rules.find("job=\""); at != std::string::npos; at = rules.find("job=\"", at + 1)) {
    ++jobs;
    CHECK(rules.compare(at, 18, "job=\"restorewatch\"") == 0);
  }
  CHECK(jobs >= 2);
}

TEST_CASE("deploy: the Alertmanager snippet passes amtool, routes by severity, inhibits tickets",
          "[unit][deploy]") {
  auto amtool = rw::FindProgram("amtool");
  if (!amtool) {
    WARN("amtool not found (apt-get install prometheus-alertmanager): skipping");
    return;
  }
  const std::string config = SourcePath("deploy/prometheus/alertmanager.yml");
  auto r = Run({*amtool, "check-config", config});
  INFO(Show(r));
  REQUIRE(r.ok());
  CHECK(r.out.find("SUCCESS") != std::string::npos);
  CHECK(r.out.find(" - 1 inhibit rules") != std::string::npos);
  // Routing, as Alertmanager evaluates it.
  auto route = [&](const std::string& severity) {
    auto t = Run({*amtool, "config", "routes", "test", "--config.file=" + config,
                  "alertname=RestorewatchBackupTooOld", "target=blog", "severity=" + severity});
    INFO(Show(t));
    CHECK(t.ok());
    return t.out;
  };
  CHECK(route("page") == "restorewatch-page\n");
  CHECK(route("ticket") == "restorewatch-ticket\n");
  // The inhibit rule is the one the README and alerts.yml describe.
  auto python = PythonWithYaml();
  if (!python) {
    WARN("python3 with PyYAML not found: skipping the inhibit rule shape check");
    return;
  }
  auto shape = Run({*python, "-c",
                    "import sys,yaml; d=yaml.safe_load(open(sys.argv[1])); "
                    "[print(r['source_matchers'], r['target_matchers'], r['equal']) "
                    "for r in d['inhibit_rules']]",
                    config});
  INFO(Show(shape));
  REQUIRE(shape.ok());
  CHECK(shape.out == "['severity=\"page\"'] ['severity=\"ticket\"'] ['alertname', 'target']\n");
}
