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
use crate::dynamic_config::Outcome;
use crate::labels;
use crate::statefulset;

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
    K0sVersion::parse(statefulset::image_tag(image)?).ok()
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
    /// What became of the dynamic config.
    pub dynamic_config: Outcome,
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
    /// The condition was there before with the other status (True ↔ False or Unknown).
    pub flipped: bool,
}

impl Transition {
    /// Whether the transition is worth an event: a failure, or a condition that was there
    /// flipping its status. Conditions appearing on a new control plane (`CertificatesAvailable`
    /// true, `Paused` false, ...) and a waiting condition moving from one waiting reason to
    /// another say what `status.conditions` says already: at 1,000 new control planes such
    /// events were four of the five each one got, and a fifth of the provider's writes.
    pub fn is_news(&self) -> bool {
        self.is_warning() || self.flipped
    }

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
    c::UNSUPPORTED_FEATURE_REASON,
    c::FIELD_NOT_ALLOWED_REASON,
    c::INVALID_SECRET_REASON,
    c::OBJECT_OWNED_BY_OTHER_REASON,
    c::OBJECT_REJECTED_REASON,
    c::CLIENT_CREATION_FAILED_REASON,
    c::KUBECONFIG_REFUSED_REASON,
    c::CA_MISSING_REASON,
    c::NOT_REFERENCED_BY_CLUSTER_REASON,
    c::DYNAMIC_CONFIG_REJECTED_REASON,
    c::DYNAMIC_CONFIG_UNREADABLE_REASON,
    c::REMOTE_HOST_UNAVAILABLE_REASON,
];

fn quorum(n: i32) -> i32 {
    n / 2 + 1
}

/// Computes the status. `lastTransitionTime` changes only on transitions (status flips); the
/// returned transitions list every condition whose status or reason changed.
pub fn compute(input: StatusInputs<'_>) -> (K0smotronControlPlaneStatus, Vec<Transition>) {
    let old = input.old.clone();
    let mut status = old.clone();
    let desired_tag = input
        .desired
        .map(|d| d.desired_image_tag.clone())
        .or_else(|| {
            K0sVersion::parse(&input.spec.version)
                .ok()
                .map(|v| v.image_tag())
        })
        .unwrap_or_default();
    let update_revision = input
        .statefulset
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.update_revision.as_deref());
    let counts = count_pods(input.pods, &desired_tag, update_revision);
    report_replicas(&mut status, &input, &counts);
    status.initialization = Some(initialization(&old, &input.probe));

    let mut conds = Conditions {
        list: old.conditions.clone(),
        generation: input.generation,
        now: input.now.clone(),
    };
    // Reconciling at all means not paused (the paused path writes only that condition).
    conds.set(c::PAUSED, ConditionStatus::False, c::NOT_PAUSED_REASON, "");
    set_available(&mut conds, &input);
    set_certificates(&mut conds, &input);
    set_kubeconfig(&mut conds, &input);
    set_scaling(&mut conds, input.spec.replicas, counts.replicas);
    set_rolling_out(&mut conds, &input, &counts, &desired_tag);
    if let Some(etcd) = input.etcd_statefulset {
        set_etcd(&mut conds, etcd);
    }
    if let Some(hash) = set_dynamic_config(&mut conds, &input.dynamic_config) {
        status.dynamic_config_hash = Some(hash);
    }

    let transitions = transitions(&old.conditions, &conds.list);
    status.conditions = conds.list;
    status.observed_generation = input.generation;
    (status, transitions)
}

/// The conditions being computed, and what every change of one records.
struct Conditions {
    list: Vec<Condition>,
    generation: Option<i64>,
    now: Time,
}

impl Conditions {
    fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str) {
        set_condition(
            &mut self.list,
            type_,
            status,
            reason,
            message,
            self.generation,
            self.now.clone(),
        );
    }
}

