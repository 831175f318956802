//! CAPI core as a test runs it: the manager binary the harness built, out of cluster, scoped to
//! one namespace, with a throwaway webhook serving certificate (its webhook server always
//! starts) and no webhook registered with the API server (the shared harness must not route
//! other tests' requests to a process this test owns; objects are written fully specified
//! instead). Also the CAPI Go module itself, for its release manifests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::{self, CommandError};
use crate::pki::{self, PkiError};
use crate::process::{self, Background, ProcessError};
use crate::scratch::ScratchDir;
use crate::tools::{self, ToolError};

/// Starting CAPI core or finding its module failed.
#[derive(Debug, thiserror::Error)]
pub enum CapiError {
    /// A tool is missing.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The webhook certificate could not be generated.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Writing files or finding ports failed.
    #[error("preparing the CAPI manager: {0}")]
    Io(#[source] std::io::Error),
    /// The process failed to start or become ready.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// `go mod download` failed.
    #[error("locating the CAPI Go module")]
    GoModule(#[source] CommandError),
    /// `go mod download` printed no module directory.
    #[error("`go mod download -json {0}` printed no Dir")]
    NoModuleDir(String),
}

/// A running CAPI core manager.
#[derive(Debug)]
pub struct CapiManager {
    process: Background,
    health: SocketAddr,
    _certs: ScratchDir,
}

/// How to run CAPI core.
#[derive(Clone, Debug)]
pub struct CapiOptions<'a> {
    /// Kubeconfig of the management cluster.
    pub kubeconfig: &'a Path,
    /// Reconcile only this namespace (`--namespace`).
    pub namespace: &'a str,
    /// Where its log goes (`cluster-api-manager.log`).
    pub log_dir: &'a Path,
    /// `--feature-gates` value (empty: CAPI's defaults).
    pub feature_gates: &'a str,
}

impl CapiManager {
    /// Start it and wait until `/readyz` answers.
    pub async fn start(options: CapiOptions<'_>) -> Result<Self, CapiError> {
        let binary = tools::capi_manager()?;
        let certs = ScratchDir::new("capi-webhook-certs").map_err(CapiError::Io)?;
        let serving = pki::localhost_serving_cert()?;
        std::fs::write(certs.join("tls.crt"), &serving.cert_pem).map_err(CapiError::Io)?;
        std::fs::write(certs.join("tls.key"), &serving.key_pem).map_err(CapiError::Io)?;
        let health = process::free_loopback_addr().map_err(CapiError::Io)?;
        let webhook = process::free_loopback_addr().map_err(CapiError::Io)?;
        let mut args = vec![
            format!("--kubeconfig={}", options.kubeconfig.display()),
            format!("--namespace={}", options.namespace),
            "--leader-elect=false".to_owned(),
            format!("--health-addr={health}"),
            // Metrics/diagnostics are not needed; 0 disables the listener.
            "--diagnostics-address=0".to_owned(),
            format!("--webhook-cert-dir={}", certs.path().display()),
            format!("--webhook-port={}", webhook.port()),
            // The CRD migrator would rewrite the shared harness's CAPI CRDs and objects.
            "--skip-crd-migration-phases=StorageVersionMigration,CleanupManagedFields".to_owned(),
            "--v=2".to_owned(),
        ];
        if !options.feature_gates.is_empty() {
            args.push(format!("--feature-gates={}", options.feature_gates));
        }
        let mut process = Background::spawn(
            "cluster-api-manager",
            &binary,
            &args,
            std::iter::empty::<(&str, &str)>(),
            options.log_dir,
        )?;
        process
            .wait_ready(health, "/readyz", Duration::from_secs(60))
            .await?;
        Ok(Self {
            process,
            health,
            _certs: certs,
        })
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        self.process.log()
    }

    /// Whether it is still running and healthy.
    pub async fn check(&mut self) -> Result<(), ProcessError> {
        self.process.check_running()?;
        match process::http_status(self.health, "/healthz").await {
            Some(200) => Ok(()),
            _ => Err(self
                .process
                .failure(format!("not healthy at http://{}/healthz", self.health))),
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Stop it.
    pub async fn stop(self) {
        self.process.stop(Duration::from_secs(10)).await;
    }
}

/// The directory of Go module `sigs.k8s.io/cluster-api@v<version>` in the module cache
/// (downloaded if needed; the harness build already did).
pub async fn module_dir(version: &str) -> Result<PathBuf, CapiError> {
    let module = format!("sigs.k8s.io/cluster-api@v{version}");
    let output = command::run(
        Path::new("go"),
        ["mod", "download", "-json", module.as_str()],
        [("GOFLAGS", "")],
        Some(Path::new("/")),
    )
    .await
    .and_then(command::Output::success)
    .map_err(CapiError::GoModule)?;
    let json: serde_json::Value =
        serde_json::from_str(&output.stdout).map_err(|_| CapiError::NoModuleDir(module.clone()))?;
    json["Dir"]
        .as_str()
        .map(PathBuf::from)
        .ok_or(CapiError::NoModuleDir(module))
}
