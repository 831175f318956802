//! `k0smotron.io/v1beta2`: the standalone kinds, which need no Cluster API: `Cluster` (a k0s
//! control plane hosted as pods in this cluster) and `JoinTokenRequest` (a join token for one of
//! them). [`ClusterSpec`] is also the spec every control-plane kind shares:
//! `K0smotronControlPlane` flattens it and adds only the CAPI contract's `controlPlaneEndpoint`, as
//! upstream k0smotron's KCP spec is its `ClusterSpec`.
//!
//! Wire-compatible with upstream's `k0smotron.io/v1beta2`: upstream manifests apply unchanged.
//! Upstream's webhook checks are OpenAPI constraints and CEL rules here.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, ResourceRequirements,
        TopologySpreadConstraint, Volume,
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition},
};
use kube::CustomResource;
use kube::core::{Reason, Rule};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{common::ObjectLabels, names};

/// RE2 pattern (as the API server evaluates it) of a k0s version on the control plane: both the
/// release (`+k0s.N`) and the image-tag (`-k0s.N`) spellings are accepted, as upstream does, and
/// a missing suffix means `k0s.0`.
pub const VERSION_PATTERN: &str =
    r"^v[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)\.[0-9]+)?([-+]k0s\.[0-9]+)?$";

// ---------------------------------------------------------------------------------------------
// Admission rules shared by every control-plane kind (on the object's root)
// ---------------------------------------------------------------------------------------------

/// Upstream's webhook refuses a version change that skips a minor release. A transition rule on
/// the root rather than on `spec.version`, so that it does not apply to templates, which share the
/// spec type. Downgrades are not refused (as upstream); `version::check_upgrade` implements the
/// same rule for the controllers.
pub fn version_skew_rule() -> Rule {
    Rule::new(
            "self.spec.version == oldSelf.spec.version || !self.spec.version.matches('^v[0-9]+[.][0-9]+[.]') || !oldSelf.spec.version.matches('^v[0-9]+[.][0-9]+[.]') || (self.spec.version.split('.')[0] == oldSelf.spec.version.split('.')[0] && int(self.spec.version.split('.')[1]) <= int(oldSelf.spec.version.split('.')[1]) + 1)"
        ).message("spec.version may not skip a minor release: upgrade one minor version at a time").field_path(".spec.version").reason(Reason::FieldValueForbidden)
}

/// Embedded NATS cannot be rescaled (upstream webhook rule).
pub fn nats_replicas_rule() -> Rule {
    Rule::new(
            "self.spec.storage.type != 'nats' || oldSelf.spec.storage.type != 'nats' || self.spec.replicas == oldSelf.spec.replicas"
        ).message("spec.replicas cannot be changed when spec.storage.type is nats").field_path(".spec.replicas").reason(Reason::FieldValueForbidden)
}

/// The StatefulSets `kmc-<name>` and `kmc-<name>-etcd` stamp their pods with the label
/// `controller-revision-hash=<statefulset>-<hash>`, which must fit 63 characters; a longer name is
/// admitted upstream and then no pod can ever be created. Bounds: `names::MAX_CONTROL_PLANE_NAME*`.
pub fn name_length_rule() -> Rule {
    Rule::new(
            "self.metadata.name.size() <= 43 || (self.metadata.name.size() <= 48 && has(self.spec.storage) && has(self.spec.storage.type) && self.spec.storage.type != 'etcd')"
        ).message("metadata.name may have at most 48 characters, 43 with etcd storage: the StatefulSet name kmc-<name>[-etcd] plus its revision hash must fit a 63-character label").reason(Reason::FieldValueInvalid)
}

// ---------------------------------------------------------------------------------------------
// Cluster (and the shared spec)
// ---------------------------------------------------------------------------------------------

