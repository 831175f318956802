//! Spec checks the CRD schema cannot express, and the features this provider does not implement
//! (refused with a clear reason instead of being silently ignored).
//!
//! Pure. A failed check stops the reconcile before anything is written, so a bad spec never
//! deletes or changes running objects; it only surfaces as a condition.

use k0smotron_api::controlplane::v1beta2::{
    K0smotronControlPlaneSpec, PersistenceType, StorageType,
};
use k0smotron_api::version::K0sVersion;

/// Why a spec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The spec is inconsistent or malformed.
    #[error("{0}")]
    Invalid(String),
    /// The spec asks for a feature this provider does not implement.
    #[error("{0} is not supported by this provider")]
    Unsupported(&'static str),
}

/// Checks a spec; the first problem wins.
pub fn validate(spec: &K0smotronControlPlaneSpec) -> Result<(), SpecError> {
    if spec.remote_host_cluster.is_some() {
        return Err(SpecError::Unsupported(
            "spec.remoteHostCluster (hosting the control plane in another cluster)",
        ));
    }
    if spec.ingress.is_some() {
        return Err(SpecError::Unsupported(
            "spec.ingress (exposure through an Ingress)",
        ));
    }
    if spec.monitoring.as_ref().is_some_and(|m| m.enabled) {
        return Err(SpecError::Unsupported(
            "spec.monitoring.enabled (Prometheus sidecars)",
        ));
    }
    if spec.replicas < 0 {
        return Err(SpecError::Invalid(format!(
            "spec.replicas must not be negative, got {}",
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
        StorageType::Nats => {
            return Err(SpecError::Unsupported(
                "spec.storage.type nats (embedded NATS)",
            ));
        }
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use k0smotron_api::controlplane::v1beta2::{IngressSpec, KineSpec};

    #[test]
    fn default_spec_is_valid() {
        assert_eq!(validate(&K0smotronControlPlaneSpec::default()), Ok(()));
    }

    #[test]
    fn kine_needs_exactly_one_source() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.storage.type_ = StorageType::Kine;
        assert!(matches!(validate(&spec), Err(SpecError::Invalid(_))));
        spec.storage.kine = Some(KineSpec {
            data_source_url: Some("postgres://db".into()),
            data_source_secret_name: None,
        });
        assert_eq!(validate(&spec), Ok(()));
        spec.storage.kine = Some(KineSpec {
            data_source_url: Some("postgres://db".into()),
            data_source_secret_name: Some("s".into()),
        });
        assert!(matches!(validate(&spec), Err(SpecError::Invalid(_))));
    }

    #[test]
    fn unsupported_features_are_named() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.ingress = Some(IngressSpec {
            deploy: true,
            port: 443,
            api_host: "a".into(),
            konnectivity_host: "k".into(),
            class_name: None,
            annotations: Default::default(),
        });
        let err = validate(&spec).unwrap_err();
        assert!(err.to_string().contains("spec.ingress"), "{err}");
    }

    #[test]
    fn pvc_and_host_path_need_their_fields() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.persistence.type_ = PersistenceType::Pvc;
        assert!(validate(&spec).is_err());
        spec.persistence.type_ = PersistenceType::HostPath;
        assert!(validate(&spec).is_err());
        spec.persistence.host_path = Some("/data".into());
        assert_eq!(validate(&spec), Ok(()));
    }

    #[test]
    fn image_is_a_repository_without_tag() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.image = "registry.example.com:5000/k0sproject/k0s".into();
        assert_eq!(validate(&spec), Ok(()));
        spec.image = "quay.io/k0sproject/k0s:v1.35.7-k0s.0".into();
        assert!(validate(&spec).is_err());
        spec.image = "quay.io/k0sproject/k0s@sha256:abc".into();
        assert!(validate(&spec).is_err());
    }

    #[test]
    fn flags_and_ports() {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.control_plane_flags = vec!["debug".into()];
        assert!(validate(&spec).is_err());
        spec.control_plane_flags = vec![];
        spec.service.konnectivity_port = spec.service.api_port;
        assert!(validate(&spec).is_err());
    }
}
