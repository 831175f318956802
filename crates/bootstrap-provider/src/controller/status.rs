//! The config's status: `DataSecretAvailable` with its `Ready` summary,
//! `BootstrapTokenAvailable`, and the write through the status subresource. Events are published
//! here too. Computes conditions; the only write is [`write_status`].

use jiff::Timestamp;
use k0smotron_api::bootstrap::v1beta2::{
    BootstrapInitialization, K0sWorkerConfig, K0sWorkerConfigStatus,
};
use k0smotron_api::conditions as cond;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt as _};
use provider_runtime::apply;
use provider_runtime::conditions::{ConditionStatus, set_condition};

use super::context::Context;
use super::error::Error;

/// Field manager of `K0sWorkerConfig` status.
const STATUS_FIELD_MANAGER: &str = "k0s-bootstrap/status";

pub(super) fn now() -> Time {
    Time(Timestamp::now())
}

/// Sets `DataSecretAvailable` and the `Ready` summary that mirrors it.
pub(super) fn set_available(
    status: &mut K0sWorkerConfigStatus,
    available: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let s = ConditionStatus::from(available);
    set_condition(
        &mut status.conditions,
        cond::DATA_SECRET_AVAILABLE,
        s,
        reason,
        message,
        generation,
        now(),
    );
    let ready_reason = if available {
        cond::READY_REASON
    } else {
        cond::NOT_READY_REASON
    };
    set_condition(
        &mut status.conditions,
        cond::READY,
        s,
        ready_reason,
        message,
        generation,
        now(),
    );
}

/// Records that the owner or its Cluster is missing. Once the data exists this is no news worth
/// a False condition (the Machine may be going away, taking the config with it).
pub(super) fn set_waiting_for_owner(
    status: &mut K0sWorkerConfigStatus,
    message: &str,
    generation: Option<i64>,
) {
    if !data_secret_created(status) {
        set_available(
            status,
            false,
            cond::WAITING_FOR_OWNER_REASON,
            message,
            generation,
        );
    }
}

pub(super) fn data_secret_created(status: &K0sWorkerConfigStatus) -> bool {
    status
        .initialization
        .as_ref()
        .and_then(|i| i.data_secret_created)
        == Some(true)
}

pub(super) async fn write_status(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &K0sWorkerConfigStatus,
) -> Result<(), Error> {
    if config.status.as_ref() == Some(status) {
        return Ok(());
    }
    let ns = config
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<K0sWorkerConfig> = Api::namespaced(ctx.client.clone(), &ns);
    apply::apply_status(&api, &config.name_any(), status, STATUS_FIELD_MANAGER)
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply {
            what: "K0sWorkerConfig status",
            source,
        })
}

/// Records that the data Secret `name` exists (rebuilt after clusterctl move, which does not
/// move status).
pub(super) fn set_data_secret_created(
    status: &mut K0sWorkerConfigStatus,
    name: &str,
    generation: Option<i64>,
) {
    status.data_secret_name = Some(name.to_string());
    status.initialization = Some(BootstrapInitialization {
        data_secret_created: Some(true),
    });
    set_available(
        status,
        true,
        cond::DATA_SECRET_CREATED_REASON,
        "Bootstrap data Secret created",
        generation,
    );
}

/// Sets `BootstrapTokenAvailable`.
pub(super) fn set_token_available(
    status: &mut K0sWorkerConfigStatus,
    available: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    set_condition(
        &mut status.conditions,
        cond::BOOTSTRAP_TOKEN_AVAILABLE,
        ConditionStatus::from(available),
        reason,
        message,
        generation,
        now(),
    );
}

/// The token was deleted because the Node joined (nothing is left to do for it).
pub(super) fn token_deleted(status: &K0sWorkerConfigStatus) -> bool {
    provider_runtime::conditions::get(&status.conditions, cond::BOOTSTRAP_TOKEN_AVAILABLE)
        .is_some_and(|c| c.status == "False" && c.reason == cond::NODE_JOINED_REASON)
}
