//! The `JoinTokenRequest` controller (standalone mode): a k0s join token for a standalone
//! `Cluster` of the same namespace, in a Secret named after the request (key `token`, upstream's
//! format), usable by `k0s worker --token-file` or `k0s controller --token-file`.
//!
//! Upstream execs `k0s token create` in a controller pod, which needs `pods/exec` on every pod of
//! the management cluster. We create the bootstrap token through the hosted API instead, with the
//! Cluster's own `<name>-kubeconfig` (validated like every kubeconfig: inline credentials only,
//! the Cluster's endpoint only), exactly as `k0s token create` makes it. Deleting the request
//! deletes the token from the hosted cluster, unless the Cluster itself is gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k0smotron_api::conditions;
use k0smotron_api::k0smotron::v1beta2::{Cluster, JoinTokenRequest, JoinTokenRole};
use k0smotron_api::names;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use provider_runtime::apply::{apply, apply_status, controller_owner_ref};
use provider_runtime::conditions::{ConditionStatus, set_condition};
use provider_runtime::events::EventType;
use provider_runtime::join_token::{self, CONTROLLER_USER, JoinKubeconfig, WORKER_USER};
use provider_runtime::kubeconfig::{self, Endpoint, Timeouts};
use provider_runtime::reconcile::{ReconcileError, with_finalizer};
use provider_runtime::token::{self, BootstrapToken};
use provider_runtime::{ManagerArgs, Readiness};
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};

use crate::reconcile::{Context, MANAGER};
use crate::services;
use crate::v1beta1_status::{self, Reconciliation};

/// Metrics and log name of this controller.
pub const CONTROLLER_NAME: &str = "jointokenrequest";
/// Finalizer on a `JoinTokenRequest` (upstream's value).
pub const FINALIZER: &str = "jointokenrequests.k0smotron.io/finalizer";
/// Condition type (upstream's).
pub const SECRET_CREATED: &str = "JoinTokenSecretCreated";
/// Label on the bootstrap-token Secret in the hosted cluster: the request's uid, so a restarted
/// provider finds the token it already made.
pub const REQUEST_UID_LABEL: &str = "k0smotron.io/token-request-uid";
/// Port of k0s's own join API, which controller tokens point at (`k0s token create
/// --role=controller` does the same).
pub const K0S_API_PORT: u16 = 9443;

const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    io: Duration::from_secs(10),
};

/// Errors of a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing in the management cluster failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was done.
        what: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// An apply failed.
    #[error(transparent)]
    Apply(#[from] provider_runtime::apply::ApplyError),
    /// The request cannot get a token yet or at all; reported in its status.
    #[error("{0}")]
    NotPossible(String),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |e| Error::Kube {
        what,
        source: Box::new(e),
    }
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Apply(_) => "apply",
            Self::NotPossible(_) => "not_possible",
            Self::Finalizer(_) => "finalizer",
        }
    }
}

/// Parses a Go duration (`1.5h`, `2h45m`, `300ms`, `0s`), as the CRD's pattern admits it.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest.get(..num_len)?.parse().ok()?;
        rest = rest.get(num_len..)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match rest.get(..unit_len)? {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = rest.get(unit_len..)?;
        total += value * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// The endpoint a standalone Cluster's kubeconfig must point at: the ingress's API host and port
/// with `spec.ingress`, else its external address (in use, from status) or its Service's DNS
/// name, with the API port.
fn endpoint(cluster: &Cluster, namespace: &str) -> (String, u16) {
    let spec = &cluster.spec;
    // Behind an Ingress the kubeconfig, and so every token made from it, points at the ingress
    // (upstream rewrites its tokens' server to the same URL).
    if let Some(i) = crate::ingress::IngressAddresses::of(spec.ingress.as_ref()) {
        return (i.api_host, u16::try_from(i.port).unwrap_or(0));
    }
    let host = cluster
        .status
        .as_ref()
        .and_then(|s| s.external_address.clone())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| {
            services::service_dns(
                &services::service_name(&cluster.name_any(), spec.service.type_),
                namespace,
            )
        });
    let port = u16::try_from(spec.service.api_port).unwrap_or(0);
    (host, port)
}

/// A client of the hosted cluster's `kube-system` Secrets, from the Cluster's kubeconfig.
struct Hosted {
    secrets: Api<Secret>,
    server: String,
    /// Host of the endpoint (IPv6 without brackets).
    host: String,
    ca_pem: String,
}

