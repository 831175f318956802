//! The build step: from everything the reconciler fetched ([`Facts`]) to the complete desired
//! state ([`DesiredState`]) — every Secret, ConfigMap, Service and StatefulSet, the endpoint, and
//! what the status will report.
//!
//! No I/O. It is not deterministic in two places only, both unavoidable: it generates keys for
//! certificate Secrets that do not exist yet, and mints the kubeconfig's client certificate when
//! the existing one must be renewed. Everything the snapshot tests look at is deterministic.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use jiff::Timestamp;
use k0smotron_api::capi::{ApiEndpoint, ClusterNetwork};
use k0smotron_api::controlplane::v1beta2::{
    CertificateRef, CertificateType, ClusterSpec, PersistenceType, StorageType,
};
use k0smotron_api::names;
use k0smotron_api::version::{self, K0sVersion};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::certs::{self, CertError, KeyMaterial};
use crate::claims::{self, ClaimExpansion};
use crate::control_plane::ControlPlane;
use crate::entrypoint;
use crate::etcd;
use crate::hash::{self, HashError};
use crate::k0s_config::{self, K0sConfigError, NetworkDefaults, Owned};
use crate::kubeconfig::{self, KubeconfigError, RegenerateReason};
use crate::labels;
use crate::ownership;
use crate::patches::{self, ComponentPatch, PatchError};
use crate::services::{self, ExternalAddress, ServiceInputs};
use crate::statefulset::{
    self, ControllerInputs, DataVolume, INPUTS_HASH_ANNOTATION, MountedCert, StatefulSetError,
    TEMPLATE_GENERATION,
};
use crate::validate::{self, FieldPolicy, SpecError};

/// Everything the reconciler fetched for one control plane.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The control-plane object, of either kind.
    pub cp: ControlPlane,
    /// Name of the cluster the children are named after: the owning CAPI Cluster's, or the
    /// standalone Cluster's own.
    pub cluster_name: String,
    /// The CAPI Cluster says its control plane is initialized.
    pub cluster_initialized: bool,
    /// `Cluster.spec.clusterNetwork`.
    pub cluster_network: Option<ClusterNetwork>,
    /// The Secrets of [`secret_names`] that exist, by name.
    pub secrets: BTreeMap<String, Secret>,
    /// The live exposure Service of the current type.
    pub exposure_service: Option<Service>,
    /// Nodes (only fetched for NodePort without `spec.externalAddress`).
    pub nodes: Vec<Node>,
    /// The live k0s StatefulSet.
    pub statefulset: Option<StatefulSet>,
    /// The live etcd StatefulSet.
    pub etcd_statefulset: Option<StatefulSet>,
    /// The namespace's volume claims (only fetched when the spec asks for claims).
    pub claims: Vec<PersistentVolumeClaim>,
    /// The current time.
    pub now: Timestamp,
    /// The spec fields this installation allows (the provider's `--allow-*` flags).
    pub policy: FieldPolicy,
}

/// How to bring a StatefulSet to its desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum StatefulSetPlan {
    /// Apply the whole object (new, or its inputs changed).
    Apply(Box<StatefulSet>),
    /// Its claim templates (immutable) changed: delete it leaving the pods (orphan), then create
    /// it again; the pods are adopted by the new StatefulSet.
    Recreate(Box<StatefulSet>),
    /// Keep the pod template as it is; only set the replicas (and record the inputs hash when
    /// adopting a StatefulSet made by upstream k0smotron).
    ScaleOnly {
        /// StatefulSet name.
        name: String,
        /// Replicas.
        replicas: i32,
        /// Inputs hash to record, when adopting.
        record_inputs_hash: Option<String>,
    },
}

/// Everything the apply step writes, and what the status step reports.
#[derive(Debug, Clone)]
pub struct DesiredState {
    /// Controller owner reference every child carries.
    pub owner: OwnerReference,
    /// Certificate Secrets that do not exist yet: created (never overwriting).
    pub create_secrets: Vec<Secret>,
    /// Our own leaf-certificate Secrets due for renewal: replaced.
    pub renew_secrets: Vec<Secret>,
    /// The kubeconfig Secret (applied; `None` until the endpoint is known).
    pub kubeconfig: Option<Secret>,
    /// Why the kubeconfig is (re)generated this time, if it is.
    pub kubeconfig_regenerated: Option<RegenerateReason>,
    /// ConfigMaps.
    pub config_maps: Vec<ConfigMap>,
    /// Services.
    pub services: Vec<Service>,
    /// Exposure Services of other types, deleted if we own them.
    pub obsolete_services: Vec<String>,
    /// The k0s StatefulSet (`None` while waiting).
    pub statefulset: Option<StatefulSetPlan>,
    /// The etcd StatefulSet (etcd storage only).
    pub etcd_statefulset: Option<StatefulSetPlan>,
    /// Existing volume claims of our StatefulSets to grow to their template's size.
    pub claim_expansions: Vec<ClaimExpansion>,
    /// CronJobs (etcd defragmentation).
    pub cron_jobs: Vec<CronJob>,
    /// CronJobs deleted if we own them (defragmentation disabled).
    pub obsolete_cron_jobs: Vec<String>,
    /// The endpoint; `None` while unknown.
    pub endpoint: Option<ApiEndpoint>,
    /// Whether the endpoint is ours to publish in `spec.controlPlaneEndpoint` (the user did not
    /// set one).
    pub publish_endpoint: bool,
    /// The external address in use.
    pub external_address: Option<String>,
    /// The certificates in use.
    pub certificate_refs: Vec<CertificateRef>,
    /// Why the StatefulSet is not built yet.
    pub waiting: Option<String>,
    /// A refused version change (the old version keeps running).
    pub version_blocked: Option<String>,
    /// User k0s config values the provider overrode.
    pub overridden: Vec<String>,
    /// Desired image tag of the k0s controller.
    pub desired_image_tag: String,
    /// Selector of the k0s pods.
    pub selector: BTreeMap<String, String>,
}

