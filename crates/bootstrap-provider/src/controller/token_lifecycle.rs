//! The bootstrap token in the workload cluster: taken once for the data, kept valid until the
//! Machine's Node joins, deleted then.
//!
//! NB: upstream creates a 24 h token and never touches it again: the credential outlives the
//! join by up to a day, and a machine that boots later than that cannot join. A short TTL that
//! is refreshed until the join, then a deletion, closes both gaps (docs/deviations.md).

use std::time::Duration;

use jiff::Timestamp;
use k0smotron_api::bootstrap::v1beta2::{K0sWorkerConfig, K0sWorkerConfigStatus};
use k0smotron_api::capi::Cluster;
use k0smotron_api::conditions as cond;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use provider_runtime::events::EventType;
use tracing::info;

use super::context::{Context, RETRY};
use super::error::{Error, workload_err};
use super::fetch::{self, Owner, WorkloadAccess};
use super::status::{set_token_available, token_deleted};
use crate::data_secret;
use crate::join_token;
use crate::token::{self, BootstrapToken, TokenOwner};
use crate::workload::Workload;

/// The token for new bootstrap data, and whether it was minted just now (with a whole TTL
/// ahead of it). A token labelled for this config exists when an earlier attempt died between
/// creating it and writing the data Secret: reuse it, never mint a second one.
pub(super) async fn existing_or_new_token(
    config: &K0sWorkerConfig,
    ctx: &Context,
    workload: &Workload,
    uid: &str,
    cluster_name: &str,
) -> Result<(BootstrapToken, bool), Error> {
    let workload_err = workload_err(cluster_name);
    if let Some(token) = workload.existing_token(uid).await.map_err(workload_err)? {
        return Ok((token, false));
    }
    let token = BootstrapToken::generate();
    // A new token's data Secret is written now: its first expiration already respects the
    // maximum lifetime.
    let expiration = token::expiry(
        Timestamp::now(),
        ctx.settings.token_ttl.min(ctx.settings.token_max_lifetime),
    );
    workload
        .apply_token(&token, expiration, &token_owner(config, uid))
        .await
        .map_err(workload_err)?;
    info!(
        token_id = token.id(),
        "created bootstrap token in the workload cluster"
    );
    Ok((token, true))
}

/// The token `token_id` was minted in this reconcile: it is valid for a whole TTL (capped at
/// its maximum lifetime), so there is nothing to read or refresh until the next refresh is due
/// or the lifetime ends, whichever is first (as [`refresh`] would have said).
pub(super) fn minted(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
    token_id: &str,
) -> Action {
    set_token_valid(config, ctx, status, token_id);
    let settings = &ctx.settings;
    Action::requeue(
        settings
            .refresh_interval()
            .min(settings.token_max_lifetime + Duration::from_secs(1)),
    )
}

fn set_token_valid(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
    token_id: &str,
) {
    set_token_available(
        status,
        true,
        cond::TOKEN_VALID_REASON,
        &format!(
            "Bootstrap token {token_id} is kept valid (TTL {}s) until the Machine's Node joins",
            ctx.settings.token_ttl.as_secs()
        ),
        config.metadata.generation,
    );
}

/// Keeps the token of `data_secret` valid until the Machine's Node joins, then deletes it.
pub(super) async fn token_lifecycle(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
    owner: &Owner,
    cluster: &Cluster,
    data_secret: &Secret,
) -> Result<Action, Error> {
    let ns = config
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let token_id = token_id_of(config, data_secret)?;
    if owner.node_joined && token_deleted(status) {
        return Ok(Action::await_change());
    }
    let workload = match fetch::workload_access(ctx, &ns, cluster).await? {
        WorkloadAccess::Ready(workload) => Some(*workload),
        WorkloadAccess::NoKubeconfig => None,
        WorkloadAccess::Refused(message) => {
            let generation = config.metadata.generation;
            set_token_available(
                status,
                false,
                cond::KUBECONFIG_REFUSED_REASON,
                &message,
                generation,
            );
            return Ok(Action::requeue(RETRY));
        }
    };
    let cluster_name = cluster.name_any();
    if owner.node_joined {
        return node_joined(config, ctx, status, workload, &token_id, &cluster_name).await;
    }
    let Some(workload) = workload else {
        // Without a kubeconfig there is nothing to refresh against; look again later.
        return Ok(Action::requeue(RETRY));
    };
    refresh(
        config,
        ctx,
        status,
        &workload,
        data_secret,
        &token_id,
        &cluster_name,
    )
    .await
}

