//! Every well-known name the providers use: API groups, finalizers, labels, annotations, Secret
//! types, default images and ports, and the functions that derive object names from a cluster
//! name. Values match upstream k0smotron so objects created by either are recognised by both.
//! Pure functions only; nothing here talks to a cluster.

use md5::{Digest, Md5};

// ---------------------------------------------------------------------------------------------
// API groups and kinds
// ---------------------------------------------------------------------------------------------

/// API group of the control-plane provider's kinds.
pub const CONTROLPLANE_GROUP: &str = "controlplane.cluster.x-k8s.io";
/// API group of the bootstrap provider's kinds.
pub const BOOTSTRAP_GROUP: &str = "bootstrap.cluster.x-k8s.io";
/// API group of the standalone kinds (`Cluster`, `JoinTokenRequest`).
pub const STANDALONE_GROUP: &str = "k0smotron.io";
/// API group of the Cluster API core kinds (`Cluster`, `Machine`, `MachinePool`).
pub const CAPI_GROUP: &str = "cluster.x-k8s.io";
/// The version of our own API (for both providers).
pub const API_VERSION: &str = "v1beta2";

// ---------------------------------------------------------------------------------------------
// Finalizers
// ---------------------------------------------------------------------------------------------

/// Finalizer on `K0smotronControlPlane` (upstream's value).
pub const CONTROLPLANE_FINALIZER: &str = "k0smotron.controlplane.cluster.x-k8s.io";
/// Finalizer on a standalone `k0smotron.io` `Cluster` (upstream's value).
pub const STANDALONE_FINALIZER: &str = "k0smotron.io/finalizer";
/// Finalizer on `K0sWorkerConfig`. Upstream has none; ours lets the bootstrap provider invalidate
/// the worker's join token when the config goes away.
pub const BOOTSTRAP_FINALIZER: &str = "k0sworkerconfig.bootstrap.cluster.x-k8s.io";

// ---------------------------------------------------------------------------------------------
// CAPI labels and annotations
// ---------------------------------------------------------------------------------------------

/// Label carrying the name of the CAPI `Cluster` an object belongs to.
pub const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";
/// Label marking control-plane objects (value `"true"` on our pods, `""` on CAPI Machines).
pub const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
/// Label naming the control-plane object that owns a Machine.
pub const CONTROL_PLANE_NAME_LABEL: &str = "cluster.x-k8s.io/control-plane-name";
/// Annotation that pauses reconciliation of the object carrying it.
pub const PAUSED_ANNOTATION: &str = "cluster.x-k8s.io/paused";
/// Annotation by which CAPI marks an infrastructure cluster as managed by something other than
/// its infrastructure provider.
pub const MANAGED_BY_ANNOTATION: &str = "cluster.x-k8s.io/managed-by";
/// The [`MANAGED_BY_ANNOTATION`] value that hands the object to the control-plane provider
/// (upstream k0smotron's, so manifests written for upstream behave the same).
pub const MANAGED_BY_K0SMOTRON: &str = "k0smotron";
/// Label of the ClusterRoles that Kubernetes aggregates into the control-plane provider's
/// infrastructure role (`config/controlplane/infrastructure_role.yaml`): how an infrastructure
/// kind is granted to it for [`MANAGED_BY_ANNOTATION`].
pub const INFRASTRUCTURE_AGGREGATION_LABEL: &str =
    "controlplane.cluster.x-k8s.io/aggregate-to-k0smotron";
