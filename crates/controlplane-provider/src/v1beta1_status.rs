//! What v1beta1 clients of the standalone kinds read: `status.deprecated.v1beta1` of a v1beta2
//! `Cluster` (`ready`, `reconciliationStatus`) and `JoinTokenRequest` (`reconciliationStatus`,
//! `clusterUID`), which the conversion webhook moves to the top of a v1beta1 `status`. Upstream
//! k0smotron writes these fields in its v1beta2 controllers; the values here follow its rules.
//!
//! Pure: the reconcilers say how the reconcile ended ([`Reconciliation`]) and write the result
//! with the rest of the status. Nothing here changes between two reconciles that find the same
//! state (no times, no counters), so a control plane at rest is not written again.

use k0smotron_api::conditions as c;
use k0smotron_api::controlplane::v1beta2::K0smotronControlPlaneStatus;
use k0smotron_api::k0smotron::v1beta2::{
    ClusterDeprecatedStatus, ClusterV1beta1Status, JoinTokenRequestDeprecatedStatus,
    JoinTokenRequestV1beta1Status,
};

/// Upstream's `reconciliationStatus` after a reconcile that did every step.
pub const RECONCILIATION_SUCCESSFUL: &str = "Reconciliation successful";

/// How the reconcile that computed a status ended, as `reconciliationStatus` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciliation<'a> {
    /// Nothing new to tell (paused, or still waiting for a ready replica): the stored text
    /// stays, as upstream leaves it while it waits.
    Unchanged,
    /// Every step was done and a replica is ready (upstream: the kubeconfig Secret was made).
    Succeeded,
    /// A step failed; `failure` is what `Available` reports.
    Failed {
        /// What was being reconciled, in upstream's words (`Failed reconciling <step>, ...`).
        step: &'static str,
        /// The message on the failing condition (`Available` of a Cluster).
        message: &'a str,
    },
}

impl Reconciliation<'_> {
    /// The `reconciliationStatus` text, given the stored one.
    pub fn text(&self, stored: &str) -> String {
        match self {
            Self::Unchanged => stored.to_owned(),
            Self::Succeeded => RECONCILIATION_SUCCESSFUL.to_owned(),
            Self::Failed { step, message } => format!("Failed reconciling {step}, {message}"),
        }
    }
}

/// The step a failure with condition `reason` stopped, in the words of upstream's
/// `Failed reconciling <step>` (upstream names the object it was applying; ours name it in the
/// message).
pub fn failed_step(reason: &str) -> &'static str {
    match reason {
        c::OBJECT_OWNED_BY_OTHER_REASON | c::OBJECT_REJECTED_REASON => "objects",
        c::CERTIFICATES_NOT_AVAILABLE_REASON | c::CA_MISSING_REASON => "certificates",
        c::REFERENCE_NOT_FOUND_REASON | c::INVALID_SECRET_REASON => "referenced secrets",
        _ => "spec",
    }
}

/// The step of a failure of the hosting cluster (`spec.remoteHostCluster`).
pub const REMOTE_HOST_STEP: &str = "remote host cluster";

/// The step of a `JoinTokenRequest` that got no token (upstream writes a fixed phrase per step,
/// `Failed getting token` and the like; ours gives the condition's message after this step).
pub const JOIN_TOKEN_STEP: &str = "join token";

/// `status.deprecated` of a standalone `Cluster` with status `st`: `ready` when as many replicas
/// are ready as `spec.replicas` asks for (upstream compares its StatefulSet's `readyReplicas`
/// with `spec.replicas`; ours counts the same pods), `reconciliationStatus` as `reconciliation`
/// says. `None` when both are empty, as for a new Cluster.
pub fn cluster(
    spec_replicas: i32,
    st: &K0smotronControlPlaneStatus,
    reconciliation: Reconciliation<'_>,
    stored: Option<&ClusterDeprecatedStatus>,
) -> Option<ClusterDeprecatedStatus> {
    let stored_text = stored
        .and_then(|d| d.v1beta1.as_ref())
        .map(|v| v.reconciliation_status.as_str())
        .unwrap_or_default();
    let v1beta1 = ClusterV1beta1Status {
        reconciliation_status: reconciliation.text(stored_text),
        ready: st.ready_replicas == Some(spec_replicas),
    };
    let empty = v1beta1 == ClusterV1beta1Status::default();
    (!empty).then_some(ClusterDeprecatedStatus {
        v1beta1: Some(v1beta1),
    })
}

