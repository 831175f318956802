//! The standalone `k0smotron.io` `Cluster` controller: a k0s control plane hosted as pods without
//! Cluster API (k0smotron's first mode). It runs the same pipeline as `K0smotronControlPlane`
//! ([`crate::reconcile::run`]) with the Cluster as the owner of every child and its own name as
//! the cluster name; nothing of CAPI is read or written.
//!
//! Children are named after the Cluster (`kmc-<name>`, `<name>-kubeconfig`, ...), exactly as for a
//! `K0smotronControlPlane` of a CAPI Cluster of that name, so for the same spec both kinds produce
//! the same objects except for their owner reference.

use std::sync::Arc;

use k0smotron_api::k0smotron::v1beta2::Cluster;
use k0smotron_api::names;
use kube::api::{Patch, PatchParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use provider_runtime::ManagerArgs;
use provider_runtime::events::EventType;
use provider_runtime::reconcile::{object_key, with_finalizer};
use tracing::{info, instrument};

use crate::control_plane::ControlPlane;
use crate::reconcile::{Context, Error, Ran, delete_children, paused, requeue, run};

/// Metrics and log name of this controller.
pub const CONTROLLER_NAME: &str = "k0smotroncluster";

/// Entry point of the controller.
#[instrument(skip_all, fields(name = %cluster.name_any(), namespace = cluster.namespace().unwrap_or_default(), generation = cluster.metadata.generation))]
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER_NAME);
    let ns = cluster.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(owner) = control_plane_owner(&cluster) {
        return release_intermediate(&api, &cluster, &owner).await;
    }
    if paused(&ctx, cluster.as_ref(), None).await? {
        return Ok(Action::await_change());
    }
    if cluster.metadata.deletion_timestamp.is_some() {
        ctx.waits.done(&object_key(cluster.as_ref()));
        ctx.quiet.forget(&object_key(cluster.as_ref()));
    }
    let ctx = ctx.as_ref();
    with_finalizer(
        &api,
        names::STANDALONE_FINALIZER,
        cluster,
        &ctx.backoff,
        |cluster| async move { apply(&cluster, ctx).await },
        |cluster| async move { cleanup(&cluster, ctx).await },
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The name of the `K0smotronControlPlane` that owns `cluster`, when it is upstream's
/// intermediate Cluster of a control plane (upstream sets a plain owner reference, without
/// `controller`, so any owner reference of that kind counts).
pub fn control_plane_owner(cluster: &Cluster) -> Option<String> {
    cluster
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| {
            r.kind == "K0smotronControlPlane"
                && r.api_version.split('/').next() == Some("controlplane.cluster.x-k8s.io")
        })
        .map(|r| r.name.clone())
}

/// The JSON patch that removes [`names::STANDALONE_FINALIZER`] from `cluster` while it is being
/// deleted, with a test of the list it was computed from; `None` when there is nothing to do
/// (not being deleted, or the finalizer is not there).
pub fn release_patch(cluster: &Cluster) -> Option<json_patch::Patch> {
    cluster.metadata.deletion_timestamp.as_ref()?;
    let finalizers = cluster.metadata.finalizers.as_ref()?;
    let index = finalizers
        .iter()
        .position(|f| f == names::STANDALONE_FINALIZER)?;
    serde_json::from_value(serde_json::json!([
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]))
    .ok()
}

/// Upstream's intermediate Cluster: nothing is built from it and nothing it controls is
/// touched; when it is being deleted, upstream's finalizer is taken off it (its children stay:
/// with `--cascade=orphan` the garbage collector releases them for the control plane to adopt).
async fn release_intermediate(
    api: &Api<Cluster>,
    cluster: &Cluster,
    owner: &str,
) -> Result<Action, Error> {
    let Some(patch) = release_patch(cluster) else {
        info!(
            control_plane = owner,
            "an intermediate Cluster of a K0smotronControlPlane (upstream k0smotron's) is not reconciled"
        );
        return Ok(Action::await_change());
    };
    match api
        .patch(
            &cluster.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => {
            info!(
                control_plane = owner,
                "upstream's finalizer removed from the intermediate Cluster being deleted; its children are left alone"
            );
            Ok(Action::await_change())
        }
        // Gone already, or the finalizers changed under us: the next event says what now.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 || e.code == 422 => {
            Ok(Action::await_change())
        }
        Err(source) => Err(Error::Write {
            what: format!("finalizers of Cluster {}", cluster.name_any()),
            source: Box::new(source),
        }),
    }
}

