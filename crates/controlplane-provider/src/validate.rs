//! Spec checks the CRD schema cannot express, and the features this provider does not implement
//! (refused with a clear reason instead of being silently ignored).
//!
//! Also the installation's [`FieldPolicy`]: the spec fields that reach the controller pods
//! (`--allow-*` flags of the provider; docs/security.md, "Multi-tenant installs").
//!
//! Pure. A failed check stops the reconcile before anything is written, so a bad spec never
//! deletes or changes running objects; it only surfaces as a condition.

use k0smotron_api::controlplane::v1beta2::{ClusterSpec, PersistenceType, StorageType};
use k0smotron_api::version::K0sVersion;
use k8s_openapi::api::core::v1::PodSpec;

/// Which spec fields that reach the controller pods this installation accepts. Whoever can edit a
/// control plane can use them to run arbitrary pods, or to read and write node files, in its
/// namespace; a multi-tenant install turns them off with the provider's `--allow-*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPolicy {
    /// `--allow-host-path`: hostPath persistence, and hostPath volumes in `spec.mounts`,
    /// `spec.manifests` or added by `spec.patches`. Off by default: a hostPath gives the pod the
    /// node's files.
    pub host_path: bool,
    /// `--allow-patches`: `spec.patches`.
    pub patches: bool,
    /// `--allow-mounts`: `spec.mounts`.
    pub mounts: bool,
    /// `--allow-manifests`: `spec.manifests`.
    pub manifests: bool,
    /// `--allow-service-account`: `spec.serviceAccount`.
    pub service_account: bool,
    /// `--allow-remote-host-cluster`: `spec.remoteHostCluster`, which makes the provider connect
    /// to a server the tenant chooses, with the tenant's credentials.
    pub remote_host_cluster: bool,
}

impl Default for FieldPolicy {
    /// Upstream k0smotron's behaviour, except hostPath (docs/deviations.md).
    fn default() -> Self {
        Self {
            host_path: false,
            patches: true,
            mounts: true,
            manifests: true,
            service_account: true,
            remote_host_cluster: true,
        }
    }
}

#[cfg(test)]
impl FieldPolicy {
    /// Everything allowed (upstream k0smotron's behaviour).
    pub(crate) fn all() -> Self {
        Self {
            host_path: true,
            ..Self::default()
        }
    }
}

/// Why a spec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The spec is inconsistent or malformed.
    #[error("{0}")]
    Invalid(String),
    /// The spec asks for a feature this provider does not implement.
    #[error("{0} is not supported by this provider")]
    Unsupported(&'static str),
    /// The spec uses a field this installation does not allow (see [`FieldPolicy`]).
    #[error(
        "{field} is not allowed by this installation: the control-plane provider allows it only when started with {flag} (env {env}=true)"
    )]
    NotAllowed {
        /// The field, e.g. `spec.mounts[0].hostPath`.
        field: String,
        /// The provider flag that allows it.
        flag: &'static str,
        /// The flag's environment variable.
        env: &'static str,
    },
}

/// The most controller replicas, as the CRD schema says. Checked here too because the builders
/// size lists by it (etcd's initial cluster has one entry per member): a spec that bypassed the
/// schema (an older CRD, a template copied by hand) with `replicas: 2147483647` would otherwise
/// make the provider allocate until the kernel kills it.
pub const MAX_REPLICAS: i32 = 32;

const ALLOW_HOST_PATH: (&str, &str) = ("--allow-host-path", "ALLOW_HOST_PATH");
const ALLOW_PATCHES: (&str, &str) = ("--allow-patches", "ALLOW_PATCHES");
const ALLOW_MOUNTS: (&str, &str) = ("--allow-mounts", "ALLOW_MOUNTS");
const ALLOW_MANIFESTS: (&str, &str) = ("--allow-manifests", "ALLOW_MANIFESTS");
const ALLOW_SERVICE_ACCOUNT: (&str, &str) = ("--allow-service-account", "ALLOW_SERVICE_ACCOUNT");
const ALLOW_REMOTE_HOST_CLUSTER: (&str, &str) =
    ("--allow-remote-host-cluster", "ALLOW_REMOTE_HOST_CLUSTER");

