//! The status step's pure part: replica counts and versions from the control-plane pods, and the
//! conditions, computed from the desired state, the live StatefulSet and the availability probe.
//!
//! No I/O: the reconciler lists the pods, probes the workload API server and writes the result.

use std::collections::BTreeMap;

use k0smotron_api::conditions as c;
use k0smotron_api::controlplane::v1beta2::{
    ClusterSpec, ControlPlaneInitialization, K0smotronControlPlaneStatus, StatusVersion,
};
use k0smotron_api::version::K0sVersion;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use provider_runtime::conditions::{ConditionStatus, set_condition};

use crate::build::DesiredState;
use crate::labels;

/// Reason of a failure condition when the spec asks for something this provider does not do.
pub const UNSUPPORTED_FEATURE_REASON: &str = "UnsupportedFeature";
/// Reason of a failure condition when the spec uses a field this installation does not allow (an
/// `--allow-*` flag of the provider is off; docs/security.md, "Multi-tenant installs").
pub const FIELD_NOT_ALLOWED_REASON: &str = "FieldNotAllowed";
/// Reason of a failure condition when a referenced Secret has unusable content.
pub const INVALID_SECRET_REASON: &str = "InvalidSecret";
/// Reason of a failure condition when a child's name is taken by an object another controller owns.
pub const OBJECT_OWNED_BY_OTHER_REASON: &str = "ObjectOwnedByOther";
/// The API server refused a generated object (`Available=False`; the message is the server's).
pub const OBJECT_REJECTED_REASON: &str = "ObjectRejected";
/// Reason of `Available` False when the kubeconfig cannot be turned into a client.
pub const CLIENT_CREATION_FAILED_REASON: &str = "ClusterClientCreationFailed";
/// Reason of `Available` False when the workload API server does not answer.
pub const KUBE_SYSTEM_NOT_ACCESSIBLE_REASON: &str = "KubeSystemNamespaceNotAccessible";
/// Reason of `Available` False while the endpoint or the exposure is not known yet.
pub const WAITING_FOR_ENDPOINT_REASON: &str = "WaitingForEndpoint";
/// Reason of conditions while the StatefulSet waits for the exposure Service.
pub const WAITING_FOR_EXPOSURE_REASON: &str = "WaitingForExposure";
/// Condition type of the kubeconfig Secret.
pub const KUBECONFIG_AVAILABLE: &str = c::KUBECONFIG_SECRET_AVAILABLE;
/// Reason of `KubeconfigSecretAvailable` True.
pub const KUBECONFIG_CREATED_REASON: &str = "Created";

/// The tag of an image reference (`repo[:port]/path:tag`), `None` for digests or no tag.
pub fn image_tag(image: &str) -> Option<&str> {
    if image.contains('@') {
        return None;
    }
    let last = image.rsplit('/').next()?;
    last.split_once(':')
        .map(|(_, tag)| tag)
        .filter(|t| !t.is_empty())
}

