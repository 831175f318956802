#!/usr/bin/env bash
# The local run (`make run`): a management cluster from test/harness, CAPI core and both
# providers, and a sample workload cluster (examples/cluster-local.yaml) reconciled, shown as it
# converges. Everything stays running afterwards so you can look around; stop it with
#
#   hack/demo.sh --down        (or: make down)
#
#   hack/demo.sh [--workers N] [--timeout SECONDS] [--stand-in] [--standalone] | --down
#
# --standalone (`make run STANDALONE=1`) shows the standalone mode instead: no Cluster API, the
# control-plane provider alone, a k0smotron.io Cluster (examples/standalone/cluster.yaml with the
# node's address) and a JoinTokenRequest for a worker token.
#
# What runs (logs in $DEMO_DIR/logs, default /tmp/k0smotron-rs-demo/logs):
#   - the harness: kube-apiserver, etcd, controller-manager, scheduler, and its real node
#     `node-0` (kubelet, containerd + runc, kube-proxy, CoreDNS; needs root), where the hosted
#     control plane runs as real k0s pods, reached through a NodePort
#   - cluster-api-manager       CAPI core v1.13 (built from its Go module, started by the harness
#                               with its webhooks registered; log in $HARNESS_DIR/logs)
#   - controlplane-provider     this repository, reconciling K0smotronControlPlane
#   - bootstrap-provider        this repository, reconciling K0sWorkerConfig
#   - fake-infra-provider       test stand-in for an infrastructure provider (test/e2e): its
#                               "machines" register Nodes in the workload cluster, no kubelet
# Without root (or with --stand-in) there is no real node: kwok's fake nodes run the pods and a
# second kube-apiserver with the cluster's own CA stands in for the k0s API server; the output
# says so.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

DEMO_DIR=${DEMO_DIR:-/tmp/k0smotron-rs-demo}
NAMESPACE=demo
CLUSTER=demo
# The k0s release the real node's image holds (the providers' default, too).
KUBERNETES_VERSION=$(sed -n 's/^K0S_VERSION=\(v[0-9.]*\)+k0s.*/\1/p' "$root/test/harness/versions.env")
workers=2
timeout=240
real_node=auto
standalone=${STANDALONE:-0}
[ "$standalone" = 1 ] || standalone=0
harness=$root/test/harness/cluster

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*"; }
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

