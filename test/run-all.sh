#!/usr/bin/env bash
# The project's whole test run, as `make test` and CI run it: install what is missing, static
# checks, build and start the test harness (a real kube-apiserver, etcd, controller-manager,
# scheduler and kwok built from their Go modules), then every test, the harness ones included.
# The harness is stopped on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

step "system packages"
need=()
command -v cloud-init >/dev/null || need+=(cloud-init)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v make >/dev/null || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	else
		echo "missing packages: ${need[*]} (install them, or run as root)" >&2
		exit 1
	fi
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup" >&2; exit 1; }
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
	rustup component add rustfmt clippy
fi

step "static checks: rustfmt, generated CRDs up to date, clippy"
cargo fmt --all -- --check
cargo xtask crd --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "test harness: build (cached under ~/.cache) and start"
test/harness/cluster build >/dev/null
trap 'test/harness/cluster down >/dev/null 2>&1 || true' EXIT
# `up` prints `export KEY=value` lines: KUBECONFIG, PATH (pinned kubectl first), CLUSTERCTL,
# CAPI_MANAGER, CAPI_CRD_DIR, CAPD_CRD_DIR, ... which the tests read.
eval "$(test/harness/cluster up --workloads --capi)"

step "build the provider binaries (the e2e tests run them)"
cargo build --workspace --bins --locked

step "tests: unit, snapshot, and integration against the harness"
cargo test --workspace --locked --no-fail-fast -- --include-ignored