/// Desired state of a k0s control plane hosted as pods: the spec of a standalone `Cluster`, and
/// (flattened) of a `K0smotronControlPlane`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "k0smotron.io",
    version = "v1beta2",
    kind = "Cluster",
    plural = "clusters",
    singular = "cluster",
    shortname = "kmc",
    namespaced,
    status = "ClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Cluster is a k0s control plane hosted as pods in this cluster, without Cluster API (k0smotron's standalone mode).",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        description = "Number of control-plane pods",
        json_path = ".status.replicas"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        description = "Number of ready control-plane pods",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        description = "The hosted API server answers",
        json_path = ".status.conditions[?(@.type=='Available')].status"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        description = "k0s version",
        json_path = ".spec.version"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        description = "Time since creation",
        json_path = ".metadata.creationTimestamp"
    ),
    // Served by the control-plane provider and shipped with its components; no CAPI contract.
    label("cluster.x-k8s.io/provider", "control-plane-k0smotron"),
    validation = version_skew_rule(),
    validation = nats_replicas_rule(),
    validation = name_length_rule()
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.ingress) || !self.version.startsWith('v1.34.0')",
        "message": "ingress needs k0s v1.34.1 or newer on the 1.34 line",
        "fieldPath": ".ingress"
    }
]))]
pub struct ClusterSpec {
    /// Run the control plane in another ("hosting") cluster instead of the management cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_host_cluster: Option<RemoteHostClusterSpec>,

    /// Number of k0s controller replicas. More than one needs a shared datastore (etcd, the
    /// default, or kine with an external database); 3 is recommended for HA.
    #[serde(default = "default_replicas")]
    // controlplane-provider's `validate::MAX_REPLICAS` repeats this bound.
    #[schemars(range(min = 0, max = 32))]
    pub replicas: i32,

    /// k0s image repository, without a tag; the tag comes from `version`.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// ServiceAccount of the k0s and etcd pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,

    /// k0s version, e.g. `v1.35.7+k0s.0` (the image-tag spelling `v1.35.7-k0s.0` and a bare
    /// `v1.35.7`, meaning `k0s.0`, are accepted too). Defaults to the provider's default version at
    /// creation; a change may not skip a minor release.
    #[serde(default = "default_version")]
    #[schemars(
        regex(pattern = r"^v[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)\.[0-9]+)?([-+]k0s\.[0-9]+)?$"),
        length(max = 64)
    )]
    pub version: String,

    /// k0s `spec.api.externalAddress`: the address clients and workers use to reach the API
    /// server. For LoadBalancer and NodePort Services it is discovered when empty; the discovered
    /// value is reported in `status.externalAddress` and never written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,

    /// Expose the API server and konnectivity through an Ingress (TLS passthrough, by SNI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// The Service exposing the API server and konnectivity.
    #[serde(default)]
    pub service: ServiceSpec,

    /// Volume for `/var/lib/k0s` of the controller pods.
    #[serde(default)]
    pub persistence: PersistenceSpec,

    /// Datastore of the control plane.
    #[serde(default)]
    pub storage: StorageSpec,

    /// k0s `ClusterConfig` (`apiVersion: k0s.k0sproject.io/v1beta1`) merged into the generated one;
    /// fields the provider manages (API address, ports, storage, SANs) are overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub k0s_config: Option<serde_json::Value>,

    /// Pre-existing certificate Secrets to use. When empty, the provider generates the CAPI
    /// certificate Secrets (`<cluster>-ca`, `-proxy`, `-sa`, `-etcd`) and reports them in
    /// `status.certificateRefs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub certificate_refs: Vec<CertificateRef>,

    /// Volumes holding manifests k0s deploys into the workload cluster; each is mounted
    /// read-only at `/var/lib/k0s/manifests/<volume name>` and becomes one k0s stack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = crate::schema::strip_nested_descriptions)]
    pub manifests: Vec<Volume>,

    /// Extra volumes mounted into the controller pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,

    /// Extra `k0s controller` flags, each a single string such as `--some-flag=value`; they
    /// override the provider's defaults of the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub control_plane_flags: Vec<String>,

    /// Prometheus sidecar exposing control-plane component metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,

    /// Topology spread constraints for the k0s and etcd pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = crate::schema::strip_nested_descriptions)]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// Compute resources of the k0s controller container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::strip_nested_descriptions)]
    pub resources: Option<ResourceRequirements>,

    /// Labels and annotations for the `<cluster>-kubeconfig` Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_metadata: Option<ObjectLabels>,

    /// Patches applied to generated objects after generation, matched by kind and the
    /// `app.kubernetes.io/component` label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub patches: Vec<ComponentPatch>,
}