# stop_pid FILE: SIGTERM the process group we started (setsid made it the group leader), wait a
# little, then SIGKILL it.
stop_pid() {
	local f=$1 pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

down() {
	local f
	for f in "$DEMO_DIR"/run/*.pid; do
		[ -e "$f" ] && stop_pid "$f"
	done
	"$harness" workload down --name "$CLUSTER" >/dev/null 2>&1 || true
	"$harness" down >/dev/null 2>&1 || true
	case $DEMO_DIR in
	/ | "$HOME" | /tmp | "") ;;
	*) rm -rf "$DEMO_DIR" ;;
	esac
	say "demo stopped"
}

while [ $# -gt 0 ]; do
	case $1 in
	--down)
		down
		exit 0
		;;
	--workers)
		workers=${2:?--workers needs a number}
		shift
		;;
	--timeout)
		timeout=${2:?--timeout needs seconds}
		shift
		;;
	--stand-in) real_node=0 ;;
	--standalone) standalone=1 ;;
	*) die "unknown flag $1 (--workers N, --timeout S, --stand-in, --standalone, --down)" ;;
	esac
	shift
done

# A free port below the ephemeral range (so an outgoing connection cannot take it between here
# and the bind), not handed out before in this run.
free_port() {
	local p lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 16000 ] 2>/dev/null || lo=32768
	while :; do
		p=$((12000 + RANDOM % (lo - 12000)))
		grep -qx "$p" "$DEMO_DIR/run/ports" 2>/dev/null && continue
		[ -z "$(ss -Hatn "sport = :$p")" ] || continue
		echo "$p" >>"$DEMO_DIR/run/ports"
		echo "$p"
		return
	done
}

# start NAME CMD...: run CMD in its own session with its output in logs/NAME.log.
start() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$DEMO_DIR/logs/$name.log" 2>&1 &
	echo $! >"$DEMO_DIR/run/$name.pid"
}

# wait_http NAME URL: wait until URL answers 200 while NAME runs.
wait_http() {
	local name=$1 url=$2 deadline=$((SECONDS + 90))
	until curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; do
		if ! kill -0 "$(cat "$DEMO_DIR/run/$name.pid")" 2>/dev/null; then
			tail -n 30 "$DEMO_DIR/logs/$name.log" >&2
			die "$name exited (log: $DEMO_DIR/logs/$name.log)"
		fi
		[ $SECONDS -lt $deadline ] || die "$name not ready at $url (log: $DEMO_DIR/logs/$name.log)"
		sleep 0.3
	done
}

if [ -d "$DEMO_DIR/run" ] && ls "$DEMO_DIR"/run/*.pid >/dev/null 2>&1; then
	die "a demo is already running (state in $DEMO_DIR); stop it first with: hack/demo.sh --down"
fi
for c in curl openssl ss setsid cargo go awk; do
	command -v "$c" >/dev/null || die "$c is needed (see README.md)"
done
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR/logs" "$DEMO_DIR/run" "$DEMO_DIR/pki"
# Whatever happens, say how to clean up: what started keeps running for inspection.
on_exit() {
	local rc=$?
	[ $rc = 0 ] || printf '\ndemo: failed (exit %s); logs in %s; stop everything with: hack/demo.sh --down\n' \
		"$rc" "$DEMO_DIR/logs" >&2
}
trap on_exit EXIT

bold "1/6 Building (cargo: the providers and the test infrastructure stand-in; Go: the harness, cached)"
cargo build --bins -p controlplane-provider -p bootstrap-provider -p e2e
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug
"$harness" build >/dev/null

if [ $real_node = auto ]; then
	if [ "$(id -u)" = 0 ]; then
		real_node=1
	else
		real_node=0
		say "NOTE: not root, so no real node (kubelet, containerd and network namespaces need root):"
		say "      the hosted control plane's pods are faked by kwok and a stand-in API server plays k0s."
	fi
fi

# The standalone mode (--standalone): no Cluster API, the control-plane provider alone, a
# k0smotron.io Cluster and a JoinTokenRequest.
run_standalone() {
	local name=solo ns=standalone api_port service_type external_address
	bold "2/5 Starting the management cluster (test/harness), without Cluster API"
	if [ $real_node = 1 ]; then
		eval "$("$harness" up --real-node)"
		say "real node $HARNESS_REAL_NODE ($HARNESS_REAL_NODE_IP) runs k0s $HARNESS_K0S_VERSION"
	else
		eval "$("$harness" up --workloads)"
	fi
	export KUBECONFIG
	kubectl() { "$HARNESS_BIN/kubectl" "$@"; }
	kubectl apply --server-side -f config/crd/bases/clusters.k0smotron.io.yaml \
		-f config/crd/bases/jointokenrequests.k0smotron.io.yaml >/dev/null
	kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
	say "management cluster: $HARNESS_API_URL (KUBECONFIG=$KUBECONFIG); no Cluster API CRDs"

	bold "3/5 Starting the control-plane provider for the standalone kinds (log in $DEMO_DIR/logs)"
	health[controlplane-provider]=$(free_port)
	start controlplane-provider env KUBECONFIG="$KUBECONFIG" RUST_LOG=info KINDS=standalone \
		"$target/controlplane-provider" --health-addr="127.0.0.1:${health[controlplane-provider]}" \
		--metrics-addr="127.0.0.1:$(free_port)" --log-format=text
	wait_http controlplane-provider "http://127.0.0.1:${health[controlplane-provider]}/healthz"
	kubectl create namespace "$ns" >/dev/null

	workload_kubeconfig=$DEMO_DIR/workload.kubeconfig
	if [ $real_node = 1 ]; then
		api_port=30443 service_type=NodePort external_address=$HARNESS_REAL_NODE_IP
	else
		# kwok runs the pods; a stand-in API server with the Cluster's CA answers for k0s.
		make_stand_in_ca "$ns" "$name"
		api_port=$(free_port) service_type=ClusterIP external_address=127.0.0.1
		"$harness" workload up --name "$name" --ca-cert "$DEMO_DIR/pki/ca.crt" \
			--ca-key "$DEMO_DIR/pki/ca.key" --port "$api_port" >/dev/null
	fi

	bold "4/5 Applying examples/standalone/cluster.yaml ($service_type, API at $external_address:$api_port) and a JoinTokenRequest"
	sed -e "s/^  namespace: default\$/  namespace: $ns/" -e "s/^spec:\$/spec:\n  externalAddress: $external_address/" \
		-e "s/type: NodePort\$/type: $service_type/" -e "s/apiPort: 30443\$/apiPort: $api_port/" \
		examples/standalone/cluster.yaml >"$DEMO_DIR/cluster.yaml"
	kubectl apply --server-side -f "$DEMO_DIR/cluster.yaml"
	kubectl apply --server-side -f - <<YAML
apiVersion: k0smotron.io/v1beta2
kind: JoinTokenRequest
metadata:
  name: $name-worker
  namespace: $ns
spec:
  clusterName: $name
  role: worker
  expiry: 1h
YAML

	bold "5/5 Watching it converge (up to ${timeout}s): until the Cluster is Available and the token is made"
	[ $real_node = 0 ] || timeout=$((timeout + 240))
	local started=$SECONDS deadline=$((SECONDS + timeout)) last="" now available="" token="" converged=0
	while [ $SECONDS -lt $deadline ]; do
		now=$(kubectl -n "$ns" get clusters.k0smotron.io,jointokenrequests 2>&1 || true)
		if [ "$now" != "$last" ]; then
			printf '\n[%3ss]\n%s\n' "$((SECONDS - started))" "$now"
			last=$now
		fi
		available=$(kubectl -n "$ns" get clusters.k0smotron.io "$name" \
			-o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null || true)
		token=$(kubectl -n "$ns" get jointokenrequest "$name-worker" -o jsonpath='{.status.tokenID}' 2>/dev/null || true)
		if [ "$available" = True ] && [ -n "$token" ]; then
			converged=1
			break
		fi
		sleep 2
	done

	bold "Cluster $ns/$name (k0smotron.io)"
	kubectl -n "$ns" get clusters.k0smotron.io "$name" -o go-template='{{range .status.conditions}}  {{printf "%-24s" .type}} {{printf "%-6s" .status}} {{.reason}}{{if .message}}: {{.message}}{{end}}
{{end}}' || true
	say "Objects it generated:"
	kubectl -n "$ns" get statefulsets,services,configmaps,secrets -l "cluster.x-k8s.io/cluster-name=$name" 2>/dev/null || true
	bold "The hosted cluster, through the kubeconfig the provider wrote"
	kubectl -n "$ns" get secret "$name-kubeconfig" -o jsonpath='{.data.value}' 2>/dev/null |
		base64 -d >"$workload_kubeconfig" || true
	"$HARNESS_BIN/kubectl" --kubeconfig "$workload_kubeconfig" version 2>/dev/null | sed -n 's/^Server Version/hosted API server/p' || true
	bold "Worker join token (Secret $ns/$name-worker, key token; not shown)"
	say "token id: ${token:-none}; a worker joins with: k0s worker --token-file FILE (the Secret's token)"
	if [ $converged = 1 ]; then
		bold "Converged $((SECONDS - started))s after applying the cluster"
	else
		bold "Not converged within ${timeout}s; look at the logs in $DEMO_DIR/logs"
	fi
	cat <<MSG

Everything keeps running. To look around:
  export KUBECONFIG=$KUBECONFIG
  $HARNESS_BIN/kubectl -n $ns get kmc,jtr
  $HARNESS_BIN/kubectl --kubeconfig $workload_kubeconfig get namespaces   # the hosted cluster
  logs: $DEMO_DIR/logs

To stop everything:  hack/demo.sh --down   (or: make down)
MSG
	[ $converged = 1 ]
}

# make_stand_in_ca NAMESPACE CLUSTER: a CA for the stand-in API server, stored as the cluster's
# `<cluster>-ca` Secret so the provider uses it instead of generating one.
make_stand_in_ca() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=kubernetes \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature \
		-keyout "$DEMO_DIR/pki/ca.key" -out "$DEMO_DIR/pki/ca.crt" 2>/dev/null
	kubectl -n "$1" create secret generic "$2-ca" --type=cluster.x-k8s.io/secret \
		--from-file=tls.crt="$DEMO_DIR/pki/ca.crt" --from-file=tls.key="$DEMO_DIR/pki/ca.key" >/dev/null
	kubectl -n "$1" label secret "$2-ca" "cluster.x-k8s.io/cluster-name=$2" >/dev/null
}

declare -A health
if [ "$standalone" = 1 ]; then
	run_standalone
	exit
fi

bold "2/6 Starting the management cluster (test/harness) with CAPI core"
# --capi-manager: CAPI's CRDs, and its core manager with its webhooks registered, so objects are
# defaulted and validated as on a real management cluster (log: $HARNESS_DIR/logs).
if [ $real_node = 1 ]; then
	eval "$("$harness" up --real-node --capi-manager)"
	say "real node $HARNESS_REAL_NODE ($HARNESS_REAL_NODE_IP) runs k0s $HARNESS_K0S_VERSION"
else
	eval "$("$harness" up --workloads --capi-manager)"
fi
export KUBECONFIG
kubectl() { "$HARNESS_BIN/kubectl" "$@"; }
kubectl apply --server-side -f config/crd/bases -f test/e2e/crds >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
say "management cluster: $HARNESS_API_URL (KUBECONFIG=$KUBECONFIG)"

bold "3/6 Starting both providers (logs in $DEMO_DIR/logs)"
for provider in controlplane-provider bootstrap-provider; do
	health[$provider]=$(free_port)
	start "$provider" env KUBECONFIG="$KUBECONFIG" RUST_LOG=info "$target/$provider" \
		--health-addr="127.0.0.1:${health[$provider]}" --metrics-addr="127.0.0.1:$(free_port)" \
		--log-format=text
done
# Liveness is enough to go on; readiness (leader with synced caches) is shown in the summary.
for provider in controlplane-provider bootstrap-provider; do
	wait_http "$provider" "http://127.0.0.1:${health[$provider]}/healthz"
done
say "controlplane-provider and bootstrap-provider are running; CAPI core runs in the harness"

kubectl create namespace "$NAMESPACE" >/dev/null
workload_kubeconfig=$DEMO_DIR/workload.kubeconfig
if [ $real_node = 1 ]; then
	bold "4/6 The workload cluster: real k0s pods on $HARNESS_REAL_NODE, exposed by a NodePort"
	# The provider generates the cluster's CA; workers reach the API at the node's address.
	api_port=30443
	service_type=NodePort
	external_address=$HARNESS_REAL_NODE_IP
	say "API at https://$external_address:$api_port (NodePort), konnectivity on 30132"
else
bold "4/6 The workload cluster's API server, with the cluster's own CA"
make_stand_in_ca "$NAMESPACE" "$CLUSTER"
api_port=$(free_port)
workload_env=$("$harness" workload up --name "$CLUSTER" --ca-cert "$DEMO_DIR/pki/ca.crt" \
	--ca-key "$DEMO_DIR/pki/ca.key" --port "$api_port")
cp "$(sed -n 's/^export KUBECONFIG=//p' <<<"$workload_env")" "$workload_kubeconfig"
service_type=ClusterIP
external_address=127.0.0.1
say "Secret $NAMESPACE/$CLUSTER-ca created; workload API server at https://127.0.0.1:$api_port"
fi
start fake-infra-provider env KUBECONFIG="$KUBECONFIG" "$target/fake-infra-provider" \
	--namespace "$NAMESPACE" --register-nodes

bold "5/6 Applying examples/cluster-local.yaml (rendered by clusterctl, $workers workers)"
mkdir -p "$DEMO_DIR/clusterctl"
HOME=$DEMO_DIR/clusterctl CLUSTERCTL_DISABLE_VERSIONCHECK=true GOPROXY=off \
	K0SMOTRON_API_PORT=$api_port K0SMOTRON_SERVICE_TYPE=$service_type \
	K0SMOTRON_EXTERNAL_ADDRESS=$external_address \
	K0SMOTRON_KONNECTIVITY_PORT=$([ $real_node = 1 ] && echo 30132 || free_port) \
	"$CLUSTERCTL" generate cluster "$CLUSTER" --from examples/cluster-local.yaml \
	--target-namespace "$NAMESPACE" --kubernetes-version "$KUBERNETES_VERSION" \
	--control-plane-machine-count 1 --worker-machine-count "$workers" >"$DEMO_DIR/cluster.yaml"
kubectl apply --server-side -f "$DEMO_DIR/cluster.yaml"

bold "6/6 Watching it converge (up to ${timeout}s): until CAPI reports the Cluster Available"
# Real k0s takes a minute or two to start (its readiness probe alone waits 60 s).
[ $real_node = 0 ] || timeout=$((timeout + 240))
objects=cluster,k0smotroncontrolplane,machinedeployment,machineset,machine,k0sworkerconfig
started=$SECONDS
deadline=$((SECONDS + timeout))
last=""
converged=0
while [ $SECONDS -lt $deadline ]; do
	now=$(kubectl -n "$NAMESPACE" get "$objects" 2>&1 || true)
	if [ "$now" != "$last" ]; then
		printf '\n[%3ss]\n%s\n' "$((SECONDS - started))" "$now"
		last=$now
	fi
	# Available: control plane available, workers' Nodes ready, infrastructure provisioned.
	available=$(kubectl -n "$NAMESPACE" get cluster "$CLUSTER" \
		-o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null || true)
	with_data=$(kubectl -n "$NAMESPACE" get machines -o jsonpath='{range .items[*]}{.status.initialization.bootstrapDataSecretCreated}{"\n"}{end}' 2>/dev/null | grep -c true || true)
	if [ "$available" = True ] && [ "$with_data" -ge "$workers" ]; then
		converged=1
		break
	fi
	sleep 2
done

bold "Control plane (K0smotronControlPlane $NAMESPACE/$CLUSTER)"
kubectl -n "$NAMESPACE" get k0smotroncontrolplane "$CLUSTER" -o go-template='version:      {{.spec.version}}
initialized:  {{with .status.initialization}}{{.controlPlaneInitialized}}{{end}}
endpoint:     {{with .status.externalAddress}}{{.}}{{end}}
replicas:     {{with .status.readyReplicas}}{{.}}{{else}}0{{end}} ready of {{.spec.replicas}}
conditions:
{{range .status.conditions}}  {{printf "%-24s" .type}} {{printf "%-6s" .status}} {{.reason}}{{if .message}}: {{.message}}{{end}}
{{end}}' || true
say ""
say "Objects it generated in the management cluster:"
kubectl -n "$NAMESPACE" get statefulsets,services,configmaps,secrets -l "cluster.x-k8s.io/cluster-name=$CLUSTER" 2>/dev/null || true

bold "Cluster (CAPI's view)"
kubectl -n "$NAMESPACE" get cluster "$CLUSTER" -o go-template='endpoint: {{with .spec.controlPlaneEndpoint}}{{.host}}:{{.port}}{{end}}
{{range .status.conditions}}  {{printf "%-24s" .type}} {{printf "%-6s" .status}} {{.reason}}
{{end}}' || true

bold "Bootstrap data of the first worker (the join token redacted)"
secret=$(kubectl -n "$NAMESPACE" get machines -o jsonpath='{.items[0].spec.bootstrap.dataSecretName}' 2>/dev/null || true)
if [ -n "$secret" ]; then
	say "Secret $NAMESPACE/$secret, format $(kubectl -n "$NAMESPACE" get secret "$secret" -o jsonpath='{.data.format}' | base64 -d):"
	kubectl -n "$NAMESPACE" get secret "$secret" -o jsonpath='{.data.value}' | base64 -d |
		awk '/path: \/etc\/k0s.token/ { redact = 1 } redact && /content:/ { sub(/content:.*/, "content: <join token, redacted>"); redact = 0 } { print }' |
		head -n 30
	say "..."
