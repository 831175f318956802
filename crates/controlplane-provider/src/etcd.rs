//! The managed etcd: headless Service and StatefulSet `kmc-<name>-etcd`, its leaf certificates
//! (`<name>-etcd-server`, `<name>-etcd-peer`, `<name>-apiserver-etcd-client` and, for the
//! defragmentation job, `<name>-etcd-defrag-client`, all signed by `<name>-etcd`), its replica
//! count, and the optional defragmentation CronJob. No pod here gets the etcd CA's key: the
//! provider signs every etcd certificate.
//!
//! Pure. The member add/replace logic lives in the pods' scripts; this module only generates them.

use std::collections::BTreeMap;

use k0smotron_api::controlplane::v1beta2::EtcdSpec;
use k0smotron_api::names;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, ExecAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::certs::{LeafSpec, Usage};
use crate::labels;
use crate::statefulset::{secret_projection, spread_affinity};

/// etcd client port.
pub const CLIENT_PORT: i32 = 2379;
/// etcd peer port.
pub const PEER_PORT: i32 = 2380;
/// Name of the etcd data claim template.
pub const DATA_CLAIM: &str = "etcd-data";
const PKI_DIR: &str = "/var/lib/k0s/pki/etcd";
const DATA_DIR: &str = "/var/lib/k0s/etcd";
/// Bumped when a provider release must change the etcd pod template of existing clusters.
///
/// 2: hardened pods (seccomp `RuntimeDefault`, every capability dropped, no privilege escalation).
/// 3: the etcd CA's certificate only, not its key.
pub const ETCD_TEMPLATE_GENERATION: u32 = 3;

/// etcd server certificate Secret `<cluster>-etcd-server`.
pub fn server_secret(cluster: &str) -> String {
    format!("{cluster}-etcd-server")
}

/// etcd peer certificate Secret `<cluster>-etcd-peer`.
pub fn peer_secret(cluster: &str) -> String {
    format!("{cluster}-etcd-peer")
}

/// API server's etcd client certificate Secret `<cluster>-apiserver-etcd-client`.
pub fn apiserver_client_secret(cluster: &str) -> String {
    format!("{cluster}-apiserver-etcd-client")
}

/// The defragmentation job's client certificate Secret `<cluster>-etcd-defrag-client`.
pub fn defrag_client_secret(cluster: &str) -> String {
    format!("{cluster}-etcd-defrag-client")
}

/// The defragmentation job's client certificate: CN `etcd-defrag`, client use only.
pub fn defrag_client_spec() -> LeafSpec {
    LeafSpec {
        common_name: "etcd-defrag".into(),
        organizations: vec!["etcd-defrag".into()],
        sans: vec![],
        usage: Usage::Client,
    }
}

/// Odd etcd size for `replicas` control-plane replicas: 1 for ≤ 1, else rounded up to odd.
pub fn target_replicas(replicas: i32) -> i32 {
    if replicas <= 1 {
        1
    } else if replicas % 2 == 0 {
        replicas + 1
    } else {
        replicas
    }
}

/// The etcd StatefulSet's replicas given the live one (`current` replicas and ready replicas):
/// the whole target at creation; never fewer than now (etcd members are not removed); otherwise
/// one more member at a time, only once every current member is ready (two members joining at once
/// can break quorum).
pub fn next_replicas(control_plane_replicas: i32, current: Option<(i32, i32)>) -> i32 {
    let target = target_replicas(control_plane_replicas);
    match current {
        None => target,
        Some((now, _)) if now >= target => now,
        Some((now, ready)) if ready < now => now,
        Some((now, _)) => now + 1,
    }
}

/// SANs of the etcd server and peer certificates.
pub fn sans(cluster: &str, namespace: &str) -> Vec<String> {
    let svc = names::etcd_name(cluster);
    let mut out = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    for name in [
        svc.clone(),
        format!("{svc}.{namespace}"),
        format!("{svc}.{namespace}.svc"),
        format!("{svc}.{namespace}.svc.cluster.local"),
    ] {
        out.push(format!("*.{name}"));
        out.push(name);
    }
    out
}