/// `status.deprecated` of a `JoinTokenRequest`: `reconciliationStatus` as `reconciliation` says,
/// `clusterUID` the uid of the Cluster when it was read (else the stored one stays).
pub fn join_token_request(
    reconciliation: Reconciliation<'_>,
    cluster_uid: Option<&str>,
    stored: Option<&JoinTokenRequestDeprecatedStatus>,
) -> Option<JoinTokenRequestDeprecatedStatus> {
    let stored = stored.and_then(|d| d.v1beta1.as_ref());
    let v1beta1 = JoinTokenRequestV1beta1Status {
        reconciliation_status: reconciliation.text(
            stored
                .map(|v| v.reconciliation_status.as_str())
                .unwrap_or_default(),
        ),
        cluster_uid: cluster_uid
            .map(str::to_owned)
            .or_else(|| stored.and_then(|v| v.cluster_uid.clone())),
    };
    let empty = v1beta1 == JoinTokenRequestV1beta1Status::default();
    (!empty).then_some(JoinTokenRequestDeprecatedStatus {
        v1beta1: Some(v1beta1),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::status::Failure;

    fn counted(ready: i32) -> K0smotronControlPlaneStatus {
        K0smotronControlPlaneStatus {
            replicas: Some(3),
            ready_replicas: Some(ready),
            ..K0smotronControlPlaneStatus::default()
        }
    }

    fn v1beta1(d: Option<ClusterDeprecatedStatus>) -> ClusterV1beta1Status {
        d.and_then(|d| d.v1beta1).unwrap_or_default()
    }

    #[test]
    fn ready_means_every_replica_asked_for_is_ready() {
        let none = K0smotronControlPlaneStatus::default();
        assert!(!v1beta1(cluster(1, &none, Reconciliation::Unchanged, None)).ready);
        assert!(!v1beta1(cluster(3, &counted(2), Reconciliation::Unchanged, None)).ready);
        assert!(v1beta1(cluster(3, &counted(3), Reconciliation::Unchanged, None)).ready);
        // Scaling down: more ready than asked for is not ready (upstream compares with ==).
        assert!(!v1beta1(cluster(1, &counted(3), Reconciliation::Unchanged, None)).ready);
    }

    #[test]
    fn reconciliation_status_in_upstreams_words() {
        let failure = Failure {
            reason: c::OBJECT_OWNED_BY_OTHER_REASON.into(),
            message: "Service kmc-demo is controlled by Deployment x; not taking it over".into(),
        };
        let failed = Reconciliation::Failed {
            step: failed_step(&failure.reason),
            message: &failure.message,
        };
        let st = counted(1);
        assert_eq!(
            v1beta1(cluster(3, &st, failed, None)).reconciliation_status,
            "Failed reconciling objects, Service kmc-demo is controlled by Deployment x; not taking it over"
        );
        let stored = cluster(3, &st, failed, None);
        // Waiting keeps the failure, as upstream does until a reconcile gets through.
        assert_eq!(
            cluster(3, &st, Reconciliation::Unchanged, stored.as_ref()),
            stored
        );
        assert_eq!(
            v1beta1(cluster(3, &st, Reconciliation::Succeeded, stored.as_ref()))
                .reconciliation_status,
            RECONCILIATION_SUCCESSFUL
        );
    }

    #[test]
    fn a_new_cluster_has_no_deprecated_status_and_the_same_state_gives_the_same_one() {
        assert_eq!(
            cluster(
                1,
                &K0smotronControlPlaneStatus::default(),
                Reconciliation::Unchanged,
                None
            ),
            None
        );
        let first = cluster(1, &counted(1), Reconciliation::Succeeded, None);
        let again = cluster(1, &counted(1), Reconciliation::Succeeded, first.as_ref());
        assert_eq!(first, again);
        assert_eq!(
            serde_json::to_value(&first).unwrap(),
            serde_json::json!({"v1beta1": {"reconciliationStatus": "Reconciliation successful", "ready": true}})
        );
    }

    #[test]
    fn steps_of_failure_reasons() {
        assert_eq!(failed_step(c::OBJECT_REJECTED_REASON), "objects");
        assert_eq!(failed_step(c::CA_MISSING_REASON), "certificates");
        assert_eq!(
            failed_step(c::REFERENCE_NOT_FOUND_REASON),
            "referenced secrets"
        );
        assert_eq!(failed_step(c::INVALID_SPEC_REASON), "spec");
        assert_eq!(failed_step(c::FIELD_NOT_ALLOWED_REASON), "spec");
    }

    #[test]
    fn join_token_requests_keep_the_cluster_uid_they_were_made_for() {
        let failure = Failure {
            reason: c::INTERNAL_ERROR_REASON.into(),
            message: "Cluster demo not found in namespace ns".into(),
        };
        let failed = Reconciliation::Failed {
            step: JOIN_TOKEN_STEP,
            message: &failure.message,
        };
        let first = join_token_request(failed, None, None).unwrap();
        let first_v1 = first.v1beta1.clone().unwrap();
        assert_eq!(first_v1.cluster_uid, None);
        assert_eq!(
            first_v1.reconciliation_status,
            "Failed reconciling join token, Cluster demo not found in namespace ns"
        );
        let done = join_token_request(Reconciliation::Succeeded, Some("uid-1"), Some(&first));
        let done_v1 = done.clone().unwrap().v1beta1.unwrap();
        assert_eq!(done_v1.cluster_uid.as_deref(), Some("uid-1"));
        assert_eq!(done_v1.reconciliation_status, RECONCILIATION_SUCCESSFUL);
        // A later failure that did not read the Cluster keeps the uid.
        let later = join_token_request(failed, None, done.as_ref()).unwrap();
        assert_eq!(later.v1beta1.unwrap().cluster_uid.as_deref(), Some("uid-1"));
        assert_eq!(
            serde_json::to_value(&done).unwrap(),
            serde_json::json!({"v1beta1": {"reconciliationStatus": "Reconciliation successful", "clusterUID": "uid-1"}})
        );
    }
}
