#!/usr/bin/env bash
# bench/run.sh — the scale benchmark of issue #11 (`make bench`). See bench/README.md.
#
# Env: BENCH_N (or N; default 10), BENCH_PHASES (default "controlplane bootstrap"; either or
#      both, space- or comma-separated), BENCH_STEADY_SECONDS (300), BENCH_PROVIDER_CMD (default:
#      our release controlplane-provider), BENCH_BOOTSTRAP_CMD (default: our release
#      bootstrap-provider with --concurrency=20, as config/bootstrap deploys it),
#      BENCH_FLOOR_CONCURRENCY (5, our provider's --concurrency),
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
# Room for every control plane's Services: the harness's default range holds 253, and at
# N = 1,000 the API server refused the rest ("failed to allocate a serviceIP: range is full").
export HARNESS_SERVICE_CIDR=${HARNESS_SERVICE_CIDR:-10.1.0.0/16}
harness=$root/test/harness/cluster
# The providers' client certificate CNs: their user names in the audit log.
USER_CN=bench-provider
BOOT_CN=bench-bootstrap
PHASES=${BENCH_PHASES:-controlplane bootstrap}
PHASES=${PHASES//,/ }
read -ra phases <<<"$PHASES"
[ ${#phases[@]} -gt 0 ] || { echo "BENCH_PHASES is empty" >&2; exit 2; }
for p in "${phases[@]}"; do
	case $p in
	controlplane | bootstrap) ;;
	*) echo "BENCH_PHASES: controlplane and/or bootstrap, not '$p'" >&2; exit 2 ;;
	esac
done
has_phase() { [[ " ${phases[*]} " == *" $1 "* ]]; }

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
# The workers the released manifests give the bootstrap provider (K0SMOTRON_BOOTSTRAP_CONCURRENCY
# in config/bootstrap); the binary's own default is the shared 5.
BOOTSTRAP_CMD=${BENCH_BOOTSTRAP_CMD:-$target/$profile/bootstrap-provider --health-addr=127.0.0.1:0 --metrics-addr=127.0.0.1:0 --concurrency=20}

provider_pid=
cleanup() {
	local rc=$?
	if [ -n "$provider_pid" ]; then kill -TERM -- "-$provider_pid" 2>/dev/null || true; fi
	if [ "${BENCH_KEEP:-0}" != 1 ]; then "$harness" down >/dev/null 2>&1 || true; fi
	if [ $rc = 0 ]; then rm -rf "$work"; else say "FAILED (exit $rc); work files in $work"; fi
}
work=$(mktemp -d "${TMPDIR:-/tmp}/k0smotron-bench.XXXXXX")
trap cleanup EXIT

say "harness: up --workloads --capi with the audit log (state in $HARNESS_DIR)"
"$harness" down >/dev/null 2>&1 || true
eval "$(HARNESS_AUDIT_LOG=1 "$harness" up --workloads --capi)"
export KUBECONFIG
# shellcheck disable=SC2153 # HARNESS_BIN comes from the eval above
kubectl() { "$HARNESS_BIN/kubectl" "$@"; }
kubectl apply --server-side -f config/crd/bases >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null

pki=$HARNESS_DIR/pki
audit=$HARNESS_DIR/logs/audit.log

# start_provider CN CMD LOG: runs CMD with a kubeconfig of its own, a client certificate CN=<CN>
# (system:masters like the harness admin), so the audit log tells its requests from the
# driver's; sets provider_pid once its first requests (its watches) are in the audit log.
start_provider() {
	local cn=$1 cmd=$2 log=$3 kc=$work/$1.kubeconfig
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$cn.key" 2>/dev/null
	openssl req -new -key "$work/$cn.key" -subj "/O=system:masters/CN=$cn" -out "$work/$cn.csr" 2>/dev/null
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$work/$cn.ext"
	openssl x509 -req -in "$work/$cn.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
		-days 2 -extfile "$work/$cn.ext" -out "$work/$cn.crt" 2>/dev/null
	kubectl --kubeconfig="$kc" config set-cluster harness --server="$HARNESS_API_URL" --certificate-authority="$pki/ca.crt" --embed-certs >/dev/null
	kubectl --kubeconfig="$kc" config set-credentials "$cn" --client-certificate="$work/$cn.crt" --client-key="$work/$cn.key" --embed-certs >/dev/null
	kubectl --kubeconfig="$kc" config set-context bench --cluster=harness --user="$cn" >/dev/null
	kubectl --kubeconfig="$kc" config use-context bench >/dev/null
	say "provider: $cmd (user $cn, log $log)"
	# setsid execs in place: $! is the provider's own PID (the sampler adds any descendants).
	KUBECONFIG=$kc RUST_LOG=${RUST_LOG:-info} setsid bash -c "exec $cmd" >"$log" 2>&1 &
	provider_pid=$!
	# Started when it has made its first requests (its watches), plus a moment for the lists.
	for _ in $(seq 120); do
		grep -q "\"username\":\"$cn\"" "$audit" 2>/dev/null && break
		kill -0 "$provider_pid" 2>/dev/null || { tail -20 "$log" >&2; say "the provider exited"; exit 1; }
		sleep 0.5
	done
	sleep 3
}

# stop_provider LOG: fails the run if the provider died before it was asked to stop.
stop_provider() {
	kill -0 "$provider_pid" 2>/dev/null || { tail -20 "$1" >&2; say "the provider died during the run"; exit 1; }
	say "stopping the provider"
	# The whole process group (setsid made the provider its leader): a wrapper command
	# (heaptrack, env, ...) and whatever it started stop with it.
	kill -TERM -- "-$provider_pid"
	for _ in $(seq 30); do kill -0 -- "-$provider_pid" 2>/dev/null || break; sleep 0.5; done
	kill -KILL -- "-$provider_pid" 2>/dev/null || true
	provider_pid=
}

# A TCP port below the ephemeral range that nothing listens on (as the harness picks its own).
free_port() {
	local p lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 16000 ] 2>/dev/null || lo=32768
	while :; do
		p=$((12000 + RANDOM % (lo - 12000)))
		grep -qx "$p" "$HARNESS_DIR/run/ports" 2>/dev/null && continue
		[ -z "$(ss -Hatn "sport = :$p")" ] || continue
		echo "$p" >>"$HARNESS_DIR/run/ports"
		echo "$p"
		return
	done
}