/// Why the build failed; each maps to a condition reason.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec is refused.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The k0s config cannot be merged.
    #[error("spec.k0sConfig: {0}")]
    K0sConfig(#[from] K0sConfigError),
    /// A referenced Secret does not exist or lacks keys.
    #[error("{0}")]
    ReferenceNotFound(String),
    /// A referenced Secret holds unusable material.
    #[error("{0}")]
    InvalidSecret(String),
    /// A patch cannot be applied.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// Certificate generation failed.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// Kubeconfig generation failed.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// A CA Secret of an initialized control plane is missing: a new CA would lock out every
    /// node and client that trusts the old one, so none is generated.
    #[error(
        "Secret {secret} ({what}) is missing and the control plane is initialized: a new CA would lock out every node and client that trusts the old one, so none is generated. Restore the Secret from a backup (same name and namespace, keys tls.crt and tls.key), or delete the K0smotronControlPlane to start over with new certificates"
    )]
    CaMissing {
        /// The Secret's name.
        secret: String,
        /// What it holds.
        what: &'static str,
    },
    /// The StatefulSet cannot be built (e.g. an invalid mount).
    #[error(transparent)]
    StatefulSet(#[from] StatefulSetError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Serialising a generated object failed (a bug).
    #[error("serialising the generated {what}: {source}")]
    Serialize {
        /// What.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The k0s config YAML could not be written (a bug).
    #[error("writing the k0s config YAML: {0}")]
    Yaml(#[source] serde_saphyr::SerializeError),
    /// The control plane has no name, namespace or uid.
    #[error("the K0smotronControlPlane has no {0}")]
    Incomplete(&'static str),
}

impl BuildError {
    /// Condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Spec(SpecError::Unsupported(_)) => crate::status::UNSUPPORTED_FEATURE_REASON,
            Self::Spec(SpecError::NotAllowed { .. }) => crate::status::FIELD_NOT_ALLOWED_REASON,
            Self::Spec(SpecError::Invalid(_)) | Self::K0sConfig(_) | Self::Patch(_) => {
                k0smotron_api::conditions::INVALID_SPEC_REASON
            }
            Self::StatefulSet(StatefulSetError::InvalidMount { .. }) => {
                k0smotron_api::conditions::INVALID_SPEC_REASON
            }
            Self::ReferenceNotFound(_) => k0smotron_api::conditions::REFERENCE_NOT_FOUND_REASON,
            Self::CaMissing { .. } => k0smotron_api::conditions::CA_MISSING_REASON,
            Self::InvalidSecret(_) => crate::status::INVALID_SECRET_REASON,
            Self::Certificate(_) | Self::Kubeconfig(_) => {
                k0smotron_api::conditions::CERTIFICATES_NOT_AVAILABLE_REASON
            }
            _ => k0smotron_api::conditions::INTERNAL_ERROR_REASON,
        }
    }
}

const CA_PURPOSES: [CertificateType; 4] = [
    CertificateType::Ca,
    CertificateType::Proxy,
    CertificateType::Sa,
    CertificateType::Etcd,
];
const ETCD_LEAF_PURPOSES: [CertificateType; 3] = [
    CertificateType::EtcdServer,
    CertificateType::EtcdPeer,
    CertificateType::ApiserverEtcdClient,
];

/// Default Secret name of a certificate purpose (CAPI's `<cluster>-<purpose>`).
pub fn default_secret_name(cluster: &str, purpose: CertificateType) -> String {
    match purpose {
        CertificateType::Ca => names::ca_secret(cluster),
        CertificateType::Proxy => names::proxy_secret(cluster),
        CertificateType::Sa => names::sa_secret(cluster),
        CertificateType::Etcd => names::etcd_ca_secret(cluster),
        CertificateType::EtcdServer => etcd::server_secret(cluster),
        CertificateType::EtcdPeer => etcd::peer_secret(cluster),
        CertificateType::ApiserverEtcdClient => etcd::apiserver_client_secret(cluster),
    }
}

fn user_ref(spec: &ClusterSpec, purpose: CertificateType) -> Option<String> {
    spec.certificate_refs
        .iter()
        .find(|r| r.type_ == purpose)
        .and_then(|r| r.name.clone())
        .filter(|n| !n.is_empty())
}

fn secret_name_for(spec: &ClusterSpec, cluster: &str, purpose: CertificateType) -> String {
    user_ref(spec, purpose).unwrap_or_else(|| default_secret_name(cluster, purpose))
}

fn purposes(spec: &ClusterSpec) -> Vec<CertificateType> {
    let mut p = CA_PURPOSES.to_vec();
    if spec.storage.type_ == StorageType::Etcd {
        p.extend(ETCD_LEAF_PURPOSES);
    }
    p
}

/// Whether the control plane has the etcd defragmentation CronJob (and so its client certificate).
fn defrag_enabled(spec: &ClusterSpec) -> bool {
    spec.storage.type_ == StorageType::Etcd
        && spec
            .storage
            .etcd
            .defrag_job
            .as_ref()
            .is_some_and(|j| j.enabled)
}

/// Names of every Secret the build may read: certificates, the kubeconfig, the kine DSN.
pub fn secret_names(spec: &ClusterSpec, cluster: &str) -> Vec<String> {
    let mut out: Vec<String> = purposes(spec)
        .into_iter()
        .map(|p| secret_name_for(spec, cluster, p))
        .collect();
    if defrag_enabled(spec) {
        out.push(etcd::defrag_client_secret(cluster));
    }
    out.push(names::kubeconfig_secret(cluster));
    if let Some(s) = kine_secret(spec) {
        out.push(s);
    }
    out.sort();
    out.dedup();
    out
}

fn kine_secret(spec: &ClusterSpec) -> Option<String> {
    if spec.storage.type_ != StorageType::Kine {
        return None;
    }
    spec.storage
        .kine
        .as_ref()
        .and_then(|k| k.data_source_secret_name.clone())
        .filter(|s| !s.is_empty())
}

fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .as_ref()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default();
    if let Some(strings) = &secret.string_data {
        for (k, v) in strings {
            data.insert(k.clone(), v.clone().into_bytes());
        }
    }
    data
}

