//! Watches the contract's objects (StatefulSets, Services, Secrets, control planes) in the
//! benchmark's namespaces and stamps, per cluster, when its children were first all present and
//! when its pods were first Ready. Watches, not polls: the driver must not load the API server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt as _};
use tokio::sync::Notify;

use crate::contract::{Spec, kcp_resource};

/// What the watches last saw of one StatefulSet.
#[derive(Clone, Debug, Default)]
pub struct Sts {
    pub generation: i64,
    pub observed_generation: i64,
    pub ready: i32,
    pub updated: i32,
    pub current_revision: String,
    pub update_revision: String,
}

impl Sts {
    /// Every replica (1) ready and on the newest revision the StatefulSet controller has seen.
    pub fn rolled_and_ready(&self) -> bool {
        self.observed_generation >= self.generation
            && self.ready >= 1
            && self.updated >= 1
            && self.current_revision == self.update_revision
    }
}

#[derive(Debug, Default)]
pub struct ClusterState {
    pub sts: Option<Sts>,
    pub service: bool,
    pub secrets: [bool; 2],
    /// `metadata.generation`, `status.observedGeneration` of the control plane, if it exists.
    pub kcp: Option<(i64, i64)>,
    pub children_at: Option<Instant>,
    pub ready_at: Option<Instant>,
}

impl ClusterState {
    pub fn children_present(&self) -> bool {
        self.sts.is_some() && self.service && self.secrets.iter().all(|s| *s)
    }
    pub fn children_gone(&self) -> bool {
        self.sts.is_none() && !self.service && !self.secrets.iter().any(|s| *s)
    }
}

/// Which cluster an object belongs to, by the contract's names.
enum Kind {
    Sts,
    Service,
    Secret(usize),
}

#[derive(Default)]
pub struct State {
    pub clusters: HashMap<(String, String), ClusterState>,
    /// (namespace, child name) → (namespace, cluster name), kind.
    index: HashMap<(String, String), ((String, String), u8)>,
}

impl State {
    fn lookup(&self, ns: &str, name: &str) -> Option<((String, String), Kind)> {
        let (key, k) = self.index.get(&(ns.to_string(), name.to_string()))?;
        let kind = match k {
            0 => Kind::Sts,
            1 => Kind::Service,
            2 => Kind::Secret(0),
            _ => Kind::Secret(1),
        };
        Some((key.clone(), kind))
    }
}

#[derive(Clone)]
pub struct Tracker {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    /// Changes (added, modified, deleted) the watches saw to the tracked objects since the last
    /// `take_changes`: what a write request really changed.
    changes: Arc<std::sync::atomic::AtomicU64>,
}

