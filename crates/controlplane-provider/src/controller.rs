//! Wires the reconciler into a kube-runtime `Controller`: the K0smotronControlPlane watch, the
//! children it owns, and the CAPI `Cluster` watch mapped through `spec.controlPlaneRef`.
//!
//! No polling loops: watches drive reconciles; the reconciler requeues slowly as a safety net and
//! quickly while it waits for pods or addresses.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k0smotron_api::capi::Cluster;
use k0smotron_api::controlplane::v1beta2::K0smotronControlPlane;
use k0smotron_api::k0smotron::v1beta2::{Cluster as StandaloneCluster, JoinTokenRequest};
use kube::runtime::{Controller, controller};
use kube::{Client, Resource};
use provider_runtime::backoff::Waits;
use provider_runtime::events::EventPublisher;
use provider_runtime::{ManagerArgs, Metrics, Readiness};
use tokio_util::sync::CancellationToken;

use crate::host_watches::{self, HostWatches};
use crate::reconcile::{Context, error_policy, reconcile};
use crate::stores::{self, Feed, Stores, Triggers};
use crate::validate::FieldPolicy;
use crate::watches::{control_plane_of, controller_of, owning_children};

/// Reporter name of our events.
pub const REPORTER: &str = "k0smotron-controlplane";

/// Default of [`Settings::debounce`]. Measured at N = 1,000 (bench/README.md, 2026-12-06): 500 ms
/// against none cut the burst's requests by 8 % and its CPU by 14 %, status and control-plane
/// patches to two each per control plane, and the churn (100 k0sConfig changes rolled) from 53 s
/// to 11.5 s, with the same time to all children; a change waits half a second longer to be seen.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

/// Tunables of the controller.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Timeout of the availability probe through the kubeconfig.
    pub probe_timeout: Duration,
    /// Requeue interval of a settled control plane.
    pub resync: Duration,
    /// The spec fields that reach the pods this installation allows (`--allow-*` flags).
    pub policy: FieldPolicy,
    /// The kinds to serve (`--kinds`).
    pub kinds: Kinds,
    /// How long a control plane's reconcile waits for more changes of it (`--reconcile-debounce`):
    /// a new control plane's StatefulSet, pod and Service change several times within a second,
    /// and each change was a reconcile and often a status write.
    pub debounce: Duration,
    /// How many Secret bodies are kept between reconciles (`--secret-cache-size`; see
    /// [`crate::secret_bodies`]).
    pub secret_cache_size: usize,
}

/// Which control-plane kinds the provider serves. A kind whose CRDs the API server does not
/// serve is skipped at start with one log line (e.g. the Cluster API kind without Cluster API
/// installed), so a standalone install needs no CAPI CRDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    /// `K0smotronControlPlane`, driven by CAPI Clusters.
    pub capi: bool,
    /// The standalone `k0smotron.io` `Cluster`.
    pub standalone: bool,
}

impl Default for Kinds {
    fn default() -> Self {
        Self {
            capi: true,
            standalone: true,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            probe_timeout: Duration::from_secs(10),
            resync: Duration::from_secs(300),
            policy: FieldPolicy::default(),
            kinds: Kinds::default(),
            debounce: DEFAULT_DEBOUNCE,
            secret_cache_size: crate::secret_bodies::DEFAULT_CAPACITY,
        }
    }
}

/// The controller, woken by its children, their pods and the CAPI Clusters (`clusters`: the feed
/// of the shared Cluster watch).
pub fn build(
    client: &Client,
    args: &ManagerArgs,
    triggers: Triggers,
    clusters: Feed<Cluster>,
    stores: &Stores,
    config: controller::Config,
) -> Controller<K0smotronControlPlane> {
    let controller = controller_of::<K0smotronControlPlane>(client, args);
    owning_children(controller, triggers, stores.statefulsets.clone())
        .watches_stream(clusters.map(Ok), |cluster| control_plane_of(&cluster))
        .with_config(config)
}

