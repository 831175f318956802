//! Watches of hosting clusters (`spec.remoteHostCluster`): the management cluster's watches do
//! not see the children a remote control plane has there, so each hosting cluster in use gets
//! its own watch of the control-plane StatefulSets, Services and pods in the one namespace our
//! children use, started when the first control plane reconciles against it and stopped when the last one
//! leaves it (deleted, or moved to another Secret or back to the management cluster).
//!
//! A hosting cluster is identified by its kubeconfig Secret's version: a changed Secret is a new
//! watch (with the new credentials) and the old one stops with its last control plane. An event
//! wakes the control plane whose cluster name the object's `cluster.x-k8s.io/cluster-name` label
//! carries; a pod only when what status reads of it changed ([`crate::stores::pod_state`]).
//!
//! Only reads in hosting clusters; never writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::channel::mpsc;
use k0smotron_api::controlplane::v1beta2::K0smotronControlPlane;
use k0smotron_api::k0smotron::v1beta2::Cluster as StandaloneCluster;
use k0smotron_api::names;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::control_plane::Kind;

/// Triggers queued per controller before new ones are dropped (a dropped trigger is made up for
/// by the remote control planes' periodic requeue).
pub(crate) const BUFFER: usize = 1024;

/// A control plane, by kind, namespace and name.
type Target = (Kind, String);

/// The control planes of one namespace using one hosting cluster, by cluster name.
type Interest = Arc<Mutex<HashMap<String, Target>>>;

struct Entry {
    interest: Interest,
    task: tokio::task::AbortHandle,
}

/// The hosting-cluster watches and where their triggers go.
pub struct HostWatches {
    capi: Option<mpsc::Sender<ObjectRef<K0smotronControlPlane>>>,
    standalone: Option<mpsc::Sender<ObjectRef<StandaloneCluster>>>,
    /// By hosting key ([`crate::hosting::Host::key`]).
    entries: Mutex<HashMap<String, Entry>>,
    /// The hosting key each registered control plane (kind, namespace, name) uses.
    by_control_plane: Mutex<HashMap<(Kind, String, String), String>>,
}

impl std::fmt::Debug for HostWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostWatches").finish_non_exhaustive()
    }
}

impl Default for HostWatches {
    /// Watches whose triggers go nowhere (no controller listens).
    fn default() -> Self {
        Self::new(None, None)
    }
}

impl Drop for HostWatches {
    fn drop(&mut self) {
        let entries = self.entries.get_mut().unwrap_or_else(|e| e.into_inner());
        for entry in entries.values() {
            entry.task.abort();
        }
    }
}

impl HostWatches {
    /// Triggers go to `capi` and `standalone` (the controllers' `reconcile_on` streams).
    pub fn new(
        capi: Option<mpsc::Sender<ObjectRef<K0smotronControlPlane>>>,
        standalone: Option<mpsc::Sender<ObjectRef<StandaloneCluster>>>,
    ) -> Self {
        Self {
            capi,
            standalone,
            entries: Mutex::default(),
            by_control_plane: Mutex::default(),
        }
    }

    /// The control plane (`kind`, `namespace`, `name`) whose children are named after `cluster`
    /// lives in the hosting cluster `key`, reached by `client` (without a read timeout: a watch
    /// waits). Starts that hosting cluster's watch if none runs. Must run on a tokio runtime.
    pub(crate) fn register(
        &self,
        key: &str,
        client: &Client,
        (kind, namespace, name): (Kind, &str, &str),
        cluster: &str,
    ) {
        let cp = (kind, namespace.to_owned(), name.to_owned());
        let previous = {
            let mut by_cp = self
                .by_control_plane
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            by_cp.insert(cp.clone(), key.to_owned())
        };
        if let Some(previous) = previous.filter(|p| p != key) {
            self.leave(&previous, &cp);
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.entry(key.to_owned()).or_insert_with(|| {
            let interest = Interest::default();
            let task = tokio::spawn(watch(
                client.clone(),
                namespace.to_owned(),
                interest.clone(),
                self.capi.clone(),
                self.standalone.clone(),
            ))
            .abort_handle();
            tracing::info!(namespace, "watching a hosting cluster");
            Entry { interest, task }
        });
        entry
            .interest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cluster.to_owned(), (kind, name.to_owned()));
    }

    /// The control plane no longer uses a hosting cluster (deleted, or back in the management
    /// cluster); a watch without control planes stops. No lock is taken twice, and nothing but
    /// two map lookups happens for a control plane that never had one.
    pub(crate) fn forget(&self, kind: Kind, namespace: &str, name: &str) {
        let cp = (kind, namespace.to_owned(), name.to_owned());
        let key = {
            let mut by_cp = self
                .by_control_plane
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if by_cp.is_empty() {
                return;
            }
            by_cp.remove(&cp)
        };
        if let Some(key) = key {
            self.leave(&key, &cp);
        }
    }

