//! The k0s controller StatefulSet `kmc-<name>`: its pod template and the inputs it is built from.
//!
//! Pure. The pod template is built from [`ControllerInputs`] and nothing else, so the hash of those
//! inputs (stored on the StatefulSet) covers everything the template depends on; the reconciler
//! re-applies the template only when that hash changes (see docs/controlplane.md, "Stable
//! hashing"). Everything here is deterministic: sorted maps, no timestamps, no randomness.

use std::collections::BTreeMap;

use k0smotron_api::controlplane::v1beta2::{CertificateType, Mount};
use k0smotron_api::names;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvFromSource, ExecAction, HostPathVolumeSource, KeyToPath,
    PersistentVolumeClaim, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile,
    SecretEnvSource, SecretProjection, SecurityContext, Sysctl, TopologySpreadConstraint, Volume,
    VolumeMount, VolumeProjection, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::entrypoint::SCRIPT_KEY;
use crate::hash::HashError;
use crate::labels;
use crate::monitoring::{self, MonitoringInputs};
use crate::nats::{self, NatsInputs};

/// Bumped when a provider release must change the pod template of existing control planes (and
/// so roll their pods). Part of the template inputs hash; see docs/controlplane.md.
///
/// 2: hardened pods (seccomp `RuntimeDefault`, no privilege escalation, only the capabilities k0s
/// needs, privileged ports through a pod sysctl instead of `apk add`/`setcap` at start).
/// 3: only the keys k0s uses (no etcd CA key), and `/var/lib/k0s/pki` in memory instead of on the
/// data volume (see docs/security.md, "Keys where they are needed").
pub const TEMPLATE_GENERATION: u32 = 3;

/// StatefulSet annotation: hash of the built pod template (upstream's annotation name).
pub const STATEFULSET_HASH_ANNOTATION: &str = "k0smotron.io/statefulset-hash";
/// StatefulSet annotation: hash of the [`ControllerInputs`] the template was built from.
pub const INPUTS_HASH_ANNOTATION: &str = "k0smotron.io/template-inputs-hash";
/// Pod template annotation: checksum of the k0s config and entrypoint the pods start with, so a
/// config change rolls the pods (k0s reads its node config only at start).
pub const CONFIG_CHECKSUM_ANNOTATION: &str = "k0smotron.io/config-checksum";

/// Name of the k0s container.
pub const CONTROLLER_CONTAINER: &str = "controller";
/// Mount path of the k0s data directory.
pub const K0S_DATA_DIR: &str = "/var/lib/k0s";
/// k0s's certificate directory, `<data dir>/pki`: an in-memory emptyDir of its own, so no key
/// (ours or the ones k0s signs at start) is ever written to the data volume.
pub const K0S_PKI_DIR: &str = "/var/lib/k0s/pki";
const CERTS_VOLUME: &str = "certs";
const CERTS_INIT_DIR: &str = "/certs-init";
/// Volume of k0s's pki directory; a name no `spec.mounts` path is likely to produce.
const PKI_VOLUME: &str = "k0smotron-pki";
/// Where `certs-init` sees the data volume, to remove the `pki` directory that providers before
/// template generation 3 left on it.
const OLD_DATA_DIR: &str = "/k0s-data";
const ENTRYPOINT_MODE: i32 = 0o744;

/// Where `/var/lib/k0s` lives.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DataVolume {
    /// An emptyDir named `kmc-<name>`.
    EmptyDir,
    /// A node directory.
    HostPath(String),
    /// A claim template (name included), with the PVC retention choice.
    Pvc {
        /// The claim template.
        claim: Box<PersistentVolumeClaim>,
        /// Delete the claims with the StatefulSet.
        auto_delete: bool,
    },
}

/// A certificate Secret mounted into the pods, with the file names k0s expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountedCert {
    /// Which certificate.
    pub purpose: CertificateType,
    /// Secret name.
    pub secret: String,
}

