//! What a reconcile reads without a round trip: the Machines and Clusters the controller watches
//! anyway (their reflector stores), and one workload client per Cluster kept between reconciles.
//!
//! A store can lag behind the API server (an object created a moment ago may not be in it yet):
//! a miss falls back to a GET, so the cache only ever saves requests, never hides an object. A
//! stale hit is harmless: every change of a Machine or Cluster wakes its configs again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k0smotron_api::capi::{Cluster, Machine};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use super::error::{Error, kube_err};
use crate::workload::Workload;

/// The reflector stores of the controller's Machine and Cluster watches.
#[derive(Clone)]
pub(crate) struct Stores {
    /// Machines, as the Machine watch sees them.
    pub machines: Store<Machine>,
    /// Clusters, as the Cluster watch sees them.
    pub clusters: Store<Cluster>,
}

impl Stores {
    /// The Machine `ns/name`: from the store, else by GET (`None`: it does not exist).
    pub(super) async fn machine(
        &self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Machine>>, Error> {
        cached_or_get(&self.machines, client, ns, name).await
    }

    /// The Cluster `ns/name`: from the store, else by GET.
    pub(super) async fn cluster(
        &self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Cluster>>, Error> {
        cached_or_get(&self.clusters, client, ns, name).await
    }
}

async fn cached_or_get<K>(
    store: &Store<K>,
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<Arc<K>>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + 'static,
{
    if let Some(obj) = store.get(&ObjectRef::new(name).within(ns)) {
        return Ok(Some(obj));
    }
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let kind = K::kind(&());
    Ok(api
        .get_opt(name)
        .await
        .map_err(kube_err(format!("reading {kind} {ns}/{name}")))?
        .map(Arc::new))
}

/// The key of a Cluster's workload client: `namespace/name`.
pub(super) fn cluster_key(ns: &str, cluster: &str) -> String {
    format!("{ns}/{cluster}")
}

/// How long an unused workload client is kept.
const IDLE: Duration = Duration::from_secs(10 * 60);

/// What a cached client was built from: the kubeconfig Secret's identity and version and the
/// endpoint it was checked against. Any change builds a new client.
#[derive(Clone, PartialEq, Eq)]
struct Source {
    uid: Option<String>,
    resource_version: Option<String>,
    host: String,
    port: u16,
}

/// One workload client per Cluster (`namespace/name`), so the reconciles of a cluster's configs
/// share its connections instead of each building a client and a TLS session of its own. The
/// kubeconfig Secret is still read on every reconcile (the cache is keyed by its
/// resourceVersion), so a rotated or withdrawn kubeconfig takes effect at once.
#[derive(Default)]
pub(crate) struct WorkloadClients {
    entries: Mutex<HashMap<String, (Source, Workload, Instant)>>,
}

impl WorkloadClients {
    /// The client built from `secret` for the endpoint `host:port`: the cached one when it was
    /// built from this very version of the Secret for this endpoint, else a new one from
    /// `build` (cached on success).
    pub(super) fn get_or_build<E>(
        &self,
        cluster_key: &str,
        secret: &Secret,
        (host, port): (&str, u16),
        build: impl FnOnce() -> Result<Workload, E>,
    ) -> Result<Workload, E> {
        let source = Source {
            uid: secret.uid(),
            resource_version: secret.resource_version(),
            host: host.to_string(),
            port,
        };
        let now = Instant::now();
        {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.retain(|_, (_, _, used)| now.duration_since(*used) < IDLE);
            if let Some((cached, workload, used)) = entries.get_mut(cluster_key)
                && *cached == source
            {
                *used = now;
                return Ok(workload.clone());
            }
        }
        // Built outside the lock: parsing the kubeconfig's certificates is the slow part.
        let workload = build()?;
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cluster_key.to_string(), (source, workload.clone(), now));
        Ok(workload)
    }

    /// Forgets `cluster_key`'s client (after its calls failed: the next reconcile starts anew).
    pub(super) fn forget(&self, cluster_key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cluster_key);
    }

    /// How many clients are kept (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn secret(uid: &str, rv: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.uid = Some(uid.into());
        s.metadata.resource_version = Some(rv.into());
        s
    }

    fn workload() -> Workload {
        let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        Workload::new(kube::Client::try_from(config).unwrap())
    }

    #[tokio::test]
    async fn a_client_is_built_once_per_secret_version_and_endpoint() {
        let clients = WorkloadClients::default();
        let builds = std::cell::Cell::new(0);
        let get = |s: &Secret, endpoint| {
            clients
                .get_or_build("ns/demo", s, endpoint, || {
                    builds.set(builds.get() + 1);
                    Ok::<_, ()>(workload())
                })
                .unwrap();
        };
        get(&secret("u", "1"), ("h", 1));
        get(&secret("u", "1"), ("h", 1));
        assert_eq!(builds.get(), 1, "the same Secret version reuses the client");
        get(&secret("u", "2"), ("h", 1));
        assert_eq!(builds.get(), 2, "a new Secret version builds anew");
        get(&secret("u", "2"), ("other", 1));
        assert_eq!(builds.get(), 3, "another endpoint builds anew");
        get(&secret("v", "2"), ("other", 1));
        assert_eq!(builds.get(), 4, "a re-created Secret builds anew");
        assert_eq!(clients.len(), 1, "one client per cluster");
    }

    #[tokio::test]
    async fn a_failed_build_caches_nothing_and_forget_drops_the_client() {
        let clients = WorkloadClients::default();
        let s = secret("u", "1");
        assert!(
            clients
                .get_or_build("ns/demo", &s, ("h", 1), || Err::<Workload, _>("refused"))
                .is_err()
        );
        assert_eq!(clients.len(), 0);
        clients
            .get_or_build("ns/demo", &s, ("h", 1), || Ok::<_, ()>(workload()))
            .unwrap();
        clients.forget("ns/demo");
        assert_eq!(clients.len(), 0);
    }
}
