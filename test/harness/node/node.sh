# shellcheck shell=bash
# The harness's real node, sourced by ../cluster: what `cluster build` adds for it (k0s and
# konnectivity-server from the pinned source archives, kine, crictl, CoreDNS, the pod sandbox
# program and the container images the providers' pods use) and what `cluster up --real-node`
# runs (containerd + runc, CNI bridge, kubelet, kube-proxy, CoreDNS as node `node-0`), and the
# teardown `cluster down` does. Uses the helpers of ../cluster (log, die, start, stop, ...).
#
# Network: one Linux bridge, `k0smr0`, with the node's address 10.0.2.1/24; pods get addresses
# of 10.0.2.0/24 from CNI's bridge + host-local plugins, each in a network namespace of its own.
# The Service range and the LoadBalancer stand-in's range are routed to the bridge too, so no
# packet for a cluster address can ever take the machine's default route: everything stays in
# this machine's own namespaces. kube-proxy (iptables) serves ClusterIPs and NodePorts (on the
# node address only); CoreDNS answers cluster.local on 10.0.2.1:53 and nothing else.

NODE_NAME=node-0
NODE_BRIDGE=k0smr0
NODE_IP=10.0.2.1
NODE_POD_CIDR=10.0.2.0/24
# LoadBalancer Services get addresses from here when the real node runs (routed to the bridge,
# so kube-proxy's rules answer them; loopback addresses would be martians after DNAT).
NODE_LB_PREFIX=10.0.3
NODE_ROUTES=("$SERVICE_CIDR" "$NODE_LB_PREFIX.0/24")
K0S_IMAGE_TAG=${K0S_VERSION/+/-}
K0S_IMAGE=quay.io/k0sproject/k0s:$K0S_IMAGE_TAG
ETCD_IMAGE=quay.io/k0sproject/etcd:v$ETCD_VERSION
PAUSE_IMAGE=localhost/k0smotron-rs-harness/pause:1
VENDOR=${HARNESS_VENDOR_DIR:-$(realpath -m "$here/../../../shared/vendor")}
NODE_SRC=$CACHE/src
NODE_BIN=$CACHE/node-bin/k0s-$K0S_VERSION.kine-$KINE_VERSION.konnectivity-$KONNECTIVITY_VERSION
IMAGES=$CACHE/images
# The monitoring sidecars' images (spec.monitoring.prometheusImage and proxyImage of the
# real-node test, e2e tests/real_k0s.rs): Debian's prometheus and nginx binaries. Archives and
# list in a directory of their own, outside the cleanup of node_images.
PROMETHEUS_IMAGE=localhost/k0smotron-rs-harness/prometheus:1
MONITORING_PROXY_IMAGE=localhost/k0smotron-rs-harness/nginx:1
MONITORING_IMAGES=$CACHE/monitoring-images

# ---------------------------------------------------------------------------------------------
# build