/// Annotation on the CAPI Cluster identifying its workload cluster: `kube-system:<uid of the
/// workload cluster's kube-system Namespace>` (upstream k0smotron's, set once the API answers).
pub const CLUSTER_ID_ANNOTATION: &str = "k0sproject.io/cluster-id";
/// Label selecting which provider instance reconciles an object (`--watch-filter`).
pub const WATCH_FILTER_LABEL: &str = "cluster.x-k8s.io/watch-filter";
/// Secret type CAPI uses for kubeconfig, certificate and bootstrap data Secrets.
pub const CAPI_SECRET_TYPE: &str = "cluster.x-k8s.io/secret";
/// CRD label key declaring which of our API versions implement the CAPI v1beta2 contract.
pub const CONTRACT_LABEL: &str = "cluster.x-k8s.io/v1beta2";
/// Value of [`CONTRACT_LABEL`]: the API versions served (underscore-separated if several).
pub const CONTRACT_LABEL_VALUE: &str = "v1beta2";
/// Name of the Service in front of a provider's webhook server before the kustomize name prefix
/// (the generated CRDs name it; each provider's kustomization prefixes it).
pub const WEBHOOK_SERVICE_NAME: &str = "webhook-service";
/// Path of the conversion webhook (`ConversionReview`) on the webhook server.
pub const CONVERSION_PATH: &str = "/convert";
/// Label key clusterctl uses to identify a provider's components.
pub const PROVIDER_LABEL: &str = "cluster.x-k8s.io/provider";
/// Provider label value of the control-plane provider.
pub const CONTROLPLANE_PROVIDER_LABEL_VALUE: &str = "control-plane-k0smotron";
/// Provider label value of the bootstrap provider.
pub const BOOTSTRAP_PROVIDER_LABEL_VALUE: &str = "bootstrap-k0smotron";
/// Label clusterctl move uses to carry objects with no owner chain to the Cluster.
pub const CLUSTERCTL_MOVE_LABEL: &str = "clusterctl.cluster.x-k8s.io/move";
/// Annotation CAPI topology puts on dry-run requests for templates.
pub const TOPOLOGY_DRY_RUN_ANNOTATION: &str = "topology.cluster.x-k8s.io/dry-run";

// ---------------------------------------------------------------------------------------------
// Labels on generated control-plane objects
// ---------------------------------------------------------------------------------------------

/// `app` label key on generated objects.
pub const APP_LABEL: &str = "app";
/// Value of [`APP_LABEL`] on every generated object.
pub const APP_LABEL_VALUE: &str = "k0smotron";
/// `cluster` label key: the k0smotron cluster (KMC) name.
pub const CLUSTER_LABEL: &str = "cluster";
/// `component` label key: `cluster` for k0s pods, `etcd` for etcd pods.
pub const COMPONENT_LABEL: &str = "component";
/// Value of [`COMPONENT_LABEL`] on k0s controller pods.
pub const COMPONENT_CLUSTER: &str = "cluster";
/// Value of [`COMPONENT_LABEL`] on etcd pods.
pub const COMPONENT_ETCD: &str = "etcd";
/// `app.kubernetes.io/component` label key; `spec.patches[].target.component` matches it.
pub const APP_COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// Values of [`APP_COMPONENT_LABEL`] on generated objects (upstream's set).
pub mod component {
    /// k0s StatefulSet, its Services and the endpoint ConfigMap.
    pub const CONTROL_PLANE: &str = "control-plane";
    /// Ingress and its manifests.
    pub const INGRESS: &str = "ingress";
    /// The k0s ClusterConfig ConfigMap.
    pub const CLUSTER_CONFIG: &str = "cluster-config";
    /// The entrypoint script ConfigMap.
    pub const ENTRYPOINT: &str = "entrypoint";
    /// The telemetry ConfigMap.
    pub const TELEMETRY: &str = "telemetry";
    /// Prometheus/nginx monitoring ConfigMap.
    pub const MONITORING: &str = "monitoring";
    /// etcd StatefulSet, Service and defrag CronJob.
    pub const ETCD: &str = "etcd";
    /// The kubeconfig Secret.
    pub const KUBECONFIG: &str = "kubeconfig";
}

// ---------------------------------------------------------------------------------------------
// Secret keys
// ---------------------------------------------------------------------------------------------

