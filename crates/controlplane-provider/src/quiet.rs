//! Requeues of a waiting control plane whose inputs have not moved.
//!
//! A control plane whose API does not answer yet (or whose pods are not ready) is looked at
//! again on a backed-off timer, because nothing that a watch sees will say when its API starts
//! to answer. A full reconcile reads five to eight Secrets by GET, builds every child and
//! compares it with what is live; when nothing it read has changed since the last one, all of
//! that comes to the same result, and only the probe can say something new. At 1,000 control
//! planes that were waiting, those repeated full reconciles were the whole of the provider's CPU
//! at rest (bench/README.md, issue #11).
//!
//! So a full reconcile that ends waiting remembers what it read: the resourceVersion of the
//! control-plane object and of its CAPI Cluster, of every child and Secret it read (or that it
//! found none), the state of its pods and the Nodes' addresses. A requeue first compares those
//! with the watch stores (no request). When every one is unchanged, it only probes the API again
//! with the kubeconfig (one GET), and if the probe says what it said before, it waits again.
//! Anything else — a changed or unknown input, another probe answer, the memo older than the
//! resync interval — runs the full reconcile.
//!
//! What a full reconcile decides from time alone (a certificate's renewal at half-life) can so be
//! decided up to one resync interval late, as it already was for a settled control plane.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use k0smotron_api::capi::ApiEndpoint;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use crate::status::Probe;
use crate::stores::{self, Lookup, Stores};

/// A kind of input a reconcile reads by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// A Secret (by the metadata watch's resourceVersion).
    Secret,
    /// A StatefulSet.
    StatefulSet,
    /// A Service.
    Service,
    /// A ConfigMap.
    ConfigMap,
    /// A CronJob.
    CronJob,
    /// An Ingress.
    Ingress,
    /// A control-plane pod (by [`stores::pod_state`], not by resourceVersion: its heartbeats
    /// change nothing a reconcile reads).
    Pod,
}

/// What an input was: the hash of its resourceVersion (a pod's: of its state), or `None` when
/// there was no such object.
pub type Seen = Option<u64>;

/// Where the current state of inputs is looked up: the watch stores (a trait so that the memo's
/// logic is tested without them).
pub trait Lookups {
    /// The input now, or `None` when the store cannot say (not listed yet).
    fn seen(&self, input: Input, ns: &str, name: &str) -> Option<Seen>;
    /// A hash of every Node's name and addresses, or `None` before the first list.
    fn nodes(&self) -> Option<u64>;
}

fn found<K: kube::Resource>(lookup: Lookup<K>, state: impl Fn(&K) -> u64) -> Option<Seen> {
    match lookup {
        Lookup::Found(obj) => Some(Some(state(&obj))),
        Lookup::Missing => Some(None),
        Lookup::Unknown => None,
    }
}

fn version_of<K: kube::Resource>(obj: &K) -> u64 {
    stores::version_hash(obj.meta().resource_version.as_deref().unwrap_or_default())
}

impl Lookups for Stores {
    fn seen(&self, input: Input, ns: &str, name: &str) -> Option<Seen> {
        match input {
            Input::Secret => self.secrets.get(ns, name),
            Input::StatefulSet => found(self.statefulsets.get(ns, name), version_of),
            Input::Service => found(self.services.get(ns, name), version_of),
            Input::ConfigMap => found(self.config_maps.get(ns, name), version_of),
            Input::CronJob => found(self.cron_jobs.get(ns, name), version_of),
            Input::Ingress => found(self.ingresses.get(ns, name), version_of),
            Input::Pod => found(self.pods.get(ns, name), |p| {
                stores::pod_state(p).unwrap_or_default()
            }),
        }
    }

    fn nodes(&self) -> Option<u64> {
        self.nodes().map(|n| nodes_hash(&n))
    }
}

/// A hash of the Nodes' names and addresses, in name order (what a NodePort control plane
/// without `externalAddress` publishes).
pub fn nodes_hash(nodes: &[Node]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut entries: Vec<(String, Vec<(String, String)>)> = nodes
        .iter()
        .map(|n| {
            let addresses = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .map(|a| {
                    a.iter()
                        .map(|a| (a.type_.clone(), a.address.clone()))
                        .collect()
                })
                .unwrap_or_default();
            (n.name_any(), addresses)
        })
        .collect();
    entries.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    entries.hash(&mut h);
    h.finish()
}

