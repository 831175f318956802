//! `bootstrap-provider`: the K0sWorkerConfig manager (`run`, the default) and `render`, which
//! prints the bootstrap data a config yields without a cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bootstrap_provider::controller::{self, Settings};
use bootstrap_provider::features::Gates;
use bootstrap_provider::offline::{self, OfflineOptions};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use prometheus_client::registry::Registry;
use provider_runtime::{
    ManagerArgs, Metrics, MetricsSecurity, Readiness, Server, leader, shutdown, telemetry,
};

/// Lease name when `--leader-election-id` is not given.
const LEASE_NAME: &str = "bootstrap.k0smotron.io";
/// The webhook Service when `--webhook-service` is not given: its name in the clusterctl
/// components (config/bootstrap).
const WEBHOOK_SERVICE: &str = "k0smotron-bootstrap-webhook-service";
/// The webhook certificate Secret when `--webhook-secret` is not given.
const WEBHOOK_SECRET: &str = "k0smotron-bootstrap-webhook-server-cert";

#[derive(Parser)]
#[command(
    name = "bootstrap-provider",
    version,
    about = "k0smotron-rs bootstrap provider (K0sWorkerConfig)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Manager flags when no subcommand is given.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the manager (the default).
    Run(Box<RunArgs>),
    /// Print the bootstrap data a K0sWorkerConfig (or K0sWorkerConfigTemplate) yields, with a
    /// placeholder token and CA.
    Render(RenderArgs),
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    manager: ManagerArgs,
    /// Lifetime of a worker's bootstrap token (`900`, `900s`, `15m`, `1h`); refreshed every
    /// third of it until the Machine's Node joins, then deleted.
    #[arg(long, env = "TOKEN_TTL", default_value = "15m", value_parser = controller::parse_ttl)]
    token_ttl: Duration,
    /// How long after a config's data was written its token may still be refreshed (`168h`:
    /// 7 days); then it is left to expire. Bounds a MachinePool's shared token, which no Node
    /// join ever retires.
    #[arg(long, env = "TOKEN_MAX_LIFETIME", default_value = "168h", value_parser = controller::parse_ttl)]
    token_max_lifetime: Duration,
    /// Feature gates, upstream's form: `CloudInitVars=true` makes custom user data a Jinja
    /// template that gets the k0s commands and files as variables (docs/bootstrap.md).
    #[arg(long, env = "K0SMOTRON_FEATURE_GATES", default_value = "")]
    feature_gates: Gates,
}

#[derive(clap::Args)]
struct RenderArgs {
    /// File with the K0sWorkerConfig (other documents are ignored); `-` reads stdin.
    #[arg(short = 'f', long = "file", value_name = "CONFIG.yaml")]
    file: PathBuf,
    /// Stand-in for the owner Machine's `spec.version` (used when the config has no version).
    #[arg(long, value_name = "V")]
    machine_version: Option<String>,
    /// API server URL written into the join token.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Stand-in for the owner Machine's name (node name and label); the config's name by default.
    #[arg(long, value_name = "N")]
    machine_name: Option<String>,
    /// File with the content `provisioner.customUserDataRef` names, to see the merged data
    /// (left out without it).
    #[arg(long, value_name = "FILE")]
    custom_user_data: Option<PathBuf>,
    /// Feature gates as the provider would run with (`CloudInitVars=true`).
    #[arg(long, default_value = "")]
    feature_gates: Gates,
}

fn render(args: RenderArgs) -> anyhow::Result<()> {
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let custom_user_data = args
        .custom_user_data
        .map(|path| {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        })
        .transpose()?;
    let options = OfflineOptions {
        machine_version: args.machine_version,
        endpoint: args.endpoint,
        machine_name: args.machine_name,
        custom_user_data,
        gates: args.feature_gates,
    };
    let data = offline::render_text(&text, &options)?;
    print!("{data}");
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let manager = args.manager;
    telemetry::init(manager.log_format)?;
    let shutdown = shutdown::on_signals()?;
    let client = kube::Client::try_default()
        .await
        .context("building the Kubernetes client")?;

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
        k0smotron_api::crds::names(&k0smotron_api::crds::bootstrap()),
        shutdown.clone(),
    )
    .await?;

    let settings = Settings {
        token_ttl: args.token_ttl,
        token_max_lifetime: args.token_max_lifetime,
        gates: args.feature_gates,
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

fn main() -> anyhow::Result<()> {
    provider_runtime::runtime::build()?.block_on(manager())
}

async fn manager() -> anyhow::Result<()> {
    // Set the description after the derive: the flattened ManagerArgs' doc comment would
    // otherwise become this command's help text.
    let matches = Cli::command()
        .about("k0smotron-rs bootstrap provider: turns K0sWorkerConfigs into k0s worker cloud-init")
        .long_about(None)
        .get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    match cli.command {
        Some(Command::Render(args)) => render(args),
        Some(Command::Run(args)) => run(*args).await,
        None => run(cli.run).await,
    }
}