/// The ID of the token in `data_secret`. The annotation is the fast path; data written by
/// upstream k0smotron has none, and its token is read from the data itself.
fn token_id_of(config: &K0sWorkerConfig, data_secret: &Secret) -> Result<String, Error> {
    match data_secret::token_id(data_secret).filter(|id| token::validate_id(id).is_ok()) {
        Some(id) => Ok(id.to_string()),
        None => token_of_data_secret(data_secret)
            .map(|token| token.id().to_string())
            .ok_or_else(|| unreadable(config)),
    }
}

/// The Node joined: deletes the token (when the workload cluster can be reached) and says so.
async fn node_joined(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
    workload: Option<Workload>,
    token_id: &str,
    cluster_name: &str,
) -> Result<Action, Error> {
    if let Some(workload) = workload {
        workload
            .delete_token(token_id)
            .await
            .map_err(workload_err(cluster_name))?;
    }
    info!(token_id, "node joined; bootstrap token deleted");
    set_token_available(
        status,
        false,
        cond::NODE_JOINED_REASON,
        &format!(
            "The Machine's Node joined; bootstrap token {token_id} was deleted from the workload cluster"
        ),
        config.metadata.generation,
    );
    ctx.events
        .report(
            config,
            EventType::Normal,
            "BootstrapTokenDeleted",
            &format!("Node joined; bootstrap token {token_id} deleted"),
        )
        .await;
    Ok(Action::await_change())
}

/// The Node has not joined: pushes the token's expiration forward, within its lifetime.
async fn refresh(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
    workload: &Workload,
    data_secret: &Secret,
    token_id: &str,
    cluster_name: &str,
) -> Result<Action, Error> {
    let settings = &ctx.settings;
    let generation = config.metadata.generation;
    let current = workload
        .token_secret(token_id)
        .await
        .map_err(workload_err(cluster_name))?;
    let now_ts = Timestamp::now();
    // The data Secret is written right after the token is created: its age is the token's.
    let issued = data_secret
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now_ts, |t| t.0);
    let bound = token::lifetime_bound(issued, settings.token_max_lifetime);
    let Some(new_expiry) = token::refreshed_expiry(now_ts, settings.token_ttl, bound) else {
        set_token_available(
            status,
            false,
            cond::TOKEN_LIFETIME_EXCEEDED_REASON,
            &format!(
                "Bootstrap token {token_id} reached its maximum lifetime ({}s) and is left to expire; recreate the config for new nodes",
                settings.token_max_lifetime.as_secs()
            ),
            generation,
        );
        return Ok(Action::await_change());
    };
    let expiration = current.as_ref().and_then(token::secret_expiration);
    // Once capped at the bound, the expiration is as late as it may get: nothing to push. One
    // past the bound (written before a lower --token-max-lifetime) is pulled back.
    if current.is_none()
        || expiration.is_none_or(|e| e > bound)
        || (token::needs_refresh(expiration, now_ts, settings.token_ttl)
            && expiration != Some(new_expiry))
    {
        let token = token_of_data_secret(data_secret)
            .filter(|token| token.id() == token_id)
            .ok_or_else(|| unreadable(config))?;
        let uid = config.uid().ok_or(Error::MissingMetadata("uid"))?;
        workload
            .apply_token(&token, new_expiry, &token_owner(config, &uid))
            .await
            .map_err(workload_err(cluster_name))?;
        tracing::debug!(
            token_id,
            recreated = current.is_none(),
            "bootstrap token refreshed"
        );
    }
    set_token_valid(config, ctx, status, token_id);
    // Look again at the next refresh, or when the lifetime ends, whichever is first.
    let until_bound = now_ts
        .duration_until(bound)
        .try_into()
        .unwrap_or(Duration::ZERO)
        + Duration::from_secs(1);
    Ok(Action::requeue(
        settings.refresh_interval().min(until_bound),
    ))
}