async fn hosted(ctx: &Context, cluster: &Cluster, ns: &str) -> Result<Hosted, Error> {
    let name = names::kubeconfig_secret(&cluster.name_any());
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {name}")))?
        .ok_or_else(|| Error::NotPossible(format!("waiting for Secret {name}")))?;
    let text = secret
        .data
        .as_ref()
        .and_then(|d| d.get(names::SECRET_VALUE_KEY))
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .ok_or_else(|| Error::NotPossible(format!("Secret {name} holds no kubeconfig")))?;
    let (host, port) = endpoint(cluster, ns);
    let trusted = kubeconfig::validate(text, &Endpoint { host: &host, port }).map_err(|r| {
        Error::NotPossible(format!("the kubeconfig in Secret {name} is refused: {r}"))
    })?;
    let client = trusted
        .client(TIMEOUTS)
        .map_err(|e| Error::NotPossible(format!("a client from Secret {name}: {e}")))?;
    Ok(Hosted {
        secrets: Api::namespaced(client, token::TOKEN_NAMESPACE),
        server: trusted
            .server()
            .to_string()
            .trim_end_matches('/')
            .to_string(),
        host,
        ca_pem: trusted.ca_pem(),
    })
}

/// The token this request already made in the hosted cluster, or a new one.
async fn ensure_token(
    hosted: &Hosted,
    jtr: &JoinTokenRequest,
    uid: &str,
    now: Timestamp,
) -> Result<BootstrapToken, Error> {
    let selector = format!("{REQUEST_UID_LABEL}={uid}");
    let existing = hosted
        .secrets
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err("listing bootstrap tokens in the hosted cluster"))?;
    if let Some(token) = existing
        .items
        .iter()
        .find_map(|s| token::token_from_secret(s).ok())
    {
        return Ok(token);
    }
    let expiry = parse_go_duration(&jtr.spec.expiry).ok_or_else(|| {
        Error::NotPossible(format!(
            "spec.expiry {:?} is not a Go duration",
            jtr.spec.expiry
        ))
    })?;
    let expires = (!expiry.is_zero())
        .then(|| now.checked_add(expiry).ok())
        .flatten();
    let token = BootstrapToken::generate();
    let labels = BTreeMap::from([
        (REQUEST_UID_LABEL.to_string(), uid.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "k0smotron".to_string(),
        ),
    ]);
    let secret = token::k0s_token_secret(
        &token,
        jtr.spec.role == JoinTokenRole::Controller,
        expires,
        labels,
    );
    hosted
        .secrets
        .create(&PostParams::default(), &secret)
        .await
        .map_err(kube_err(
            "creating the bootstrap token in the hosted cluster",
        ))?;
    info!(
        token_id = token.id(),
        role = jtr.spec.role.as_str(),
        "bootstrap token created"
    );
    Ok(token)
}

/// The join token: worker tokens point at the API server, controller tokens at k0s's join API
/// on the same host.
fn join_token(
    hosted: &Hosted,
    role: JoinTokenRole,
    token: &BootstrapToken,
) -> Result<String, Error> {
    let (server, user) = match role {
        JoinTokenRole::Worker => (hosted.server.clone(), WORKER_USER),
        JoinTokenRole::Controller => (
            join_token::api_url(&hosted.host, K0S_API_PORT),
            CONTROLLER_USER,
        ),
    };
    let kubeconfig = JoinKubeconfig::for_user(&server, hosted.ca_pem.as_bytes(), user, token);
    join_token::encode_kubeconfig(&kubeconfig)
        .map_err(|e| Error::NotPossible(format!("encoding the join token: {e}")))
}

/// The Secret named after the request, holding the token (upstream's labels and key).
fn token_secret(jtr: &JoinTokenRequest, token: &str) -> Result<Secret, Error> {
    let owner = controller_owner_ref(jtr)?;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(jtr.name_any()),
            namespace: jtr.namespace(),
            labels: Some(BTreeMap::from([
                (
                    names::CLUSTER_LABEL.to_string(),
                    jtr.spec.cluster_name.clone(),
                ),
                (
                    "k0smotron.io/role".to_string(),
                    jtr.spec.role.as_str().to_string(),
                ),
                ("k0smotron.io/token-request".to_string(), jtr.name_any()),
                (
                    names::APP_COMPONENT_LABEL.to_string(),
                    "jointoken".to_string(),
                ),
            ])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "token".to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    })
}

