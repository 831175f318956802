//! One namespace per test, deleted when the guard drops. Owns namespace lifecycle only.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client, Config};

/// Label on every namespace a [`TestNamespace`] creates, so leftovers are easy to find.
pub const TEST_NAMESPACE_LABEL: &str = "test-support.k0smotron-rs/test";

/// Why a test namespace could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// No client for the harness cluster.
    #[error(transparent)]
    Client(#[from] crate::ClientError),
    /// Creating the namespace failed.
    #[error("creating namespace {name}")]
    Create {
        /// Namespace name.
        name: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
}

/// A unique DNS-1123 label `PREFIX-xxxxxxxx` (prefix cut to keep it within 63 characters).
pub fn unique_name(prefix: &str) -> String {
    let mix = pseudo_random();
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(50)
        .collect();
    let prefix = prefix.trim_matches('-');
    let prefix = if prefix.is_empty() { "test" } else { prefix };
    format!("{prefix}-{mix:08x}")
}

/// Different on every call within a process and (very likely) across processes; not crypto.
pub(crate) fn pseudo_random() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos
        ^ std::process::id().rotate_left(16)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9)
}

/// A namespace owned by one test. Dropping it deletes the namespace (in the background of a
/// short-lived thread, so it works from sync and async code and while panicking); set
/// `HARNESS_KEEP_NAMESPACES=1` to keep them for debugging.
///
/// Without `--workloads` no namespace controller runs, so deleted namespaces stay
/// `Terminating`; they are still out of every other test's way.
pub struct TestNamespace {
    name: String,
    client: Client,
    config: Config,
}

impl TestNamespace {
    /// Create `PREFIX-<random>` in the cluster of `client`. `config` must point at the same
    /// cluster; it is used to delete the namespace from [`Drop`], where `client` (bound to the
    /// test's runtime) cannot be used.
    pub async fn create_with(
        client: Client,
        config: Config,
        prefix: &str,
    ) -> Result<Self, NamespaceError> {
        let name = unique_name(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|source| NamespaceError::Create {
                name: name.clone(),
                source,
            })?;
        Ok(Self {
            name,
            client,
            config,
        })
    }

    /// Create `PREFIX-<random>` in the harness cluster (`KUBECONFIG`).
    pub async fn create(prefix: &str) -> Result<Self, NamespaceError> {
        let path = std::env::var_os("KUBECONFIG").ok_or(crate::ClientError::NoKubeconfig)?;
        let config = crate::client::config_from_kubeconfig_file(path.as_ref()).await?;
        let client =
            Client::try_from(config.clone()).map_err(|source| crate::ClientError::Build {
                path: path.to_string_lossy().into_owned(),
                source,
            })?;
        Self::create_with(client, config, prefix).await
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A client for the cluster the namespace lives in.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A namespaced [`Api`] for this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("HARNESS_KEEP_NAMESPACES").is_some_and(|v| v == "1") {
            eprintln!(
                "keeping namespace {} (HARNESS_KEEP_NAMESPACES=1)",
                self.name
            );
            return;
        }
        let (name, config) = (self.name.clone(), self.config.clone());
        // A fresh runtime on its own thread: the test's runtime may be a current-thread one
        // that is blocked in this very drop, and the test's client is tied to it.
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let client = Client::try_from(config).map_err(std::io::Error::other)?;
                match Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
                    Err(e) => Err(std::io::Error::other(e)),
                }
            })
        });
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: deleting test namespace {}: {e}", self.name),
            Err(_) => eprintln!("warning: deleting test namespace {} panicked", self.name),
        }
    }
}
