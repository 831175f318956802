//! The `K0sWorkerConfig` reconciler: fetch → validate → render → apply (workload token Secret,
//! data Secret) → status, plus the token lifecycle (refresh until the Node joins, delete after)
//! and the finalizer that deletes the token with the config.
//!
//! Owns the orchestration and every management-cluster call; the pure steps live in
//! [`crate::validate`], [`crate::render`], [`crate::data_secret`], [`crate::token`], and every
//! workload-cluster call in [`crate::workload`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use k0smotron_api::bootstrap::v1beta2::{
    BootstrapInitialization, K0sWorkerConfig, K0sWorkerConfigStatus,
};
use k0smotron_api::capi::{self, Cluster, Machine, MachinePool};
use k0smotron_api::conditions as cond;
use k0smotron_api::names;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource as _, ResourceExt as _};
use provider_runtime::apply::{self, ApplyError};
use provider_runtime::conditions::{ConditionStatus, set_condition};
use provider_runtime::events::{EventPublisher, EventType};
use provider_runtime::kubeconfig::Endpoint;
use provider_runtime::{ManagerArgs, Metrics, Readiness, ReadyGate, pause};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info, warn};

use crate::data_secret;
use crate::join_token::{self, JoinTokenError};
use crate::render::RenderError;
use crate::token::{self, BootstrapToken, TokenOwner};
use crate::validate::{self, ContentRef, OwnerInfo, Resolved};
use crate::workload::{Workload, WorkloadError};

/// Controller name in metrics, logs and events.
pub const CONTROLLER: &str = "k0sworkerconfig";
/// Field manager of `K0sWorkerConfig` status.
pub const STATUS_FIELD_MANAGER: &str = "k0s-bootstrap/status";
/// Event reporter name.
pub const REPORTER: &str = "k0smotron-bootstrap";
/// How long to wait before looking again when waiting on something we do not watch.
const RETRY: Duration = Duration::from_secs(30);
/// Requeue after errors.
const ERROR_REQUEUE: Duration = Duration::from_secs(15);

/// Tunables of the reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Lifetime of a bootstrap token; it is pushed forward every third of it until the Node
    /// joins.
    pub token_ttl: Duration,
    /// How long after its data Secret was written a token may still be pushed forward; after
    /// that it is left to expire (bounds a MachinePool's token, which no join ever ends).
    pub token_max_lifetime: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_ttl: DEFAULT_TOKEN_TTL,
            token_max_lifetime: DEFAULT_TOKEN_MAX_LIFETIME,
        }
    }
}

/// Default `--token-ttl`: 15 minutes, as CAPI's kubeadm bootstrap provider.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Default `--token-max-lifetime`: 7 days. Long enough for a MachinePool to scale over a week
/// without a new config; short enough that a leaked pool token does not stay valid for months.
pub const DEFAULT_TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

impl Settings {
    /// How often a token is checked and refreshed while its Node has not joined.
    pub fn refresh_interval(&self) -> Duration {
        (self.token_ttl / 3).max(Duration::from_secs(5))
    }
}

