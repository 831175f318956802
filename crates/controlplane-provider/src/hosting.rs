//! Where a control plane's children live: the management cluster, or the hosting cluster of a
//! control plane with `spec.remoteHostCluster` (upstream's remote hosted control planes).
//!
//! For a remote control plane this module reads the Secret `kubeconfigRef` names (in the
//! management cluster, in the control plane's own namespace only), checks the kubeconfig like
//! any tenant input ([`provider_runtime::kubeconfig::validate_hosting`]), builds a client with
//! timeouts, and makes sure the namespace of the control plane's name and the root-owner
//! ConfigMap `<cluster>-root-owner` exist there. Every child except the `<cluster>-kubeconfig`
//! Secret is then written there with the root owner as its controller, so the hosting cluster's
//! garbage collector removes them when the root owner goes ([`release`]).
//!
//! Writes only the namespace and the root owner in the hosting cluster; never writes in the
//! management cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use k0smotron_api::controlplane::v1beta2::{ClusterSpec, KubeconfigRef};
use k0smotron_api::{conditions as cond, names};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams, Preconditions, PropagationPolicy};
use kube::{Api, Client, ResourceExt};
use provider_runtime::kubeconfig::{self, Refusal, Timeouts};

use crate::control_plane::ControlPlane;
use crate::stores::Stores;
use crate::validate::{FieldPolicy, SpecError};

/// How often a remote control plane is looked at again at the latest: the children live in the
/// hosting cluster, whose changes no watch of ours sees (yet).
pub(crate) const REMOTE_RESYNC: Duration = Duration::from_secs(30);

/// The cluster a control plane's children are read from and written to.
#[derive(Clone)]
pub(crate) struct Scope {
    /// Client of that cluster.
    pub(crate) client: Client,
    /// The management cluster's stores, or empty stores for a hosting cluster (every read then
    /// goes to its API server: the stores watch the management cluster only).
    pub(crate) stores: Stores,
    /// The children live in a hosting cluster.
    pub(crate) remote: bool,
}

impl Scope {
    /// The management cluster.
    pub(crate) fn local(client: &Client, stores: &Stores) -> Self {
        Self {
            client: client.clone(),
            stores: stores.clone(),
            remote: false,
        }
    }
}

/// Why a control plane's hosting cluster cannot be used. Each maps to a condition reason.
#[derive(Debug, thiserror::Error)]
pub enum HostingError {
    /// The spec names no Secret, or one of another namespace.
    #[error("{0}")]
    Spec(String),
    /// The installation does not allow `spec.remoteHostCluster` (`--allow-remote-host-cluster`).
    #[error(transparent)]
    NotAllowed(SpecError),
    /// The Secret does not exist.
    #[error(
        "Secret {namespace}/{name} (spec.remoteHostCluster.kubeconfigRef) does not exist in the management cluster"
    )]
    SecretMissing {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The key is missing or not UTF-8.
    #[error(
        "Secret {namespace}/{name} has no UTF-8 key {key:?} (spec.remoteHostCluster.kubeconfigRef.key)"
    )]
    KeyMissing {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Key.
        key: String,
    },
    /// The kubeconfig is refused ([`kubeconfig::validate_hosting`]).
    #[error("the hosting cluster's kubeconfig in Secret {secret} is refused: {refusal}")]
    Refused {
        /// `namespace/name`.
        secret: String,
        /// Why.
        refusal: Refusal,
    },
    /// The client cannot be built from what was accepted.
    #[error("no client for the hosting cluster: {0}")]
    Client(String),
    /// Reading the Secret in the management cluster failed (a reconcile error, not a condition).
    #[error("reading Secret {what}: {source}")]
    ReadSecret {
        /// `namespace/name`.
        what: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A request to the hosting cluster failed or got no answer in time.
    #[error("the hosting cluster {server}: {what}: {source}")]
    Unavailable {
        /// Its server URL.
        server: String,
        /// What was asked.
        what: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The root owner there stands for another control plane.
    #[error(
        "ConfigMap {namespace}/{name} in the hosting cluster stands for another control plane (uid {other}); not taking it over"
    )]
    RootOwnedByOther {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The uid it names.
        other: String,
    },
}

