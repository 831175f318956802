//! Leader election on a `coordination.k8s.io/v1` Lease (through `kube-lease-manager`): run the
//! controllers only while this replica leads, and stop them, failing the process, as soon as it
//! may not lead any more. Owns the Lease and the replica's role in `Readiness`; knows nothing
//! about what the controllers do.
//!
//! Fencing. `kube-lease-manager` only reports a lost lease when a renewal *succeeds* and reveals
//! another holder; a renewal that fails or hangs (API server unreachable) is retried silently,
//! while a standby takes the lease once it expires. So this module also watches the Lease itself
//! and gives up leadership when it has not seen its own renewal for `renew_deadline_seconds`
//! (client-go's `RenewDeadline`), which is before any other replica may take over
//! (`lease_duration_seconds` after the last renewal). RBAC: `get`, `list`, `watch`, `create`,
//! `patch` on `coordination.k8s.io/leases` in the Lease namespace.

use std::pin::pin;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerError, LeaseParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::readiness::{Readiness, Role};

/// Pause between attempts after a failed election or renewal call.
const RETRY_PERIOD: Duration = Duration::from_secs(1);
/// How long a graceful shutdown waits to hand the Lease over before leaving it to expire.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how this replica competes for leadership. Built by
/// [`ManagerArgs::leader_election`](crate::cli::ManagerArgs::leader_election), or directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity in `spec.holderIdentity`; unique per process.
    pub identity: String,
    /// Seconds a Lease stays valid after its last renewal; standbys take over after this.
    pub lease_duration_seconds: u64,
    /// Seconds after its last renewal at which the leader gives up; at least 2 and less than
    /// `lease_duration_seconds`, the difference being the tolerated clock skew.
    pub renew_deadline_seconds: u64,
}

/// Why this replica stopped leading.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LossReason {
    /// The Lease names another holder (or none: a standby is taking it over).
    #[error("the Lease is now held by {holder:?}")]
    TakenOver {
        /// The holder the Lease names.
        holder: Option<String>,
    },
    /// No renewal of ours was seen within the renew deadline.
    #[error("no renewal seen for {seconds}s (renew deadline)")]
    RenewDeadlineExceeded {
        /// The renew deadline.
        seconds: u64,
    },
    /// The Lease was deleted.
    #[error("the Lease was deleted")]
    LeaseDeleted,
}

/// Failures of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The lease duration and renew deadline do not fit together.
    #[error(
        "invalid leader-election timing: lease duration {lease_duration_seconds}s, renew deadline \
         {renew_deadline_seconds}s (need 2 <= renew deadline < lease duration)"
    )]
    InvalidTiming {
        /// The lease duration given.
        lease_duration_seconds: u64,
        /// The renew deadline given.
        renew_deadline_seconds: u64,
    },
    /// The Lease could not be read or created at start-up (RBAC, API server down).
    #[error("setting up leader election on Lease {namespace}/{name}")]
    Setup {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// The underlying error.
        #[source]
        source: LeaseManagerError,
    },
    /// Leadership was lost while the controllers ran; they were stopped. The process should
    /// exit non-zero so that it restarts clean.
    #[error("lost leadership of Lease {namespace}/{name}")]
    LeadershipLost {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// Why.
        #[source]
        reason: LossReason,
    },
}

/// The library's timing derived from ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timing {
    /// Lease duration, seconds.
    duration: u64,
    /// How long before expiry the library renews, seconds: chosen so that it renews halfway
    /// through the renew deadline, leaving time for retries before we give up.
    grace: u64,
    renew_deadline: Duration,
    /// How long lost-leadership controllers get to stop before they are aborted: the time left
    /// before another replica may take the lease.
    stop_grace: Duration,
}

impl LeaderElection {
    fn timing(&self) -> Result<Timing, LeaderError> {
        let (duration, deadline) = (self.lease_duration_seconds, self.renew_deadline_seconds);
        if deadline < 2 || deadline >= duration {
            return Err(LeaderError::InvalidTiming {
                lease_duration_seconds: duration,
                renew_deadline_seconds: deadline,
            });
        }
        Ok(Timing {
            duration,
            // 0 < grace < duration holds (deadline / 2 >= 1), as `LeaseParams::new` demands.
            grace: duration - deadline / 2,
            renew_deadline: Duration::from_secs(deadline),
            stop_grace: Duration::from_secs(duration - deadline),
        })
    }
}