impl Tracker {
    /// Starts the watches for `specs` and returns once every watch has listed.
    pub async fn start(client: &Client, specs: &[Spec]) -> anyhow::Result<Self> {
        let mut state = State::default();
        for s in specs {
            let key = (s.namespace.clone(), s.name.clone());
            let ns = s.namespace.clone();
            state
                .index
                .insert((ns.clone(), s.statefulset()), (key.clone(), 0));
            state
                .index
                .insert((ns.clone(), s.service()), (key.clone(), 1));
            let [kubeconfig, ca] = s.secrets();
            state
                .index
                .insert((ns.clone(), kubeconfig), (key.clone(), 2));
            state.index.insert((ns, ca), (key.clone(), 3));
            state.clusters.insert(key, ClusterState::default());
        }
        let tracker = Self {
            state: Arc::new(Mutex::new(state)),
            changed: Arc::new(Notify::new()),
            changes: Arc::default(),
        };
        let synced = Arc::new(tokio::sync::Semaphore::new(0));
        let cfg = watcher::Config::default;

        let t = tracker.clone();
        let s = synced.clone();
        let sts: Api<StatefulSet> = Api::all(client.clone());
        tokio::spawn(
            watcher::watcher(sts, cfg())
                .default_backoff()
                .for_each(move |e| {
                    let Ok(e) = e else {
                        return futures::future::ready(());
                    };
                    t.on_event(&e, &s, |st, obj: &StatefulSet, gone| {
                        let (key, _) =
                            st.lookup(&obj.namespace().unwrap_or_default(), &obj.name_any())?;
                        let c = st.clusters.get_mut(&key)?;
                        c.sts = (!gone).then(|| {
                            let status = obj.status.clone().unwrap_or_default();
                            Sts {
                                generation: obj.metadata.generation.unwrap_or(0),
                                observed_generation: status.observed_generation.unwrap_or(0),
                                ready: status.ready_replicas.unwrap_or(0),
                                updated: status.updated_replicas.unwrap_or(0),
                                current_revision: status.current_revision.unwrap_or_default(),
                                update_revision: status.update_revision.unwrap_or_default(),
                            }
                        });
                        Some(key)
                    });
                    futures::future::ready(())
                }),
        );
        let meta_handler = |st: &mut State, ns: String, name: String, gone: bool| {
            let (key, kind) = st.lookup(&ns, &name)?;
            let c = st.clusters.get_mut(&key)?;
            match kind {
                Kind::Service => c.service = !gone,
                Kind::Secret(i) => c.secrets[i] = !gone,
                Kind::Sts => return None,
            }
            Some(key)
        };
        let t = tracker.clone();
        let s = synced.clone();
        let services: Api<PartialObjectMeta<Service>> = Api::all(client.clone());
        tokio::spawn(
            watcher::watcher(services, cfg())
                .default_backoff()
                .for_each(move |e| {
                    if let Ok(e) = e {
                        t.on_event(&e, &s, |st, o: &PartialObjectMeta<Service>, gone| {
                            meta_handler(st, o.namespace().unwrap_or_default(), o.name_any(), gone)
                        });
                    }
                    futures::future::ready(())
                }),
        );
        let t = tracker.clone();
        let s = synced.clone();
        let secrets: Api<PartialObjectMeta<Secret>> = Api::all(client.clone());
        tokio::spawn(
            watcher::watcher(secrets, cfg())
                .default_backoff()
                .for_each(move |e| {
                    if let Ok(e) = e {
                        t.on_event(&e, &s, |st, o: &PartialObjectMeta<Secret>, gone| {
                            meta_handler(st, o.namespace().unwrap_or_default(), o.name_any(), gone)
                        });
                    }
                    futures::future::ready(())
                }),
        );
        let t = tracker.clone();
        let s = synced.clone();
        let kcps: Api<DynamicObject> = Api::all_with(client.clone(), &kcp_resource());
        tokio::spawn(
            watcher::watcher(kcps, cfg())
                .default_backoff()
                .for_each(move |e| {
                    let Ok(e) = e else {
                        return futures::future::ready(());
                    };
                    t.on_event(&e, &s, |st, obj: &DynamicObject, gone| {
                        let key = (obj.namespace().unwrap_or_default(), obj.name_any());
                        let c = st.clusters.get_mut(&key)?;
                        c.kcp = (!gone).then(|| {
                            let observed = obj
                                .data
                                .pointer("/status/observedGeneration")
                                .and_then(serde_json::Value::as_i64)
                                .unwrap_or(0);
                            (obj.metadata.generation.unwrap_or(0), observed)
                        });
                        Some(key)
                    });
                    futures::future::ready(())
                }),
        );
        // Four watches; each adds a permit when its first list is done.
        tokio::time::timeout(Duration::from_secs(120), synced.acquire_many(4))
            .await
            .context("watches did not list within 120 s")??
            .forget();
        Ok(tracker)
    }

    fn on_event<K, F>(&self, e: &Event<K>, synced: &tokio::sync::Semaphore, mut f: F)
    where
        F: FnMut(&mut State, &K, bool) -> Option<(String, String)>,
    {
        let now = Instant::now();
        let mut st = self.lock();
        let mut touched = Vec::new();
        match e {
            Event::InitApply(o) => touched.extend(f(&mut st, o, false)),
            Event::Apply(o) => touched.extend(f(&mut st, o, false)),
            Event::Delete(o) => touched.extend(f(&mut st, o, true)),
            Event::Init => {}
            Event::InitDone => synced.add_permits(1),
        }
        if matches!(e, Event::Apply(_) | Event::Delete(_)) && !touched.is_empty() {
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        for key in touched {
            if let Some(c) = st.clusters.get_mut(&key) {
                if c.children_at.is_none() && c.children_present() {
                    c.children_at = Some(now);
                }
                if c.ready_at.is_none() && c.sts.as_ref().is_some_and(|s| s.ready >= 1) {
                    c.ready_at = Some(now);
                }
            }
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// The tracked objects' changes since the last call.
    pub fn take_changes(&self) -> u64 {
        self.changes.swap(0, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until `done` holds over the state, re-checking on every change; returns when it
    /// first held. Fails after `timeout`, naming `what`.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if done(&self.lock()) {
                return Ok(Instant::now());
            }
            // Also re-check now and then: a notification between the check and the await is
            // only missed until then.
            let until = (tokio::time::Instant::now() + Duration::from_millis(500)).min(deadline);
            let _ = tokio::time::timeout_at(until, notified).await;
            if tokio::time::Instant::now() >= deadline {
                bail!("timed out after {} s waiting for {what}", timeout.as_secs());
            }
        }
    }
}
