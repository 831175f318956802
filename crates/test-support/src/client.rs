//! Building [`kube::Client`]s for the harness cluster and for workload API servers.
//! Owns kubeconfig loading only; never starts anything.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `KUBECONFIG` is not set: the harness is not up (or its env was not exported).
    #[error(
        "KUBECONFIG is not set; start the harness first: eval \"$(test/harness/cluster up --workloads --capi)\""
    )]
    NoKubeconfig,
    /// The kubeconfig could not be read or parsed.
    #[error("reading kubeconfig {path}")]
    Kubeconfig {
        /// The file (or `<yaml>` for in-memory text).
        path: String,
        /// What went wrong.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The client could not be constructed from a valid config (TLS setup).
    #[error("building a client for {path}")]
    Build {
        /// The kubeconfig the config came from.
        path: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
}

/// A client for the harness cluster, from the `KUBECONFIG` that `cluster up` printed.
pub async fn client() -> Result<Client, ClientError> {
    let path = std::env::var_os("KUBECONFIG").ok_or(ClientError::NoKubeconfig)?;
    client_from_kubeconfig_file(Path::new(&path)).await
}

/// A client from a kubeconfig file (its current context).
pub async fn client_from_kubeconfig_file(path: &Path) -> Result<Client, ClientError> {
    let name = path.display().to_string();
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
        path: name.clone(),
        source,
    })?;
    from_kubeconfig(kubeconfig, name).await
}

/// A client from kubeconfig YAML text (its current context).
pub async fn client_from_kubeconfig_yaml(yaml: &str) -> Result<Client, ClientError> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|source| ClientError::Kubeconfig {
        path: "<yaml>".into(),
        source,
    })?;
    from_kubeconfig(kubeconfig, "<yaml>".into()).await
}

pub(crate) async fn config_from_kubeconfig_file(path: &Path) -> Result<Config, ClientError> {
    let name = path.display().to_string();
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
        path: name.clone(),
        source,
    })?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::Kubeconfig { path: name, source })
}

async fn from_kubeconfig(kubeconfig: Kubeconfig, path: String) -> Result<Client, ClientError> {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::Kubeconfig {
            path: path.clone(),
            source,
        })?;
    Client::try_from(config).map_err(|source| ClientError::Build { path, source })
}