/// Runs `run` (the controllers) under leader election, or at once when `election` is `None`.
///
/// `run` receives the token the controllers must stop on (pass it to
/// `Controller::graceful_shutdown_on`); it is cancelled on `shutdown` and, with leader election,
/// when leadership is lost. With leader election this waits to acquire the Lease (returning
/// `Ok(())` if `shutdown` comes first), runs the controllers in their own task while renewing,
/// and:
/// - when they return (normally after `shutdown`), releases the Lease so a standby takes over at
///   once, and returns `Ok(())` (a panic in the controllers is resumed after the release);
/// - when leadership is lost, cancels their token, aborts them if they have not stopped by the
///   time another replica may take over, and returns [`LeaderError::LeadershipLost`]. Return
///   that from `main` so the process exits non-zero and restarts clean.
///
/// It also keeps `readiness` told of the replica's role (see the `readiness` module).
pub async fn run_with_leader_election<F, Fut>(
    client: Client,
    election: Option<LeaderElection>,
    shutdown: CancellationToken,
    readiness: Readiness,
    run: F,
) -> Result<(), LeaderError>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(election) = election else {
        readiness.set_role(Role::Leading);
        run(shutdown).await;
        readiness.set_role(Role::Stopping);
        return Ok(());
    };
    let timing = election.timing()?;
    let (namespace, name, identity) = (
        election.namespace.as_str(),
        election.lease_name.as_str(),
        election.identity.as_str(),
    );
    let manager = lease_manager(&client, &election, &timing).await?;

    readiness.set_role(Role::Standby);
    tracing::info!(lease = name, %namespace, %identity, "waiting for leadership");
    if !acquire(&manager, &shutdown).await {
        readiness.set_role(Role::Stopping);
        return Ok(());
    }
    tracing::info!(lease = name, %namespace, %identity, "became leader, starting controllers");
    readiness.set_role(Role::Leading);

    // Deviation (docs/deviations.md, manager runtime): the Lease watchdog fences a leader whose
    // renewals fail or hang, which the library alone would let go on leading.
    let controllers_token = shutdown.child_token();
    let mut controllers = tokio::spawn(run(controllers_token.clone()));
    let loss = {
        let renew = pin!(keep_renewing(&manager));
        let watchdog = pin!(watch_own_lease(
            Api::namespaced(client, namespace),
            name,
            identity,
            timing.renew_deadline,
        ));
        tokio::select! {
            result = &mut controllers => Ok(result),
            reason = renew => Err(reason),
            reason = watchdog => Err(reason),
        }
    };
    readiness.set_role(Role::Stopping);

    match loss {
        Ok(finished) => {
            if !shutdown.is_cancelled() {
                tracing::warn!("controllers stopped without a shutdown signal");
            }
            release(&manager, name).await;
            resume_panic(finished);
            Ok(())
        }
        Err(reason) => {
            stop_controllers(
                &controllers_token,
                controllers,
                timing.stop_grace,
                name,
                &reason,
            )
            .await;
            Err(LeaderError::LeadershipLost {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                reason,
            })
        }
    }
}

/// A panic in the controllers goes on as it would have without leader election.
fn resume_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(err) = finished
        && err.is_panic()
    {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// The manager of `election`'s Lease, which it creates if it does not exist.
async fn lease_manager(
    client: &Client,
    election: &LeaderElection,
    timing: &Timing,
) -> Result<LeaseManager, LeaderError> {
    let (namespace, name) = (election.namespace.as_str(), election.lease_name.as_str());
    let params = LeaseParams::new(&election.identity, timing.duration, timing.grace);
    LeaseManager::new(
        client.clone(),
        name,
        namespace,
        params,
        LeaseCreateMode::AutoCreate,
    )
    .await
    .map_err(|source| LeaderError::Setup {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    })
}

/// Hands the Lease over now rather than when it expires. Only safe while we still lead: the
/// library clears the holder without checking who it is.
async fn release(manager: &LeaseManager, name: &str) {
    match tokio::time::timeout(RELEASE_TIMEOUT, manager.release()).await {
        Ok(Ok(())) => tracing::info!(lease = name, "released leadership"),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, lease = name, "releasing the Lease failed; it will expire")
        }
        Err(_) => tracing::warn!(
            lease = name,
            "releasing the Lease timed out; it will expire"
        ),
    }
}

