//! The reconciler: fetch → validate/build (pure, in [`crate::build`]) → apply → status, behind the
//! finalizer, plus the availability probe and deletion.
//!
//! The only module that talks to the API server for a control plane. Writes are server-side
//! applies with named field managers (forced only on objects we own), creates that never
//! overwrite (generated certificates), and deletes of objects we control.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k0smotron_api::capi::Cluster;
use k0smotron_api::conditions as cond;
use k0smotron_api::controlplane::v1beta2::{
    ClusterSpec, K0smotronControlPlane, K0smotronControlPlaneStatus, ServiceType, StorageType,
};
use k0smotron_api::names;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource, ResourceExt};
use provider_runtime::apply::{AppliedMemo, ApplyError, apply, apply_status};
use provider_runtime::backoff::{Backoff, Waits};
use provider_runtime::events::EventPublisher;
use provider_runtime::events::{EventType, severity};
use provider_runtime::kubeconfig;
use provider_runtime::metrics::Metrics;
use provider_runtime::pause;
use provider_runtime::reconcile::{ReconcileError, object_key, with_finalizer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, instrument, warn};

use crate::build::{self, DesiredState, Facts, StatefulSetPlan};
use crate::control_plane::{ControlPlane, ControlPlaneError, ControlPlaneObject};
use crate::dynamic_config::{self, Outcome, Plan};
use crate::hosting::{self, HostingError, Scope};
use crate::infra;
use crate::labels;
use crate::quiet;
use crate::statefulset::INPUTS_HASH_ANNOTATION;
use crate::status::{self, Failure, Probe, StatusInputs};
use crate::stores::{self, Kept, Lookup, Stores};
use crate::v1beta1_status::{self, Reconciliation};
use crate::validate::FieldPolicy;

use crate::ownership::controlled_by;
pub use crate::ownership::{MANAGER, SCALE_MANAGER};
/// Field manager owning only `spec.controlPlaneEndpoint` of the control plane.
pub const ENDPOINT_MANAGER: &str = "k0smotron-controlplane-endpoint";
/// Field manager owning only the `k0sproject.io/cluster-id` annotation of the CAPI Cluster.
pub const CLUSTER_ID_MANAGER: &str = "k0smotron-controlplane-cluster-id";
/// Metrics and log name of this controller.
pub const CONTROLLER_NAME: &str = "k0smotroncontrolplane";

/// Shared state of the reconciler.
#[derive(Clone)]
pub struct Context {
    /// Client of the management cluster.
    pub client: Client,
    /// Event publisher.
    pub events: EventPublisher,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// Timeout of the availability probe through the kubeconfig (upstream: 10 s).
    pub probe_timeout: Duration,
    /// Requeue interval when everything is settled (safety net; watches drive the rest).
    pub resync: Duration,
    /// The spec fields this installation allows (the `--allow-*` flags).
    pub policy: FieldPolicy,
    /// What was last applied, so an unchanged child is not written again on every reconcile.
    pub applied: Arc<AppliedMemo>,
    /// Retry delays of objects whose reconcile failed (per object, doubling).
    pub backoff: Arc<Backoff>,
    /// Requeue delays of control planes waiting for their API to answer (per object, doubling
    /// while nothing changes).
    pub waits: Arc<Waits>,
    /// What the last full reconcile of each waiting control plane read, so that a requeue that
    /// finds none of it changed only probes again ([`crate::quiet`]).
    pub quiet: Arc<crate::quiet::Quiet>,
    /// Bodies of the management cluster's Secrets read or created lately, served again while
    /// the Secret index shows the same version ([`crate::secret_bodies`]).
    pub secret_bodies: Arc<crate::secret_bodies::SecretBodies>,
    /// What the watches keep: children, pods, Nodes and CAPI Clusters read without a round trip.
    pub stores: Stores,
    /// Clients of the hosting clusters of control planes with `spec.remoteHostCluster`.
    pub hosts: Arc<crate::hosting::Clients>,
    /// Watches of those hosting clusters.
    pub host_watches: Arc<crate::host_watches::HostWatches>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("probe_timeout", &self.probe_timeout)
            .field("resync", &self.resync)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Errors of a reconcile (failures of I/O; spec problems are reported in status, not here).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A read failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was read.
        what: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A write (create, delete, patch) failed.
    #[error("writing {what}: {source}")]
    Write {
        /// What was written.
        what: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A server-side apply failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A child exists but another object controls it; we do not take it over.
    #[error("{kind} {name} is controlled by {owner}; not taking it over")]
    OwnedByOther {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// The other controller.
        owner: String,
    },
    /// The object has no namespace.
    #[error("the control-plane object has no namespace")]
    NoNamespace,
    /// The object lacks what the API server always sets.
    #[error(transparent)]
    Object(#[from] ControlPlaneError),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The hosting cluster of a remote control plane failed (deletion only; a reconcile reports
    /// it in status).
    #[error(transparent)]
    Hosting(#[from] HostingError),
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Write { .. } => "write",
            Self::Apply(e) => e.metric_label(),
            Self::OwnedByOther { .. } => "owned_by_other",
            Self::NoNamespace => "no_namespace",
            Self::Object(_) => "incomplete_object",
            Self::Finalizer(_) => "finalizer",
            Self::Hosting(_) => "hosting",
        }
    }
}

impl Error {
    /// Condition reason when the error is reported in status.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::OwnedByOther { .. } => k0smotron_api::conditions::OBJECT_OWNED_BY_OTHER_REASON,
            Self::Hosting(e) => e.reason(),
            _ => cond::INTERNAL_ERROR_REASON,
        }
    }
}

fn read_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Read {
        what,
        source: Box::new(source),
    }
}

fn write_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Write {
        what,
        source: Box::new(source),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// What a store's miss means to a read ([`cached`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnMiss {
    /// Read it by GET: for objects we write. A store lags, and a foreign object squatting on
    /// the name without our label is not in it: found by name, it is refused, not overwritten.
    Get,
    /// Absent, once the store has listed: for objects we only delete or only read when present
    /// (the Services and CronJobs of another configuration, the etcd StatefulSet of a control
    /// plane without etcd). Ours carry the label the watch selects; one created a moment ago and
    /// missed here wakes the control plane again when the store has it.
    Absent,
}

/// `name` from `kept`; a miss as `on_miss` says (before the store has listed: by GET).
async fn cached<K>(
    kept: &Kept<K>,
    api: &Api<K>,
    ns: &str,
    name: &str,
    on_miss: OnMiss,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match kept.get(ns, name) {
        Lookup::Found(obj) => Ok(Some(obj)),
        Lookup::Missing if on_miss == OnMiss::Absent => Ok(None),
        Lookup::Missing | Lookup::Unknown => get_opt(api, name).await,
    }
}

/// A StatefulSet from the store carries only part of its pod template (`stores`); when another
/// writer has edited the template, the whole live object is read, since
/// `ownership::template_drifted` compares it with ours.
async fn whole_if_edited(
    sts: Option<StatefulSet>,
    api: &Api<StatefulSet>,
) -> Result<Option<StatefulSet>, Error> {
    match sts {
        Some(s) if crate::ownership::foreign_template_edit(&s) => get_opt(api, &s.name_any()).await,
        other => Ok(other),
    }
}

async fn get_opt<K>(api: &Api<K>, name: &str) -> Result<Option<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    api.get_opt(name)
        .await
        .map_err(read_err(format!("{} {name}", K::kind(&Default::default()))))
}

fn now_time() -> (Timestamp, Time) {
    let now = Timestamp::now();
    (now, Time(now))
}

/// The owning CAPI Cluster's name, from the owner references (CAPI sets one, controller or not).
pub fn owner_cluster_name(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references.as_ref()?.iter().find_map(|r| {
        (r.kind == "Cluster"
            && r.api_version
                .starts_with(&format!("{}/", names::CAPI_GROUP)))
        .then(|| r.name.clone())
    })
}