/// Writes the status: `outcome` on the condition and, for v1beta1 clients, in
/// `status.deprecated.v1beta1` with the uid of the Cluster when it was read.
async fn write_status(
    api: &Api<JoinTokenRequest>,
    jtr: &JoinTokenRequest,
    token_id: Option<String>,
    outcome: Result<(), &str>,
    cluster_uid: Option<&str>,
) -> Result<(), Error> {
    let mut st = jtr.status.clone().unwrap_or_default();
    let reconciliation = match outcome {
        Ok(()) => Reconciliation::Succeeded,
        Err(message) => Reconciliation::Failed {
            step: v1beta1_status::JOIN_TOKEN_STEP,
            message,
        },
    };
    st.deprecated =
        v1beta1_status::join_token_request(reconciliation, cluster_uid, st.deprecated.as_ref());
    let now = Time(Timestamp::now());
    let generation = jtr.metadata.generation;
    match outcome {
        Ok(()) => set_condition(
            &mut st.conditions,
            SECRET_CREATED,
            ConditionStatus::True,
            conditions::CREATED_REASON,
            "",
            generation,
            now,
        ),
        Err(msg) => set_condition(
            &mut st.conditions,
            SECRET_CREATED,
            ConditionStatus::False,
            conditions::INTERNAL_ERROR_REASON,
            msg,
            generation,
            now,
        ),
    };
    if token_id.is_some() {
        st.token_id = token_id;
    }
    st.observed_generation = generation;
    if jtr.status.as_ref() == Some(&st) {
        return Ok(());
    }
    apply_status(api, &jtr.name_any(), &st, MANAGER).await?;
    Ok(())
}

async fn apply_request(jtr: &JoinTokenRequest, ctx: &Context) -> Result<Action, Error> {
    let ns = jtr.namespace().unwrap_or_default();
    let uid = jtr.uid().unwrap_or_default();
    let api: Api<JoinTokenRequest> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let done = jtr.status.as_ref().is_some_and(|s| s.token_id.is_some())
        && secrets
            .get_opt(&jtr.name_any())
            .await
            .map_err(kube_err("reading the token Secret"))?
            .is_some();
    if done {
        return Ok(Action::await_change());
    }
    // The uid of the Cluster once read, for `status.deprecated.v1beta1.clusterUID`.
    let mut cluster_uid = None;
    let outcome: Result<(BootstrapToken, String), Error> = async {
        let cluster = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&jtr.spec.cluster_name)
            .await
            .map_err(kube_err("reading the Cluster"))?
            .ok_or_else(|| {
                Error::NotPossible(format!(
                    "Cluster {} not found in namespace {ns}",
                    jtr.spec.cluster_name
                ))
            })?;
        cluster_uid = cluster.uid();
        let hosted = hosted(ctx, &cluster, &ns).await?;
        let token = ensure_token(&hosted, jtr, &uid, Timestamp::now()).await?;
        let encoded = join_token(&hosted, jtr.spec.role, &token)?;
        Ok((token, encoded))
    }
    .await;
    match outcome {
        Ok((token, encoded)) => {
            apply(&secrets, &token_secret(jtr, &encoded)?, MANAGER).await?;
            write_status(
                &api,
                jtr,
                Some(token.id().to_string()),
                Ok(()),
                cluster_uid.as_deref(),
            )
            .await?;
            ctx.events
                .report(
                    jtr,
                    EventType::Normal,
                    conditions::CREATED_REASON,
                    &format!(
                        "Secret {} holds a {} join token",
                        jtr.name_any(),
                        jtr.spec.role.as_str()
                    ),
                )
                .await;
            Ok(Action::await_change())
        }
        Err(e) => {
            let message = e.to_string();
            warn!(error = %message, "no join token yet");
            write_status(&api, jtr, None, Err(&message), cluster_uid.as_deref()).await?;
            Ok(Action::requeue(Duration::from_secs(15)))
        }
    }
}

