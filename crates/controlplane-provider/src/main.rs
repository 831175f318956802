//! `controlplane-provider`: the K0smotronControlPlane manager. Parses flags, starts telemetry, the
//! health/metrics server and (optionally) leader election, runs the controller until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use controlplane_provider::controller::{self, Settings};
use prometheus_client::registry::Registry;
use provider_runtime::{
    ManagerArgs, Metrics, MetricsSecurity, Readiness, Server, leader, shutdown, telemetry,
};

/// Lease name when `--leader-election-id` is not given.
const LEASE_NAME: &str = "controlplane.k0smotron.io";

#[derive(Parser)]
#[command(
    name = "controlplane-provider",
    version,
    about = "k0smotron-rs control-plane provider (K0smotronControlPlane)"
)]
struct Cli {
    #[command(flatten)]
    manager: ManagerArgs,
    /// Timeout, in seconds, of the availability probe (GET kube-system through the kubeconfig).
    #[arg(long, env = "WORKLOAD_PROBE_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    workload_probe_timeout: u64,
    /// Requeue interval, in seconds, of a settled control plane (a safety net; watches drive
    /// reconciles).
    #[arg(long, env = "RESYNC_PERIOD", default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..))]
    resync_period: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let manager = cli.manager;
    telemetry::init(manager.log_format)?;
    let shutdown = shutdown::on_signals()?;
    let client = kube::Client::try_default()
        .await
        .context("building the Kubernetes client (KUBECONFIG or in-cluster)")?;

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let readiness = Readiness::new();
    let security = MetricsSecurity::from_args(&manager, client.clone())
        .context("preparing the metrics endpoint")?;
    let server = Server::bind(
        manager.health_addr,
        manager.metrics_addr,
        security,
        Arc::new(registry),
        readiness.clone(),
    )
    .await?;
    let server = tokio::spawn(server.run(shutdown.clone()));

    let settings = Settings {
        probe_timeout: Duration::from_secs(cli.workload_probe_timeout),
        resync: Duration::from_secs(cli.resync_period),
    };
    let election = manager.leader_election(LEASE_NAME);
    let gates = readiness.clone();
    let result = leader::run_with_leader_election(
        client.clone(),
        election,
        shutdown.clone(),
        readiness,
        move |token| async move {
            controller::run(client, &manager, settings, metrics, &gates, token).await;
        },
    )
    .await;

    // Stop the server whatever stopped the controller; a lost leadership exits non-zero so the
    // Deployment restarts the pod clean.
    shutdown.cancel();
    server.await??;
    Ok(result?)
}
