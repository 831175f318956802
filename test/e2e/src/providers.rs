//! Our two provider managers as a test runs them: the binaries `cargo build --bins` produced,
//! scoped to one namespace, health and metrics on free loopback ports, no leader election.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::process::{self, Background, ProcessError};
use crate::tools::{self, ToolError};

/// Starting a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The binary is missing.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// No free port.
    #[error("finding a free port: {0}")]
    Port(#[source] std::io::Error),
    /// The process failed to start or become ready.
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// Which provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// `controlplane-provider` (K0smotronControlPlane).
    ControlPlane,
    /// `bootstrap-provider` (K0sWorkerConfig).
    Bootstrap,
}

impl Provider {
    /// The binary (and process) name.
    pub fn binary(self) -> &'static str {
        match self {
            Self::ControlPlane => "controlplane-provider",
            Self::Bootstrap => "bootstrap-provider",
        }
    }
}

/// A running provider manager.
#[derive(Debug)]
pub struct ProviderManager {
    process: Background,
    /// Its `/healthz` and `/readyz` address.
    pub health: SocketAddr,
    /// Its `/metrics` address (HTTPS, reviewed bearer tokens: the default).
    pub metrics: SocketAddr,
}

impl ProviderManager {
    /// Start `provider` against the cluster of `kubeconfig`, reconciling only `namespace` (and,
    /// with `leader_elect`, electing a leader through a Lease in that namespace, as a Deployment
    /// does in its own), and wait until it serves `/healthz`. Readiness is checked separately
    /// ([`ProviderManager::wait_ready`]), so a readiness bug fails its own assertion instead of
    /// hiding everything after it.
    pub async fn start(
        provider: Provider,
        kubeconfig: &Path,
        namespace: &str,
        log_dir: &Path,
        leader_elect: bool,
    ) -> Result<Self, ProviderError> {
        Self::start_with(provider, kubeconfig, namespace, log_dir, leader_elect, &[]).await
    }

    /// [`ProviderManager::start`] with `extra` flags appended (e.g. `--workload-probe-timeout=1`,
    /// or the leader-election identity's `--leader-election-id`).
    pub async fn start_with(
        provider: Provider,
        kubeconfig: &Path,
        namespace: &str,
        log_dir: &Path,
        leader_elect: bool,
        extra: &[String],
    ) -> Result<Self, ProviderError> {
        let binary = tools::workspace_binary(provider.binary())?;
        let health = process::free_loopback_addr().map_err(ProviderError::Port)?;
        let metrics = process::free_loopback_addr().map_err(ProviderError::Port)?;
        let mut args = vec![
            format!("--namespace={namespace}"),
            format!("--health-addr={health}"),
            format!("--metrics-addr={metrics}"),
            "--log-format=text".to_owned(),
        ];
        if leader_elect {
            args.push("--leader-elect".to_owned());
            args.push(format!("--leader-election-namespace={namespace}"));
        }
        args.extend(extra.iter().cloned());
        // `E2E_RUST_LOG` raises the providers' log level when debugging a failure.
        let log_level = std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".to_owned());
        let mut process = Background::spawn(
            provider.binary(),
            &binary,
            &args,
            [
                ("KUBECONFIG", kubeconfig.as_os_str()),
                ("RUST_LOG", log_level.as_ref()),
                ("NO_COLOR", "1".as_ref()),
            ],
            log_dir,
        )?;
        process
            .wait_ready(health, "/healthz", Duration::from_secs(60))
            .await?;
        Ok(Self {
            process,
            health,
            metrics,
        })
    }

    /// Wait until `/readyz` answers 200 (a leader whose caches have synced must be ready).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ProcessError> {
        let health = self.health;
        self.process.wait_ready(health, "/readyz", timeout).await
    }

    /// Whether it is still running.
    pub fn check_running(&mut self) -> Result<(), ProcessError> {
        self.process.check_running()
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Kill it at once (SIGKILL, no chance to clean up), as a crash or an OOM kill would.
    pub async fn kill(self) {
        self.process.kill().await;
    }

    /// Stop it.
    pub async fn stop(self) {
        self.process.stop(Duration::from_secs(10)).await;
    }
}