/// Leadership is lost: cancels the controllers and aborts them if they have not stopped within
/// `stop_grace`. Deliberately no release: the Lease may already be someone else's.
async fn stop_controllers(
    token: &CancellationToken,
    mut controllers: tokio::task::JoinHandle<()>,
    stop_grace: Duration,
    name: &str,
    reason: &LossReason,
) {
    tracing::error!(lease = name, %reason, "lost leadership, stopping controllers");
    token.cancel();
    if tokio::time::timeout(stop_grace, &mut controllers)
        .await
        .is_err()
    {
        tracing::error!(
            grace_seconds = stop_grace.as_secs(),
            "controllers did not stop in time, aborting them"
        );
        controllers.abort();
    }
}

/// Waits until this replica holds the Lease (`true`) or `shutdown` comes (`false`).
async fn acquire(manager: &LeaseManager, shutdown: &CancellationToken) -> bool {
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return false,
            result = manager.changed() => match result {
                Ok(true) => return true,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "leader election failed, retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(RETRY_PERIOD) => {}
                    }
                }
            },
        }
    }
}

/// Keeps renewing the Lease (inside `LeaseManager::changed`) and returns when a renewal shows
/// another holder. Failed renewals are retried; the watchdog bounds how long that may go on.
async fn keep_renewing(manager: &LeaseManager) -> LossReason {
    loop {
        match manager.changed().await {
            Ok(true) => {}
            Ok(false) => return LossReason::TakenOver { holder: None },
            Err(err) => {
                tracing::warn!(error = %err, "renewing the Lease failed, retrying");
                tokio::time::sleep(RETRY_PERIOD).await;
            }
        }
    }
}

/// Watches the Lease and returns as soon as it shows another holder, is deleted, or has not
/// shown a renewal of ours for `renew_deadline` (also when the watch itself fails: an API
/// server we cannot watch is one we probably cannot renew on either).
async fn watch_own_lease(
    api: Api<Lease>,
    name: &str,
    identity: &str,
    renew_deadline: Duration,
) -> LossReason {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = pin!(watcher::watcher(api, config).default_backoff());
    // We acquired (and so renewed) just before this started.
    let mut deadline = Instant::now() + renew_deadline;
    let exceeded = LossReason::RenewDeadlineExceeded {
        seconds: renew_deadline.as_secs(),
    };
    loop {
        let event = tokio::select! {
            () = tokio::time::sleep_until(deadline) => return exceeded,
            event = events.next() => event,
        };
        match event {
            Some(Ok(Event::Apply(lease) | Event::InitApply(lease))) => {
                match time_left(&lease, identity, renew_deadline, SystemTime::now()) {
                    Ok(Some(left)) => deadline = Instant::now() + left,
                    Ok(None) => {}
                    Err(reason) => return reason,
                }
            }
            Some(Ok(Event::Delete(_))) => return LossReason::LeaseDeleted,
            Some(Ok(Event::Init | Event::InitDone)) => {}
            Some(Err(err)) => tracing::warn!(error = %err, lease = name, "watching the Lease"),
            None => {
                tokio::time::sleep_until(deadline).await;
                return exceeded;
            }
        }
    }
}

