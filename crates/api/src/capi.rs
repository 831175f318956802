//! The few Cluster API core types (`cluster.x-k8s.io/v1beta2`) the providers read: `Cluster`,
//! `Machine`, `MachinePool`, plus pause helpers. Hand-written subsets: unknown fields are
//! ignored on read, so they tolerate newer CAPI releases.
//!
//! These types must never be written back whole (no `replace`, no apply of a GET result): a
//! subset would drop every field it does not model. Patch only the fields you own. Their CRDs
//! belong to CAPI core; `schema = "disabled"` keeps them out of `crds::all()`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::PAUSED_ANNOTATION;

/// Where a control plane's API server can be reached (`host:port`). Same shape as CAPI's
/// `APIEndpoint`; also used by `K0smotronControlPlane.spec.controlPlaneEndpoint`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct ApiEndpoint {
    /// The hostname or IP address on which the API server is serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub host: Option<String>,
    /// The port on which the API server is serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

impl ApiEndpoint {
    /// True when both host and port are set (CAPI treats anything else as "not yet known").
    pub fn is_valid(&self) -> bool {
        self.host.as_deref().is_some_and(|h| !h.is_empty()) && self.port.is_some_and(|p| p > 0)
    }
}

/// A reference to an object of a contract-versioned kind (`apiGroup`, `kind`, `name`; same
/// namespace). CAPI v1beta2 `ContractVersionedObjectReference`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractVersionedObjectReference {
    /// API group of the referenced object, without version.
    #[serde(default)]
    pub api_group: String,
    /// Kind of the referenced object.
    #[serde(default)]
    pub kind: String,
    /// Name of the referenced object, in the referrer's namespace.
    #[serde(default)]
    pub name: String,
}

/// CIDR ranges of a network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRanges {
    /// The CIDR blocks.
    #[serde(default)]
    pub cidr_blocks: Vec<String>,
}

/// `Cluster.spec.clusterNetwork`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetwork {
    /// Pod network CIDRs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NetworkRanges>,
    /// Service network CIDRs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<NetworkRanges>,
    /// DNS domain of Services (e.g. `cluster.local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_domain: Option<String>,
    /// Port the API server binds to (CAPI default 6443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server_port: Option<i32>,
}

/// The subset of the CAPI `Cluster` spec the providers read.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "Cluster",
    plural = "clusters",
    namespaced,
    status = "ClusterStatus",
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Pauses reconciliation of the Cluster and everything belonging to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Where the workload cluster's API server is reachable (set by infra or control plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// Cluster network configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_network: Option<ClusterNetwork>,
    /// The control-plane object (e.g. our `K0smotronControlPlane`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_ref: Option<ContractVersionedObjectReference>,
    /// The infrastructure cluster object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_ref: Option<ContractVersionedObjectReference>,
}

/// `Cluster.status.initialization`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInitialization {
    /// The infrastructure provider has provisioned the cluster infrastructure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_provisioned: Option<bool>,
    /// The control plane has been initialized (workers may join).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_initialized: Option<bool>,
}

/// The subset of the CAPI `Cluster` status the providers read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Initialization milestones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<ClusterInitialization>,
    /// Cluster conditions (`ControlPlaneInitialized`, `Available`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Lifecycle phase (`Provisioning`, `Provisioned`, `Deleting`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

impl Cluster {
    /// True when `spec.paused` is set.
    pub fn spec_paused(&self) -> bool {
        self.spec.paused == Some(true)
    }

    /// True once `status.initialization.infrastructureProvisioned` is set.
    pub fn infrastructure_provisioned(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.initialization.as_ref())
            .and_then(|i| i.infrastructure_provisioned)
            == Some(true)
    }

    /// True once the control plane is initialized: `status.initialization.controlPlaneInitialized`
    /// or the `ControlPlaneInitialized` condition being True.
    pub fn control_plane_initialized(&self) -> bool {
        let Some(status) = self.status.as_ref() else {
            return false;
        };
        status
            .initialization
            .as_ref()
            .and_then(|i| i.control_plane_initialized)
            == Some(true)
            || status
                .conditions
                .iter()
                .any(|c| c.type_ == "ControlPlaneInitialized" && c.status == "True")
    }

    /// The control-plane endpoint, if it has both host and port.
    pub fn control_plane_endpoint(&self) -> Option<&ApiEndpoint> {
        self.spec
            .control_plane_endpoint
            .as_ref()
            .filter(|e| e.is_valid())
    }
}

/// True when the object's metadata carries the `cluster.x-k8s.io/paused` annotation (any value,
/// as CAPI checks only presence).
pub fn has_paused_annotation(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(PAUSED_ANNOTATION))
}

/// The CAPI pause rule: reconciliation of an object is paused when its Cluster has
/// `spec.paused: true` or the object itself carries the `cluster.x-k8s.io/paused` annotation.
pub fn is_paused(cluster: Option<&Cluster>, meta: &ObjectMeta) -> bool {
    cluster.is_some_and(Cluster::spec_paused) || has_paused_annotation(meta)
}

/// The Cluster name an object belongs to, from the `cluster.x-k8s.io/cluster-name` label.
pub fn cluster_name_label(meta: &ObjectMeta) -> Option<&str> {
    meta.labels
        .as_ref()
        .and_then(|l: &BTreeMap<String, String>| l.get(crate::names::CLUSTER_NAME_LABEL))
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// `Machine.spec.bootstrap`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    /// The bootstrap config object (e.g. our `K0sWorkerConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_ref: Option<ContractVersionedObjectReference>,
    /// Name of the Secret with the bootstrap data, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_secret_name: Option<String>,
}