impl HostingError {
    /// The condition reason it is reported with.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Spec(_) => cond::INVALID_SPEC_REASON,
            Self::NotAllowed(_) => cond::FIELD_NOT_ALLOWED_REASON,
            Self::SecretMissing { .. } | Self::KeyMissing { .. } => {
                cond::REFERENCE_NOT_FOUND_REASON
            }
            Self::Refused { .. } => cond::KUBECONFIG_REFUSED_REASON,
            Self::Client(_) => cond::CLIENT_CREATION_FAILED_REASON,
            Self::ReadSecret { .. } => cond::INTERNAL_ERROR_REASON,
            Self::Unavailable { .. } => cond::REMOTE_HOST_UNAVAILABLE_REASON,
            Self::RootOwnedByOther { .. } => cond::OBJECT_OWNED_BY_OTHER_REASON,
        }
    }
}

/// The Secret `spec.remoteHostCluster.kubeconfigRef` names, or `None` for a control plane in the
/// management cluster. Only a Secret of the control plane's own `namespace` may be named:
/// whoever may edit a control plane may read Secrets of its namespace through it, and must not
/// reach another tenant's (upstream allows any namespace; docs/deviations.md).
pub(crate) fn kubeconfig_ref<'a>(
    spec: &'a ClusterSpec,
    namespace: &str,
    policy: &FieldPolicy,
) -> Result<Option<&'a KubeconfigRef>, HostingError> {
    let Some(remote) = &spec.remote_host_cluster else {
        return Ok(None);
    };
    crate::validate::check_remote_host(spec, policy).map_err(HostingError::NotAllowed)?;
    let Some(r) = &remote.kubeconfig_ref else {
        return Err(HostingError::Spec(
            "spec.remoteHostCluster needs kubeconfigRef (the Secret holding the hosting cluster's kubeconfig)"
                .into(),
        ));
    };
    if r.namespace != namespace {
        return Err(HostingError::Spec(format!(
            "spec.remoteHostCluster.kubeconfigRef.namespace {:?} is not the control plane's namespace {namespace:?}: only a Secret of the control plane's own namespace may be referenced",
            r.namespace
        )));
    }
    let key = if r.key.is_empty() {
        names::SECRET_VALUE_KEY
    } else {
        &r.key
    };
    if r.name.is_empty() || key.is_empty() {
        return Err(HostingError::Spec(
            "spec.remoteHostCluster.kubeconfigRef.name may not be empty".into(),
        ));
    }
    Ok(Some(r))
}

/// The kubeconfig of `secret` under `reference`'s key, checked.
pub(crate) fn hosting_kubeconfig(
    secret: &Secret,
    reference: &KubeconfigRef,
) -> Result<kubeconfig::Trusted, HostingError> {
    let key = if reference.key.is_empty() {
        names::SECRET_VALUE_KEY
    } else {
        reference.key.as_str()
    };
    let text = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .ok_or_else(|| HostingError::KeyMissing {
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
            key: key.to_owned(),
        })?;
    kubeconfig::validate_hosting(&text).map_err(|refusal| HostingError::Refused {
        secret: format!("{}/{}", reference.namespace, reference.name),
        refusal,
    })
}