/// Writes `v` in the spelling of `spec_version`: `-k0s.N` when the spec uses it, else `+k0s.N`
/// (CAPI compares `status.version` with `spec.version` as semver).
pub fn in_spec_style(v: &K0sVersion, spec_version: &str) -> String {
    if spec_version.contains("-k0s.") {
        v.image_tag()
    } else {
        v.release_form()
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_terminal(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        || pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed")
}

fn controller_version(pod: &Pod) -> Option<K0sVersion> {
    let image = crate::statefulset::controller_image(pod.spec.as_ref()?)?;
    K0sVersion::parse(image_tag(image)?).ok()
}

/// What the pods say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodCounts {
    /// Pods (not terminating, not finished).
    pub replicas: i32,
    /// Ready pods.
    pub ready: i32,
    /// Available pods (ready; no minReadySeconds).
    pub available: i32,
    /// Pods running the desired image and the StatefulSet's update revision.
    pub up_to_date: i32,
    /// Versions of all pods and how many run each, oldest first.
    pub versions: Vec<(K0sVersion, i32)>,
    /// Lowest version among ready pods.
    pub lowest_ready: Option<K0sVersion>,
}

/// Counts the control-plane pods. `update_revision` is the StatefulSet's `status.updateRevision`.
pub fn count_pods(pods: &[Pod], desired_tag: &str, update_revision: Option<&str>) -> PodCounts {
    let desired = K0sVersion::parse(desired_tag).ok();
    let mut out = PodCounts::default();
    let mut versions: BTreeMap<K0sVersion, i32> = BTreeMap::new();
    for pod in pods.iter().filter(|p| !is_terminal(p)) {
        out.replicas += 1;
        let version = controller_version(pod);
        let ready = is_ready(pod);
        if ready {
            out.ready += 1;
            out.available += 1;
            if let Some(v) = version {
                out.lowest_ready = Some(match out.lowest_ready {
                    Some(low) if low <= v => low,
                    _ => v,
                });
            }
        }
        if let Some(v) = version {
            *versions.entry(v).or_default() += 1;
        }
        let revision = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("controller-revision-hash"))
            .map(String::as_str);
        let same_revision = match update_revision {
            Some(r) => revision == Some(r),
            None => true,
        };
        if same_revision && version.is_some() && version == desired {
            out.up_to_date += 1;
        }
    }
    out.versions = versions.into_iter().collect();
    out
}

/// An error that stopped the reconcile before status: condition reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Condition reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

/// Result of the availability probe (GET `kube-system` through the kubeconfig).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Not attempted (no kubeconfig yet).
    NotRun,
    /// The API server answered.
    Answered,
    /// Building a client failed.
    ClientFailed(String),
    /// The kubeconfig was refused (see `provider_runtime::kubeconfig`); no connection was made.
    Refused(String),
    /// The request failed or timed out.
    Failed(String),
}

/// Everything the status is computed from.
#[derive(Debug)]
pub struct StatusInputs<'a> {
    /// The status as read at the start of the reconcile (a standalone Cluster's in this form, see
    /// `standalone`).
    pub old: K0smotronControlPlaneStatus,
    /// `metadata.generation` of the control-plane object.
    pub generation: Option<i64>,
    /// Its spec.
    pub spec: &'a ClusterSpec,
    /// Cluster name (for the selector).
    pub cluster: &'a str,
    /// The desired state, when the build succeeded.
    pub desired: Option<&'a DesiredState>,
    /// The error that stopped the reconcile, if any.
    pub failure: Option<Failure>,
    /// The control-plane pods.
    pub pods: &'a [Pod],
    /// The live k0s StatefulSet (after apply).
    pub statefulset: Option<&'a StatefulSet>,
    /// The live etcd StatefulSet (after apply).
    pub etcd_statefulset: Option<&'a StatefulSet>,
    /// The availability probe.
    pub probe: Probe,
    /// Now.
    pub now: Time,
}

/// A condition that changed status or reason (for events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Condition type.
    pub type_: String,
    /// New status.
    pub status: String,
    /// New reason.
    pub reason: String,
    /// New message.
    pub message: String,
}

impl Transition {
    /// Whether the transition deserves a Warning event: it reports a failure the user must act
    /// on. Waiting states (for the owner, the endpoint, pods, etcd members) are Normal.
    pub fn is_warning(&self) -> bool {
        FAILURE_REASONS.contains(&self.reason.as_str())
    }
}