/// Parses `--token-ttl`: a whole number with an optional unit `s`, `m` or `h` (`900`, `15m`).
/// At least 30 seconds, so a refresh every third of it stays meaningful.
pub fn parse_ttl(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (digits, unit) = match value.char_indices().last() {
        Some((i, c @ ('s' | 'm' | 'h'))) => (&value[..i], c),
        _ => (value, 's'),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {value:?} (want e.g. 900, 900s, 15m or 1h)"))?;
    let secs = match unit {
        'h' => n.saturating_mul(3600),
        'm' => n.saturating_mul(60),
        _ => n,
    };
    if secs < 30 {
        return Err(format!(
            "token TTL {value:?} is too short; the minimum is 30s"
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// What every reconcile shares.
pub struct Context {
    /// Management-cluster client.
    pub client: Client,
    /// Tunables.
    pub settings: Settings,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// Event publisher.
    pub events: EventPublisher,
    /// Retry delays of configs whose reconcile failed (per config, doubling).
    pub backoff: provider_runtime::backoff::Backoff,
}

/// Reconcile failures. Conditions carry the user-facing story; these drive retries and metrics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A management-cluster read failed.
    #[error("{action}")]
    Kube {
        /// What we tried.
        action: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// A management-cluster write failed.
    #[error("applying {what}")]
    Apply {
        /// What we applied.
        what: &'static str,
        /// The error.
        #[source]
        source: ApplyError,
    },
    /// The workload cluster could not be reached or refused a call.
    #[error("workload cluster of Cluster {cluster}")]
    Workload {
        /// The CAPI Cluster.
        cluster: String,
        /// The error.
        #[source]
        source: WorkloadError,
    },
    /// Rendering the bootstrap data failed.
    #[error("rendering bootstrap data")]
    Render(#[source] RenderError),
    /// Encoding the join token failed.
    #[error("encoding the join token")]
    JoinToken(#[source] JoinTokenError),
    /// The existing data Secret carries no token we can read back.
    #[error("data Secret {secret} has no readable join token")]
    UnreadableDataSecret {
        /// The Secret.
        secret: String,
    },
    /// The object lacks metadata the API server always sets.
    #[error("K0sWorkerConfig has no metadata.{0}")]
    MissingMetadata(&'static str),
    /// The finalizer machinery failed (adding/removing the finalizer, or a wrapped error).
    #[error("finalizer")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// Stable, low-cardinality label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Apply { .. } => "apply",
            Self::Workload { source, .. } => source.metric_label(),
            Self::Render(_) => "render",
            Self::JoinToken(_) => "join_token",
            Self::UnreadableDataSecret { .. } => "unreadable_data_secret",
            Self::MissingMetadata(_) => "missing_metadata",
            Self::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.metric_label()
                }
                _ => "finalizer",
            },
        }
    }
}

/// `err` and its sources on one line (for condition messages and logs).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        // Some errors (kube's finalizer and client errors) repeat their source in their own
        // message; print each text once.
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

// ---------------------------------------------------------------------------------------------
// Controller wiring
// ---------------------------------------------------------------------------------------------

/// The configs of `cluster` (same namespace, `cluster.x-k8s.io/cluster-name` label), for the
/// Cluster watch: a Cluster becoming initialized or unpaused wakes its configs.
pub fn configs_of_cluster<'a>(
    configs: impl IntoIterator<Item = &'a K0sWorkerConfig>,
    cluster: &Cluster,
) -> Vec<ObjectRef<K0sWorkerConfig>> {
    let (ns, name) = (cluster.namespace(), cluster.name_any());
    configs
        .into_iter()
        .filter(|c| {
            c.namespace() == ns && capi::cluster_name_label(&c.metadata) == Some(name.as_str())
        })
        .map(ObjectRef::from_obj)
        .collect()
}

/// The config a Machine's `spec.bootstrap.configRef` names, for the Machine watch: a Machine
/// getting its `nodeRef` triggers the token deletion.
pub fn config_of_machine(machine: &Machine) -> Option<ObjectRef<K0sWorkerConfig>> {
    let r = machine.spec.bootstrap.config_ref.as_ref()?;
    let kind = K0sWorkerConfig::kind(&());
    (r.api_group == names::BOOTSTRAP_GROUP && r.kind == kind && !r.name.is_empty()).then(|| {
        let obj = ObjectRef::new(&r.name);
        match machine.namespace() {
            Some(ns) => obj.within(&ns),
            None => obj,
        }
    })
}

/// Builds the controller: `K0sWorkerConfig`s (scoped by `--namespace`/`--watch-filter`), woken
/// by their Cluster and Machine (upstream has no watches and polls every 5 s). `synced` is
/// released once the configs' cache has done its first full list.
///
/// Data Secrets are not watched with `.owns()`: nothing about them is ever reconciled back (the
/// data is immutable), and watching every Secret in the management cluster would cache them all.
pub fn build(
    client: &Client,
    args: &ManagerArgs,
    synced: ReadyGate,
) -> Controller<K0sWorkerConfig> {
    // NB: the configs' reflector is built here rather than by `Controller::new` so the
    // readiness gate can see the first `InitDone` pass through it. Waiting on
    // `Store::wait_until_ready` instead (`Readiness::gate_on_store`) races the controller's own
    // wait on the same store: kube-runtime 5's `DelayedInit` keeps one waker, so only the last
    // waiter is woken and the other never is.
    let (reader, writer) = reflector::store();
    let mut synced = Some(synced);
    let configs = watcher(
        args.api::<K0sWorkerConfig>(client.clone()),
        args.watcher_config(),
    )
    .default_backoff()
    .reflect(writer)
    .inspect(move |event| {
        if let Ok(watcher::Event::InitDone) = event
            && let Some(gate) = synced.take()
        {
            gate.ready();
        }
    })
    .applied_objects();
    let store: Store<K0sWorkerConfig> = reader.clone();
    Controller::for_stream(configs, reader)
        .with_config(args.controller_config())
        .watches(
            args.api::<Cluster>(client.clone()),
            args.watcher_config(),
            move |cluster| configs_of_cluster(store.state().iter().map(|c| &**c), &cluster),
        )
        .watches(
            args.api::<Machine>(client.clone()),
            args.watcher_config(),
            |machine| config_of_machine(&machine),
        )
}

/// Runs the controller until `shutdown` is cancelled. Registers a readiness gate released when
/// the configs are listed.
pub async fn run(
    client: Client,
    args: &ManagerArgs,
    settings: Settings,
    metrics: Metrics,
    readiness: &Readiness,
    shutdown: CancellationToken,
) {
    let controller = build(&client, args, readiness.gate("k0sworkerconfigs"));
    let ctx = Arc::new(Context {
        events: EventPublisher::new(client.clone(), REPORTER),
        client,
        settings,
        metrics,
        backoff: provider_runtime::backoff::Backoff::new(
            ERROR_REQUEUE,
            std::time::Duration::from_secs(300),
        ),
    });
    controller
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                // Reconcile errors are logged by error_policy; this is the queue's own noise
                // (e.g. an object deleted before its turn).
                tracing::debug!(error = %chain(&err), "controller event");
            }
        })
        .await;
}