/// The root-owner ConfigMap of the control plane `object_uid` (its own uid, not a child's
/// owner) whose children are named after `cluster`, in `namespace` of the hosting cluster. Empty
/// like upstream's; labelled with the cluster name and annotated with the control plane's uid.
pub(crate) fn root_owner(cluster: &str, namespace: &str, object_uid: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(names::root_owner_config_map(cluster)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (
                    names::APP_LABEL.to_owned(),
                    names::APP_LABEL_VALUE.to_owned(),
                ),
                (names::CLUSTER_NAME_LABEL.to_owned(), cluster.to_owned()),
            ])),
            annotations: Some(BTreeMap::from([(
                names::ROOT_OWNER_UID_ANNOTATION.to_owned(),
                object_uid.to_owned(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Refuses a root owner that names another control plane's uid. One without the annotation (made
/// by upstream k0smotron) is adopted.
pub(crate) fn check_root_owner(cm: &ConfigMap, object_uid: &str) -> Result<(), HostingError> {
    match cm.annotations().get(names::ROOT_OWNER_UID_ANNOTATION) {
        Some(other) if other != object_uid => Err(HostingError::RootOwnedByOther {
            namespace: cm.namespace().unwrap_or_default(),
            name: cm.name_any(),
            other: other.clone(),
        }),
        _ => Ok(()),
    }
}

/// The controller owner reference every child in the hosting cluster carries.
pub(crate) fn root_owner_ref(cm: &ConfigMap) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: cm.name_any(),
        uid: cm.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Clients of hosting clusters, one per kubeconfig Secret version: a reconcile reuses the
/// client (and its connections) of the last one, and a changed Secret gets a new client.
#[derive(Default)]
pub struct Clients {
    entries: Mutex<HashMap<String, (String, Host)>>,
}

/// How long a watch of a hosting cluster may go without a byte (its server ends a watch after
/// at most 5 minutes, kube's watcher asks for 290 s).
const WATCH_IO_TIMEOUT: Duration = Duration::from_secs(330);

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

impl Clients {
    /// The clients of `secret` (a checked kubeconfig).
    fn host(
        &self,
        secret: &Secret,
        reference: &KubeconfigRef,
        timeout: Duration,
    ) -> Result<Host, HostingError> {
        let key = format!(
            "{}/{}/{}/{}",
            reference.namespace,
            reference.name,
            reference.key,
            secret.metadata.uid.as_deref().unwrap_or_default()
        );
        let version = secret.resource_version().unwrap_or_default();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, host)) = entries.get(&key)
            && *v == version
        {
            return Ok(host.clone());
        }
        let trusted = hosting_kubeconfig(secret, reference)?;
        let client_with = |io| {
            trusted
                .client(Timeouts {
                    connect: timeout,
                    io,
                })
                .map_err(|e| HostingError::Client(e.to_string()))
        };
        let host = Host {
            client: client_with(timeout)?,
            watch_client: client_with(WATCH_IO_TIMEOUT)?,
            server: trusted.server().to_string(),
            key: format!("{key}/{version}"),
        };
        entries.insert(key, (version, host.clone()));
        Ok(host)
    }
}

/// A hosting cluster: its clients and server.
#[derive(Clone)]
pub(crate) struct Host {
    /// For requests: every one bounded by the probe timeout.
    pub(crate) client: Client,
    /// For watches: a long read timeout.
    pub(crate) watch_client: Client,
    /// Its server URL.
    pub(crate) server: String,
    /// Identifies the hosting cluster and the credentials: the Secret's namespace, name, key,
    /// uid and resourceVersion.
    pub(crate) key: String,
}

/// The hosting cluster of a control plane that has one (`reference`): the Secret read from the
/// management cluster (`management`), checked, and a client with `timeout` on every request.
pub(crate) async fn host(
    management: &Client,
    clients: &Clients,
    reference: &KubeconfigRef,
    timeout: Duration,
) -> Result<Host, HostingError> {
    let secrets: Api<Secret> = Api::namespaced(management.clone(), &reference.namespace);
    let what = format!("{}/{}", reference.namespace, reference.name);
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|source| HostingError::ReadSecret {
            what: what.clone(),
            source: Box::new(source),
        })?
        .ok_or_else(|| HostingError::SecretMissing {
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
        })?;
    clients.host(&secret, reference, timeout)
}

fn unavailable(server: &str, what: String) -> impl FnOnce(kube::Error) -> HostingError + '_ {
    move |source| HostingError::Unavailable {
        server: server.to_owned(),
        what,
        source: Box::new(source),
    }
}

/// `call` within `timeout`: a hosting cluster that accepts the connection but never answers
/// must not hold the reconcile worker longer than that.
async fn bounded<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(kube::Error::Service(
                format!("no answer within {}s", timeout.as_secs()).into(),
            ))
        })
}