/// Condition reasons that report a failure (see `BuildError::reason` and `reconcile::Error`).
pub const FAILURE_REASONS: &[&str] = &[
    c::INVALID_SPEC_REASON,
    c::REFERENCE_NOT_FOUND_REASON,
    c::UNSUPPORTED_UPGRADE_REASON,
    c::CERTIFICATES_NOT_AVAILABLE_REASON,
    c::INTERNAL_ERROR_REASON,
    UNSUPPORTED_FEATURE_REASON,
    FIELD_NOT_ALLOWED_REASON,
    INVALID_SECRET_REASON,
    OBJECT_OWNED_BY_OTHER_REASON,
    OBJECT_REJECTED_REASON,
    CLIENT_CREATION_FAILED_REASON,
    c::KUBECONFIG_REFUSED_REASON,
    c::CA_MISSING_REASON,
    c::NOT_REFERENCED_BY_CLUSTER_REASON,
];

fn quorum(n: i32) -> i32 {
    n / 2 + 1
}

/// Computes the status. `lastTransitionTime` changes only on transitions (status flips); the
/// returned transitions list every condition whose status or reason changed.
pub fn compute(input: StatusInputs<'_>) -> (K0smotronControlPlaneStatus, Vec<Transition>) {
    let spec = input.spec;
    let old = input.old.clone();
    let mut status = old.clone();
    let generation = input.generation;
    let now = input.now.clone();
    let mut conds: Vec<Condition> = old.conditions.clone();
    let mut set = |t: &str, s: ConditionStatus, reason: &str, msg: &str| {
        set_condition(&mut conds, t, s, reason, msg, generation, now.clone());
    };

    let desired_tag = input
        .desired
        .map(|d| d.desired_image_tag.clone())
        .or_else(|| K0sVersion::parse(&spec.version).ok().map(|v| v.image_tag()))
        .unwrap_or_default();
    let update_revision = input
        .statefulset
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.update_revision.as_deref());
    let counts = count_pods(input.pods, &desired_tag, update_revision);

    status.replicas = Some(counts.replicas);
    status.ready_replicas = Some(counts.ready);
    status.available_replicas = Some(counts.available);
    status.up_to_date_replicas = Some(counts.up_to_date);
    status.selector = Some(labels::selector_string(&labels::control_plane_selector(
        input.cluster,
    )));
    status.external_managed_control_plane = Some(true);
    if let Some(low) = counts.lowest_ready {
        status.version = Some(in_spec_style(&low, &spec.version));
    }
    status.versions = counts
        .versions
        .iter()
        .map(|(v, n)| StatusVersion {
            version: in_spec_style(v, &spec.version),
            replicas: Some(*n),
        })
        .collect();
    if let Some(d) = input.desired {
        status.external_address = d.external_address.clone();
        status.certificate_refs = d.certificate_refs.clone();
    }

    // Initialized once the API server has answered; never unset.
    let answered = input.probe == Probe::Answered;
    let was_initialized = old
        .initialization
        .as_ref()
        .and_then(|i| i.control_plane_initialized)
        == Some(true);
    if answered || was_initialized {
        status.initialization = Some(ControlPlaneInitialization {
            control_plane_initialized: Some(true),
        });
    } else if status.initialization.is_none() {
        status.initialization = Some(ControlPlaneInitialization {
            control_plane_initialized: Some(false),
        });
    }

    // Reconciling at all means not paused (the paused path writes only that condition).
    set(c::PAUSED, ConditionStatus::False, c::NOT_PAUSED_REASON, "");

    // Available.
    match (&input.failure, input.desired, &input.probe) {
        (Some(f), _, _) => set(c::AVAILABLE, ConditionStatus::False, &f.reason, &f.message),
        (None, _, Probe::Answered) => set(
            c::AVAILABLE,
            ConditionStatus::True,
            c::AVAILABLE_REASON,
            "the workload API server answers through the kubeconfig",
        ),
        (None, Some(d), _) if d.endpoint.is_none() => set(
            c::AVAILABLE,
            ConditionStatus::False,
            WAITING_FOR_ENDPOINT_REASON,
            d.waiting
                .as_deref()
                .unwrap_or("waiting for the control-plane endpoint"),
        ),
        (None, _, Probe::ClientFailed(e)) => set(
            c::AVAILABLE,
            ConditionStatus::False,
            CLIENT_CREATION_FAILED_REASON,
            e,
        ),
        (None, _, Probe::Refused(e)) => set(
            c::AVAILABLE,
            ConditionStatus::False,
            c::KUBECONFIG_REFUSED_REASON,
            e,
        ),
        (None, _, Probe::Failed(e)) => set(
            c::AVAILABLE,
            ConditionStatus::False,
            KUBE_SYSTEM_NOT_ACCESSIBLE_REASON,
            &format!("the workload API server does not answer yet: {e}"),
        ),
        (None, _, Probe::NotRun) => set(
            c::AVAILABLE,
            ConditionStatus::False,
            WAITING_FOR_ENDPOINT_REASON,
            "waiting for the kubeconfig",
        ),
    }

    // Certificates.
    match (input.desired, &input.failure) {
        (Some(_), _) => set(
            c::CERTIFICATES_AVAILABLE,
            ConditionStatus::True,
            c::CERTIFICATES_AVAILABLE_REASON,
            "",
        ),
        (None, Some(f))
            if f.reason == c::CERTIFICATES_NOT_AVAILABLE_REASON
                || f.reason == c::CA_MISSING_REASON
                || f.reason == INVALID_SECRET_REASON
                || f.message.contains("spec.certificateRefs") =>
        {
            set(
                c::CERTIFICATES_AVAILABLE,
                ConditionStatus::False,
                &f.reason,
                &f.message,
            )
        }
        _ => {}
    }

    // Kubeconfig.
    if let Some(d) = input.desired {
        if d.kubeconfig.is_some() {
            set(
                KUBECONFIG_AVAILABLE,
                ConditionStatus::True,
                KUBECONFIG_CREATED_REASON,
                "",
            );
        } else {
            set(
                KUBECONFIG_AVAILABLE,
                ConditionStatus::False,
                WAITING_FOR_ENDPOINT_REASON,
                d.waiting
                    .as_deref()
                    .unwrap_or("waiting for the control-plane endpoint"),
            );
        }
    }

    // Scaling.
    let want = spec.replicas;
    if counts.replicas < want {
        set(
            c::SCALING_UP,
            ConditionStatus::True,
            c::SCALING_UP_REASON,
            &format!("scaling up from {} to {want} replicas", counts.replicas),
        );
    } else {
        set(
            c::SCALING_UP,
            ConditionStatus::False,
            c::NOT_SCALING_UP_REASON,
            "",
        );
    }
    if counts.replicas > want {
        set(
            c::SCALING_DOWN,
            ConditionStatus::True,
            c::SCALING_DOWN_REASON,
            &format!("scaling down from {} to {want} replicas", counts.replicas),
        );
    } else {
        set(
            c::SCALING_DOWN,
            ConditionStatus::False,
            c::NOT_SCALING_DOWN_REASON,
            "",
        );
    }

    // Rolling out.
    match input.desired.and_then(|d| d.version_blocked.as_deref()) {
        Some(msg) => set(
            c::ROLLING_OUT,
            ConditionStatus::False,
            c::UNSUPPORTED_UPGRADE_REASON,
            msg,
        ),
        None if counts.up_to_date < counts.replicas => set(
            c::ROLLING_OUT,
            ConditionStatus::True,
            c::ROLLING_OUT_REASON,
            &format!(
                "{} of {} replicas run an older template or version (desired {desired_tag})",
                counts.replicas - counts.up_to_date,
                counts.replicas
            ),
        ),
        None => set(
            c::ROLLING_OUT,
            ConditionStatus::False,
            c::NOT_ROLLING_OUT_REASON,
            "",
        ),
    }

    // etcd.
    if let Some(etcd) = input.etcd_statefulset {
        let replicas = etcd.spec.replicas.unwrap_or(1);
        let ready = etcd
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        if ready >= quorum(replicas) {
            set(
                c::ETCD_CLUSTER_AVAILABLE,
                ConditionStatus::True,
                c::AVAILABLE_REASON,
                &format!("{ready} of {replicas} etcd members ready"),
            );
        } else {
            set(
                c::ETCD_CLUSTER_AVAILABLE,
                ConditionStatus::False,
                c::NOT_AVAILABLE_REASON,
                &format!(
                    "{ready} of {replicas} etcd members ready, quorum is {}",
                    quorum(replicas)
                ),
            );
        }
    }

    let transitions = transitions(&old.conditions, &conds);
    status.conditions = conds;
    status.observed_generation = generation;
    (status, transitions)
}