/// The three leaf certificates: (Secret name, request).
pub fn leaf_specs(cluster: &str, namespace: &str) -> Vec<(String, LeafSpec)> {
    let sans = sans(cluster, namespace);
    vec![
        (
            server_secret(cluster),
            LeafSpec {
                common_name: "etcd-server".into(),
                organizations: vec!["etcd-server".into()],
                sans: sans.clone(),
                usage: Usage::ServerAndClient,
            },
        ),
        (
            peer_secret(cluster),
            LeafSpec {
                common_name: "etcd-peer".into(),
                organizations: vec!["etcd-peer".into()],
                sans,
                usage: Usage::ServerAndClient,
            },
        ),
        (
            apiserver_client_secret(cluster),
            LeafSpec {
                common_name: "apiserver-etcd-client".into(),
                organizations: vec!["apiserver-etcd-client".into()],
                sans: vec![],
                usage: Usage::Client,
            },
        ),
    ]
}

/// What the etcd StatefulSet's pod template is built from (hashed like the k0s template).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdInputs {
    /// [`ETCD_TEMPLATE_GENERATION`].
    pub generation: u32,
    /// CAPI cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// `storage.etcd.image`.
    pub image: String,
    /// Image of the `dns-check` init container (a shell with `getent`): the k0s image the etcd
    /// StatefulSet was first created with, kept so k0s upgrades do not roll etcd.
    pub dns_check_image: String,
    /// `storage.etcd.args`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `storage.etcd.resources`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// `spec.serviceAccount`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// `spec.topologySpreadConstraints`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// `storage.etcd.persistence.storageClass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `storage.etcd.persistence.size`.
    pub size: String,
    /// `storage.etcd.autoDeletePVCs`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auto_delete_pvcs: bool,
    /// Size of the cluster at its creation: the bootstrap `--initial-cluster` list. Kept from the
    /// first creation (later members join with `member add`), so scaling does not roll etcd.
    pub bootstrap_replicas: i32,
}

impl EtcdInputs {
    /// Inputs from the spec.
    pub fn new(
        cluster: &str,
        namespace: &str,
        etcd: &EtcdSpec,
        dns_check_image: String,
        service_account: Option<String>,
        topology_spread_constraints: Vec<TopologySpreadConstraint>,
        bootstrap_replicas: i32,
    ) -> Self {
        Self {
            generation: ETCD_TEMPLATE_GENERATION,
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
            image: etcd.image.clone(),
            dns_check_image,
            args: etcd.args.clone(),
            resources: etcd.resources.clone(),
            service_account,
            topology_spread_constraints,
            storage_class: etcd.persistence.storage_class.clone(),
            size: etcd.persistence.size.0.clone(),
            auto_delete_pvcs: etcd.auto_delete_pvcs,
            bootstrap_replicas,
        }
    }
}

fn meta(name: String, namespace: &str, cluster: &str, owner: &OwnerReference) -> ObjectMeta {
    let selector = labels::etcd_selector(cluster);
    labels::child_metadata(name, namespace, selector, names::component::ETCD, owner)
}

/// The headless Service `kmc-<name>-etcd` (publishes not-ready addresses so members find each
/// other before they are ready).
pub fn service(cluster: &str, namespace: &str, owner: &OwnerReference) -> Service {
    let port = |name: &str, p: i32| ServicePort {
        name: Some(name.into()),
        port: p,
        target_port: Some(IntOrString::Int(p)),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    Service {
        metadata: meta(names::etcd_name(cluster), namespace, cluster, owner),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(labels::etcd_selector(cluster)),
            ports: Some(vec![port("client", CLIENT_PORT), port("peer", PEER_PORT)]),
            ..Default::default()
        }),
        status: None,
    }
}

fn etcdctl(svc_url: &str) -> String {
    format!(
        "etcdctl --endpoints={svc_url} --cacert={PKI_DIR}/ca.crt --cert={PKI_DIR}/peer.crt --key={PKI_DIR}/peer.key"
    )
}

