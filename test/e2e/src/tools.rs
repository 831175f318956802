//! Where things are: the repository, the binaries and CRD directories `test/harness/cluster env`
//! exports, and the provider binaries cargo built. Lookups only; nothing is built or started here.

use std::path::{Path, PathBuf};

/// A binary or directory a test needs is not where it should be.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Neither the variable nor its fallback is set.
    #[error(
        "{what}: ${var} is not set; start the harness (eval \"$(test/harness/cluster up --workloads --capi)\") or eval \"$(test/harness/cluster env)\""
    )]
    NotConfigured {
        /// What was looked for.
        what: &'static str,
        /// The environment variable that names it.
        var: &'static str,
    },
    /// The path is known but nothing is there.
    #[error("{what}: {} does not exist{hint}", path.display())]
    Missing {
        /// What was looked for.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// How to get it.
        hint: &'static str,
    },
}

/// The repository root (this crate lives in `test/e2e`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

fn existing(what: &'static str, path: PathBuf, hint: &'static str) -> Result<PathBuf, ToolError> {
    if path.exists() {
        Ok(path)
    } else {
        Err(ToolError::Missing { what, path, hint })
    }
}

/// `$VAR` if set, else `$HARNESS_BIN/<name>`.
fn harness_binary(what: &'static str, var: &'static str, name: &str) -> Result<PathBuf, ToolError> {
    let path = match std::env::var_os(var) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(
            std::env::var_os("HARNESS_BIN").ok_or(ToolError::NotConfigured { what, var })?,
        )
        .join(name),
    };
    existing(what, path, " (run test/harness/cluster build)")
}

fn harness_dir(what: &'static str, var: &'static str) -> Result<PathBuf, ToolError> {
    let path = PathBuf::from(std::env::var_os(var).ok_or(ToolError::NotConfigured { what, var })?);
    existing(what, path, " (run test/harness/cluster build)")
}

/// clusterctl built by the harness (`$CLUSTERCTL`).
pub fn clusterctl() -> Result<PathBuf, ToolError> {
    harness_binary("clusterctl", "CLUSTERCTL", "clusterctl")
}

/// The CAPI core manager built by the harness (`$CAPI_MANAGER`).
pub fn capi_manager() -> Result<PathBuf, ToolError> {
    harness_binary("CAPI core manager", "CAPI_MANAGER", "cluster-api-manager")
}

/// Helm built by the harness (`$HELM`, else `$HARNESS_BIN/helm`).
pub fn helm() -> Result<PathBuf, ToolError> {
    harness_binary("helm", "HELM", "helm")
}

/// The harness's pinned kubectl (`$HARNESS_BIN/kubectl`).
pub fn kubectl() -> Result<PathBuf, ToolError> {
    harness_binary("kubectl", "KUBECTL", "kubectl")
}

/// CAPI core's CRDs from the CAPI module the harness pins (`$CAPI_CRD_DIR`).
pub fn capi_crd_dir() -> Result<PathBuf, ToolError> {
    harness_dir("CAPI CRDs", "CAPI_CRD_DIR")
}

/// CAPD's CRDs from the CAPI test module (`$CAPD_CRD_DIR`).
pub fn capd_crd_dir() -> Result<PathBuf, ToolError> {
    harness_dir("CAPD CRDs", "CAPD_CRD_DIR")
}

/// The Helm chart of the standalone install.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/k0smotron")
}

/// Our CRDs, as `cargo xtask crd` generates them.
pub fn provider_crd_dir() -> PathBuf {
    repo_root().join("config/crd/bases")
}

/// The test infrastructure CRDs (`TestCluster`, `TestMachine`, `TestMachineTemplate`).
pub fn test_infra_crd_dir() -> PathBuf {
    repo_root().join("test/e2e/crds")
}

/// The templates users render with `clusterctl generate cluster --from`.
pub fn templates_dir() -> PathBuf {
    repo_root().join("templates")
}

/// A binary of this workspace built by `cargo build --bins` (`controlplane-provider`,
/// `bootstrap-provider`, `fake-infra-provider`): in `$K0SMOTRON_BIN_DIR` if set, else in the
/// target directory of the running test (`target/<profile>/`, two levels above
/// `target/<profile>/deps/<test>`), which is where cargo put them for the same profile.
pub fn workspace_binary(name: &'static str) -> Result<PathBuf, ToolError> {
    let dir = match std::env::var_os("K0SMOTRON_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
            .ok_or(ToolError::NotConfigured {
                what: name,
                var: "K0SMOTRON_BIN_DIR",
            })?,
    };
    existing(
        name,
        dir.join(name),
        " (run `cargo build --workspace --bins` with the same profile first, or set $K0SMOTRON_BIN_DIR)",
    )
}

/// The CAPI version the harness pins (`CAPI_VERSION` in `test/harness/versions.env`).
pub fn capi_version() -> Option<String> {
    let text = std::fs::read_to_string(repo_root().join("test/harness/versions.env")).ok()?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("CAPI_VERSION="))
        .map(|v| v.trim().trim_matches('"').to_owned())
}