/// Deletion: the token goes from the hosted cluster. A Cluster that is gone or going away takes
/// its tokens with it, so the finalizer is released without contacting it.
async fn cleanup(jtr: &JoinTokenRequest, ctx: &Context) -> Result<Action, Error> {
    let ns = jtr.namespace().unwrap_or_default();
    let Some(id) = jtr.status.as_ref().and_then(|s| s.token_id.clone()) else {
        return Ok(Action::await_change());
    };
    let cluster = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&jtr.spec.cluster_name)
        .await
        .map_err(kube_err("reading the Cluster"))?;
    let Some(cluster) = cluster.filter(|c| c.metadata.deletion_timestamp.is_none()) else {
        return Ok(Action::await_change());
    };
    let hosted = hosted(ctx, &cluster, &ns).await?;
    match hosted
        .secrets
        .delete(&token::secret_name(&id), &DeleteParams::default())
        .await
    {
        Ok(_) => info!(token_id = %id, "bootstrap token deleted"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            return Err(kube_err(
                "deleting the bootstrap token in the hosted cluster",
            )(e));
        }
    }
    Ok(Action::await_change())
}

/// Entry point of the controller.
#[instrument(skip_all, fields(name = %jtr.name_any(), namespace = jtr.namespace().unwrap_or_default()))]
pub async fn reconcile(jtr: Arc<JoinTokenRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER_NAME);
    let ns = jtr.namespace().unwrap_or_default();
    let api: Api<JoinTokenRequest> = Api::namespaced(ctx.client.clone(), &ns);
    let ctx = ctx.as_ref();
    with_finalizer(
        &api,
        FINALIZER,
        jtr,
        &ctx.backoff,
        |jtr| async move { apply_request(&jtr, ctx).await },
        |jtr| async move { cleanup(&jtr, ctx).await },
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Requeue policy on errors.
pub fn error_policy(jtr: Arc<JoinTokenRequest>, err: &Error, ctx: Arc<Context>) -> Action {
    provider_runtime::reconcile::error_policy(
        CONTROLLER_NAME,
        jtr.as_ref(),
        err,
        &ctx.metrics,
        &ctx.backoff,
    )
}

/// Runs the controller until `shutdown` fires.
pub async fn run(
    client: &Client,
    args: &ManagerArgs,
    ctx: Arc<Context>,
    readiness: &Readiness,
    shutdown: CancellationToken,
) {
    let controller = Controller::new(
        args.api::<JoinTokenRequest>(client.clone()),
        args.watcher_config(),
    )
    .owns(
        args.api::<Secret>(client.clone()),
        watcher::Config::default().labels("k0smotron.io/token-request"),
    )
    .with_config(args.controller_config());
    readiness.gate_on_store("jointokenrequests.k0smotron.io", controller.store());
    controller
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_go_reads_them() {
        let d = |s: &str| parse_go_duration(s);
        assert_eq!(d("0s"), Some(Duration::ZERO));
        assert_eq!(d("0"), Some(Duration::ZERO));
        assert_eq!(d("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(d("2h45m"), Some(Duration::from_secs(9900)));
        assert_eq!(d("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(d("10µs"), Some(Duration::from_micros(10)));
        for bad in ["", "h", "5", "5d", "1.2.3s", "-1h", "1h-5m"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_secret_is_named_after_the_request_and_owned_by_it() {
        let mut jtr = JoinTokenRequest::new("join-1", Default::default());
        jtr.metadata.namespace = Some("tenant".into());
        jtr.metadata.uid = Some("u-1".into());
        jtr.spec.cluster_name = "solo".into();
        let s = token_secret(&jtr, "abc").unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("join-1"));
        let owner = &s.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("JoinTokenRequest", "u-1")
        );
        let labels = s.metadata.labels.unwrap();
        assert_eq!(labels["cluster"], "solo");
        assert_eq!(labels["k0smotron.io/role"], "worker");
        assert_eq!(s.data.unwrap()["token"].0, b"abc");
    }

    /// Behind an Ingress the kubeconfig is checked against, and tokens point at, the ingress's
    /// API host and port; without one, the Service's DNS name and the API port.
    #[test]
    fn tokens_point_at_the_ingress_when_there_is_one() {
        let mut cluster = Cluster::new("solo", Default::default());
        assert_eq!(
            endpoint(&cluster, "tenant"),
            ("kmc-solo.tenant.svc".to_string(), 30443)
        );
        cluster.spec.ingress = Some(k0smotron_api::controlplane::v1beta2::IngressSpec {
            deploy: false,
            port: 8443,
            api_host: "api.solo.example.com".into(),
            konnectivity_host: "konn.solo.example.com".into(),
            class_name: None,
            annotations: BTreeMap::new(),
        });
        assert_eq!(
            endpoint(&cluster, "tenant"),
            ("api.solo.example.com".to_string(), 8443)
        );
    }
}