pub(crate) fn default_replicas() -> i32 {
    1
}

pub(crate) fn default_image() -> String {
    names::DEFAULT_K0S_IMAGE.to_owned()
}

fn default_version() -> String {
    names::DEFAULT_K0S_VERSION.to_owned()
}

/// The spec the API server produces from `spec: {}` (every schema default applied).
impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            remote_host_cluster: None,
            replicas: default_replicas(),
            image: default_image(),
            service_account: None,
            version: default_version(),
            external_address: None,
            ingress: None,
            service: ServiceSpec::default(),
            persistence: PersistenceSpec::default(),
            storage: StorageSpec::default(),
            k0s_config: None,
            certificate_refs: Vec::new(),
            manifests: Vec::new(),
            mounts: Vec::new(),
            control_plane_flags: Vec::new(),
            monitoring: None,
            topology_spread_constraints: Vec::new(),
            resources: None,
            kubeconfig_secret_metadata: None,
            patches: Vec::new(),
        }
    }
}

/// Where to run the control plane when it is not the management cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteHostClusterSpec {
    /// Secret in the management cluster holding a kubeconfig of the hosting cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_ref: Option<KubeconfigRef>,
}

/// A key of a Secret holding a kubeconfig.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Key in the Secret holding the kubeconfig.
    #[serde(default = "default_kubeconfig_key")]
    pub key: String,
}

fn default_kubeconfig_key() -> String {
    names::SECRET_VALUE_KEY.to_owned()
}

/// Exposure through an Ingress controller with TLS passthrough.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Create the Ingress object (true) or leave it to the user (false).
    #[serde(default = "default_true")]
    pub deploy: bool,
    /// Port of the ingress controller.
    #[serde(default = "default_ingress_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
    /// Hostname routed to the API server.
    #[schemars(length(min = 1, max = 253))]
    pub api_host: String,
    /// Hostname routed to the konnectivity server.
    #[schemars(length(min = 1, max = 253))]
    pub konnectivity_host: String,
    /// `ingressClassName` of the Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Annotations added to the Ingress (e.g. to enable SSL passthrough).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

fn default_ingress_port() -> i64 {
    names::DEFAULT_INGRESS_PORT
}

/// Type of the Service exposing the control plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the management cluster only.
    #[default]
    ClusterIP,
    /// Reachable on every node's address at `apiPort` / `konnectivityPort`.
    NodePort,
    /// Reachable through a cloud load balancer.
    LoadBalancer,
}

/// The Service exposing the API server and konnectivity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(rename = "type", default)]
    pub type_: ServiceType,
    /// Kubernetes API port (container port, Service port and, for NodePort, node port).
    #[serde(default = "default_api_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub api_port: i32,
    /// konnectivity server port.
    #[serde(default = "default_konnectivity_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub konnectivity_port: i32,
}

pub(crate) fn default_api_port() -> i32 {
    names::DEFAULT_API_PORT
}

pub(crate) fn default_konnectivity_port() -> i32 {
    names::DEFAULT_KONNECTIVITY_PORT
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::ClusterIP,
            api_port: default_api_port(),
            konnectivity_port: default_konnectivity_port(),
        }
    }
}

/// Kind of volume for `/var/lib/k0s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PersistenceType {
    /// Ephemeral; state is lost when a pod is rescheduled.
    #[default]
    #[serde(rename = "emptyDir")]
    EmptyDir,
    /// A directory on the node (`persistence.hostPath`).
    #[serde(rename = "hostPath")]
    HostPath,
    /// A PersistentVolumeClaim per pod (`persistence.persistentVolumeClaim`).
    #[serde(rename = "pvc")]
    Pvc,
}