node_build_packages() {
	local missing=() c
	for c in busybox:busybox-static tini-static:tini gcc:gcc ldd:libc-bin; do
		command -v "${c%%:*}" >/dev/null || missing+=("${c#*:}")
	done
	# busybox-static replaces a dynamic busybox; the image needs the static one.
	if command -v busybox >/dev/null && ldd "$(command -v busybox)" >/dev/null 2>&1; then
		missing+=(busybox-static)
	fi
	[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
	# The k0s image carries Debian's iptables binaries (xtables-*-multi and their extensions).
	[ -x /usr/sbin/xtables-legacy-multi ] && [ -x /usr/sbin/xtables-nft-multi ] || missing+=(iptables)
	install_packages "${missing[@]}"
}

# extract_vendored ARCHIVE: unpack a pinned source archive of ../shared/vendor once into the cache;
# prints the source dir.
extract_vendored() {
	local archive=$VENDOR/$1 top
	[ -f "$archive" ] || die "$archive missing: the real node builds k0s and konnectivity from ../shared/vendor (see its README.md)"
	top=$(tar -tzf "$archive" | head -n1 | cut -d/ -f1)
	if [ ! -d "$NODE_SRC/$top" ]; then
		mkdir -p "$NODE_SRC"
		rm -rf "$NODE_SRC/$top.tmp"
		mkdir "$NODE_SRC/$top.tmp"
		tar -xzf "$archive" -C "$NODE_SRC/$top.tmp"
		mv "$NODE_SRC/$top.tmp/$top" "$NODE_SRC/$top"
		rmdir "$NODE_SRC/$top.tmp"
	fi
	echo "$NODE_SRC/$top"
}

# go_build_in DIR OUT PKG LDFLAGS TAGS: a static Go build inside an extracted source tree.
go_build_in() {
	[ -x "$2" ] && return 0
	log "building $(basename "$2") from $1 ($3)"
	(cd "$1" && CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=${GOTOOLCHAIN:-local} \
		nice -n 10 go build -trimpath -tags "$5" -ldflags "$4" -o "$2.tmp" "$3")
	mv "$2.tmp" "$2"
}

# The value of VAR in k0s's embedded-bins/Makefile.variables (what this k0s release pins).
k0s_pin() { awk -v k="$2" '$1 == k && $2 == "=" {print $3; exit}' "$1/embedded-bins/Makefile.variables"; }

node_build() {
	local k0s_src anp_src b p ld
	node_build_packages
	k0s_src=$(extract_vendored "k0s-$K0S_VERSION.tar.gz")
	anp_src=$(extract_vendored "apiserver-network-proxy-v$KONNECTIVITY_VERSION.tar.gz")
	# This k0s release must be the one the pinned versions were chosen for.
	for p in "kubernetes_version $K8S_VERSION" "kine_version $KINE_VERSION" "konnectivity_version $KONNECTIVITY_VERSION"; do
		b=$(k0s_pin "$k0s_src" "${p%% *}")
		[ "$b" = "${p#* }" ] || die "k0s $K0S_VERSION pins ${p%% *} $b, versions.env says ${p#* }"
	done
	mkdir -p "$NODE_BIN"
	p=github.com/k0sproject/k0s/pkg/build
	ld="-s -w -X $p.Version=$K0S_VERSION -X $p.KubernetesVersion=$K8S_VERSION -X $p.KineVersion=$KINE_VERSION"
	ld+=" -X $p.KonnectivityVersion=$KONNECTIVITY_VERSION -X $p.EtcdVersion=$ETCD_VERSION"
	ld+=" -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
	ld+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
	go_build_in "$k0s_src" "$NODE_BIN/k0s" . "$ld" noembedbins,osusergo
	go_build_in "$anp_src" "$NODE_BIN/konnectivity-server" ./cmd/server "-s -w" ""
	# kine's default SQLite backend needs cgo; static with glibc, as k0s builds it (with NATS).
	CGO=1 CGO_FLAGS=-DSQLITE_USE_ALLOCA=1 build_set "kine-$KINE_VERSION" kine \
		"-s -w -extldflags=-static" "nats netgo osusergo" kine=github.com/k3s-io/kine
	build_set "cri-tools-$CRI_TOOLS_VERSION" cri-tools "-s -w" "" crictl=sigs.k8s.io/cri-tools/cmd/crictl
	build_set "coredns-$COREDNS_VERSION" coredns "-s -w" "" coredns=github.com/coredns/coredns
	if [ ! -x "$NODE_BIN/pause" ]; then
		gcc -static -O2 -Wall -Wextra -Werror -o "$NODE_BIN/pause.tmp" "$here/node/pause.c"
		mv "$NODE_BIN/pause.tmp" "$NODE_BIN/pause"
	fi
	for b in k0s konnectivity-server pause; do ln -sfn "$NODE_BIN/$b" "$BIN/$b"; done
	node_images "$k0s_src"
	monitoring_images
}

# image ARCHIVE_NAME ARGS...: build an image archive unless one from the same inputs exists.
image() {
	local out=$IMAGES/$1.tar
	shift
	[ -s "$out" ] && return 0
	mkdir -p "$IMAGES"
	python3 "$here/node/oci-image.py" --out "$out" "$@"
}

# The images the providers' pods use by default, under exactly the names they write, plus the
# pod sandbox. Archive names carry a key of every input, so a change builds anew.
node_images() {
	local k0s_src=$1 key users getent
	key=$({ cat "$here/node/oci-image.py" "$here/versions.env"; declare -f node_images; } | sha256sum | cut -c1-12)
	getent=$(command -v getent)
	# The service users k0s runs its components as (upstream's image creates the same).
	users='root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n'
	users+='etcd:x:100:101::/var/lib/k0s:/sbin/nologin\nkube-apiserver:x:101:101::/var/lib/k0s:/sbin/nologin\n'
	users+='kube-scheduler:x:102:101::/var/lib/k0s:/sbin/nologin\nkonnectivity-server:x:103:101::/var/lib/k0s:/sbin/nologin\n'
	# k0s's own image: tini runs its entrypoint script (from the same source archive), which
	# runs the pod's command; k0s finds the control-plane binaries on PATH (noembedbins). The
	# controller also stages the iptables binaries (xtables-*-multi), as upstream's image has
	# them (Debian's here, with their libraries and extensions), and etcd even when its storage is
	# an external etcd (upstream's k0s embeds it).
	image "k0s-$K0S_IMAGE_TAG-$key" --name "$K0S_IMAGE" \
		--entrypoint '["/sbin/tini","--","/entrypoint.sh"]' --cmd '["k0s","controller","--enable-worker"]' \
		--env KUBECONFIG=/var/lib/k0s/pki/admin.conf \
		--busybox "$(command -v busybox)" --file "$(command -v tini-static):/sbin/tini:0755" \
		--file "$k0s_src/docker-entrypoint.sh:/entrypoint.sh:0755" \
		--file "$getent:/usr/bin/getent:0755" --with-libs /usr/bin/getent \
		--file /usr/sbin/xtables-legacy-multi:/usr/sbin/xtables-legacy-multi:0755 \
		--file /usr/sbin/xtables-nft-multi:/usr/sbin/xtables-nft-multi:0755 \
		--with-libs /usr/sbin/xtables-legacy-multi --with-libs /usr/sbin/xtables-nft-multi \
		--tree /usr/lib/x86_64-linux-gnu/xtables:/usr/lib/x86_64-linux-gnu/xtables \
		--file "$NODE_BIN/k0s:/usr/local/bin/k0s:0755" \
		--file "$BIN/kube-apiserver:/usr/local/bin/kube-apiserver:0755" \
		--file "$BIN/kube-controller-manager:/usr/local/bin/kube-controller-manager:0755" \
		--file "$BIN/kube-scheduler:/usr/local/bin/kube-scheduler:0755" \
		--file "$BIN/kine:/usr/local/bin/kine:0755" --file "$BIN/etcd:/usr/local/bin/etcd:0755" \
		--file "$NODE_BIN/konnectivity-server:/usr/local/bin/konnectivity-server:0755" \
		--text "/etc/passwd:$users" --text '/etc/group:root:x:0:\nk0s:x:101:\nnogroup:x:65534:\n' \
		--text '/etc/nsswitch.conf:hosts: files dns\npasswd: files\ngroup: files\n' \
		--dir /tmp --dir /run --dir /var/lib/k0s --dir /etc/k0s
	image "etcd-$ETCD_VERSION-$key" --name "$ETCD_IMAGE" --cmd '["/usr/local/bin/etcd"]' \
		--busybox "$(command -v busybox)" \
		--file "$BIN/etcd:/usr/local/bin/etcd:0755" --file "$BIN/etcdctl:/usr/local/bin/etcdctl:0755" \
		--text '/etc/passwd:root:x:0:0:root:/root:/bin/sh\n' --text '/etc/group:root:x:0:\n' \
		--dir /tmp --dir /var/lib/etcd
	image "pause-$key" --name "$PAUSE_IMAGE" --entrypoint '["/pause"]' --file "$NODE_BIN/pause:/pause:0755"
	echo "$K0S_IMAGE $IMAGES/k0s-$K0S_IMAGE_TAG-$key.tar" >"$IMAGES/current.tmp"
	echo "$ETCD_IMAGE $IMAGES/etcd-$ETCD_VERSION-$key.tar" >>"$IMAGES/current.tmp"
	echo "$PAUSE_IMAGE $IMAGES/pause-$key.tar" >>"$IMAGES/current.tmp"
	mv "$IMAGES/current.tmp" "$IMAGES/current-$K0S_IMAGE_TAG"
	# Archives of earlier inputs are never used again.
	find "$IMAGES" -name '*.tar' ! -name "*-$key.tar" -delete
}

# debian_package PKG: Debian's package PKG (the candidate version), downloaded with apt-get and
# unpacked once into the cache, never installed (so no service starts); prints the directory.
debian_package() {
	local pkg=$1 dir=$CACHE/debs deb
	mkdir -p "$dir"
	deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n 1)
	if [ -z "$deb" ]; then
		(cd "$dir" && { apt-get download -qq "$pkg" 2>/dev/null ||
			{ apt-get update -qq && apt-get download -qq "$pkg"; }; } >&2) ||
			die "apt-get download $pkg failed"
		deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n 1)
	fi
	if [ ! -d "${deb%.deb}" ]; then
		rm -rf "${deb%.deb}.tmp"
		dpkg -x "$deb" "${deb%.deb}.tmp"
		mv "${deb%.deb}.tmp" "${deb%.deb}"
	fi
	echo "${deb%.deb}"
}