/// Entry point of the controller.
#[instrument(skip_all, fields(name = %kcp.name_any(), namespace = kcp.namespace().unwrap_or_default(), generation = kcp.metadata.generation))]
pub async fn reconcile(
    kcp: Arc<K0smotronControlPlane>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER_NAME);
    let ns = kcp.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<K0smotronControlPlane> = Api::namespaced(ctx.client.clone(), &ns);
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = match owner_cluster_name(&kcp.metadata) {
        Some(name) => cached(&ctx.stores.clusters, &clusters, &ns, &name, OnMiss::Get).await?,
        None => None,
    };

    if paused(&ctx, kcp.as_ref(), cluster.as_ref()).await? {
        return Ok(Action::await_change());
    }

    if kcp.metadata.deletion_timestamp.is_some() {
        ctx.waits.done(&object_key(kcp.as_ref()));
        ctx.quiet.forget(&object_key(kcp.as_ref()));
    }
    with_finalizer(
        &api,
        names::CONTROLPLANE_FINALIZER,
        kcp,
        &ctx.backoff,
        |kcp| apply_event(kcp, cluster, &ctx),
        |kcp| cleanup(kcp, &ctx),
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The pause gate of both kinds (the standalone kind has no CAPI Cluster: only the
/// `cluster.x-k8s.io/paused` annotation pauses it). Runs before the finalizer, whose patch would
/// be a change; a paused object gets only its `Paused` condition written.
pub(crate) async fn paused<K>(
    ctx: &Context,
    obj: &K,
    cluster: Option<&Cluster>,
) -> Result<bool, Error>
where
    K: ControlPlaneObject,
{
    let (_, now) = now_time();
    let mut st = obj.common_status();
    let gate = pause::gate(&ctx.events, obj, &mut st.conditions, cluster, now).await;
    if gate.paused && gate.changed {
        write_status(ctx, obj, &st, Reconciliation::Unchanged).await?;
    }
    Ok(gate.paused)
}

/// Requeue policy on errors.
pub fn error_policy(kcp: Arc<K0smotronControlPlane>, err: &Error, ctx: Arc<Context>) -> Action {
    provider_runtime::reconcile::error_policy(
        CONTROLLER_NAME,
        kcp.as_ref(),
        err,
        &ctx.metrics,
        &ctx.backoff,
    )
}

/// Writes `st` as `obj`'s status (in its kind's form, for a reconcile that ended as
/// `reconciliation` says), unless it is already what is stored.
pub(crate) async fn write_status<K>(
    ctx: &Context,
    obj: &K,
    st: &K0smotronControlPlaneStatus,
    reconciliation: Reconciliation<'_>,
) -> Result<(), Error>
where
    K: ControlPlaneObject,
{
    let own = obj.own_status(st, reconciliation);
    if obj.stored_status() == Some(&own) {
        return Ok(());
    }
    let ns = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    apply_status(&api, &obj.name_any(), &own, MANAGER).await?;
    Ok(())
}

async fn apply_event(
    kcp: Arc<K0smotronControlPlane>,
    cluster: Option<Cluster>,
    ctx: &Context,
) -> Result<Action, Error> {
    let ns = kcp.namespace().ok_or(Error::NoNamespace)?;
    let (now, now_t) = now_time();

    let Some(cluster) = cluster else {
        // CAPI sets the owner reference once the Cluster refers to us; the KCP update wakes us.
        let failure = Failure {
            reason: cond::WAITING_FOR_OWNER_REASON.into(),
            message: "waiting for Cluster API to set the owner reference to the Cluster".into(),
        };
        report_without_cluster(ctx, &kcp, failure, now_t).await?;
        return Ok(Action::await_change());
    };
    let cluster_name = cluster.name_any();
    // Anyone who can write this object can point its owner reference at any Cluster of the
    // namespace; only the Cluster's own spec.controlPlaneRef says which control plane is its.
    if !refers_to(&cluster, &kcp) {
        let failure = Failure {
            reason: cond::NOT_REFERENCED_BY_CLUSTER_REASON.into(),
            message: format!(
                "Cluster {cluster_name} does not refer to this control plane in spec.controlPlaneRef; nothing is created for it"
            ),
        };
        info!(cluster = %cluster_name, "the owner Cluster refers to another control plane");
        report_without_cluster(ctx, &kcp, failure, now_t).await?;
        // The Cluster watch maps only through controlPlaneRef, so a fix there does not wake us.
        return Ok(Action::requeue(Duration::from_secs(60)));
    }

    // When we published spec.controlPlaneEndpoint ourselves, it is not the user's choice: the
    // build does not see it, so the endpoint can follow the address.
    let cp = ControlPlane::from_kcp(&kcp, endpoint_owned_by_provider(&kcp.metadata))?;
    let done = match run(ctx, &*kcp, cp, cluster_name, Some(&cluster), now).await? {
        Ran::Stopped(action) => return Ok(action),
        Ran::Unchanged(action) => {
            ctx.metrics.reconcile_unchanged(CONTROLLER_NAME);
            return Ok(action);
        }
        Ran::Done(done) => done,
    };

    // What only the Cluster API kind does: the contract's endpoint, the infrastructure marking,
    // the cluster id on the CAPI Cluster.
    if done.desired.publish_endpoint
        && let Some(endpoint) = &done.desired.endpoint
        && kcp.spec.control_plane_endpoint.as_ref() != Some(endpoint)
    {
        publish_endpoint(ctx, &kcp, endpoint).await?;
    }
    let infra_pending =
        provision_self_managed_infrastructure(ctx, &kcp, &ns, &cluster, &done.desired).await;
    if infra_pending {
        // Waiting for the infrastructure too: no watch says when it is done.
        ctx.quiet.forget(&object_key(kcp.as_ref()));
    }
    if let Some(uid) = &done.kube_system_uid {
        annotate_cluster_id(ctx, &ns, &cluster, uid).await;
    }
    Ok(requeue(ctx, kcp.as_ref(), &done, !infra_pending))
}

/// When to look at a reconciled control plane again: after the resync interval once settled;
/// while it waits, soon after anything changed and less and less often while nothing does (the
/// watches bring every change of its children at once anyway).
pub(crate) fn requeue<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    done: &Done,
    also_settled: bool,
) -> Action {
    let key = object_key(obj);
    let delay = if done.settled && also_settled {
        ctx.waits.done(&key);
        ctx.resync
    } else {
        ctx.waits.still_waiting(&key, done.observed)
    };
    if done.remote {
        // No watch sees the hosting cluster: look again at least this often.
        Action::requeue(delay.min(hosting::REMOTE_RESYNC))
    } else {
        Action::requeue(delay)
    }
}

/// How [`run`] ended.
pub(crate) enum Ran {
    /// A failure was reported in status; return this action.
    Stopped(Action),
    /// Nothing the last full run read has changed and the probe answers as it did: nothing
    /// else ran; return this action.
    Unchanged(Action),
    /// Every stage ran.
    Done(Box<Done>),
}

/// What [`run`] leaves for the kind's own steps.
pub(crate) struct Done {
    /// The desired state that was applied.
    pub(crate) desired: DesiredState,
    /// Nothing is pending: pods ready and up to date, the API answered, no follow-up.
    pub(crate) settled: bool,
    /// The hosted cluster's `kube-system` uid, when the probe answered.
    pub(crate) kube_system_uid: Option<String>,
    /// A hash of what this run observed (generation, the StatefulSets' and the Service's
    /// resource versions, the probe's answer): equal in two runs when nothing moved.
    pub(crate) observed: u64,
    /// The children live in a hosting cluster (`spec.remoteHostCluster`).
    pub(crate) remote: bool,
}

/// See [`Done::observed`].
fn observed_state(generation: Option<i64>, facts: &Facts, applied: &Applied, probe: Probe) -> u64 {
    use std::hash::{Hash, Hasher};
    let version = |o: Option<&ObjectMeta>| o.and_then(|m| m.resource_version.clone());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    generation.hash(&mut h);
    version(applied.statefulset.as_ref().map(|s| &s.metadata)).hash(&mut h);
    version(applied.etcd_statefulset.as_ref().map(|s| &s.metadata)).hash(&mut h);
    version(facts.exposure_service.as_ref().map(|s| &s.metadata)).hash(&mut h);
    (probe == Probe::Answered).hash(&mut h);
    h.finish()
}

/// The pipeline both kinds run: fetch → build → apply → status, for the control plane `cp` read
/// from `obj`, its children named after `cluster_name`; `capi` is the owner CAPI Cluster of the
/// Cluster API kind. A spec that cannot be built and a child controlled by someone else are
/// reported in `obj`'s status and stop the run.
pub(crate) async fn run<K>(
    ctx: &Context,
    obj: &K,
    cp: ControlPlane,
    cluster_name: String,
    capi: Option<&Cluster>,
    now: Timestamp,
) -> Result<Ran, Error>
where
    K: ControlPlaneObject,
{
    let (_, now_t) = now_time();
    // The stages are boxed: inline, their futures made this one large enough to overflow a
    // 2 MiB stack in debug builds (tokio's default; the binary's workers have 8 MiB).
    let (cp, scope) = match Box::pin(scope_of(ctx, &cp, &cluster_name)).await {
        Ok((scope, None)) => (cp, scope),
        Ok((scope, Some(root_owner))) => (cp.hosted_by(root_owner), scope),
        Err(HostingError::ReadSecret { what, source }) => {
            return Err(Error::Read {
                what: format!("Secret {what}"),
                source,
            });
        }
        Err(e) => {
            info!(reason = e.reason(), error = %e, "the hosting cluster cannot be used");
            report_hosting_failure(ctx, obj, &cp.spec, &e, now_t).await?;
            return Ok(Ran::Stopped(Action::requeue(hosting_retry(ctx, obj, &e))));
        }
    };
    let key = object_key(obj);
    let object_version = obj.meta().resource_version.clone();
    let cluster_version = capi.and_then(|c| c.metadata.resource_version.clone());
    if !scope.remote
        && let Some(unchanged) = ctx.quiet.unchanged(
            &key,
            object_version.as_deref(),
            cluster_version.as_deref(),
            &cp.namespace,
            &ctx.stores,
            Instant::now(),
        )
    {
        if Box::pin(probes_the_same(ctx, &cp.namespace, &unchanged)).await {
            debug!("nothing read has changed and the probe answers as before: waiting again");
            let delay = ctx.waits.still_waiting(&key, unchanged.observed);
            return Ok(Ran::Unchanged(Action::requeue(delay)));
        }
        ctx.quiet.forget(&key);
    }
    let mut facts = Box::pin(fetch(ctx, &scope, cp, cluster_name, capi, now)).await?;
    Box::pin(create_exposure_service_first(ctx, &scope, &mut facts)).await;
    let desired = match build::build_guarded(&facts) {
        Ok(d) => d,
        Err(e) => {
            info!(reason = e.reason(), error = %e, "the spec cannot be reconciled");
            report_failure(ctx, &scope, obj, &facts, e.reason(), e.to_string(), now_t).await?;
            // A missing reference may appear without an event reaching us.
            return Ok(Ran::Stopped(Action::requeue(Duration::from_secs(30))));
        }
    };
    if !desired.overridden.is_empty() {
        debug!(paths = ?desired.overridden, "user k0s config values overridden by the provider");
    }

    let applied =
        match Box::pin(apply_or_report(ctx, &scope, obj, &facts, &desired, &now_t)).await? {
            Ok(a) => a,
            Err(stopped) => return Ok(stopped),
        };

    let ns = &facts.cp.namespace;
    let pods = list_pods(&scope, ns, &facts.cluster_name).await?;
    let counts_ready = pods.iter().any(pod_ready);
    let was_initialized = facts.cp.initialized;
    let dial = desired
        .endpoint
        .as_ref()
        .and_then(|e| dial_address(&scope, e, facts.exposure_service.as_ref()));
    let (probe, kube_system_uid, hosted) = match (
        &desired.kubeconfig,
        &desired.endpoint,
        counts_ready || was_initialized,
    ) {
        (Some(secret), Some(endpoint), true) => {
            probe(secret, endpoint, dial, ctx.probe_timeout).await
        }
        _ => (Probe::NotRun, None, None),
    };
    let dynamic_config = push_dynamic_config(
        ctx,
        &desired.dynamic_config,
        obj.common_status().dynamic_config_hash.as_deref(),
        hosted,
        was_initialized,
    )
    .await;
    let (st, transitions) = status::compute(StatusInputs {
        old: obj.common_status(),
        generation: obj.meta().generation,
        spec: &facts.cp.spec,
        cluster: &facts.cluster_name,
        desired: Some(&desired),
        failure: None,
        pods: &pods,
        statefulset: applied.statefulset.as_ref(),
        etcd_statefulset: applied.etcd_statefulset.as_ref(),
        probe: probe.clone(),
        dynamic_config: dynamic_config.clone(),
        now: now_t,
    });
    // Upstream says its reconcile succeeded once it could make the kubeconfig Secret, which
    // takes a ready replica; until then it leaves the text as it was.
    let reconciliation = if desired.kubeconfig.is_some() && st.ready_replicas.unwrap_or(0) > 0 {
        Reconciliation::Succeeded
    } else {
        Reconciliation::Unchanged
    };
    write_status(ctx, obj, &st, reconciliation).await?;
    report(ctx, obj, &transitions).await;
    report_kubeconfig_regenerated(ctx, obj, &facts, &desired).await;

    let replicas = facts.cp.spec.replicas;
    let settled = desired.waiting.is_none()
        && probe == Probe::Answered
        && !dynamic_config.pending()
        && st.ready_replicas == Some(replicas)
        && st.up_to_date_replicas == Some(replicas)
        && applied.settled;
    let observed = observed_state(obj.meta().generation, &facts, &applied, probe.clone());
    if scope.remote || settled || !facts.claims.is_empty() {
        // Remote children are in no store; claims grow without a watch seeing it.
        ctx.quiet.forget(&key);
    } else {
        let probed_with = match (&probe, &desired.kubeconfig, &desired.endpoint) {
            (Probe::NotRun, _, _) => None,
            (_, Some(secret), Some(endpoint)) => secret
                .metadata
                .name
                .clone()
                .map(|name| (name, endpoint.clone(), dial)),
            _ => None,
        };
        ctx.quiet.remember(
            &key,
            object_version.as_deref(),
            cluster_version.as_deref(),
            ns,
            reads_of(&facts, &desired, &applied, &pods),
            quiet::Outcome {
                probe,
                probed_with,
                observed,
            },
            &ctx.stores,
            Instant::now() + ctx.resync,
        );
    }
    Ok(Ran::Done(Box::new(Done {
        desired,
        settled,
        kube_system_uid,
        observed,
        remote: scope.remote,
    })))
}

/// Whether probing the API of an unchanged control plane again answers as the last full run's
/// probe did (no probe ran then: nothing to ask). The kubeconfig read must be the version the
/// memo was made with.
async fn probes_the_same(ctx: &Context, ns: &str, unchanged: &quiet::Unchanged) -> bool {
    let Some((name, endpoint, dial)) = &unchanged.probe_with else {
        return true;
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Ok(Some(secret)) = read_secret(ctx, &api, ns, name).await else {
        return false;
    };
    let version = secret
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or_default();
    if ctx.stores.secrets.get(ns, name) != Some(Some(stores::version_hash(version))) {
        return false;
    }
    let (answer, _, _) = probe(&secret, endpoint, *dial, ctx.probe_timeout).await;
    answer == unchanged.probe
}

/// Reads the management cluster's Secret `ns/name` (`api` is of that cluster): its kept body
/// while the Secret index shows the kept version, else by GET, keeping what was read.
async fn read_secret(
    ctx: &Context,
    api: &Api<Secret>,
    ns: &str,
    name: &str,
) -> Result<Option<Secret>, Error> {
    let current = ctx.stores.secrets.get(ns, name).flatten();
    if let Some(kept) = ctx.secret_bodies.get(ns, name, current) {
        ctx.metrics.secret_read("kept");
        return Ok(Some(kept));
    }
    ctx.metrics.secret_read("api");
    let found = get_opt(api, name).await?;
    if let Some(s) = &found {
        ctx.secret_bodies.put(s);
    }
    Ok(found)
}

/// The names of the objects of `metas`.
fn names_of(metas: Vec<&ObjectMeta>) -> Vec<String> {
    metas.into_iter().filter_map(|m| m.name.clone()).collect()
}

/// What a full run read, by kind and name, for [`quiet::Quiet::remember`].
fn reads_of(
    facts: &Facts,
    desired: &DesiredState,
    applied: &Applied,
    pods: &[Pod],
) -> quiet::Reads {
    use quiet::Input;
    let version = |meta: &ObjectMeta| {
        stores::version_hash(meta.resource_version.as_deref().unwrap_or_default())
    };
    let live = |kind: &str, name: &str| {
        Some(
            applied
                .live
                .get(&(kind.to_string(), name.to_string()))
                .map(|v| stores::version_hash(v)),
        )
    };
    let spec = &facts.cp.spec;
    let cluster = &facts.cluster_name;
    let mut inputs = Vec::new();
    for name in build::secret_names(spec, cluster) {
        let read = facts.secrets.get(&name).map(|s| version(&s.metadata));
        inputs.push((Input::Secret, name, Some(read)));
    }
    inputs.push((
        Input::StatefulSet,
        names::kmc_name(cluster),
        Some(facts.statefulset.as_ref().map(|s| version(&s.metadata))),
    ));
    if spec.storage.type_ == StorageType::Etcd {
        inputs.push((
            Input::StatefulSet,
            names::etcd_name(cluster),
            Some(
                facts
                    .etcd_statefulset
                    .as_ref()
                    .map(|s| version(&s.metadata)),
            ),
        ));
    }
    for name in names_of(desired.config_maps.iter().map(|c| &c.metadata).collect()) {
        let read = live("ConfigMap", &name);
        inputs.push((Input::ConfigMap, name, read));
    }
    for name in names_of(desired.services.iter().map(|c| &c.metadata).collect()) {
        let read = live("Service", &name);
        inputs.push((Input::Service, name, read));
    }
    for name in &desired.obsolete_services {
        inputs.push((Input::Service, name.clone(), None));
    }
    for name in names_of(desired.cron_jobs.iter().map(|c| &c.metadata).collect()) {
        let read = live("CronJob", &name);
        inputs.push((Input::CronJob, name, read));
    }
    for name in &desired.obsolete_cron_jobs {
        inputs.push((Input::CronJob, name.clone(), None));
    }
    if let Some(ingress) = &desired.ingress {
        let name = ingress.name_any();
        let read = live("Ingress", &name);
        inputs.push((Input::Ingress, name, read));
    }
    if let Some(name) = &desired.obsolete_ingress {
        inputs.push((Input::Ingress, name.clone(), None));
    }
    for pod in pods {
        inputs.push((Input::Pod, pod.name_any(), Some(stores::pod_state(pod))));
    }
    let reads_nodes = spec.service.type_ == ServiceType::NodePort
        && spec.external_address.as_deref().is_none_or(str::is_empty);
    quiet::Reads {
        inputs,
        nodes: reads_nodes.then(|| quiet::nodes_hash(&facts.nodes)),
    }
}

/// Creates the exposure Service of a control plane that has none yet, so that its cluster IP is
/// known to the build that follows: the certificates, the k0s config and the StatefulSet are then
/// written once, in this reconcile, instead of the config being written without the address and
/// again a reconcile later (at 1,000 new control planes that was 1,000 ConfigMap writes, a status
/// write and a whole reconcile each; bench/README.md). The Service did not exist a moment ago
/// (`fetch` read it, in the hosting cluster for a remote one), so there is nothing of another owner to check. A failure changes nothing:
/// the apply stage writes the Service again and reports what the API server said.
async fn create_exposure_service_first(ctx: &Context, scope: &Scope, facts: &mut Facts) {
    let Some(service) = build::exposure_service_first(facts) else {
        return;
    };
    let api: Api<Service> = Api::namespaced(scope.client.clone(), &facts.cp.namespace);
    match ctx.applied.apply_stored(&api, &service, MANAGER).await {
        Ok(stored) => facts.exposure_service = Some(stored),
        Err(e) => debug!(error = %e, "creating the exposure Service first failed"),
    }
}

/// When to try a hosting cluster that cannot be used again. One that does not answer holds a
/// reconcile worker for up to the probe timeout each time, and must not take the workers from
/// the others: 10 s, doubling while the failure stays the same, up to the resync period. The
/// other failures cost no request there; the Secret they are about is not watched.
fn hosting_retry<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    e: &HostingError,
) -> Duration {
    if !matches!(e, HostingError::Unavailable { .. }) {
        return hosting::REMOTE_RESYNC;
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    e.to_string().hash(&mut h);
    ctx.waits.still_waiting(&object_key(obj), h.finish())
}

/// Where `cp`'s children live: the management cluster, or (`spec.remoteHostCluster`) the
/// hosting cluster, with the owner reference of the root owner there that controls its
/// children. No request for a control plane in the management cluster.
async fn scope_of(
    ctx: &Context,
    cp: &ControlPlane,
    cluster_name: &str,
) -> Result<(Scope, Option<OwnerReference>), HostingError> {
    let Some(reference) = hosting::kubeconfig_ref(&cp.spec, &cp.namespace, &ctx.policy)? else {
        ctx.host_watches.forget(cp.kind, &cp.namespace, &cp.name);
        return Ok((Scope::local(&ctx.client, &ctx.stores), None));
    };
    let host = hosting::host(&ctx.client, &ctx.hosts, reference, ctx.probe_timeout).await?;
    let root_owner = hosting::ensure_root_owner(&host, cp, cluster_name, ctx.probe_timeout).await?;
    ctx.host_watches.register(
        &host.key,
        &host.watch_client,
        (cp.kind, &cp.namespace, &cp.name),
        cluster_name,
    );
    let scope = Scope {
        client: host.client,
        stores: hosting::no_stores(),
        remote: true,
    };
    Ok((scope, Some(root_owner)))
}

/// Writes the status of a remote control plane whose hosting cluster cannot be used: the
/// failure on `Available`; the replica counts stay as last seen (the pods cannot be read).
async fn report_hosting_failure<K>(
    ctx: &Context,
    obj: &K,
    spec: &ClusterSpec,
    error: &HostingError,
    now: Time,
) -> Result<(), Error>
where
    K: ControlPlaneObject,
{
    let old = obj.common_status();
    let message = error.to_string();
    let failure = Failure {
        reason: error.reason().into(),
        message: message.clone(),
    };
    let (mut st, transitions) = status_without_children(obj, spec, failure, now);
    st.replicas = old.replicas;
    st.ready_replicas = old.ready_replicas;
    st.up_to_date_replicas = old.up_to_date_replicas;
    st.selector = old.selector;
    let reconciliation = Reconciliation::Failed {
        step: v1beta1_status::REMOTE_HOST_STEP,
        message: &message,
    };
    write_status(ctx, obj, &st, reconciliation).await?;
    report(ctx, obj, &transitions).await;
    Ok(())
}

/// The apply stage of [`run`]; a child controlled by someone else, or one the API server
/// refuses, is reported in `obj`'s status and stops the run (the inner `Err`).
async fn apply_or_report<K>(
    ctx: &Context,
    scope: &Scope,
    obj: &K,
    facts: &Facts,
    desired: &DesiredState,
    now: &Time,
) -> Result<Result<Applied, Ran>, Error>
where
    K: ControlPlaneObject,
{
    match apply_desired(ctx, scope, obj, facts, desired).await {
        Ok(a) => Ok(Ok(a)),
        Err(e @ Error::OwnedByOther { .. }) => {
            report_failure(
                ctx,
                scope,
                obj,
                facts,
                e.reason(),
                e.to_string(),
                now.clone(),
            )
            .await?;
            Ok(Err(Ran::Stopped(Action::requeue(Duration::from_secs(60)))))
        }
        // A child the API server refuses (a NodePort outside the node-port range, a quota, an
        // admission policy) is the user's to fix: a condition with the server's message.
        Err(Error::Apply(e)) if e.rejection().is_some() => {
            let message = e.rejection().unwrap_or_default();
            info!(error = %message, "a generated object was refused");
            report_failure(
                ctx,
                scope,
                obj,
                facts,
                cond::OBJECT_REJECTED_REASON,
                message,
                now.clone(),
            )
            .await?;
            Ok(Err(Ran::Stopped(Action::requeue(Duration::from_secs(60)))))
        }
        Err(e) => Err(e),
    }
}

/// An event when the kubeconfig was regenerated for another reason than its absence.
async fn report_kubeconfig_regenerated<K>(
    ctx: &Context,
    obj: &K,
    facts: &Facts,
    desired: &DesiredState,
) where
    K: Resource<DynamicType = ()>,
{
    if let Some(reason) = desired.kubeconfig_regenerated
        && reason != crate::kubeconfig::RegenerateReason::Missing
    {
        // Someone else's kubeconfig was replaced: the user should know who wrote it.
        let foreign = reason == crate::kubeconfig::RegenerateReason::NotWrittenByUs;
        ctx.events
            .report(
                obj,
                severity(foreign),
                "KubeconfigRegenerated",
                &format!(
                    "{} regenerated: {reason:?}",
                    names::kubeconfig_secret(&facts.cluster_name)
                ),
            )
            .await;
    }
}

/// Whether `cluster.spec.controlPlaneRef` names `kcp` (kind, API group and name; the v1beta2
/// contract's reference has no version).
pub fn refers_to(cluster: &Cluster, kcp: &K0smotronControlPlane) -> bool {
    crate::watches::control_plane_of(cluster).is_some_and(|r| {
        r.name == kcp.name_any() && r.namespace.as_deref() == kcp.namespace().as_deref()
    })
}

/// Writes the status of a control plane that does nothing for now (no Cluster, or not the
/// Cluster's): the failure on `Available`, nothing else.
async fn report_without_cluster(
    ctx: &Context,
    kcp: &K0smotronControlPlane,
    failure: Failure,
    now: Time,
) -> Result<(), Error> {
    let (mut st, transitions) = status_without_children(kcp, &kcp.spec, failure, now);
    // Without a Cluster there is no selector or replica count to report yet.
    st.selector = kcp.status.as_ref().and_then(|s| s.selector.clone());
    write_status(ctx, kcp, &st, Reconciliation::Unchanged).await?;
    report(ctx, kcp, &transitions).await;
    Ok(())
}

/// The status of a reconcile stopped before any child was read: `failure` on `Available`.
fn status_without_children<K>(
    obj: &K,
    spec: &ClusterSpec,
    failure: Failure,
    now: Time,
) -> (K0smotronControlPlaneStatus, Vec<status::Transition>)
where
    K: ControlPlaneObject,
{
    status::compute(StatusInputs {
        old: obj.common_status(),
        generation: obj.meta().generation,
        spec,
        cluster: "",
        desired: None,
        failure: Some(failure),
        pods: &[],
        statefulset: None,
        etcd_statefulset: None,
        probe: Probe::NotRun,
        dynamic_config: Outcome::NotRun,
        now,
    })
}

/// Sets `k0sproject.io/cluster-id: kube-system:<uid>` on the CAPI Cluster, by server-side apply
/// under a field manager that owns only that annotation (so it never touches what the user or a
/// GitOps tool owns). A failure is logged and retried on the next reconcile; it changes nothing
/// else.
async fn annotate_cluster_id(ctx: &Context, ns: &str, cluster: &Cluster, kube_system_uid: &str) {
    let value = format!("kube-system:{kube_system_uid}");
    let current = cluster.annotations().get(names::CLUSTER_ID_ANNOTATION);
    if current == Some(&value) {
        return;
    }
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), ns);
    let body = serde_json::json!({
        "apiVersion": Cluster::api_version(&()),
        "kind": Cluster::kind(&()),
        "metadata": {
            "name": cluster.name_any(),
            "annotations": { names::CLUSTER_ID_ANNOTATION: value },
        },
    });
    match api
        .patch(
            &cluster.name_any(),
            &PatchParams::apply(CLUSTER_ID_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => info!(cluster_id = %value, "annotated the Cluster with its workload cluster id"),
        Err(e) => warn!(error = %e, "annotating the Cluster with its workload cluster id failed"),
    }
}

/// Once the control-plane endpoint is known, marks the Cluster's infrastructure object
/// provisioned if the user handed it to us (see [`crate::infra`]). A failure does not stop the
/// control plane: it is logged and reported as a Warning event, and the caller retries soon.
/// Returns whether the step is still pending.
async fn provision_self_managed_infrastructure(
    ctx: &Context,
    kcp: &K0smotronControlPlane,
    ns: &str,
    cluster: &Cluster,
    desired: &DesiredState,
) -> bool {
    let Some(reference) = cluster.spec.infrastructure_ref.as_ref() else {
        return false;
    };
    let endpoint_known = desired.endpoint.as_ref().is_some_and(|e| e.is_valid());
    if !endpoint_known || cluster.infrastructure_provisioned() {
        return false;
    }
    match provision_infrastructure(&ctx.client, ns, reference).await {
        Ok(InfraOutcome::Provisioned) => {
            let note = format!(
                "{} {} marked provisioned ({}: {})",
                reference.kind,
                reference.name,
                names::MANAGED_BY_ANNOTATION,
                names::MANAGED_BY_K0SMOTRON
            );
            info!("{note}");
            ctx.events
                .report(kcp, EventType::Normal, "InfrastructureProvisioned", &note)
                .await;
            false
        }
        Ok(outcome) => {
            debug!(?outcome, "infrastructure cluster left alone");
            false
        }
        Err(e) => {
            warn!(error = %e, "marking the infrastructure cluster provisioned failed");
            ctx.events
                .report(
                    kcp,
                    EventType::Warning,
                    "InfrastructureProvisioningFailed",
                    &e.to_string(),
                )
                .await;
            // Without the grant a quick retry cannot help (an object not handed to us needs
            // none); the periodic resync and any change of the control plane try again.
            !matches!(e, InfraError::NotGranted { .. })
        }
    }
}

/// Writes the status of a reconcile stopped before (or instead of) applying: the failure on
/// `Available`, counts from the pods, nothing else changed.
async fn report_failure<K>(
    ctx: &Context,
    scope: &Scope,
    obj: &K,
    facts: &Facts,
    reason: &str,
    message: String,
    now: Time,
) -> Result<(), Error>
where
    K: ControlPlaneObject,
{
    let pods = list_pods(scope, &facts.cp.namespace, &facts.cluster_name).await?;
    let (st, transitions) = status::compute(StatusInputs {
        old: obj.common_status(),
        generation: obj.meta().generation,
        spec: &facts.cp.spec,
        cluster: &facts.cluster_name,
        desired: None,
        failure: Some(Failure {
            reason: reason.into(),
            message: message.clone(),
        }),
        pods: &pods,
        statefulset: facts.statefulset.as_ref(),
        etcd_statefulset: facts.etcd_statefulset.as_ref(),
        probe: Probe::NotRun,
        dynamic_config: Outcome::NotRun,
        now,
    });
    let reconciliation = Reconciliation::Failed {
        step: v1beta1_status::failed_step(reason),
        message: &message,
    };
    write_status(ctx, obj, &st, reconciliation).await?;
    report(ctx, obj, &transitions).await;
    Ok(())
}

async fn report<K>(ctx: &Context, obj: &K, transitions: &[status::Transition])
where
    K: Resource<DynamicType = ()>,
{
    for t in transitions.iter().filter(|t| t.is_news()) {
        let note = if t.message.is_empty() {
            format!("{} is {}", t.type_, t.status)
        } else {
            format!("{} is {}: {}", t.type_, t.status, t.message)
        };
        ctx.events
            .report(obj, severity(t.is_warning()), &t.reason, &note)
            .await;
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn list_pods(scope: &Scope, ns: &str, cluster: &str) -> Result<Vec<Pod>, Error> {
    if cluster.is_empty() {
        return Ok(Vec::new());
    }
    let selector = labels::control_plane_selector(cluster);
    if let Some(pods) = scope.stores.pods(ns, &selector) {
        return Ok(pods);
    }
    let pods: Api<Pod> = Api::namespaced(scope.client.clone(), ns);
    let selector = labels::selector_string(&selector);
    Ok(pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(read_err("control-plane pods"))?
        .items)
}

/// Whether `spec.controlPlaneEndpoint` was written by us only (so we may change it) rather than by
/// the user (then it is used as is).
pub fn endpoint_owned_by_provider(meta: &ObjectMeta) -> bool {
    let Some(fields) = meta.managed_fields.as_ref() else {
        return false;
    };
    let owns = |f: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
        f.fields_v1
            .as_ref()
            .and_then(|v| v.0.get("f:spec"))
            .and_then(|s| s.get("f:controlPlaneEndpoint"))
            .is_some()
    };
    let ours = fields
        .iter()
        .any(|f| f.manager.as_deref() == Some(ENDPOINT_MANAGER) && owns(f));
    let others = fields
        .iter()
        .any(|f| f.manager.as_deref() != Some(ENDPOINT_MANAGER) && owns(f));
    ours && !others
}

/// The fetch stage of both kinds: reads everything the build needs for `cp`, whose children are
/// named after `cluster_name`. `capi`: the owner CAPI Cluster (the `K0smotronControlPlane` kind
/// only).
pub(crate) async fn fetch(
    ctx: &Context,
    scope: &Scope,
    cp: ControlPlane,
    cluster_name: String,
    capi: Option<&Cluster>,
    now: Timestamp,
) -> Result<Facts, Error> {
    let ns = cp.namespace.clone();
    let secrets_api: Api<Secret> = Api::namespaced(scope.client.clone(), &ns);
    // The kubeconfig Secret is always the management cluster's.
    let kubeconfig_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let kubeconfig_name = names::kubeconfig_secret(&cluster_name);
    // One GET after another: reading them at once was tried (3f051d8) and did not shorten the
    // burst at N = 1,000, while churn took longer (bench/README.md, issue #11).
    let mut secrets = BTreeMap::new();
    for name in build::secret_names(&cp.spec, &cluster_name) {
        let found = if name == kubeconfig_name {
            read_secret(ctx, &kubeconfig_api, &ns, &name).await?
        } else if scope.remote {
            // A hosting cluster's Secret: the index watches the management cluster only.
            get_opt(&secrets_api, &name).await?
        } else {
            // The local scope's client is the management cluster's.
            read_secret(ctx, &secrets_api, &ns, &name).await?
        };
        if let Some(s) = found {
            secrets.insert(name, s);
        }
    }
    let services: Api<Service> = Api::namespaced(scope.client.clone(), &ns);
    let svc_name = crate::services::service_name(&cluster_name, cp.spec.service.type_);
    let exposure_service = cached(
        &scope.stores.services,
        &services,
        &ns,
        &svc_name,
        OnMiss::Get,
    )
    .await?;
    let nodes = fetch_nodes(scope, &cp).await?;
    let sts_api: Api<StatefulSet> = Api::namespaced(scope.client.clone(), &ns);
    let sts_store = &scope.stores.statefulsets;
    let statefulset = cached(
        sts_store,
        &sts_api,
        &ns,
        &names::kmc_name(&cluster_name),
        OnMiss::Get,
    )
    .await?;
    let etcd_on_miss = if cp.spec.storage.type_ == StorageType::Etcd {
        OnMiss::Get
    } else {
        OnMiss::Absent
    };
    let etcd_name = names::etcd_name(&cluster_name);
    let etcd_statefulset = cached(sts_store, &sts_api, &ns, &etcd_name, etcd_on_miss).await?;
    let statefulset = whole_if_edited(statefulset, &sts_api).await?;
    let etcd_statefulset = whole_if_edited(etcd_statefulset, &sts_api).await?;
    let claims = fetch_claims(scope, &ns, [&statefulset, &etcd_statefulset]).await?;

    Ok(Facts {
        cp,
        cluster_name,
        cluster_initialized: capi.is_some_and(Cluster::control_plane_initialized),
        cluster_network: capi.and_then(|c| c.spec.cluster_network.clone()),
        secrets,
        exposure_service,
        nodes,
        statefulset,
        etcd_statefulset,
        claims,
        now,
        policy: ctx.policy,
    })
}

/// The Nodes whose addresses a NodePort control plane without `externalAddress` publishes
/// (none for other control planes).
async fn fetch_nodes(scope: &Scope, cp: &ControlPlane) -> Result<Vec<Node>, Error> {
    let needed = cp.spec.service.type_ == ServiceType::NodePort
        && cp
            .spec
            .external_address
            .as_deref()
            .is_none_or(str::is_empty);
    if !needed {
        return Ok(Vec::new());
    }
    if let Some(nodes) = scope.stores.nodes() {
        return Ok(nodes);
    }
    let nodes: Api<Node> = Api::all(scope.client.clone());
    Ok(nodes
        .list(&ListParams::default())
        .await
        .map_err(read_err("nodes"))?
        .items)
}

/// The namespace's volume claims, read only when one of `statefulsets` has claim templates
/// (claims exist only once a StatefulSet with claim templates made them).
async fn fetch_claims(
    scope: &Scope,
    ns: &str,
    statefulsets: [&Option<StatefulSet>; 2],
) -> Result<Vec<PersistentVolumeClaim>, Error> {
    let has_claims = statefulsets.into_iter().flatten().any(|s| {
        s.spec
            .volume_claim_templates
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    });
    if !has_claims {
        return Ok(Vec::new());
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(scope.client.clone(), ns);
    Ok(claims
        .list(&ListParams::default())
        .await
        .map_err(read_err("persistent volume claims"))?
        .items)
}

/// What the apply step leaves for the status step.
pub(crate) struct Applied {
    /// The `resourceVersion` of each child the apply step read, by kind and name.
    pub(crate) live: LiveVersions,
    pub(crate) statefulset: Option<StatefulSet>,
    pub(crate) etcd_statefulset: Option<StatefulSet>,
    /// Nothing is waiting for a follow-up (e.g. a StatefulSet being recreated).
    pub(crate) settled: bool,
}

fn check_owner(kind: &str, meta: &ObjectMeta, uid: &str) -> Result<(), Error> {
    let other = meta.owner_references.as_ref().and_then(|refs| {
        refs.iter()
            .find(|r| r.controller == Some(true) && r.uid != uid)
    });
    match other {
        Some(o) => Err(Error::OwnedByOther {
            kind: kind.to_string(),
            name: meta.name.clone().unwrap_or_default(),
            owner: format!("{} {}", o.kind, o.name),
        }),
        None => Ok(()),
    }
}

/// The `resourceVersion` of each child as [`check_children`] saw it, by kind and name.
type LiveVersions = std::collections::HashMap<(String, String), String>;

fn record<K: Resource<DynamicType = ()>>(live: &mut LiveVersions, meta: &ObjectMeta) {
    if let (Some(name), Some(version)) = (&meta.name, &meta.resource_version) {
        live.insert((K::kind(&()).into_owned(), name.clone()), version.clone());
    }
}

fn live_version<'a, K: Resource<DynamicType = ()>>(
    live: &'a LiveVersions,
    obj: &K,
) -> Option<&'a str> {
    let name = obj.meta().name.clone()?;
    live.get(&(K::kind(&()).into_owned(), name))
        .map(String::as_str)
}

/// Refuses ([`Error::OwnedByOther`]) when an object we would write or delete exists and
/// another owner controls it. Objects the reconcile already read are checked as read; the rest
/// are read now. Returns the `resourceVersion` of each child found.
async fn check_children(
    ctx: &Context,
    scope: &Scope,
    ns: &str,
    facts: &Facts,
    desired: &DesiredState,
    uid: &str,
) -> Result<LiveVersions, Error> {
    let mut live = LiveVersions::new();
    for sts in [&facts.statefulset, &facts.etcd_statefulset]
        .into_iter()
        .flatten()
    {
        check_owner("StatefulSet", &sts.metadata, uid)?;
    }
    if let Some(svc) = &facts.exposure_service {
        check_owner("Service", &svc.metadata, uid)?;
    }
    check_secrets(ctx, scope, ns, facts, desired, uid, &mut live).await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(scope.client.clone(), ns);
    for name in names_of(desired.config_maps.iter().map(|c| &c.metadata).collect()) {
        check_live(
            Some(&scope.stores.config_maps),
            &config_maps,
            ns,
            &name,
            uid,
            &mut live,
        )
        .await?;
    }
    let services: Api<Service> = Api::namespaced(scope.client.clone(), ns);
    let exposure = facts
        .exposure_service
        .as_ref()
        .and_then(|s| s.metadata.name.clone());
    for name in names_of(desired.services.iter().map(|s| &s.metadata).collect()) {
        if Some(&name) != exposure.as_ref() {
            check_live(
                Some(&scope.stores.services),
                &services,
                ns,
                &name,
                uid,
                &mut live,
            )
            .await?;
        }
    }
    let cron_jobs: Api<CronJob> = Api::namespaced(scope.client.clone(), ns);
    for name in names_of(desired.cron_jobs.iter().map(|c| &c.metadata).collect()) {
        check_live(
            Some(&scope.stores.cron_jobs),
            &cron_jobs,
            ns,
            &name,
            uid,
            &mut live,
        )
        .await?;
    }
    if let Some(ingress) = &desired.ingress {
        check_ingress(scope, ns, &ingress.name_any(), uid, &mut live).await?;
    }
    if let Some(svc) = &facts.exposure_service {
        record::<Service>(&mut live, &svc.metadata);
    }
    Ok(live)
}

/// [`check_live`] for the Ingress, whose store keeps metadata only: a hit is checked as kept, a
/// miss read by GET.
async fn check_ingress(
    scope: &Scope,
    ns: &str,
    name: &str,
    uid: &str,
    live: &mut LiveVersions,
) -> Result<(), Error> {
    match scope.stores.ingresses.get(ns, name) {
        Lookup::Found(meta) => {
            record::<Ingress>(live, &meta.metadata);
            check_owner("Ingress", &meta.metadata, uid)
        }
        Lookup::Missing | Lookup::Unknown => {
            let api: Api<Ingress> = Api::namespaced(scope.client.clone(), ns);
            check_live(None, &api, ns, name, uid, live).await
        }
    }
}

/// Deletes our Ingress `name` when the spec no longer asks for one (no `spec.ingress`, or
/// `deploy: false`): looked up in the metadata store (a miss once listed is absence, as for
/// [`delete_obsolete`]), so control planes without an Ingress cost no request.
async fn delete_obsolete_ingress(
    scope: &Scope,
    ns: &str,
    name: &str,
    uid: &str,
) -> Result<(), Error> {
    let api: Api<Ingress> = Api::namespaced(scope.client.clone(), ns);
    match scope.stores.ingresses.get(ns, name) {
        Lookup::Missing => Ok(()),
        Lookup::Found(meta) if !controlled_by(&meta.metadata, uid) => Ok(()),
        Lookup::Found(_) | Lookup::Unknown => delete_if_ours(&api, name, uid).await,
    }
}

/// [`check_children`] for the Secrets we write: the kubeconfig, renewed leaves, generated
/// certificates (from the fetched Secrets, else by GET). The kubeconfig is the management
/// cluster's and controlled by the control-plane object itself (the others by `uid`, the root
/// owner's for a remote control plane).
async fn check_secrets(
    ctx: &Context,
    scope: &Scope,
    ns: &str,
    facts: &Facts,
    desired: &DesiredState,
    uid: &str,
    live: &mut LiveVersions,
) -> Result<(), Error> {
    let kubeconfig = desired.kubeconfig.iter().map(|s| (s, true));
    let others = desired
        .renew_secrets
        .iter()
        .chain(&desired.create_secrets)
        .map(|s| (s, false));
    let secrets: Api<Secret> = Api::namespaced(scope.client.clone(), ns);
    let management: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    // A Secret the fetch of this reconcile looked up and did not find is not asked for again: a
    // second GET a moment later (five per new control plane, a sixth of the burst's requests at
    // N = 1,000) narrows the race with a Secret appearing before our write but does not close
    // it. Generated certificates are created, never overwritten (one that appeared wins).
    let looked_up = build::secret_names(&facts.cp.spec, &facts.cluster_name);
    for (secret, is_kubeconfig) in kubeconfig.chain(others) {
        let Some(name) = &secret.metadata.name else {
            continue;
        };
        let (api, uid) = if is_kubeconfig {
            (&management, facts.cp.object_owner.uid.as_str())
        } else {
            (&secrets, uid)
        };
        match facts.secrets.get(name) {
            Some(s) => {
                check_owner("Secret", &s.metadata, uid)?;
                record::<Secret>(live, &s.metadata);
            }
            None if looked_up.contains(name) => {}
            None => check_live(None, api, ns, name, uid, live).await?,
        }
    }
    Ok(())
}

/// [`check_owner`] on the object `name` (from `store`, else by GET), if it exists, recording its
/// `resourceVersion`.
async fn check_live<K>(
    store: Option<&Kept<K>>,
    api: &Api<K>,
    ns: &str,
    name: &str,
    uid: &str,
    live: &mut LiveVersions,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let found = match store {
        Some(store) => cached(store, api, ns, name, OnMiss::Get).await?,
        None => get_opt(api, name).await?,
    };
    match found {
        Some(obj) => {
            record::<K>(live, obj.meta());
            check_owner(&K::kind(&()), obj.meta(), uid)
        }
        None => Ok(()),
    }
}

/// Applies each of `objs`, skipping those exactly as our last apply left them
/// ([`AppliedMemo`]).
async fn apply_all<K>(
    memo: &AppliedMemo,
    api: &Api<K>,
    objs: &[K],
    live: &LiveVersions,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    for o in objs {
        memo.apply(api, o, MANAGER, live_version(live, o)).await?;
    }
    Ok(())
}

/// Deletes `name` if we control it (with a uid precondition, so a replacement is never hit).
async fn delete_if_ours<K>(api: &Api<K>, name: &str, uid: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match get_opt(api, name).await? {
        Some(obj) => delete_controlled(api, &obj, uid).await,
        None => Ok(()),
    }
}

/// [`delete_if_ours`] for an object of another configuration (an obsolete Service or CronJob):
/// looked up in `kept`, a miss in a listed store taken as absence ([`OnMiss::Absent`]).
async fn delete_obsolete<K>(
    kept: &Kept<K>,
    api: &Api<K>,
    ns: &str,
    name: &str,
    uid: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match cached(kept, api, ns, name, OnMiss::Absent).await? {
        Some(obj) => delete_controlled(api, &obj, uid).await,
        None => Ok(()),
    }
}

/// Deletes `obj` if the object `uid` controls it, with a uid precondition.
async fn delete_controlled<K>(api: &Api<K>, obj: &K, uid: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    if !controlled_by(obj.meta(), uid) || obj.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: obj.meta().uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(e) => Err(write_err(format!("deleting {} {name}", K::kind(&())))(e)),
    }
}

