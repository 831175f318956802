//! Embedded NATS storage (`spec.storage.type: nats`, issue #13 part 5): kine inside each k0s pod
//! runs a NATS JetStream server and keeps the cluster's state in it, on a claim of its own.
//!
//! As upstream: the k0s config's kine datasource is `nats://?serverConfig=<file>` (plus
//! `&replicas=N` for more than one pod, so JetStream replicates across the pods); the entrypoint
//! writes that file at start (`entrypoint::script`) from the environment set here: the store
//! directory, the client port on loopback only, and for more than one pod a cluster block whose
//! routes reach the other pods through the headless Service `kmc-<cluster>-nats` and authenticate
//! with the token of the Secret `kmc-<cluster>-nats-token` (generated once, never rotated by us;
//! a Secret the user made first is used as it is). The pods start in parallel, so the first can
//! reach the others by name; the replica count cannot change (CRD rule).
//!
//! Pure: objects and pod-template parts; the build step decides when they are written.

use std::collections::BTreeMap;

use k0smotron_api::controlplane::v1beta2::{ClusterSpec, StorageType};
use k0smotron_api::names;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, Secret, SecretKeySelector, Service, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;

use crate::labels;
use crate::services;

/// Name of the claim template (and volume) of the JetStream store.
pub const DATA_VOLUME: &str = "nats-data";
/// Where the store is mounted in the k0s container.
pub const STORE_DIR: &str = "/nats-data";
/// The server config file the entrypoint writes and kine reads.
pub const CONFIG_PATH: &str = "/etc/nats/nats.conf";
/// NATS cluster (route) port between the pods.
pub const CLUSTER_PORT: i32 = 6222;
/// Key of the token in the token Secret.
pub const TOKEN_KEY: &str = "token";
/// Environment variables the entrypoint reads.
pub const TOKEN_ENV: &str = "K0SMOTRON_NATS_TOKEN";
/// See [`TOKEN_ENV`].
pub const REPLICAS_ENV: &str = "K0SMOTRON_NATS_REPLICAS";
/// See [`TOKEN_ENV`].
pub const STATEFULSET_ENV: &str = "K0SMOTRON_NATS_STS_NAME";
/// See [`TOKEN_ENV`].
pub const SERVICE_ENV: &str = "K0SMOTRON_NATS_SVC_NAME";
/// See [`TOKEN_ENV`].
pub const NAMESPACE_ENV: &str = "POD_NAMESPACE";

/// What the k0s StatefulSet needs of NATS; part of its inputs hash (absent for other storage,
/// so existing control planes keep their hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NatsInputs {
    /// The headless Service `kmc-<cluster>-nats`.
    pub service: String,
    /// The token Secret `kmc-<cluster>-nats-token`.
    pub token_secret: String,
    /// The StatefulSet's replicas (fixed at creation).
    pub replicas: i32,
    /// The store's claim template.
    pub claim: Box<PersistentVolumeClaim>,
}

/// The NATS inputs of `spec`, `None` unless its storage is `nats`.
pub fn inputs(spec: &ClusterSpec, cluster: &str) -> Option<NatsInputs> {
    if spec.storage.type_ != StorageType::Nats {
        return None;
    }
    let persistence = spec
        .storage
        .nats
        .as_ref()
        .map(|n| n.persistence.clone())
        .unwrap_or_default();
    Some(NatsInputs {
        service: names::nats_service_name(cluster),
        token_secret: names::nats_token_secret_name(cluster),
        replicas: spec.replicas,
        claim: Box::new(PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(DATA_VOLUME.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: persistence.storage_class.filter(|s| !s.is_empty()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), persistence.size)])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }),
    })
}

/// kine's datasource: the embedded server with the config file the entrypoint writes.
pub fn data_source(replicas: i32) -> String {
    if replicas > 1 {
        format!("nats://?serverConfig={CONFIG_PATH}&replicas={replicas}")
    } else {
        format!("nats://?serverConfig={CONFIG_PATH}")
    }
}

/// Metadata of the NATS Service and token Secret: the control plane's labels and owner.
fn metadata(name: String, cluster: &str, namespace: &str, owner: &OwnerReference) -> ObjectMeta {
    let selector = labels::control_plane_selector(cluster);
    labels::child_metadata(
        name,
        namespace,
        selector,
        names::component::CONTROL_PLANE,
        owner,
    )
}