/// Whether the API server serves `K`'s resource (its CRD is installed), as far as this
/// installation may list it.
async fn served<K>(client: &Client, args: &ManagerArgs) -> bool
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match args
        .api::<K>(client.clone())
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => false,
        // Any other failure (RBAC, a slow server) is the watcher's to report and retry.
        _ => true,
    }
}

/// Runs the controllers of the served kinds until `shutdown` fires.
pub async fn run(
    client: Client,
    args: &ManagerArgs,
    settings: Settings,
    metrics: Metrics,
    readiness: &Readiness,
    shutdown: CancellationToken,
) {
    let capi = settings.kinds.capi
        && served::<Cluster>(&client, args).await
        && served::<K0smotronControlPlane>(&client, args).await;
    let standalone = settings.kinds.standalone && served::<StandaloneCluster>(&client, args).await;
    let watches = stores::watches(&client, args, capi, standalone);
    // Hosting clusters' watches wake the controllers through these.
    let (capi_remote, capi_woken) = futures::channel::mpsc::channel(host_watches::BUFFER);
    let (standalone_remote, standalone_woken) =
        futures::channel::mpsc::channel(host_watches::BUFFER);
    let ctx = Arc::new(Context {
        stores: watches.stores.clone(),
        events: EventPublisher::new(client.clone(), REPORTER),
        client: client.clone(),
        metrics,
        probe_timeout: settings.probe_timeout,
        resync: settings.resync,
        policy: settings.policy,
        applied: Arc::default(),
        backoff: Arc::default(),
        waits: Arc::new(Waits::new(Duration::from_secs(10), settings.resync)),
        quiet: Arc::default(),
        secret_bodies: Arc::new(crate::secret_bodies::SecretBodies::new(
            settings.secret_cache_size,
        )),
        hosts: Arc::default(),
        host_watches: Arc::new(HostWatches::new(
            capi.then_some(capi_remote),
            standalone.then_some(standalone_remote),
        )),
    });
    if settings.kinds.capi && !capi {
        tracing::info!(
            "Cluster API or K0smotronControlPlane CRDs not installed: that controller does not run"
        );
    }
    if settings.kinds.standalone && !standalone {
        tracing::info!(
            "k0smotron.io Cluster CRD not installed: the standalone controller does not run"
        );
    }
    let stores = watches.stores;
    let config = args.controller_config().debounce(settings.debounce);
    let capi_run = async {
        let Some((triggers, clusters)) = watches.capi else {
            return;
        };
        let controller = build(&client, args, triggers, clusters, &stores, config.clone())
            .reconcile_on(capi_woken);
        readiness.gate_on_store("k0smotroncontrolplanes", controller.store());
        drive(
            controller
                .graceful_shutdown_on(shutdown.clone().cancelled_owned())
                .run(reconcile, error_policy, ctx.clone()),
        )
        .await;
    };
    let standalone_run = async {
        let Some(triggers) = watches.standalone else {
            return;
        };
        let controller = crate::standalone::build(&client, args, triggers, &stores, config.clone())
            .reconcile_on(standalone_woken);
        readiness.gate_on_store("clusters.k0smotron.io", controller.store());
        drive(
            controller
                .graceful_shutdown_on(shutdown.clone().cancelled_owned())
                .run(
                    crate::standalone::reconcile,
                    crate::standalone::error_policy,
                    ctx.clone(),
                ),
        )
        .await;
    };
    let requests = standalone && served::<JoinTokenRequest>(&client, args).await;
    let requests_run = async {
        if requests {
            crate::join_token_request::run(&client, args, ctx.clone(), readiness, shutdown.clone())
                .await;
        }
    };
    // The shared watches run as long as the controllers do.
    let controllers = async { futures::join!(capi_run, standalone_run, requests_run) };
    futures::pin_mut!(controllers);
    futures::future::select(controllers, watches.driver).await;
}

/// Drains a controller's result stream until it ends.
async fn drive<S, T, E>(stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    stream
        .for_each(|result| async move {
            if let Err(err) = result {
                // Reconcile errors are counted and logged by error_policy; these are the queue's
                // own (e.g. an object deleted before its turn).
                tracing::debug!(error = %err, "controller event");
            }
        })
        .await;
}
