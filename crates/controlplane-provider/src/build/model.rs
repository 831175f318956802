//! The build step's model: what it reads ([`Facts`], everything the reconciler fetched) and what
//! it returns ([`DesiredState`], every object the apply step writes and what the status reports).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k0smotron_api::capi::{ApiEndpoint, ClusterNetwork};
use k0smotron_api::controlplane::v1beta2::CertificateRef;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::claims::ClaimExpansion;
use crate::control_plane::ControlPlane;
use crate::kubeconfig::RegenerateReason;
use crate::validate::FieldPolicy;

/// Everything the reconciler fetched for one control plane.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The control-plane object, of either kind.
    pub cp: ControlPlane,
    /// Name of the cluster the children are named after: the owning CAPI Cluster's, or the
    /// standalone Cluster's own.
    pub cluster_name: String,
    /// The CAPI Cluster says its control plane is initialized.
    pub cluster_initialized: bool,
    /// `Cluster.spec.clusterNetwork`.
    pub cluster_network: Option<ClusterNetwork>,
    /// The Secrets of [`super::secret_names`] that exist, by name.
    pub secrets: BTreeMap<String, Secret>,
    /// The live exposure Service of the current type.
    pub exposure_service: Option<Service>,
    /// Nodes (only fetched for NodePort without `spec.externalAddress`).
    pub nodes: Vec<Node>,
    /// The live k0s StatefulSet.
    pub statefulset: Option<StatefulSet>,
    /// The live etcd StatefulSet.
    pub etcd_statefulset: Option<StatefulSet>,
    /// The namespace's volume claims (only fetched when the spec asks for claims).
    pub claims: Vec<PersistentVolumeClaim>,
    /// The current time.
    pub now: Timestamp,
    /// The spec fields this installation allows (the provider's `--allow-*` flags).
    pub policy: FieldPolicy,
}

/// How to bring a StatefulSet to its desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum StatefulSetPlan {
    /// Apply the whole object (new, or its inputs changed).
    Apply(Box<StatefulSet>),
    /// Its claim templates (immutable) changed: delete it leaving the pods (orphan), then create
    /// it again; the pods are adopted by the new StatefulSet.
    Recreate(Box<StatefulSet>),
    /// Keep the pod template as it is; only set the replicas (and record the inputs hash when
    /// adopting a StatefulSet made by upstream k0smotron).
    ScaleOnly {
        /// StatefulSet name.
        name: String,
        /// Replicas.
        replicas: i32,
        /// Inputs hash to record, when adopting.
        record_inputs_hash: Option<String>,
    },
}

/// What to do with the cluster-wide part of the k0s config (`kube-system/k0s` in the hosted
/// cluster) once the hosted API answers.
#[derive(Debug, Clone, PartialEq)]
pub enum DynamicConfig {
    /// Server-side apply `object` when the hosted cluster does not hold `hash` already.
    Push {
        /// The `ClusterConfig` `kube-system/k0s`: the cluster-wide part of the config the pods
        /// start with (after `spec.patches`).
        object: serde_json::Value,
        /// Its hash, recorded in status once the hosted API server accepted it.
        hash: String,
    },
    /// `controlPlaneFlags` turn dynamic config off: k0s reads only its config file, so every
    /// config change restarts the pods and nothing is pushed.
    Disabled,
    /// A patch of the config ConfigMap left text that is not a YAML object: nothing can be split,
    /// so every change of it restarts the pods and nothing is pushed.
    Unreadable(String),
}

/// Everything the apply step writes, and what the status step reports.
#[derive(Debug, Clone)]
pub struct DesiredState {
    /// Controller owner reference every child carries.
    pub owner: OwnerReference,
    /// Certificate Secrets that do not exist yet: created (never overwriting).
    pub create_secrets: Vec<Secret>,
    /// Our own leaf-certificate Secrets due for renewal: replaced.
    pub renew_secrets: Vec<Secret>,
    /// The kubeconfig Secret (applied; `None` until the endpoint is known).
    pub kubeconfig: Option<Secret>,
    /// Why the kubeconfig is (re)generated this time, if it is.
    pub kubeconfig_regenerated: Option<RegenerateReason>,
    /// ConfigMaps.
    pub config_maps: Vec<ConfigMap>,
    /// Services.
    pub services: Vec<Service>,
    /// Exposure Services of other types, deleted if we own them.
    pub obsolete_services: Vec<String>,
    /// The Ingress `kmc-<cluster>` (`spec.ingress` with `deploy: true`).
    pub ingress: Option<Ingress>,
    /// Our Ingress, deleted if we own it, when the spec no longer asks for one.
    pub obsolete_ingress: Option<String>,
    /// The k0s StatefulSet (`None` while waiting).
    pub statefulset: Option<StatefulSetPlan>,
    /// The etcd StatefulSet (etcd storage only).
    pub etcd_statefulset: Option<StatefulSetPlan>,
    /// Existing volume claims of our StatefulSets to grow to their template's size.
    pub claim_expansions: Vec<ClaimExpansion>,
    /// CronJobs (etcd defragmentation).
    pub cron_jobs: Vec<CronJob>,
    /// CronJobs deleted if we own them (defragmentation disabled).
    pub obsolete_cron_jobs: Vec<String>,
    /// The endpoint; `None` while unknown.
    pub endpoint: Option<ApiEndpoint>,
    /// Whether the endpoint is ours to publish in `spec.controlPlaneEndpoint` (the user did not
    /// set one).
    pub publish_endpoint: bool,
    /// The external address in use.
    pub external_address: Option<String>,
    /// The certificates in use.
    pub certificate_refs: Vec<CertificateRef>,
    /// Why the StatefulSet is not built yet.
    pub waiting: Option<String>,
    /// A refused version change (the old version keeps running).
    pub version_blocked: Option<String>,
    /// User k0s config values the provider overrode.
    pub overridden: Vec<String>,
    /// Desired image tag of the k0s controller.
    pub desired_image_tag: String,
    /// Selector of the k0s pods.
    pub selector: BTreeMap<String, String>,
    /// The cluster-wide config to push into the hosted cluster.
    pub dynamic_config: DynamicConfig,
}
