//! Generates the bootstrap data exactly once: gather what it is made of (endpoint, CA,
//! `contentFrom` objects, workload client), validate, take a token, render, write the data
//! Secret. While something is missing, says so in `DataSecretAvailable` and waits.

use std::time::Duration;

use k0smotron_api::bootstrap::v1beta2::{K0sWorkerConfig, K0sWorkerConfigStatus};
use k0smotron_api::capi::Cluster;
use k0smotron_api::conditions as cond;
use k0smotron_api::names;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};
use provider_runtime::apply;
use provider_runtime::events::EventType;
use tracing::info;

use super::context::{Context, RETRY, Step};
use super::error::Error;
use super::fetch::{self, Owner, WorkloadAccess};
use super::status::set_available;
use super::token_lifecycle::existing_or_new_token;
use crate::commands::Download;
use crate::data_secret;
use crate::join_token;
use crate::render::WorkerBootstrap;
use crate::token::BootstrapToken;
use crate::validate::{self, Resolved};
use crate::workload::Workload;

/// What the data is made of, once all of it exists.
struct Inputs {
    host: String,
    port: u16,
    ca: Vec<u8>,
    bootstrap: WorkerBootstrap,
    workload: Workload,
}

/// Why generation waits: the `DataSecretAvailable` reason and message, and when to look again.
struct Waiting {
    reason: &'static str,
    message: String,
    action: Action,
}

/// Generates the bootstrap data once: token, join token, cloud-config, data Secret. Also says
/// whether the token was minted just now (see [`existing_or_new_token`]).
pub(super) async fn generate(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
    owner: &Owner,
    cluster: &Cluster,
) -> Result<Step<(Secret, bool)>, Error> {
    let ns = config
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let uid = config.uid().ok_or(Error::MissingMetadata("uid"))?;
    let cluster_name = cluster.name_any();
    let inputs = match gather(config, ctx, owner, cluster, &ns).await? {
        Ok(inputs) => inputs,
        Err(waiting) => {
            let generation = config.metadata.generation;
            set_available(status, false, waiting.reason, &waiting.message, generation);
            return Ok(Step::Wait(waiting.action));
        }
    };
    let (token, minted) =
        existing_or_new_token(config, ctx, &inputs.workload, &uid, &cluster_name).await?;
    write_data_secret(config, ctx, &ns, &cluster_name, &inputs, &token)
        .await
        .map(|secret| Step::Ready((secret, minted)))
}