/// Key of a CAPI kubeconfig Secret and of a bootstrap data Secret.
pub const SECRET_VALUE_KEY: &str = "value";
/// Key of a bootstrap data Secret naming the payload format (`cloud-config`, `ignition`, ...).
pub const SECRET_FORMAT_KEY: &str = "format";
/// Certificate key in CAPI certificate Secrets.
pub const TLS_CRT_KEY: &str = "tls.crt";
/// Private key in CAPI certificate Secrets.
pub const TLS_KEY_KEY: &str = "tls.key";
/// Key in a `storage.kine.dataSourceSecretName` Secret holding the kine DSN.
pub const KINE_DATASOURCE_URL_KEY: &str = "K0SMOTRON_KINE_DATASOURCE_URL";

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

/// k0s image repository, without a tag (the tag comes from the version).
pub const DEFAULT_K0S_IMAGE: &str = "quay.io/k0sproject/k0s";

/// The k0s version a new `K0smotronControlPlane` gets when `spec.version` is omitted.
///
/// Upstream defaults to `v1.27.9-k0s.0`, a release long out of support; we default to a current
/// k0s release instead: the one our CI runs as a real hosted control plane on the test harness's
/// real node (`K0S_VERSION` in test/harness/versions.env; a test keeps the two equal), so the
/// default is always a release proven to work. The value is a CRD schema default, so the API server persists it into
/// each object at creation: upgrading the provider (and so this constant) never changes the
/// version of an existing cluster behind the user's back; only clusters created afterwards get
/// the new default. See docs/deviations.md.
pub const DEFAULT_K0S_VERSION: &str = "v1.35.4+k0s.0";

#[cfg(test)]
mod default_version_tests {
    /// The default k0s version is the one the harness's real node runs (its image is built for
    /// exactly that release), so a bump of one without the other fails here.
    #[test]
    fn default_k0s_version_is_the_harness_k0s_version() {
        let versions = include_str!("../../../test/harness/versions.env");
        let harness = versions
            .lines()
            .find_map(|l| l.strip_prefix("K0S_VERSION="))
            .map(str::trim);
        assert_eq!(harness, Some(super::DEFAULT_K0S_VERSION));
    }
}

/// etcd image of the managed etcd StatefulSet.
pub const DEFAULT_ETCD_IMAGE: &str = "quay.io/k0sproject/etcd:v3.7.1";
/// Image of the etcd defragmentation CronJob.
pub const DEFAULT_ETCD_DEFRAG_IMAGE: &str = "ghcr.io/ahrtr/etcd-defrag:v0.16.0";
/// Schedule of the etcd defragmentation CronJob.
pub const DEFAULT_ETCD_DEFRAG_SCHEDULE: &str = "0 12 * * *";
/// etcd-defrag rule deciding when to defragment.
pub const DEFAULT_ETCD_DEFRAG_RULE: &str =
    "dbQuotaUsage > 0.8 || dbSize - dbSizeInUse > 200*1024*1024";
/// Size of the etcd / NATS data volume.
pub const DEFAULT_STORAGE_SIZE: &str = "1Gi";
/// Prometheus sidecar image when monitoring is enabled.
pub const DEFAULT_PROMETHEUS_IMAGE: &str = "quay.io/k0sproject/prometheus:v2.44.0";
/// nginx proxy sidecar image when monitoring is enabled.
pub const DEFAULT_MONITORING_PROXY_IMAGE: &str = "nginx:1.19.10";
/// Kubernetes API port (container port, Service port and NodePort are all equal).
pub const DEFAULT_API_PORT: i32 = 30443;
/// konnectivity server port.
pub const DEFAULT_KONNECTIVITY_PORT: i32 = 30132;
/// Port of the ingress controller when `spec.ingress` is used.
pub const DEFAULT_INGRESS_PORT: i64 = 443;
/// Where the k0s binary lives on worker nodes.
pub const DEFAULT_K0S_INSTALL_DIR: &str = "/usr/local/bin";
/// Where the worker join token goes when `spec.workingDir` is empty.
pub const DEFAULT_JOIN_TOKEN_PATH: &str = "/etc/k0s.token";
/// Sentinel file the bootstrap data must create on success (CAPI bootstrap contract).
pub const BOOTSTRAP_SUCCESS_SENTINEL: &str = "/run/cluster-api/bootstrap-success.complete";

