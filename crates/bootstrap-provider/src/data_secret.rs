//! The bootstrap data Secret in the management cluster (CAPI bootstrap contract): its shape, and
//! reading back what a previous reconcile stored in it.
//!
//! Pure: builds and inspects `Secret` objects, never sends them.

use std::collections::BTreeMap;

use k0smotron_api::bootstrap::v1beta2::K0sWorkerConfig;
use k0smotron_api::names;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource as _, ResourceExt as _};
use provider_runtime::apply::{ApplyError, controller_owner_ref};

/// Field manager of the data Secret (upstream's, so ownership carries over from upstream).
pub const FIELD_MANAGER: &str = "k0s-bootstrap";
/// Annotation on the data Secret recording the ID (the public half) of the bootstrap token baked
/// into the data. With it a restarted provider finds, refreshes and deletes that token without
/// issuing another one.
pub const TOKEN_ID_ANNOTATION: &str = "bootstrap.k0smotron.io/token-id";
/// Value of `app.kubernetes.io/component` on data Secrets (upstream's).
pub const COMPONENT: &str = "bootstrap";

/// The data Secret for `config`: named like the config, type `cluster.x-k8s.io/secret`, keys
/// `value` and `format`, labels (`secretMetadata` first, then the contract labels), annotations
/// (`secretMetadata` plus the token ID) and a controller owner reference to the config.
pub fn build(
    config: &K0sWorkerConfig,
    cluster_name: &str,
    user_data: &str,
    token_id: &str,
) -> Result<Secret, ApplyError> {
    let owner = controller_owner_ref(config)?;
    let user_meta = config.spec.secret_metadata.clone().unwrap_or_default();

    let mut labels = user_meta.labels;
    // NB: upstream lets secretMetadata override these two; we let it override only the
    // component label: a wrong cluster-name label breaks clusterctl move and CAPI's lookups.
    labels
        .entry(names::APP_COMPONENT_LABEL.to_string())
        .or_insert_with(|| COMPONENT.to_string());
    labels.insert(
        names::CLUSTER_NAME_LABEL.to_string(),
        cluster_name.to_string(),
    );

    let mut annotations = user_meta.annotations;
    annotations.insert(TOKEN_ID_ANNOTATION.to_string(), token_id.to_string());

    let data = BTreeMap::from([
        (
            names::SECRET_VALUE_KEY.to_string(),
            ByteString(user_data.as_bytes().to_vec()),
        ),
        (
            names::SECRET_FORMAT_KEY.to_string(),
            ByteString(config.spec.provisioner.type_.as_str().as_bytes().to_vec()),
        ),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(config.name_any()),
            namespace: config.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some(names::CAPI_SECRET_TYPE.to_string()),
        data: Some(data),
        ..Secret::default()
    })
}

/// True when `secret` is controlled by a `K0sWorkerConfig` named like `config`. The UID is not
/// compared: `clusterctl move` recreates both with new UIDs and rewrites the reference.
pub fn is_controlled_by(secret: &Secret, config: &K0sWorkerConfig) -> bool {
    let kind = K0sWorkerConfig::kind(&());
    secret.owner_references().iter().any(|r| {
        r.controller == Some(true)
            && r.kind == kind
            && r.api_version.starts_with(names::BOOTSTRAP_GROUP)
            && r.name == config.name_any()
    })
}

/// The token ID recorded on a data Secret.
pub fn token_id(secret: &Secret) -> Option<&str> {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TOKEN_ID_ANNOTATION))
        .map(String::as_str)
}

/// The user data stored in a data Secret.
pub fn user_data(secret: &Secret) -> Option<&str> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(names::SECRET_VALUE_KEY))
        .and_then(|v| std::str::from_utf8(&v.0).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use k0smotron_api::bootstrap::v1beta2::K0sWorkerConfigSpec;
    use k0smotron_api::common::ObjectLabels;
    use pretty_assertions::assert_eq;

    fn config() -> K0sWorkerConfig {
        let mut c = K0sWorkerConfig::new(
            "worker-0",
            K0sWorkerConfigSpec {
                secret_metadata: Some(ObjectLabels {
                    labels: BTreeMap::from([
                        ("team".to_string(), "a".to_string()),
                        (names::CLUSTER_NAME_LABEL.to_string(), "wrong".to_string()),
                        (names::APP_COMPONENT_LABEL.to_string(), "mine".to_string()),
                    ]),
                    annotations: BTreeMap::from([("note".to_string(), "x".to_string())]),
                }),
                ..K0sWorkerConfigSpec::default()
            },
        );
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    #[test]
    fn has_the_contract_shape() {
        let s = build(&config(), "demo", "#cloud-config\n", "abcdef").unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("worker-0"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(s.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
        let labels = s.metadata.labels.clone().unwrap();
        assert_eq!(labels["cluster.x-k8s.io/cluster-name"], "demo");
        assert_eq!(labels["app.kubernetes.io/component"], "mine");
        assert_eq!(labels["team"], "a");
        let annotations = s.metadata.annotations.clone().unwrap();
        assert_eq!(annotations["note"], "x");
        assert_eq!(token_id(&s), Some("abcdef"));
        assert_eq!(user_data(&s), Some("#cloud-config\n"));
        assert_eq!(s.data.as_ref().unwrap()["format"].0, b"cloud-config");
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "K0sWorkerConfig");
        assert_eq!(owner.api_version, "bootstrap.cluster.x-k8s.io/v1beta2");
        assert_eq!(owner.controller, Some(true));
        assert!(is_controlled_by(&s, &config()));
    }

    #[test]
    fn format_is_the_provisioner_type() {
        use k0smotron_api::bootstrap::v1beta2::{Platform, ProvisionerType};
        for (type_, format) in [
            (ProvisionerType::Powershell, "powershell"),
            (ProvisionerType::PowershellXml, "powershell-xml"),
            (ProvisionerType::Ignition, "ignition"),
        ] {
            let mut c = config();
            c.spec.provisioner.type_ = type_;
            c.spec.provisioner.platform = Platform::Windows;
            let s = build(&c, "demo", "#ps1_sysnative\n", "abcdef").unwrap();
            assert_eq!(s.data.as_ref().unwrap()["format"].0, format.as_bytes());
        }
    }

    #[test]
    fn foreign_secrets_are_not_ours() {
        let mut s = build(&config(), "demo", "", "abcdef").unwrap();
        s.metadata.owner_references.as_mut().unwrap()[0].name = "other".into();
        assert!(!is_controlled_by(&s, &config()));
        assert!(!is_controlled_by(&Secret::default(), &config()));
    }
}
