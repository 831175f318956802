//! Bodies of the Secrets a reconcile read or created lately, used again while the Secret index
//! ([`crate::stores::SecretVersions`]) still shows the same resourceVersion.
//!
//! A full reconcile reads five to eight Secrets (certificates, the kubeconfig) by GET, and a new
//! control plane is reconciled four or five times before it settles: at N = 1,000 those GETs
//! were half of the provider's requests in the burst (21,460 of 42,460; bench/README.md, issue
//! #11). Keeping every Secret's body in a watch store would cost about 20 MiB at that N, for
//! Secrets that are read only while a control plane changes. This keeps a bounded number
//! instead, oldest out first, and serves one only when the metadata watch says it is still the
//! version kept — a resourceVersion names exactly one content, so a hit is what a GET would have
//! returned as far as the watch has seen, the same staleness every store read has. A Secret the
//! index does not know (not listed yet, no cluster-name label, deleted) is read again.
//!
//! Only the management cluster's Secrets with the cluster-name label are kept: those are the
//! ones the index watches.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use k0smotron_api::names;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::stores::version_hash;

/// Default of the `--secret-cache-size` flag: how many Secret bodies are kept (about 4 KiB
/// each for a certificate Secret).
pub const DEFAULT_CAPACITY: usize = 2048;

/// The kept Secret bodies (see the module documentation).
#[derive(Debug)]
pub struct SecretBodies {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `ns/name` → (hash of its resourceVersion, the body, when it was put). The body is boxed:
    /// inline, the table's empty slots cost the size of a `Secret` struct each (about 1 MiB of
    /// table at 1,500 entries in a heap profile).
    bodies: HashMap<String, (u64, Box<Secret>, u64)>,
    /// Keys in the order they were put, with the count they were put at; an entry whose count
    /// no longer matches was put again later.
    order: VecDeque<(String, u64)>,
    puts: u64,
}

impl Default for SecretBodies {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

impl SecretBodies {
    /// Keeps at most `capacity` bodies (0: none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept body of `ns/name` if its resourceVersion hashes to `current`, what the index
    /// says of it now (`None`: the index does not know it, so nothing is served).
    pub fn get(&self, ns: &str, name: &str, current: Option<u64>) -> Option<Secret> {
        let current = current?;
        let inner = self.inner();
        match inner.bodies.get(&key(ns, name)) {
            Some((version, body, _)) if *version == current => Some(Secret::clone(body)),
            _ => None,
        }
    }

    /// Keeps `secret` as read from or written to the management cluster, if it carries the
    /// cluster-name label (without its `managedFields`, which no reconcile reads of a Secret).
    pub fn put(&self, secret: &Secret) {
        if self.capacity == 0 || !secret.labels().contains_key(names::CLUSTER_NAME_LABEL) {
            return;
        }
        let (Some(ns), Some(version)) = (
            secret.metadata.namespace.as_deref(),
            secret.metadata.resource_version.as_deref(),
        ) else {
            return;
        };
        let k = key(ns, &secret.name_any());
        let mut body = Box::new(secret.clone());
        body.metadata.managed_fields = None;
        let mut inner = self.inner();
        inner.puts += 1;
        let at = inner.puts;
        inner
            .bodies
            .insert(k.clone(), (version_hash(version), body, at));
        inner.order.push_back((k, at));
        while inner.bodies.len() > self.capacity
            || inner.order.len() > self.capacity.saturating_mul(2)
        {
            let Some((oldest, put_at)) = inner.order.pop_front() else {
                break;
            };
            if inner.bodies.get(&oldest).is_some_and(|e| e.2 == put_at) {
                inner.bodies.remove(&oldest);
            }
        }
    }

    /// How many bodies are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner().bodies.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn secret(name: &str, version: &str, labelled: bool) -> Secret {
        let mut s = Secret::default();
        s.metadata.namespace = Some("ns".into());
        s.metadata.name = Some(name.into());
        s.metadata.resource_version = Some(version.into());
        if labelled {
            s.metadata.labels = Some(BTreeMap::from([(
                names::CLUSTER_NAME_LABEL.to_owned(),
                "c".to_owned(),
            )]));
        }
        s.metadata.managed_fields = Some(vec![Default::default()]);
        s
    }

    #[test]
    fn a_body_is_served_only_while_the_index_shows_its_version() {
        let bodies = SecretBodies::new(8);
        bodies.put(&secret("a", "7", true));
        let kept = bodies.get("ns", "a", Some(version_hash("7"))).unwrap();
        assert_eq!(kept.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(
            kept.metadata.managed_fields, None,
            "managedFields are not kept"
        );
        assert!(bodies.get("ns", "a", Some(version_hash("8"))).is_none());
        assert!(
            bodies.get("ns", "a", None).is_none(),
            "unknown to the index"
        );
        assert!(bodies.get("other", "a", Some(version_hash("7"))).is_none());
        bodies.put(&secret("a", "8", true));
        assert!(bodies.get("ns", "a", Some(version_hash("8"))).is_some());
        assert!(bodies.get("ns", "a", Some(version_hash("7"))).is_none());
    }

    #[test]
    fn only_labelled_secrets_with_a_version_are_kept() {
        let bodies = SecretBodies::new(8);
        bodies.put(&secret("user-data", "1", false));
        let mut no_version = secret("b", "1", true);
        no_version.metadata.resource_version = None;
        bodies.put(&no_version);
        assert_eq!(bodies.len(), 0);
        SecretBodies::new(0).put(&secret("a", "1", true));
    }

    #[test]
    fn the_oldest_put_goes_first_and_a_put_again_counts_as_new() {
        let bodies = SecretBodies::new(2);
        bodies.put(&secret("a", "1", true));
        bodies.put(&secret("b", "1", true));
        bodies.put(&secret("a", "2", true));
        bodies.put(&secret("c", "1", true));
        assert_eq!(bodies.len(), 2);
        assert!(bodies.get("ns", "b", Some(version_hash("1"))).is_none());
        assert!(bodies.get("ns", "a", Some(version_hash("2"))).is_some());
        assert!(bodies.get("ns", "c", Some(version_hash("1"))).is_some());
        for i in 0..100 {
            bodies.put(&secret("a", &i.to_string(), true));
        }
        assert!(bodies.len() <= 2);
        assert!(bodies.inner().order.len() <= 4, "the order is bounded too");
    }
}