async fn apply_statefulset(
    api: &Api<StatefulSet>,
    plan: &StatefulSetPlan,
    live: Option<&StatefulSet>,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<(Option<StatefulSet>, bool), Error> {
    match plan {
        StatefulSetPlan::Apply(sts) => Ok((Some(apply(api, sts.as_ref(), MANAGER).await?), true)),
        StatefulSetPlan::Recreate(sts) => {
            let name = sts.metadata.name.clone().unwrap_or_default();
            if live.is_some_and(|l| l.metadata.deletion_timestamp.is_none()) {
                info!(statefulset = %name, "claim templates changed: recreating the StatefulSet, keeping its pods");
                match api.delete(&name, &DeleteParams::orphan()).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(write_err(format!("deleting StatefulSet {name}"))(e)),
                }
            }
            // Created again by the next reconcile, once the old object is gone.
            Ok((None, false))
        }
        StatefulSetPlan::ScaleOnly {
            name,
            replicas,
            record_inputs_hash,
        } => {
            let live_replicas = live.and_then(|l| l.spec.replicas);
            let ours = live.is_some_and(|l| controlled_by(&l.metadata, &owner.uid));
            if live_replicas == Some(*replicas) && record_inputs_hash.is_none() && ours {
                return Ok((live.cloned(), true));
            }
            let mut meta = serde_json::json!({
                "name": name,
                "ownerReferences": [owner],
            });
            if let Some(hash) = record_inputs_hash {
                meta["annotations"] = serde_json::json!({ INPUTS_HASH_ANNOTATION: hash });
            }
            let body = serde_json::json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": meta,
                "spec": { "replicas": replicas },
            });
            let sts = api
                .patch(
                    name,
                    &PatchParams::apply(SCALE_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(write_err(format!("scaling StatefulSet {name}")))?;
            Ok((Some(sts), true))
        }
    }
}

