//! `controlplane.cluster.x-k8s.io/v1beta2`: `K0smotronControlPlane` (k0s control planes hosted as
//! pods in the management cluster) and `K0smotronControlPlaneTemplate`.
//!
//! The spec is upstream k0smotron's v1beta2 `ClusterSpec` field for field ([`ClusterSpec`], shared
//! with the standalone `Cluster` of `k0smotron.io`), so upstream manifests apply unchanged, plus
//! the CAPI contract field `controlPlaneEndpoint`. Values the controller discovers (the external
//! address, the certificates in use) live in status, never in spec: the spec belongs to the user
//! and their GitOps tool. Upstream's validating webhook checks are expressed as OpenAPI
//! constraints and CEL rules, so bad input is refused at admission without a webhook.

use std::ops::{Deref, DerefMut};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{capi::ApiEndpoint, common::ObjectLabels};

pub use crate::k0smotron::v1beta2::{
    CertificateRef, CertificateType, ClaimMetadata, ClusterSpec, ComponentPatch, DefragJobSpec,
    EtcdSpec, IngressSpec, KineSpec, KubeconfigRef, MonitoringSpec, Mount, NatsSpec, PatchSpec,
    PatchTarget, PatchType, PersistenceSpec, PersistenceType, PersistentVolumeClaimTemplate,
    RemoteHostClusterSpec, ServiceSpec, ServiceType, StoragePersistenceSpec, StorageSpec,
    StorageType, VERSION_PATTERN,
};
use crate::k0smotron::v1beta2::{name_length_rule, nats_replicas_rule, version_skew_rule};

// ---------------------------------------------------------------------------------------------
// K0smotronControlPlane
// ---------------------------------------------------------------------------------------------

/// Desired state of a k0s control plane hosted as pods in the management cluster.
///
/// Same fields as upstream k0smotron's v1beta2 `ClusterSpec`, plus `controlPlaneEndpoint`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "K0smotronControlPlane",
    plural = "k0smotroncontrolplanes",
    singular = "k0smotroncontrolplane",
    namespaced,
    status = "K0smotronControlPlaneStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "cluster-api",
    doc = "K0smotronControlPlane is a Cluster API control plane whose k0s controllers run as pods in the management cluster.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        description = "Cluster",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        description = "Desired number of replicas",
        json_path = ".spec.replicas",
        priority = 10
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
        name = "UpToDate",
        type_ = "integer",
        description = "Number of up-to-date control-plane pods",
        json_path = ".status.upToDateReplicas"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        description = "Number of available control-plane pods",
        json_path = ".status.availableReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        description = "Time since creation",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        description = "k0s version",
        json_path = ".spec.version"
    ),
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    label("cluster.x-k8s.io/provider", "control-plane-k0smotron"),
    validation = version_skew_rule(),
    validation = nats_replicas_rule(),
    validation = name_length_rule()
)]
#[serde(rename_all = "camelCase")]
pub struct K0smotronControlPlaneSpec {
    /// Every field of the shared control-plane spec, at the top level of `spec`.
    #[serde(flatten)]
    pub cluster: ClusterSpec,

    /// CAPI contract: where the workload API server is reachable. Normally left empty: the
    /// provider publishes the endpoint on the CAPI `Cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<ApiEndpoint>,
}

/// `kcp.spec.replicas` and the like read the shared spec directly.
impl Deref for K0smotronControlPlaneSpec {
    type Target = ClusterSpec;

    fn deref(&self) -> &ClusterSpec {
        &self.cluster
    }
}

impl DerefMut for K0smotronControlPlaneSpec {
    fn deref_mut(&mut self) -> &mut ClusterSpec {
        &mut self.cluster
    }
}

/// The spec the API server produces from `spec: {}` (every schema default applied).
impl Default for K0smotronControlPlaneSpec {
    fn default() -> Self {
        Self {
            cluster: ClusterSpec::default(),
            control_plane_endpoint: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

/// Observed state of a `K0smotronControlPlane`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K0smotronControlPlaneStatus {
    /// CAPI contract: initialization milestones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<ControlPlaneInitialization>,
    /// CAPI contract: true, as the control plane has no Machines or Nodes in the workload cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_managed_control_plane: Option<bool>,
    /// CAPI contract (deprecated in CAPI 1.14, still read by 1.11–1.13): the lowest k0s version
    /// running, in `vX.Y.Z+k0s.N` form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// CAPI contract (1.14+): the k0s versions running and how many replicas run each, oldest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<StatusVersion>,
    /// Number of control-plane pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Number of ready control-plane pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Number of available control-plane pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Number of control-plane pods running the desired spec and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_date_replicas: Option<i32>,
    /// Label selector of the control-plane pods, in string form (scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Conditions: `Available`, `Paused`, `ScalingUp`, `ScalingDown`, `RollingOut`,
    /// `CertificatesAvailable`, ...
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
    /// The certificate Secrets in use: `spec.certificateRefs`, or the ones the provider generated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<CertificateRef>,
    /// Hash of the cluster-wide part of the k0s config that the hosted cluster's API server last
    /// accepted into `clusterconfigs.k0s.k0sproject.io` `kube-system/k0s` (dynamic config). The
    /// provider pushes the config again only when its hash differs from this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_config_hash: Option<String>,
}

/// `status.initialization` (CAPI v1beta2 contract).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneInitialization {
    /// True once the workload API server has answered; never reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_initialized: Option<bool>,
}

/// A version and how many replicas run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusVersion {
    /// k0s version, `vX.Y.Z+k0s.N`.
    pub version: String,
    /// Number of replicas running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

// ---------------------------------------------------------------------------------------------
// K0smotronControlPlaneTemplate
// ---------------------------------------------------------------------------------------------

/// Template for `K0smotronControlPlane` objects (used by ClusterClass).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "K0smotronControlPlaneTemplate",
    plural = "k0smotroncontrolplanetemplates",
    singular = "k0smotroncontrolplanetemplate",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    category = "cluster-api",
    doc = "K0smotronControlPlaneTemplate is a template for K0smotronControlPlane objects, used by ClusterClass.",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    label("cluster.x-k8s.io/provider", "control-plane-k0smotron")
)]
#[serde(rename_all = "camelCase")]
pub struct K0smotronControlPlaneTemplateSpec {
    /// The template.
    pub template: K0smotronControlPlaneTemplateResource,
}

/// `spec.template` of a `K0smotronControlPlaneTemplate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K0smotronControlPlaneTemplateResource {
    /// Labels and annotations of the created object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectLabels>,
    /// Spec of the created object.
    #[serde(default)]
    pub spec: K0smotronControlPlaneSpec,
}