/// Whether `meta` is controlled by the owner with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.controller == Some(true) && r.uid == uid)
    })
}

fn capi_secret(
    name: &str,
    namespace: &str,
    cluster: &str,
    data: BTreeMap<String, Vec<u8>>,
    owner: &OwnerReference,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels::capi_secret(cluster)),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        type_: Some(names::CAPI_SECRET_TYPE.to_string()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Default::default()
    }
}

/// Certificate material in use, and the Secrets to write.
struct CertPlan {
    material: BTreeMap<CertificateTypeKey, KeyMaterial>,
    refs: Vec<CertificateRef>,
    create: Vec<Secret>,
    renew: Vec<Secret>,
}

/// `CertificateType` has no `Ord`; key maps by its position.
type CertificateTypeKey = u8;

fn key(p: CertificateType) -> CertificateTypeKey {
    match p {
        CertificateType::Ca => 0,
        CertificateType::Proxy => 1,
        CertificateType::Sa => 2,
        CertificateType::Etcd => 3,
        CertificateType::EtcdServer => 4,
        CertificateType::EtcdPeer => 5,
        CertificateType::ApiserverEtcdClient => 6,
    }
}

fn ca_description(p: CertificateType) -> &'static str {
    match p {
        CertificateType::Proxy => "the front-proxy CA",
        CertificateType::Sa => "the service-account signing key",
        CertificateType::Etcd => "the etcd CA",
        _ => "the cluster CA",
    }
}

/// Whether the control plane has been initialized (its status, or the Cluster's, says so): its
/// CAs are then in use and must never be replaced by new ones.
fn initialized(facts: &Facts) -> bool {
    facts.cluster_initialized || facts.cp.initialized
}

fn ca_common_name(p: CertificateType) -> &'static str {
    match p {
        CertificateType::Proxy => "front-proxy-ca",
        CertificateType::Etcd => "etcd-ca",
        _ => "kubernetes",
    }
}

/// Look up or generate every certificate: an existing Secret is used as it is (only read); a
/// missing default-named one is generated, except a CA (or the service-account key) of an
/// initialized control plane; a missing user-named one is an error. Our own etcd leaf Secrets
/// are renewed at half-life or when the etcd CA changed.
fn plan_certificates(
    facts: &Facts,
    cluster: &str,
    namespace: &str,
    uid: &str,
    owner: &OwnerReference,
) -> Result<CertPlan, BuildError> {
    let spec = &facts.cp.spec;
    let mut plan = CertPlan {
        material: BTreeMap::new(),
        refs: Vec::new(),
        create: Vec::new(),
        renew: Vec::new(),
    };
    for purpose in purposes(spec) {
        let name = secret_name_for(spec, cluster, purpose);
        let user_named = user_ref(spec, purpose).is_some();
        plan.refs.push(CertificateRef {
            type_: purpose,
            name: Some(name.clone()),
        });
        let existing = facts.secrets.get(&name);
        let is_leaf = ETCD_LEAF_PURPOSES.contains(&purpose);
        if let Some(secret) = existing {
            let material = existing_material(secret, &name)?;
            if matches!(purpose, CertificateType::Ca | CertificateType::Etcd) {
                certs::check_key(&material.key_pem, &name)
                    .map_err(|e| BuildError::InvalidSecret(e.to_string()))?;
                certs::cert_info(&material.cert_pem, &name)
                    .map_err(|e| BuildError::InvalidSecret(e.to_string()))?;
            }
            let renew = is_leaf && leaf_due(&plan, secret, &material, uid, facts.now);
            if renew {
                let fresh = sign_etcd_leaf(&plan, cluster, namespace, purpose, facts.now)?;
                plan.renew.push(capi_secret(
                    &name,
                    namespace,
                    cluster,
                    fresh.to_secret_data(),
                    owner,
                ));
                plan.material.insert(key(purpose), fresh);
            } else {
                plan.material.insert(key(purpose), material);
            }
            continue;
        }
        if user_named {
            return Err(BuildError::ReferenceNotFound(format!(
                "Secret {name} (spec.certificateRefs, type {}) does not exist",
                serde_json::to_value(purpose)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )));
        }
        if !is_leaf && initialized(facts) {
            return Err(BuildError::CaMissing {
                secret: name,
                what: ca_description(purpose),
            });
        }
        let fresh = if is_leaf {
            sign_etcd_leaf(&plan, cluster, namespace, purpose, facts.now)?
        } else if purpose == CertificateType::Sa {
            certs::generate_sa_key_pair()?
        } else {
            certs::generate_ca(ca_common_name(purpose), facts.now)?
        };
        plan.create.push(capi_secret(
            &name,
            namespace,
            cluster,
            fresh.to_secret_data(),
            owner,
        ));
        plan.material.insert(key(purpose), fresh);
    }
    if defrag_enabled(spec) {
        plan_defrag_client(&mut plan, facts, cluster, namespace, uid, owner)?;
    }
    Ok(plan)
}