/// The apply stage of both kinds: writes every child of `desired` (events go to `obj`).
pub(crate) async fn apply_desired<K>(
    ctx: &Context,
    scope: &Scope,
    obj: &K,
    facts: &Facts,
    desired: &DesiredState,
) -> Result<Applied, Error>
where
    K: Resource<DynamicType = ()>,
{
    let ns = facts.cp.namespace.clone();
    let uid = desired.owner.uid.clone();
    let client = scope.client.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), &ns);

    // Never take over what another object controls (another control plane, upstream's
    // k0smotron.io Cluster): every child is checked before anything is written.
    let live = check_children(ctx, scope, &ns, facts, desired, &uid).await?;
    let memo = ctx.applied.as_ref();

    let keep = (!scope.remote).then_some(ctx.secret_bodies.as_ref());
    create_secrets(&secrets, &desired.create_secrets, keep).await?;
    apply_all(memo, &secrets, &desired.renew_secrets, &live).await?;
    for s in &desired.renew_secrets {
        info!(secret = ?s.metadata.name, "renewed etcd certificate");
    }
    apply_all(memo, &config_maps, &desired.config_maps, &live).await?;
    apply_all(memo, &services, &desired.services, &live).await?;
    for name in &desired.obsolete_services {
        delete_obsolete(&scope.stores.services, &services, &ns, name, &uid).await?;
    }
    if let Some(ingress) = &desired.ingress {
        let api: Api<Ingress> = Api::namespaced(client.clone(), &ns);
        memo.apply(&api, ingress, MANAGER, live_version(&live, ingress))
            .await?;
    }
    if let Some(name) = &desired.obsolete_ingress {
        delete_obsolete_ingress(scope, &ns, name, &uid).await?;
    }
    if let Some(kubeconfig) = &desired.kubeconfig {
        // Always in the management cluster: CAPI reads it there.
        let management: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        memo.apply(
            &management,
            kubeconfig,
            MANAGER,
            live_version(&live, kubeconfig),
        )
        .await?;
    }

    let mut settled = true;
    let mut etcd_statefulset = facts.etcd_statefulset.clone();
    if let Some(plan) = &desired.etcd_statefulset {
        let (sts, ok) = apply_statefulset(
            &sts_api,
            plan,
            facts.etcd_statefulset.as_ref(),
            &desired.owner,
        )
        .await?;
        etcd_statefulset = sts;
        settled &= ok;
    }
    apply_all(memo, &cron_jobs, &desired.cron_jobs, &live).await?;
    for name in &desired.obsolete_cron_jobs {
        delete_obsolete(&scope.stores.cron_jobs, &cron_jobs, &ns, name, &uid).await?;
    }
    let mut statefulset = facts.statefulset.clone();
    if let Some(plan) = &desired.statefulset {
        let (sts, ok) =
            apply_statefulset(&sts_api, plan, facts.statefulset.as_ref(), &desired.owner).await?;
        statefulset = sts;
        settled &= ok;
    }
    grow_claims(ctx, scope, obj, &ns, &desired.claim_expansions).await;
    Ok(Applied {
        live,
        statefulset,
        etcd_statefulset,
        settled,
    })
}