/// The headless Service that gives each pod the DNS name its peers' routes use; not-ready pods
/// are published, since the pods must find each other before any is ready.
pub fn service(cluster: &str, namespace: &str, owner: &OwnerReference) -> Service {
    Service {
        metadata: metadata(names::nats_service_name(cluster), cluster, namespace, owner),
        spec: Some(services::headless_spec(
            cluster,
            "cluster",
            CLUSTER_PORT,
            true,
        )),
        status: None,
    }
}

/// A new token Secret: 32 random bytes, hex (only `[0-9a-f]`, so it needs no quoting in the
/// server config or the route URLs).
pub fn token_secret(cluster: &str, namespace: &str, owner: &OwnerReference) -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret {
        metadata: metadata(
            names::nats_token_secret_name(cluster),
            cluster,
            namespace,
            owner,
        ),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            TOKEN_KEY.to_string(),
            ByteString(hex::encode(bytes).into_bytes()),
        )])),
        ..Default::default()
    }
}

/// Why an existing token Secret cannot be used, if it cannot: the token must be there and be
/// made of letters and digits only, as the entrypoint checks too (it goes into the server
/// config and the route URLs unquoted).
pub fn check_token(secret: &Secret) -> Result<(), String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let token = secret.data.as_ref().and_then(|d| d.get(TOKEN_KEY));
    match token {
        None => Err(format!("Secret {name} has no key {TOKEN_KEY:?}")),
        Some(t) if t.0.is_empty() || !t.0.iter().all(u8::is_ascii_alphanumeric) => Err(format!(
            "the {TOKEN_KEY:?} of Secret {name} must be letters and digits only"
        )),
        Some(_) => Ok(()),
    }
}

/// The k0s container's environment for the entrypoint's server config.
pub fn env(inputs: &NatsInputs, statefulset: &str) -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    vec![
        EnvVar {
            name: TOKEN_ENV.into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: inputs.token_secret.clone(),
                    key: TOKEN_KEY.into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        value(REPLICAS_ENV, inputs.replicas.to_string()),
        value(STATEFULSET_ENV, statefulset.to_string()),
        value(SERVICE_ENV, inputs.service.clone()),
        EnvVar {
            name: NAMESPACE_ENV.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.namespace".into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}

/// The route port of the k0s container.
pub fn container_port() -> ContainerPort {
    ContainerPort {
        name: Some("nats-cluster".into()),
        container_port: CLUSTER_PORT,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The store's mount in the k0s container.
pub fn mount() -> VolumeMount {
    VolumeMount {
        name: DATA_VOLUME.into(),
        mount_path: STORE_DIR.into(),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn data_source_replicates_only_with_more_than_one_pod() {
        assert_eq!(data_source(1), "nats://?serverConfig=/etc/nats/nats.conf");
        assert_eq!(
            data_source(3),
            "nats://?serverConfig=/etc/nats/nats.conf&replicas=3"
        );
    }

    #[test]
    fn generated_tokens_are_hex_distinct_and_accepted() {
        let owner = OwnerReference::default();
        let a = token_secret("c", "ns", &owner);
        let b = token_secret("c", "ns", &owner);
        let token = |s: &Secret| s.data.as_ref().unwrap()[TOKEN_KEY].0.clone();
        assert_eq!(token(&a).len(), 64);
        assert!(token(&a).iter().all(u8::is_ascii_hexdigit));
        assert_ne!(token(&a), token(&b));
        assert_eq!(check_token(&a), Ok(()));
    }

    #[test]
    fn unusable_tokens_are_refused_with_the_reason() {
        let mut secret = token_secret("c", "ns", &OwnerReference::default());
        secret.data = Some(BTreeMap::new());
        assert!(check_token(&secret).unwrap_err().contains("no key"));
        for bad in ["", "a b", "x\"}\nlisten: 0.0.0.0:4222", "tok@host"] {
            secret.data = Some(BTreeMap::from([(
                TOKEN_KEY.to_string(),
                ByteString(bad.as_bytes().to_vec()),
            )]));
            assert!(
                check_token(&secret)
                    .unwrap_err()
                    .contains("letters and digits"),
                "{bad:?}"
            );
        }
    }
}