/// The defragmentation job's client certificate `<cluster>-etcd-defrag-client`, handled like our
/// other etcd leaves: generated when missing, renewed when ours and due, otherwise only read. It
/// is not a `spec.certificateRefs` type (upstream has none), so it is not in `certificateRefs`.
fn plan_defrag_client(
    plan: &mut CertPlan,
    facts: &Facts,
    cluster: &str,
    namespace: &str,
    uid: &str,
    owner: &OwnerReference,
) -> Result<(), BuildError> {
    let name = etcd::defrag_client_secret(cluster);
    let existing = facts.secrets.get(&name);
    if let Some(secret) = existing {
        let material = existing_material(secret, &name)?;
        if !leaf_due(plan, secret, &material, uid, facts.now) {
            return Ok(());
        }
    }
    let fresh = sign_with_etcd_ca(plan, cluster, &etcd::defrag_client_spec(), facts.now)?;
    let secret = capi_secret(&name, namespace, cluster, fresh.to_secret_data(), owner);
    if existing.is_some() {
        plan.renew.push(secret);
    } else {
        plan.create.push(secret);
    }
    Ok(())
}

/// The `tls.crt`/`tls.key` pair of an existing certificate Secret.
fn existing_material(secret: &Secret, name: &str) -> Result<KeyMaterial, BuildError> {
    KeyMaterial::from_secret_data(&secret_data(secret)).ok_or_else(|| {
        BuildError::InvalidSecret(format!(
            "Secret {name} must hold tls.crt and tls.key (CAPI certificate format)"
        ))
    })
}

/// Whether an existing etcd leaf certificate is ours and due for renewal against the etcd CA in
/// use (a user-provided one is never touched).
fn leaf_due(
    plan: &CertPlan,
    secret: &Secret,
    material: &KeyMaterial,
    uid: &str,
    now: Timestamp,
) -> bool {
    controlled_by(&secret.metadata, uid)
        && plan
            .material
            .get(&key(CertificateType::Etcd))
            .is_some_and(|ca| certs::needs_renewal(&material.cert_pem, &ca.cert_pem, now))
}

fn sign_etcd_leaf(
    plan: &CertPlan,
    cluster: &str,
    namespace: &str,
    purpose: CertificateType,
    now: Timestamp,
) -> Result<KeyMaterial, BuildError> {
    let name = default_secret_name(cluster, purpose);
    let spec = etcd::leaf_specs(cluster, namespace)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .ok_or_else(|| BuildError::InvalidSecret(format!("no certificate request for {name}")))?;
    sign_with_etcd_ca(plan, cluster, &spec, now)
}

fn sign_with_etcd_ca(
    plan: &CertPlan,
    cluster: &str,
    spec: &certs::LeafSpec,
    now: Timestamp,
) -> Result<KeyMaterial, BuildError> {
    let ca = plan
        .material
        .get(&key(CertificateType::Etcd))
        .ok_or_else(|| BuildError::InvalidSecret("the etcd CA is not available".into()))?;
    Ok(certs::sign_leaf(
        ca,
        &names::etcd_ca_secret(cluster),
        spec,
        now,
    )?)
}

fn network_defaults(network: Option<&ClusterNetwork>) -> NetworkDefaults {
    let join = |r: Option<&k0smotron_api::capi::NetworkRanges>| {
        r.map(|r| r.cidr_blocks.join(",")).filter(|s| !s.is_empty())
    };
    NetworkDefaults {
        pod_cidr: network.and_then(|n| join(n.pods.as_ref())),
        service_cidr: network.and_then(|n| join(n.services.as_ref())),
        cluster_domain: network
            .and_then(|n| n.service_domain.clone())
            .filter(|s| !s.is_empty()),
    }
}

