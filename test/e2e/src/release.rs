//! The release as users get it: `hack/release-manifests.sh` run into a scratch directory, the
//! clusterctl local repository it writes, and the environment clusterctl runs in during tests
//! (its own config home, no update check, no network). Files only; talks to no cluster.

use std::path::{Path, PathBuf};

use crate::command::{self, CommandError};
use crate::scratch::ScratchDir;
use crate::tools::{self, ToolError};

/// The provider name both providers are registered under with clusterctl.
pub const PROVIDER_NAME: &str = "k0smotron";
/// clusterctl provider label of the control-plane provider.
pub const CONTROL_PLANE_LABEL: &str = "control-plane-k0smotron";
/// clusterctl provider label of the bootstrap provider.
pub const BOOTSTRAP_LABEL: &str = "bootstrap-k0smotron";

/// Building the release failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// A tool is missing.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The scratch directory could not be created or written.
    #[error("writing {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// `hack/release-manifests.sh` failed.
    #[error("hack/release-manifests.sh")]
    Script(#[source] CommandError),
    /// The workspace version could not be read from the script's output layout.
    #[error("no version directory under {}", .0.display())]
    NoVersion(PathBuf),
}

/// A release written by `hack/release-manifests.sh`.
#[derive(Debug)]
pub struct Release {
    dir: ScratchDir,
    /// The released version (`vX.Y.Z`), the repository's version folder.
    pub version: String,
}

impl Release {
    /// Run `hack/release-manifests.sh --out <scratch>` with the harness's kubectl.
    pub async fn build() -> Result<Self, ReleaseError> {
        let dir = ScratchDir::new("release").map_err(|source| ReleaseError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let kubectl = tools::kubectl()?;
        let bin_dir = kubectl.parent().map(Path::to_path_buf).unwrap_or_default();
        let script = tools::repo_root().join("hack/release-manifests.sh");
        command::run(
            Path::new("bash"),
            [script.as_os_str(), "--out".as_ref(), dir.path().as_os_str()],
            [("HARNESS_BIN", bin_dir.as_os_str())],
            Some(&tools::repo_root()),
        )
        .await
        .and_then(command::Output::success)
        .map_err(ReleaseError::Script)?;
        let repo = dir.join("repository").join(CONTROL_PLANE_LABEL);
        let version = std::fs::read_dir(&repo)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .ok_or_else(|| ReleaseError::NoVersion(repo.clone()))?;
        Ok(Self { dir, version })
    }

    /// The output directory (release assets at the top, `repository/` below).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `control-plane-components.yaml`.
    pub fn control_plane_components(&self) -> PathBuf {
        self.dir.join("control-plane-components.yaml")
    }

    /// `bootstrap-components.yaml`.
    pub fn bootstrap_components(&self) -> PathBuf {
        self.dir.join("bootstrap-components.yaml")
    }

    /// `k0smotron-standalone.yaml`: the standalone install (config/standalone), for `kubectl
    /// apply`.
    pub fn standalone(&self) -> PathBuf {
        self.dir.join("k0smotron-standalone.yaml")
    }

    /// The clusterctl local repository root (`<root>/<provider-label>/<version>/<file>`).
    pub fn repository(&self) -> PathBuf {
        self.dir.join("repository")
    }

    /// The `providers:` entries of a clusterctl config for this release's local repository.
    pub fn provider_entries(&self) -> String {
        let repo = self.repository();
        format!(
            "  - name: {PROVIDER_NAME}\n    type: ControlPlaneProvider\n    url: file://{}/{CONTROL_PLANE_LABEL}/{v}/control-plane-components.yaml\n  - name: {PROVIDER_NAME}\n    type: BootstrapProvider\n    url: file://{}/{BOOTSTRAP_LABEL}/{v}/bootstrap-components.yaml\n",
            repo.display(),
            repo.display(),
            v = self.version
        )
    }
}

/// The environment clusterctl runs in during tests: its config home is `home` (so no user
/// configuration or cache leaks in), no update check, and no network for Go module lookups.
pub fn clusterctl_env(home: &Path) -> Vec<(String, String)> {
    let home = home.display().to_string();
    vec![
        ("HOME".to_owned(), home.clone()),
        ("XDG_CONFIG_HOME".to_owned(), format!("{home}/.config")),
        (
            "CLUSTERCTL_DISABLE_VERSIONCHECK".to_owned(),
            "true".to_owned(),
        ),
        ("GOPROXY".to_owned(), "off".to_owned()),
    ]
}