report_args=()
if has_phase controlplane; then
	start_provider "$USER_CN" "$PROVIDER_CMD" "$work/provider.log"
	"$driver" provider --n "$N" --pid "$provider_pid" --audit-log "$audit" --user "$USER_CN" \
		--steady-seconds "$STEADY" --settle-max-seconds "${BENCH_SETTLE_MAX_SECONDS:-120}" --capture "$work/capture.json" >"$work/provider.json"
	stop_provider "$work/provider.log"
	"$driver" floor --n "$N" --capture "$work/capture.json" --concurrency "$FLOOR_CONCURRENCY" >"$work/floor.json"
	report_args+=(--provider "$work/provider.json" --floor "$work/floor.json" --provider-cmd "$PROVIDER_CMD")
fi

if has_phase bootstrap; then
	# The bootstrap Cluster's API: a workload API server on the harness etcd, serving and
	# trusting a CA of its own (the one <cluster>-ca holds), with bootstrap-token authentication.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=kubernetes \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,digitalSignature \
		-keyout "$work/workload-ca.key" -out "$work/workload-ca.crt" 2>/dev/null
	say "bootstrap: starting the workload API server"
	wl_env=$("$harness" workload up --name bench-boot --ca-cert "$work/workload-ca.crt" \
		--ca-key "$work/workload-ca.key" --port "$(free_port)")
	wl_kubeconfig=$(eval "$wl_env" && echo "$KUBECONFIG")
	start_provider "$BOOT_CN" "$BOOTSTRAP_CMD" "$work/bootstrap-provider.log"
	"$driver" bootstrap --n "$N" --pid "$provider_pid" --audit-log "$audit" --user "$BOOT_CN" \
		--workload-kubeconfig "$wl_kubeconfig" --ca-cert "$work/workload-ca.crt" --ca-key "$work/workload-ca.key" \
		--settle-max-seconds "${BENCH_SETTLE_MAX_SECONDS:-120}" >"$work/bootstrap.json"
	stop_provider "$work/bootstrap-provider.log"
	report_args+=(--bootstrap "$work/bootstrap.json" --bootstrap-cmd "$BOOTSTRAP_CMD")
fi

mkdir -p "$RESULTS"
commit=$(git rev-parse --short HEAD)
dirty=$(git status --porcelain -- crates Cargo.lock bench/src | grep -q . && echo true || echo false)
# A run of some phases only is named for them (…-n1000-bootstrap.json).
suffix=
has_phase controlplane && has_phase bootstrap || suffix=-${phases[*]// /-}
out=$RESULTS/$(date -u +%Y-%m-%d)-$commit-n$N$suffix.json
python3 bench/report.py "${report_args[@]}" --out "$out" --commit "$commit" --dirty "$dirty" \
	--bench-seconds $((SECONDS - t_start))
say "results: $out (total $((SECONDS - t_start)) s)"