/// What a full reconcile read, to be remembered if it ends waiting.
#[derive(Debug, Clone, Default)]
pub struct Reads {
    /// Each input by kind and name, and what the reconcile saw of it (`None`: not known, e.g.
    /// an obsolete child it only deleted if present; it is then taken from the stores as they
    /// are when the memo is made).
    pub inputs: Vec<(Input, String, Option<Seen>)>,
    /// The Nodes' hash, when the reconcile read Nodes.
    pub nodes: Option<u64>,
}

/// What a waiting reconcile ended with, beyond what it read.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The probe's answer (never [`Probe::Answered`]: an answering control plane is not
    /// remembered).
    pub probe: Probe,
    /// The kubeconfig Secret, the endpoint and the address dialed for it (when not resolved)
    /// the probe used (`None` when it did not run).
    pub probed_with: Option<(String, ApiEndpoint, Option<IpAddr>)>,
    /// The observed-state hash the requeue delay is counted by.
    pub observed: u64,
}

/// The requeue of an unchanged control plane: probe again with this, and wait again if the
/// answer is the same.
#[derive(Debug, Clone, PartialEq)]
pub struct Unchanged {
    /// The kubeconfig Secret and the endpoint to probe (`None`: no probe ran last time either).
    pub probe_with: Option<(String, ApiEndpoint, Option<IpAddr>)>,
    /// The answer of the last full reconcile's probe.
    pub probe: Probe,
    /// The observed-state hash the requeue delay is counted by.
    pub observed: u64,
}

struct Memo {
    object: u64,
    cluster: Option<u64>,
    inputs: Box<[(Input, Box<str>)]>,
    nodes: bool,
    fingerprint: u64,
    until: Instant,
    unchanged: Unchanged,
}

/// The memo of waiting control planes, by object key.
#[derive(Default)]
pub struct Quiet {
    memos: Mutex<HashMap<String, Memo>>,
}

impl std::fmt::Debug for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quiet").field("len", &self.len()).finish()
    }
}

/// A hash of every input in `inputs` as `lookups` has it now (and of the Nodes, when `nodes` is
/// given), or `None` when one cannot be known, or differs from what was read of it (the third
/// member of an input, and the value inside `nodes`, when known).
fn fingerprint<'a>(
    lookups: &impl Lookups,
    ns: &str,
    inputs: impl Iterator<Item = (Input, &'a str, Option<Seen>)>,
    nodes: Option<Option<u64>>,
) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (input, name, read) in inputs {
        let now = lookups.seen(input, ns, name)?;
        if read.is_some_and(|r| r != now) {
            return None;
        }
        (input, name, now).hash(&mut h);
    }
    if let Some(read) = nodes {
        let now = lookups.nodes()?;
        if read.is_some_and(|r| r != now) {
            return None;
        }
        now.hash(&mut h);
    }
    Some(h.finish())
}

impl Quiet {
    /// Remembers what the full reconcile of `key` read, if the stores still say the same of
    /// every input (a change since, our own writes included, means the next reconcile must be a
    /// full one: nothing is remembered then).
    #[allow(clippy::too_many_arguments)]
    pub fn remember(
        &self,
        key: &str,
        object_version: Option<&str>,
        cluster_version: Option<&str>,
        ns: &str,
        reads: Reads,
        outcome: Outcome,
        lookups: &impl Lookups,
        until: Instant,
    ) {
        // One pass: each input must be known to the stores and be what the run read of it.
        let fingerprint = fingerprint(
            lookups,
            ns,
            reads.inputs.iter().map(|(i, n, r)| (*i, n.as_str(), *r)),
            reads.nodes.map(Some),
        );
        let (Some(fingerprint), false) = (fingerprint, outcome.probe == Probe::Answered) else {
            self.forget(key);
            return;
        };
        let memo = Memo {
            object: stores::version_hash(object_version.unwrap_or_default()),
            cluster: cluster_version.map(stores::version_hash),
            inputs: reads
                .inputs
                .into_iter()
                .map(|(i, n, _)| (i, n.into_boxed_str()))
                .collect(),
            nodes: reads.nodes.is_some(),
            fingerprint,
            until,
            unchanged: Unchanged {
                probe_with: outcome.probed_with,
                probe: outcome.probe,
                observed: outcome.observed,
            },
        };
        self.lock().insert(key.to_string(), memo);
    }