/// `https://host:port`, with IPv6 addresses in brackets.
pub fn server_url(host: &str, port: i32) -> String {
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

fn config_map(
    name: String,
    namespace: &str,
    cluster: &str,
    component: &str,
    data: BTreeMap<String, String>,
    owner: &OwnerReference,
) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: Some(labels::with_component(
                labels::base(cluster, names::COMPONENT_CLUSTER),
                component,
            )),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

const TELEMETRY_MANIFEST: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: k0s-telemetry\n  namespace: kube-system\ndata:\n  provider: \"k0smotron\"\n";

fn patch_object<T: Serialize + DeserializeOwned>(
    obj: T,
    patches: &[ComponentPatch],
    what: &str,
) -> Result<T, BuildError> {
    if patches.is_empty() {
        return Ok(obj);
    }
    let mut value = serde_json::to_value(&obj).map_err(|source| BuildError::Serialize {
        what: what.to_string(),
        source,
    })?;
    patches::apply_all(&mut value, patches)?;
    serde_json::from_value(value).map_err(|e| {
        BuildError::Patch(PatchError::Json {
            index: 0,
            kind: what.to_string(),
            component: String::new(),
            reason: format!("the patched object is not a valid {what}: {e}"),
        })
    })
}

/// `kind`/`apiVersion` for patch matching (the typed objects do not serialise them).
fn with_type_meta<T: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned>(
    obj: T,
    patches: &[ComponentPatch],
) -> Result<T, BuildError> {
    let kind = T::kind(&()).into_owned();
    let relevant: Vec<ComponentPatch> =
        patches.iter().filter(|p| p.kind == kind).cloned().collect();
    if relevant.is_empty() {
        return Ok(obj);
    }
    let mut value = serde_json::to_value(&obj).map_err(|source| BuildError::Serialize {
        what: kind.clone(),
        source,
    })?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), T::api_version(&()).into_owned().into());
        map.insert("kind".into(), kind.clone().into());
    }
    let patched: serde_json::Value = patch_object(value, &relevant, &kind)?;
    serde_json::from_value(patched).map_err(|e| {
        BuildError::Patch(PatchError::Json {
            index: 0,
            kind: kind.clone(),
            component: String::new(),
            reason: format!("the patched object is not a valid {kind}: {e}"),
        })
    })
}

