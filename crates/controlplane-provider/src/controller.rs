//! Wires the reconciler into a kube-runtime `Controller`: the K0smotronControlPlane watch, the
//! children it owns, and the CAPI `Cluster` watch mapped through `spec.controlPlaneRef`.
//!
//! No polling loops: watches drive reconciles; the reconciler requeues slowly as a safety net and
//! quickly while it waits for pods or addresses.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k0smotron_api::capi::Cluster;
use k0smotron_api::controlplane::v1beta2::K0smotronControlPlane;
use k0smotron_api::names;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Client, Resource, ResourceExt};
use provider_runtime::events::EventPublisher;
use provider_runtime::{ManagerArgs, Metrics, Readiness};
use tokio_util::sync::CancellationToken;

use crate::reconcile::{Context, error_policy, reconcile};
use crate::validate::FieldPolicy;

/// Reporter name of our events.
pub const REPORTER: &str = "k0smotron-controlplane";

/// Tunables of the controller.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Timeout of the availability probe through the kubeconfig.
    pub probe_timeout: Duration,
    /// Requeue interval of a settled control plane.
    pub resync: Duration,
    /// The spec fields that reach the pods this installation allows (`--allow-*` flags).
    pub policy: FieldPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            probe_timeout: Duration::from_secs(10),
            resync: Duration::from_secs(300),
            policy: FieldPolicy::default(),
        }
    }
}

/// The K0smotronControlPlane a CAPI Cluster refers to, if any.
pub fn control_plane_of(cluster: &Cluster) -> Option<ObjectRef<K0smotronControlPlane>> {
    let r = cluster.spec.control_plane_ref.as_ref()?;
    let kind = K0smotronControlPlane::kind(&());
    let group = K0smotronControlPlane::group(&());
    if r.kind != kind || r.api_group != group || r.name.is_empty() {
        return None;
    }
    let ns = cluster.namespace()?;
    Some(ObjectRef::new(&r.name).within(&ns))
}

/// The controller, with its watches.
pub fn build(client: &Client, args: &ManagerArgs) -> Controller<K0smotronControlPlane> {
    // Every child carries the CAPI cluster-name label; caching only those keeps unrelated Secrets
    // and ConfigMaps out of memory.
    let children = watcher::Config::default()
        .any_semantic()
        .labels(names::CLUSTER_NAME_LABEL);
    Controller::new(
        args.api::<K0smotronControlPlane>(client.clone()),
        args.watcher_config(),
    )
    .owns(args.api::<StatefulSet>(client.clone()), children.clone())
    .owns(args.api::<Service>(client.clone()), children.clone())
    .owns(args.api::<ConfigMap>(client.clone()), children.clone())
    // Secrets by metadata only (an `Api<PartialObjectMeta<_>>` lists and watches metadata): their
    // owner references are all the controller needs to map them to a control plane, and key
    // material has no business in a long-lived cache (the reconciler reads the few Secrets it
    // uses by name).
    .owns(
        args.api::<PartialObjectMeta<Secret>>(client.clone()),
        children.clone(),
    )
    .owns(args.api::<CronJob>(client.clone()), children)
    .watches(
        args.api::<Cluster>(client.clone()),
        watcher::Config::default().any_semantic(),
        |cluster| control_plane_of(&cluster),
    )
    .with_config(args.controller_config())
}

/// Runs the controller until `shutdown` fires.
pub async fn run(
    client: Client,
    args: &ManagerArgs,
    settings: Settings,
    metrics: Metrics,
    readiness: &Readiness,
    shutdown: CancellationToken,
) {
    let controller = build(&client, args);
    readiness.gate_on_store("k0smotroncontrolplanes", controller.store());
    let ctx = Arc::new(Context {
        events: EventPublisher::new(client.clone(), REPORTER),
        client,
        metrics,
        probe_timeout: settings.probe_timeout,
        resync: settings.resync,
        policy: settings.policy,
        applied: Arc::default(),
    });
    controller
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                // Reconcile errors are counted and logged by error_policy; these are the queue's
                // own (e.g. an object deleted before its turn).
                tracing::debug!(error = %err, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use k0smotron_api::capi::{ClusterSpec, ContractVersionedObjectReference};

    fn cluster(kind: &str, group: &str) -> Cluster {
        let mut c = Cluster::new(
            "demo",
            ClusterSpec {
                control_plane_ref: Some(ContractVersionedObjectReference {
                    api_group: group.into(),
                    kind: kind.into(),
                    name: "demo-cp".into(),
                }),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("ns".into());
        c
    }

    #[test]
    fn clusters_map_to_their_control_plane_only() {
        let r = control_plane_of(&cluster(
            "K0smotronControlPlane",
            "controlplane.cluster.x-k8s.io",
        ));
        assert_eq!(r, Some(ObjectRef::new("demo-cp").within("ns")));
        assert_eq!(
            control_plane_of(&cluster(
                "KubeadmControlPlane",
                "controlplane.cluster.x-k8s.io"
            )),
            None
        );
        assert_eq!(
            control_plane_of(&cluster("K0smotronControlPlane", "example.com")),
            None
        );
    }
}
