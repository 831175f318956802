//! The control-plane object a reconcile works for, whichever kind it is: a Cluster API
//! `K0smotronControlPlane` or a standalone `k0smotron.io` `Cluster`. [`ControlPlane`] is all the
//! pure stages (validate, build) read of it, so both kinds go through one pipeline and produce the
//! same children for the same spec; only the owner reference on them differs.
//!
//! No I/O here, and no CAPI object: what CAPI adds (the owner Cluster's network and
//! initialization) reaches the build through `Facts`.

use std::fmt::Debug;

use k0smotron_api::capi::ApiEndpoint;
use k0smotron_api::controlplane::v1beta2::{
    ControlPlaneInitialization, K0smotronControlPlane, K0smotronControlPlaneStatus,
};
use k0smotron_api::k0smotron::v1beta2::{Cluster, ClusterSpec, ClusterStatus};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use provider_runtime::apply::{ApplyError, controller_owner_ref};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::v1beta1_status::{self, Reconciliation};

/// Which kind of object a [`ControlPlane`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `K0smotronControlPlane` (`controlplane.cluster.x-k8s.io`), driven by a CAPI Cluster.
    Capi,
    /// `Cluster` (`k0smotron.io`), standalone.
    Standalone,
}

/// What the pipeline reads of a control-plane object.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlPlane {
    /// The kind it was read from.
    pub kind: Kind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// The uid of every child's controller: `metadata.uid`, or the root owner's in the hosting
    /// cluster (see [`ControlPlane::hosted_by`]).
    pub uid: String,
    /// The controller owner reference every child carries.
    pub owner: OwnerReference,
    /// The owner reference to the object itself: what stays in the management cluster (the
    /// `<cluster>-kubeconfig` Secret) carries it. Equal to `owner` unless remote.
    pub object_owner: OwnerReference,
    /// The shared spec.
    pub spec: ClusterSpec,
    /// `spec.controlPlaneEndpoint` as the user set it (CAPI kind only): `None` when empty or when
    /// the provider published it itself, so the endpoint can follow the address.
    pub user_endpoint: Option<ApiEndpoint>,
    /// `status.externalAddress` of the last reconcile: a discovered address stays until a better
    /// one is known.
    pub previous_address: Option<String>,
    /// The object's own status says its control plane was initialized (the hosted API answered).
    pub initialized: bool,
}

/// A control-plane object that cannot be reconciled yet.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// A field the API server always sets is missing (an object not read from the server).
    #[error("the object has no {0}")]
    Incomplete(&'static str),
    /// Its owner reference cannot be built.
    #[error(transparent)]
    Owner(#[from] ApplyError),
}

fn identity<K>(obj: &K) -> Result<(String, String, String, OwnerReference), ControlPlaneError>
where
    K: Resource<DynamicType = ()>,
{
    let namespace = obj
        .namespace()
        .ok_or(ControlPlaneError::Incomplete("namespace"))?;
    let uid = obj.uid().ok_or(ControlPlaneError::Incomplete("uid"))?;
    Ok((obj.name_any(), namespace, uid, controller_owner_ref(obj)?))
}

impl ControlPlane {
    /// From a `K0smotronControlPlane`. `endpoint_is_ours`: the provider published
    /// `spec.controlPlaneEndpoint` itself (then it is not the user's choice).
    pub fn from_kcp(
        kcp: &K0smotronControlPlane,
        endpoint_is_ours: bool,
    ) -> Result<Self, ControlPlaneError> {
        let (name, namespace, uid, owner) = identity(kcp)?;
        let status = kcp.status.as_ref();
        Ok(Self {
            kind: Kind::Capi,
            name,
            namespace,
            uid,
            object_owner: owner.clone(),
            owner,
            spec: kcp.spec.cluster.clone(),
            user_endpoint: if endpoint_is_ours {
                None
            } else {
                kcp.spec
                    .control_plane_endpoint
                    .clone()
                    .filter(ApiEndpoint::is_valid)
            },
            previous_address: status.and_then(|s| s.external_address.clone()),
            initialized: status
                .and_then(|s| s.initialization.as_ref())
                .and_then(|i| i.control_plane_initialized)
                == Some(true),
        })
    }

    /// From a standalone `Cluster`.
    pub fn from_cluster(cluster: &Cluster) -> Result<Self, ControlPlaneError> {
        let (name, namespace, uid, owner) = identity(cluster)?;
        let status = cluster.status.as_ref();
        Ok(Self {
            kind: Kind::Standalone,
            name,
            namespace,
            uid,
            object_owner: owner.clone(),
            owner,
            spec: cluster.spec.clone(),
            user_endpoint: None,
            previous_address: status.and_then(|s| s.external_address.clone()),
            initialized: status.and_then(|s| s.control_plane_initialized) == Some(true),
        })
    }
}

impl ControlPlane {
    /// The control plane with its children hosted in another cluster (`spec.remoteHostCluster`),
    /// controlled there by `root_owner` (the `<cluster>-root-owner` ConfigMap).
    pub(crate) fn hosted_by(mut self, root_owner: OwnerReference) -> Self {
        self.uid = root_owner.uid.clone();
        self.owner = root_owner;
        self
    }
}

/// A kind of control-plane object the pipeline serves: how its status maps to the one status the
/// pipeline computes (the `K0smotronControlPlane` form, a superset), so both kinds report the
/// same conditions.
pub trait ControlPlaneObject:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The kind's own status type.
    type Status: Serialize + PartialEq + Debug;

    /// The stored status, in the common form (what the status stage starts from).
    fn common_status(&self) -> K0smotronControlPlaneStatus;

    /// `st` in the kind's own form, for a reconcile that ended as `reconciliation` says.
    fn own_status(
        &self,
        st: &K0smotronControlPlaneStatus,
        reconciliation: Reconciliation<'_>,
    ) -> Self::Status;

    /// The stored status in the kind's own form.
    fn stored_status(&self) -> Option<&Self::Status>;
}

