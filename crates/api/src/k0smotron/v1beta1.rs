//! `k0smotron.io/v1beta1`: the deprecated first version of the standalone kinds, `Cluster` and
//! `JoinTokenRequest`, as upstream k0smotron's v1beta1 Go types serialise them. Only the
//! conversion to and from v1beta2 (the stored version, [`crate::conversion`]) reads these types;
//! no controller does, and the CRDs we install do not serve this version yet.
//!
//! Upstream's v1beta1 structs reuse most v1beta2 sub-structs (ingress, persistence, etcd,
//! mounts, monitoring, certificate references), and so do these. What differs from v1beta2:
//! `kubeconfigRef`, `kineDataSourceURL`, `kineDataSourceSecretName` and `etcd` sit at the top of
//! the spec, the flags field is spelled `controllerPlaneFlags`, the Service has four more fields,
//! and the status has `reconciliationStatus` and `ready`. A request names its cluster with
//! `clusterRef {name, namespace}`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, TopologySpreadConstraint, Volume};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::ObjectLabels;
// The defaults are v1beta2's: upstream's v1beta1 CRD has the same ones.
use crate::k0smotron::v1beta2::{
    CertificateRef, EtcdSpec, IngressSpec, JoinTokenRole, KubeconfigRef, MonitoringSpec, Mount,
    PersistenceSpec, ServiceType, default_api_port, default_expiry, default_image,
    default_konnectivity_port, default_replicas,
};

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

/// Desired state of a k0s control plane hosted as pods (v1beta1 layout); also the spec of a
/// v1beta1 `K0smotronControlPlane`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "k0smotron.io",
    version = "v1beta1",
    kind = "Cluster",
    plural = "clusters",
    singular = "cluster",
    shortname = "kmc",
    namespaced,
    status = "ClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    deprecated,
    doc = "Cluster (v1beta1, deprecated) is a k0s control plane hosted as pods in this cluster.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Secret holding a kubeconfig of the cluster that hosts the control plane (v1beta2:
    /// `remoteHostCluster.kubeconfigRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_ref: Option<KubeconfigRef>,
    /// Number of k0s controller replicas.
    #[serde(default = "default_replicas")]
    pub replicas: i32,
    /// k0s image repository, without a tag.
    #[serde(default = "default_image")]
    pub image: String,
    /// ServiceAccount of the k0s and etcd pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// k0s version; the provider picks one when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// k0s `spec.api.externalAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
    /// Exposure through an Ingress controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// The Service exposing the API server and konnectivity.
    #[serde(default)]
    pub service: ServiceSpec,
    /// Volume for `/var/lib/k0s` of the controller pods.
    #[serde(default)]
    pub persistence: PersistenceSpec,
    /// kine datasource URL; when this or `kineDataSourceSecretName` is set the datastore is kine
    /// (v1beta2: `storage.type: kine`, `storage.kine.dataSourceURL`).
    #[serde(
        rename = "kineDataSourceURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kine_data_source_url: Option<String>,
    /// Secret holding the kine datasource URL (v1beta2: `storage.kine.dataSourceSecretName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kine_data_source_secret_name: Option<String>,
    /// k0s `ClusterConfig` merged into the generated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub k0s_config: Option<serde_json::Value>,
    /// Pre-existing certificate Secrets to use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<CertificateRef>,
    /// Volumes holding manifests k0s deploys into the workload cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = crate::schema::strip_nested_descriptions)]
    pub manifests: Vec<Volume>,
    /// Extra volumes mounted into the controller pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Extra `k0s controller` flags (v1beta2: `controlPlaneFlags`; upstream's v1beta1 JSON name
    /// is spelled this way).
    #[serde(
        rename = "controllerPlaneFlags",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub control_plane_flags: Vec<String>,
    /// Prometheus sidecar configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,
    /// Managed etcd (v1beta2: `storage.etcd`).
    #[serde(default)]
    pub etcd: EtcdSpec,
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
}