/// Everything the k0s StatefulSet is built from. Serialised (skipping empty values, so adding an
/// optional input later does not change existing hashes) into the inputs hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerInputs {
    /// [`TEMPLATE_GENERATION`].
    pub generation: u32,
    /// CAPI cluster name (`<name>`).
    pub cluster: String,
    /// Namespace of the control plane.
    pub namespace: String,
    /// Full image reference, `<repo>:<tag>`.
    pub image: String,
    /// ServiceAccount of the pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// API server port.
    pub api_port: i32,
    /// konnectivity port.
    pub konnectivity_port: i32,
    /// Secret with the kine DSN (`storage.kine.dataSourceSecretName`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kine_secret: Option<String>,
    /// Certificates copied into `/var/lib/k0s/pki` by the `certs-init` container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<MountedCert>,
    /// The data volume.
    pub data: DataVolume,
    /// `spec.manifests`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<Volume>,
    /// `spec.mounts`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Mount the endpoint manifest ConfigMap `kmc-<name>-endpoint`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub endpoint_manifest: bool,
    /// Mount the ingress manifests ConfigMap `kmc-<name>-ingress` (behind an Ingress).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ingress_manifests: bool,
    /// `spec.topologySpreadConstraints`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// `spec.resources`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Checksum of the k0s config and entrypoint script.
    pub config_checksum: String,
    /// Embedded NATS storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsInputs>,
    /// The monitoring sidecars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringInputs>,
}

impl ControllerInputs {
    fn data_volume_name(&self) -> String {
        match &self.data {
            DataVolume::Pvc { claim, .. } => claim
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| names::kmc_name(&self.cluster)),
            _ => names::kmc_name(&self.cluster),
        }
    }
}

/// Errors building the StatefulSet.
#[derive(Debug, thiserror::Error)]
pub enum StatefulSetError {
    /// A `spec.mounts` entry is not a valid volume source.
    #[error("spec.mounts[{index}] (path {path:?}) is not a valid volume source: {source}")]
    InvalidMount {
        /// Position in `spec.mounts`.
        index: usize,
        /// Its path.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Volume name for a `spec.mounts` path, as upstream: the path without its leading `/`, with `/`
/// turned into `-`; when that is not a DNS label, a sanitised form plus `-` and 5 hex digits of
/// SHA-256 of the path (keeps names unique and valid).
pub fn mount_volume_name(path: &str) -> String {
    let simple = path.trim_start_matches('/').replace('/', "-");
    if is_dns_label(&simple) {
        return simple;
    }
    let mut sanitised: String = simple
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while sanitised.contains("--") {
        sanitised = sanitised.replace("--", "-");
    }
    let mut sanitised = sanitised.trim_matches('-').to_string();
    sanitised.truncate(57);
    let sanitised = sanitised.trim_end_matches('-');
    let digest = hex::encode(Sha256::digest(path.as_bytes()));
    if sanitised.is_empty() {
        format!("mount-{}", &digest[..5])
    } else {
        format!("{sanitised}-{}", &digest[..5])
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn exec_probe(initial_delay: i32, failure_threshold: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["k0s".into(), "status".into()]),
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// Capabilities the k0s containers keep: k0s runs as root and starts each component as its own
/// service user (SETUID, SETGID), hands it its files (CHOWN, FOWNER, DAC_OVERRIDE to reach
/// directories owned by those users) and stops it (KILL). All are in Pod Security's baseline set.
const K0S_CAPABILITIES: [&str; 6] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "KILL",
    "SETGID",
    "SETUID",
];

/// The first port an unprivileged process may bind.
const UNPRIVILEGED_PORT_START: i32 = 1024;

/// Security context of the k0s containers: no privilege escalation, every capability dropped but
/// [`K0S_CAPABILITIES`].
pub(crate) fn k0s_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: Some(K0S_CAPABILITIES.iter().map(|c| (*c).to_string()).collect()),
        }),
        ..Default::default()
    }
}