/// The subset of the CAPI `Machine` spec the providers read.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "Machine",
    plural = "machines",
    namespaced,
    status = "MachineStatus",
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    /// Name of the Cluster this Machine belongs to.
    #[serde(default)]
    pub cluster_name: String,
    /// Desired Kubernetes version of the node (e.g. `v1.35.7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Bootstrap configuration reference and data.
    #[serde(default)]
    pub bootstrap: Bootstrap,
    /// The infrastructure machine object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_ref: Option<ContractVersionedObjectReference>,
    /// Provider ID of the node, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}

/// Reference to the workload-cluster Node of a Machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReference {
    /// Node name.
    #[serde(default)]
    pub name: String,
}

/// `Machine.status.initialization`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineInitialization {
    /// The infrastructure machine has been provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_provisioned: Option<bool>,
    /// The bootstrap data Secret has been created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_data_secret_created: Option<bool>,
}

/// The subset of the CAPI `Machine` status the providers read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatus {
    /// The workload-cluster Node, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ref: Option<NodeReference>,
    /// Lifecycle phase (`Pending`, `Provisioning`, `Running`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Initialization milestones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<MachineInitialization>,
    /// Machine conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `MachinePool.spec.template.spec`: the part of a Machine spec a pool stamps out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachinePoolMachineSpec {
    /// Name of the Cluster.
    #[serde(default)]
    pub cluster_name: String,
    /// Desired Kubernetes version of the pool's nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Bootstrap configuration reference and data.
    #[serde(default)]
    pub bootstrap: Bootstrap,
}

/// `MachinePool.spec.template`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachinePoolTemplate {
    /// The Machine spec of the pool's members.
    #[serde(default)]
    pub spec: MachinePoolMachineSpec,
}

/// The subset of the CAPI `MachinePool` spec the providers read (a MachinePool may own a
/// `K0sWorkerConfig` instead of a Machine).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "MachinePool",
    plural = "machinepools",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct MachinePoolSpec {
    /// Name of the Cluster.
    #[serde(default)]
    pub cluster_name: String,
    /// Desired number of machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Template of the pool's machines.
    #[serde(default)]
    pub template: MachinePoolTemplate,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_with_annotation(key: &str) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(BTreeMap::from([(key.to_owned(), String::new())])),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn pause_rule() {
        let mut cluster = Cluster::new("c", ClusterSpec::default());
        let plain = ObjectMeta::default();
        assert!(!is_paused(None, &plain));
        assert!(!is_paused(Some(&cluster), &plain));
        assert!(is_paused(None, &meta_with_annotation(PAUSED_ANNOTATION)));
        assert!(!is_paused(
            None,
            &meta_with_annotation("example.com/paused")
        ));
        cluster.spec.paused = Some(true);
        assert!(is_paused(Some(&cluster), &plain));
        cluster.spec.paused = Some(false);
        assert!(!is_paused(Some(&cluster), &plain));
    }

    #[test]
    fn reads_a_real_cluster_and_ignores_unknown_fields() -> Result<(), serde_json::Error> {
        let cluster: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": {"name": "demo", "namespace": "default"},
            "spec": {
                "clusterNetwork": {
                    "pods": {"cidrBlocks": ["10.244.0.0/16"]},
                    "services": {"cidrBlocks": ["10.96.0.0/12"]},
                    "serviceDomain": "cluster.local"
                },
                "controlPlaneEndpoint": {"host": "10.0.0.1", "port": 30443},
                "controlPlaneRef": {
                    "apiGroup": "controlplane.cluster.x-k8s.io",
                    "kind": "K0smotronControlPlane",
                    "name": "demo"
                },
                "topology": {"classRef": {"name": "some-class"}, "version": "v1.35.7"},
                "availabilityGates": [{"conditionType": "X"}]
            },
            "status": {
                "initialization": {"infrastructureProvisioned": true},
                "conditions": [{
                    "type": "ControlPlaneInitialized",
                    "status": "True",
                    "reason": "Initialized",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"
                }],
                "v1beta1": {"conditions": []}
            }
        }))?;
        assert!(cluster.infrastructure_provisioned());
        assert!(cluster.control_plane_initialized());
        assert_eq!(
            cluster.control_plane_endpoint().and_then(|e| e.port),
            Some(30443)
        );
        assert_eq!(
            cluster
                .spec
                .control_plane_ref
                .as_ref()
                .map(|r| r.kind.as_str()),
            Some("K0smotronControlPlane")
        );
        Ok(())
    }

    #[test]
    fn endpoint_needs_host_and_port() {
        let mut cluster = Cluster::new("c", ClusterSpec::default());
        cluster.spec.control_plane_endpoint = Some(ApiEndpoint {
            host: Some(String::new()),
            port: Some(6443),
        });
        assert!(cluster.control_plane_endpoint().is_none());
        cluster.spec.control_plane_endpoint = Some(ApiEndpoint {
            host: Some("h".into()),
            port: None,
        });
        assert!(cluster.control_plane_endpoint().is_none());
    }

    #[test]
    fn cluster_name_from_label() {
        let meta = ObjectMeta {
            labels: Some(BTreeMap::from([(
                crate::names::CLUSTER_NAME_LABEL.to_owned(),
                "demo".to_owned(),
            )])),
            ..ObjectMeta::default()
        };
        assert_eq!(cluster_name_label(&meta), Some("demo"));
        assert_eq!(cluster_name_label(&ObjectMeta::default()), None);
    }
}