/// Retries failed reconciles after a short pause and counts the failure.
pub fn error_policy(config: Arc<K0sWorkerConfig>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, err.metric_label());
    warn!(
        name = %config.name_any(),
        namespace = config.namespace().unwrap_or_default(),
        error = %chain(err),
        "reconcile failed"
    );
    Action::requeue(ctx.backoff.failed(&backoff_key(&config)))
}

fn backoff_key(config: &K0sWorkerConfig) -> String {
    format!(
        "{}/{}",
        config.namespace().unwrap_or_default(),
        config.name_any()
    )
}

/// Reconciles one `K0sWorkerConfig`, behind the finalizer that deletes its token.
pub async fn reconcile(config: Arc<K0sWorkerConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        name = %config.name_any(),
        namespace = config.namespace().unwrap_or_default(),
        generation = config.metadata.generation.unwrap_or_default()
    );
    async move {
        let _timer = ctx.metrics.reconcile_started(CONTROLLER);
        let ns = config
            .namespace()
            .ok_or(Error::MissingMetadata("namespace"))?;
        let api: Api<K0sWorkerConfig> = Api::namespaced(ctx.client.clone(), &ns);
        let key = backoff_key(&config);
        let result =
            finalizer::finalizer(&api, names::BOOTSTRAP_FINALIZER, config, |event| async {
                match event {
                    FinalizerEvent::Apply(config) => apply(config, &ctx).await,
                    FinalizerEvent::Cleanup(config) => cleanup(config, &ctx).await,
                }
            })
            .await
            .map_err(|e| Error::Finalizer(Box::new(e)));
        if result.is_ok() {
            ctx.backoff.succeeded(&key);
        }
        result
    }
    .instrument(span)
    .await
}

// ---------------------------------------------------------------------------------------------
// Fetch
// ---------------------------------------------------------------------------------------------

/// What we need from the owner.
#[derive(Debug, Clone)]
struct Owner {
    name: String,
    version: Option<String>,
    is_pool: bool,
    node_joined: bool,
    cluster_name: Option<String>,
}

impl Owner {
    fn info(&self) -> OwnerInfo<'_> {
        OwnerInfo {
            name: &self.name,
            version: self.version.as_deref(),
            is_pool: self.is_pool,
        }
    }
}

async fn fetch_owner(
    config: &K0sWorkerConfig,
    ctx: &Context,
    ns: &str,
) -> Result<Option<Owner>, Error> {
    let Some(owner_ref) = config.owner_references().iter().find(|r| {
        r.api_version.split('/').next() == Some(names::CAPI_GROUP)
            && (r.kind == "Machine" || r.kind == "MachinePool")
    }) else {
        return Ok(None);
    };
    let label_cluster = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        capi::cluster_name_label(meta).map(str::to_string)
    };
    if owner_ref.kind == "Machine" {
        let api: Api<Machine> = Api::namespaced(ctx.client.clone(), ns);
        let machine = api
            .get_opt(&owner_ref.name)
            .await
            .map_err(kube_err(format!("reading Machine {ns}/{}", owner_ref.name)))?;
        Ok(machine.map(|m| Owner {
            name: m.name_any(),
            version: m.spec.version.clone(),
            is_pool: false,
            node_joined: m
                .status
                .as_ref()
                .and_then(|s| s.node_ref.as_ref())
                .is_some_and(|n| !n.name.is_empty()),
            cluster_name: Some(m.spec.cluster_name.clone())
                .filter(|c| !c.is_empty())
                .or_else(|| label_cluster(&m.metadata)),
        }))
    } else {
        let api: Api<MachinePool> = Api::namespaced(ctx.client.clone(), ns);
        let pool = api
            .get_opt(&owner_ref.name)
            .await
            .map_err(kube_err(format!(
                "reading MachinePool {ns}/{}",
                owner_ref.name
            )))?;
        Ok(pool.map(|p| Owner {
            name: p.name_any(),
            version: p.spec.template.spec.version.clone(),
            is_pool: true,
            node_joined: false,
            cluster_name: Some(p.spec.cluster_name.clone())
                .filter(|c| !c.is_empty())
                .or_else(|| label_cluster(&p.metadata)),
        }))
    }
}