/// Makes sure the namespace `cp.namespace` and the root owner of `cluster` exist in the hosting
/// cluster; returns the root owner. One GET when both exist.
pub(crate) async fn ensure_root_owner(
    host: &Host,
    cp: &ControlPlane,
    cluster: &str,
    timeout: Duration,
) -> Result<OwnerReference, HostingError> {
    let ns = cp.namespace.as_str();
    let name = names::root_owner_config_map(cluster);
    let cms: Api<ConfigMap> = Api::namespaced(host.client.clone(), ns);
    let server = host.server.clone();
    let found = bounded(timeout, cms.get_opt(&name))
        .await
        .map_err(unavailable(
            &server,
            format!("reading ConfigMap {ns}/{name}"),
        ))?;
    let cm = match found {
        Some(cm) => cm,
        None => {
            let namespaces: Api<Namespace> = Api::all(host.client.clone());
            let namespace = Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match bounded(
                timeout,
                namespaces.create(&PostParams::default(), &namespace),
            )
            .await
            {
                Ok(_) => tracing::info!(
                    namespace = ns,
                    "created the namespace in the hosting cluster"
                ),
                // Exists already (409), or we may not create namespaces but it exists (403 on
                // create, then the ConfigMap's create says whether we may write in it).
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
                Err(e) => {
                    return Err(unavailable(&server, format!("creating Namespace {ns}"))(e));
                }
            }
            let desired = root_owner(cluster, ns, &cp.object_owner.uid);
            match bounded(timeout, cms.create(&PostParams::default(), &desired)).await {
                Ok(cm) => cm,
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    bounded(timeout, cms.get(&name)).await.map_err(unavailable(
                        &server,
                        format!("reading ConfigMap {ns}/{name}"),
                    ))?
                }
                Err(e) => {
                    return Err(unavailable(
                        &server,
                        format!("creating ConfigMap {ns}/{name}"),
                    )(e));
                }
            }
        }
    };
    check_root_owner(&cm, &cp.object_owner.uid)?;
    Ok(root_owner_ref(&cm))
}