/// Reads and validates everything the data is made of; the inner `Err` says what is still
/// missing.
async fn gather(
    config: &K0sWorkerConfig,
    ctx: &Context,
    owner: &Owner,
    cluster: &Cluster,
    ns: &str,
) -> Result<Result<Inputs, Waiting>, Error> {
    let cluster_name = cluster.name_any();
    let waiting = |reason, message: &str, action| {
        Ok(Err(Waiting {
            reason,
            message: message.to_string(),
            action,
        }))
    };
    let Some((host, port)) =
        fetch::endpoint_of(cluster).filter(|_| cluster.control_plane_initialized())
    else {
        return waiting(
            cond::WAITING_FOR_CONTROL_PLANE_INITIALIZATION_REASON,
            "Control plane is not ready yet: waiting for the Cluster's control plane to be initialized and its endpoint to be set",
            // The Cluster watch wakes us; the requeue is only a safety net.
            Action::requeue(Duration::from_secs(60)),
        );
    };
    let ca_name = names::ca_secret(&cluster_name);
    let ca = match fetch::fetch_ca(ctx, ns, &ca_name).await? {
        Some(ca) => Some(ca),
        // A control plane with `spec.remoteHostCluster` keeps `<cluster>-ca` in its hosting
        // cluster; the kubeconfig in this one (validated against the endpoint) trusts that CA.
        None => match fetch::workload_access(ctx, ns, cluster).await? {
            WorkloadAccess::Ready(w) => w.ca_pem().map(|pem| pem.as_bytes().to_vec()),
            _ => None,
        },
    };
    let Some(ca) = ca else {
        return waiting(
            cond::REFERENCE_NOT_FOUND_REASON,
            &format!("Waiting for Secret {ca_name} with key tls.crt (the cluster CA)"),
            Action::requeue(RETRY),
        );
    };
    let contents = fetch::fetch_contents(config, ctx, ns).await?;
    let mut bootstrap =
        match validate::validate_with(&config.spec, &owner.info(), ctx.settings.gates, |r| {
            contents.get(r).cloned().unwrap_or(Resolved::ObjectMissing)
        }) {
            Ok(b) => b,
            Err(err) => {
                let action = if err.is_transient() {
                    Action::requeue(RETRY)
                } else {
                    Action::await_change()
                };
                return waiting(err.reason(), &err.to_string(), action);
            }
        };
    // The HAProxy DaemonSet runs on Linux workers only (its image and host directory are
    // Linux's); a Windows worker gets no HAProxy files.
    let haproxy = if bootstrap.platform == k0smotron_api::bootstrap::v1beta2::Platform::Windows {
        fetch::Haproxy::NotBehindIngress
    } else {
        fetch::haproxy_material(ctx, ns, cluster, &ca).await?
    };
    match haproxy {
        fetch::Haproxy::NotBehindIngress => {}
        fetch::Haproxy::Ready(material) => {
            if let Err(path) = crate::haproxy::add_files(&mut bootstrap, &material) {
                return waiting(
                    cond::INVALID_SPEC_REASON,
                    &format!(
                        "spec.files writes {path}, which the control plane's ingress mode needs for HAProxy"
                    ),
                    Action::await_change(),
                );
            }
        }
        fetch::Haproxy::Missing(message) => {
            return waiting(
                cond::REFERENCE_NOT_FOUND_REASON,
                &message,
                Action::requeue(RETRY),
            );
        }
    }
    let workload = match fetch::workload_access(ctx, ns, cluster).await? {
        WorkloadAccess::Ready(workload) => *workload,
        // The Secret is not watched; look again later.
        WorkloadAccess::Refused(message) => {
            return waiting(
                cond::KUBECONFIG_REFUSED_REASON,
                &message,
                Action::requeue(RETRY),
            );
        }
        WorkloadAccess::NoKubeconfig => {
            return waiting(
                cond::REFERENCE_NOT_FOUND_REASON,
                &format!(
                    "Waiting for Secret {} (the workload cluster's kubeconfig)",
                    names::kubeconfig_secret(&cluster_name)
                ),
                Action::requeue(RETRY),
            );
        }
    };
    Ok(Ok(Inputs {
        host,
        port,
        ca,
        bootstrap,
        workload,
    }))
}

/// Renders the data with `token` and writes the data Secret; announces it in events.
async fn write_data_secret(
    config: &K0sWorkerConfig,
    ctx: &Context,
    ns: &str,
    cluster_name: &str,
    inputs: &Inputs,
    token: &BootstrapToken,
) -> Result<Secret, Error> {
    let apply_err = |source| Error::Apply {
        what: "bootstrap data Secret",
        source,
    };
    let join = join_token::encode(
        &join_token::api_url(&inputs.host, inputs.port),
        &inputs.ca,
        token,
    )
    .map_err(Error::JoinToken)?;
    let user_data = inputs.bootstrap.render(&join).map_err(Error::Render)?;
    let secret =
        data_secret::build(config, cluster_name, &user_data, token.id()).map_err(apply_err)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let stored = apply::apply(&secrets, &secret, data_secret::FIELD_MANAGER)
        .await
        .map_err(apply_err)?;
    info!(token_id = token.id(), "bootstrap data Secret created");
    ctx.events
        .report(
            config,
            EventType::Normal,
            "DataSecretCreated",
            &format!(
                "Bootstrap data Secret created with bootstrap token {}",
                token.id()
            ),
        )
        .await;
    // NB: like upstream we still install the latest k0s without any version, but say so: the
    // node may then not match the control plane.
    if inputs.bootstrap.download == (Download::Script { version: None }) {
        ctx.events.report(
config, EventType::Warning, "NoVersion",
            "Neither spec.version nor the Machine's spec.version is set: the node installs the latest k0s release, which may not match the control plane",
        )
        .await;
    }
    Ok(stored)
}