/// The `init` container script: on a pod without local data whose cluster already answers,
/// remove a stale member of the same name and add this pod, then mark the data dir so etcd starts
/// with `--initial-cluster-state=existing` and the member list `member add` printed.
fn init_script(svc: &str, namespace: &str) -> String {
    let ctl = etcdctl(&format!("https://{svc}.{namespace}.svc:{CLIENT_PORT}"));
    format!(
        r#"set -eu
if [ -e {DATA_DIR}/member/snap/db ]; then
  echo "local data found, joining as before"
  exit 0
fi
mkdir -p {DATA_DIR}
if ! members=$({ctl} member list 2>/dev/null); then
  echo "no running cluster found, bootstrapping"
  exit 0
fi
stale=$(printf '%s\n' "$members" | awk -F', ' -v n="$HOSTNAME" '$3 == n {{ print $1 }}')
if [ -n "$stale" ]; then
  {ctl} member remove "$stale"
fi
added=$({ctl} member add "$HOSTNAME" --peer-urls=https://$HOSTNAME.{svc}.{namespace}.svc:{PEER_PORT})
printf '%s\n' "$added" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p' > {DATA_DIR}/initial-cluster
touch {DATA_DIR}/existing
"#
    )
}

/// The etcd container script.
fn run_script(svc: &str, namespace: &str, extra_args: &[String]) -> String {
    let mut s = format!(
        r#"set -eu
state=new
initial="$ETCD_INITIAL_CLUSTER"
if [ -e {DATA_DIR}/existing ]; then
  state=existing
  if [ -s {DATA_DIR}/initial-cluster ]; then initial=$(cat {DATA_DIR}/initial-cluster); fi
fi
# etcd reads ETCD_* variables as flags and refuses a flag given both ways, so these two are
# passed as variables only.
export ETCD_INITIAL_CLUSTER="$initial" ETCD_INITIAL_CLUSTER_STATE="$state"
exec etcd \
  --name=$HOSTNAME \
  --data-dir={DATA_DIR} \
  --listen-client-urls=https://0.0.0.0:{CLIENT_PORT} \
  --advertise-client-urls=https://$HOSTNAME.{svc}.{namespace}.svc:{CLIENT_PORT} \
  --listen-peer-urls=https://0.0.0.0:{PEER_PORT} \
  --initial-advertise-peer-urls=https://$HOSTNAME.{svc}.{namespace}.svc:{PEER_PORT} \
  --client-cert-auth=true \
  --trusted-ca-file={PKI_DIR}/ca.crt \
  --cert-file={PKI_DIR}/server.crt \
  --key-file={PKI_DIR}/server.key \
  --peer-client-cert-auth=true \
  --peer-trusted-ca-file={PKI_DIR}/ca.crt \
  --peer-cert-file={PKI_DIR}/peer.crt \
  --peer-key-file={PKI_DIR}/peer.key \
  --tls-min-version=TLS1.2 \
  --auto-compaction-mode=periodic \
  --auto-compaction-retention=5m \
  --snapshot-count=10000"#
    );
    for arg in extra_args {
        s.push_str(" \\\n  ");
        s.push_str(&crate::entrypoint::sh_quote(arg));
    }
    s.push('\n');
    s
}

/// etcd and its helpers need no capability (they only touch their own files): every one
/// dropped, no privilege escalation.
fn no_capabilities() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn initial_cluster(sts: &str, svc: &str, namespace: &str, replicas: i32) -> String {
    (0..replicas.max(1))
        .map(|i| format!("{sts}-{i}=https://{sts}-{i}.{svc}.{namespace}.svc:{PEER_PORT}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn vm(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

/// The etcd StatefulSet `kmc-<name>-etcd` with `replicas` members (the build step adds the hash
/// annotations and patches).
pub fn statefulset(inputs: &EtcdInputs, replicas: i32, owner: &OwnerReference) -> StatefulSet {
    let name = names::etcd_name(&inputs.cluster);
    let selector = labels::etcd_selector(&inputs.cluster);
    StatefulSet {
        metadata: meta(name.clone(), &inputs.namespace, &inputs.cluster, owner),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(name.clone()),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            template: pod_template(inputs, &name, selector),
            volume_claim_templates: Some(vec![data_claim(inputs)]),
            persistent_volume_claim_retention_policy: inputs.auto_delete_pvcs.then(|| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Delete".into()),
                    when_scaled: Some("Retain".into()),
                }
            }),
            ..Default::default()
        },
        status: None,
    }
}

/// The etcd pod template; `name` is the StatefulSet's (and its headless Service's).
fn pod_template(
    inputs: &EtcdInputs,
    name: &str,
    selector: BTreeMap<String, String>,
) -> PodTemplateSpec {
    let cluster = &inputs.cluster;
    let certs = Volume {
        name: "certs".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![
                secret_projection(&names::etcd_ca_secret(cluster), "ca.crt", None),
                secret_projection(&server_secret(cluster), "server.crt", Some("server.key")),
                secret_projection(&peer_secret(cluster), "peer.crt", Some("peer.key")),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mounts = vec![vm("certs", PKI_DIR), vm(DATA_CLAIM, DATA_DIR)];
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels::with_component(
                selector.clone(),
                names::component::ETCD,
            )),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            service_account_name: inputs.service_account.clone(),
            security_context: Some(PodSecurityContext {
                fs_group: Some(1001),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            affinity: Some(spread_affinity(selector)),
            topology_spread_constraints: (!inputs.topology_spread_constraints.is_empty())
                .then(|| inputs.topology_spread_constraints.clone()),
            init_containers: Some(init_containers(inputs, name, mounts.clone())),
            containers: vec![etcd_container(inputs, name, mounts)],
            volumes: Some(vec![certs]),
            ..Default::default()
        }),
    }
}

/// `dns-check` (waits until the pod's own DNS name resolves) and `init` (joins or bootstraps).
fn init_containers(inputs: &EtcdInputs, name: &str, mounts: Vec<VolumeMount>) -> Vec<Container> {
    let ns = &inputs.namespace;
    let dns_check = Container {
        name: "dns-check".into(),
        image: Some(inputs.dns_check_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        security_context: Some(no_capabilities()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            format!(
                "until getent ahostsv4 \"$HOSTNAME.{name}.{ns}.svc\"; do echo waiting for DNS; sleep 1; done"
            ),
        ]),
        ..Default::default()
    };
    let init = Container {
        name: "init".into(),
        image: Some(inputs.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), init_script(name, ns)]),
        security_context: Some(no_capabilities()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    vec![dns_check, init]
}

/// The `etcd` container.
fn etcd_container(inputs: &EtcdInputs, name: &str, mounts: Vec<VolumeMount>) -> Container {
    let ns = &inputs.namespace;
    Container {
        name: "etcd".into(),
        image: Some(inputs.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            run_script(name, ns, &inputs.args),
        ]),
        env: Some(vec![EnvVar {
            name: "ETCD_INITIAL_CLUSTER".into(),
            value: Some(initial_cluster(name, name, ns, inputs.bootstrap_replicas)),
            ..Default::default()
        }]),
        ports: Some(vec![
            ContainerPort {
                name: Some("client".into()),
                container_port: CLIENT_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("peer".into()),
                container_port: PEER_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    format!(
                        "{} endpoint health",
                        etcdctl(&format!("https://127.0.0.1:{CLIENT_PORT}"))
                    ),
                ]),
            }),
            initial_delay_seconds: Some(5),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(6),
            ..Default::default()
        }),
        resources: inputs.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(no_capabilities()),
        ..Default::default()
    }
}

