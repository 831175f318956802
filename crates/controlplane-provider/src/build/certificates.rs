//! The certificate Secrets: their names (CAPI's `<cluster>-<purpose>`, or `spec.certificateRefs`),
//! looking up or generating each, and renewing our own etcd leaf certificates (the etcd
//! defragmentation job's client certificate among them).
//!
//! Reads only the Secrets in [`Facts`]; never replaces a CA of an initialized control plane.

use std::collections::BTreeMap;

use k0smotron_api::controlplane::v1beta2::{
    CertificateRef, CertificateType, ClusterSpec, StorageType,
};
use k0smotron_api::names;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use jiff::Timestamp;

use super::error::BuildError;
use super::model::Facts;
use crate::certs::{self, KeyMaterial};
use crate::etcd;
use crate::labels;
use crate::ownership::controlled_by;

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

pub(super) fn secret_name_for(
    spec: &ClusterSpec,
    cluster: &str,
    purpose: CertificateType,
) -> String {
    user_ref(spec, purpose).unwrap_or_else(|| default_secret_name(cluster, purpose))
}

pub(super) fn purposes(spec: &ClusterSpec) -> Vec<CertificateType> {
    let mut p = CA_PURPOSES.to_vec();
    if spec.storage.type_ == StorageType::Etcd {
        p.extend(ETCD_LEAF_PURPOSES);
    }
    p
}

/// Whether the control plane has the etcd defragmentation CronJob (and so its client certificate).
pub(super) fn defrag_enabled(spec: &ClusterSpec) -> bool {
    spec.storage.type_ == StorageType::Etcd
        && spec
            .storage
            .etcd
            .defrag_job
            .as_ref()
            .is_some_and(|j| j.enabled)
}

pub(super) fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
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
#[derive(Default)]
pub(super) struct CertPlan {
    pub(super) material: BTreeMap<CertificateTypeKey, KeyMaterial>,
    pub(super) refs: Vec<CertificateRef>,
    pub(super) create: Vec<Secret>,
    pub(super) renew: Vec<Secret>,
}

impl CertPlan {
    /// Writes `secret`: replacing the existing one (`renew`) or creating it.
    fn write(&mut self, secret: Secret, replacing: bool) {
        if replacing {
            self.renew.push(secret);
        } else {
            self.create.push(secret);
        }
    }

    /// The cluster CA (signs the kubeconfig's client certificate).
    pub(super) fn ca(&self) -> Result<KeyMaterial, BuildError> {
        self.material
            .get(&key(CertificateType::Ca))
            .cloned()
            .ok_or_else(|| BuildError::InvalidSecret("the cluster CA is not available".into()))
    }
}

/// Where the certificate Secrets go: the control plane they belong to.
struct Site<'a> {
    facts: &'a Facts,
    cluster: &'a str,
    namespace: &'a str,
    uid: &'a str,
    owner: &'a OwnerReference,
}

impl Site<'_> {
    /// A certificate Secret of this control plane holding `material`.
    fn secret(&self, name: &str, material: &KeyMaterial) -> Secret {
        capi_secret(
            name,
            self.namespace,
            self.cluster,
            material.to_secret_data(),
            self.owner,
        )
    }
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
pub(super) fn plan_certificates(
    facts: &Facts,
    cluster: &str,
    namespace: &str,
    uid: &str,
    owner: &OwnerReference,
) -> Result<CertPlan, BuildError> {
    let site = Site {
        facts,
        cluster,
        namespace,
        uid,
        owner,
    };
    let spec = &facts.cp.spec;
    check_distinct_secrets(spec, cluster)?;
    let mut plan = CertPlan::default();
    for purpose in purposes(spec) {
        let name = secret_name_for(spec, cluster, purpose);
        plan.refs.push(CertificateRef {
            type_: purpose,
            name: Some(name.clone()),
        });
        let material = match facts.secrets.get(&name) {
            Some(secret) => read_or_renew(&mut plan, &site, purpose, &name, secret)?,
            None => generate_missing(&mut plan, &site, purpose, name)?,
        };
        plan.material.insert(key(purpose), material);
    }
    if defrag_enabled(spec) {
        plan_defrag_client(&mut plan, &site)?;
    }
    Ok(plan)
}