/// Volume for `/var/lib/k0s`.
// Upstream's enum marker on `type` is malformed, so upstream enforces nothing; we enforce the
// enum it meant, and also require the field each type needs (see docs/deviations.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'pvc' || has(self.persistentVolumeClaim)",
        "message": "persistentVolumeClaim is required when type is pvc",
        "fieldPath": ".persistentVolumeClaim"
    },
    {
        "rule": "self.type != 'hostPath' || (has(self.hostPath) && self.hostPath != '')",
        "message": "hostPath is required when type is hostPath",
        "fieldPath": ".hostPath"
    }
]))]
pub struct PersistenceSpec {
    /// Volume type: `emptyDir`, `hostPath` or `pvc`.
    #[serde(rename = "type", default)]
    pub type_: PersistenceType,
    /// Claim template used verbatim when `type` is `pvc`; its name defaults to `kmc-<cluster>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimTemplate>,
    /// Delete the claims when the control plane is deleted.
    #[serde(rename = "autoDeletePVCs", default)]
    pub auto_delete_pvcs: bool,
    /// Node directory used when `type` is `hostPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
}

/// A PersistentVolumeClaim as written by the user, used as a StatefulSet claim template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimTemplate {
    /// API version (ignored; `v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind (ignored; `PersistentVolumeClaim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Claim metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ClaimMetadata>,
    /// Claim spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::strip_nested_descriptions)]
    pub spec: Option<PersistentVolumeClaimSpec>,
    /// Ignored; accepted because upstream's type has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::strip_nested_descriptions)]
    pub status: Option<PersistentVolumeClaimStatus>,
}

/// The metadata fields a claim template may carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMetadata {
    /// Claim name prefix; defaults to `kmc-<cluster>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ignored (claims live in the control plane's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Claim labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Claim annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Claim finalizers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// Datastore kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum StorageType {
    /// A managed etcd StatefulSet next to the control plane.
    #[default]
    #[serde(rename = "etcd")]
    Etcd,
    /// kine, backed by the database in `storage.kine`.
    #[serde(rename = "kine")]
    Kine,
    /// Embedded NATS JetStream (experimental; replicas cannot change after creation).
    #[serde(rename = "nats")]
    Nats,
}

/// Datastore of the control plane.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Datastore kind: `etcd`, `kine` or `nats`.
    #[serde(rename = "type", default)]
    pub type_: StorageType,
    /// kine datasource, used when `type` is `kine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kine: Option<KineSpec>,
    /// Managed etcd, used when `type` is `etcd`.
    #[serde(default)]
    pub etcd: EtcdSpec,
    /// Embedded NATS, used when `type` is `nats`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsSpec>,
}

/// kine datasource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KineSpec {
    /// kine datasource URL (DSN), e.g. `postgres://...` or `nats://...`.
    #[serde(
        rename = "dataSourceURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub data_source_url: Option<String>,
    /// Secret whose key `K0SMOTRON_KINE_DATASOURCE_URL` holds the datasource URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source_secret_name: Option<String>,
}

/// Managed etcd.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSpec {
    /// etcd image.
    #[serde(default = "default_etcd_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// Extra etcd flags, appended to the generated command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// etcd data volume.
    #[serde(default)]
    pub persistence: StoragePersistenceSpec,
    /// Delete the etcd claims when the control plane is deleted.
    #[serde(rename = "autoDeletePVCs", default)]
    pub auto_delete_pvcs: bool,
    /// Periodic defragmentation CronJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defrag_job: Option<DefragJobSpec>,
    /// Compute resources of the etcd container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::strip_nested_descriptions)]
    pub resources: Option<ResourceRequirements>,
}

fn default_etcd_image() -> String {
    names::DEFAULT_ETCD_IMAGE.to_owned()
}

impl Default for EtcdSpec {
    fn default() -> Self {
        Self {
            image: default_etcd_image(),
            args: Vec::new(),
            persistence: StoragePersistenceSpec::default(),
            auto_delete_pvcs: false,
            defrag_job: None,
            resources: None,
        }
    }
}

/// A data volume of a datastore.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoragePersistenceSpec {
    /// StorageClass of the claim; the cluster default when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Size of the claim.
    // kube marks int-or-string fields nullable, so the API server keeps an explicit `null`;
    // read it as the default instead of failing to deserialise the object.
    #[serde(
        default = "default_storage_size",
        deserialize_with = "null_as_default_storage_size"
    )]
    pub size: Quantity,
}

fn default_storage_size() -> Quantity {
    Quantity(names::DEFAULT_STORAGE_SIZE.to_owned())
}

