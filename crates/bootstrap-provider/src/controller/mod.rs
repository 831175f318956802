//! The `K0sWorkerConfig` reconciler: fetch → validate → render → apply (workload token Secret,
//! data Secret) → status, plus the token lifecycle (refresh until the Node joins, delete after)
//! and the finalizer that deletes the token with the config.
//!
//! Owns the orchestration and every management-cluster call; the pure steps live in
//! [`crate::validate`], [`crate::render`], [`crate::data_secret`], [`crate::token`], and every
//! workload-cluster call in [`crate::workload`]. This module holds the wiring (watches, the
//! reconcile entry, error policy); the steps are its submodules: `fetch` (reads), `apply` (one
//! reconcile), `generate` (the data, once), `token_lifecycle`, `status` and `cleanup`, over
//! `context` and `error`, which they all share.

mod apply;
mod caches;
mod cleanup;
mod context;
mod error;
mod fetch;
mod generate;
mod status;
mod token_lifecycle;

pub use context::{Settings, parse_ttl};

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k0smotron_api::bootstrap::v1beta2::K0sWorkerConfig;
use k0smotron_api::capi::{self, Cluster, Machine};
use k0smotron_api::names;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource as _, ResourceExt as _};
use provider_runtime::events::EventPublisher;
use provider_runtime::reconcile::{self, error_chain, meta_changed};
use provider_runtime::{ManagerArgs, Metrics, Readiness, ReadyGate};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use context::Context;
use error::Error;

/// Controller name in metrics, logs and events.
pub(crate) const CONTROLLER: &str = "k0sworkerconfig";
/// Event reporter name.
pub(crate) const REPORTER: &str = "k0smotron-bootstrap";
/// Requeue after errors.
const ERROR_REQUEUE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Controller wiring
// ---------------------------------------------------------------------------------------------

/// The configs of `cluster` (same namespace, `cluster.x-k8s.io/cluster-name` label), for the
/// Cluster watch: a Cluster becoming initialized or unpaused wakes its configs.
pub(crate) fn configs_of_cluster<'a>(
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
pub(crate) fn config_of_machine(machine: &Machine) -> Option<ObjectRef<K0sWorkerConfig>> {
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
/// by their Cluster and Machine (upstream has no watches and polls every 5 s), and the stores of
/// those two watches, which reconciles read instead of the API server. `synced` is released once
/// the configs' cache has done its first full list.
///
/// Data Secrets are not watched with `.owns()`: nothing about them is ever reconciled back (the
/// data is immutable), and watching every Secret in the management cluster would cache them all.
pub(crate) fn build(
    client: &Client,
    args: &ManagerArgs,
    synced: ReadyGate,
) -> (Controller<K0sWorkerConfig>, caches::Stores) {
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
    .applied_objects()
    .predicate_filter(meta_changed, Default::default());
    let (machines, machine_events) = stored_watch(args.api::<Machine>(client.clone()), args);
    let (clusters, cluster_events) = stored_watch(args.api::<Cluster>(client.clone()), args);
    let store: Store<K0sWorkerConfig> = reader.clone();
    let controller = Controller::for_stream(configs, reader)
        .with_config(args.controller_config())
        .watches_stream(cluster_events, move |cluster| {
            configs_of_cluster(store.state().iter().map(|c| &**c), &cluster)
        })
        .watches_stream(machine_events, |machine| config_of_machine(&machine));
    (controller, caches::Stores { machines, clusters })
}

/// A watch of `api` (the manager's scope) whose objects, without `managedFields`, are also kept in
/// the returned store for reconciles to read.
fn stored_watch<K>(
    api: Api<K>,
    args: &ManagerArgs,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let events = watcher(api, args.watcher_config())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    (store, events)
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
    let (controller, stores) = build(&client, args, readiness.gate("k0sworkerconfigs"));
    let ctx = Arc::new(Context {
        stores,
        workloads: caches::WorkloadClients::default(),
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
                tracing::debug!(error = %error_chain(&err), "controller event");
            }
        })
        .await;
}

/// Retries failed reconciles after the config's next backoff delay and counts the failure.
pub(crate) fn error_policy(config: Arc<K0sWorkerConfig>, err: &Error, ctx: Arc<Context>) -> Action {
    reconcile::error_policy(CONTROLLER, config.as_ref(), err, &ctx.metrics, &ctx.backoff)
}

/// Reconciles one `K0sWorkerConfig`, behind the finalizer that deletes its token.
pub(crate) async fn reconcile(
    config: Arc<K0sWorkerConfig>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
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
        let result = reconcile::with_finalizer(
            &api,
            names::BOOTSTRAP_FINALIZER,
            config,
            &ctx.backoff,
            |config| apply::apply(config, &ctx),
            |config| cleanup::cleanup(config, &ctx),
        )
        .await;
        if let Err(
            finalizer::Error::ApplyFailed(Error::Workload { cluster, .. })
            | finalizer::Error::CleanupFailed(Error::Workload { cluster, .. }),
        ) = &result
        {
            // The next reconcile builds a new client (new connections) rather than reuse this one.
            ctx.workloads.forget(&caches::cluster_key(&ns, cluster));
        }
        result.map_err(|e| Error::Finalizer(Box::new(e)))
    }
    .instrument(span)
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use k0smotron_api::capi::{
        Bootstrap, ClusterSpec, ContractVersionedObjectReference, MachineSpec,
    };
    use pretty_assertions::assert_eq;
    use std::collections::BTreeMap;

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
}
