//! Leader election against the real API server of `test/harness`: electors competing for one
//! Lease in a namespace of their own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use provider_runtime::leader::{LeaderError, LossReason};
use provider_runtime::{LeaderElection, Readiness, run_with_leader_election};
use test_support::TestNamespace;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

const LEASE: &str = "test-leader";
// Short but not tight: renew every 2 s, give up 4 s after the last renewal, standbys take over
// 6 s after it. The machine running the tests may be busy.
const LEASE_DURATION: u64 = 6;
const RENEW_DEADLINE: u64 = 4;

/// One competing replica: its controllers only flip `leading` while they run.
struct Elector {
    identity: String,
    leading: Arc<AtomicBool>,
    shutdown: CancellationToken,
    readiness: Readiness,
    handle: JoinHandle<Result<(), LeaderError>>,
}

impl Elector {
    fn start(client: &Client, namespace: &str, identity: &str) -> Self {
        let election = LeaderElection {
            namespace: namespace.to_owned(),
            lease_name: LEASE.to_owned(),
            identity: identity.to_owned(),
            lease_duration_seconds: LEASE_DURATION,
            renew_deadline_seconds: RENEW_DEADLINE,
        };
        let leading = Arc::new(AtomicBool::new(false));
        let shutdown = CancellationToken::new();
        let readiness = Readiness::new();
        let handle = tokio::spawn(run_with_leader_election(
            client.clone(),
            Some(election),
            shutdown.clone(),
            readiness.clone(),
            {
                let leading = leading.clone();
                let readiness = readiness.clone();
                move |token| async move {
                    leading.store(true, Ordering::SeqCst);
                    readiness.gate("test").ready();
                    token.cancelled().await;
                    leading.store(false, Ordering::SeqCst);
                }
            },
        ));
        Self {
            identity: identity.to_owned(),
            leading,
            shutdown,
            readiness,
            handle,
        }
    }

    fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Graceful shutdown; returns what `run_with_leader_election` returned.
    async fn stop(self) -> Result<(), LeaderError> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("elector did not stop after shutdown")
            .expect("elector task panicked")
    }
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        sleep(Duration::from_millis(50)).await;
    }
}

async fn holder(client: &Client, namespace: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), namespace)
        .get(LEASE)
        .await
        .unwrap();
    lease.spec.and_then(|s| s.holder_identity)
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn one_leader_at_a_time_and_the_standby_takes_over_after_release() {
    let namespace = TestNamespace::create("pr-leader-handover").await.unwrap();
    let (client, ns) = (namespace.client(), namespace.name().to_owned());
    let a = Elector::start(&client, &ns, "replica-a");
    let b = Elector::start(&client, &ns, "replica-b");

    wait_for("a leader", Duration::from_secs(30), || {
        a.is_leading() || b.is_leading()
    })
    .await;
    let (leader, standby) = if a.is_leading() { (a, b) } else { (b, a) };

    // Through several renewals: the leader keeps leading, the standby never leads, and both
    // report ready (the standby because it stands by, the leader because its gate is done).
    let end = Instant::now() + Duration::from_secs(3 * LEASE_DURATION);
    while Instant::now() < end {
        assert!(leader.is_leading(), "{} lost leadership", leader.identity);
        assert!(!standby.is_leading(), "two leaders at once");
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        holder(&client, &ns).await.as_deref(),
        Some(leader.identity.as_str())
    );
    assert!(
        leader.readiness.is_ready(),
        "{}",
        leader.readiness.describe()
    );
    assert!(
        standby.readiness.is_ready(),
        "{}",
        standby.readiness.describe()
    );

    // The leader shuts down: it stops its controllers first, then hands the Lease over.
    let old_leader = leader.identity.clone();
    let leading_flag = leader.leading.clone();
    leader.stop().await.unwrap();
    assert!(!leading_flag.load(Ordering::SeqCst));
    assert_ne!(
        holder(&client, &ns).await.as_deref(),
        Some(old_leader.as_str())
    );

    wait_for(
        "the standby to take over",
        Duration::from_secs(4 * LEASE_DURATION),
        || standby.is_leading(),
    )
    .await;
    assert_eq!(
        holder(&client, &ns).await.as_deref(),
        Some(standby.identity.as_str())
    );
    standby.stop().await.unwrap();
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn a_leader_whose_lease_is_taken_stops_its_controllers_and_fails() {
    let namespace = TestNamespace::create("pr-leader-loss").await.unwrap();
    let (client, ns) = (namespace.client(), namespace.name().to_owned());
    let a = Elector::start(&client, &ns, "replica-a");
    wait_for("leadership", Duration::from_secs(30), || a.is_leading()).await;

    // Someone else claims the Lease (as a replica would after a partition).
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let claim = serde_json::json!({
        "spec": {
            "holderIdentity": "intruder",
            "renewTime": MicroTime(jiff::Timestamp::now()),
            "leaseDurationSeconds": 60,
        }
    });
    leases
        .patch(LEASE, &PatchParams::default(), &Patch::Merge(&claim))
        .await
        .unwrap();

    let result = tokio::time::timeout(Duration::from_secs(RENEW_DEADLINE + 5), a.handle)
        .await
        .expect("the leader did not notice it lost the Lease")
        .unwrap();
    match result {
        // The Lease watch usually sees the claim first (holder named); a renewal that
        // happens to run first reports the loss without the holder.
        Err(LeaderError::LeadershipLost {
            reason: LossReason::TakenOver { holder },
            ..
        }) => assert!(
            matches!(holder.as_deref(), Some("intruder") | None),
            "{holder:?}"
        ),
        other => panic!("expected LeadershipLost, got {other:?}"),
    }
    assert!(
        !a.leading.load(Ordering::SeqCst),
        "controllers still running"
    );
    assert!(!a.readiness.is_ready());
    // It must not have cleared the intruder's claim on the way out.
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("intruder"));
}

