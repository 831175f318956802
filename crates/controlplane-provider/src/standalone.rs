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
    if paused(&ctx, cluster.as_ref(), None).await? {
        return Ok(Action::await_change());
    }
    if cluster.metadata.deletion_timestamp.is_some() {
        ctx.waits.done(&object_key(cluster.as_ref()));
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
    crate::watches::owning_children(controller, triggers, stores.statefulsets.store().clone())
        .with_config(config)
}
