//! What `/readyz` answers: the replica's leader-election role plus the readiness gates its
//! controllers register (typically one per watch, released once the first list is in the store).
//! State only; serving it is the `server` module's job, setting the role the `leader` module's.
//!
//! What ready means for a Deployment (this is a decision, see docs/deviations.md):
//! - a **standby** replica (leader election on, not leading) is ready as soon as it takes part in
//!   the election. It serves nothing a Service routes to, and if standbys were unready a rolling
//!   update could never finish: the new pod would wait to lead, and the old leader is only
//!   replaced once the new pod is ready.
//! - the **leader** (or the only replica, without leader election) is ready once it has
//!   registered at least one gate and every gate has been released. A replica that just took
//!   over is briefly unready while its caches fill, which is true: it is not reconciling yet.
//! - a replica that is **starting** (election not joined yet) or **stopping** (shutdown or
//!   leadership lost) is not ready.

use std::sync::Arc;

use kube::runtime::reflector::{Lookup, Store};
use tokio::sync::watch;

/// How often a store gate re-checks its store (see `Readiness::gate_on_store`).
const STORE_POLL: std::time::Duration = std::time::Duration::from_millis(500);
/// The part a replica plays, as far as readiness is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Not yet running controllers nor taking part in an election.
    Starting,
    /// Taking part in leader election without leading.
    Standby,
    /// Running the controllers (leader, or leader election off).
    Leading,
    /// Shutting down or leadership lost.
    Stopping,
}

#[derive(Debug)]
struct State {
    role: Role,
    registered: usize,
    pending: Vec<(u64, String)>,
    next_id: u64,
}

impl State {
    fn is_ready(&self) -> bool {
        match self.role {
            Role::Starting | Role::Stopping => false,
            Role::Standby => true,
            Role::Leading => self.registered > 0 && self.pending.is_empty(),
        }
    }

    fn describe(&self) -> String {
        match self.role {
            Role::Starting => "not ready: starting".to_owned(),
            Role::Stopping => "not ready: stopping".to_owned(),
            Role::Standby => "ok: standing by for leader election".to_owned(),
            Role::Leading if self.registered == 0 => {
                "not ready: no controller has registered yet".to_owned()
            }
            Role::Leading if self.pending.is_empty() => "ok".to_owned(),
            Role::Leading => {
                let names: Vec<&str> = self.pending.iter().map(|(_, n)| n.as_str()).collect();
                format!("not ready: waiting for {}", names.join(", "))
            }
        }
    }
}

/// A cloneable handle on the replica's readiness; all clones share one state.
#[derive(Clone, Debug)]
pub struct Readiness {
    state: Arc<watch::Sender<State>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// A new handle in the *starting* state (not ready).
    pub fn new() -> Self {
        let (state, _) = watch::channel(State {
            role: Role::Starting,
            registered: 0,
            pending: Vec::new(),
            next_id: 0,
        });
        Self {
            state: Arc::new(state),
        }
    }

    /// Registers something that must be ready (e.g. a controller's first list) before this
    /// replica reports ready while it runs controllers. Release it with [`ReadyGate::ready`].
    pub fn gate(&self, name: impl Into<String>) -> ReadyGate {
        let name = name.into();
        let mut id = 0;
        self.state.send_modify(|s| {
            id = s.next_id;
            s.next_id += 1;
            s.registered += 1;
            s.pending.push((id, name.clone()));
        });
        ReadyGate {
            readiness: self.clone(),
            id,
            name,
            released: false,
        }
    }