/// Reads every `contentFrom` reference of the spec and `provisioner.customUserDataRef` (each
/// once).
async fn fetch_contents(
    config: &K0sWorkerConfig,
    ctx: &Context,
    ns: &str,
) -> Result<BTreeMap<ContentRef, Resolved>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let mut out = BTreeMap::new();
    let custom_user_data = config.spec.provisioner.custom_user_data_ref.as_ref();
    for source in config
        .spec
        .files
        .iter()
        .filter_map(|f| f.content_from.as_ref())
        .chain(custom_user_data)
    {
        let Some(reference) = ContentRef::from_source(source) else {
            continue; // validate reports it
        };
        if out.contains_key(&reference) {
            continue;
        }
        let resolved = match &reference {
            ContentRef::Secret { name, key } => {
                match secrets
                    .get_opt(name)
                    .await
                    .map_err(kube_err(format!("reading Secret {ns}/{name}")))?
                {
                    None => Resolved::ObjectMissing,
                    Some(s) => s
                        .data
                        .and_then(|d| d.get(key).map(|v| v.0.clone()))
                        .map_or(Resolved::KeyMissing, Resolved::Found),
                }
            }
            ContentRef::ConfigMap { name, key } => {
                match config_maps
                    .get_opt(name)
                    .await
                    .map_err(kube_err(format!("reading ConfigMap {ns}/{name}")))?
                {
                    None => Resolved::ObjectMissing,
                    Some(cm) => cm
                        .data
                        .as_ref()
                        .and_then(|d| d.get(key).map(|v| v.clone().into_bytes()))
                        .or_else(|| {
                            cm.binary_data
                                .as_ref()
                                .and_then(|d| d.get(key).map(|v| v.0.clone()))
                        })
                        .map_or(Resolved::KeyMissing, Resolved::Found),
                }
            }
        };
        out.insert(reference, resolved);
    }
    Ok(out)
}

/// `Cluster.spec.controlPlaneEndpoint` as host and port, when complete.
fn endpoint_of(cluster: &Cluster) -> Option<(String, u16)> {
    let e = cluster.control_plane_endpoint()?;
    let port = u16::try_from(e.port?).ok()?;
    Some((e.host.clone().filter(|h| !h.is_empty())?, port))
}