/// Generated certificates: create only. If one appeared since we looked, it wins. What was
/// created is kept in `keep` (the management cluster's Secrets only).
async fn create_secrets(
    api: &Api<Secret>,
    secrets: &[Secret],
    keep: Option<&crate::secret_bodies::SecretBodies>,
) -> Result<(), Error> {
    for secret in secrets {
        let name = secret.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), secret).await {
            Ok(created) => {
                if let Some(keep) = keep {
                    keep.put(&created);
                }
                info!(secret = %name, "generated certificate Secret");
            }
            Err(e) if is_conflict(&e) => {
                info!(secret = %name, "certificate Secret appeared concurrently; using it next time");
            }
            Err(e) => return Err(write_err(format!("creating Secret {name}"))(e)),
        }
    }
    Ok(())
}

/// Asks existing volume claims to grow to their template's size (see [`crate::claims`]). A
/// refusal (the storage class does not allow expansion, a quota) is reported as a Warning event
/// and tried again on the next reconcile; it never stops the control plane.
async fn grow_claims<K>(
    ctx: &Context,
    scope: &Scope,
    obj: &K,
    ns: &str,
    expansions: &[crate::claims::ClaimExpansion],
) where
    K: Resource<DynamicType = ()>,
{
    let api: Api<PersistentVolumeClaim> = Api::namespaced(scope.client.clone(), ns);
    for e in expansions {
        let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": e.to}}}});
        let params = PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match api.patch(&e.name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {
                let note = format!(
                    "PersistentVolumeClaim {} asked to grow from {} to {}",
                    e.name, e.from, e.to.0
                );
                info!("{note}");
                ctx.events
                    .report(obj, EventType::Normal, "ClaimExpanding", &note)
                    .await;
            }
            Err(err) => {
                warn!(claim = %e.name, error = %err, "growing a volume claim failed");
                let note = format!(
                    "PersistentVolumeClaim {} cannot grow from {} to {}: {err}",
                    e.name, e.from, e.to.0
                );
                ctx.events
                    .report(obj, EventType::Warning, "ClaimExpansionFailed", &note)
                    .await;
            }
        }
    }
}

