#!/usr/bin/env bash
# bench/run.sh — the scale benchmark of issue #11 (`make bench`). See bench/README.md.
#
# Env: BENCH_N (or N; default 10), BENCH_STEADY_SECONDS (300), BENCH_PROVIDER_CMD (default: our
#      release controlplane-provider), BENCH_FLOOR_CONCURRENCY (5, our provider's --concurrency),
#      BENCH_HARNESS_DIR (the private harness state dir, default /tmp/k0smotron-rs-bench),
#      BENCH_RESULTS_DIR (default bench/results), BENCH_NO_BUILD=1 (skip cargo and `cluster build`),
#      BENCH_SETTLE_MAX_SECONDS (120), BENCH_KEEP=1 (leave the harness up), BENCH_PROFILE
#      (release, or debug for a smoke run).
# Progress on stderr, the Markdown summary on stdout. Exits non-zero only when the benchmark
# itself breaks (a step fails or times out), never because a figure is slow.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
N=${BENCH_N:-${N:-10}}
STEADY=${BENCH_STEADY_SECONDS:-300}
FLOOR_CONCURRENCY=${BENCH_FLOOR_CONCURRENCY:-5}
RESULTS=${BENCH_RESULTS_DIR:-$root/bench/results}
# A harness of its own, so a test harness running beside it is never touched.
export HARNESS_DIR=${BENCH_HARNESS_DIR:-/tmp/k0smotron-rs-bench}
harness=$root/test/harness/cluster
USER_CN=bench-provider

say() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
t_start=$SECONDS

# BENCH_PROFILE=debug runs the debug builds (CI's smoke run: they are built already; its figures
# mean nothing); figures worth recording come from release builds.
profile=${BENCH_PROFILE:-release}
case $profile in
release) cargo_profile=(--release) ;;
debug) cargo_profile=() ;;
*) say "BENCH_PROFILE must be release or debug"; exit 2 ;;
esac
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	say "building the $profile binaries (cargo) and the harness (cached after the first time)"
	cargo build "${cargo_profile[@]}" -p controlplane-provider -p bootstrap-provider -p k0smotron-bench >&2
	"$harness" build >/dev/null
fi
target=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
driver=$target/$profile/k0smotron-bench
[ -x "$driver" ] || { say "$driver missing (build without BENCH_NO_BUILD=1)"; exit 1; }
PROVIDER_CMD=${BENCH_PROVIDER_CMD:-$target/$profile/controlplane-provider --health-addr=127.0.0.1:0 --metrics-addr=127.0.0.1:0}

provider_pid=
cleanup() {
	local rc=$?
	if [ -n "$provider_pid" ] && kill -0 "$provider_pid" 2>/dev/null; then kill -TERM "$provider_pid" 2>/dev/null || true; fi
	if [ "${BENCH_KEEP:-0}" != 1 ]; then "$harness" down >/dev/null 2>&1 || true; fi
	if [ $rc = 0 ]; then rm -rf "$work"; else say "FAILED (exit $rc); work files in $work"; fi
}
work=$(mktemp -d "${TMPDIR:-/tmp}/k0smotron-bench.XXXXXX")
trap cleanup EXIT

say "harness: up --workloads --capi with the audit log (state in $HARNESS_DIR)"
"$harness" down >/dev/null 2>&1 || true
eval "$(HARNESS_AUDIT_LOG=1 "$harness" up --workloads --capi)"
export KUBECONFIG
kubectl() { "$HARNESS_BIN/kubectl" "$@"; }
kubectl apply --server-side -f config/crd/bases >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null

# The provider gets a client certificate of its own (CN=bench-provider, system:masters like the
# harness admin), so the audit log tells its requests from the driver's.
pki=$HARNESS_DIR/pki
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/provider.key" 2>/dev/null
openssl req -new -key "$work/provider.key" -subj "/O=system:masters/CN=$USER_CN" -out "$work/provider.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$work/provider.ext"
openssl x509 -req -in "$work/provider.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
	-days 2 -extfile "$work/provider.ext" -out "$work/provider.crt" 2>/dev/null
pkc=$work/provider.kubeconfig
kubectl --kubeconfig="$pkc" config set-cluster harness --server="$HARNESS_API_URL" --certificate-authority="$pki/ca.crt" --embed-certs >/dev/null
kubectl --kubeconfig="$pkc" config set-credentials "$USER_CN" --client-certificate="$work/provider.crt" --client-key="$work/provider.key" --embed-certs >/dev/null
kubectl --kubeconfig="$pkc" config set-context bench --cluster=harness --user="$USER_CN" >/dev/null
kubectl --kubeconfig="$pkc" config use-context bench >/dev/null

audit=$HARNESS_DIR/logs/audit.log
say "provider: $PROVIDER_CMD (log $work/provider.log)"
# setsid execs in place: $! is the provider's own PID (the sampler adds any descendants).
KUBECONFIG=$pkc RUST_LOG=${RUST_LOG:-info} setsid bash -c "exec $PROVIDER_CMD" >"$work/provider.log" 2>&1 &
provider_pid=$!
# Started when it has made its first requests (its watches), plus a moment for the lists.
for _ in $(seq 120); do
	grep -q "\"username\":\"$USER_CN\"" "$audit" 2>/dev/null && break
	kill -0 "$provider_pid" 2>/dev/null || { tail -20 "$work/provider.log" >&2; say "the provider exited"; exit 1; }
	sleep 0.5
done
sleep 3

"$driver" provider --n "$N" --pid "$provider_pid" --audit-log "$audit" --user "$USER_CN" \
	--steady-seconds "$STEADY" --settle-max-seconds "${BENCH_SETTLE_MAX_SECONDS:-120}" --capture "$work/capture.json" >"$work/provider.json"
kill -0 "$provider_pid" 2>/dev/null || { tail -20 "$work/provider.log" >&2; say "the provider died during the run"; exit 1; }
say "stopping the provider"
kill -TERM "$provider_pid"
for _ in $(seq 30); do kill -0 "$provider_pid" 2>/dev/null || break; sleep 0.5; done
kill -KILL "$provider_pid" 2>/dev/null || true
provider_pid=

"$driver" floor --n "$N" --capture "$work/capture.json" --concurrency "$FLOOR_CONCURRENCY" >"$work/floor.json"

mkdir -p "$RESULTS"
commit=$(git rev-parse --short HEAD)
dirty=$(git status --porcelain -- crates Cargo.lock bench/src | grep -q . && echo true || echo false)
out=$RESULTS/$(date -u +%Y-%m-%d)-$commit-n$N.json
python3 bench/report.py --provider "$work/provider.json" --floor "$work/floor.json" --out "$out" \
	--commit "$commit" --dirty "$dirty" --provider-cmd "$PROVIDER_CMD" --bench-seconds $((SECONDS - t_start))
say "results: $out (total $((SECONDS - t_start)) s)"