    fn leave(&self, key: &str, (kind, _, name): &(Kind, String, String)) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = entries.get(key) else {
            return;
        };
        let empty = {
            let mut interest = entry.interest.lock().unwrap_or_else(|e| e.into_inner());
            interest.retain(|_, (k, n)| !(k == kind && n == name));
            interest.is_empty()
        };
        if empty {
            entry.task.abort();
            entries.remove(key);
            tracing::info!("stopped watching a hosting cluster");
        }
    }

    /// How many hosting clusters are watched (tests).
    pub fn watched(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Wakes the control plane `cluster` names in `interest`.
fn wake(
    interest: &Interest,
    namespace: &str,
    cluster: Option<&String>,
    capi: &mut Option<mpsc::Sender<ObjectRef<K0smotronControlPlane>>>,
    standalone: &mut Option<mpsc::Sender<ObjectRef<StandaloneCluster>>>,
) {
    let Some(cluster) = cluster else {
        return;
    };
    let target = interest
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(cluster)
        .cloned();
    // A full queue drops the trigger: the periodic requeue makes up for it.
    match (target, capi, standalone) {
        (Some((Kind::Capi, name)), Some(tx), _) => {
            let _ = tx.try_send(ObjectRef::new(&name).within(namespace));
        }
        (Some((Kind::Standalone, name)), _, Some(tx)) => {
            let _ = tx.try_send(ObjectRef::new(&name).within(namespace));
        }
        _ => {}
    }
}

/// The watch of one hosting cluster: its control-plane StatefulSets, Services and pods in
/// `namespace`.
async fn watch(
    client: Client,
    namespace: String,
    interest: Interest,
    mut capi: Option<mpsc::Sender<ObjectRef<K0smotronControlPlane>>>,
    mut standalone: Option<mpsc::Sender<ObjectRef<StandaloneCluster>>>,
) {
    let sts_config = watcher::Config::default()
        .any_semantic()
        .labels(names::CLUSTER_NAME_LABEL);
    let pods_config = watcher::Config::default().any_semantic().labels(&format!(
        "{}={},{}",
        names::APP_LABEL,
        names::APP_LABEL_VALUE,
        names::CONTROL_PLANE_LABEL
    ));
    let statefulsets = watcher(
        Api::<StatefulSet>::namespaced(client.clone(), &namespace),
        sts_config,
    )
    .default_backoff()
    .touched_objects()
    .map(|r| r.map(|s| s.labels().get(names::CLUSTER_NAME_LABEL).cloned()));
    // Services for a LoadBalancer's address, which the hosting cluster's controller writes.
    let services = watcher(
        Api::<Service>::namespaced(client.clone(), &namespace),
        watcher::Config::default()
            .any_semantic()
            .labels(names::CLUSTER_NAME_LABEL),
    )
    .default_backoff()
    .touched_objects()
    .map(|r| r.map(|s| s.labels().get(names::CLUSTER_NAME_LABEL).cloned()));
    let pods = watcher(Api::<Pod>::namespaced(client, &namespace), pods_config)
        .default_backoff()
        .touched_objects()
        .predicate_filter(crate::stores::pod_state, Default::default())
        .map(|r| r.map(|p| p.labels().get(names::CLUSTER_NAME_LABEL).cloned()));
    let mut events = std::pin::pin!(futures::stream::select_all([
        statefulsets.boxed(),
        services.boxed(),
        pods.boxed(),
    ]));
    while let Some(event) = events.next().await {
        match event {
            Ok(cluster) => wake(
                &interest,
                &namespace,
                cluster.as_ref(),
                &mut capi,
                &mut standalone,
            ),
            Err(e) => tracing::debug!(namespace, error = %e, "hosting cluster watch error"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_lives_as_long_as_a_control_plane_uses_it_and_wakes_only_its_own() {
        let (tx, mut rx) = mpsc::channel(8);
        let watches = HostWatches::new(Some(tx), None);
        // No API server behind it: the watch only retries; routing and lifetime are tested.
        let config = kube::Config::new("https://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        watches.register("h1", &client, (Kind::Capi, "ns", "a-cp"), "a");
        watches.register("h1", &client, (Kind::Capi, "ns", "b-cp"), "b");
        assert_eq!(watches.watched(), 1);
        let interest = watches.entries.lock().unwrap()["h1"].interest.clone();
        let mut none = None;
        wake(
            &interest,
            "ns",
            Some(&"b".to_string()),
            &mut watches.capi.clone(),
            &mut none,
        );
        wake(
            &interest,
            "ns",
            Some(&"x".to_string()),
            &mut watches.capi.clone(),
            &mut none,
        );
        assert_eq!(rx.try_recv().unwrap(), ObjectRef::new("b-cp").within("ns"));
        assert!(rx.try_recv().is_err(), "an unknown cluster wakes no one");
        // Moving to another hosting cluster leaves the first; the last one out stops it.
        watches.register("h2", &client, (Kind::Capi, "ns", "a-cp"), "a");
        assert_eq!(watches.watched(), 2);
        watches.forget(Kind::Capi, "ns", "b-cp");
        assert_eq!(watches.watched(), 1);
        watches.forget(Kind::Capi, "ns", "a-cp");
        assert_eq!(watches.watched(), 0);
        watches.forget(Kind::Capi, "ns", "never-registered");
    }
}
