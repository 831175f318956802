#!/usr/bin/env bash
# check.sh UPSTREAM_DIR — are the manifests upstream k0smotron publishes admitted by our CRDs?
#
# UPSTREAM_DIR is a checkout of github.com/k0sproject/k0smotron (not reachable from CI: GitHub
# is closed here and the Go module proxy refuses the module, so this runs where a checkout
# exists; docs/deviations.md records the last run). Every manifest of a kind we serve, from
# upstream's docs, config/samples, templates, e2e data and inttest (extract.py), is sent as a
# server-side dry run twice to a private harness API server: once with upstream's own CRDs
# installed, once with ours. Upstream's webhooks cannot run here; they only refuse more, so
# "admitted by upstream" below is a superset of what upstream's full stack admits.
#
# Prints a Markdown table on stdout. Exits 1 when a manifest upstream admits at a version we
# serve is refused by ours and is not listed, with its reason, in known-refusals.txt next to
# this script.
#
# Env: HARNESS_DIR (default /tmp/k0smotron-rs-upstream-manifests; brought up and down here).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
upstream=${1:?usage: check.sh UPSTREAM_DIR}
upstream=$(cd "$upstream" && pwd)
export HARNESS_DIR=${HARNESS_DIR:-/tmp/k0smotron-rs-upstream-manifests}
harness=$repo/test/harness/cluster
work=$(mktemp -d)
trap '"$harness" down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$harness" down >/dev/null 2>&1 || true
eval "$("$harness" up)"
kubectl() { "$HARNESS_BIN/kubectl" "$@"; }
ns=upstream-manifests
kubectl create namespace "$ns" >/dev/null

python3 "$here/extract.py" "$upstream" >"$work/manifests.jsonl"
echo "$(wc -l <"$work/manifests.jsonl") manifests of our kinds in $upstream" >&2

upstream_crds=(
	config/clusterapi/controlplane/crd/bases/controlplane.cluster.x-k8s.io_k0smotroncontrolplanes.yaml
	config/clusterapi/controlplane/crd/bases/controlplane.cluster.x-k8s.io_k0smotroncontrolplanetemplates.yaml
	config/clusterapi/bootstrap/crd/bases/bootstrap.cluster.x-k8s.io_k0sworkerconfigs.yaml
	config/clusterapi/bootstrap/crd/bases/bootstrap.cluster.x-k8s.io_k0sworkerconfigtemplates.yaml
	config/standalone/crd/bases/k0smotron.io_clusters.yaml
	config/standalone/crd/bases/k0smotron.io_jointokenrequests.yaml
)

install() {
	local file
	for file in "$@"; do
		kubectl apply --server-side --force-conflicts -f "$file" >/dev/null
	done
	kubectl wait --for=condition=Established --timeout=60s \
		crd/k0smotroncontrolplanes.controlplane.cluster.x-k8s.io \
		crd/k0smotroncontrolplanetemplates.controlplane.cluster.x-k8s.io \
		crd/k0sworkerconfigs.bootstrap.cluster.x-k8s.io \
		crd/k0sworkerconfigtemplates.bootstrap.cluster.x-k8s.io \
		crd/clusters.k0smotron.io crd/jointokenrequests.k0smotron.io >/dev/null
	sleep 2 # the API server serves a just-established CRD a moment later
}

# dry_run OUT: one line per manifest, "ok" or the API server's refusal on one line.
dry_run() {
	local out=$1
	: >"$out"
	while IFS= read -r line; do
		printf '%s' "$line" | python3 -c '
import json, sys
o = json.load(sys.stdin)["object"]
o.setdefault("metadata", {}).pop("namespace", None)
json.dump(o, sys.stdout)' >"$work/object.json"
		if msg=$(kubectl create --dry-run=server -n "$ns" -f "$work/object.json" 2>&1 >/dev/null); then
			echo ok >>"$out"
		else
			# One line, without kubectl's "error when creating <temp file>:" and deprecation
			# warnings.
			echo "$msg" | grep -v '^Warning:' | tr '\n' ' ' |
				sed -e 's/error when creating "[^"]*": //' -e 's/  */ /g' >>"$out"
			echo >>"$out"
		fi
	done <"$work/manifests.jsonl"
}

install "${upstream_crds[@]/#/$upstream/}"
dry_run "$work/upstream.txt"
for crd in "${upstream_crds[@]}"; do
	kubectl delete --wait -f "$upstream/$crd" >/dev/null
done
install "$repo"/config/crd/bases/
dry_run "$work/ours.txt"

python3 - "$work/manifests.jsonl" "$work/upstream.txt" "$work/ours.txt" "$here/known-refusals.txt" <<'EOF'
import json, sys
manifests = [json.loads(l) for l in open(sys.argv[1])]
upstream = open(sys.argv[2]).read().splitlines()
ours = open(sys.argv[3]).read().splitlines()
known = {}
for line in open(sys.argv[4]):
    line = line.strip()
    if line and not line.startswith("#"):
        source, _, reason = line.partition(" ")
        known[source] = reason.strip()
served = {"controlplane.cluster.x-k8s.io/v1beta2", "bootstrap.cluster.x-k8s.io/v1beta2",
          "k0smotron.io/v1beta2"}
print("| manifest | kind | upstream's CRDs | ours |")
print("|---|---|---|---|")
failures, counts = [], {"both": 0, "upstream only": 0, "neither": 0, "ours only": 0}
for m, u, o in zip(manifests, upstream, ours):
    obj = m["object"]
    kind = f'{obj["kind"]} {obj["apiVersion"].split("/")[1]}'
    short = lambda s: "admitted" if s == "ok" else "refused: " + s[:240].replace("|", "/")
    print(f'| {m["source"]} | {kind} | {short(u)} | {short(o)} |')
    key = {(True, True): "both", (True, False): "upstream only",
           (False, False): "neither", (False, True): "ours only"}[(u == "ok", o == "ok")]
    counts[key] += 1
    if u == "ok" and o != "ok" and obj["apiVersion"] in served and m["source"] not in known:
        failures.append(f'{m["source"]}: {o}')
print()
print(", ".join(f"{v} admitted by {k}" if k != "neither" else f"{v} by neither"
                for k, v in counts.items()))
for f in failures:
    print("REFUSED by ours, admitted by upstream:", f, file=sys.stderr)
sys.exit(1 if failures else 0)
EOF
