#!/usr/bin/env bash
# test/chaos.sh — the fault tests of issue #12 (`make chaos`; CI runs a short sample). See
# docs/chaos.md.
#
# Env: CHAOS_SEEDS (seeds per kill scenario; `make chaos` 50, CI 5), CHAOS_SEED_BASE (first
#      seed, 1), CHAOS_SCENARIOS (subset of create,scale,version,delete,join), CHAOS_TESTS
#      (which tests, a cargo test name filter; default all chaos_*), CHAOS_SKIP (space-separated
#      test names to skip), CHAOS_HARNESS_DIR (the
#      private harness state dir, default /tmp/k0smotron-rs-chaos-harness), CHAOS_LOG_DIR (the
#      providers' logs and figures.txt, default a fresh temp dir), CHAOS_NO_BUILD=1 (skip cargo
#      build and `cluster build`).
# Prints the figures at the end; exits non-zero when a test fails (a divergence, a stuck
# finalizer, a provider that did not recover).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '%s chaos: %s\n' "$(date +%T)" "$*" >&2; }
# A harness of its own: the restart test stops and starts its API server and etcd.
export HARNESS_DIR=${CHAOS_HARNESS_DIR:-/tmp/k0smotron-rs-chaos-harness}
harness=$root/test/harness/cluster
export CHAOS_SEEDS=${CHAOS_SEEDS:-5}
export CHAOS_LOG_DIR=${CHAOS_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/k0smotron-rs-chaos.XXXXXX")}
if [ "${CHAOS_NO_BUILD:-0}" != 1 ]; then
	say "building the provider binaries and the harness (cached after the first time)"
	cargo build --locked -p controlplane-provider -p bootstrap-provider >&2
	"$harness" build >/dev/null
fi
trap '"$harness" down >/dev/null 2>&1 || true' EXIT
"$harness" down >/dev/null 2>&1 || true
eval "$("$harness" up --workloads --capi)"
say "$CHAOS_SEEDS seed(s) per kill scenario from ${CHAOS_SEED_BASE:-1}; logs in $CHAOS_LOG_DIR"
rm -f "$CHAOS_LOG_DIR/figures.txt"
t0=$SECONDS
rc=0
skip=()
for t in ${CHAOS_SKIP:-}; do skip+=(--skip "$t"); done
cargo test --locked -p e2e --test chaos -- --include-ignored --test-threads=1 "${CHAOS_TESTS:-chaos_}" "${skip[@]}" || rc=$?
echo
echo "## chaos figures ($((SECONDS - t0)) s; seeds per kill scenario: $CHAOS_SEEDS from ${CHAOS_SEED_BASE:-1})"
sed 's/^/- /' "$CHAOS_LOG_DIR/figures.txt" 2>/dev/null || echo "- (no figures: a test failed before reporting)"
[ $rc = 0 ] || say "FAILED (exit $rc); provider logs in $CHAOS_LOG_DIR"
exit $rc