/// The spec the API server produces from `spec: {}` (upstream's v1beta1 defaults applied).
impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            kubeconfig_ref: None,
            replicas: default_replicas(),
            image: default_image(),
            service_account: None,
            version: None,
            external_address: None,
            ingress: None,
            service: ServiceSpec::default(),
            persistence: PersistenceSpec::default(),
            kine_data_source_url: None,
            kine_data_source_secret_name: None,
            k0s_config: None,
            certificate_refs: Vec::new(),
            manifests: Vec::new(),
            mounts: Vec::new(),
            control_plane_flags: Vec::new(),
            monitoring: None,
            etcd: EtcdSpec::default(),
            topology_spread_constraints: Vec::new(),
            resources: None,
            kubeconfig_secret_metadata: None,
        }
    }
}

/// The Service exposing the control plane (v1beta1: four fields more than v1beta2's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(rename = "type", default)]
    pub type_: ServiceType,
    /// Kubernetes API port.
    #[serde(default = "default_api_port")]
    pub api_port: i32,
    /// konnectivity server port.
    #[serde(default = "default_konnectivity_port")]
    pub konnectivity_port: i32,
    /// Extra annotations of the Service (no v1beta2 field: kept in the annotation
    /// `k0smotron.io/conversion-dropped-service.annotations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Extra labels of the Service (kept in `k0smotron.io/conversion-dropped-service.labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Load balancer class of a LoadBalancer Service (kept in
    /// `k0smotron.io/conversion-dropped-service.loadBalancerClass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    /// External traffic policy, `Cluster` or `Local` (kept in
    /// `k0smotron.io/conversion-dropped-service.externalTrafficPolicy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::ClusterIP,
            api_port: default_api_port(),
            konnectivity_port: default_konnectivity_port(),
            annotations: None,
            labels: None,
            load_balancer_class: None,
            external_traffic_policy: None,
        }
    }
}

/// Observed state of a v1beta1 `Cluster`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Outcome of the last reconcile, in words (v1beta2: `status.deprecated.v1beta1`).
    #[serde(default)]
    pub reconciliation_status: String,
    /// The control plane is ready (v1beta2: `status.deprecated.v1beta1`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ready: bool,
    /// Number of control-plane pods.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replicas: i32,
    /// Label selector of the control-plane pods, in string form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// Go's `omitempty` on an integer.
pub(crate) fn is_zero(value: &i32) -> bool {
    *value == 0
}

// ---------------------------------------------------------------------------------------------
// JoinTokenRequest
// ---------------------------------------------------------------------------------------------

/// A request for a k0s join token (v1beta1: the cluster is named by reference, namespace
/// included).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "k0smotron.io",
    version = "v1beta1",
    kind = "JoinTokenRequest",
    plural = "jointokenrequests",
    singular = "jointokenrequest",
    shortname = "jtr",
    namespaced,
    status = "JoinTokenRequestStatus",
    derive = "PartialEq",
    derive = "Default",
    deprecated,
    doc = "JoinTokenRequest (v1beta1, deprecated) asks for a k0s join token for a standalone Cluster."
)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenRequestSpec {
    /// The `Cluster` the token joins (v1beta2: `clusterName`; the namespace is kept in the
    /// annotation `k0smotron.io/cluster-ref-namespace`).
    pub cluster_ref: ClusterRef,
    /// How long the token is valid, in Go duration syntax; `0s` means forever.
    #[serde(default = "default_expiry")]
    pub expiry: String,
    /// Role of the node that joins with the token.
    #[serde(default)]
    pub role: JoinTokenRole,
}

impl Default for JoinTokenRequestSpec {
    fn default() -> Self {
        Self {
            cluster_ref: ClusterRef::default(),
            expiry: default_expiry(),
            role: JoinTokenRole::default(),
        }
    }
}

/// A `Cluster` by name and namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Name of the `Cluster`.
    #[serde(default)]
    pub name: String,
    /// Namespace of the `Cluster`.
    #[serde(default)]
    pub namespace: String,
}

/// Observed state of a v1beta1 `JoinTokenRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenRequestStatus {
    /// Outcome of the last reconcile, in words (v1beta2: `status.deprecated.v1beta1`).
    #[serde(default)]
    pub reconciliation_status: String,
    /// ID of the bootstrap token in the hosted cluster.
    #[serde(default, rename = "tokenID", skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// uid of the `Cluster` the token joins (v1beta2: `status.deprecated.v1beta1`).
    #[serde(
        default,
        rename = "clusterUID",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_uid: Option<String>,
}