// ---------------------------------------------------------------------------------------------
// Derived names
// ---------------------------------------------------------------------------------------------

/// The longest name a Kubernetes label value or DNS-1123 label may have.
pub const MAX_NAME_LENGTH: usize = 63;

/// Longest suffix the StatefulSet controller appends to a StatefulSet's name for the pod label
/// `controller-revision-hash` (`-` and the decimal FNV-32 hash, up to 10 digits).
pub const REVISION_HASH_SUFFIX_LENGTH: usize = 11;

/// Longest `K0smotronControlPlane` name whose StatefulSet `kmc-<name>` still yields a valid
/// `controller-revision-hash` label: 63 - 11 - `kmc-`. Enforced by a CEL rule in the CRD.
pub const MAX_CONTROL_PLANE_NAME_LENGTH: usize =
    MAX_NAME_LENGTH - REVISION_HASH_SUFFIX_LENGTH - "kmc-".len();

/// The same bound with etcd storage, whose StatefulSet is `kmc-<name>-etcd`.
pub const MAX_CONTROL_PLANE_NAME_LENGTH_ETCD: usize = MAX_CONTROL_PLANE_NAME_LENGTH - "-etcd".len();

/// Shortens `name` as upstream does: a name longer than 63 characters becomes its first 57
/// characters, a `-`, and the first 5 hex digits of the MD5 of the full name (63 in total).
///
/// The 57-character prefix is cut on a character boundary at or below byte 57; Kubernetes names
/// are ASCII, so for every valid input this is exactly upstream's byte cut.
pub fn short_name(name: &str) -> String {
    if name.len() <= MAX_NAME_LENGTH {
        return name.to_owned();
    }
    let mut cut = MAX_NAME_LENGTH - 6;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = Md5::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}", &name[..cut], &hex[..5])
}

/// Name of the k0s StatefulSet, its ClusterIP Service, the Ingress and the `/var/lib/k0s`
/// volume: `kmc-<cluster>` (shortened).
pub fn kmc_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}"))
}

/// ClusterIP Service: `kmc-<cluster>` (shortened).
pub fn cluster_ip_service_name(cluster: &str) -> String {
    kmc_name(cluster)
}

/// NodePort Service: `kmc-<cluster>-nodeport` (shortened).
pub fn nodeport_service_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-nodeport"))
}

/// LoadBalancer Service: `kmc-<cluster>-lb` (shortened).
pub fn load_balancer_service_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-lb"))
}

/// k0s ClusterConfig ConfigMap: `kmc-<cluster>-config` (shortened).
pub fn config_map_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-config"))
}

/// Entrypoint script ConfigMap: `kmc-entrypoint-<cluster>-config` (shortened).
pub fn entrypoint_config_map_name(cluster: &str) -> String {
    short_name(&format!("kmc-entrypoint-{cluster}-config"))
}

/// Endpoint manifest ConfigMap: `kmc-<cluster>-endpoint` (shortened).
pub fn endpoint_config_map_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-endpoint"))
}

/// Ingress manifests ConfigMap: `kmc-<cluster>-ingress` (shortened).
pub fn ingress_manifests_config_map_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-ingress"))
}

/// The HAProxy serving certificate of a control plane behind an Ingress (signed by the cluster
/// CA; `tls.crt`/`tls.key`): `<cluster>-ingress-haproxy`, CAPI's `<cluster>-<purpose>` (not
/// shortened, as upstream).
pub fn ingress_haproxy_secret(cluster: &str) -> String {
    format!("{cluster}-ingress-haproxy")
}