    /// What to do instead of a full reconcile of `key`, when nothing it read has changed: the
    /// control-plane object and its CAPI Cluster are the ones given, every other input is as
    /// `lookups` has it, and the memo is not older than its time.
    pub fn unchanged(
        &self,
        key: &str,
        object_version: Option<&str>,
        cluster_version: Option<&str>,
        ns: &str,
        lookups: &impl Lookups,
        now: Instant,
    ) -> Option<Unchanged> {
        let memos = self.lock();
        let memo = memos.get(key)?;
        let same = now < memo.until
            && memo.object == stores::version_hash(object_version.unwrap_or_default())
            && memo.cluster == cluster_version.map(stores::version_hash)
            && fingerprint(
                lookups,
                ns,
                memo.inputs.iter().map(|(i, n)| (*i, &**n, None)),
                memo.nodes.then_some(None),
            ) == Some(memo.fingerprint);
        same.then(|| memo.unchanged.clone())
    }

    /// Forgets `key` (it changed, settled, or is gone).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// How many control planes are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// None is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Memo>> {
        self.memos
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::time::Duration;

    /// Inputs by (kind, name); a name absent from the map is `Missing`; `listed: false` makes
    /// every lookup unknown.
    #[derive(Default)]
    struct Fake {
        seen: RefCell<HashMap<(Input, String), u64>>,
        nodes: RefCell<u64>,
        listed: RefCell<bool>,
    }

    impl Fake {
        fn with(entries: &[(Input, &str, u64)]) -> Self {
            let fake = Fake::default();
            *fake.listed.borrow_mut() = true;
            for (i, n, v) in entries {
                fake.set(*i, n, Some(*v));
            }
            fake
        }
        fn set(&self, input: Input, name: &str, v: Option<u64>) {
            let mut seen = self.seen.borrow_mut();
            match v {
                Some(v) => seen.insert((input, name.into()), v),
                None => seen.remove(&(input, name.into())),
            };
        }
    }

    impl Lookups for Fake {
        fn seen(&self, input: Input, _ns: &str, name: &str) -> Option<Seen> {
            (*self.listed.borrow()).then(|| self.seen.borrow().get(&(input, name.into())).copied())
        }
        fn nodes(&self) -> Option<u64> {
            (*self.listed.borrow()).then(|| *self.nodes.borrow())
        }
    }

    fn endpoint() -> ApiEndpoint {
        ApiEndpoint {
            host: Some("10.1.0.7".into()),
            port: Some(30443),
        }
    }

    fn waiting() -> Outcome {
        Outcome {
            probe: Probe::Failed("connection refused".into()),
            probed_with: Some(("demo-kubeconfig".into(), endpoint(), None)),
            observed: 7,
        }
    }

    fn reads(entries: &[(Input, &str, Option<Seen>)]) -> Reads {
        Reads {
            inputs: entries
                .iter()
                .map(|(i, n, r)| (*i, n.to_string(), *r))
                .collect(),
            nodes: None,
        }
    }

    const INPUTS: [(Input, &str, u64); 4] = [
        (Input::Secret, "demo-ca", 1),
        (Input::Secret, "demo-kubeconfig", 2),
        (Input::StatefulSet, "kmc-demo", 3),
        (Input::Pod, "kmc-demo-0", 4),
    ];

    fn remembered(fake: &Fake, until: Instant) -> Quiet {
        let quiet = Quiet::default();
        let read: Vec<_> = INPUTS
            .iter()
            .map(|(i, n, v)| (*i, *n, Some(Some(*v))))
            .collect();
        let mut r = reads(&read);
        // Read as absent: an obsolete Service, not there.
        r.inputs
            .push((Input::Service, "kmc-demo-lb".into(), Some(None)));
        quiet.remember("k", Some("10"), Some("20"), "ns", r, waiting(), fake, until);
        quiet
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(300)
    }

    #[test]
    fn nothing_changed_gives_the_probe_to_repeat() {
        let fake = Fake::with(&INPUTS);
        let quiet = remembered(&fake, later());
        let unchanged = quiet.unchanged("k", Some("10"), Some("20"), "ns", &fake, Instant::now());
        assert_eq!(
            unchanged,
            Some(Unchanged {
                probe_with: Some(("demo-kubeconfig".into(), endpoint(), None)),
                probe: Probe::Failed("connection refused".into()),
                observed: 7,
            })
        );
        assert_eq!(quiet.len(), 1);
    }