/// A client of `cluster`'s workload cluster from its `<cluster>-kubeconfig` Secret, `None`
/// while the Secret does not exist. The kubeconfig must point at the Cluster's
/// `spec.controlPlaneEndpoint` with inline credentials; anything else is refused
/// ([`WorkloadError::Refused`]) without a connection being attempted.
async fn workload_for(
    ctx: &Context,
    ns: &str,
    cluster: &Cluster,
) -> Result<Option<Workload>, Error> {
    let cluster_name = cluster.name_any();
    let workload_err = |source| Error::Workload {
        cluster: cluster_name.clone(),
        source,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = names::kubeconfig_secret(&cluster_name);
    let Some(secret) = secrets
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {ns}/{name}")))?
    else {
        return Ok(None);
    };
    let (host, port) = endpoint_of(cluster).ok_or_else(|| {
        workload_err(WorkloadError::NoEndpoint {
            cluster: format!("{ns}/{cluster_name}"),
        })
    })?;
    let endpoint = Endpoint { host: &host, port };
    Workload::from_kubeconfig_secret(&secret, &endpoint)
        .map(Some)
        .map_err(workload_err)
}

/// The message of a refused kubeconfig, when `err` is one.
fn kubeconfig_refusal(err: &Error) -> Option<String> {
    match err {
        Error::Workload {
            source: source @ WorkloadError::Refused { .. },
            ..
        } => Some(source.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Status helpers
// ---------------------------------------------------------------------------------------------

fn now() -> Time {
    Time(Timestamp::now())
}

/// Sets `DataSecretAvailable` and the `Ready` summary that mirrors it.
fn set_available(
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
fn set_waiting_for_owner(
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

fn data_secret_created(status: &K0sWorkerConfigStatus) -> bool {
    status
        .initialization
        .as_ref()
        .and_then(|i| i.data_secret_created)
        == Some(true)
}

async fn write_status(
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

// ---------------------------------------------------------------------------------------------
// Apply
// ---------------------------------------------------------------------------------------------

async fn apply(config: Arc<K0sWorkerConfig>, ctx: &Context) -> Result<Action, Error> {
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
            &chain(err),
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
    let name = config.name_any();
    let generation = config.metadata.generation;

    let Some(owner) = fetch_owner(config, ctx, &ns).await? else {
        set_waiting_for_owner(
            status,
            "Waiting for a Machine or MachinePool owner",
            generation,
        );
        return Ok(Action::await_change());
    };
    let Some(cluster_name) = owner
        .cluster_name
        .clone()
        .or_else(|| capi::cluster_name_label(&config.metadata).map(str::to_string))
    else {
        set_waiting_for_owner(status, "The owner names no Cluster yet", generation);
        return Ok(Action::await_change());
    };
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters
        .get_opt(&cluster_name)
        .await
        .map_err(kube_err(format!("reading Cluster {ns}/{cluster_name}")))?
    else {
        set_waiting_for_owner(
            status,
            &format!("Cluster {cluster_name} does not exist"),
            generation,
        );
        return Ok(Action::requeue(RETRY));
    };

    let paused = pause::set_paused_condition(
        &mut status.conditions,
        Some(&cluster),
        &config.metadata,
        generation,
        now(),
    );
    if paused.paused {
        return Ok(Action::await_change());
    }

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = secrets
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {ns}/{name}")))?;
    let data_secret = match existing {
        Some(secret) if data_secret::is_controlled_by(&secret, config) => secret,
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
            return Ok(Action::await_change());
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
            return Ok(Action::await_change());
        }
        None => match generate(config, ctx, status, &owner, &cluster).await? {
            Generated::Secret(secret) => *secret,
            Generated::Waiting(action) => return Ok(action),
        },
    };

    // The data exists (now or from an earlier reconcile or provider): keep status in line with
    // it (rebuilt after clusterctl move, which does not move status) and look after its token.
    status.data_secret_name = Some(name.clone());
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
    token_lifecycle(config, ctx, status, &owner, &cluster, &data_secret).await
}

enum Generated {
    Secret(Box<Secret>),
    Waiting(Action),
}

/// Generates the bootstrap data once: token, join token, cloud-config, data Secret.
async fn generate(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
    owner: &Owner,
    cluster: &Cluster,
) -> Result<Generated, Error> {
    let ns = config
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let uid = config.uid().ok_or(Error::MissingMetadata("uid"))?;
    let generation = config.metadata.generation;
    let cluster_name = cluster.name_any();
    let waiting =
        |status: &mut K0sWorkerConfigStatus, reason: &str, message: &str, action: Action| {
            set_available(status, false, reason, message, generation);
            Ok(Generated::Waiting(action))
        };

    let Some((host, port)) = endpoint_of(cluster).filter(|_| cluster.control_plane_initialized())
    else {
        return waiting(
            status,
            cond::WAITING_FOR_CONTROL_PLANE_INITIALIZATION_REASON,
            "Control plane is not ready yet: waiting for the Cluster's control plane to be initialized and its endpoint to be set",
            // The Cluster watch wakes us; the requeue is only a safety net.
            Action::requeue(Duration::from_secs(60)),
        );
    };

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let ca_name = names::ca_secret(&cluster_name);
    let ca = secrets
        .get_opt(&ca_name)
        .await
        .map_err(kube_err(format!("reading Secret {ns}/{ca_name}")))?
        .and_then(|s| s.data)
        .and_then(|d| d.get(names::TLS_CRT_KEY).map(|v| v.0.clone()));
    let Some(ca) = ca else {
        return waiting(
            status,
            cond::REFERENCE_NOT_FOUND_REASON,
            &format!("Waiting for Secret {ca_name} with key tls.crt (the cluster CA)"),
            Action::requeue(RETRY),
        );
    };

    let contents = fetch_contents(config, ctx, &ns).await?;
    let bootstrap = match validate::validate(&config.spec, &owner.info(), |r| {
        contents.get(r).cloned().unwrap_or(Resolved::ObjectMissing)
    }) {
        Ok(b) => b,
        Err(err) => {
            let action = if err.is_transient() {
                Action::requeue(RETRY)
            } else {
                Action::await_change()
            };
            return waiting(status, err.reason(), &err.to_string(), action);
        }
    };

    let workload = match workload_for(ctx, &ns, cluster).await {
        Ok(w) => w,
        Err(err) => match kubeconfig_refusal(&err) {
            Some(message) => {
                warn!(error = %message, "refusing the workload kubeconfig");
                // The Secret is not watched; look again later.
                return waiting(
                    status,
                    cond::KUBECONFIG_REFUSED_REASON,
                    &message,
                    Action::requeue(RETRY),
                );
            }
            None => return Err(err),
        },
    };
    let Some(workload) = workload else {
        return waiting(
            status,
            cond::REFERENCE_NOT_FOUND_REASON,
            &format!(
                "Waiting for Secret {} (the workload cluster's kubeconfig)",
                names::kubeconfig_secret(&cluster_name)
            ),
            Action::requeue(RETRY),
        );
    };
    let workload_err = |source| Error::Workload {
        cluster: cluster_name.clone(),
        source,
    };

    // A token labelled for this config exists when an earlier attempt died between creating it
    // and writing the data Secret: reuse it, never mint a second one.
    let token = match workload.existing_token(&uid).await.map_err(workload_err)? {
        Some(token) => token,
        None => {
            let token = BootstrapToken::generate();
            // A new token's data Secret is written now: its first expiration already respects the
            // maximum lifetime.
            let expiration = token::expiry(
                Timestamp::now(),
                ctx.settings.token_ttl.min(ctx.settings.token_max_lifetime),
            );
            workload
                .apply_token(&token, expiration, &token_owner(config, &uid))
                .await
                .map_err(workload_err)?;
            info!(
                token_id = token.id(),
                "created bootstrap token in the workload cluster"
            );
            token
        }
    };

    let join = join_token::encode(&join_token::api_url(&host, port), &ca, &token)
        .map_err(Error::JoinToken)?;
    let user_data = bootstrap.render(&join).map_err(Error::Render)?;
    let secret =
        data_secret::build(config, &cluster_name, &user_data, token.id()).map_err(|source| {
            Error::Apply {
                what: "bootstrap data Secret",
                source,
            }
        })?;
    let stored = apply::apply(&secrets, &secret, data_secret::FIELD_MANAGER)
        .await
        .map_err(|source| Error::Apply {
            what: "bootstrap data Secret",
            source,
        })?;
    info!(token_id = token.id(), "bootstrap data Secret created");
    publish(
        ctx,
        config,
        false,
        "DataSecretCreated",
        &format!(
            "Bootstrap data Secret created with bootstrap token {}",
            token.id()
        ),
    )
    .await;
    // NB: like upstream we still install the latest k0s without any version, but say so: the
    // node may then not match the control plane.
    if bootstrap.download == (crate::commands::Download::Script { version: None }) {
        publish(
            ctx,
            config,
            true,
            "NoVersion",
            "Neither spec.version nor the Machine's spec.version is set: the node installs the latest k0s release, which may not match the control plane",
        )
        .await;
    }
    Ok(Generated::Secret(Box::new(stored)))
}

fn token_owner(config: &K0sWorkerConfig, uid: &str) -> TokenOwner {
    TokenOwner {
        config_uid: uid.to_string(),
        config_namespace: config.namespace().unwrap_or_default(),
        config_name: config.name_any(),
    }
}

async fn publish(ctx: &Context, config: &K0sWorkerConfig, warning: bool, reason: &str, note: &str) {
    let type_ = if warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    if let Err(err) = ctx
        .events
        .publish(config, type_, reason, "Reconcile", note)
        .await
    {
        warn!(error = %chain(&err), "publishing event");
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

/// Keeps the token valid until the Machine's Node joins, then deletes it.
///
/// NB: upstream creates a 24 h token and never touches it again: the credential outlives the
/// join by up to a day, and a machine that boots later than that cannot join. A short TTL that
/// is refreshed until the join, then a deletion, closes both gaps (docs/deviations.md).
async fn token_lifecycle(
    config: &K0sWorkerConfig,
    ctx: &Context,
    status: &mut K0sWorkerConfigStatus,
    owner: &Owner,
    cluster: &Cluster,
    data_secret: &Secret,
) -> Result<Action, Error> {
    let cluster_name = cluster.name_any();
    let cluster_name = cluster_name.as_str();
    let ns = config
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let generation = config.metadata.generation;
    let unreadable = || Error::UnreadableDataSecret {
        secret: format!("{ns}/{}", config.name_any()),
    };
    // The annotation is the fast path; data written by upstream k0smotron has none, and its
    // token is read from the data itself.
    let token_id =
        match data_secret::token_id(data_secret).filter(|id| token::validate_id(id).is_ok()) {
            Some(id) => id.to_string(),
            None => token_of_data_secret(data_secret)
                .ok_or_else(unreadable)?
                .id()
                .to_string(),
        };
    let already_deleted =
        provider_runtime::conditions::get(&status.conditions, cond::BOOTSTRAP_TOKEN_AVAILABLE)
            .is_some_and(|c| c.status == "False" && c.reason == cond::NODE_JOINED_REASON);

    if owner.node_joined && already_deleted {
        return Ok(Action::await_change());
    }
    let workload = match workload_for(ctx, &ns, cluster).await {
        Ok(w) => w,
        Err(err) => match kubeconfig_refusal(&err) {
            Some(message) => {
                warn!(error = %message, "refusing the workload kubeconfig");
                set_condition(
                    &mut status.conditions,
                    cond::BOOTSTRAP_TOKEN_AVAILABLE,
                    ConditionStatus::False,
                    cond::KUBECONFIG_REFUSED_REASON,
                    &message,
                    generation,
                    now(),
                );
                return Ok(Action::requeue(RETRY));
            }
            None => return Err(err),
        },
    };

    if owner.node_joined {
        if let Some(workload) = workload {
            workload
                .delete_token(&token_id)
                .await
                .map_err(|source| Error::Workload {
                    cluster: cluster_name.to_string(),
                    source,
                })?;
        }
        info!(token_id, "node joined; bootstrap token deleted");
        set_condition(
            &mut status.conditions,
            cond::BOOTSTRAP_TOKEN_AVAILABLE,
            ConditionStatus::False,
            cond::NODE_JOINED_REASON,
            &format!(
                "The Machine's Node joined; bootstrap token {token_id} was deleted from the workload cluster"
            ),
            generation,
            now(),
        );
        publish(
            ctx,
            config,
            false,
            "BootstrapTokenDeleted",
            &format!("Node joined; bootstrap token {token_id} deleted"),
        )
        .await;
        return Ok(Action::await_change());
    }

    let Some(workload) = workload else {
        // Without a kubeconfig there is nothing to refresh against; look again later.
        return Ok(Action::requeue(RETRY));
    };
    let workload_err = |source| Error::Workload {
        cluster: cluster_name.to_string(),
        source,
    };
    let current = workload
        .token_secret(&token_id)
        .await
        .map_err(workload_err)?;
    let now_ts = Timestamp::now();
    // The data Secret is written right after the token is created: its age is the token's.
    let issued = data_secret
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now_ts, |t| t.0);
    let bound = token::lifetime_bound(issued, ctx.settings.token_max_lifetime);
    let Some(new_expiry) = token::refreshed_expiry(now_ts, ctx.settings.token_ttl, bound) else {
        set_condition(
            &mut status.conditions,
            cond::BOOTSTRAP_TOKEN_AVAILABLE,
            ConditionStatus::False,
            cond::TOKEN_LIFETIME_EXCEEDED_REASON,
            &format!(
                "Bootstrap token {token_id} reached its maximum lifetime ({}s) and is left to expire; recreate the config for new nodes",
                ctx.settings.token_max_lifetime.as_secs()
            ),
            generation,
            now(),
        );
        return Ok(Action::await_change());
    };
    let expiration = current.as_ref().and_then(token::secret_expiration);
    // Once capped at the bound, the expiration is as late as it may get: nothing to push. One
    // past the bound (written before a lower --token-max-lifetime) is pulled back.
    if current.is_none()
        || expiration.is_none_or(|e| e > bound)
        || (token::needs_refresh(expiration, now_ts, ctx.settings.token_ttl)
            && expiration != Some(new_expiry))
    {
        let token = token_of_data_secret(data_secret).ok_or_else(unreadable)?;
        if token.id() != token_id {
            return Err(unreadable());
        }
        let uid = config.uid().ok_or(Error::MissingMetadata("uid"))?;
        workload
            .apply_token(&token, new_expiry, &token_owner(config, &uid))
            .await
            .map_err(workload_err)?;
        tracing::debug!(
            token_id,
            recreated = current.is_none(),
            "bootstrap token refreshed"
        );
    }
    set_condition(
        &mut status.conditions,
        cond::BOOTSTRAP_TOKEN_AVAILABLE,
        ConditionStatus::True,
        cond::TOKEN_VALID_REASON,
        &format!(
            "Bootstrap token {token_id} is kept valid (TTL {}s) until the Machine's Node joins",
            ctx.settings.token_ttl.as_secs()
        ),
        generation,
        now(),
    );
    // Look again at the next refresh, or when the lifetime ends, whichever is first.
    let until_bound = now_ts
        .duration_until(bound)
        .try_into()
        .unwrap_or(Duration::ZERO)
        + Duration::from_secs(1);
    Ok(Action::requeue(
        ctx.settings.refresh_interval().min(until_bound),
    ))
}

// ---------------------------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------------------------

/// Deletes the config's token from the workload cluster. Gives up (releasing the finalizer)
/// when the config or its Cluster is paused, when there is no workload cluster to talk to any
/// more, or once the token must have expired anyway (one TTL after the deletion started, since
/// nothing refreshes it after that).
async fn cleanup(config: Arc<K0sWorkerConfig>, ctx: &Context) -> Result<Action, Error> {
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

    let result: Result<usize, Error> = async {
        // Without a Cluster there is no endpoint to check a kubeconfig against, and nothing
        // to talk to; the token expires within one TTL.
        let Some(cluster) = cluster.as_ref() else {
            return Ok(0);
        };
        let Some(workload) = workload_for(ctx, &ns, cluster).await? else {
            return Ok(0);
        };
        let workload_err = |source| Error::Workload {
            cluster: cluster_name.clone(),
            source,
        };
        // By ID (survives clusterctl move, which changes UIDs) and by label (covers a token
        // whose data Secret was never written).
        let mut deleted = workload
            .delete_tokens_for(&uid)
            .await
            .map_err(workload_err)?;
        if let Some(id) = data.as_ref().and_then(data_secret::token_id) {
            workload.delete_token(id).await.map_err(workload_err)?;
            deleted += 1;
        }
        Ok(deleted)
    }
    .await;
    match result {
        Ok(n) => {
            info!(tokens = n, "deleted the config's bootstrap tokens");
            Ok(Action::await_change())
        }
        Err(err) if expired_anyway => {
            warn!(error = %chain(&err), "cannot reach the workload cluster; the bootstrap token has expired by now, releasing the finalizer");
            Ok(Action::await_change())
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use k0smotron_api::capi::{
        Bootstrap, ClusterSpec, ContractVersionedObjectReference, MachineSpec,
    };
    use pretty_assertions::assert_eq;

    fn labelled_config(name: &str, ns: &str, cluster: &str) -> K0sWorkerConfig {
        let mut c = K0sWorkerConfig::new(name, Default::default());
        c.metadata.namespace = Some(ns.into());
        c.metadata.labels = Some(BTreeMap::from([(
            names::CLUSTER_NAME_LABEL.to_string(),
            cluster.to_string(),
        )]));
        c
    }

    #[test]
    fn cluster_maps_to_its_configs_only() {
        let configs = [
            labelled_config("a", "ns", "demo"),
            labelled_config("b", "ns", "other"),
            labelled_config("c", "elsewhere", "demo"),
            labelled_config("d", "ns", "demo"),
        ];
        let mut cluster = Cluster::new("demo", ClusterSpec::default());
        cluster.metadata.namespace = Some("ns".into());
        let refs = configs_of_cluster(configs.iter(), &cluster);
        let names: Vec<_> = refs.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, vec!["a", "d"]);
        assert!(refs.iter().all(|r| r.namespace.as_deref() == Some("ns")));
    }

    #[test]
    fn machine_maps_to_its_worker_config_only() {
        let machine = |group: &str, kind: &str| {
            let mut m = Machine::new(
                "m",
                MachineSpec {
                    bootstrap: Bootstrap {
                        config_ref: Some(ContractVersionedObjectReference {
                            api_group: group.into(),
                            kind: kind.into(),
                            name: "cfg".into(),
                        }),
                        data_secret_name: None,
                    },
                    ..MachineSpec::default()
                },
            );
            m.metadata.namespace = Some("ns".into());
            m
        };
        let r =
            config_of_machine(&machine("bootstrap.cluster.x-k8s.io", "K0sWorkerConfig")).unwrap();
        assert_eq!(
            (r.name.as_str(), r.namespace.as_deref()),
            ("cfg", Some("ns"))
        );
        assert!(
            config_of_machine(&machine("bootstrap.cluster.x-k8s.io", "KubeadmConfig")).is_none()
        );
        assert!(config_of_machine(&machine("example.com", "K0sWorkerConfig")).is_none());
        assert!(config_of_machine(&Machine::new("m", MachineSpec::default())).is_none());
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("900").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_ttl("10s").is_err());
        assert!(parse_ttl("soon").is_err());
        assert_eq!(
            Settings::default().refresh_interval(),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn data_secret_token_is_recoverable() {
        use crate::commands::{Download, InstallArgs};
        use crate::render::WorkerBootstrap;
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
            custom_user_data: Some(
                crate::cloudinit::UserCloudConfig::parse(
                    "write_files: [{path: /etc/x, source: {uri: 'https://x'}}]\nruncmd: [[ls, -l]]\n",
                )
                .unwrap(),
            ),
            ..b
        };
        let secret =
            data_secret::build(&config, "demo", &b.render(&join).unwrap(), token.id()).unwrap();
        assert_eq!(token_of_data_secret(&secret), Some(token));
    }
}