/// Conditions whose status or reason differ between `old` and `new`.
pub fn transitions(old: &[Condition], new: &[Condition]) -> Vec<Transition> {
    new.iter()
        .filter(|n| {
            !old.iter()
                .any(|o| o.type_ == n.type_ && o.status == n.status && o.reason == n.reason)
        })
        .map(|n| Transition {
            type_: n.type_.clone(),
            status: n.status.clone(),
            reason: n.reason.clone(),
            message: n.message.clone(),
        })
        .collect()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use k0smotron_api::controlplane::v1beta2::K0smotronControlPlane;

    use super::*;
    use crate::statefulset::CONTROLLER_CONTAINER;
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(tag: &str, ready: bool, revision: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([(
                    "controller-revision-hash".to_string(),
                    revision.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: CONTROLLER_CONTAINER.into(),
                    image: Some(format!("registry:5000/k0sproject/k0s:{tag}")),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn image_tags() {
        assert_eq!(
            image_tag("quay.io/k0sproject/k0s:v1.35.7-k0s.0"),
            Some("v1.35.7-k0s.0")
        );
        assert_eq!(
            image_tag("localhost:5000/k0s:v1.2.3-k0s.0"),
            Some("v1.2.3-k0s.0")
        );
        assert_eq!(image_tag("localhost:5000/k0s"), None);
        assert_eq!(image_tag("k0s@sha256:abc"), None);
    }

    #[test]
    fn counts_versions_and_up_to_date() {
        let pods = vec![
            pod("v1.35.7-k0s.0", true, "new"),
            pod("v1.34.3-k0s.0", true, "old"),
            pod("v1.35.7-k0s.0", false, "old"),
        ];
        let counts = count_pods(&pods, "v1.35.7-k0s.0", Some("new"));
        assert_eq!(counts.replicas, 3);
        assert_eq!(counts.ready, 2);
        assert_eq!(counts.up_to_date, 1);
        assert_eq!(
            counts.lowest_ready.map(|v| v.release_form()),
            Some("v1.34.3+k0s.0".into())
        );
        let versions: Vec<_> = counts
            .versions
            .iter()
            .map(|(v, n)| (v.release_form(), *n))
            .collect();
        assert_eq!(
            versions,
            vec![("v1.34.3+k0s.0".into(), 1), ("v1.35.7+k0s.0".into(), 2)]
        );
    }

    #[test]
    fn version_in_spec_style() {
        let v = K0sVersion::parse("v1.35.7-k0s.0").unwrap();
        assert_eq!(in_spec_style(&v, "v1.35.7+k0s.0"), "v1.35.7+k0s.0");
        assert_eq!(in_spec_style(&v, "v1.35.7"), "v1.35.7+k0s.0");
        assert_eq!(in_spec_style(&v, "v1.35.7-k0s.0"), "v1.35.7-k0s.0");
    }

    fn kcp() -> K0smotronControlPlane {
        let mut kcp = K0smotronControlPlane::new("demo", Default::default());
        kcp.spec.replicas = 2;
        kcp.spec.version = "v1.35.7+k0s.0".into();
        kcp.metadata.generation = Some(3);
        kcp
    }

    fn now() -> Time {
        Time("2026-01-01T00:00:00Z".parse().unwrap())
    }

    #[test]
    fn initialized_is_never_unset_and_available_follows_the_probe() {
        let mut kcp = kcp();
        let pods = vec![pod("v1.35.7-k0s.0", true, "r")];
        let (status, transitions) = compute(StatusInputs {
            old: kcp.status.clone().unwrap_or_default(),
            generation: kcp.metadata.generation,
            spec: &kcp.spec,
            cluster: "demo",
            desired: None,
            failure: None,
            pods: &pods,
            statefulset: None,
            etcd_statefulset: None,
            probe: Probe::Answered,
            now: now(),
        });
        assert_eq!(
            status
                .initialization
                .as_ref()
                .unwrap()
                .control_plane_initialized,
            Some(true)
        );
        assert!(
            transitions
                .iter()
                .any(|t| t.type_ == c::AVAILABLE && t.status == "True")
        );
        assert_eq!(status.version.as_deref(), Some("v1.35.7+k0s.0"));
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(
            status.selector.as_deref(),
            Some(
                "app=k0smotron,cluster=demo,cluster.x-k8s.io/cluster-name=demo,cluster.x-k8s.io/control-plane=true,component=cluster"
            )
        );
        // Scaling up: 1 pod, 2 wanted.
        let up = status
            .conditions
            .iter()
            .find(|c| c.type_ == c::SCALING_UP)
            .unwrap();
        assert_eq!(up.status, "True");

        kcp.status = Some(status);
        let (status, transitions) = compute(StatusInputs {
            old: kcp.status.clone().unwrap_or_default(),
            generation: kcp.metadata.generation,
            spec: &kcp.spec,
            cluster: "demo",
            desired: None,
            failure: None,
            pods: &pods,
            statefulset: None,
            etcd_statefulset: None,
            probe: Probe::Failed("timeout".into()),
            now: now(),
        });
        assert_eq!(
            status
                .initialization
                .as_ref()
                .unwrap()
                .control_plane_initialized,
            Some(true)
        );
        let available = status
            .conditions
            .iter()
            .find(|c| c.type_ == c::AVAILABLE)
            .unwrap();
        assert_eq!(available.status, "False");
        assert_eq!(available.reason, KUBE_SYSTEM_NOT_ACCESSIBLE_REASON);
        assert_eq!(transitions.len(), 1, "{transitions:?}");

        // Nothing changed: no transitions.
        kcp.status = Some(status);
        let (_, transitions) = compute(StatusInputs {
            old: kcp.status.clone().unwrap_or_default(),
            generation: kcp.metadata.generation,
            spec: &kcp.spec,
            cluster: "demo",
            desired: None,
            failure: None,
            pods: &pods,
            statefulset: None,
            etcd_statefulset: None,
            probe: Probe::Failed("timeout".into()),
            now: now(),
        });
        assert_eq!(transitions, vec![]);
    }

    #[test]
    fn failures_surface_on_available() {
        let kcp = kcp();
        let (status, transitions) = compute(StatusInputs {
            old: kcp.status.clone().unwrap_or_default(),
            generation: kcp.metadata.generation,
            spec: &kcp.spec,
            cluster: "demo",
            desired: None,
            failure: Some(Failure {
                reason: c::INVALID_SPEC_REASON.into(),
                message: "bad".into(),
            }),
            pods: &[],
            statefulset: None,
            etcd_statefulset: None,
            probe: Probe::NotRun,
            now: now(),
        });
        let available = status
            .conditions
            .iter()
            .find(|c| c.type_ == c::AVAILABLE)
            .unwrap();
        assert_eq!(
            (available.status.as_str(), available.reason.as_str()),
            ("False", c::INVALID_SPEC_REASON)
        );
        assert!(
            transitions
                .iter()
                .any(|t| t.type_ == c::AVAILABLE && t.is_warning())
        );
        assert_eq!(status.replicas, Some(0));
        assert_eq!(status.external_managed_control_plane, Some(true));
    }
}