/// Sets our own `spec.controlPlaneEndpoint` (v1beta2 contract) with a field manager that owns
/// only that field. Not forced: if someone else owns it, it is theirs.
async fn publish_endpoint(
    ctx: &Context,
    kcp: &K0smotronControlPlane,
    endpoint: &k0smotron_api::capi::ApiEndpoint,
) -> Result<(), Error> {
    let ns = kcp.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<K0smotronControlPlane> = Api::namespaced(ctx.client.clone(), &ns);
    let body = serde_json::json!({
        "apiVersion": K0smotronControlPlane::api_version(&()),
        "kind": K0smotronControlPlane::kind(&()),
        "metadata": { "name": kcp.name_any() },
        "spec": { "controlPlaneEndpoint": endpoint },
    });
    match api
        .patch(
            &kcp.name_any(),
            &PatchParams::apply(ENDPOINT_MANAGER),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => {
            info!(host = ?endpoint.host, port = ?endpoint.port, "published spec.controlPlaneEndpoint");
            Ok(())
        }
        Err(e) if is_conflict(&e) => {
            info!("spec.controlPlaneEndpoint is owned by another field manager; leaving it");
            Ok(())
        }
        Err(e) => Err(write_err("spec.controlPlaneEndpoint")(e)),
    }
}