/// Reads an explicit `null` size (the schema allows it, see above) as the default size.
fn null_as_default_storage_size<'de, D>(deserializer: D) -> Result<Quantity, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<Quantity>::deserialize(deserializer)?.unwrap_or_else(default_storage_size))
}

impl Default for StoragePersistenceSpec {
    fn default() -> Self {
        Self {
            storage_class: None,
            size: default_storage_size(),
        }
    }
}

/// etcd defragmentation CronJob (etcd-defrag).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefragJobSpec {
    /// Create the CronJob.
    #[serde(default)]
    pub enabled: bool,
    /// Cron schedule.
    #[serde(default = "default_defrag_schedule")]
    pub schedule: String,
    /// etcd-defrag `--defrag-rule` deciding whether to defragment.
    #[serde(default = "default_defrag_rule")]
    pub rule: String,
    /// etcd-defrag image.
    #[serde(default = "default_defrag_image")]
    pub image: String,
}

fn default_defrag_schedule() -> String {
    names::DEFAULT_ETCD_DEFRAG_SCHEDULE.to_owned()
}

fn default_defrag_rule() -> String {
    names::DEFAULT_ETCD_DEFRAG_RULE.to_owned()
}

fn default_defrag_image() -> String {
    names::DEFAULT_ETCD_DEFRAG_IMAGE.to_owned()
}

/// Embedded NATS JetStream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsSpec {
    /// NATS data volume.
    #[serde(default)]
    pub persistence: StoragePersistenceSpec,
}

/// Which certificate a [`CertificateRef`] provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CertificateType {
    /// Cluster CA.
    #[serde(rename = "ca")]
    Ca,
    /// Service-account signing key pair.
    #[serde(rename = "sa")]
    Sa,
    /// Front-proxy CA.
    #[serde(rename = "proxy")]
    Proxy,
    /// etcd CA.
    #[serde(rename = "etcd")]
    Etcd,
    /// API server client certificate for etcd.
    #[serde(rename = "apiserver-etcd-client")]
    ApiserverEtcdClient,
    /// etcd peer certificate.
    #[serde(rename = "etcd-peer")]
    EtcdPeer,
    /// etcd server certificate.
    #[serde(rename = "etcd-server")]
    EtcdServer,
}

impl CertificateType {
    /// The type as it is written in `spec.certificateRefs[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ca => "ca",
            Self::Sa => "sa",
            Self::Proxy => "proxy",
            Self::Etcd => "etcd",
            Self::ApiserverEtcdClient => "apiserver-etcd-client",
            Self::EtcdPeer => "etcd-peer",
            Self::EtcdServer => "etcd-server",
        }
    }
}

/// A certificate Secret (CAPI format: `tls.crt`, `tls.key`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRef {
    /// Which certificate the Secret holds.
    #[serde(rename = "type")]
    pub type_: CertificateType,
    /// Secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A volume mounted into the controller pods: a path, a read-only flag and, inline, any
/// Kubernetes volume source (`configMap`, `secret`, `hostPath`, `persistentVolumeClaim`, ...).
///
/// The volume source is kept as the JSON the user wrote, because k8s-openapi has no
/// `VolumeSource` type (its `Volume` inlines the sources next to `name`); [`Mount::to_volume`]
/// turns it into a typed [`Volume`]. The schema is `Volume`'s without `name`, so the API server
/// validates the source fully.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// Mount path in the container.
    pub path: String,
    /// Mount read-only. ConfigMap and Secret volumes are always mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// The inline volume source fields (everything but `path` and `readOnly`).
    #[serde(flatten)]
    pub volume_source: serde_json::Map<String, serde_json::Value>,
}

impl Mount {
    /// The pod volume for this mount, named `name`.
    pub fn to_volume(&self, name: &str) -> Result<Volume, serde_json::Error> {
        let mut volume = self.volume_source.clone();
        volume.insert(
            "name".to_owned(),
            serde_json::Value::String(name.to_owned()),
        );
        serde_json::from_value(serde_json::Value::Object(volume))
    }
}

