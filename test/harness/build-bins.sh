#!/usr/bin/env bash
# build-bins.sh — build the harness binaries from the wrapper modules in go/ into a cache
# outside the repository, one directory per component and version, and link them into one
# bin dir keyed by all versions. Rebuilds only what is missing. Prints the bin dir last.
# Called by `cluster build`; usable alone. Env: HARNESS_CACHE (default ~/.cache/k0smotron-rs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HARNESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k0smotron-rs}
bin=$cache/bin/k8s-$K8S_VERSION.etcd-$ETCD_VERSION.kwok-$KWOK_VERSION.capi-$CAPI_VERSION
# -mod=readonly: a stale go.mod/go.sum fails loudly instead of being rewritten.
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=readonly
# Others build Rust on the same two cores: keep the Go builds at lower priority.
gobuild() { local dir=$1; shift; (cd "$dir" && nice -n 10 go build -trimpath "$@"); }
log() { printf '%s build: %s\n' "$(date +%T)" "$*" >&2; }

# Stamp the versions the way hack/lib/version.sh does; unstamped binaries report
# v0.0.0-master and clients that parse --version (kwokctl, kubectl skew checks) misbehave.
k8s_ldflags() {
	local ld="-s -w" p minor
	minor=$(cut -d. -f2 <<<"$K8S_VERSION")
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
		ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
		ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
	done
	printf '%s' "$ld"
}

# build_set DIR_NAME MODULE_DIR LDFLAGS TAGS NAME=PKG... : build the missing binaries of one set.
build_set() {
	local out=$cache/$1 mod=$here/go/$2 ld=$3 tags=$4 spec name pkg
	shift 4
	mkdir -p "$out"
	for spec in "$@"; do
		name=${spec%%=*} pkg=${spec#*=}
		[ -x "$out/$name" ] && continue
		log "$name ($pkg) -> $out"
		gobuild "$mod" -tags "$tags" -ldflags "$ld" -o "$out/$name.tmp" "$pkg"
		mv "$out/$name.tmp" "$out/$name"
	done
	for spec in "$@"; do ln -sfn "$out/${spec%%=*}" "$bin/${spec%%=*}"; done
}

mkdir -p "$bin"
start=$(date +%s)
build_set "k8s-$K8S_VERSION" k8s "$(k8s_ldflags)" providerless \
	kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
	kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
	kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
	kubectl=k8s.io/kubernetes/cmd/kubectl
build_set "etcd-$ETCD_VERSION" etcd "-s -w" "" etcd=go.etcd.io/etcd/server/v3
build_set "kwok-$KWOK_VERSION" kwok \
	"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" "" kwok=sigs.k8s.io/kwok/cmd/kwok
if [ "${HARNESS_SKIP_CAPI:-0}" != 1 ]; then
	cv=sigs.k8s.io/cluster-api/version
	build_set "capi-$CAPI_VERSION" capi \
		"-s -w -X $cv.gitVersion=v$CAPI_VERSION -X $cv.gitMajor=1 -X $cv.gitMinor=$(cut -d. -f2 <<<"$CAPI_VERSION") -X $cv.gitTreeState=clean -X $cv.buildDate=1970-01-01T00:00:00Z" "" \
		cluster-api-manager=sigs.k8s.io/cluster-api clusterctl=sigs.k8s.io/cluster-api/cmd/clusterctl
fi
log "binaries ready in $(($(date +%s) - start)) s"
echo "$bin"