/// Why a self-managed infrastructure cluster could not be marked provisioned.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// The API group of `Cluster.spec.infrastructureRef` could not be discovered.
    #[error("discovering API group {group}: {source}")]
    Discovery {
        /// API group.
        group: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// The API group serves no such kind.
    #[error("API group {group} serves no kind {kind}")]
    UnknownKind {
        /// API group.
        group: String,
        /// Kind.
        kind: String,
    },
    /// A read failed.
    #[error("reading {what}: {source}")]
    Read {
        /// The object.
        what: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// The infrastructure CRD declares no CAPI contract.
    #[error(
        "CustomResourceDefinition {crd} has no cluster.x-k8s.io/v1beta2 or v1beta1 contract label"
    )]
    NoContract {
        /// CRD name.
        crd: String,
    },
    /// The provider's RBAC does not grant this infrastructure kind (403 on the read or the
    /// write): nothing to retry until someone grants it.
    #[error(
        "the provider may not {verb} {what}: grant `get` on {plural} and `patch` on {plural}/status \
         of {group} with a ClusterRole labelled {label}=true (docs/packaging.md, RBAC); until then \
         it is left alone"
    )]
    NotGranted {
        /// The call refused.
        verb: &'static str,
        /// The object.
        what: String,
        /// The kind's plural.
        plural: String,
        /// Its API group.
        group: String,
        /// [`names::INFRASTRUCTURE_AGGREGATION_LABEL`].
        label: &'static str,
    },
    /// The status write failed.
    #[error("marking {what} provisioned: {source}")]
    Write {
        /// The object.
        what: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// The API server accepted the write but dropped the field (the CRD's schema lacks it).
    #[error(
        "{what} has no status field for provisioned under the {contract:?} contract its CRD declares"
    )]
    Pruned {
        /// The object.
        what: String,
        /// The contract the CRD declares.
        contract: infra::Contract,
    },
}

/// What [`provision_infrastructure`] found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum InfraOutcome {
    /// The object is not annotated `cluster.x-k8s.io/managed-by: k0smotron`: its own provider
    /// provisions it.
    NotOurs,
    /// Already marked provisioned.
    AlreadyProvisioned,
    /// Marked provisioned now.
    Provisioned,
}

/// The resource of an infrastructure kind (its plural, by discovery) and the CAPI contract its
/// CRD declares (by its labels).
async fn infra_resource(
    client: &Client,
    group: &str,
    kind: &str,
) -> Result<(kube::api::ApiResource, infra::Contract), InfraError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::ApiResource;
    use kube::core::GroupVersionKind;

    let discovered = kube::discovery::oneshot::group(client, group)
        .await
        .map_err(|source| InfraError::Discovery {
            group: group.to_owned(),
            source,
        })?;
    let plural = discovered
        .resources_by_stability()
        .into_iter()
        .find(|(ar, _)| ar.kind == kind)
        .map(|(ar, _)| ar.plural)
        .ok_or_else(|| InfraError::UnknownKind {
            group: group.to_owned(),
            kind: kind.to_owned(),
        })?;
    let crd_name = format!("{plural}.{group}");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .get(&crd_name)
        .await
        .map_err(|source| InfraError::Read {
            what: format!("CustomResourceDefinition {crd_name}"),
            source,
        })?;
    let (contract, version) = infra::contract_from_crd_labels(crd.labels())
        .ok_or_else(|| InfraError::NoContract { crd: crd_name })?;
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, &version, kind), &plural);
    Ok((resource, contract))
}

/// Marks the Cluster's infrastructure object provisioned when the user handed it to us
/// (`cluster.x-k8s.io/managed-by: k0smotron`), in the status field of the CAPI contract its CRD
/// declares. Only that field is written, under its own field manager.
pub async fn provision_infrastructure(
    client: &Client,
    namespace: &str,
    reference: &k0smotron_api::capi::ContractVersionedObjectReference,
) -> Result<InfraOutcome, InfraError> {
    use kube::api::DynamicObject;

    let (group, kind) = (reference.api_group.as_str(), reference.kind.as_str());
    let what = format!("{kind} {namespace}/{}", reference.name);
    let (resource, contract) = infra_resource(client, group, kind).await?;
    let plural = resource.plural.clone();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let not_granted = |verb| InfraError::NotGranted {
        verb,
        what: what.clone(),
        plural: plural.clone(),
        group: group.to_owned(),
        label: names::INFRASTRUCTURE_AGGREGATION_LABEL,
    };
    let object = api
        .get(&reference.name)
        .await
        .map_err(|source| match source {
            kube::Error::Api(ref e) if e.code == 403 => not_granted("read"),
            source => InfraError::Read {
                what: what.clone(),
                source,
            },
        })?;
    if !infra::managed_by_us(&object.metadata) {
        return Ok(InfraOutcome::NotOurs);
    }
    if contract.is_provisioned(&object.data) {
        return Ok(InfraOutcome::AlreadyProvisioned);
    }
    let body = serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": kind,
        "metadata": { "name": reference.name },
        "status": contract.provisioned_status(),
    });
    let written = api
        .patch_status(
            &reference.name,
            &PatchParams::apply(infra::INFRA_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| match source {
            kube::Error::Api(ref e) if e.code == 403 => not_granted("patch the status of"),
            source => InfraError::Write {
                what: what.clone(),
                source,
            },
        })?;
    if !contract.is_provisioned(&written.data) {
        return Err(InfraError::Pruned { what, contract });
    }
    Ok(InfraOutcome::Provisioned)
}

/// Pushes the dynamic config ([`crate::dynamic_config`]) when the probe answered (`hosted` is
/// its client, built from the kubeconfig we wrote) and the hosted cluster does not hold it yet
/// (`recorded`: the hash in status).
async fn push_dynamic_config(
    ctx: &Context,
    desired: &build::DynamicConfig,
    recorded: Option<&str>,
    hosted: Option<Client>,
    was_initialized: bool,
) -> Outcome {
    let answered = hosted.is_some();
    match (
        dynamic_config::plan(desired, recorded, answered, was_initialized),
        hosted,
    ) {
        (Plan::Report(outcome), _) => outcome,
        (Plan::Push { object, hash }, Some(client)) => {
            let first = recorded.is_none();
            let outcome =
                dynamic_config::push(client, object, hash, first, ctx.probe_timeout).await;
            match &outcome {
                Outcome::Accepted { hash } => {
                    info!(%hash, "the hosted cluster accepted the dynamic config");
                }
                Outcome::Rejected { message, .. } => {
                    info!(error = %message, "the hosted cluster refused the dynamic config");
                }
                other => debug!(outcome = ?other, "the dynamic config was not pushed"),
            }
            outcome
        }
        // `plan` pushes only to an answering cluster.
        (Plan::Push { .. }, None) => Outcome::NotRun,
    }
}

/// The address to connect to for `endpoint` instead of resolving its host: the cluster IP of
/// the exposure Service `service` when the endpoint is that Service's DNS name and the Service is
/// in the management cluster. The cluster's DNS then has no part in a probe: a lookup whose
/// reply is lost waits out glibc's 5 s resolver timeout, and each such wait held a reconcile
/// worker (docs/controlplane.md, issue #11).
fn dial_address(
    scope: &Scope,
    endpoint: &k0smotron_api::capi::ApiEndpoint,
    service: Option<&Service>,
) -> Option<std::net::IpAddr> {
    if scope.remote {
        return None;
    }
    service_address(endpoint, service?)
}

/// [`dial_address`]'s choice for a Service of the management cluster.
fn service_address(
    endpoint: &k0smotron_api::capi::ApiEndpoint,
    service: &Service,
) -> Option<std::net::IpAddr> {
    let name = service.metadata.name.as_deref()?;
    let namespace = service.metadata.namespace.as_deref()?;
    let host = endpoint.host.as_deref()?;
    if host != crate::services::service_dns(name, namespace) {
        return None;
    }
    crate::services::cluster_ips(service)
        .iter()
        .find_map(|ip| ip.parse().ok())
}