    /// Registers a gate released when `store` has received its first full list (the usual gate
    /// for a `Controller::store()`); runs a small background task.
    pub fn gate_on_store<K>(&self, name: impl Into<String>, store: Store<K>)
    where
        K: Lookup + Clone + Send + Sync + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let gate = self.gate(name);
        tokio::spawn(async move {
            // NB: kube-runtime 5's `Store::wait_until_ready` sits on a oneshot channel that keeps
            // only the waker of the task that polled it last, and the Controller waits on the
            // same store; whichever polled first is never woken. So poll afresh every
            // `STORE_POLL` instead of trusting the wake-up: a fresh poll finds the value that was
            // already sent. A dropped writer means the controller stopped before its first
            // list: leave the gate pending (not ready), which is the truth.
            loop {
                match tokio::time::timeout(STORE_POLL, store.wait_until_ready()).await {
                    Ok(Ok(())) => {
                        gate.ready();
                        return;
                    }
                    Ok(Err(_writer_dropped)) => return,
                    Err(_elapsed) => continue,
                }
            }
        });
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.state.borrow().is_ready()
    }

    /// A one-line explanation for the `/readyz` body.
    pub fn describe(&self) -> String {
        self.state.borrow().describe()
    }

    /// Waits until the replica is ready.
    pub async fn wait_ready(&self) {
        let mut rx = self.state.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(State::is_ready).await;
    }

    pub(crate) fn set_role(&self, role: Role) {
        self.state.send_if_modified(|s| {
            let changed = s.role != role;
            s.role = role;
            changed
        });
    }

    fn release(&self, id: u64) {
        self.state
            .send_modify(|s| s.pending.retain(|(i, _)| *i != id));
    }
}

/// One thing the replica waits for before it is ready; see [`Readiness::gate`].
///
/// Dropping a gate without calling [`ReadyGate::ready`] leaves it pending: a task that died
/// before its first list must not make the replica look ready.
#[derive(Debug)]
#[must_use = "a gate that is never released keeps the replica unready"]
pub struct ReadyGate {
    readiness: Readiness,
    id: u64,
    name: String,
    released: bool,
}

impl ReadyGate {
    /// Marks this gate as ready.
    pub fn ready(mut self) {
        self.released = true;
        self.readiness.release(self.id);
    }
}

impl Drop for ReadyGate {
    fn drop(&mut self) {
        if !self.released {
            tracing::warn!(gate = %self.name, "readiness gate dropped before it was ready");
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn starting_is_not_ready() {
        let r = Readiness::new();
        assert!(!r.is_ready());
        assert_eq!(r.describe(), "not ready: starting");
    }

    #[test]
    fn leader_needs_a_gate_and_all_gates_released() {
        let r = Readiness::new();
        r.set_role(Role::Leading);
        assert!(!r.is_ready(), "leading without any registered gate");
        let a = r.gate("controlplane");
        let b = r.gate("cluster");
        assert!(!r.is_ready());
        assert_eq!(r.describe(), "not ready: waiting for controlplane, cluster");
        a.ready();
        assert!(!r.is_ready());
        assert_eq!(r.describe(), "not ready: waiting for cluster");
        b.ready();
        assert!(r.is_ready());
        assert_eq!(r.describe(), "ok");
    }

    #[test]
    fn standby_is_ready_without_gates_and_taking_over_waits_for_caches() {
        let r = Readiness::new();
        r.set_role(Role::Standby);
        assert!(
            r.is_ready(),
            "a standby replica must be ready for rollouts to finish"
        );
        r.set_role(Role::Leading);
        assert!(!r.is_ready(), "the new leader has not synced yet");
        let gate = r.gate("controlplane");
        assert!(!r.is_ready());
        gate.ready();
        assert!(r.is_ready());
    }

    #[test]
    fn stopping_is_not_ready_even_with_gates_released() {
        let r = Readiness::new();
        r.set_role(Role::Leading);
        r.gate("x").ready();
        assert!(r.is_ready());
        r.set_role(Role::Stopping);
        assert!(!r.is_ready());
    }

    #[test]
    fn dropped_gate_stays_pending() {
        let r = Readiness::new();
        r.set_role(Role::Leading);
        drop(r.gate("died"));
        assert!(!r.is_ready());
    }

    #[test]
    fn clones_share_state() {
        let r = Readiness::new();
        let other = r.clone();
        r.set_role(Role::Standby);
        assert!(other.is_ready());
    }

    #[tokio::test]
    async fn wait_ready_returns_once_ready() {
        let r = Readiness::new();
        r.set_role(Role::Leading);
        let gate = r.gate("x");
        let waiter = tokio::spawn({
            let r = r.clone();
            async move { r.wait_ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        gate.ready();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("wait_ready did not return")
            .expect("task panicked");
    }
}