impl ControlPlaneObject for K0smotronControlPlane {
    type Status = K0smotronControlPlaneStatus;

    fn common_status(&self) -> K0smotronControlPlaneStatus {
        self.status.clone().unwrap_or_default()
    }

    /// The CAPI kind has no v1beta1-only status: `reconciliation` says nothing to it.
    fn own_status(
        &self,
        st: &K0smotronControlPlaneStatus,
        _: Reconciliation<'_>,
    ) -> K0smotronControlPlaneStatus {
        st.clone()
    }

    fn stored_status(&self) -> Option<&K0smotronControlPlaneStatus> {
        self.status.as_ref()
    }
}

/// The standalone `Cluster` reports upstream's fields (`replicas`, `readyReplicas`,
/// `updatedReplicas`, `selector`, `conditions`) plus what the pipeline needs back on the next
/// reconcile (`externalAddress`, `controlPlaneInitialized`, `dynamicConfigHash`) and
/// `observedGeneration`, and for v1beta1 clients `status.deprecated.v1beta1` (`ready`,
/// `reconciliationStatus`, see [`v1beta1_status::cluster`]); the CAPI contract's fields
/// (versions, initialization, external management) have no place in it.
impl ControlPlaneObject for Cluster {
    type Status = ClusterStatus;

    fn common_status(&self) -> K0smotronControlPlaneStatus {
        let st = self.status.clone().unwrap_or_default();
        K0smotronControlPlaneStatus {
            initialization: st
                .control_plane_initialized
                .map(|i| ControlPlaneInitialization {
                    control_plane_initialized: Some(i),
                }),
            replicas: st.replicas,
            ready_replicas: st.ready_replicas,
            up_to_date_replicas: st.updated_replicas,
            selector: st.selector,
            conditions: st.conditions,
            observed_generation: st.observed_generation,
            external_address: st.external_address,
            dynamic_config_hash: st.dynamic_config_hash,
            ..K0smotronControlPlaneStatus::default()
        }
    }

    fn own_status(
        &self,
        st: &K0smotronControlPlaneStatus,
        reconciliation: Reconciliation<'_>,
    ) -> ClusterStatus {
        let stored = self.status.as_ref().and_then(|s| s.deprecated.as_ref());
        ClusterStatus {
            replicas: st.replicas,
            ready_replicas: st.ready_replicas,
            updated_replicas: st.up_to_date_replicas,
            selector: st.selector.clone(),
            conditions: st.conditions.clone(),
            observed_generation: st.observed_generation,
            external_address: st.external_address.clone(),
            control_plane_initialized: st
                .initialization
                .as_ref()
                .and_then(|i| i.control_plane_initialized),
            dynamic_config_hash: st.dynamic_config_hash.clone(),
            deprecated: v1beta1_status::cluster(self.spec.replicas, st, reconciliation, stored),
        }
    }

    fn stored_status(&self) -> Option<&ClusterStatus> {
        self.status.as_ref()
    }
}