/// Directory on workers of a control plane behind an Ingress holding the HAProxy files: the
/// bootstrap provider writes them, the HAProxy DaemonSet in the hosted cluster mounts it.
pub const HAPROXY_CERT_DIR: &str = "/etc/haproxy/certs";
/// The cluster CA certificate HAProxy verifies the API server with.
pub const HAPROXY_CA_FILE: &str = "/etc/haproxy/certs/ca.crt";
/// HAProxy's serving certificate.
pub const HAPROXY_CERT_FILE: &str = "/etc/haproxy/certs/server.crt";
/// HAProxy's serving key.
pub const HAPROXY_KEY_FILE: &str = "/etc/haproxy/certs/server.key";
/// Certificate and key in one file, as HAProxy's `crt` wants them.
pub const HAPROXY_PEM_FILE: &str = "/etc/haproxy/certs/server.pem";

/// konnectivity-agent manifest ConfigMap for ingress mode: `kmc-<cluster>-ingress-konnectivity`
/// (shortened).
pub fn ingress_konnectivity_config_map_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-ingress-konnectivity"))
}

/// Telemetry ConfigMap: `kmc-<cluster>-telemetry-config` (upstream does not shorten it; neither
/// do we, so the names stay identical).
pub fn telemetry_config_map_name(cluster: &str) -> String {
    format!("kmc-{cluster}-telemetry-config")
}

/// Monitoring ConfigMap: `kmc-prometheus-<cluster>-config` (shortened).
pub fn monitoring_config_map_name(cluster: &str) -> String {
    short_name(&format!("kmc-prometheus-{cluster}-config"))
}

/// Name of the pod volume holding the monitoring ConfigMap's `nginx.conf`:
/// `kmc-prometheus-<cluster>-config-nginx` (shortened). Upstream's name: it sources the same
/// ConfigMap as [`monitoring_config_map_name`], there is no ConfigMap of this name.
pub fn monitoring_nginx_volume_name(cluster: &str) -> String {
    short_name(&format!("kmc-prometheus-{cluster}-config-nginx"))
}

/// Headless Service selecting the k0s pods' metrics port (monitoring only):
/// `kmc-<cluster>-metrics` (shortened).
pub fn metrics_service_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-metrics"))
}

/// etcd StatefulSet and its headless Service: `kmc-<cluster>-etcd` (shortened).
pub fn etcd_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-etcd"))
}

/// etcd defragmentation CronJob: `kmc-<cluster>-defrag` (shortened).
pub fn etcd_defrag_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-defrag"))
}

/// Headless NATS Service: `kmc-<cluster>-nats` (shortened).
pub fn nats_service_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-nats"))
}

/// NATS token Secret: `kmc-<cluster>-nats-token` (shortened).
pub fn nats_token_secret_name(cluster: &str) -> String {
    short_name(&format!("kmc-{cluster}-nats-token"))
}

/// CAPI cluster CA Secret: `<cluster>-ca`. CAPI and other providers look these Secrets up by
/// exactly this name, so certificate Secret names are never shortened.
pub fn ca_secret(cluster: &str) -> String {
    format!("{cluster}-ca")
}

/// Front-proxy CA Secret: `<cluster>-proxy` (never shortened).
pub fn proxy_secret(cluster: &str) -> String {
    format!("{cluster}-proxy")
}

/// Service-account key pair Secret: `<cluster>-sa` (never shortened).
pub fn sa_secret(cluster: &str) -> String {
    format!("{cluster}-sa")
}

/// etcd CA Secret: `<cluster>-etcd` (never shortened).
pub fn etcd_ca_secret(cluster: &str) -> String {
    format!("{cluster}-etcd")
}