    #[test]
    fn any_input_that_moved_or_appeared_means_a_full_reconcile() {
        let now = Instant::now();
        for (input, name, _) in INPUTS {
            let fake = Fake::with(&INPUTS);
            let quiet = remembered(&fake, later());
            fake.set(input, name, Some(99));
            assert_eq!(
                quiet.unchanged("k", Some("10"), Some("20"), "ns", &fake, now),
                None,
                "{name} changed"
            );
            fake.set(input, name, None);
            assert_eq!(
                quiet.unchanged("k", Some("10"), Some("20"), "ns", &fake, now),
                None,
                "{name} gone"
            );
        }
        let fake = Fake::with(&INPUTS);
        let quiet = remembered(&fake, later());
        fake.set(Input::Service, "kmc-demo-lb", Some(5));
        assert_eq!(
            quiet.unchanged("k", Some("10"), Some("20"), "ns", &fake, now),
            None,
            "an absent input appeared"
        );
    }

    #[test]
    fn the_object_its_cluster_unknown_stores_and_age_each_mean_a_full_reconcile() {
        let fake = Fake::with(&INPUTS);
        let now = Instant::now();
        let quiet = remembered(&fake, later());
        assert_eq!(
            quiet.unchanged("k", Some("11"), Some("20"), "ns", &fake, now),
            None
        );
        assert_eq!(
            quiet.unchanged("k", Some("10"), Some("21"), "ns", &fake, now),
            None
        );
        assert_eq!(
            quiet.unchanged("k", Some("10"), None, "ns", &fake, now),
            None
        );
        assert_eq!(
            quiet.unchanged("other", Some("10"), Some("20"), "ns", &fake, now),
            None
        );
        assert_eq!(
            quiet.unchanged(
                "k",
                Some("10"),
                Some("20"),
                "ns",
                &fake,
                later() + Duration::from_secs(1)
            ),
            None
        );
        *fake.listed.borrow_mut() = false;
        assert_eq!(
            quiet.unchanged("k", Some("10"), Some("20"), "ns", &fake, now),
            None
        );
    }

    #[test]
    fn a_read_the_stores_no_longer_agree_with_is_not_remembered() {
        // The reconcile wrote the StatefulSet (or someone changed it while it ran): the store
        // has another version than the one read, so the next reconcile must be a full one.
        let fake = Fake::with(&INPUTS);
        fake.set(Input::StatefulSet, "kmc-demo", Some(30));
        let quiet = remembered(&fake, later());
        assert!(quiet.is_empty());
        // A child the reconcile found absent and created.
        let fake = Fake::with(&INPUTS);
        fake.set(Input::Service, "kmc-demo-lb", Some(5));
        assert!(remembered(&fake, later()).is_empty());
        // A store that has not listed yet.
        let fake = Fake::with(&INPUTS);
        *fake.listed.borrow_mut() = false;
        assert!(remembered(&fake, later()).is_empty());
    }

    #[test]
    fn an_input_read_as_unknown_is_taken_as_the_store_has_it() {
        let fake = Fake::with(&INPUTS);
        fake.set(Input::CronJob, "kmc-demo-defrag", Some(6));
        let quiet = Quiet::default();
        let r = reads(&[(Input::CronJob, "kmc-demo-defrag", None)]);
        quiet.remember("k", Some("10"), None, "ns", r, waiting(), &fake, later());
        let now = Instant::now();
        assert!(
            quiet
                .unchanged("k", Some("10"), None, "ns", &fake, now)
                .is_some()
        );
        fake.set(Input::CronJob, "kmc-demo-defrag", None);
        assert!(
            quiet
                .unchanged("k", Some("10"), None, "ns", &fake, now)
                .is_none()
        );
    }

    #[test]
    fn nodes_count_when_read_and_an_answering_api_is_never_remembered() {
        let fake = Fake::with(&INPUTS);
        let quiet = Quiet::default();
        let mut r = reads(&[]);
        r.nodes = Some(0);
        quiet.remember("k", Some("10"), None, "ns", r, waiting(), &fake, later());
        let now = Instant::now();
        assert!(
            quiet
                .unchanged("k", Some("10"), None, "ns", &fake, now)
                .is_some()
        );
        *fake.nodes.borrow_mut() = 1;
        assert!(
            quiet
                .unchanged("k", Some("10"), None, "ns", &fake, now)
                .is_none()
        );

        let answered = Outcome {
            probe: Probe::Answered,
            ..waiting()
        };
        quiet.remember(
            "k",
            Some("10"),
            None,
            "ns",
            reads(&[]),
            answered,
            &fake,
            later(),
        );
        assert!(quiet.is_empty());
        let r = reads(&[(Input::Secret, "demo-ca", Some(Some(1)))]);
        quiet.remember("k", Some("10"), None, "ns", r, waiting(), &fake, later());
        quiet.forget("k");
        assert!(quiet.is_empty());
    }
}