/// A TCP proxy in front of the API server that can black-hole all traffic: connections stay
/// open but nothing passes, as in a network partition (requests hang rather than fail).
async fn partitionable_proxy(upstream: String) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let mut cut_rx = cut_rx.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if *cut_rx.borrow() {
                    std::future::pending::<()>().await;
                }
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let was_cut = tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                    _ = cut_rx.wait_for(|cut| *cut) => true,
                };
                if was_cut {
                    // Keep both ends open and silent.
                    let _held = (inbound, outbound);
                    std::future::pending::<()>().await;
                }
            });
        }
    });
    (port, cut)
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn a_partitioned_leader_gives_up_before_its_lease_can_expire() {
    let namespace = TestNamespace::create("pr-leader-partition").await.unwrap();
    let (client, ns) = (namespace.client(), namespace.name().to_owned());
    let mut config = kube::Config::infer().await.unwrap();
    let upstream = config.cluster_url.authority().unwrap().to_string();
    let (port, cut) = partitionable_proxy(upstream).await;
    config.cluster_url = format!("https://127.0.0.1:{port}").parse().unwrap();
    let proxied = Client::try_from(config).unwrap();

    let a = Elector::start(&proxied, &ns, "replica-a");
    wait_for("leadership", Duration::from_secs(30), || a.is_leading()).await;
    // Let a few renewals go through the proxy first.
    sleep(Duration::from_secs(LEASE_DURATION)).await;
    assert!(a.is_leading());

    cut.send(true).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(3 * LEASE_DURATION), a.handle)
        .await
        .expect("a partitioned leader kept leading")
        .unwrap();
    let gave_up_at = std::time::SystemTime::now();
    match result {
        Err(LeaderError::LeadershipLost {
            reason: LossReason::RenewDeadlineExceeded { seconds },
            ..
        }) => assert_eq!(seconds, RENEW_DEADLINE),
        other => panic!("expected RenewDeadlineExceeded, got {other:?}"),
    }
    assert!(
        !a.leading.load(Ordering::SeqCst),
        "controllers still running"
    );

    // Fencing: it stopped before the Lease it last renewed could be taken by anyone else.
    let lease = Api::<Lease>::namespaced(client.clone(), &ns)
        .get(LEASE)
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-a"));
    let renewed = std::time::SystemTime::from(spec.renew_time.unwrap().0);
    let expires = renewed + Duration::from_secs(LEASE_DURATION);
    assert!(
        gave_up_at < expires,
        "gave up {:?} after the Lease expired",
        gave_up_at.duration_since(expires).unwrap_or_default()
    );
}