/// GET `kube-system` through the kubeconfig Secret, within `timeout`, connecting to `dial`
/// when given (with TLS verified against the endpoint's host all the same). With the answer come the
/// Namespace's uid, which identifies the workload cluster, and the client that got it (for the
/// dynamic config push). The kubeconfig must point at `endpoint` (the one we publish) with inline
/// credentials; anything else is refused before a connection is attempted
/// ([`provider_runtime::kubeconfig`]).
pub async fn probe(
    kubeconfig: &Secret,
    endpoint: &k0smotron_api::capi::ApiEndpoint,
    dial: Option<std::net::IpAddr>,
    timeout: Duration,
) -> (Probe, Option<String>, Option<Client>) {
    let Some(value) = kubeconfig
        .data
        .as_ref()
        .and_then(|d| d.get(names::SECRET_VALUE_KEY))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
    else {
        return (
            Probe::ClientFailed("the kubeconfig Secret has no value".into()),
            None,
            None,
        );
    };
    let (Some(host), Some(port)) = (
        endpoint.host.as_deref(),
        endpoint.port.and_then(|p| u16::try_from(p).ok()),
    ) else {
        return (
            Probe::ClientFailed("the control-plane endpoint is incomplete".into()),
            None,
            None,
        );
    };
    let trusted = match kubeconfig::validate(&value, &kubeconfig::Endpoint { host, port }) {
        Ok(t) => t,
        Err(refusal) => return (Probe::Refused(refusal.to_string()), None, None),
    };
    let timeouts = kubeconfig::Timeouts {
        connect: timeout,
        io: timeout,
    };
    let config = match dial {
        Some(address) => trusted.client_config_dialing(address, timeouts),
        None => trusted.client_config(timeouts),
    };
    let client = match Client::try_from(config) {
        Ok(c) => c,
        Err(e) => return (Probe::ClientFailed(e.to_string()), None, None),
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match tokio::time::timeout(timeout, namespaces.get("kube-system")).await {
        Ok(Ok(ns)) => (Probe::Answered, ns.metadata.uid, Some(client)),
        Ok(Err(e)) => (Probe::Failed(e.to_string()), None, None),
        Err(_) => (
            Probe::Failed(format!("no answer within {}s", timeout.as_secs())),
            None,
            None,
        ),
    }
}

/// Deletion: children go by owner-reference garbage collection; we delete what we control
/// explicitly as well, so nothing depends on the collector's timing. Claims stay unless
/// `autoDeletePVCs` (the StatefulSets' retention policy deletes them).
async fn cleanup(kcp: Arc<K0smotronControlPlane>, ctx: &Context) -> Result<Action, Error> {
    let ns = kcp.namespace().ok_or(Error::NoNamespace)?;
    let uid = kcp.metadata.uid.clone().unwrap_or_default();
    // Without an owner reference nothing was ever created (the build waits for it); the label
    // CAPI sets is the fallback for a reference removed afterwards.
    let Some(cluster) = owner_cluster_name(&kcp.metadata)
        .or_else(|| kcp.labels().get(names::CLUSTER_NAME_LABEL).cloned())
    else {
        return Ok(Action::await_change());
    };
    delete_children(ctx, &ns, &kcp.spec, &cluster, &uid).await?;
    ctx.host_watches
        .forget(crate::control_plane::Kind::Capi, &ns, &kcp.name_any());
    info!("children deleted; releasing the finalizer");
    ctx.events
        .report(
            &*kcp,
            EventType::Normal,
            "Deleted",
            "control-plane objects deleted",
        )
        .await;
    Ok(Action::await_change())
}

/// Deletes every child the control plane `uid` controls (children named after `cluster`), of
/// either kind; what another object controls stays.
pub(crate) async fn delete_children(
    ctx: &Context,
    ns: &str,
    spec: &ClusterSpec,
    cluster: &str,
    uid: &str,
) -> Result<(), Error> {
    // What was created before the installation stopped allowing it is still deleted.
    let policy = FieldPolicy {
        remote_host_cluster: true,
        ..FieldPolicy::default()
    };
    if let Ok(Some(reference)) = hosting::kubeconfig_ref(spec, ns, &policy) {
        return delete_remote_children(ctx, reference, ns, cluster, uid).await;
    }
    let client = ctx.client.clone();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let svc: Api<Service> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let jobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    for name in [names::kmc_name(cluster), names::etcd_name(cluster)] {
        delete_if_ours(&sts, &name, uid).await?;
    }
    delete_if_ours(&jobs, &names::etcd_defrag_name(cluster), uid).await?;
    for name in [
        names::cluster_ip_service_name(cluster),
        names::nodeport_service_name(cluster),
        names::load_balancer_service_name(cluster),
        names::etcd_name(cluster),
    ] {
        delete_if_ours(&svc, &name, uid).await?;
    }
    delete_if_ours(
        &Api::<Ingress>::namespaced(client.clone(), ns),
        &names::kmc_name(cluster),
        uid,
    )
    .await?;
    for name in [
        names::config_map_name(cluster),
        names::entrypoint_config_map_name(cluster),
        names::telemetry_config_map_name(cluster),
        names::endpoint_config_map_name(cluster),
    ] {
        delete_if_ours(&cms, &name, uid).await?;
    }
    // The defragmentation client certificate too when the job has been turned off since.
    let mut secret_names = build::secret_names(spec, cluster);
    secret_names.push(crate::etcd::defrag_client_secret(cluster));
    secret_names.sort();
    secret_names.dedup();
    for name in secret_names {
        delete_if_ours(&secrets, &name, uid).await?;
    }
    Ok(())
}

/// [`delete_children`] of a control plane whose children live in a hosting cluster: its root
/// owner there is deleted (the hosting cluster's garbage collector removes every child it
/// controls), and the `<cluster>-kubeconfig` Secret here. A hosting cluster that does not answer
/// keeps the finalizer (retried with backoff); a kubeconfig Secret that is gone or refused
/// cannot reach it anymore, so the children there are left and the deletion goes on (logged).
async fn delete_remote_children(
    ctx: &Context,
    reference: &k0smotron_api::controlplane::v1beta2::KubeconfigRef,
    ns: &str,
    cluster: &str,
    uid: &str,
) -> Result<(), Error> {
    match hosting::host(&ctx.client, &ctx.hosts, reference, ctx.probe_timeout).await {
        Ok(host) => {
            if hosting::release(&host, ns, cluster, uid, ctx.probe_timeout).await? {
                info!(server = %host.server, "deleted the root owner in the hosting cluster");
            }
        }
        Err(HostingError::ReadSecret { what, source }) => {
            return Err(Error::Read {
                what: format!("Secret {what}"),
                source,
            });
        }
        Err(e) => {
            warn!(error = %e, "the hosting cluster cannot be reached to delete the control plane's objects there; they are left");
        }
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    delete_if_ours(&secrets, &names::kubeconfig_secret(cluster), uid).await
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        FieldsV1, ManagedFieldsEntry, OwnerReference,
    };

    fn entry(manager: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn a_probe_dials_the_cluster_ip_only_for_the_exposure_services_own_name() {
        let service = |ips: &[&str]| {
            let mut s = Service::default();
            s.metadata.name = Some("kmc-demo".into());
            s.metadata.namespace = Some("ns".into());
            s.spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
                cluster_ips: Some(ips.iter().map(|ip| (*ip).to_string()).collect()),
                ..Default::default()
            });
            s
        };
        let at = |host: &str| k0smotron_api::capi::ApiEndpoint {
            host: Some(host.into()),
            port: Some(30443),
        };
        let dual = service(&["10.96.0.7", "fd00::7"]);
        assert_eq!(
            service_address(&at("kmc-demo.ns.svc"), &dual),
            Some("10.96.0.7".parse().unwrap())
        );
        // Another name (a user's endpoint, an external address) is resolved as usual.
        for host in [
            "api.example.com",
            "kmc-demo.other.svc",
            "kmc-demo",
            "10.0.0.9",
        ] {
            assert_eq!(service_address(&at(host), &dual), None, "{host}");
        }
        // A headless Service (or one not yet given an address) has nothing to dial.
        assert_eq!(
            service_address(&at("kmc-demo.ns.svc"), &service(&["None"])),
            None
        );
        assert_eq!(service_address(&at("kmc-demo.ns.svc"), &service(&[])), None);
    }

    #[test]
    fn an_infrastructure_kind_not_granted_says_what_to_grant() {
        let e = InfraError::NotGranted {
            verb: "read",
            what: "MyCluster ns/demo".into(),
            plural: "myclusters".into(),
            group: "infrastructure.cluster.x-k8s.io".into(),
            label: names::INFRASTRUCTURE_AGGREGATION_LABEL,
        };
        assert_eq!(
            e.to_string(),
            "the provider may not read MyCluster ns/demo: grant `get` on myclusters and `patch` on \
             myclusters/status of infrastructure.cluster.x-k8s.io with a ClusterRole labelled \
             controlplane.cluster.x-k8s.io/aggregate-to-k0smotron=true (docs/packaging.md, RBAC); \
             until then it is left alone"
        );
    }

    #[test]
    fn the_shipped_infrastructure_role_aggregates_by_our_label() {
        let yaml = include_str!("../../../config/controlplane/infrastructure_role.yaml");
        let label = names::INFRASTRUCTURE_AGGREGATION_LABEL;
        assert!(
            yaml.contains(&format!("        {label}: \"true\"\n")),
            "selector"
        );
        assert!(
            yaml.contains(&format!("    {label}: \"true\"\n")),
            "shipped kinds"
        );
    }

    #[test]
    fn endpoint_ownership_from_managed_fields() {
        let ours = entry(
            ENDPOINT_MANAGER,
            serde_json::json!({"f:spec": {"f:controlPlaneEndpoint": {}}}),
        );
        let user_other = entry("kubectl", serde_json::json!({"f:spec": {"f:replicas": {}}}));
        let user_endpoint = entry(
            "kubectl",
            serde_json::json!({"f:spec": {"f:controlPlaneEndpoint": {}}}),
        );
        let mut meta = ObjectMeta::default();
        assert!(!endpoint_owned_by_provider(&meta));
        meta.managed_fields = Some(vec![ours.clone(), user_other]);
        assert!(endpoint_owned_by_provider(&meta));
        meta.managed_fields = Some(vec![ours, user_endpoint.clone()]);
        assert!(!endpoint_owned_by_provider(&meta));
        meta.managed_fields = Some(vec![user_endpoint]);
        assert!(!endpoint_owned_by_provider(&meta));
    }

    #[test]
    fn owner_cluster_from_owner_references() {
        let mut meta = ObjectMeta::default();
        assert_eq!(owner_cluster_name(&meta), None);
        meta.owner_references = Some(vec![
            OwnerReference {
                api_version: "infrastructure.cluster.x-k8s.io/v1beta2".into(),
                kind: "Cluster".into(),
                name: "not-this".into(),
                ..Default::default()
            },
            OwnerReference {
                api_version: "cluster.x-k8s.io/v1beta2".into(),
                kind: "Cluster".into(),
                name: "demo".into(),
                ..Default::default()
            },
        ]);
        assert_eq!(owner_cluster_name(&meta).as_deref(), Some("demo"));
    }

    #[test]
    fn only_the_control_plane_the_cluster_names_is_its() {
        use k0smotron_api::capi::{ClusterSpec, ContractVersionedObjectReference};
        let cluster = |group: &str, kind: &str, name: &str| {
            let mut c = Cluster::new(
                "demo",
                ClusterSpec {
                    control_plane_ref: Some(ContractVersionedObjectReference {
                        api_group: group.into(),
                        kind: kind.into(),
                        name: name.into(),
                    }),
                    ..Default::default()
                },
            );
            c.metadata.namespace = Some("ns".into());
            c
        };
        let mut kcp = K0smotronControlPlane::new("demo", Default::default());
        kcp.metadata.namespace = Some("ns".into());
        let group = "controlplane.cluster.x-k8s.io";
        assert!(refers_to(
            &cluster(group, "K0smotronControlPlane", "demo"),
            &kcp
        ));
        assert!(!refers_to(
            &cluster(group, "K0smotronControlPlane", "other"),
            &kcp
        ));
        assert!(!refers_to(
            &cluster(group, "KubeadmControlPlane", "demo"),
            &kcp
        ));
        assert!(!refers_to(
            &cluster("example.com", "K0smotronControlPlane", "demo"),
            &kcp
        ));
        assert!(!refers_to(&Cluster::new("demo", Default::default()), &kcp));
    }

    #[test]
    fn other_controllers_are_not_taken_over() {
        let mut meta = ObjectMeta {
            name: Some("kmc-demo".into()),
            ..Default::default()
        };
        assert!(check_owner("StatefulSet", &meta, "me").is_ok());
        meta.owner_references = Some(vec![OwnerReference {
            kind: "Cluster".into(),
            name: "demo".into(),
            uid: "other".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        let err = check_owner("StatefulSet", &meta, "me").unwrap_err();
        assert_eq!(err.reason(), "ObjectOwnedByOther");
        assert!(err.to_string().contains("Cluster demo"), "{err}");
    }
}