impl JsonSchema for Mount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Mount".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // `Volume::json_schema` (not `subschema_for`) so the properties are inline whatever the
        // generator settings.
        let volume = <Volume as JsonSchema>::json_schema(generator);
        let mut properties = volume
            .get("properties")
            .and_then(serde_json::Value::as_object)
            .cloned()
            .unwrap_or_default();
        properties.remove("name");
        for property in properties.values_mut() {
            let mut schema = schemars::Schema::try_from(property.take()).unwrap_or_default();
            crate::schema::strip_nested_descriptions(&mut schema);
            if let Some(object) = schema.as_object_mut() {
                object.remove("description");
            }
            *property = schema.to_value();
        }
        properties.insert(
            "path".to_owned(),
            serde_json::json!({
                "description": "Mount path in the container.",
                "type": "string",
                "minLength": 1
            }),
        );
        properties.insert(
            "readOnly".to_owned(),
            serde_json::json!({
                "description": "Mount read-only. ConfigMap and Secret volumes are always mounted read-only.",
                "type": "boolean",
                "default": false
            }),
        );
        schemars::json_schema!({
            "description": "A volume mounted into the controller pods: a path, a read-only flag and, inline, any Kubernetes volume source.",
            "type": "object",
            "properties": properties,
            "required": ["path"]
        })
    }
}

/// Prometheus sidecar configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Run the Prometheus and nginx sidecars: each control-plane pod serves its kube-apiserver's,
    /// kube-scheduler's, kube-controller-manager's (and etcd's) metrics on port 8090, path
    /// /metrics; Service kmc-<name>-metrics, port "metrics", selects them.
    #[serde(default)]
    pub enabled: bool,
    /// Prometheus image of the monitoring-agent container (its command is `prometheus`, from
    /// PATH).
    #[serde(default = "default_prometheus_image")]
    pub prometheus_image: String,
    /// nginx image of the monitoring-proxy container (started with the image's own command).
    #[serde(default = "default_proxy_image")]
    pub proxy_image: String,
}

fn default_prometheus_image() -> String {
    names::DEFAULT_PROMETHEUS_IMAGE.to_owned()
}

fn default_proxy_image() -> String {
    names::DEFAULT_MONITORING_PROXY_IMAGE.to_owned()
}

/// A patch applied to a generated object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPatch {
    /// Which generated object to patch.
    pub target: PatchTarget,
    /// The patch.
    pub patch: PatchSpec,
}

/// Selects generated objects by kind and `app.kubernetes.io/component` label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchTarget {
    /// Kind of the target, e.g. `StatefulSet`, `Service`, `ConfigMap`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Value of the target's `app.kubernetes.io/component` label.
    #[schemars(length(min = 1, max = 63))]
    pub component: String,
}

/// Patch format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PatchType {
    /// RFC 6902 JSON patch (a list of operations).
    #[serde(rename = "json")]
    Json,
    /// Kubernetes strategic merge patch.
    #[serde(rename = "strategic")]
    Strategic,
    /// RFC 7386 JSON merge patch.
    #[serde(rename = "merge")]
    Merge,
}

/// A patch and its format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchSpec {
    /// Patch format: `json`, `strategic` or `merge`.
    #[serde(rename = "type")]
    pub type_: PatchType,
    /// The patch, as JSON or YAML.
    #[schemars(length(min = 1))]
    pub content: String,
}

/// Observed state of a standalone `Cluster`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Number of control-plane pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Number of ready control-plane pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Number of control-plane pods running the current spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Label selector of the control-plane pods, in string form (scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Conditions: `Available`, `CertificatesAvailable`, `Paused`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The external address in use: `spec.externalAddress`, or the one discovered from the
    /// LoadBalancer or NodePort Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
    /// True once the hosted API server has answered; never reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_initialized: Option<bool>,
    /// Hash of the cluster-wide part of the k0s config that the hosted cluster's API server last
    /// accepted into `clusterconfigs.k0s.k0sproject.io` `kube-system/k0s` (dynamic config). The
    /// provider pushes the config again only when its hash differs from this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_config_hash: Option<String>,
    /// Status fields of older API versions that this version has no place for; clients of those
    /// versions read them through the conversion webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<ClusterDeprecatedStatus>,
}