/// Refuses `spec.remoteHostCluster` when `policy` does not allow it. Also run before the
/// hosting cluster is contacted (`hosting::kubeconfig_ref`), which happens before the build.
pub fn check_remote_host(spec: &ClusterSpec, policy: &FieldPolicy) -> Result<(), SpecError> {
    if !policy.remote_host_cluster && spec.remote_host_cluster.is_some() {
        return Err(not_allowed(
            "spec.remoteHostCluster",
            ALLOW_REMOTE_HOST_CLUSTER,
        ));
    }
    Ok(())
}

fn not_allowed(field: impl Into<String>, (flag, env): (&'static str, &'static str)) -> SpecError {
    SpecError::NotAllowed {
        field: field.into(),
        flag,
        env,
    }
}

/// NATS storage adds a volume named `nats-data` to the pods: the data directory's claim and
/// `spec.mounts` may not take that name.
fn check_nats(spec: &ClusterSpec) -> Result<(), SpecError> {
    let taken = crate::nats::DATA_VOLUME;
    let claim_name = spec
        .persistence
        .persistent_volume_claim
        .as_ref()
        .and_then(|c| c.metadata.as_ref())
        .and_then(|m| m.name.as_deref());
    if spec.persistence.type_ == PersistenceType::Pvc && claim_name == Some(taken) {
        return Err(SpecError::Invalid(format!(
            "spec.persistence.persistentVolumeClaim.metadata.name may not be {taken:?} with spec.storage.type nats: the NATS store's claim has that name"
        )));
    }
    if let Some(m) = spec
        .mounts
        .iter()
        .find(|m| crate::statefulset::mount_volume_name(&m.path) == taken)
    {
        return Err(SpecError::Invalid(format!(
            "spec.mounts path {:?} would be a volume named {taken:?}, which the NATS store uses with spec.storage.type nats",
            m.path
        )));
    }
    Ok(())
}

/// Monitoring's sidecars need their images: an empty one would make the API server refuse the
/// StatefulSet on every reconcile.
fn check_monitoring(spec: &ClusterSpec) -> Result<(), SpecError> {
    let Some(m) = spec.monitoring.as_ref().filter(|m| m.enabled) else {
        return Ok(());
    };
    for (field, image) in [
        ("prometheusImage", &m.prometheus_image),
        ("proxyImage", &m.proxy_image),
    ] {
        if image.trim().is_empty() {
            return Err(SpecError::Invalid(format!(
                "spec.monitoring.{field} may not be empty with spec.monitoring.enabled"
            )));
        }
    }
    Ok(())
}

