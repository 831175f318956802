//! One reconcile of a live config: find the owner and Cluster, respect a pause, make sure the
//! data Secret exists (generated exactly once), then look after its token; the status is written
//! whatever happened.

use std::sync::Arc;

use k0smotron_api::bootstrap::v1beta2::{K0sWorkerConfig, K0sWorkerConfigStatus};
use k0smotron_api::capi::Cluster;
use k0smotron_api::conditions as cond;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};
use provider_runtime::pause;
use provider_runtime::reconcile::error_chain;

use super::context::{Context, Step};
use super::error::{Error, kube_err};
use super::fetch::{self, Owner, OwnerAndCluster};
use super::generate::generate;
use super::status::{
    data_secret_created, now, set_available, set_data_secret_created, set_waiting_for_owner,
    write_status,
};
use super::token_lifecycle::{self, token_lifecycle};
use crate::data_secret;

/// Reconciles `config` and writes its status, also when the reconcile failed.
pub(super) async fn apply(config: Arc<K0sWorkerConfig>, ctx: &Context) -> Result<Action, Error> {
    let mut status = config.status.clone().unwrap_or_default();
    let result = apply_inner(&config, ctx, &mut status).await;
    // NB: upstream sets DataSecretAvailable=True (reason InternalError) when writing the data
    // fails; a failure is False here, and never touches a condition of data that exists.
    if let Err(err) = &result
        && !data_secret_created(&status)
    {
        set_available(
            &mut status,
            false,
            cond::DATA_SECRET_GENERATION_FAILED_REASON,
            &error_chain(err),
            config.metadata.generation,
        );
    }
    status.observed_generation = config.metadata.generation;
    write_status(&config, ctx, &status).await?;
    result
}

async fn apply_inner(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
) -> Result<Action, Error> {
    let ns = config
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let generation = config.metadata.generation;

    let (owner, cluster) = match fetch::fetch_owner_and_cluster(config, ctx, &ns).await? {
        OwnerAndCluster::Found(owner, cluster) => (owner, cluster),
        OwnerAndCluster::Missing(message, action) => {
            set_waiting_for_owner(status, &message, generation);
            return Ok(action);
        }
    };
    let paused = pause::gate(
        &ctx.events,
        config,
        &mut status.conditions,
        Some(&cluster),
        now(),
    )
    .await;
    if paused.paused {
        return Ok(Action::await_change());
    }
    let (data_secret, minted) =
        match ensure_data_secret(config, ctx, status, &owner, &cluster, &ns).await? {
            Step::Ready(ready) => ready,
            Step::Wait(action) => return Ok(action),
        };
    // The data exists (now or from an earlier reconcile or provider): keep status in line with
    // it and look after its token.
    set_data_secret_created(status, &config.name_any(), generation);
    if minted {
        let token_id = data_secret::token_id(&data_secret)
            .unwrap_or_default()
            .to_string();
        return Ok(token_lifecycle::minted(config, ctx, status, &token_id));
    }
    token_lifecycle(config, ctx, status, &owner, &cluster, &data_secret).await
}

/// The config's data Secret: the existing one if it is ours, else a new one, generated exactly
/// once; and whether its token was minted in this reconcile.
async fn ensure_data_secret(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
    owner: &Owner,
    cluster: &Cluster,
    ns: &str,
) -> Result<Step<(Secret, bool)>, Error> {
    let name = config.name_any();
    let generation = config.metadata.generation;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let existing = secrets
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {ns}/{name}")))?;
    match existing {
        Some(secret) if data_secret::is_controlled_by(&secret, config) => {
            Ok(Step::Ready((secret, false)))
        }
        Some(_) => {
            // NB: upstream's server-side apply would silently take over a foreign Secret.
            set_available(
                status,
                false,
                cond::DATA_SECRET_CONFLICT_REASON,
                &format!(
                    "Secret {name} exists and is not controlled by this K0sWorkerConfig; it is left alone"
                ),
                generation,
            );
            Ok(Step::Wait(Action::await_change()))
        }
        None if data_secret_created(status) => {
            // NB: regenerating would mint a second token for a Machine that may have joined
            // long ago; the data is generated exactly once.
            set_available(
                status,
                false,
                cond::DATA_SECRET_DELETED_REASON,
                &format!(
                    "The bootstrap data Secret {name} was deleted after it was created; it is not generated again"
                ),
                generation,
            );
            Ok(Step::Wait(Action::await_change()))
        }
        None => generate(config, ctx, status, owner, cluster).await,
    }
}