/// `status.deprecated` of a standalone `Cluster` (upstream's layout).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDeprecatedStatus {
    /// The v1beta1-only status fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v1beta1: Option<ClusterV1beta1Status>,
}

/// The v1beta1 status fields of a standalone `Cluster` that v1beta2 has no place for; a v1beta1
/// client reads them at the top of `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterV1beta1Status {
    /// Outcome of the last reconcile, in words: `Reconciliation successful`, or
    /// `Failed reconciling <step>, <message>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reconciliation_status: String,
    /// Every control-plane replica asked for in `spec.replicas` is ready.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ready: bool,
}

// ---------------------------------------------------------------------------------------------
// JoinTokenRequest
// ---------------------------------------------------------------------------------------------

/// A request for a k0s join token for a standalone `Cluster` of the same namespace.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "k0smotron.io",
    version = "v1beta2",
    kind = "JoinTokenRequest",
    plural = "jointokenrequests",
    singular = "jointokenrequest",
    shortname = "jtr",
    namespaced,
    status = "JoinTokenRequestStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "JoinTokenRequest asks for a k0s join token for a standalone Cluster; the token lands in a Secret named after the request.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        description = "The Cluster the token joins",
        json_path = ".spec.clusterName"
    ),
    printcolumn(
        name = "Role",
        type_ = "string",
        description = "worker or controller",
        json_path = ".spec.role"
    ),
    printcolumn(
        name = "Token",
        type_ = "string",
        description = "ID of the bootstrap token",
        json_path = ".status.tokenID"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        description = "Time since creation",
        json_path = ".metadata.creationTimestamp"
    ),
    label("cluster.x-k8s.io/provider", "control-plane-k0smotron"),
    validation = Rule::new("self.spec == oldSelf.spec").message("spec is immutable: delete the request and create a new one").reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenRequestSpec {
    /// Name of the `Cluster` (`k0smotron.io`) in this namespace the token joins.
    #[schemars(length(min = 1, max = 63))]
    pub cluster_name: String,
    /// How long the token is valid, in Go duration syntax (`1.5h`, `2h45m`, `300ms`); `0s`, the
    /// default, means it never expires.
    #[serde(default = "default_expiry")]
    #[schemars(
        regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+)$"),
        length(max = 64)
    )]
    pub expiry: String,
    /// Role of the node that joins with the token.
    #[serde(default)]
    pub role: JoinTokenRole,
}

pub(crate) fn default_expiry() -> String {
    "0s".to_owned()
}

/// Role of the node a join token is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum JoinTokenRole {
    /// A worker (`k0s worker --token-file`).
    #[default]
    Worker,
    /// A controller (`k0s controller --token-file`).
    Controller,
}

impl JoinTokenRole {
    /// The role as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Worker => "worker",
            Self::Controller => "controller",
        }
    }
}

/// Observed state of a `JoinTokenRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenRequestStatus {
    /// ID of the bootstrap token in the hosted cluster (`bootstrap-token-<id>`).
    #[serde(default, rename = "tokenID", skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Conditions: `JoinTokenSecretCreated` (reasons `Created`, `InternalError`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Status fields of older API versions that this version has no place for; clients of those
    /// versions read them through the conversion webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<JoinTokenRequestDeprecatedStatus>,
}

/// `status.deprecated` of a `JoinTokenRequest` (upstream's layout).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenRequestDeprecatedStatus {
    /// The v1beta1-only status fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v1beta1: Option<JoinTokenRequestV1beta1Status>,
}

/// The v1beta1 status fields of a `JoinTokenRequest` that v1beta2 has no place for; a v1beta1
/// client reads them at the top of `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenRequestV1beta1Status {
    /// Outcome of the last reconcile, in words: `Reconciliation successful`, or why no token was
    /// made.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reconciliation_status: String,
    /// uid of the `Cluster` the token joins.
    #[serde(
        default,
        rename = "clusterUID",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_uid: Option<String>,
}

impl Default for JoinTokenRequestSpec {
    fn default() -> Self {
        Self {
            cluster_name: String::new(),
            expiry: default_expiry(),
            role: JoinTokenRole::default(),
        }
    }
}