/// The claim template of each member's data directory.
fn data_claim(inputs: &EtcdInputs) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_CLAIM.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: inputs.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity(inputs.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// The defragmentation CronJob `kmc-<name>-defrag` (when `storage.etcd.defragJob.enabled`),
/// with a client certificate of its own ([`defrag_client_secret`]).
pub fn defrag_cronjob(
    cluster: &str,
    namespace: &str,
    etcd: &EtcdSpec,
    owner: &OwnerReference,
) -> Option<CronJob> {
    let job = etcd.defrag_job.as_ref().filter(|j| j.enabled)?;
    let svc = names::etcd_name(cluster);
    let certs = Volume {
        name: "certs".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![
                secret_projection(&names::etcd_ca_secret(cluster), "ca.crt", None),
                secret_projection(
                    &defrag_client_secret(cluster),
                    "client.crt",
                    Some("client.key"),
                ),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Some(CronJob {
        metadata: meta(names::etcd_defrag_name(cluster), namespace, cluster, owner),
        spec: CronJobSpec {
            schedule: job.schedule.clone(),
            concurrency_policy: Some("Forbid".into()),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels::with_component(
                                labels::base(cluster, names::COMPONENT_ETCD),
                                names::component::ETCD,
                            )),
                            ..Default::default()
                        }),
                        spec: Some(PodSpec {
                            restart_policy: Some("OnFailure".into()),
                            automount_service_account_token: Some(false),
                            containers: vec![Container {
                                name: "etcd-defrag".into(),
                                image: Some(job.image.clone()),
                                image_pull_policy: Some("IfNotPresent".into()),
                                args: Some(vec![
                                    format!(
                                        "--endpoints=https://{svc}.{namespace}.svc:{CLIENT_PORT}"
                                    ),
                                    format!("--cacert={PKI_DIR}/ca.crt"),
                                    format!("--cert={PKI_DIR}/client.crt"),
                                    format!("--key={PKI_DIR}/client.key"),
                                    "--cluster".into(),
                                    format!("--defrag-rule={}", job.rule),
                                ]),
                                volume_mounts: Some(vec![vm("certs", PKI_DIR)]),
                                security_context: Some(no_capabilities()),
                                ..Default::default()
                            }],
                            volumes: Some(vec![certs]),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
            },
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
mod tests {
    use super::*;

    #[test]
    fn replica_math() {
        assert_eq!(target_replicas(0), 1);
        assert_eq!(target_replicas(1), 1);
        assert_eq!(target_replicas(2), 3);
        assert_eq!(target_replicas(3), 3);
        assert_eq!(target_replicas(4), 5);
        // Created at full size.
        assert_eq!(next_replicas(3, None), 3);
        // Never scaled down.
        assert_eq!(next_replicas(1, Some((3, 3))), 3);
        // One member at a time, once all are ready.
        assert_eq!(next_replicas(5, Some((3, 3))), 4);
        assert_eq!(next_replicas(5, Some((4, 3))), 4);
        assert_eq!(next_replicas(5, Some((4, 4))), 5);
    }

    #[test]
    fn sans_cover_the_service_and_pods() {
        let s = sans("demo", "ns");
        for want in [
            "127.0.0.1",
            "localhost",
            "kmc-demo-etcd",
            "*.kmc-demo-etcd.ns.svc",
            "kmc-demo-etcd.ns.svc.cluster.local",
        ] {
            assert!(s.contains(&want.to_string()), "{want}");
        }
    }

    #[test]
    fn initial_cluster_lists_every_member() {
        assert_eq!(
            initial_cluster("kmc-a-etcd", "kmc-a-etcd", "ns", 2),
            "kmc-a-etcd-0=https://kmc-a-etcd-0.kmc-a-etcd.ns.svc:2380,kmc-a-etcd-1=https://kmc-a-etcd-1.kmc-a-etcd.ns.svc:2380"
        );
    }

    #[test]
    fn init_script_is_valid_sh() {
        let script = init_script("kmc-a-etcd", "ns");
        let status = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&script)
            .status()
            .unwrap();
        assert!(status.success());
        let run = run_script("kmc-a-etcd", "ns", &["--quota-backend-bytes=1".into()]);
        let status = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&run)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
