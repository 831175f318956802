#!/usr/bin/env python3
"""Extracts, from a checkout of upstream k0smotron, every manifest of a kind we serve.

Reads the YAML files and the ```yaml blocks of the Markdown files under docs/, config/samples/,
templates/, e2e/ and inttest/ of the checkout given as the first argument. Keeps the documents
whose kind is one of ours (K0smotronControlPlane(Template), K0sWorkerConfig(Template), and
k0smotron.io's Cluster and JoinTokenRequest) at any version. Writes one JSON object per line
to stdout: {"source": "<file>#<n>", "object": {...}}. clusterctl template variables
(${NAME} and ${NAME:=default}) are replaced by a placeholder of the right shape first, since
clusterctl would substitute them before anything reaches the API server. Documents that are not
YAML once substituted (doc snippets with "..." and the like) are reported on stderr and
skipped: they are not manifests anyone can apply.
"""

import json
import os
import re
import sys
import textwrap

import yaml

ROOTS = ("docs", "config/samples", "templates", "e2e", "inttest")
KINDS = {
    "controlplane.cluster.x-k8s.io": {"K0smotronControlPlane", "K0smotronControlPlaneTemplate"},
    "bootstrap.cluster.x-k8s.io": {"K0sWorkerConfig", "K0sWorkerConfigTemplate"},
    "k0smotron.io": {"Cluster", "JoinTokenRequest"},
}
FENCE = re.compile(r"^([ \t]*)```ya?ml[^\n]*\n(.*?)^\1```", re.M | re.S)
VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)(?::=([^}]*))?\}")


def substitute(text):
    """clusterctl's variables: the default where one is given, else a value fit for the name."""

    def value(match):
        name, default = match.group(1), match.group(2)
        if default is not None:
            return default
        if name.endswith(("_COUNT", "_REPLICAS", "_PORT")) or name == "REPLICAS":
            return "1"
        if "VERSION" in name:
            return "v1.35.4+k0s.0"
        return "placeholder-" + name.lower().replace("_", "-")

    return VARIABLE.sub(value, text)


def ours(doc):
    if not isinstance(doc, dict):
        return False
    api_version = doc.get("apiVersion")
    if not isinstance(api_version, str) or "/" not in api_version:
        return False
    group = api_version.split("/", 1)[0]
    return doc.get("kind") in KINDS.get(group, ())


def texts(root):
    for base in ROOTS:
        for directory, _, files in os.walk(os.path.join(root, base)):
            for name in sorted(files):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, root)
                if name.endswith((".yaml", ".yml")):
                    with open(path, encoding="utf-8") as f:
                        yield relative, f.read()
                elif name.endswith(".md"):
                    with open(path, encoding="utf-8") as f:
                        for i, (_, block) in enumerate(FENCE.findall(f.read())):
                            yield f"{relative}@block{i}", textwrap.dedent(block)


def main():
    root = sys.argv[1]
    for source, text in texts(root):
        try:
            docs = list(yaml.safe_load_all(substitute(text)))
        except yaml.YAMLError as e:
            if any(kind in text for kinds in KINDS.values() for kind in kinds):
                first = str(e).splitlines()[0]
                print(f"skipped {source}: not YAML ({first})", file=sys.stderr)
            continue
        for n, doc in enumerate(docs):
            if ours(doc):
                print(json.dumps({"source": f"{source}#{n}", "object": doc}))


if __name__ == "__main__":
    main()