# The monitoring sidecars' images, keyed like node_images' by every input. The pod's command
# runs `prometheus` from PATH, as with upstream's image; nginx starts from the image's command,
# as the official image does, as root (its workers switch to Debian's compiled-in user
# nobody:nogroup).
monitoring_images() {
	local prometheus nginx key users
	prometheus=$(debian_package prometheus)
	nginx=$(debian_package nginx)
	key=$({
		cat "$here/node/oci-image.py"
		declare -f monitoring_images
		echo "$prometheus $nginx"
	} | sha256sum | cut -c1-12)
	users='root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n'
	IMAGES=$MONITORING_IMAGES image "prometheus-$key" --name "$PROMETHEUS_IMAGE" \
		--entrypoint '["/usr/bin/prometheus"]' \
		--file "$prometheus/usr/bin/prometheus:/usr/bin/prometheus:0755" --with-libs /usr/bin/prometheus \
		--text "/etc/passwd:$users" --text '/etc/group:root:x:0:\nnogroup:x:65534:\n' \
		--dir /prometheus --dir /tmp
	IMAGES=$MONITORING_IMAGES image "nginx-$key" --name "$MONITORING_PROXY_IMAGE" \
		--cmd '["nginx","-g","daemon off;"]' \
		--file "$nginx/usr/sbin/nginx:/usr/sbin/nginx:0755" --with-libs /usr/sbin/nginx \
		--text "/etc/passwd:$users" --text '/etc/group:root:x:0:\nnogroup:x:65534:\nnobody:x:65534:\n' \
		--text '/etc/nsswitch.conf:passwd: files\ngroup: files\nhosts: files dns\n' \
		--dir /etc/nginx --dir /var/lib/nginx --dir /var/log/nginx --dir /var/run --dir /run --dir /tmp
	{
		echo "$PROMETHEUS_IMAGE $MONITORING_IMAGES/prometheus-$key.tar"
		echo "$MONITORING_PROXY_IMAGE $MONITORING_IMAGES/nginx-$key.tar"
	} >"$MONITORING_IMAGES/current.tmp"
	mv "$MONITORING_IMAGES/current.tmp" "$MONITORING_IMAGES/current"
	find "$MONITORING_IMAGES" -name '*.tar' ! -name "*-$key.tar" -delete
}

