//! A watch store that keeps each object as its JSON text rather than as the decoded struct.
//!
//! The `k8s-openapi` structs hold every optional field inline: a `Container` is 2.3 KiB and a
//! `Pod` 2.4 KiB before any of their strings, even when all but a name and an image are empty, and
//! every string and map entry is an allocation of its own. Kept as JSON, a trimmed pod or
//! StatefulSet of a control plane is a fifth of that or less (issue #11: the watch stores were
//! about half of the provider's heap at N = 1,000). A read decodes the object again, which costs
//! microseconds, and reconciles read a handful of objects each.
//!
//! Each entry also keeps its cluster-name label, so the control-plane pods of one cluster are
//! found without decoding every pod of the namespace.
//!
//! A (re)list is collected aside and replaces the objects when it is done, as kube-runtime's
//! reflector does: until then reads see the previous list and the events since.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use k0smotron_api::names;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The objects of one watch, by namespace and name, as JSON.
pub struct Packed<K> {
    inner: Arc<RwLock<Objects>>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Default for Packed<K> {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            kind: PhantomData,
        }
    }
}

#[derive(Default)]
struct Objects {
    /// `ns/name` (`name` for cluster-scoped kinds) → the object.
    live: HashMap<Box<str>, Entry>,
    /// The list under way, swapped in at its end.
    relist: Option<HashMap<Box<str>, Entry>>,
}

struct Entry {
    /// The object's `cluster.x-k8s.io/cluster-name` label.
    cluster: Option<Box<str>>,
    json: Box<[u8]>,
}

/// Why an object could not be read back (never expected: it is our own encoding of a value of
/// the same type). Readers treat it as "the store cannot say" and ask the API server.
#[derive(Debug)]
pub struct Undecodable(serde_json::Error);

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a kept object does not decode: {}", self.0)
    }
}

fn key(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn namespace_of(key: &str) -> Option<&str> {
    key.split_once('/').map(|(ns, _)| ns)
}

impl<K> Packed<K> {
    fn read(&self) -> RwLockReadGuard<'_, Objects> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Objects> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many objects are kept.
    pub fn len(&self) -> usize {
        self.read().live.len()
    }
}

impl<K: Resource + Serialize> Packed<K> {
    /// Takes in one watch event.
    pub fn apply(&self, event: &watcher::Event<K>) {
        let mut objects = self.write();
        match event {
            watcher::Event::Init => objects.relist = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                if let Some((k, entry)) = encode(obj) {
                    objects.relist.get_or_insert_default().insert(k, entry);
                }
            }
            watcher::Event::InitDone => {
                if let Some(list) = objects.relist.take() {
                    objects.live = list;
                }
            }
            watcher::Event::Apply(obj) => {
                if let Some((k, entry)) = encode(obj) {
                    objects.live.insert(k, entry);
                }
            }
            watcher::Event::Delete(obj) => {
                let k = key(obj.meta().namespace.as_deref(), &obj.name_any());
                objects.live.remove(k.as_str());
            }
        }
    }
}

impl<K: DeserializeOwned> Packed<K> {
    /// `ns/name` (`ns` is `None` for a cluster-scoped kind), if kept.
    pub fn get(&self, ns: Option<&str>, name: &str) -> Option<Result<K, Undecodable>> {
        let objects = self.read();
        let entry = objects.live.get(key(ns, name).as_str())?;
        Some(decode(entry))
    }

    /// Every object of namespace `ns` (every object when `None`) whose cluster-name label is
    /// `cluster` (any when `None`).
    pub fn list(&self, ns: Option<&str>, cluster: Option<&str>) -> Result<Vec<K>, Undecodable> {
        let objects = self.read();
        objects
            .live
            .iter()
            .filter(|(k, _)| ns.is_none_or(|ns| namespace_of(k) == Some(ns)))
            .filter(|(_, e)| cluster.is_none_or(|c| e.cluster.as_deref() == Some(c)))
            .map(|(_, e)| decode(e))
            .collect()
    }
}

fn encode<K: Resource + Serialize>(obj: &K) -> Option<(Box<str>, Entry)> {
    let json = match serde_json::to_vec(obj) {
        Ok(json) => json,
        Err(e) => {
            // Not expected for any API type; the object is then read from the API server.
            tracing::warn!(name = %obj.name_any(), error = %e, "object not kept: it does not encode");
            return None;
        }
    };
    let k = key(obj.meta().namespace.as_deref(), &obj.name_any());
    let cluster = obj
        .labels()
        .get(names::CLUSTER_NAME_LABEL)
        .map(|c| c.as_str().into());
    Some((
        k.into_boxed_str(),
        Entry {
            cluster,
            json: json.into_boxed_slice(),
        },
    ))
}