fn image_tag_of(sts: &StatefulSet) -> Option<String> {
    let image = statefulset::controller_image(sts.spec.template.spec.as_ref()?)?;
    crate::status::image_tag(image).map(str::to_string)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn claims_signature(claims: Option<&Vec<PersistentVolumeClaim>>) -> Vec<(Option<String>, String)> {
    claims
        .map(|c| {
            c.iter()
                .map(|claim| {
                    let spec = claim.spec.as_ref().map(|s| {
                        serde_json::json!({
                            "accessModes": s.access_modes,
                            "storageClassName": s.storage_class_name,
                            "requests": s.resources.as_ref().and_then(|r| r.requests.clone()),
                        })
                        .to_string()
                    });
                    (claim.metadata.name.clone(), spec.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Applies the StatefulSet patches of `component` to a built StatefulSet and stamps both hash
/// annotations. The inputs hash covers `inputs` and those patches: patches change the template
/// too, so they are template inputs. Returns the StatefulSet and its inputs hash.
fn finish_statefulset<I: Serialize>(
    sts: StatefulSet,
    inputs: &I,
    patches: &[ComponentPatch],
    component: &str,
) -> Result<(StatefulSet, String), BuildError> {
    let relevant: Vec<ComponentPatch> = patches
        .iter()
        .filter(|p| p.kind == "StatefulSet" && p.component == component)
        .cloned()
        .collect();
    let inputs_hash = hash::stable_hash("statefulset inputs", &(inputs, &relevant))?;
    let mut sts = with_type_meta(sts, &relevant)?;
    let template_hash = hash::stable_hash("pod template", &sts.spec.template)?;
    let annotations = sts.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(
        statefulset::STATEFULSET_HASH_ANNOTATION.into(),
        template_hash,
    );
    annotations.insert(INPUTS_HASH_ANNOTATION.into(), inputs_hash.clone());
    Ok((sts, inputs_hash))
}

/// [`validate::check_patched_pod`] for a generated (and patched) StatefulSet.
fn check_patched_statefulset(sts: &StatefulSet, policy: &FieldPolicy) -> Result<(), SpecError> {
    let name = sts.metadata.name.as_deref().unwrap_or_default();
    validate::check_patched_pod(
        sts.spec.template.spec.as_ref(),
        &format!("StatefulSet {name}"),
        policy,
    )
}

/// Decides how to move `live` to `desired` (see [`StatefulSetPlan`]).
fn plan_statefulset(
    desired: StatefulSet,
    live: Option<&StatefulSet>,
    inputs_hash: &str,
    keep_template: bool,
) -> StatefulSetPlan {
    let Some(live) = live else {
        return StatefulSetPlan::Apply(Box::new(desired));
    };
    let name = desired.metadata.name.clone().unwrap_or_default();
    let replicas = desired.spec.replicas.unwrap_or(1);
    let live_hash = annotation(&live.metadata, INPUTS_HASH_ANNOTATION);
    if keep_template {
        return StatefulSetPlan::ScaleOnly {
            name,
            replicas,
            record_inputs_hash: None,
        };
    }
    match live_hash {
        // Same inputs, but another writer changed a field of our template: write it again
        // (the same template, so no new revision and no roll when nothing else moved).
        Some(h) if h == inputs_hash && ownership::template_drifted(&desired, live) => {
            StatefulSetPlan::Apply(Box::new(desired))
        }
        Some(h) if h == inputs_hash => StatefulSetPlan::ScaleOnly {
            name,
            replicas,
            record_inputs_hash: None,
        },
        // Made by someone else (upstream k0smotron): adopt it as it is. Its pods keep running;
        // our template replaces theirs only when the spec changes.
        None => StatefulSetPlan::ScaleOnly {
            name,
            replicas,
            record_inputs_hash: Some(inputs_hash.to_string()),
        },
        Some(_) => {
            if claims_signature(live.spec.volume_claim_templates.as_ref())
                != claims_signature(desired.spec.volume_claim_templates.as_ref())
            {
                StatefulSetPlan::Recreate(Box::new(desired))
            } else {
                StatefulSetPlan::Apply(Box::new(desired))
            }
        }
    }
}

fn replicas_of(sts: &StatefulSet) -> (i32, i32) {
    (
        sts.spec.replicas.unwrap_or(1),
        sts.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
    )
}

fn dns_check_image_of(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .template
        .spec
        .as_ref()?
        .init_containers
        .as_ref()?
        .iter()
        .find(|c| c.name == "dns-check")?
        .image
        .clone()
}

fn bootstrap_replicas_of(sts: &StatefulSet) -> Option<i32> {
    let env = sts
        .spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "etcd")?
        .env
        .as_ref()?;
    let value = env
        .iter()
        .find(|e| e.name == "ETCD_INITIAL_CLUSTER")?
        .value
        .as_ref()?;
    i32::try_from(value.split(',').count()).ok()
}

/// Builds the desired state.
pub fn build(facts: &Facts) -> Result<DesiredState, BuildError> {
    let spec = &facts.cp.spec;
    validate::validate(spec, &facts.policy)?;
    let namespace = facts.cp.namespace.clone();
    let uid = facts.cp.uid.clone();
    let owner = facts.cp.owner.clone();
    let cluster = facts.cluster_name.as_str();
    let comp_patches: Vec<ComponentPatch> = spec
        .patches
        .iter()
        .map(|p| ComponentPatch {
            kind: p.target.kind.clone(),
            component: p.target.component.clone(),
            patch_type: serde_json::to_value(p.patch.type_)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            content: p.patch.content.clone(),
        })
        .collect();

    // Certificates first: nothing else is useful without them.
    let certs = plan_certificates(facts, cluster, &namespace, &uid, &owner)?;
    let ca = certs
        .material
        .get(&key(CertificateType::Ca))
        .cloned()
        .ok_or_else(|| BuildError::InvalidSecret("the cluster CA is not available".into()))?;

    // The kine DSN Secret must exist with its key before pods can start.
    if let Some(name) = kine_secret(spec) {
        let secret = facts.secrets.get(&name).ok_or_else(|| {
            BuildError::ReferenceNotFound(format!(
                "Secret {name} (spec.storage.kine.dataSourceSecretName) does not exist"
            ))
        })?;
        if !secret_data(secret).contains_key(names::KINE_DATASOURCE_URL_KEY) {
            return Err(BuildError::ReferenceNotFound(format!(
                "Secret {name} has no key {}",
                names::KINE_DATASOURCE_URL_KEY
            )));
        }
    }

    // Exposure and endpoint.
    let svc_inputs = ServiceInputs {
        cluster: cluster.to_string(),
        namespace: namespace.clone(),
        type_: spec.service.type_,
        api_port: spec.service.api_port,
        konnectivity_port: spec.service.konnectivity_port,
    };
    let svc_name = services::service_name(cluster, spec.service.type_);
    let exposure = with_type_meta(services::service(&svc_inputs, &owner), &comp_patches)?;
    let previous_address = facts.cp.previous_address.as_deref();
    let address = services::external_address(
        spec.external_address.as_deref(),
        spec.service.type_,
        facts.exposure_service.as_ref(),
        &facts.nodes,
        previous_address,
    );
    let user_endpoint = facts.cp.user_endpoint.clone();
    let (external_address, mut waiting) = match &address {
        ExternalAddress::Known(a, _) => (Some(a.clone()), None),
        ExternalAddress::NotApplicable => (None, None),
        ExternalAddress::Pending(why) => (None, Some(why.clone())),
    };
    let endpoint = match (&user_endpoint, &address) {
        (Some(e), _) => Some(e.clone()),
        (None, ExternalAddress::Known(a, _)) => Some(ApiEndpoint {
            host: Some(a.clone()),
            port: Some(spec.service.api_port),
        }),
        // Deviation: upstream waits forever here. The Service's DNS name is reachable from the
        // management cluster, where CAPI and this provider run (docs/deviations.md).
        (None, ExternalAddress::NotApplicable) => Some(ApiEndpoint {
            host: Some(services::service_dns(&svc_name, &namespace)),
            port: Some(spec.service.api_port),
        }),
        (None, ExternalAddress::Pending(_)) => None,
    };
    let cluster_ips = facts
        .exposure_service
        .as_ref()
        .map(services::cluster_ips)
        .unwrap_or_default();
    if waiting.is_none() && cluster_ips.is_empty() {
        // The Service's cluster IP goes into the API server certificate; building the config
        // without it would roll the pods right after they start.
        waiting = Some(format!(
            "waiting for Service {svc_name} to get a cluster IP"
        ));
    }

    // Kubeconfig: needs only the CA and the endpoint.
    let kubeconfig_name = names::kubeconfig_secret(cluster);
    let mut kubeconfig = None;
    let mut kubeconfig_regenerated = None;
    if let Some(ep) = &endpoint {
        let server = server_url(
            ep.host.as_deref().unwrap_or_default(),
            ep.port.unwrap_or(spec.service.api_port),
        );
        let existing = facts
            .secrets
            .get(&kubeconfig_name)
            .and_then(|s| secret_data(s).remove(names::SECRET_VALUE_KEY))
            .and_then(|v| String::from_utf8(v).ok());
        let reason = kubeconfig::regenerate_reason(
            existing.as_deref(),
            cluster,
            &server,
            &ca.cert_pem,
            facts.now,
        );
        let value = match (reason, existing) {
            (None, Some(v)) => v,
            _ => kubeconfig::generate(cluster, &server, &ca, facts.now)?,
        };
        kubeconfig_regenerated = reason;
        let meta = spec.kubeconfig_secret_metadata.clone().unwrap_or_default();
        let mut secret_labels = labels::with_component(
            labels::base(cluster, names::COMPONENT_CLUSTER),
            names::component::KUBECONFIG,
        );
        secret_labels.extend(meta.labels);
        // The CAPI labels must stay whatever the user adds.
        secret_labels.extend(labels::capi_secret(cluster));
        kubeconfig = Some(Secret {
            metadata: ObjectMeta {
                name: Some(kubeconfig_name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(secret_labels),
                annotations: (!meta.annotations.is_empty()).then_some(meta.annotations),
                owner_references: Some(vec![owner.clone()]),
                ..Default::default()
            },
            type_: Some(names::CAPI_SECRET_TYPE.to_string()),
            data: Some(BTreeMap::from([(
                names::SECRET_VALUE_KEY.to_string(),
                ByteString(value.into_bytes()),
            )])),
            ..Default::default()
        });
    }

    // Storage.
    let storage = match spec.storage.type_ {
        StorageType::Etcd => k0s_config::etcd_storage(&names::etcd_name(cluster), cluster),
        _ => {
            let inline = spec
                .storage
                .kine
                .as_ref()
                .and_then(|k| k.data_source_url.as_deref())
                .filter(|s| !s.is_empty());
            k0s_config::kine_storage(inline)
        }
    };

    // k0s config.
    let base = k0s_config::with_network_defaults(
        spec.k0s_config.as_ref(),
        &network_defaults(facts.cluster_network.as_ref()),
    )?;
    let mut sans = services::service_sans(&svc_name, &namespace, &cluster_ips);
    if let Some(host) = user_endpoint.as_ref().and_then(|e| e.host.clone()) {
        sans.push(host);
    }
    let merged = k0s_config::merge(
        base,
        &Owned {
            api_port: spec.service.api_port,
            konnectivity_port: spec.service.konnectivity_port,
            external_address: external_address.clone(),
            sans,
            storage,
        },
    )?;
    let yaml = k0s_config::to_yaml(&merged.config).map_err(BuildError::Yaml)?;
    let script = entrypoint::script(&spec.control_plane_flags);

    let mut config_maps = vec![
        config_map(
            names::config_map_name(cluster),
            &namespace,
            cluster,
            names::component::CLUSTER_CONFIG,
            BTreeMap::from([(entrypoint::K0S_YAML_ENV.to_string(), yaml)]),
            &owner,
        ),
        config_map(
            names::entrypoint_config_map_name(cluster),
            &namespace,
            cluster,
            names::component::ENTRYPOINT,
            BTreeMap::from([(entrypoint::SCRIPT_KEY.to_string(), script)]),
            &owner,
        ),
        config_map(
            names::telemetry_config_map_name(cluster),
            &namespace,
            cluster,
            names::component::TELEMETRY,
            BTreeMap::from([("configmap.yaml".to_string(), TELEMETRY_MANIFEST.to_string())]),
            &owner,
        ),
    ];
    let endpoint_manifest = match (&user_endpoint, &external_address) {
        (Some(e), _) => e
            .host
            .clone()
            .map(|h| (h, e.port.unwrap_or(spec.service.api_port))),
        (None, Some(a)) => Some((a.clone(), spec.service.api_port)),
        _ => None,
    };
    if let Some((host, port)) = &endpoint_manifest {
        config_maps.push(config_map(
            names::endpoint_config_map_name(cluster),
            &namespace,
            cluster,
            names::component::CONTROL_PLANE,
            services::endpoint_manifest(host, *port).map_err(BuildError::Yaml)?,
            &owner,
        ));
    }
    let config_maps = config_maps
        .into_iter()
        .map(|cm| with_type_meta(cm, &comp_patches))
        .collect::<Result<Vec<_>, _>>()?;
    // What the pods start with: the (patched) config and entrypoint.
    let config_checksum = hash::stable_hash(
        "config",
        &config_maps
            .iter()
            .take(2)
            .map(|cm| &cm.data)
            .collect::<Vec<_>>(),
    )?;

    let k0s_version =
        K0sVersion::parse(&spec.version).map_err(|e| SpecError::Invalid(e.to_string()))?;
    let desired_tag = k0s_version.image_tag();
    let image = format!("{}:{}", spec.image, desired_tag);

    // A version change may not skip a minor release; the old version keeps running.
    let version_blocked = facts
        .statefulset
        .as_ref()
        .and_then(image_tag_of)
        .and_then(
            |running| match version::check_upgrade(&running, &spec.version) {
                Ok(()) => None,
                Err(e) => Some(format!("{e}; still running {running}")),
            },
        );

    let data = match spec.persistence.type_ {
        PersistenceType::EmptyDir => DataVolume::EmptyDir,
        PersistenceType::HostPath => {
            DataVolume::HostPath(spec.persistence.host_path.clone().unwrap_or_default())
        }
        PersistenceType::Pvc => {
            let template = spec
                .persistence
                .persistent_volume_claim
                .clone()
                .unwrap_or_default();
            let meta = template.metadata.unwrap_or_default();
            DataVolume::Pvc {
                claim: Box::new(PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some(
                            meta.name
                                .filter(|n| !n.is_empty())
                                .unwrap_or_else(|| names::kmc_name(cluster)),
                        ),
                        labels: (!meta.labels.is_empty()).then_some(meta.labels),
                        annotations: (!meta.annotations.is_empty()).then_some(meta.annotations),
                        finalizers: (!meta.finalizers.is_empty()).then_some(meta.finalizers),
                        ..Default::default()
                    },
                    spec: template.spec,
                    status: None,
                }),
                auto_delete: spec.persistence.auto_delete_pvcs,
            }
        }
    };

    // The etcd server and peer certificates go to the etcd pods only; the etcd CA's certificate
    // to the k0s pods only with etcd storage (with kine, k0s never reads it).
    let certificates: Vec<MountedCert> = certs
        .refs
        .iter()
        .filter(|r| match r.type_ {
            CertificateType::EtcdPeer | CertificateType::EtcdServer => false,
            CertificateType::Etcd => spec.storage.type_ == StorageType::Etcd,
            _ => true,
        })
        .map(|r| MountedCert {
            purpose: r.type_,
            secret: r.name.clone().unwrap_or_default(),
        })
        .collect();
    let inputs = ControllerInputs {
        generation: TEMPLATE_GENERATION,
        cluster: cluster.to_string(),
        namespace: namespace.clone(),
        image: image.clone(),
        service_account: spec.service_account.clone().filter(|s| !s.is_empty()),
        api_port: spec.service.api_port,
        konnectivity_port: spec.service.konnectivity_port,
        kine_secret: kine_secret(spec),
        certificates,
        data,
        manifests: spec.manifests.clone(),
        mounts: spec.mounts.clone(),
        endpoint_manifest: endpoint_manifest.is_some(),
        topology_spread_constraints: spec.topology_spread_constraints.clone(),
        resources: spec.resources.clone(),
        config_checksum,
    };
    let mut claim_expansions = Vec::new();
    // Built (and checked) even while waiting, so a refused patch stops the reconcile before the
    // Services and ConfigMaps are written, not only once the StatefulSet could be.
    let (sts, inputs_hash) = finish_statefulset(
        statefulset::statefulset(&inputs, spec.replicas, &owner)?,
        &inputs,
        &comp_patches,
        names::component::CONTROL_PLANE,
    )?;
    check_patched_statefulset(&sts, &facts.policy)?;
    let statefulset = if waiting.is_some() {
        None
    } else {
        claim_expansions.extend(claims::expansions(&sts, &facts.claims));
        Some(plan_statefulset(
            sts,
            facts.statefulset.as_ref(),
            &inputs_hash,
            version_blocked.is_some(),
        ))
    };

    let mut svc_list = vec![exposure];
    let mut etcd_statefulset = None;
    let mut cron_jobs = Vec::new();
    let mut obsolete_cron_jobs = Vec::new();
    if spec.storage.type_ == StorageType::Etcd {
        svc_list.push(with_type_meta(
            etcd::service(cluster, &namespace, &owner),
            &comp_patches,
        )?);
        let live = facts.etcd_statefulset.as_ref();
        let etcd_inputs = etcd::EtcdInputs::new(
            cluster,
            &namespace,
            &spec.storage.etcd,
            live.and_then(dns_check_image_of)
                .unwrap_or_else(|| image.clone()),
            spec.service_account.clone().filter(|s| !s.is_empty()),
            spec.topology_spread_constraints.clone(),
            live.and_then(bootstrap_replicas_of)
                .unwrap_or_else(|| etcd::target_replicas(spec.replicas)),
        );
        let replicas = etcd::next_replicas(spec.replicas, live.map(replicas_of));
        let (sts, etcd_hash) = finish_statefulset(
            etcd::statefulset(&etcd_inputs, replicas, &owner),
            &etcd_inputs,
            &comp_patches,
            names::component::ETCD,
        )?;
        check_patched_statefulset(&sts, &facts.policy)?;
        claim_expansions.extend(claims::expansions(&sts, &facts.claims));
        etcd_statefulset = Some(plan_statefulset(sts, live, &etcd_hash, false));
        match etcd::defrag_cronjob(cluster, &namespace, &spec.storage.etcd, &owner) {
            Some(job) => {
                let job = with_type_meta(job, &comp_patches)?;
                let pod = job
                    .spec
                    .job_template
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref());
                let name = job.metadata.name.as_deref().unwrap_or_default();
                validate::check_patched_pod(pod, &format!("CronJob {name}"), &facts.policy)?;
                cron_jobs.push(job);
            }
            None => obsolete_cron_jobs.push(names::etcd_defrag_name(cluster)),
        }
    }

    let publish_endpoint = user_endpoint.is_none();
    Ok(DesiredState {
        owner,
        create_secrets: certs.create,
        renew_secrets: certs.renew,
        kubeconfig,
        kubeconfig_regenerated,
        config_maps,
        services: svc_list,
        obsolete_services: services::other_service_names(cluster, spec.service.type_),
        statefulset,
        etcd_statefulset,
        claim_expansions,
        cron_jobs,
        obsolete_cron_jobs,
        endpoint,
        publish_endpoint,
        external_address,
        certificate_refs: certs.refs,
        waiting,
        version_blocked,
        overridden: merged.overridden,
        desired_image_tag: desired_tag,
        selector: labels::control_plane_selector(cluster),
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
#[path = "build_tests.rs"]
mod tests;