else
	say "(no Machine has bootstrap data yet)"
fi

if [ $real_node = 1 ]; then
	bold "Workload cluster (real k0s, through the kubeconfig the provider wrote)"
	kubectl -n "$NAMESPACE" get secret "$CLUSTER-kubeconfig" -o jsonpath='{.data.value}' 2>/dev/null |
		base64 -d >"$workload_kubeconfig" || true
	"$HARNESS_BIN/kubectl" --kubeconfig "$workload_kubeconfig" version 2>/dev/null | sed -n 's/^Server Version/hosted API server/p' || true
	say "k0s pods on the real node:"
	kubectl -n "$NAMESPACE" get pods -o wide 2>/dev/null || true
else
	bold "Workload cluster (the stand-in API server)"
fi
"$HARNESS_BIN/kubectl" --kubeconfig "$workload_kubeconfig" get nodes 2>/dev/null || true
say "bootstrap tokens:"
"$HARNESS_BIN/kubectl" --kubeconfig "$workload_kubeconfig" -n kube-system get secrets \
	--field-selector type=bootstrap.kubernetes.io/token 2>/dev/null || true

bold "Processes"
for provider in controlplane-provider bootstrap-provider; do
	say "$provider /readyz: $(curl -s --max-time 2 "http://127.0.0.1:${health[$provider]}/readyz" || echo unreachable)"
done

if [ $converged = 1 ]; then
	bold "Converged $((SECONDS - started))s after applying the cluster"
else
	bold "Not converged within ${timeout}s; look at the logs in $DEMO_DIR/logs"
fi
cat <<EOF

Everything keeps running. To look around:
  export KUBECONFIG=$KUBECONFIG
  $HARNESS_BIN/kubectl -n $NAMESPACE get cluster,k0smotroncontrolplane,machines,k0sworkerconfigs
  $HARNESS_BIN/kubectl -n $NAMESPACE scale machinedeployment $CLUSTER-md-0 --replicas 3
  $HARNESS_BIN/kubectl --kubeconfig $workload_kubeconfig get nodes   # the workload cluster
  logs: $DEMO_DIR/logs

To stop everything:  hack/demo.sh --down   (or: make down)
EOF
[ $converged = 1 ]