/// Deletion of a remote control plane: deletes its root owner in the hosting cluster (with a uid
/// precondition, background propagation: the hosting cluster's garbage collector removes every
/// child it controls). Returns whether there was one to delete.
pub(crate) async fn release(
    host: &Host,
    namespace: &str,
    cluster: &str,
    object_uid: &str,
    timeout: Duration,
) -> Result<bool, HostingError> {
    let name = names::root_owner_config_map(cluster);
    let cms: Api<ConfigMap> = Api::namespaced(host.client.clone(), namespace);
    let server = host.server.as_str();
    let Some(cm) = bounded(timeout, cms.get_opt(&name))
        .await
        .map_err(unavailable(
            server,
            format!("reading ConfigMap {namespace}/{name}"),
        ))?
    else {
        return Ok(false);
    };
    if check_root_owner(&cm, object_uid).is_err() {
        // Another control plane's: not ours to delete.
        return Ok(false);
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: cm.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match bounded(timeout, cms.delete(&name, &params)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(unavailable(
            server,
            format!("deleting ConfigMap {namespace}/{name}"),
        )(e)),
    }
}

/// Empty stores: every read of a hosting cluster goes to its API server.
pub(crate) fn no_stores() -> Stores {
    Stores::empty()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use k0smotron_api::controlplane::v1beta2::RemoteHostClusterSpec;
    use k8s_openapi::ByteString;

    fn spec(r: Option<KubeconfigRef>) -> ClusterSpec {
        ClusterSpec {
            remote_host_cluster: Some(RemoteHostClusterSpec { kubeconfig_ref: r }),
            ..ClusterSpec::default()
        }
    }

    fn reference(ns: &str) -> KubeconfigRef {
        KubeconfigRef {
            name: "hosting".into(),
            namespace: ns.into(),
            key: "value".into(),
        }
    }

    #[test]
    fn only_a_secret_of_the_control_planes_namespace_may_be_named() {
        assert!(
            kubeconfig_ref(&ClusterSpec::default(), "team-a", &FieldPolicy::default())
                .unwrap()
                .is_none()
        );
        let ok = spec(Some(reference("team-a")));
        assert_eq!(
            kubeconfig_ref(&ok, "team-a", &FieldPolicy::default())
                .unwrap()
                .map(|r| r.name.as_str()),
            Some("hosting")
        );
        let other = spec(Some(reference("team-b")));
        let err = kubeconfig_ref(&other, "team-a", &FieldPolicy::default()).unwrap_err();
        assert_eq!(err.reason(), cond::INVALID_SPEC_REASON);
        assert!(err.to_string().contains("\"team-b\""), "{err}");
        let off = FieldPolicy {
            remote_host_cluster: false,
            ..FieldPolicy::default()
        };
        assert_eq!(
            kubeconfig_ref(&ok, "team-a", &off).unwrap_err().reason(),
            cond::FIELD_NOT_ALLOWED_REASON,
            "refused before anything is read"
        );
        let none = spec(None);
        assert_eq!(
            kubeconfig_ref(&none, "team-a", &FieldPolicy::default())
                .unwrap_err()
                .reason(),
            cond::INVALID_SPEC_REASON
        );
    }

    fn secret(key: &str, value: &str) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn a_hosting_kubeconfig_is_checked_like_any_tenant_input() {
        let r = reference("team-a");
        let missing = hosting_kubeconfig(&secret("other", "x"), &r).unwrap_err();
        assert_eq!(missing.reason(), cond::REFERENCE_NOT_FOUND_REASON);
        assert!(missing.to_string().contains("\"value\""), "{missing}");
        let exec = "apiVersion: v1
kind: Config
current-context: c
clusters:
- name: h
  cluster:
    server: https://hosting.example.com:6443
contexts:
- name: c
  context:
    cluster: h
    user: u
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: /bin/sh
";
        let err = hosting_kubeconfig(&secret("value", exec), &r).unwrap_err();
        assert_eq!(err.reason(), cond::KUBECONFIG_REFUSED_REASON);
        assert!(err.to_string().contains("exec"), "{err}");
        assert!(!err.to_string().contains("/bin/sh"), "no value is quoted");
        let garbage = hosting_kubeconfig(&secret("value", "\u{0}not yaml: ["), &r).unwrap_err();
        assert_eq!(garbage.reason(), cond::KUBECONFIG_REFUSED_REASON);
    }

    #[test]
    fn the_root_owner_names_its_control_plane_and_another_ones_is_not_taken_over() {
        let mut cm = root_owner("demo", "team-a", "uid-1");
        assert_eq!(cm.name_any(), "demo-root-owner");
        assert_eq!(cm.data, None);
        assert!(check_root_owner(&cm, "uid-1").is_ok());
        let err = check_root_owner(&cm, "uid-2").unwrap_err();
        assert_eq!(err.reason(), cond::OBJECT_OWNED_BY_OTHER_REASON);
        cm.metadata.annotations = None;
        assert!(
            check_root_owner(&cm, "uid-2").is_ok(),
            "upstream's is adopted"
        );
        cm.metadata.uid = Some("cm-uid".into());
        let r = root_owner_ref(&cm);
        assert_eq!(
            (r.kind.as_str(), r.uid.as_str(), r.controller),
            ("ConfigMap", "cm-uid", Some(true))
        );
    }
}
