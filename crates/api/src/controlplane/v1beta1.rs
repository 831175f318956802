//! `controlplane.cluster.x-k8s.io/v1beta1`: `K0smotronControlPlane` and its template as upstream
//! k0smotron's v1beta1 Go types serialise them. Only the conversion to and from v1beta2 (the
//! stored version, [`crate::conversion`]) reads these types; the CRDs we install do not serve this
//! version yet.
//!
//! The spec is the v1beta1 [`ClusterSpec`] of `k0smotron.io`; the status is the CAPI v1beta1
//! contract's (`ready`, `initialized`, `updatedReplicas`, `unavailableReplicas`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::ObjectLabels;
pub use crate::k0smotron::v1beta1::{ClusterSpec, ServiceSpec};

/// Desired state of a hosted k0s control plane (v1beta1): the v1beta1 `ClusterSpec`.
// Clippy reads the printer columns' repeated `type_` as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "K0smotronControlPlane",
    plural = "k0smotroncontrolplanes",
    singular = "k0smotroncontrolplane",
    namespaced,
    status = "K0smotronControlPlaneStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "cluster-api",
    doc = "K0smotronControlPlane (v1beta1) is a Cluster API control plane whose k0s controllers run as pods in the management cluster.",
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
        name = "API Server Available",
        type_ = "boolean",
        description = "The workload API server answers",
        json_path = ".status.ready"
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
        name = "Updated",
        type_ = "integer",
        description = "Number of up-to-date control-plane pods",
        json_path = ".status.updatedReplicas"
    ),
    printcolumn(
        name = "Unavailable",
        type_ = "integer",
        description = "Number of unavailable control-plane pods",
        json_path = ".status.unavailableReplicas"
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
    label("cluster.x-k8s.io/v1beta1", "v1beta1"),
    label("cluster.x-k8s.io/provider", "control-plane-k0smotron")
)]
#[serde(rename_all = "camelCase")]
pub struct K0smotronControlPlaneSpec {
    /// Every field of the v1beta1 control-plane spec, at the top level of `spec`.
    #[serde(flatten)]
    pub cluster: ClusterSpec,
}

/// Observed state of a v1beta1 `K0smotronControlPlane` (CAPI v1beta1 contract). Upstream's Go
/// type serialises every field but `selector` and `conditions` even when zero, and so do we.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K0smotronControlPlaneStatus {
    /// The control plane is ready (v1beta2: `readyReplicas > 0`).
    #[serde(default)]
    pub ready: bool,
    /// The workload API server has answered once (v1beta2:
    /// `initialization.controlPlaneInitialized`).
    #[serde(default)]
    pub initialized: bool,
    /// Initialization milestones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<Initialization>,
    /// True, as the control plane has no Machines or Nodes in the workload cluster.
    #[serde(default)]
    pub external_managed_control_plane: bool,
    /// The lowest k0s version running.
    #[serde(default)]
    pub version: String,
    /// Number of control-plane pods.
    #[serde(default)]
    pub replicas: i32,
    /// Number of control-plane pods running the desired version (v1beta2: `upToDateReplicas`).
    #[serde(default)]
    pub updated_replicas: i32,
    /// Number of ready control-plane pods.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Number of control-plane pods that are not available (v1beta2: `replicas -
    /// availableReplicas`).
    #[serde(default)]
    pub unavailable_replicas: i32,
    /// Label selector of the control-plane pods, in string form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `status.initialization` (v1beta1: a plain bool, always serialised).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Initialization {
    /// The workload API server has answered once.
    #[serde(default)]
    pub control_plane_initialized: bool,
}

/// Template for v1beta1 `K0smotronControlPlane` objects.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "K0smotronControlPlaneTemplate",
    plural = "k0smotroncontrolplanetemplates",
    singular = "k0smotroncontrolplanetemplate",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    category = "cluster-api",
    doc = "K0smotronControlPlaneTemplate (v1beta1) is a template for K0smotronControlPlane objects.",
    label("cluster.x-k8s.io/v1beta1", "v1beta1")
)]
#[serde(rename_all = "camelCase")]
pub struct K0smotronControlPlaneTemplateSpec {
    /// The template.
    #[serde(default)]
    pub template: K0smotronControlPlaneTemplateResource,
}

/// `spec.template` of a v1beta1 `K0smotronControlPlaneTemplate`. Upstream's `metadata` is a whole
/// `ObjectMeta`; only labels and annotations mean anything in a template, and only they are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K0smotronControlPlaneTemplateResource {
    /// Labels and annotations of the created object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectLabels>,
    /// Spec of the created object.
    #[serde(default)]
    pub spec: ClusterSpec,
}
