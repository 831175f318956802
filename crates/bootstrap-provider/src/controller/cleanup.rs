//! Deletion of a config: its bootstrap tokens go from the workload cluster before the finalizer
//! is released. Idempotent; gives up where the token expires anyway.

use std::sync::Arc;

use jiff::Timestamp;
use k0smotron_api::bootstrap::v1beta2::K0sWorkerConfig;
use k0smotron_api::capi::{self, Cluster};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};
use provider_runtime::reconcile::error_chain;
use tracing::{info, warn};

use super::context::Context;
use super::error::{Error, kube_err, workload_err};
use super::fetch::workload_for;
use crate::{data_secret, token};

/// Deletes the config's token from the workload cluster. Gives up (releasing the finalizer)
/// when the config or its Cluster is paused, when there is no workload cluster to talk to any
/// more, or once the token must have expired anyway (one TTL after the deletion started, since
/// nothing refreshes it after that).
pub(super) async fn cleanup(config: Arc<K0sWorkerConfig>, ctx: &Context) -> Result<Action, Error> {
    let ns = config
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let uid = config.uid().ok_or(Error::MissingMetadata("uid"))?;
    let cluster_name = capi::cluster_name_label(&config.metadata).map(str::to_string);
    let Some(cluster_name) = cluster_name else {
        return Ok(Action::await_change());
    };
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = clusters
        .get_opt(&cluster_name)
        .await
        .map_err(kube_err(format!("reading Cluster {ns}/{cluster_name}")))?;
    if capi::is_paused(cluster.as_ref(), &config.metadata) {
        // Paused: no call to the workload cluster. Returning Ok still releases the finalizer
        // (kube's finalizer helper does that on any successful cleanup); that is harmless, since
        // nothing refreshes the token of a deleted config and it expires within one TTL.
        // Keeping the finalizer instead would block the deletion for the whole pause.
        // clusterctl move removes the finalizers of the objects it moves itself.
        info!("paused: leaving the bootstrap token to expire");
        return Ok(Action::await_change());
    }
    let expired_anyway = config
        .metadata
        .deletion_timestamp
        .as_ref()
        .is_some_and(|t| token::expiry(t.0, ctx.settings.token_ttl) < Timestamp::now());

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let data = secrets
        .get_opt(&config.name_any())
        .await
        .map_err(kube_err(format!(
            "reading Secret {ns}/{}",
            config.name_any()
        )))?
        .filter(|s| data_secret::is_controlled_by(s, &config));

    let result = delete_tokens(
        ctx,
        &ns,
        cluster.as_ref(),
        &cluster_name,
        &uid,
        data.as_ref(),
    )
    .await;
    match result {
        Ok(n) => {
            info!(tokens = n, "deleted the config's bootstrap tokens");
            Ok(Action::await_change())
        }
        Err(err) if expired_anyway => {
            warn!(error = %error_chain(&err), "cannot reach the workload cluster; the bootstrap token has expired by now, releasing the finalizer");
            Ok(Action::await_change())
        }
        Err(err) => Err(err),
    }
}

/// Deletes the config's tokens from the workload cluster, returning how many: by ID (survives
/// clusterctl move, which changes UIDs) and by label (covers a token whose data Secret was never
/// written).
async fn delete_tokens(
    ctx: &Context,
    ns: &str,
    cluster: Option<&Cluster>,
    cluster_name: &str,
    uid: &str,
    data: Option<&Secret>,
) -> Result<usize, Error> {
    // Without a Cluster there is no endpoint to check a kubeconfig against, and nothing
    // to talk to; the token expires within one TTL.
    let Some(cluster) = cluster else {
        return Ok(0);
    };
    let Some(workload) = workload_for(ctx, ns, cluster).await? else {
        return Ok(0);
    };
    let workload_err = workload_err(cluster_name);
    let mut deleted = workload
        .delete_tokens_for(uid)
        .await
        .map_err(workload_err)?;
    if let Some(id) = data.and_then(data_secret::token_id) {
        workload.delete_token(id).await.map_err(workload_err)?;
        deleted += 1;
    }
    Ok(deleted)
}
