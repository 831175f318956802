//! `controlplane-provider`: the K0smotronControlPlane manager. Parses flags, starts telemetry, the
//! health/metrics server and (optionally) leader election, runs the controller until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Parser};
use controlplane_provider::certs::{self, KeyAlgorithm};
use controlplane_provider::controller::{self, Kinds, Settings};
use controlplane_provider::validate::FieldPolicy;
use prometheus_client::registry::Registry;
use provider_runtime::{
    ManagerArgs, Metrics, MetricsSecurity, Readiness, Server, leader, shutdown, telemetry,
};

/// Lease name when `--leader-election-id` is not given.
const LEASE_NAME: &str = "controlplane.k0smotron.io";
/// The webhook Service when `--webhook-service` is not given: its name in the clusterctl
/// components (config/controlplane).
const WEBHOOK_SERVICE: &str = "k0smotron-control-plane-webhook-service";
/// The webhook certificate Secret when `--webhook-secret` is not given.
const WEBHOOK_SECRET: &str = "k0smotron-control-plane-webhook-server-cert";

#[derive(Parser)]
#[command(
    name = "controlplane-provider",
    version,
    about = "k0smotron-rs control-plane provider (K0smotronControlPlane and the standalone Cluster)"
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
    /// How long, in milliseconds, a control plane's reconcile waits for further changes of it and
    /// its children before it runs (one reconcile for a burst of changes; 0: none).
    #[arg(long, env = "RECONCILE_DEBOUNCE_MS", default_value_t = controller::DEFAULT_DEBOUNCE.as_millis() as u64, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    reconcile_debounce_ms: u64,
    /// How many Secret bodies (certificates, kubeconfigs; about 4 KiB each) are kept between
    /// reconciles, so a control plane reconciled again soon does not read them again (0: none).
    #[arg(long, env = "SECRET_CACHE_SIZE", default_value_t = controlplane_provider::secret_bodies::DEFAULT_CAPACITY)]
    secret_cache_size: usize,
    /// Accept hostPath persistence and hostPath volumes in `spec.mounts`, `spec.manifests` or
    /// added by `spec.patches`: they give the control-plane pods the node's files. Off by default
    /// (upstream accepts them; see docs/security.md, "Multi-tenant installs").
    #[arg(long, env = "ALLOW_HOST_PATH", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    allow_host_path: bool,
    /// Accept `spec.patches` (they can change anything in the generated pods).
    #[arg(long, env = "ALLOW_PATCHES", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    allow_patches: bool,
    /// Accept `spec.mounts` (extra volumes in the controller pods).
    #[arg(long, env = "ALLOW_MOUNTS", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    allow_mounts: bool,
    /// Accept `spec.manifests` (volumes whose manifests k0s applies in the workload cluster).
    #[arg(long, env = "ALLOW_MANIFESTS", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    allow_manifests: bool,
    /// Accept `spec.serviceAccount` (the ServiceAccount the k0s and etcd pods run as).
    #[arg(long, env = "ALLOW_SERVICE_ACCOUNT", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    allow_service_account: bool,
    /// Accept `spec.remoteHostCluster` (the control plane's objects in another cluster, reached
    /// through a kubeconfig Secret of the control plane's namespace: the provider then connects
    /// to a server the tenant chooses).
    #[arg(long, env = "ALLOW_REMOTE_HOST_CLUSTER", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    allow_remote_host_cluster: bool,
    /// The control-plane kinds to serve, comma-separated: `capi` (K0smotronControlPlane) and
    /// `standalone` (the k0smotron.io Cluster). A kind whose CRDs are not installed is skipped.
    #[arg(
        long,
        env = "KINDS",
        value_delimiter = ',',
        default_value = "capi,standalone"
    )]
    kinds: Vec<KindArg>,
    /// The algorithm of the keys made for new control planes (CAs, service-account key, etcd
    /// and admin certificates): `ecdsa-p256`, or `rsa-2048` as upstream k0smotron makes them
    /// (for tools that expect RSA CA keys). Keys already stored are kept whatever their type.
    #[arg(long, env = "KEY_ALGORITHM", default_value = "ecdsa-p256")]
    key_algorithm: KeyAlgorithmArg,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KeyAlgorithmArg {
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    #[value(name = "rsa-2048")]
    Rsa2048,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KindArg {
    Capi,
    Standalone,
}

impl Cli {
    fn policy(&self) -> FieldPolicy {
        FieldPolicy {
            host_path: self.allow_host_path,
            patches: self.allow_patches,
            mounts: self.allow_mounts,
            manifests: self.allow_manifests,
            service_account: self.allow_service_account,
            remote_host_cluster: self.allow_remote_host_cluster,
        }
    }
}

/// The CRDs whose conversion webhook this provider serves: those of the kinds it serves (the
/// standalone install's RBAC names only the k0smotron.io ones).
fn webhook_crds(kinds: &[KindArg]) -> Vec<String> {
    let groups: Vec<&str> = kinds
        .iter()
        .map(|kind| match kind {
            KindArg::Capi => k0smotron_api::names::CONTROLPLANE_GROUP,
            KindArg::Standalone => k0smotron_api::names::STANDALONE_GROUP,
        })
        .collect();
    k0smotron_api::crds::controlplane()
        .iter()
        .filter(|crd| groups.contains(&crd.spec.group.as_str()))
        .filter_map(|crd| crd.metadata.name.clone())
        .collect()
}

fn main() -> anyhow::Result<()> {
    provider_runtime::runtime::build()?.block_on(manager())
}

async fn manager() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let policy = cli.policy();
    certs::set_key_algorithm(match cli.key_algorithm {
        KeyAlgorithmArg::EcdsaP256 => KeyAlgorithm::EcdsaP256,
        KeyAlgorithmArg::Rsa2048 => KeyAlgorithm::Rsa2048,
    });
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
    let webhook = provider_runtime::webhook::start(
        &manager,
        client.clone(),
        WEBHOOK_SERVICE,
        WEBHOOK_SECRET,
        webhook_crds(&cli.kinds),
        shutdown.clone(),
    )
    .await?;

    let settings = Settings {
        probe_timeout: Duration::from_secs(cli.workload_probe_timeout),
        resync: Duration::from_secs(cli.resync_period),
        debounce: Duration::from_millis(cli.reconcile_debounce_ms),
        secret_cache_size: cli.secret_cache_size,
        policy,
        kinds: Kinds {
            capi: cli.kinds.contains(&KindArg::Capi),
            standalone: cli.kinds.contains(&KindArg::Standalone),
        },
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
    if let Some(webhook) = webhook {
        webhook.await??;
    }
    Ok(result?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(args: &[&str]) -> FieldPolicy {
        Cli::try_parse_from(std::iter::once("controlplane-provider").chain(args.iter().copied()))
            .unwrap()
            .policy()
    }

    // NB: assumes the flags' environment variables are not set in the test process.
    #[test]
    fn allow_flags_default_to_upstream_behaviour_without_host_path() {
        assert_eq!(policy(&[]), FieldPolicy::default());
        assert!(!policy(&[]).host_path);
        assert!(policy(&["--allow-host-path"]).host_path);
        assert!(policy(&["--allow-host-path=true"]).host_path);
        let off = policy(&[
            "--allow-patches=false",
            "--allow-mounts=false",
            "--allow-manifests=false",
            "--allow-service-account=false",
            "--allow-remote-host-cluster=false",
        ]);
        assert_eq!(
            off,
            FieldPolicy {
                host_path: false,
                patches: false,
                mounts: false,
                manifests: false,
                service_account: false,
                remote_host_cluster: false,
            }
        );
        assert!(Cli::try_parse_from(["controlplane-provider", "--allow-patches=maybe"]).is_err());
    }

    #[test]
    fn the_webhook_patches_the_crds_of_the_kinds_served() {
        assert_eq!(
            webhook_crds(&[KindArg::Standalone]),
            ["clusters.k0smotron.io", "jointokenrequests.k0smotron.io"]
        );
        assert_eq!(
            webhook_crds(&[KindArg::Capi, KindArg::Standalone]),
            [
                "k0smotroncontrolplanes.controlplane.cluster.x-k8s.io",
                "k0smotroncontrolplanetemplates.controlplane.cluster.x-k8s.io",
                "clusters.k0smotron.io",
                "jointokenrequests.k0smotron.io"
            ]
        );
    }
}