/// Every certificate in a Secret of its own, once the user's names and the defaults are put
/// together: a `spec.certificateRefs` name that is another certificate's default name (say the
/// etcd client certificate in `<cluster>-ca`) would read one certificate as another, and renewing
/// the leaf would replace the CA. Validation refuses two types under one user name; this catches
/// the collision with a default, which needs the cluster name.
fn check_distinct_secrets(spec: &ClusterSpec, cluster: &str) -> Result<(), BuildError> {
    let mut seen: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut names: Vec<(String, &'static str)> = purposes(spec)
        .into_iter()
        .map(|p| (secret_name_for(spec, cluster, p), p.as_str()))
        .collect();
    if defrag_enabled(spec) {
        names.push((
            etcd::defrag_client_secret(cluster),
            "etcd defragmentation client",
        ));
    }
    for (name, what) in names {
        if let Some(other) = seen.insert(name.clone(), what) {
            return Err(BuildError::Spec(crate::validate::SpecError::Invalid(
                format!(
                    "spec.certificateRefs: Secret {name:?} would hold both the {other} and the {what} certificate; each certificate needs a Secret of its own"
                ),
            )));
        }
    }
    Ok(())
}

/// The material of an existing certificate Secret; for our own etcd leaf certificates due for
/// renewal, a new one (its Secret replaced).
fn read_or_renew(
    plan: &mut CertPlan,
    site: &Site<'_>,
    purpose: CertificateType,
    name: &str,
    secret: &Secret,
) -> Result<KeyMaterial, BuildError> {
    let material = existing_material(secret, name)?;
    if matches!(purpose, CertificateType::Ca | CertificateType::Etcd) {
        certs::check_key(&material.key_pem, name)
            .map_err(|e| BuildError::InvalidSecret(e.to_string()))?;
        certs::cert_info(&material.cert_pem, name)
            .map_err(|e| BuildError::InvalidSecret(e.to_string()))?;
    }
    let now = site.facts.now;
    let is_leaf = ETCD_LEAF_PURPOSES.contains(&purpose);
    if !(is_leaf && leaf_due(plan, secret, &material, site.uid, now)) {
        return Ok(material);
    }
    let fresh = sign_etcd_leaf(plan, site.cluster, site.namespace, purpose, now)?;
    plan.renew.push(site.secret(name, &fresh));
    Ok(fresh)
}

/// A certificate whose Secret does not exist: generated (its Secret created), unless the name is
/// the user's or the CA is one an initialized control plane already trusts.
fn generate_missing(
    plan: &mut CertPlan,
    site: &Site<'_>,
    purpose: CertificateType,
    name: String,
) -> Result<KeyMaterial, BuildError> {
    if user_ref(&site.facts.cp.spec, purpose).is_some() {
        return Err(BuildError::ReferenceNotFound(format!(
            "Secret {name} (spec.certificateRefs, type {}) does not exist",
            purpose.as_str()
        )));
    }
    let is_leaf = ETCD_LEAF_PURPOSES.contains(&purpose);
    if !is_leaf && initialized(site.facts) {
        return Err(BuildError::CaMissing {
            secret: name,
            what: ca_description(purpose),
        });
    }
    let now = site.facts.now;
    let fresh = if is_leaf {
        sign_etcd_leaf(plan, site.cluster, site.namespace, purpose, now)?
    } else if purpose == CertificateType::Sa {
        certs::generate_sa_key_pair()?
    } else {
        certs::generate_ca(ca_common_name(purpose), now)?
    };
    plan.create.push(site.secret(&name, &fresh));
    Ok(fresh)
}

/// The defragmentation job's client certificate `<cluster>-etcd-defrag-client`, handled like our
/// other etcd leaves: generated when missing, renewed when ours and due, otherwise only read. It
/// is not a `spec.certificateRefs` type (upstream has none), so it is not in `certificateRefs`.
fn plan_defrag_client(plan: &mut CertPlan, site: &Site<'_>) -> Result<(), BuildError> {
    let now = site.facts.now;
    let name = etcd::defrag_client_secret(site.cluster);
    let existing = site.facts.secrets.get(&name);
    if let Some(secret) = existing {
        let material = existing_material(secret, &name)?;
        if !leaf_due(plan, secret, &material, site.uid, now) {
            return Ok(());
        }
    }
    let fresh = sign_with_etcd_ca(plan, site.cluster, &etcd::defrag_client_spec(), now)?;
    plan.write(site.secret(&name, &fresh), existing.is_some());
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

/// Behind an Ingress, HAProxy's serving certificate `<cluster>-ingress-haproxy`, signed by the
/// cluster CA (the bootstrap provider copies it onto each worker): generated when missing;
/// renewed when ours and at half-life, signed by another CA or made for other names (a changed
/// service CIDR or cluster domain); a Secret that is not ours is only read. Upstream generates
/// it once and never renews it.
pub(super) fn plan_haproxy_certificate(
    plan: &mut CertPlan,
    facts: &Facts,
    cluster: &str,
    inputs: &crate::haproxy::Inputs,
) -> Result<(), BuildError> {
    let site = Site {
        facts,
        cluster,
        namespace: &facts.cp.namespace,
        uid: &facts.cp.uid,
        owner: &facts.cp.owner,
    };
    let name = names::ingress_haproxy_secret(cluster);
    let spec = crate::haproxy::certificate_spec(inputs);
    let ca = plan.ca()?;
    let existing = facts.secrets.get(&name);
    if let Some(secret) = existing {
        if !controlled_by(&secret.metadata, site.uid) {
            return Ok(());
        }
        let current = KeyMaterial::from_secret_data(&secret_data(secret));
        let fits = current.is_some_and(|m| {
            !certs::needs_renewal(&m.cert_pem, &ca.cert_pem, facts.now)
                && certs::cert_info(&m.cert_pem, &name).is_ok_and(|info| {
                    let mut have = info.sans;
                    let mut want = spec.sans.clone();
                    have.sort();
                    want.sort();
                    have == want
                })
        });
        if fits {
            return Ok(());
        }
    }
    let fresh = certs::sign_leaf(&ca, &names::ca_secret(cluster), &spec, facts.now)?;
    plan.write(site.secret(&name, &fresh), existing.is_some());
    Ok(())
}