fn decode<K: DeserializeOwned>(entry: &Entry) -> Result<K, Undecodable> {
    serde_json::from_slice(&entry.json).map_err(Undecodable)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
    use kube::runtime::watcher::Event;
    use pretty_assertions::assert_eq;

    fn pod(ns: &str, name: &str, cluster: Option<&str>, image: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some(ns.into());
        p.metadata.resource_version = Some(format!("rv-{image}"));
        if let Some(c) = cluster {
            p.labels_mut()
                .insert(names::CLUSTER_NAME_LABEL.into(), c.into());
        }
        p.spec = Some(PodSpec {
            containers: vec![Container {
                name: "controller".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    fn names(pods: Result<Vec<Pod>, Undecodable>) -> Vec<String> {
        let mut names: Vec<String> = pods.unwrap().iter().map(|p| p.name_any()).collect();
        names.sort();
        names
    }

    #[test]
    fn an_object_reads_back_as_it_was_kept() {
        let store = Packed::<Pod>::default();
        let p = pod("ns", "a", Some("demo"), "k0s:v1");
        store.apply(&Event::Apply(p.clone()));
        assert_eq!(store.get(Some("ns"), "a").unwrap().unwrap(), p);
        assert!(store.get(Some("other"), "a").is_none());
        assert!(store.get(None, "a").is_none());

        let changed = pod("ns", "a", Some("demo"), "k0s:v2");
        store.apply(&Event::Apply(changed.clone()));
        assert_eq!(store.get(Some("ns"), "a").unwrap().unwrap(), changed);
        store.apply(&Event::Delete(changed));
        assert!(store.get(Some("ns"), "a").is_none());
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn cluster_scoped_objects_are_kept_by_name() {
        let store = Packed::<Node>::default();
        let mut n = Node::default();
        n.metadata.name = Some("node-1".into());
        store.apply(&Event::Apply(n.clone()));
        assert_eq!(store.get(None, "node-1").unwrap().unwrap(), n);
        assert_eq!(store.list(None, None).unwrap(), vec![n]);
    }

    #[test]
    fn a_list_selects_by_namespace_and_cluster_label() {
        let store = Packed::<Pod>::default();
        for (ns, name, cluster) in [
            ("ns", "a-0", Some("a")),
            ("ns", "a-1", Some("a")),
            ("ns", "b-0", Some("b")),
            ("other", "a-0", Some("a")),
            ("ns", "unlabelled", None),
        ] {
            store.apply(&Event::Apply(pod(ns, name, cluster, "k0s:v1")));
        }
        assert_eq!(names(store.list(Some("ns"), Some("a"))), ["a-0", "a-1"]);
        assert_eq!(names(store.list(Some("other"), Some("a"))), ["a-0"]);
        assert_eq!(
            names(store.list(Some("ns"), None)),
            ["a-0", "a-1", "b-0", "unlabelled"]
        );
        assert_eq!(store.list(None, None).unwrap().len(), 5);
        assert_eq!(
            names(store.list(Some("ns"), Some("c"))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_relist_replaces_the_objects_when_it_is_done() {
        let store = Packed::<Pod>::default();
        store.apply(&Event::Apply(pod("ns", "gone", None, "k0s:v1")));
        store.apply(&Event::Apply(pod("ns", "stays", None, "k0s:v1")));

        store.apply(&Event::Init);
        store.apply(&Event::InitApply(pod("ns", "stays", None, "k0s:v2")));
        store.apply(&Event::InitApply(pod("ns", "new", None, "k0s:v1")));
        // Until the list is done, reads see the previous one.
        assert_eq!(names(store.list(None, None)), ["gone", "stays"]);
        let stays = store.get(Some("ns"), "stays").unwrap().unwrap();
        assert_eq!(stays.resource_version().as_deref(), Some("rv-k0s:v1"));

        store.apply(&Event::InitDone);
        assert_eq!(names(store.list(None, None)), ["new", "stays"]);
        let stays = store.get(Some("ns"), "stays").unwrap().unwrap();
        assert_eq!(stays.resource_version().as_deref(), Some("rv-k0s:v2"));
    }

    #[test]
    fn a_kept_pod_costs_a_fraction_of_the_struct() {
        let p = pod(
            "namespace",
            "kmc-demo-0",
            Some("demo"),
            "k0sproject/k0s:v1.35.4-k0s.0",
        );
        let (_, entry) = encode(&p).unwrap();
        let container = std::mem::size_of::<Container>();
        assert!(
            entry.json.len() < std::mem::size_of::<Pod>() + container,
            "{} bytes",
            entry.json.len()
        );
        assert!(entry.json.len() < 400, "{} bytes", entry.json.len());
    }
}
