#!/usr/bin/env python3
"""Writes deploy/kubernetes/prometheusrule.yaml, a Prometheus Operator PrometheusRule holding exactly
the groups and rules of dashboards/alerts.yml (which stays the one source of the rules).

  deploy/kubernetes/gen-prometheusrule.py            rewrite prometheusrule.yaml
  deploy/kubernetes/gen-prometheusrule.py --check    exit 1 when prometheusrule.yaml is stale
  deploy/kubernetes/gen-prometheusrule.py --stdout   print it

Options: --name (metadata.name, default restorewatch), --namespace (default: none, i.e. the one
kubectl applies to), --label KEY=VALUE (repeatable; e.g. release=prometheus when the operator's
ruleSelector needs it). Needs python3-yaml.
"""
import argparse
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SOURCE = os.path.join(ROOT, "dashboards", "alerts.yml")
OUTPUT = os.path.join(HERE, "prometheusrule.yaml")


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value):
    # Multi-line strings (descriptions, long exprs) as literal blocks, the way alerts.yml reads.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(name, namespace, labels):
    with open(SOURCE, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    if not isinstance(rules, dict) or not isinstance(rules.get("groups"), list):
        raise SystemExit(f"{SOURCE}: no groups: list")
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/name": "restorewatch",
                          "app.kubernetes.io/component": "alerting-rules"}
    metadata["labels"].update(labels)
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {"groups": rules["groups"]},
    }
    header = ("# Generated from dashboards/alerts.yml by deploy/kubernetes/gen-prometheusrule.py;"
              " do not edit.\n"
              "# The rules expect the agent scraped as job=\"restorewatch\" (servicemonitor.yaml"
              " sets it).\n")
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100,
                              default_flow_style=False, allow_unicode=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    p.add_argument("--stdout", action="store_true")
    p.add_argument("--name", default="restorewatch")
    p.add_argument("--namespace", default="")
    p.add_argument("--label", action="append", default=[])
    a = p.parse_args()
    labels = {}
    for kv in a.label:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SystemExit(f"--label {kv}: expected KEY=VALUE")
        labels[k] = v
    text = render(a.name, a.namespace, labels)
    if a.stdout:
        sys.stdout.write(text)
        return 0
    if a.check:
        try:
            with open(OUTPUT, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            print(f"{OUTPUT} is stale: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