/// Requeue policy on errors.
pub fn error_policy(cluster: Arc<Cluster>, err: &Error, ctx: Arc<Context>) -> Action {
    provider_runtime::reconcile::error_policy(
        CONTROLLER_NAME,
        cluster.as_ref(),
        err,
        &ctx.metrics,
        &ctx.backoff,
    )
}

async fn apply(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let cp = ControlPlane::from_cluster(cluster)?;
    let name = cp.name.clone();
    let now = jiff::Timestamp::now();
    Ok(match run(ctx, cluster, cp, name, None, now).await? {
        Ran::Stopped(action) => action,
        Ran::Unchanged(action) => {
            ctx.metrics.reconcile_unchanged(CONTROLLER_NAME);
            action
        }
        Ran::Done(done) => requeue(ctx, cluster, &done, true),
    })
}

/// Deletion: children go by owner-reference garbage collection; what the Cluster controls is
/// deleted explicitly as well, so nothing depends on the collector's timing. Claims stay unless
/// `autoDeletePVCs`.
async fn cleanup(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let cp = ControlPlane::from_cluster(cluster)?;
    delete_children(ctx, &cp.namespace, &cp.spec, &cp.name, &cp.uid).await?;
    ctx.host_watches.forget(
        crate::control_plane::Kind::Standalone,
        &cp.namespace,
        &cp.name,
    );
    info!("children deleted; releasing the finalizer");
    ctx.events
        .report(
            cluster,
            EventType::Normal,
            "Deleted",
            "control-plane objects deleted",
        )
        .await;
    Ok(Action::await_change())
}

/// The controller, with its watches: the children it owns (the same kinds as the Cluster API
/// kind's, selected by the same label) and their pods.
pub fn build(
    client: &Client,
    args: &ManagerArgs,
    triggers: crate::stores::Triggers,
    stores: &crate::stores::Stores,
    config: kube::runtime::controller::Config,
) -> Controller<Cluster> {
    let controller = crate::watches::controller_of::<Cluster>(client, args);
    crate::watches::owning_children(controller, triggers, stores.statefulsets.clone())
        .with_config(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(owners: serde_json::Value, deleting: bool, finalizers: &[&str]) -> Cluster {
        let mut c: Cluster = serde_json::from_value(json!({
            "apiVersion": "k0smotron.io/v1beta2",
            "kind": "Cluster",
            "metadata": {"name": "demo", "namespace": "ns", "ownerReferences": owners},
            "spec": {},
        }))
        .unwrap();
        if deleting {
            c.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    "2026-12-06T20:00:00Z".parse().unwrap(),
                ));
        }
        c.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        c
    }

    /// Upstream's owner reference of its intermediate Cluster: no `controller` flag.
    fn upstream_owner() -> serde_json::Value {
        json!([{
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
            "kind": "K0smotronControlPlane",
            "name": "demo-cp",
            "uid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        }])
    }

    #[test]
    fn a_cluster_owned_by_a_control_plane_is_upstreams_intermediate_object() {
        let c = cluster(upstream_owner(), false, &[]);
        assert_eq!(control_plane_owner(&c).as_deref(), Some("demo-cp"));
        // Any version of the control-plane group counts (v1beta1 objects were converted).
        let mut old = upstream_owner();
        old[0]["apiVersion"] = json!("controlplane.cluster.x-k8s.io/v1beta1");
        assert!(control_plane_owner(&cluster(old, false, &[])).is_some());
    }

    #[test]
    fn standalone_clusters_and_other_owners_are_reconciled() {
        assert_eq!(control_plane_owner(&cluster(json!([]), false, &[])), None);
        let other = json!([
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": "u"},
            {"apiVersion": "example.com/v1", "kind": "K0smotronControlPlane", "name": "y", "uid": "v"},
        ]);
        assert_eq!(control_plane_owner(&cluster(other, false, &[])), None);
    }

    #[test]
    fn only_a_deleted_intermediate_cluster_loses_upstreams_finalizer_and_only_that_one() {
        let live = cluster(upstream_owner(), false, &[names::STANDALONE_FINALIZER]);
        assert!(release_patch(&live).is_none());
        let gone = cluster(upstream_owner(), true, &["orphan"]);
        assert!(release_patch(&gone).is_none());
        let deleting = cluster(
            upstream_owner(),
            true,
            &["orphan", names::STANDALONE_FINALIZER],
        );
        let patch = serde_json::to_value(release_patch(&deleting).unwrap()).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["orphan", names::STANDALONE_FINALIZER]},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        // Applied to the object, the garbage collector's `orphan` finalizer is what remains.
        let mut doc = serde_json::to_value(&deleting).unwrap();
        json_patch::patch(&mut doc, &release_patch(&deleting).unwrap()).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["orphan"]));
    }
}