# ---------------------------------------------------------------------------------------------
# up

NODE=$STATE/node
node_sock() { echo "$NODE/containerd/containerd.sock"; }
ctr_() { ctr --address "$(node_sock)" --namespace k8s.io "$@"; }
crictl_() { "$BIN/crictl" --runtime-endpoint "unix://$(node_sock)" --timeout 20s "$@"; }

node_up_packages() {
	local missing=() c
	for c in containerd:containerd runc:runc ctr:containerd iptables:iptables conntrack:conntrack \
		ip:iproute2; do
		command -v "${c%%:*}" >/dev/null || missing+=("${c#*:}")
	done
	[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
	install_packages "${missing[@]}"
}

node_preflight() {
	[ "$(id -u)" = 0 ] || die "--real-node needs root (kubelet, containerd, network namespaces)"
	[ -f "$IMAGES/current-$K0S_IMAGE_TAG" ] || die "real-node images missing; run \`$0 build\` first"
	for b in kubelet kube-proxy crictl coredns; do
		[ -x "$BIN/$b" ] || die "$BIN/$b missing; run \`$0 build\` first"
	done
	if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
		die "bridge $NODE_BRIDGE exists: a real node already runs on this machine (another HARNESS_DIR?); one at a time"
	fi
}

node_pki() {
	local d=$STATE/pki
	pki_leaf "$d" node-kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
	pki_leaf "$d" node-kubelet-serving "/CN=$NODE_NAME" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
	pki_leaf "$d" node-proxy "/CN=system:kube-proxy" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
	pki_leaf "$d" node-coredns "/CN=harness:coredns" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
	local api
	api=$(cat "$STATE/run/api.url")
	write_kubeconfig "$NODE/kubelet.kubeconfig" "$api" "$d/ca.crt" "$d/node-kubelet.crt" "$d/node-kubelet.key" node
	write_kubeconfig "$NODE/proxy.kubeconfig" "$api" "$d/ca.crt" "$d/node-proxy.crt" "$d/node-proxy.key" proxy
	write_kubeconfig "$NODE/coredns.kubeconfig" "$api" "$d/ca.crt" "$d/node-coredns.crt" "$d/node-coredns.key" coredns
}

# The named network namespaces (where containerd's CNI keeps the pods'), sorted.
netns_list() { { ls /var/run/netns 2>/dev/null || true; } | sort; }

node_network() {
	local r
	netns_list >"$NODE/netns-before"
	ip link add "$NODE_BRIDGE" type bridge
	echo "$NODE_BRIDGE" >"$NODE/bridge"
	ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
	ip link set "$NODE_BRIDGE" up
	for r in "${NODE_ROUTES[@]}"; do ip route add "$r" dev "$NODE_BRIDGE"; done
	mkdir -p "$NODE/cni/conf" "$NODE/cni/ipam"
	cat >"$NODE/cni/conf/10-harness.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "harness", "plugins": [
  {"type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$NODE/cni/ipam",
            "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_IP"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
}

node_containerd() {
	local c=$NODE/containerd deadline line
	mkdir -p "$c/root" "$c/state" "$c/certs.d/_default"
	# Only preloaded images run: a pull of anything else goes to a closed local port and fails
	# at once, never to the network.
	printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' \
		>"$c/certs.d/_default/hosts.toml"
	cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$(node_sock)"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Lowering an OOM score needs CAP_SYS_RESOURCE, which root may lack here (a sandboxed
  # machine): the kubelet's negative scores for sandboxes and Guaranteed pods are then raised to
  # containerd's own instead of failing every pod.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$c/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
EOF
	start node-containerd containerd --config "$c/config.toml"
	deadline=$((SECONDS + 30))
	until ctr --address "$(node_sock)" version >/dev/null 2>&1; do
		alive "$(cat "$STATE/run/node-containerd.pid")" || failed node-containerd "exited" || return 1
		[ $SECONDS -lt $deadline ] || failed node-containerd "not answering on $(node_sock)" || return 1
		sleep 0.2
	done
	while read -r line; do
		log "importing ${line%% *}"
		ctr_ images import --no-unpack=false "${line#* }" >/dev/null 2>"$STATE/logs/node-import.log" ||
			failed node-import "failed for ${line%% *}" || return 1
	done < <(cat "$IMAGES/current-$K0S_IMAGE_TAG" "$MONITORING_IMAGES/current" 2>/dev/null)
}

node_kubelet() {
	local k=$NODE/kubelet health deadline
	health=$(free_port)
	mkdir -p "$k/root" "$k/pki"
	cp "$STATE/pki/node-kubelet-serving.crt" "$k/pki/kubelet.crt"
	cp "$STATE/pki/node-kubelet-serving.key" "$k/pki/kubelet.key"
	cat >"$k/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $health
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $k/pki/kubelet.crt
tlsPrivateKeyFile: $k/pki/kubelet.key
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$(node_sock)
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $NODE/resolv.conf
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
serializeImagePulls: false
registerNode: true
maxPods: 40
# Not -999: lowering a score needs CAP_SYS_RESOURCE (see containerd's restrict_oom_score_adj).
oomScoreAdj: 0
EOF
	# Pods get only the cluster DNS; nothing resolves names outside the cluster.
	printf 'nameserver %s\n' "$NODE_IP" >"$NODE/resolv.conf"
	start node-kubelet "$BIN/kubelet" --config="$k/config.yaml" --kubeconfig="$NODE/kubelet.kubeconfig" \
		--root-dir="$k/root" --cert-dir="$k/pki" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
		--node-labels="harness.k0smotron-rs/real-node=true" --v=1
	wait_http node-kubelet "http://127.0.0.1:$health/healthz" 60
	deadline=$((SECONDS + 90))
	until [ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; do
		alive "$(cat "$STATE/run/node-kubelet.pid")" || failed node-kubelet "exited" || return 1
		[ $SECONDS -lt $deadline ] || failed node-kubelet "node $NODE_NAME not Ready" || return 1
		sleep 0.5
	done
}

node_proxy() {
	local health metrics
	health=$(free_port) metrics=$(free_port)
	start node-kube-proxy "$BIN/kube-proxy" --kubeconfig="$NODE/proxy.kubeconfig" \
		--hostname-override="$NODE_NAME" --proxy-mode=iptables --cluster-cidr="$NODE_POD_CIDR" \
		--nodeport-addresses="$NODE_IP/32" --conntrack-max-per-core=0 --oom-score-adj=0 \
		--healthz-bind-address="127.0.0.1:$health" --metrics-bind-address="127.0.0.1:$metrics"
	wait_http node-kube-proxy "http://127.0.0.1:$health/healthz" 60
}

node_dns() {
	local health
	health=$(free_port)
	kubectl_ apply --server-side -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "harness:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "harness:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "harness:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "harness:coredns"}]
EOF
	cat >"$NODE/Corefile" <<EOF
cluster.local:53 {
  bind $NODE_IP
  errors
  health 127.0.0.1:$health
  kubernetes cluster.local {
    kubeconfig $NODE/coredns.kubeconfig
  }
}
.:53 {
  bind $NODE_IP
  template ANY ANY {
    rcode NXDOMAIN
  }
}
EOF
	start node-coredns "$BIN/coredns" -conf "$NODE/Corefile"
	wait_http node-coredns "http://127.0.0.1:$health/health" 60
}

node_up() {
	local t0=$SECONDS
	mkdir -p "$NODE"
	node_pki
	node_network
	node_containerd
	node_dns
	node_kubelet
	node_proxy
	log "real node $NODE_NAME Ready after $((SECONDS - t0)) s (k0s image $K0S_IMAGE)"
}

# Keep the kwok nodes out of the way of pods meant for the real node.
node_taint_fake_nodes() {
	local n
	for n in "${NODES[@]}"; do
		kubectl_ taint node "${n%% *}" kwok.x-k8s.io/node=fake:NoSchedule --overwrite >/dev/null
	done
}

# ---------------------------------------------------------------------------------------------
# down: pods through CRI (containerd removes their network namespaces), then the processes,
# iptables rules, mounts, the bridge and the cgroups. Idempotent; a no-op without a real node.

node_down() {
	local m ns cg
	[ -d "$NODE" ] || return 0
	stop "$STATE/run/node-kubelet.pid"
	if [ -S "$(node_sock)" ] && [ -x "$BIN/crictl" ]; then
		crictl_ stopp $(crictl_ pods -q 2>/dev/null) >/dev/null 2>&1 || true
		crictl_ rmp --force --all >/dev/null 2>&1 || true
	fi
	stop "$STATE/run/node-kube-proxy.pid"
	stop "$STATE/run/node-coredns.pid"
	stop "$STATE/run/node-containerd.pid"
	# Shims outlive containerd by design; ours are the ones serving our socket's namespace.
	pkill -KILL -f "containerd-shim-runc-v2 .*-address $(node_sock)" 2>/dev/null || true
	[ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup --proxy-mode=iptables >/dev/null 2>&1 || true
	# Mounts under the node dir, deepest first (secrets' tmpfs, overlay rootfs, netns binds).
	while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(awk -v p="$NODE/" \
		'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r)
	if [ -f "$NODE/netns-before" ]; then
		while read -r ns; do
			case $ns in cni-*) ip netns delete "$ns" 2>/dev/null || true ;; esac
		done < <(netns_list | comm -13 "$NODE/netns-before" -)
	fi
	if [ -f "$NODE/bridge" ] && ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
		ip link delete "$NODE_BRIDGE"
	fi
	# The kubelet's pod cgroups (cgroupfs driver), deepest first.
	for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
		[ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	rm -rf "$NODE"
	log "down: real node $NODE_NAME removed"
}