/// How long this replica may still act as leader according to `lease`: `Err` if it names
/// another holder, `Ok(None)` if it has no renew time, else the time until `renewTime +
/// renew_deadline` (zero if past). The renew time was written from our own clock, so comparing
/// it with our clock involves no skew.
fn time_left(
    lease: &Lease,
    identity: &str,
    renew_deadline: Duration,
    now: SystemTime,
) -> Result<Option<Duration>, LossReason> {
    let spec = lease.spec.as_ref();
    let holder = spec.and_then(|s| s.holder_identity.as_deref());
    if holder != Some(identity) {
        return Err(LossReason::TakenOver {
            holder: holder.map(str::to_owned),
        });
    }
    let Some(renewed) = spec.and_then(|s| s.renew_time.as_ref()) else {
        return Ok(None);
    };
    let until = SystemTime::from(renewed.0) + renew_deadline;
    Ok(Some(until.duration_since(now).unwrap_or(Duration::ZERO)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use pretty_assertions::assert_eq;

    fn election(duration: u64, deadline: u64) -> LeaderElection {
        LeaderElection {
            namespace: "ns".into(),
            lease_name: "lease".into(),
            identity: "me".into(),
            lease_duration_seconds: duration,
            renew_deadline_seconds: deadline,
        }
    }

    #[test]
    fn timing_follows_client_go_defaults() {
        let t = election(15, 10).timing().unwrap();
        // Renew every 5 s (15 - 10), give up 10 s after the last renewal, 5 s before a standby
        // may take over.
        assert_eq!(t.duration - t.grace, 5);
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert_eq!(t.stop_grace, Duration::from_secs(5));
    }

    #[test]
    fn impossible_timings_are_errors_not_panics() {
        for (duration, deadline) in [(15, 15), (15, 20), (15, 1), (15, 0), (0, 0), (2, 2)] {
            assert!(
                matches!(
                    election(duration, deadline).timing(),
                    Err(LeaderError::InvalidTiming { .. })
                ),
                "{duration}/{deadline}"
            );
        }
        // The smallest valid timing still satisfies the library's 0 < grace < duration.
        let t = election(3, 2).timing().unwrap();
        assert!(t.grace > 0 && t.grace < t.duration, "{t:?}");
    }

    fn lease(holder: Option<&str>, renewed_at: Option<SystemTime>) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: renewed_at.map(|t| MicroTime(jiff::Timestamp::try_from(t).unwrap())),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn time_left_counts_from_our_last_renewal() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let deadline = Duration::from_secs(10);
        let renewed = now - Duration::from_secs(3);
        assert_eq!(
            time_left(&lease(Some("me"), Some(renewed)), "me", deadline, now),
            Ok(Some(Duration::from_secs(7)))
        );
        let stale = now - Duration::from_secs(30);
        assert_eq!(
            time_left(&lease(Some("me"), Some(stale)), "me", deadline, now),
            Ok(Some(Duration::ZERO))
        );
        assert_eq!(
            time_left(&lease(Some("me"), None), "me", deadline, now),
            Ok(None)
        );
    }

    #[test]
    fn another_or_no_holder_is_a_loss() {
        let now = SystemTime::now();
        assert_eq!(
            time_left(
                &lease(Some("other"), Some(now)),
                "me",
                Duration::from_secs(10),
                now
            ),
            Err(LossReason::TakenOver {
                holder: Some("other".into())
            })
        );
        assert_eq!(
            time_left(&lease(None, None), "me", Duration::from_secs(10), now),
            Err(LossReason::TakenOver { holder: None })
        );
        assert_eq!(
            time_left(&Lease::default(), "me", Duration::from_secs(10), now),
            Err(LossReason::TakenOver { holder: None })
        );
    }

    #[tokio::test]
    async fn without_election_runs_at_once_with_the_shutdown_token() {
        // A client is needed for the signature but never used without election.
        let client =
            Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
        let shutdown = CancellationToken::new();
        let readiness = Readiness::new();
        let seen = readiness.clone();
        let token_seen = shutdown.clone();
        let result = run_with_leader_election(client, None, shutdown, readiness.clone(), |token| {
            // The controllers see the shutdown token and a leading role.
            assert!(!token.is_cancelled());
            token_seen.cancel();
            assert!(token.is_cancelled());
            let gate = seen.gate("test");
            async move {
                gate.ready();
            }
        })
        .await;
        assert!(result.is_ok());
        assert!(
            !readiness.is_ready(),
            "stopping after the controllers returned"
        );
    }
}