/// The ConfigMap `<cluster>-root-owner` in the hosting cluster of a control plane with
/// `spec.remoteHostCluster` (upstream's name): the controller owner of every child there, so the
/// hosting cluster's garbage collector removes them when it is deleted. Never shortened
/// (upstream does not shorten it either).
pub fn root_owner_config_map(cluster: &str) -> String {
    format!("{cluster}-root-owner")
}

/// Annotation on the root-owner ConfigMap naming the uid of the control-plane object it stands
/// for: another management cluster's control plane of the same namespace and name is not taken
/// over.
pub const ROOT_OWNER_UID_ANNOTATION: &str = "k0smotron.io/control-plane-uid";

/// Kubeconfig Secret: `<cluster>-kubeconfig`. CAPI reads it by this exact name, so it is never
/// shortened.
pub fn kubeconfig_secret(cluster: &str) -> String {
    format!("{cluster}-kubeconfig")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_admitted_names_fit_the_revision_hash_label() {
        let longest = "a".repeat(MAX_CONTROL_PLANE_NAME_LENGTH);
        assert_eq!(kmc_name(&longest).len() + REVISION_HASH_SUFFIX_LENGTH, 63);
        let longest_etcd = "a".repeat(MAX_CONTROL_PLANE_NAME_LENGTH_ETCD);
        assert_eq!(
            etcd_name(&longest_etcd).len() + REVISION_HASH_SUFFIX_LENGTH,
            63
        );
        // The CRD's CEL rule spells the same numbers.
        let crd = serde_json::to_string(&{
            use kube::CustomResourceExt as _;
            crate::controlplane::v1beta2::K0smotronControlPlane::crd()
        })
        .unwrap_or_default();
        let rule = format!(
            "self.metadata.name.size() <= {MAX_CONTROL_PLANE_NAME_LENGTH_ETCD} || (self.metadata.name.size() <= {MAX_CONTROL_PLANE_NAME_LENGTH} &&"
        );
        assert!(crd.contains(&rule), "CRD lacks {rule}");
    }

    #[test]
    fn short_names_stay_unchanged() {
        assert_eq!(kmc_name("demo"), "kmc-demo");
        assert_eq!(nodeport_service_name("demo"), "kmc-demo-nodeport");
        assert_eq!(load_balancer_service_name("demo"), "kmc-demo-lb");
        assert_eq!(
            entrypoint_config_map_name("demo"),
            "kmc-entrypoint-demo-config"
        );
        assert_eq!(etcd_name("demo"), "kmc-demo-etcd");
        assert_eq!(config_map_name("demo"), "kmc-demo-config");
    }

    #[test]
    fn exactly_63_characters_is_not_shortened() {
        let cluster = "a".repeat(59);
        assert_eq!(kmc_name(&cluster), format!("kmc-{cluster}"));
        assert_eq!(kmc_name(&cluster).len(), 63);
    }

    #[test]
    fn long_names_are_cut_to_57_plus_md5() {
        let cluster = "a".repeat(60);
        let full = format!("kmc-{cluster}");
        let short = kmc_name(&cluster);
        assert_eq!(short.len(), 63);
        assert_eq!(&short[..57], &full[..57]);
        assert_eq!(&short[57..58], "-");
        // md5("kmc-" + 60 × "a") computed independently with coreutils' md5sum.
        assert_eq!(&short[58..], "a9df6");
    }

    #[test]
    fn capi_secret_names_are_never_shortened() {
        let cluster = "c".repeat(63);
        assert_eq!(kubeconfig_secret(&cluster), format!("{cluster}-kubeconfig"));
        assert_eq!(ca_secret(&cluster), format!("{cluster}-ca"));
        assert_eq!(proxy_secret("x"), "x-proxy");
        assert_eq!(sa_secret("x"), "x-sa");
        assert_eq!(etcd_ca_secret("x"), "x-etcd");
    }

    #[test]
    fn non_ascii_input_does_not_panic() {
        let name = "é".repeat(40);
        let short = short_name(&name);
        assert!(short.len() <= MAX_NAME_LENGTH);
    }
}