fn unreadable(config: &K0sWorkerConfig) -> Error {
    Error::UnreadableDataSecret {
        secret: format!(
            "{}/{}",
            config.namespace().unwrap_or_default(),
            config.name_any()
        ),
    }
}

/// The labels and annotations that tie a token to its config.
fn token_owner(config: &K0sWorkerConfig, uid: &str) -> TokenOwner {
    TokenOwner {
        config_uid: uid.to_string(),
        config_namespace: config.namespace().unwrap_or_default(),
        config_name: config.name_any(),
    }
}

/// The token baked into existing bootstrap data: from the join token in its `write_files`.
fn token_of_data_secret(secret: &Secret) -> Option<BootstrapToken> {
    let files =
        crate::cloudinit::CloudConfig::files_in_user_data(data_secret::user_data(secret)?).ok()?;
    files.iter().find_map(|f| {
        let content = String::from_utf8(f.decoded_content().ok()?).ok()?;
        join_token::decode(&content).ok()?.worker_token().ok()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn data_secret_token_is_recoverable() {
        use crate::commands::{Download, InstallArgs};
        use crate::render::{CustomUserData, WorkerBootstrap};
        let token = BootstrapToken::generate();
        let join = join_token::encode("https://h:1", b"ca", &token).unwrap();
        let b = WorkerBootstrap {
            machine_name: "m".into(),
            token_path: "/somewhere/k0s.token".into(),
            install_dir: "/usr/local/bin".into(),
            download: Download::PreInstalled,
            install_args: InstallArgs::default(),
            use_system_hostname: false,
            pre_k0s_commands: vec![],
            post_k0s_commands: vec![],
            files: vec![],
            custom_user_data: None,
            format: crate::render::Format::CloudConfig,
            platform: k0smotron_api::bootstrap::v1beta2::Platform::Linux,
        };
        let mut config = K0sWorkerConfig::new("m", Default::default());
        config.metadata.namespace = Some("ns".into());
        config.metadata.uid = Some("u".into());
        let secret =
            data_secret::build(&config, "demo", &b.render(&join).unwrap(), token.id()).unwrap();
        assert_eq!(token_of_data_secret(&secret), Some(token.clone()));

        // Merged with custom user data whose entries our model does not describe (a file from
        // a URL, an argument-list command): the token is still found.
        let b = WorkerBootstrap {
            custom_user_data: Some(CustomUserData::CloudConfig(
                crate::cloudinit::UserCloudConfig::parse(
                    "write_files: [{path: /etc/x, source: {uri: 'https://x'}}]\nruncmd: [[ls, -l]]\n",
                )
                .unwrap(),
            )),
            ..b
        };
        let secret =
            data_secret::build(&config, "demo", &b.render(&join).unwrap(), token.id()).unwrap();
        assert_eq!(token_of_data_secret(&secret), Some(token.clone()));

        // A Jinja template (CloudInitVars): the token is read from the files variable.
        let b = WorkerBootstrap {
            custom_user_data: Some(CustomUserData::Template(
                "{% for f in k0smotron_files %}{% endfor %}".into(),
            )),
            ..b
        };
        let secret =
            data_secret::build(&config, "demo", &b.render(&join).unwrap(), token.id()).unwrap();
        assert_eq!(token_of_data_secret(&secret), Some(token.clone()));

        // Ignition: from the token file's data URL.
        let b = WorkerBootstrap {
            custom_user_data: None,
            format: crate::render::Format::Ignition {
                spec_version: "3.4.0",
                additional: None,
            },
            ..b
        };
        let secret =
            data_secret::build(&config, "demo", &b.render(&join).unwrap(), token.id()).unwrap();
        assert_eq!(token_of_data_secret(&secret), Some(token.clone()));

        // Windows, each of its formats: from the token file the script (or document) writes.
        for format in [
            crate::render::Format::PowerShell,
            crate::render::Format::PowerShellXml,
            crate::render::Format::CloudConfig,
        ] {
            let b = WorkerBootstrap {
                format,
                platform: k0smotron_api::bootstrap::v1beta2::Platform::Windows,
                ..b.clone()
            };
            let secret =
                data_secret::build(&config, "demo", &b.render(&join).unwrap(), token.id()).unwrap();
            assert_eq!(token_of_data_secret(&secret), Some(token.clone()));
        }
    }
}