/// Checks a spec against the installation's policy, then on its own; the first problem wins.
pub fn validate(spec: &ClusterSpec, policy: &FieldPolicy) -> Result<(), SpecError> {
    check_policy(spec, policy)?;
    if let Some(ingress) = &spec.ingress {
        crate::ingress::check(ingress)?;
    }
    check_monitoring(spec)?;
    if !(0..=MAX_REPLICAS).contains(&spec.replicas) {
        return Err(SpecError::Invalid(format!(
            "spec.replicas must be between 0 and {MAX_REPLICAS}, got {}",
            spec.replicas
        )));
    }
    K0sVersion::parse(&spec.version).map_err(|e| SpecError::Invalid(e.to_string()))?;
    let last_segment = spec.image.rsplit('/').next().unwrap_or_default();
    if spec.image.is_empty() || spec.image.contains('@') || last_segment.contains(':') {
        return Err(SpecError::Invalid(format!(
            "spec.image must be a repository without tag or digest, got {:?}",
            spec.image
        )));
    }
    match spec.storage.type_ {
        StorageType::Nats => check_nats(spec)?,
        StorageType::Kine => {
            let kine = spec.storage.kine.as_ref();
            let url = kine
                .and_then(|k| k.data_source_url.as_deref())
                .filter(|s| !s.is_empty());
            let secret = kine
                .and_then(|k| k.data_source_secret_name.as_deref())
                .filter(|s| !s.is_empty());
            match (url, secret) {
                (None, None) => {
                    return Err(SpecError::Invalid(
                        "spec.storage.type is kine but neither spec.storage.kine.dataSourceURL nor dataSourceSecretName is set".into(),
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(SpecError::Invalid(
                        "set only one of spec.storage.kine.dataSourceURL and dataSourceSecretName"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
        StorageType::Etcd => {}
    }
    match spec.persistence.type_ {
        PersistenceType::Pvc if spec.persistence.persistent_volume_claim.is_none() => {
            return Err(SpecError::Invalid(
                "spec.persistence.type is pvc but spec.persistence.persistentVolumeClaim is not set".into(),
            ));
        }
        PersistenceType::Pvc if !claim_template_is_complete(spec) => {
            return Err(SpecError::Invalid(
                "spec.persistence.persistentVolumeClaim.spec must set accessModes and resources.requests.storage: the API server refuses a StatefulSet claim template without them".into(),
            ));
        }
        PersistenceType::HostPath
            if spec
                .persistence
                .host_path
                .as_deref()
                .is_none_or(str::is_empty) =>
        {
            return Err(SpecError::Invalid(
                "spec.persistence.type is hostPath but spec.persistence.hostPath is not set".into(),
            ));
        }
        _ => {}
    }
    let ports = (spec.service.api_port, spec.service.konnectivity_port);
    if ports.0 == ports.1 {
        return Err(SpecError::Invalid(format!(
            "spec.service.apiPort and konnectivityPort must differ, both are {}",
            ports.0
        )));
    }
    for (i, flag) in spec.control_plane_flags.iter().enumerate() {
        if !flag.starts_with('-') {
            return Err(SpecError::Invalid(format!(
                "spec.controlPlaneFlags[{i}] must be a flag such as --name=value, got {flag:?}"
            )));
        }
    }
    check_certificate_refs(spec)?;
    let mut paths = std::collections::BTreeSet::new();
    for (i, m) in spec.mounts.iter().enumerate() {
        if !m.path.starts_with('/') {
            return Err(SpecError::Invalid(format!(
                "spec.mounts[{i}].path must be absolute, got {:?}",
                m.path
            )));
        }
        if !paths.insert(m.path.trim_end_matches('/')) {
            return Err(SpecError::Invalid(format!(
                "spec.mounts[{i}].path {:?} is mounted twice",
                m.path
            )));
        }
    }
    Ok(())
}

/// `spec.certificateRefs`: one Secret per certificate, and one Secret per type. A Secret holds a
/// single `tls.crt`/`tls.key` pair, so a name given for two types would make one certificate
/// stand for another, and renewing the etcd client certificate would overwrite the CA in the
/// same Secret (found by the determinism property, issue #12). A type named twice with two
/// different Secrets is ambiguous. Both are refused before anything is written.
fn check_certificate_refs(spec: &ClusterSpec) -> Result<(), SpecError> {
    let mut by_name = std::collections::BTreeMap::new();
    let mut by_type = std::collections::HashMap::new();
    for (i, r) in spec.certificate_refs.iter().enumerate() {
        let Some(name) = r.name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        if let Some(other) = by_name.insert(name, r.type_).filter(|t| *t != r.type_) {
            return Err(SpecError::Invalid(format!(
                "spec.certificateRefs[{i}]: Secret {name:?} is already given for type {}; each certificate needs a Secret of its own",
                other.as_str()
            )));
        }
        if let Some(other) = by_type.insert(r.type_, name).filter(|n| *n != name) {
            return Err(SpecError::Invalid(format!(
                "spec.certificateRefs[{i}]: type {} is already given Secret {other:?}; name one Secret per type",
                r.type_.as_str()
            )));
        }
    }
    Ok(())
}

/// Whether the `pvc` claim template has what the API server requires of a StatefulSet's
/// `volumeClaimTemplates` (at least one access mode and a storage request). The CRD admits a
/// template without them; refused here, the user gets an `InvalidSpec` condition naming the
/// fields instead of a failed StatefulSet apply on every reconcile (found by the schema property
/// test, issue #12).
fn claim_template_is_complete(spec: &ClusterSpec) -> bool {
    let claim = spec
        .persistence
        .persistent_volume_claim
        .as_ref()
        .and_then(|c| c.spec.as_ref());
    let modes = claim
        .and_then(|c| c.access_modes.as_ref())
        .is_some_and(|m| !m.is_empty());
    let storage = claim
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .is_some_and(|r| r.contains_key("storage"));
    modes && storage
}

/// Refuses the fields `policy` does not allow.
fn check_policy(spec: &ClusterSpec, policy: &FieldPolicy) -> Result<(), SpecError> {
    if !policy.patches && !spec.patches.is_empty() {
        return Err(not_allowed("spec.patches", ALLOW_PATCHES));
    }
    if !policy.mounts && !spec.mounts.is_empty() {
        return Err(not_allowed("spec.mounts", ALLOW_MOUNTS));
    }
    if !policy.manifests && !spec.manifests.is_empty() {
        return Err(not_allowed("spec.manifests", ALLOW_MANIFESTS));
    }
    // An empty name is the default ServiceAccount, as if the field were not set (see build).
    if !policy.service_account
        && spec
            .service_account
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        return Err(not_allowed("spec.serviceAccount", ALLOW_SERVICE_ACCOUNT));
    }
    check_remote_host(spec, policy)?;
    if policy.host_path {
        return Ok(());
    }
    if spec.persistence.type_ == PersistenceType::HostPath {
        return Err(not_allowed(
            "spec.persistence.hostPath (persistence type hostPath)",
            ALLOW_HOST_PATH,
        ));
    }
    for (i, m) in spec.mounts.iter().enumerate() {
        if m.volume_source
            .get("hostPath")
            .is_some_and(|v| !v.is_null())
        {
            return Err(not_allowed(
                format!("spec.mounts[{i}].hostPath"),
                ALLOW_HOST_PATH,
            ));
        }
    }
    for (i, v) in spec.manifests.iter().enumerate() {
        if v.host_path.is_some() {
            return Err(not_allowed(
                format!("spec.manifests[{i}].hostPath"),
                ALLOW_HOST_PATH,
            ));
        }
    }
    Ok(())
}

/// Checks a generated pod after `spec.patches` were applied to it: without `--allow-host-path`, a
/// patch may not add a hostPath volume either. `object` names it for the message
/// (e.g. `StatefulSet kmc-demo`).
pub(crate) fn check_patched_pod(
    pod: Option<&PodSpec>,
    object: &str,
    policy: &FieldPolicy,
) -> Result<(), SpecError> {
    if policy.host_path {
        return Ok(());
    }
    let volumes = pod.and_then(|p| p.volumes.as_deref()).unwrap_or_default();
    match volumes.iter().find(|v| v.host_path.is_some()) {
        Some(v) => Err(not_allowed(
            format!("spec.patches (hostPath volume {:?} in {object})", v.name),
            ALLOW_HOST_PATH,
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use k0smotron_api::controlplane::v1beta2::K0smotronControlPlaneSpec;
    use k0smotron_api::controlplane::v1beta2::{
        ComponentPatch, IngressSpec, KineSpec, Mount, PatchSpec, PatchTarget, PatchType,
    };
    use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, HostPathVolumeSource, Volume};
    use serde_json::json;

    fn mount(source: serde_json::Value) -> Mount {
        serde_json::from_value(source).unwrap()
    }

    fn host_path_volume(name: &str) -> Volume {
        Volume {
            name: name.into(),
            host_path: Some(HostPathVolumeSource {
                path: "/etc".into(),
                type_: None,
            }),
            ..Default::default()
        }
    }

    /// The refusal of `spec` under `policy`, as (field, flag).
    fn refusal(spec: &K0smotronControlPlaneSpec, policy: FieldPolicy) -> (String, &'static str) {
        match validate(spec, &policy) {
            Err(SpecError::NotAllowed { field, flag, .. }) => (field, flag),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn certificate_refs_name_one_secret_per_certificate() {
        use k0smotron_api::controlplane::v1beta2::{CertificateRef, CertificateType};
        let r = |type_, name: &str| CertificateRef {
            type_,
            name: Some(name.into()),
        };
        let invalid = |refs: Vec<CertificateRef>| {
            let mut spec = K0smotronControlPlaneSpec::default();
            spec.certificate_refs = refs;
            match validate(&spec, &FieldPolicy::default()) {
                Err(SpecError::Invalid(m)) => m,
                other => panic!("expected a refusal, got {other:?}"),
            }
        };
        let m = invalid(vec![
            r(CertificateType::ApiserverEtcdClient, "x"),
            r(CertificateType::Ca, "x"),
        ]);
        assert!(
            m.starts_with("spec.certificateRefs[1]: Secret \"x\" is already given for type apiserver-etcd-client"),
            "{m}"
        );
        let m = invalid(vec![
            r(CertificateType::Ca, "x"),
            r(CertificateType::Ca, "y"),
        ]);
        assert!(m.contains("type ca is already given Secret \"x\""), "{m}");
        // The same reference twice, and refs without a name, are fine.
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.certificate_refs = vec![
            r(CertificateType::Ca, "x"),
            r(CertificateType::Ca, "x"),
            r(CertificateType::Sa, "s"),
            CertificateRef {
                type_: CertificateType::Proxy,
                name: None,
            },
            CertificateRef {
                type_: CertificateType::Etcd,
                name: None,
            },
        ];
        assert!(validate(&spec, &FieldPolicy::default()).is_ok());
    }

    #[test]
    fn default_spec_is_valid() {
        assert_eq!(
            validate(
                &K0smotronControlPlaneSpec::default(),
                &FieldPolicy::default()
            ),
            Ok(())
        );
    }

    /// Found by the property tests (issue #12): `replicas: i32::MAX` passed validate and the
    /// etcd builder then listed two billion members, until the process was killed for memory.
    #[test]
    fn replicas_beyond_the_schema_maximum_are_refused() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.replicas = MAX_REPLICAS;
        assert_eq!(validate(&spec, &FieldPolicy::default()), Ok(()));
        for replicas in [MAX_REPLICAS + 1, i32::MAX, -1, i32::MIN] {
            spec.replicas = replicas;
            let err = validate(&spec, &FieldPolicy::default()).unwrap_err();
            assert!(err.to_string().contains("spec.replicas"), "{err}");
        }
    }

    #[test]
    fn kine_needs_exactly_one_source() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.storage.type_ = StorageType::Kine;
        assert!(matches!(
            validate(&spec, &FieldPolicy::default()),
            Err(SpecError::Invalid(_))
        ));
        spec.storage.kine = Some(KineSpec {
            data_source_url: Some("postgres://db".into()),
            data_source_secret_name: None,
        });
        assert_eq!(validate(&spec, &FieldPolicy::default()), Ok(()));
        spec.storage.kine = Some(KineSpec {
            data_source_url: Some("postgres://db".into()),
            data_source_secret_name: Some("s".into()),
        });
        assert!(matches!(
            validate(&spec, &FieldPolicy::default()),
            Err(SpecError::Invalid(_))
        ));
    }

    /// `spec.remoteHostCluster` is implemented (issue #13 part 2): its reference is checked
    /// where the control plane's namespace is known (`hosting::kubeconfig_ref`), not here.
    #[test]
    fn a_remote_host_is_not_refused_by_the_spec_checks() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.remote_host_cluster = Some(Default::default());
        assert_eq!(validate(&spec, &FieldPolicy::default()), Ok(()));
    }

    /// `spec.ingress` is implemented (issue #13 part 3): a plain one passes, and its hosts are
    /// checked as part of the spec.
    #[test]
    fn ingress_is_checked_not_refused() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.ingress = Some(IngressSpec {
            deploy: true,
            port: 443,
            api_host: "api.example.com".into(),
            konnectivity_host: "konnectivity.example.com".into(),
            class_name: None,
            annotations: Default::default(),
        });
        validate(&spec, &FieldPolicy::default()).unwrap();
        spec.ingress.as_mut().unwrap().api_host = "api.example.com; rm -rf /".into();
        let err = validate(&spec, &FieldPolicy::default()).unwrap_err();
        assert!(matches!(err, SpecError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("spec.ingress.apiHost"), "{err}");
    }

    /// Found by the schema property test (issue #12): `persistentVolumeClaim: {}` is admitted by
    /// the CRD, and the StatefulSet built from it was refused by the API server on every apply.
    #[test]
    fn a_pvc_claim_template_needs_access_modes_and_a_storage_request() {
        use k0smotron_api::controlplane::v1beta2::PersistentVolumeClaimTemplate;
        use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let claim = |modes: Option<Vec<String>>, storage: bool| PersistentVolumeClaimTemplate {
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: modes,
                resources: Some(VolumeResourceRequirements {
                    requests: storage.then(|| {
                        std::collections::BTreeMap::from([(
                            "storage".to_string(),
                            Quantity("1Gi".into()),
                        )])
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.persistence.type_ = PersistenceType::Pvc;
        let rwo = || Some(vec!["ReadWriteOnce".to_string()]);
        for (template, ok) in [
            (PersistentVolumeClaimTemplate::default(), false),
            (claim(None, true), false),
            (claim(Some(vec![]), true), false),
            (claim(rwo(), false), false),
            (claim(rwo(), true), true),
        ] {
            spec.persistence.persistent_volume_claim = Some(template);
            let result = validate(&spec, &FieldPolicy::default());
            assert_eq!(result.is_ok(), ok, "{result:?}");
            if let Err(e) = result {
                assert!(e.to_string().contains("accessModes"), "{e}");
            }
        }
    }

    #[test]
    fn pvc_and_host_path_need_their_fields() {
        let all = FieldPolicy::all();
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.persistence.type_ = PersistenceType::Pvc;
        assert!(matches!(validate(&spec, &all), Err(SpecError::Invalid(_))));
        spec.persistence.type_ = PersistenceType::HostPath;
        assert!(matches!(validate(&spec, &all), Err(SpecError::Invalid(_))));
        spec.persistence.host_path = Some("/data".into());
        assert_eq!(validate(&spec, &all), Ok(()));
    }

    #[test]
    fn image_is_a_repository_without_tag() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.image = "registry.example.com:5000/k0sproject/k0s".into();
        assert_eq!(validate(&spec, &FieldPolicy::default()), Ok(()));
        spec.image = "quay.io/k0sproject/k0s:v1.35.7-k0s.0".into();
        assert!(validate(&spec, &FieldPolicy::default()).is_err());
        spec.image = "quay.io/k0sproject/k0s@sha256:abc".into();
        assert!(validate(&spec, &FieldPolicy::default()).is_err());
    }

    #[test]
    fn flags_and_ports() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.control_plane_flags = vec!["debug".into()];
        assert!(validate(&spec, &FieldPolicy::default()).is_err());
        spec.control_plane_flags = vec![];
        spec.service.konnectivity_port = spec.service.api_port;
        assert!(validate(&spec, &FieldPolicy::default()).is_err());
    }

    #[test]
    fn host_path_persistence_is_refused_by_default_and_allowed_by_the_flag() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.persistence.type_ = PersistenceType::HostPath;
        spec.persistence.host_path = Some("/var/lib/k0smotron/demo".into());
        let err = validate(&spec, &FieldPolicy::default()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("spec.persistence.hostPath"), "{message}");
        assert!(message.contains("--allow-host-path"), "{message}");
        assert!(message.contains("ALLOW_HOST_PATH"), "{message}");
        let allowed = FieldPolicy {
            host_path: true,
            ..FieldPolicy::default()
        };
        assert_eq!(validate(&spec, &allowed), Ok(()));
        // A path left over from an earlier hostPath spec reaches no pod.
        spec.persistence.type_ = PersistenceType::EmptyDir;
        assert_eq!(validate(&spec, &FieldPolicy::default()), Ok(()));
    }

    #[test]
    fn host_path_volumes_in_mounts_and_manifests_need_the_flag() {
        let allowed = FieldPolicy::all();
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.mounts = vec![
            mount(json!({"path": "/etc/extra", "secret": {"secretName": "extra"}})),
            mount(json!({"path": "/host", "hostPath": {"path": "/"}})),
        ];
        assert_eq!(
            refusal(&spec, FieldPolicy::default()),
            ("spec.mounts[1].hostPath".to_string(), "--allow-host-path")
        );
        assert_eq!(validate(&spec, &allowed), Ok(()));

        let mut spec = K0smotronControlPlaneSpec::default();
        spec.manifests = vec![host_path_volume("addons")];
        assert_eq!(
            refusal(&spec, FieldPolicy::default()),
            (
                "spec.manifests[0].hostPath".to_string(),
                "--allow-host-path"
            )
        );
        assert_eq!(validate(&spec, &allowed), Ok(()));
    }

    #[test]
    fn each_allow_flag_refuses_its_field_when_off_and_accepts_it_when_on() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.patches = vec![ComponentPatch {
            target: PatchTarget {
                kind: "StatefulSet".into(),
                component: "control-plane".into(),
            },
            patch: PatchSpec {
                type_: PatchType::Merge,
                content: "{}".into(),
            },
        }];
        spec.mounts = vec![mount(
            json!({"path": "/etc/extra", "secret": {"secretName": "extra"}}),
        )];
        spec.manifests = vec![Volume {
            name: "addons".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "addons".into(),
                ..Default::default()
            }),
            ..Default::default()
        }];
        spec.service_account = Some("k0s".into());
        spec.remote_host_cluster = Some(Default::default());
        // On by default (upstream's behaviour).
        assert_eq!(validate(&spec, &FieldPolicy::default()), Ok(()));

        let on = FieldPolicy::default();
        let cases = [
            (
                FieldPolicy {
                    patches: false,
                    ..on
                },
                "spec.patches",
                "--allow-patches",
            ),
            (
                FieldPolicy {
                    mounts: false,
                    ..on
                },
                "spec.mounts",
                "--allow-mounts",
            ),
            (
                FieldPolicy {
                    manifests: false,
                    ..on
                },
                "spec.manifests",
                "--allow-manifests",
            ),
            (
                FieldPolicy {
                    service_account: false,
                    ..on
                },
                "spec.serviceAccount",
                "--allow-service-account",
            ),
            (
                FieldPolicy {
                    remote_host_cluster: false,
                    ..on
                },
                "spec.remoteHostCluster",
                "--allow-remote-host-cluster",
            ),
        ];
        for (policy, field, flag) in cases {
            assert_eq!(refusal(&spec, policy), (field.to_string(), flag));
            let message = validate(&spec, &policy).unwrap_err().to_string();
            assert!(
                message.contains(field) && message.contains(flag),
                "{message}"
            );
        }

        // Off refuses only a spec that uses the field.
        let off = FieldPolicy {
            host_path: false,
            patches: false,
            mounts: false,
            manifests: false,
            service_account: false,
            remote_host_cluster: false,
        };
        let mut unused = K0smotronControlPlaneSpec::default();
        assert_eq!(validate(&unused, &off), Ok(()));
        unused.service_account = Some(String::new());
        assert_eq!(validate(&unused, &off), Ok(()));
    }

    #[test]
    fn a_patched_pod_may_not_gain_a_host_path_without_the_flag() {
        let mut pod = PodSpec {
            volumes: Some(vec![Volume {
                name: "data".into(),
                empty_dir: Some(Default::default()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let default = FieldPolicy::default();
        assert_eq!(
            check_patched_pod(Some(&pod), "StatefulSet kmc-demo", &default),
            Ok(())
        );
        assert_eq!(
            check_patched_pod(None, "StatefulSet kmc-demo", &default),
            Ok(())
        );
        pod.volumes
            .get_or_insert_default()
            .push(host_path_volume("node"));
        let err = check_patched_pod(Some(&pod), "StatefulSet kmc-demo", &default).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("spec.patches")
                && message.contains("kmc-demo")
                && message.contains("--allow-host-path"),
            "{message}"
        );
        assert_eq!(
            check_patched_pod(Some(&pod), "StatefulSet kmc-demo", &FieldPolicy::all()),
            Ok(())
        );
    }
}