/// Pod security context: the runtime's default seccomp profile and, when the API or
/// konnectivity port is privileged (< 1024), `net.ipv4.ip_unprivileged_port_start` lowered to it
/// so the unprivileged kube-apiserver and konnectivity-server may bind it (a namespaced sysctl
/// that Pod Security's baseline level allows).
pub(crate) fn pod_security_context(ports: &[i32]) -> PodSecurityContext {
    let lowest = ports
        .iter()
        .copied()
        .min()
        .unwrap_or(UNPRIVILEGED_PORT_START);
    PodSecurityContext {
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        sysctls: (lowest < UNPRIVILEGED_PORT_START).then(|| {
            vec![Sysctl {
                name: "net.ipv4.ip_unprivileged_port_start".into(),
                value: lowest.max(0).to_string(),
            }]
        }),
        ..Default::default()
    }
}

/// The image of the `controller` container of a pod spec.
pub fn controller_image(spec: &PodSpec) -> Option<&str> {
    spec.containers
        .iter()
        .find(|c| c.name == CONTROLLER_CONTAINER)?
        .image
        .as_deref()
}

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

/// Preferred anti-affinity spreading replicas over zones (weight 100) and hosts (weight 50).
pub fn spread_affinity(match_labels: BTreeMap<String, String>) -> Affinity {
    let term = |weight, key: &str| WeightedPodAffinityTerm {
        weight,
        pod_affinity_term: PodAffinityTerm {
            topology_key: key.to_string(),
            label_selector: Some(LabelSelector {
                match_labels: Some(match_labels.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                term(100, "topology.kubernetes.io/zone"),
                term(50, "kubernetes.io/hostname"),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// k0s's file names for each certificate Secret: the certificate (`tls.crt`) and, when k0s uses
/// it, the key (`tls.key`); `None` for the etcd leaf certificates, which only the etcd pods mount.
///
/// Read from k0s v1.35's source: k0s creates a new CA when `ca.key` or `front-proxy-ca.key` is
/// missing (`certificate.Manager.EnsureCA`) and signs its own certificates with them at every
/// start; kube-controller-manager signs kubelet certificates with `ca.key`; kube-apiserver and
/// kube-controller-manager use `sa.key`. With an external etcd k0s reads only the CA certificate
/// and the client pair named in `storage.etcd.externalCluster` (`k0s_config::etcd_storage`), so
/// the etcd CA key stays out.
fn pki_files(purpose: CertificateType) -> Option<(&'static str, Option<&'static str>)> {
    match purpose {
        CertificateType::Ca => Some(("ca.crt", Some("ca.key"))),
        CertificateType::Sa => Some(("sa.pub", Some("sa.key"))),
        CertificateType::Proxy => Some(("front-proxy-ca.crt", Some("front-proxy-ca.key"))),
        CertificateType::Etcd => Some(("etcd-ca.crt", None)),
        CertificateType::ApiserverEtcdClient => Some((
            "apiserver-etcd-client.crt",
            Some("apiserver-etcd-client.key"),
        )),
        CertificateType::EtcdPeer | CertificateType::EtcdServer => None,
    }
}

/// A projection of a CAPI certificate Secret's `tls.crt` as the file `crt` and, when `key` is
/// given, its `tls.key` as `key`. A Secret's key is projected only into pods that use it.
pub(crate) fn secret_projection(secret: &str, crt: &str, key: Option<&str>) -> VolumeProjection {
    let mut items = vec![KeyToPath {
        key: names::TLS_CRT_KEY.into(),
        path: crt.into(),
        ..Default::default()
    }];
    if let Some(key) = key {
        items.push(KeyToPath {
            key: names::TLS_KEY_KEY.into(),
            path: key.into(),
            ..Default::default()
        });
    }
    VolumeProjection {
        secret: Some(SecretProjection {
            name: secret.to_string(),
            items: Some(items),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn config_map_volume(name: &str, items: Option<Vec<KeyToPath>>, mode: Option<i32>) -> Volume {
    Volume {
        name: name.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: name.to_string(),
            items,
            default_mode: mode,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// The pod template of the k0s controllers.
pub fn pod_template(inputs: &ControllerInputs) -> Result<PodTemplateSpec, StatefulSetError> {
    let cluster = &inputs.cluster;
    let entrypoint = names::entrypoint_config_map_name(cluster);
    let data_volume = inputs.data_volume_name();
    let mut volumes = vec![config_map_volume(
        &entrypoint,
        Some(vec![KeyToPath {
            key: SCRIPT_KEY.into(),
            path: SCRIPT_KEY.into(),
            ..Default::default()
        }]),
        Some(ENTRYPOINT_MODE),
    )];
    let mut mounts = vec![VolumeMount {
        name: entrypoint.clone(),
        mount_path: format!("/{SCRIPT_KEY}"),
        sub_path: Some(SCRIPT_KEY.into()),
        ..Default::default()
    }];
    // k0s's certificate directory lives in memory and starts empty with every pod: k0s finds
    // only what `certs-init` copied, and signs its own certificates anew (with the current SANs).
    volumes.push(Volume {
        name: PKI_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut init_containers = Vec::new();
    if let Some((certs, init)) = certs_init(inputs, &data_volume) {
        volumes.push(certs);
        init_containers.push(init);
    }
    volumes.extend(data_dir_volume(&inputs.data, &data_volume));
    mounts.push(mount(&data_volume, K0S_DATA_DIR, false));
    mounts.push(mount(PKI_VOLUME, K0S_PKI_DIR, false));
    if inputs.nats.is_some() {
        mounts.push(nats::mount());
    }
    add_manifests_and_mounts(inputs, &mut volumes, &mut mounts)?;

    let pod_labels = labels::with_component(
        labels::control_plane_selector(cluster),
        names::component::CONTROL_PLANE,
    );
    let mut annotations = BTreeMap::from([(
        CONFIG_CHECKSUM_ANNOTATION.to_string(),
        inputs.config_checksum.clone(),
    )]);
    let mut containers = vec![controller_container(inputs, mounts)];
    // Monitoring: the sidecars after k0s, their volumes last, so the k0s container's part of the
    // template is the same with or without them.
    if let Some(m) = &inputs.monitoring {
        annotations.extend(monitoring::pod_annotations());
        containers.extend(monitoring::containers(
            m,
            cluster,
            mount(PKI_VOLUME, K0S_PKI_DIR, true),
        ));
        volumes.extend(monitoring::volumes(cluster));
    }
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            service_account_name: inputs.service_account.clone(),
            security_context: Some(pod_security_context(&[
                inputs.api_port,
                inputs.konnectivity_port,
            ])),
            affinity: Some(spread_affinity(labels::base(
                cluster,
                names::COMPONENT_CLUSTER,
            ))),
            topology_spread_constraints: (!inputs.topology_spread_constraints.is_empty())
                .then(|| inputs.topology_spread_constraints.clone()),
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            containers,
            volumes: Some(volumes),
            ..Default::default()
        }),
    })
}

/// The projected volume of the mounted certificates and the `certs-init` container copying them
/// into k0s's pki directory; `None` without certificates.
fn certs_init(inputs: &ControllerInputs, data_volume: &str) -> Option<(Volume, Container)> {
    let projections: Vec<VolumeProjection> = inputs
        .certificates
        .iter()
        .filter_map(|c| {
            pki_files(c.purpose).map(|(crt, key)| secret_projection(&c.secret, crt, key))
        })
        .collect();
    if projections.is_empty() {
        return None;
    }
    let volume = Volume {
        name: CERTS_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(projections),
            ..Default::default()
        }),
        ..Default::default()
    };
    // k0s needs its CA keys writable (it changes their owner) and in its own pki directory.
    // Providers before template generation 3 kept that directory on the data volume; what
    // they left there (every CA key, k0s's own keys) is removed.
    let container = Container {
        name: "certs-init".into(),
        image: Some(inputs.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            format!("rm -rf {OLD_DATA_DIR}/pki/* && cp {CERTS_INIT_DIR}/*.* {K0S_PKI_DIR}/"),
        ]),
        volume_mounts: Some(vec![
            mount(CERTS_VOLUME, CERTS_INIT_DIR, true),
            mount(PKI_VOLUME, K0S_PKI_DIR, false),
            mount(data_volume, OLD_DATA_DIR, false),
        ]),
        security_context: Some(k0s_security_context()),
        ..Default::default()
    };
    Some((volume, container))
}

/// The data directory's volume; `None` for a claim (the claim template provides it).
fn data_dir_volume(data: &DataVolume, name: &str) -> Option<Volume> {
    match data {
        DataVolume::EmptyDir => Some(Volume {
            name: name.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }),
        DataVolume::HostPath(path) => Some(Volume {
            name: name.to_string(),
            host_path: Some(HostPathVolumeSource {
                path: path.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        DataVolume::Pvc { .. } => None,
    }
}

/// The user's manifests, the endpoint manifest, the ingress manifests, the user's mounts and the
/// telemetry manifest, in that order.
fn add_manifests_and_mounts(
    inputs: &ControllerInputs,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
) -> Result<(), StatefulSetError> {
    for manifest in &inputs.manifests {
        volumes.push(manifest.clone());
        mounts.push(mount(
            &manifest.name,
            &format!("{K0S_DATA_DIR}/manifests/{}", manifest.name),
            true,
        ));
    }
    let generated = [
        (
            inputs.endpoint_manifest,
            names::endpoint_config_map_name(&inputs.cluster),
        ),
        (
            inputs.ingress_manifests,
            names::ingress_manifests_config_map_name(&inputs.cluster),
        ),
    ];
    // A `spec.manifests` volume of the same name (a spec carried over from upstream, which
    // appends its ingress volume to the spec's manifests) is that ConfigMap already: not twice.
    let generated = generated
        .into_iter()
        .filter(|(on, name)| *on && inputs.manifests.iter().all(|m| &m.name != name))
        .map(|(_, n)| n);
    for name in generated {
        volumes.push(config_map_volume(&name, None, None));
        mounts.push(mount(
            &name,
            &format!("{K0S_DATA_DIR}/manifests/{name}"),
            true,
        ));
    }
    for (index, m) in inputs.mounts.iter().enumerate() {
        let name = mount_volume_name(&m.path);
        let volume = m
            .to_volume(&name)
            .map_err(|source| StatefulSetError::InvalidMount {
                index,
                path: m.path.clone(),
                source,
            })?;
        // ConfigMap and Secret volumes are read-only anyway; say so (as upstream).
        let read_only = m.read_only || volume.config_map.is_some() || volume.secret.is_some();
        volumes.push(volume);
        mounts.push(mount(&name, &m.path, read_only));
    }
    let telemetry = names::telemetry_config_map_name(&inputs.cluster);
    volumes.push(config_map_volume(&telemetry, None, None));
    mounts.push(mount(
        &telemetry,
        &format!("{K0S_DATA_DIR}/manifests/k0s-telemetry"),
        true,
    ));
    Ok(())
}

/// The k0s controller container: the entrypoint, the ports, the config (and kine DSN) as
/// environment, the probes.
fn controller_container(inputs: &ControllerInputs, mounts: Vec<VolumeMount>) -> Container {
    let mut env_from = vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: names::config_map_name(&inputs.cluster),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if let Some(secret) = &inputs.kine_secret {
        env_from.push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut ports = vec![
        ContainerPort {
            name: Some("api".into()),
            container_port: inputs.api_port,
            protocol: Some("TCP".into()),
            ..Default::default()
        },
        ContainerPort {
            name: Some("konnectivity".into()),
            container_port: inputs.konnectivity_port,
            protocol: Some("TCP".into()),
            ..Default::default()
        },
    ];
    let env = inputs.nats.as_ref().map(|n| {
        ports.push(nats::container_port());
        nats::env(n, &names::kmc_name(&inputs.cluster))
    });
    Container {
        name: CONTROLLER_CONTAINER.into(),
        image: Some(inputs.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("/{SCRIPT_KEY}"),
        ]),
        ports: Some(ports),
        env,
        env_from: Some(env_from),
        resources: inputs.resources.clone(),
        readiness_probe: Some(exec_probe(60, 15)),
        liveness_probe: Some(exec_probe(90, 10)),
        volume_mounts: Some(mounts),
        security_context: Some(k0s_security_context()),
        ..Default::default()
    }
}

/// The StatefulSet `kmc-<name>` (the build step adds the hash annotations and patches).
pub fn statefulset(
    inputs: &ControllerInputs,
    replicas: i32,
    owner: &OwnerReference,
) -> Result<StatefulSet, StatefulSetError> {
    let template = pod_template(inputs)?;
    let selector = labels::control_plane_selector(&inputs.cluster);
    let (mut claims, retention) = match &inputs.data {
        DataVolume::Pvc { claim, auto_delete } => (
            vec![(**claim).clone()],
            auto_delete.then(|| StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Delete".into()),
                when_scaled: Some("Retain".into()),
            }),
        ),
        _ => (Vec::new(), None),
    };
    // NATS: the store's claim, the pods' DNS names under the headless Service, and all pods
    // started at once (each waits for its routes to the others).
    if let Some(n) = &inputs.nats {
        claims.push((*n.claim).clone());
    }
    let nats = inputs.nats.as_ref();
    Ok(StatefulSet {
        metadata: ObjectMeta {
            name: Some(names::kmc_name(&inputs.cluster)),
            namespace: Some(inputs.namespace.clone()),
            labels: Some(labels::with_component(
                selector.clone(),
                names::component::CONTROL_PLANE,
            )),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template,
            volume_claim_templates: (!claims.is_empty()).then_some(claims),
            persistent_volume_claim_retention_policy: retention,
            service_name: nats.map(|n| n.service.clone()),
            pod_management_policy: nats.map(|_| "Parallel".into()),
            ..Default::default()
        },
        status: None,
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
pub(crate) mod tests {
    use super::*;

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

    pub(crate) fn inputs() -> ControllerInputs {
        ControllerInputs {
            generation: TEMPLATE_GENERATION,
            cluster: "demo".into(),
            namespace: "ns".into(),
            image: "quay.io/k0sproject/k0s:v1.35.7-k0s.0".into(),
            service_account: None,
            api_port: 30443,
            konnectivity_port: 30132,
            kine_secret: None,
            certificates: vec![],
            data: DataVolume::EmptyDir,
            manifests: vec![],
            mounts: vec![],
            endpoint_manifest: false,
            ingress_manifests: false,
            topology_spread_constraints: vec![],
            resources: None,
            config_checksum: "abc".into(),
            nats: None,
            monitoring: None,
        }
    }

    #[test]
    fn mount_volume_names() {
        assert_eq!(mount_volume_name("/etc/k0s"), "etc-k0s");
        assert_eq!(mount_volume_name("/tmp/test"), "tmp-test");
        let odd = mount_volume_name("/Data/My_Files");
        assert!(odd.starts_with("data-my-files-"), "{odd}");
        assert_eq!(odd.len(), "data-my-files-".len() + 5);
        assert_ne!(
            mount_volume_name("/Data/My_Files"),
            mount_volume_name("/data/my-files/")
        );
        let long = mount_volume_name(&format!("/{}", "x".repeat(80)));
        assert!(is_dns_label(&long), "{long}");
        assert!(is_dns_label(&mount_volume_name("/___")));
    }

    fn hash(inputs: &ControllerInputs) -> String {
        crate::hash::stable_hash("statefulset inputs", inputs).unwrap()
    }

    #[test]
    fn inputs_hash_ignores_empty_optional_inputs_and_changes_with_values() {
        let a = inputs();
        let mut b = inputs();
        b.kine_secret = None;
        assert_eq!(hash(&a), hash(&b));
        b.image = "quay.io/k0sproject/k0s:v1.35.8-k0s.0".into();
        assert_ne!(hash(&a), hash(&b));
        // The serialised form leaves out empty inputs: adding an optional input to a later
        // provider version does not change the hash of existing control planes.
        let json = serde_json::to_value(&a).unwrap();
        assert!(json.get("kineSecret").is_none());
        assert!(json.get("manifests").is_none());
        assert!(json.get("endpointManifest").is_none());
        assert!(json.get("ingressManifests").is_none());
    }

    #[test]
    fn privileged_ports_lower_the_unprivileged_port_start_only_when_needed() {
        let sysctls = |ports: &[i32]| pod_security_context(ports).sysctls;
        assert_eq!(sysctls(&[30443, 30132]), None);
        assert_eq!(sysctls(&[1024, 8132]), None);
        let low = sysctls(&[443, 8132]).unwrap();
        assert_eq!(low.len(), 1);
        assert_eq!(low[0].name, "net.ipv4.ip_unprivileged_port_start");
        assert_eq!(low[0].value, "443");
        assert_eq!(sysctls(&[6443, 132]).unwrap()[0].value, "132");
    }

    /// Every k0s container: no privilege escalation, only baseline capabilities, runtime default
    /// seccomp for the pod.
    #[test]
    fn k0s_containers_are_hardened() {
        let mut with_certs = inputs();
        with_certs.certificates = vec![MountedCert {
            purpose: CertificateType::Ca,
            secret: "demo-ca".into(),
        }];
        let spec = pod_template(&with_certs).unwrap().spec.unwrap();
        let baseline = [
            "AUDIT_WRITE",
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "KILL",
            "MKNOD",
            "NET_BIND_SERVICE",
            "SETFCAP",
            "SETGID",
            "SETPCAP",
            "SETUID",
            "SYS_CHROOT",
        ];
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        for c in containers {
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            let caps = sc.capabilities.as_ref().unwrap();
            assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
            for cap in caps.add.iter().flatten() {
                assert!(baseline.contains(&cap.as_str()), "{cap} is not in baseline");
            }
            assert_ne!(sc.privileged, Some(true));
        }
        let seccomp = spec.security_context.unwrap().seccomp_profile.unwrap();
        assert_eq!(seccomp.type_, "RuntimeDefault");
    }

    #[test]
    fn template_is_deterministic() {
        let owner = OwnerReference::default();
        let a = statefulset(&inputs(), 1, &owner).unwrap();
        let b = statefulset(&inputs(), 3, &owner).unwrap();
        assert_eq!(
            serde_json::to_string(&a.spec.template).unwrap(),
            serde_json::to_string(&b.spec.template).unwrap()
        );
    }

    #[test]
    fn the_ingress_manifests_are_mounted_once() {
        let owner = OwnerReference::default();
        let mut i = inputs();
        i.ingress_manifests = true;
        let count = |i: &ControllerInputs| {
            let sts = statefulset(i, 1, &owner).unwrap();
            let pod = sts.spec.template.spec.unwrap();
            let volumes = pod.volumes.unwrap_or_default();
            let mounts = pod.containers[0].volume_mounts.clone().unwrap_or_default();
            (
                volumes
                    .iter()
                    .filter(|v| v.name == "kmc-demo-ingress")
                    .count(),
                mounts
                    .iter()
                    .filter(|m| m.mount_path == "/var/lib/k0s/manifests/kmc-demo-ingress")
                    .count(),
            )
        };
        assert_eq!(count(&i), (1, 1));
        i.manifests = vec![Volume {
            name: "kmc-demo-ingress".into(),
            config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
                name: "kmc-demo-ingress".into(),
                ..Default::default()
            }),
            ..Default::default()
        }];
        assert_eq!(count(&i), (1, 1));
        i.ingress_manifests = false;
        i.manifests.clear();
        assert_eq!(count(&i), (0, 0));
    }
}
