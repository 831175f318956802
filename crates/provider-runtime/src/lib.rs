//! What both provider managers share: command-line scoping flags, telemetry, the health and
//! metrics server, the conversion webhook, leader election, graceful shutdown, the reconcile
//! skeleton (finalizer, error policy, backoff), and the apply and condition helpers.
//!
//! A manager's `main.rs` wires it like this (the controller here is a stand-in):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use clap::Parser;
//! use futures::StreamExt;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::runtime::controller::{Action, Controller};
//! use prometheus_client::registry::Registry;
//! use provider_runtime::{
//!     ManagerArgs, MetricsSecurity, Metrics, Readiness, Server, leader, shutdown, telemetry,
//! };
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     manager: ManagerArgs,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let cli = Cli::parse();
//!     telemetry::init(cli.manager.log_format)?;
//!     let shutdown = shutdown::on_signals()?;
//!     let client = kube::Client::try_default().await?;
//!
//!     let mut registry = Registry::default();
//!     let metrics = Metrics::register(&mut registry);
//!     let readiness = Readiness::new();
//!     let args = &cli.manager;
//!     let registry = Arc::new(registry);
//!     // HTTPS with TokenReview/SubjectAccessReview unless `--insecure-metrics`.
//!     let security = MetricsSecurity::from_args(args, client.clone())?;
//!     let server =
//!         Server::bind(args.health_addr, args.metrics_addr, security, registry, readiness.clone());
//!     let server = tokio::spawn(server.await?.run(shutdown.clone()));
//!
//!     // Everything the controllers need is built before the election and moved in.
//!     let election = args.leader_election("controlplane.k0smotron.io");
//!     let controller = Controller::new(args.api::<ConfigMap>(client.clone()), args.watcher_config())
//!         .with_config(args.controller_config());
//!     let gates = readiness.clone();
//!     let controllers = move |token: tokio_util::sync::CancellationToken| async move {
//!         let controller = controller.graceful_shutdown_on(token.cancelled_owned());
//!         gates.gate_on_store("configmaps", controller.store());
//!         let reconcile = |_obj: Arc<ConfigMap>, metrics: Arc<Metrics>| async move {
//!             let _timer = metrics.reconcile_started("configmap");
//!             Ok::<_, kube::Error>(Action::await_change())
//!         };
//!         let error_policy = |_obj: Arc<ConfigMap>, _err: &kube::Error, metrics: Arc<Metrics>| {
//!             metrics.reconcile_failed("configmap", "kube");
//!             Action::requeue(std::time::Duration::from_secs(5))
//!         };
//!         let ctx = Arc::new(metrics);
//!         controller.run(reconcile, error_policy, ctx).for_each(|_| async {}).await;
//!     };
//!     let result =
//!         leader::run_with_leader_election(client, election, shutdown.clone(), readiness, controllers)
//!             .await;
//!
//!     // Stop the server whatever stopped the controllers, then report: a lost leadership is an
//!     // error, so the process exits non-zero and the Deployment restarts it clean.
//!     shutdown.cancel();
//!     server.await??;
//!     Ok(result?)
//! }
//! ```
//!
//! Modules: [`cli`] (flags), [`telemetry`] (logs), [`shutdown`] (signals), [`readiness`] and
//! [`server`] (`/healthz`, `/readyz`, `/metrics`), [`tls`] and [`metrics_auth`] (who may read
//! `/metrics`), [`metrics`], [`leader`] (Lease election),
//! [`apply`] (server-side apply, owner references), [`conditions`], [`pause`], [`events`],
//! [`kubeconfig`] (untrusted workload kubeconfigs), [`webhook`] and [`webhook_certs`] (the
//! conversion webhook and the certificates it serves).

pub mod apply;
pub mod backoff;
pub mod cli;
pub mod conditions;
pub mod events;
pub mod join_token;
pub mod kubeconfig;
pub mod leader;
pub mod metrics;
pub mod metrics_auth;
pub mod pause;
pub mod readiness;
pub mod reconcile;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod webhook;
pub mod webhook_certs;

pub use cli::{LogFormat, ManagerArgs};
pub use leader::{LeaderElection, run_with_leader_election};
pub use metrics::Metrics;
pub use readiness::{Readiness, ReadyGate};
pub use server::{MetricsSecurity, Server};

/// `s` cut to at most `max` bytes at a character boundary (API string limits are in bytes).
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
