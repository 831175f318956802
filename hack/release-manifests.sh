#!/usr/bin/env bash
# Release manifests of both providers, as clusterctl consumes them, and the standalone install:
#
#   hack/release-manifests.sh [--version vX.Y.Z] [--registry REPO] [--tag TAG] [--out DIR]
#
# writes into DIR (default out/):
#   control-plane-components.yaml, bootstrap-components.yaml   kustomize builds of config/<provider>
#   metadata.yaml, cluster-template-*.yaml, clusterclass-*.yaml  copied as release assets
#   repository/                                                   a clusterctl local repository:
#     control-plane-k0smotron/<version>/{control-plane-components.yaml,metadata.yaml}
#     bootstrap-k0smotron/<version>/{bootstrap-components.yaml,metadata.yaml}
#     clusterctl.yaml   `providers:` entries pointing at them (clusterctl --config)
#   k0smotron-standalone.yaml   kustomize build of config/standalone: the control-plane provider
#                               for the k0smotron.io kinds without Cluster API (`kubectl apply`)
#
# The version defaults to the workspace version (Cargo.toml), the image tag to the version, the
# registry to ghcr.io/k0smotron-rs. Kustomize is the harness's pinned kubectl (test/harness), else
# `kubectl` on PATH. The components keep clusterctl variables (`${K0SMOTRON_...:=default}`);
# `clusterctl generate provider ... --describe` lists them. The standalone file has none: it is
# applied as it is.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() {
	echo "release-manifests: $*" >&2
	exit 1
}

version="v$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
registry=ghcr.io/k0smotron-rs
tag=""
out=out
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || die "$1 needs a value"
	case $1 in
	--version) version=$2 ;;
	--registry) registry=$2 ;;
	--tag) tag=$2 ;;
	--out) out=$2 ;;
	*) die "unknown flag $1 (--version, --registry, --tag, --out)" ;;
	esac
	shift 2
done
tag=${tag:-$version}
[[ $version =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)(-[0-9A-Za-z.-]+)?$ ]] || die "--version $version is not vMAJOR.MINOR.PATCH"
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}

# clusterctl refuses a version whose major.minor has no release series in metadata.yaml.
awk -v major="$major" -v minor="$minor" '
	/^[ \t-]*major:/ { m = $NF }
	/^[ \t-]*minor:/ { if (m == major && $NF == minor) found = 1 }
	END { exit !found }' metadata.yaml ||
	die "metadata.yaml has no releaseSeries entry for $major.$minor (needed for $version)"

kubectl=""
if [ -n "${HARNESS_BIN:-}" ] && [ -x "$HARNESS_BIN/kubectl" ]; then
	kubectl=$HARNESS_BIN/kubectl
elif bin=$(test/harness/cluster env 2>/dev/null | sed -n "s/^export HARNESS_BIN=//p") && [ -x "$bin/kubectl" ]; then
	kubectl=$bin/kubectl
elif command -v kubectl >/dev/null; then
	kubectl=$(command -v kubectl)
else
	die "no kubectl: run test/harness/cluster build, or put kubectl (with kustomize) on PATH"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build CONFIG_DIR BINARY FILE: kustomize build of config/CONFIG_DIR with the image set to
# $registry/BINARY:$tag, into $work/FILE.
build() {
	local dir=$1 binary=$2 file=$3 overlay=$work/$1 rel
	mkdir -p "$overlay"
	# kustomize takes only relative paths to other kustomizations.
	rel=$(realpath --relative-to="$overlay" "$root/config/$dir")
	cat >"$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel
images:
  - name: ghcr.io/k0smotron-rs/$binary
    newName: $registry/$binary
    newTag: $tag
YAML
	"$kubectl" kustomize "$overlay" >"$work/$file"
	grep -q "image: $registry/$binary:$tag\$" "$work/$file" || die "$file: image $registry/$binary:$tag not set"
}

# render PROVIDER_DIR BINARY LABEL COMPONENTS_FILE: one clusterctl provider.
render() {
	local dir=$1 binary=$2 label=$3 file=$4
	build "$dir" "$binary" "$file"
	check "$work/$file" "$label"
	mv "$work/$file" "$out/$file"
	mkdir -p "$out/repository/$label/$version"
	cp "$out/$file" metadata.yaml "$out/repository/$label/$version/"
	echo "$out/$file"
}

# check FILE LABEL: the parts of the clusterctl components contract text can tell (test/e2e
# checks the rest through clusterctl itself).
check() {
	local f=$1 label=$2 n bad
	n=$(grep -c '^kind: Namespace$' "$f" || true)
	[ "$n" = 1 ] || die "$f: $n Namespace objects, clusterctl needs exactly one"
	# Every `${` must be a clusterctl variable with a default; anything else (a stray `${` in a
	# description or script) would make clusterctl fail or substitute by surprise.
	# shellcheck disable=SC2016 # literal ${ patterns
	bad=$(grep -o '\${[^}]*}\?' "$f" | grep -v '^\${K0SMOTRON_[A-Z0-9_]*:=[^}]*}$' || true)
	[ -z "$bad" ] || die "$f: unexpected variable syntax: $(echo "$bad" | sort -u | tr '\n' ' ')"
	grep -q "cluster.x-k8s.io/provider: $label" "$f" || die "$f: provider label $label missing"
}

render controlplane controlplane-provider control-plane-k0smotron control-plane-components.yaml
render bootstrap bootstrap-provider bootstrap-k0smotron bootstrap-components.yaml

# The standalone install is applied with plain kubectl, which substitutes nothing: no `${` at all.
# Nor anything of Cluster API: no API group of it in a rule, no label of it.
build standalone controlplane-provider k0smotron-standalone.yaml
# shellcheck disable=SC2016 # a literal ${
if grep -n '\${' "$work/k0smotron-standalone.yaml" >&2; then
	die "k0smotron-standalone.yaml: variable syntax above would be applied literally"
fi
if grep -nE '^ *- ([a-z0-9-]+\.)?cluster\.x-k8s\.io$|^ *([a-z0-9-]+\.)?cluster\.x-k8s\.io/' \
	"$work/k0smotron-standalone.yaml" >&2; then
	die "k0smotron-standalone.yaml: the Cluster API groups or labels above have no place in it"
fi
mv "$work/k0smotron-standalone.yaml" "$out/"
echo "$out/k0smotron-standalone.yaml"
cp metadata.yaml templates/cluster-template*.yaml templates/clusterclass-*.yaml "$out/"

cat >"$out/repository/clusterctl.yaml" <<YAML
# clusterctl configuration for the local repository next to this file:
#   clusterctl init --config $out/repository/clusterctl.yaml \\
#     --bootstrap k0smotron --control-plane k0smotron
providers:
  - name: k0smotron
    type: ControlPlaneProvider
    url: file://$out/repository/control-plane-k0smotron/$version/control-plane-components.yaml
  - name: k0smotron
    type: BootstrapProvider
    url: file://$out/repository/bootstrap-k0smotron/$version/bootstrap-components.yaml
YAML
echo "$out/repository/clusterctl.yaml"