/// Replica counts, versions, the selector, and what the desired state says.
fn report_replicas(
    status: &mut K0smotronControlPlaneStatus,
    input: &StatusInputs<'_>,
    counts: &PodCounts,
) {
    let spec = input.spec;
    status.replicas = Some(counts.replicas);
    status.ready_replicas = Some(counts.ready);
    status.available_replicas = Some(counts.available);
    status.up_to_date_replicas = Some(counts.up_to_date);
    status.selector = Some(labels::selector_string(&labels::control_plane_selector(
        input.cluster,
    )));
    status.external_managed_control_plane = Some(true);
    if let Some(low) = &counts.lowest_ready {
        status.version = Some(in_spec_style(low, &spec.version));
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
}

/// Initialized once the API server has answered; never unset.
fn initialization(old: &K0smotronControlPlaneStatus, probe: &Probe) -> ControlPlaneInitialization {
    let was_initialized = old
        .initialization
        .as_ref()
        .and_then(|i| i.control_plane_initialized)
        == Some(true);
    if *probe == Probe::Answered || was_initialized {
        return ControlPlaneInitialization {
            control_plane_initialized: Some(true),
        };
    }
    old.initialization
        .clone()
        .unwrap_or(ControlPlaneInitialization {
            control_plane_initialized: Some(false),
        })
}

/// `Available`: the failure, else the probe's answer, else what is awaited.
fn set_available(conds: &mut Conditions, input: &StatusInputs<'_>) {
    let (status, reason, message) = match (&input.failure, input.desired, &input.probe) {
        (Some(f), _, _) => (ConditionStatus::False, f.reason.as_str(), f.message.clone()),
        (None, _, Probe::Answered) => (
            ConditionStatus::True,
            c::AVAILABLE_REASON,
            "the workload API server answers through the kubeconfig".to_string(),
        ),
        (None, Some(d), _) if d.endpoint.is_none() => (
            ConditionStatus::False,
            c::WAITING_FOR_ENDPOINT_REASON,
            d.waiting
                .clone()
                .unwrap_or_else(|| "waiting for the control-plane endpoint".to_string()),
        ),
        (None, _, Probe::ClientFailed(e)) => (
            ConditionStatus::False,
            c::CLIENT_CREATION_FAILED_REASON,
            e.clone(),
        ),
        (None, _, Probe::Refused(e)) => (
            ConditionStatus::False,
            c::KUBECONFIG_REFUSED_REASON,
            e.clone(),
        ),
        (None, _, Probe::Failed(e)) => (
            ConditionStatus::False,
            c::KUBE_SYSTEM_NOT_ACCESSIBLE_REASON,
            format!("the workload API server does not answer yet: {e}"),
        ),
        (None, _, Probe::NotRun) => (
            ConditionStatus::False,
            c::WAITING_FOR_ENDPOINT_REASON,
            "waiting for the kubeconfig".to_string(),
        ),
    };
    conds.set(c::AVAILABLE, status, reason, &message);
}

/// `CertificatesAvailable`: True once the build succeeded; False on a certificate failure.
fn set_certificates(conds: &mut Conditions, input: &StatusInputs<'_>) {
    match (input.desired, &input.failure) {
        (Some(_), _) => conds.set(
            c::CERTIFICATES_AVAILABLE,
            ConditionStatus::True,
            c::CERTIFICATES_AVAILABLE_REASON,
            "",
        ),
        (None, Some(f))
            if f.reason == c::CERTIFICATES_NOT_AVAILABLE_REASON
                || f.reason == c::CA_MISSING_REASON
                || f.reason == c::INVALID_SECRET_REASON
                || f.message.contains("spec.certificateRefs") =>
        {
            conds.set(
                c::CERTIFICATES_AVAILABLE,
                ConditionStatus::False,
                &f.reason,
                &f.message,
            )
        }
        _ => {}
    }
}

/// `KubeconfigSecretAvailable`, when the build succeeded.
fn set_kubeconfig(conds: &mut Conditions, input: &StatusInputs<'_>) {
    let Some(d) = input.desired else {
        return;
    };
    if d.kubeconfig.is_some() {
        conds.set(
            c::KUBECONFIG_SECRET_AVAILABLE,
            ConditionStatus::True,
            c::CREATED_REASON,
            "",
        );
    } else {
        conds.set(
            c::KUBECONFIG_SECRET_AVAILABLE,
            ConditionStatus::False,
            c::WAITING_FOR_ENDPOINT_REASON,
            d.waiting
                .as_deref()
                .unwrap_or("waiting for the control-plane endpoint"),
        );
    }
}

/// `ScalingUp` and `ScalingDown`: the pods against `spec.replicas`.
fn set_scaling(conds: &mut Conditions, want: i32, replicas: i32) {
    if replicas < want {
        conds.set(
            c::SCALING_UP,
            ConditionStatus::True,
            c::SCALING_UP_REASON,
            &format!("scaling up from {replicas} to {want} replicas"),
        );
    } else {
        conds.set(
            c::SCALING_UP,
            ConditionStatus::False,
            c::NOT_SCALING_UP_REASON,
            "",
        );
    }
    if replicas > want {
        conds.set(
            c::SCALING_DOWN,
            ConditionStatus::True,
            c::SCALING_DOWN_REASON,
            &format!("scaling down from {replicas} to {want} replicas"),
        );
    } else {
        conds.set(
            c::SCALING_DOWN,
            ConditionStatus::False,
            c::NOT_SCALING_DOWN_REASON,
            "",
        );
    }
}

/// `RollingOut`: a refused version change, or pods on an older template or version.
fn set_rolling_out(
    conds: &mut Conditions,
    input: &StatusInputs<'_>,
    counts: &PodCounts,
    desired_tag: &str,
) {
    match input.desired.and_then(|d| d.version_blocked.as_deref()) {
        Some(msg) => conds.set(
            c::ROLLING_OUT,
            ConditionStatus::False,
            c::UNSUPPORTED_UPGRADE_REASON,
            msg,
        ),
        None if counts.up_to_date < counts.replicas => conds.set(
            c::ROLLING_OUT,
            ConditionStatus::True,
            c::ROLLING_OUT_REASON,
            &format!(
                "{} of {} replicas run an older template or version (desired {desired_tag})",
                counts.replicas - counts.up_to_date,
                counts.replicas
            ),
        ),
        None => conds.set(
            c::ROLLING_OUT,
            ConditionStatus::False,
            c::NOT_ROLLING_OUT_REASON,
            "",
        ),
    }
}

/// `DynamicConfigApplied` from what became of the push; returns the hash to record when the
/// hosted API server accepted one. [`Outcome::NotRun`] changes nothing.
fn set_dynamic_config(conds: &mut Conditions, outcome: &Outcome) -> Option<String> {
    let now = conds.now.0.strftime("%Y-%m-%dT%H:%M:%SZ");
    let (status, reason, message) = match outcome {
        Outcome::NotRun => return None,
        Outcome::Accepted { hash } => {
            let message = format!(
                "the hosted cluster's kube-system/k0s accepted the dynamic config {hash} at {now}"
            );
            conds.set(
                c::DYNAMIC_CONFIG_APPLIED,
                ConditionStatus::True,
                c::DYNAMIC_CONFIG_ACCEPTED_REASON,
                &message,
            );
            return Some(hash.clone());
        }
        Outcome::Unchanged { hash } => {
            // Keep the message of the push that was accepted (it says when).
            let kept = provider_runtime::conditions::get(&conds.list, c::DYNAMIC_CONFIG_APPLIED)
                .filter(|c| c.status == "True")
                .map(|c| (c.reason.clone(), c.message.clone()));
            let (reason, message) = kept.unwrap_or_else(|| {
                (
                    c::DYNAMIC_CONFIG_ACCEPTED_REASON.to_owned(),
                    format!("the hosted cluster's kube-system/k0s holds the dynamic config {hash}"),
                )
            });
            conds.set(
                c::DYNAMIC_CONFIG_APPLIED,
                ConditionStatus::True,
                &reason,
                &message,
            );
            return None;
        }
        Outcome::NotInitialized => (
            ConditionStatus::False,
            c::WAITING_FOR_CONTROL_PLANE_INITIALIZATION_REASON,
            "pushed once the hosted API server answers".to_owned(),
        ),
        Outcome::Rejected { hash, message } => (
            ConditionStatus::False,
            c::DYNAMIC_CONFIG_REJECTED_REASON,
            format!("the hosted API server refused the dynamic config {hash}: {message}"),
        ),
        Outcome::WaitingForCrd(m) => (
            ConditionStatus::False,
            c::WAITING_FOR_CLUSTER_CONFIG_CRD_REASON,
            m.clone(),
        ),
        Outcome::Failed(m) => (
            ConditionStatus::False,
            c::DYNAMIC_CONFIG_PUSH_FAILED_REASON,
            format!("pushing the dynamic config failed: {m}"),
        ),
        Outcome::Disabled => (
            ConditionStatus::False,
            c::DYNAMIC_CONFIG_DISABLED_REASON,
            "controlPlaneFlags turn --enable-dynamic-config off: k0s reads only the config \
             ConfigMap, and every change of it restarts the pods"
                .to_owned(),
        ),
        Outcome::Unreadable(why) => (
            ConditionStatus::False,
            c::DYNAMIC_CONFIG_UNREADABLE_REASON,
            format!("nothing is pushed and every config change restarts the pods: {why}"),
        ),
    };
    conds.set(c::DYNAMIC_CONFIG_APPLIED, status, reason, &message);
    None
}

/// `EtcdClusterAvailable`: a quorum of etcd members is ready.
fn set_etcd(conds: &mut Conditions, etcd: &StatefulSet) {
    let replicas = etcd.spec.replicas.unwrap_or(1);
    let ready = etcd
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    if ready >= quorum(replicas) {
        conds.set(
            c::ETCD_CLUSTER_AVAILABLE,
            ConditionStatus::True,
            c::AVAILABLE_REASON,
            &format!("{ready} of {replicas} etcd members ready"),
        );
    } else {
        conds.set(
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
            flipped: old
                .iter()
                .any(|o| o.type_ == n.type_ && o.status != n.status),
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
            dynamic_config: Outcome::NotRun,
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
            dynamic_config: Outcome::NotRun,
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
        assert_eq!(available.reason, c::KUBE_SYSTEM_NOT_ACCESSIBLE_REASON);
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
            dynamic_config: Outcome::NotRun,
            now: now(),
        });
        assert_eq!(transitions, vec![]);
    }

    /// The status after one reconcile with `outcome`, starting from `old`.
    fn with_dynamic_config(
        old: K0smotronControlPlaneStatus,
        outcome: Outcome,
        at: &str,
    ) -> (K0smotronControlPlaneStatus, Vec<Transition>) {
        let kcp = kcp();
        compute(StatusInputs {
            old,
            generation: kcp.metadata.generation,
            spec: &kcp.spec,
            cluster: "demo",
            desired: None,
            failure: None,
            pods: &[],
            statefulset: None,
            etcd_statefulset: None,
            probe: Probe::Answered,
            dynamic_config: outcome,
            now: Time(at.parse().unwrap()),
        })
    }

    fn dynamic_condition(st: &K0smotronControlPlaneStatus) -> Option<&Condition> {
        st.conditions
            .iter()
            .find(|c| c.type_ == c::DYNAMIC_CONFIG_APPLIED)
    }

    #[test]
    fn dynamic_config_condition_says_when_it_was_accepted_and_why_not() {
        let t0 = "2026-01-01T00:00:00Z";
        let (st, _) = with_dynamic_config(Default::default(), Outcome::NotInitialized, t0);
        let cond = dynamic_condition(&st).unwrap();
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", c::WAITING_FOR_CONTROL_PLANE_INITIALIZATION_REASON)
        );
        assert_eq!(st.dynamic_config_hash, None);

        // Accepted: the hash is recorded, the message says when.
        let t1 = "2026-01-01T00:05:00Z";
        let (st, transitions) =
            with_dynamic_config(st, Outcome::Accepted { hash: "aaa".into() }, t1);
        assert_eq!(st.dynamic_config_hash.as_deref(), Some("aaa"));
        let cond = dynamic_condition(&st).unwrap();
        assert_eq!(cond.status, "True");
        assert_eq!(cond.reason, c::DYNAMIC_CONFIG_ACCEPTED_REASON);
        assert!(
            cond.message.contains("aaa at 2026-01-01T00:05:00Z"),
            "{}",
            cond.message
        );
        assert!(
            transitions
                .iter()
                .any(|t| t.type_ == c::DYNAMIC_CONFIG_APPLIED)
        );

        // Unchanged later: the message of the accepted push stays, nothing transitions.
        let (st, transitions) = with_dynamic_config(
            st,
            Outcome::Unchanged { hash: "aaa".into() },
            "2026-01-02T00:00:00Z",
        );
        assert!(dynamic_condition(&st).unwrap().message.contains(t1));
        assert_eq!(transitions, vec![]);

        // Refused: False with the API server's message, a Warning; the accepted hash stays.
        let (st, transitions) = with_dynamic_config(
            st,
            Outcome::Rejected {
                hash: "bbb".into(),
                message: "spec.telemetry.enabled: Invalid value: \"string\"".into(),
            },
            "2026-01-03T00:00:00Z",
        );
        assert_eq!(st.dynamic_config_hash.as_deref(), Some("aaa"));
        let cond = dynamic_condition(&st).unwrap();
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", c::DYNAMIC_CONFIG_REJECTED_REASON)
        );
        assert!(
            cond.message.contains("spec.telemetry.enabled"),
            "{}",
            cond.message
        );
        assert!(
            transitions
                .iter()
                .any(|t| t.type_ == c::DYNAMIC_CONFIG_APPLIED && t.is_warning())
        );

        // Back to the accepted config (its hash is recorded): True again without a push.
        let (st, _) = with_dynamic_config(
            st,
            Outcome::Unchanged { hash: "aaa".into() },
            "2026-01-04T00:00:00Z",
        );
        let cond = dynamic_condition(&st).unwrap();
        assert_eq!(cond.status, "True");
        assert!(cond.message.contains("aaa"), "{}", cond.message);

        // The hosted API not answering changes nothing.
        let (after, transitions) =
            with_dynamic_config(st.clone(), Outcome::NotRun, "2026-01-05T00:00:00Z");
        assert_eq!(dynamic_condition(&after), dynamic_condition(&st));
        assert_eq!(after.dynamic_config_hash, st.dynamic_config_hash);
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
            dynamic_config: Outcome::NotRun,
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

    #[test]
    fn only_flips_and_failures_are_news() {
        let cond = |type_: &str, status: &str, reason: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        };
        let old = vec![
            cond("Available", "False", "WaitingForPods"),
            cond("ScalingUp", "True", "ScalingUp"),
        ];
        let new = vec![
            cond("Available", "True", "Available"),
            cond("ScalingUp", "True", "ScalingUp"),
            cond("Paused", "False", "NotPaused"),
            cond("CertificatesAvailable", "True", "CertificatesAvailable"),
            cond("RollingOut", "False", c::INVALID_SPEC_REASON),
        ];
        let news: Vec<String> = transitions(&old, &new)
            .into_iter()
            .filter(Transition::is_news)
            .map(|t| t.type_)
            .collect();
        assert_eq!(
            news,
            ["Available", "RollingOut"],
            "a flip and a failure are news; conditions appearing (true or false) are not"
        );
        // Waiting for one thing, then for another: no news.
        let old = vec![cond("Available", "False", c::WAITING_FOR_ENDPOINT_REASON)];
        let new = vec![cond(
            "Available",
            "False",
            c::KUBE_SYSTEM_NOT_ACCESSIBLE_REASON,
        )];
        let changed = transitions(&old, &new);
        assert_eq!(changed.len(), 1, "the reason changed");
        assert!(!changed[0].is_news());
    }
}
