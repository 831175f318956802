//! Tests of the build step: snapshots of the generated objects for representative specs, and the
//! look-up-or-generate, adoption, version and hashing rules.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use jiff::Timestamp;
use k0smotron_api::capi::{ApiEndpoint, ClusterNetwork, NetworkRanges};
use k0smotron_api::controlplane::v1beta2::{
    CertificateRef, CertificateType, ClaimMetadata, ComponentPatch as ApiPatch,
    K0smotronControlPlane, K0smotronControlPlaneSpec, KineSpec, Mount, PatchSpec, PatchTarget,
    PatchType, PersistenceType, PersistentVolumeClaimTemplate, ServiceType, StorageType,
};
use k0smotron_api::names;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, KeyToPath, LoadBalancerIngress, LoadBalancerStatus, Node,
    NodeAddress, NodeStatus, PersistentVolumeClaimSpec, PodSpec, ResourceRequirements, Secret,
    Service, ServiceSpec, ServiceStatus, Volume, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use pretty_assertions::assert_eq;
use serde::Serialize;
use serde_json::json;

use crate::certs;
use crate::control_plane::ControlPlane;
use crate::entrypoint;
use crate::k0s_config;
use crate::kubeconfig::{self, RegenerateReason};
use crate::statefulset::{self, INPUTS_HASH_ANNOTATION};
use crate::validate::FieldPolicy;

use super::certificates::plan_certificates;
use super::statefulset::annotation;
use super::*;

const NS: &str = "tenants";
const CLUSTER: &str = "demo";
const UID: &str = "4f0c2a8e-0000-4000-8000-000000000001";

fn now() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

/// Certificate Secrets generated once for all tests (RSA key generation is slow in debug builds).
fn cert_secrets() -> &'static BTreeMap<String, Secret> {
    static SECRETS: OnceLock<BTreeMap<String, Secret>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let facts = Facts {
            secrets: BTreeMap::new(),
            ..facts_with(with_defrag(K0smotronControlPlaneSpec::default()))
        };
        let owner = facts.cp.owner.clone();
        let plan = plan_certificates(&facts, CLUSTER, NS, UID, &owner).unwrap();
        plan.create
            .into_iter()
            .map(|s| (s.metadata.name.clone().unwrap(), s))
            .collect()
    })
}

/// `spec` with the etcd defragmentation CronJob enabled.
fn with_defrag(mut spec: K0smotronControlPlaneSpec) -> K0smotronControlPlaneSpec {
    spec.storage.etcd.defrag_job = Some(serde_json::from_value(json!({"enabled": true})).unwrap());
    spec
}

fn kcp(spec: K0smotronControlPlaneSpec) -> K0smotronControlPlane {
    let mut kcp = K0smotronControlPlane::new(CLUSTER, spec);
    kcp.metadata.namespace = Some(NS.into());
    kcp.metadata.uid = Some(UID.into());
    kcp.metadata.generation = Some(1);
    kcp
}

fn exposure(type_: ServiceType, lb: Option<&str>) -> Service {
    Service {
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.96.12.34".into()),
            cluster_ips: Some(vec!["10.96.12.34".into()]),
            type_: Some(format!("{type_:?}")),
            ..Default::default()
        }),
        status: lb.map(|ip| ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip.into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn facts_with(spec: K0smotronControlPlaneSpec) -> Facts {
    let type_ = spec.service.type_;
    Facts {
        cp: ControlPlane::from_kcp(&kcp(spec), false).unwrap(),
        cluster_name: CLUSTER.into(),
        cluster_initialized: false,
        cluster_network: None,
        secrets: BTreeMap::new(),
        exposure_service: Some(exposure(type_, None)),
        nodes: vec![],
        statefulset: None,
        etcd_statefulset: None,
        claims: vec![],
        now: now(),
        policy: FieldPolicy::default(),
    }
}

/// Facts for `spec` with every certificate Secret already present.
fn facts(spec: K0smotronControlPlaneSpec) -> Facts {
    let mut f = facts_with(spec);
    f.secrets = cert_secrets().clone();
    f
}

fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

fn plan_json(plan: &Option<StatefulSetPlan>) -> serde_json::Value {
    match plan {
        None => json!(null),
        Some(StatefulSetPlan::Apply(s)) => json!({"apply": to_json(s)}),
        Some(StatefulSetPlan::Recreate(s)) => json!({"recreate": to_json(s)}),
        Some(StatefulSetPlan::ScaleOnly {
            name,
            replicas,
            record_inputs_hash,
        }) => {
            json!({"scaleOnly": {"name": name, "replicas": replicas, "recordInputsHash": record_inputs_hash}})
        }
    }
}

/// Everything deterministic in a desired state, as YAML.
fn snapshot(d: &DesiredState) -> String {
    let value = json!({
        "endpoint": to_json(&d.endpoint),
        "publishEndpoint": d.publish_endpoint,
        "externalAddress": d.external_address,
        "certificateRefs": to_json(&d.certificate_refs),
        "waiting": d.waiting,
        "overridden": d.overridden,
        "configMaps": to_json(&d.config_maps),
        "services": to_json(&d.services),
        "obsoleteServices": d.obsolete_services,
        "statefulSet": plan_json(&d.statefulset),
        "etcdStatefulSet": plan_json(&d.etcd_statefulset),
        "cronJobs": to_json(&d.cron_jobs),
        "secretsToCreate": d.create_secrets.iter().map(|s| s.metadata.name.clone()).collect::<Vec<_>>(),
        "kubeconfig": d.kubeconfig.as_ref().map(|s| json!({
            "name": s.metadata.name,
            "labels": s.metadata.labels,
            "type": s.type_,
        })),
        "dynamicConfig": match &d.dynamic_config {
            DynamicConfig::Push { object, hash } => json!({"hash": hash, "object": object}),
            other => json!(format!("{other:?}")),
        },
    });
    let mut value = value;
    // Only control planes behind an Ingress have these keys (the other snapshots stay as they were).
    if let Some(ingress) = &d.ingress {
        value["ingress"] = to_json(ingress);
    }
    serde_saphyr::to_string(&value).unwrap()
}

#[test]
fn etcd_cluster_ip_defaults() {
    let d = build(&facts(K0smotronControlPlaneSpec::default())).unwrap();
    // ClusterIP without externalAddress: the in-cluster DNS name is the endpoint (deviation).
    assert_eq!(
        d.endpoint,
        Some(ApiEndpoint {
            host: Some("kmc-demo.tenants.svc".into()),
            port: Some(30443)
        })
    );
    insta::assert_snapshot!(snapshot(&d));
}

#[test]
fn kine_secret_node_port_pvc() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.replicas = 3;
    spec.service.type_ = ServiceType::NodePort;
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: None,
        data_source_secret_name: Some("kine-dsn".into()),
    });
    spec.persistence.type_ = PersistenceType::Pvc;
    spec.persistence.auto_delete_pvcs = true;
    spec.persistence.persistent_volume_claim = Some(PersistentVolumeClaimTemplate {
        metadata: Some(ClaimMetadata {
            name: None,
            labels: BTreeMap::from([("backup".to_string(), "daily".to_string())]),
            ..Default::default()
        }),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: Some("fast".into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity("2Gi".into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut f = facts(spec);
    f.secrets.insert(
        "kine-dsn".into(),
        Secret {
            data: Some(BTreeMap::from([(
                names::KINE_DATASOURCE_URL_KEY.to_string(),
                ByteString(b"postgres://k0s:pw@db:5432/k0s".to_vec()),
            )])),
            ..Default::default()
        },
    );
    f.nodes = vec![Node {
        metadata: ObjectMeta {
            name: Some("worker-1".into()),
            ..Default::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: "172.18.0.3".into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let d = build(&f).unwrap();
    assert_eq!(d.external_address.as_deref(), Some("172.18.0.3"));
    // The DSN stays in its Secret: the config only has the placeholder.
    let config = &d.config_maps[0].data.as_ref().unwrap()[entrypoint::K0S_YAML_ENV];
    assert!(config.contains(k0s_config::KINE_DSN_PLACEHOLDER));
    assert!(!config.contains("postgres://"));
    insta::assert_snapshot!(snapshot(&d));
}

#[test]
fn kine_inline_load_balancer_host_path_extras() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.replicas = 2;
    spec.service.type_ = ServiceType::LoadBalancer;
    spec.service.api_port = 6443;
    spec.service.konnectivity_port = 8132;
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: Some("mysql://k0s:pw@tcp(db:3306)/k0s".into()),
        data_source_secret_name: None,
    });
    spec.persistence.type_ = PersistenceType::HostPath;
    spec.persistence.host_path = Some("/var/lib/k0smotron/demo".into());
    spec.service_account = Some("k0s".into());
    spec.control_plane_flags = vec!["--enable-metrics-scraper".into()];
    spec.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([(
            "cpu".to_string(),
            Quantity("100m".into()),
        )])),
        ..Default::default()
    });
    spec.manifests = vec![Volume {
        name: "addons".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: "addons".into(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    spec.mounts = vec![
        serde_json::from_value::<Mount>(json!({
            "path": "/etc/extra",
            "secret": {"secretName": "extra"}
        }))
        .unwrap(),
    ];
    let mut f = facts(spec);
    f.exposure_service = Some(exposure(ServiceType::LoadBalancer, Some("198.51.100.7")));
    // An install started with --allow-host-path (off by default).
    f.policy.host_path = true;
    let d = build(&f).unwrap();
    assert_eq!(d.external_address.as_deref(), Some("198.51.100.7"));
    insta::assert_snapshot!(snapshot(&d));
}

#[test]
fn user_k0s_config_with_conflicting_values() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.external_address = Some("cp.example.com".into());
    spec.k0s_config = Some(json!({
        "apiVersion": "k0s.k0sproject.io/v1beta1",
        "kind": "ClusterConfig",
        "spec": {
            "api": {"port": 6443, "externalAddress": "wrong.example.com", "sans": ["extra.example.com"]},
            "konnectivity": {"agentPort": 8132},
            "storage": {"type": "kine", "kine": {"dataSource": "sqlite:///tmp/x"}},
            "network": {"provider": "calico", "serviceCIDR": "10.100.0.0/16"},
        }
    }));
    let mut f = facts(spec);
    f.cluster_network = Some(ClusterNetwork {
        pods: Some(NetworkRanges {
            cidr_blocks: vec!["192.168.0.0/16".into(), "fd00::/56".into()],
        }),
        services: Some(NetworkRanges {
            cidr_blocks: vec!["10.128.0.0/12".into()],
        }),
        service_domain: Some("demo.local".into()),
        api_server_port: None,
    });
    let d = build(&f).unwrap();
    assert_eq!(
        d.overridden,
        vec![
            "spec.api.port",
            "spec.api.externalAddress",
            "spec.konnectivity.agentPort",
            "spec.storage"
        ]
    );
    let config: serde_json::Value =
        serde_saphyr::from_str(&d.config_maps[0].data.as_ref().unwrap()[entrypoint::K0S_YAML_ENV])
            .unwrap();
    // The user's service CIDR wins over the Cluster's; the pod CIDR comes from the Cluster.
    assert_eq!(
        config.pointer("/spec/network/serviceCIDR"),
        Some(&json!("10.100.0.0/16"))
    );
    assert_eq!(
        config.pointer("/spec/network/podCIDR"),
        Some(&json!("192.168.0.0/16,fd00::/56"))
    );
    insta::assert_snapshot!(snapshot(&d));
}

#[test]
fn patches_are_applied_and_change_the_template_hash() {
    let mut spec = K0smotronControlPlaneSpec::default();
    let plain = build(&facts(spec.clone())).unwrap();
    spec.patches = vec![
        ApiPatch {
            target: PatchTarget {
                kind: "Service".into(),
                component: "control-plane".into(),
            },
            patch: PatchSpec {
                type_: PatchType::Merge,
                content: "metadata:\n  annotations:\n    lb.example.com/internal: \"true\"\n".into(),
            },
        },
        ApiPatch {
            target: PatchTarget {
                kind: "StatefulSet".into(),
                component: "control-plane".into(),
            },
            patch: PatchSpec {
                type_: PatchType::Strategic,
                content: "spec:\n  template:\n    spec:\n      priorityClassName: system-cluster-critical\n".into(),
            },
        },
    ];
    let patched = build(&facts(spec)).unwrap();
    assert_eq!(
        patched.services[0].metadata.annotations,
        Some(BTreeMap::from([(
            "lb.example.com/internal".to_string(),
            "true".to_string()
        )]))
    );
    let (Some(StatefulSetPlan::Apply(a)), Some(StatefulSetPlan::Apply(b))) =
        (&plain.statefulset, &patched.statefulset)
    else {
        panic!("expected full applies");
    };
    assert_eq!(
        b.spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .priority_class_name
            .as_deref(),
        Some("system-cluster-critical")
    );
    // Patches are template inputs.
    assert_ne!(
        annotation(&a.metadata, INPUTS_HASH_ANNOTATION),
        annotation(&b.metadata, INPUTS_HASH_ANNOTATION)
    );
    // The etcd StatefulSet is not targeted by the control-plane patch.
    let (Some(StatefulSetPlan::Apply(ea)), Some(StatefulSetPlan::Apply(eb))) =
        (&plain.etcd_statefulset, &patched.etcd_statefulset)
    else {
        panic!("expected full applies");
    };
    assert_eq!(ea.spec.template, eb.spec.template);
}

#[test]
fn load_balancer_without_address_waits_for_it() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.service.type_ = ServiceType::LoadBalancer;
    let d = build(&facts(spec)).unwrap();
    assert!(d.statefulset.is_none());
    assert!(d.endpoint.is_none());
    assert!(d.kubeconfig.is_none());
    assert!(d.waiting.as_deref().unwrap().contains("LoadBalancer"));
    // The Service itself is still created, so it can get its address.
    assert_eq!(d.services[0].metadata.name.as_deref(), Some("kmc-demo-lb"));
}

#[test]
fn missing_service_cluster_ip_waits_but_writes_the_kubeconfig() {
    let mut f = facts(K0smotronControlPlaneSpec::default());
    f.exposure_service = None;
    let d = build(&f).unwrap();
    assert!(d.statefulset.is_none());
    assert!(d.kubeconfig.is_some());
}

#[test]
fn missing_certificates_are_generated_existing_ones_read_only() {
    let mut f = facts_with(K0smotronControlPlaneSpec::default());
    // A user-provided CA under the default name.
    let user_ca = cert_secrets()["demo-ca"].clone();
    let mut user_ca_unowned = user_ca.clone();
    user_ca_unowned.metadata.owner_references = None;
    f.secrets.insert("demo-ca".into(), user_ca_unowned);
    let d = build(&f).unwrap();
    let created = created_names(&d);
    assert_eq!(
        created,
        vec![
            "demo-proxy",
            "demo-sa",
            "demo-etcd",
            "demo-etcd-server",
            "demo-etcd-peer",
            "demo-apiserver-etcd-client"
        ]
    );
    for s in &d.create_secrets {
        assert_eq!(s.type_.as_deref(), Some(names::CAPI_SECRET_TYPE));
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()[names::CLUSTER_NAME_LABEL],
            CLUSTER
        );
        assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].uid, UID);
        let data = s.data.as_ref().unwrap();
        assert!(data.contains_key("tls.crt") && data.contains_key("tls.key"));
    }
    // The kubeconfig trusts the user's CA.
    let kubeconfig = d.kubeconfig.as_ref().unwrap().data.as_ref().unwrap()["value"]
        .0
        .clone();
    let parsed = kubeconfig::parse(&String::from_utf8(kubeconfig).unwrap()).unwrap();
    let ca_pem = String::from_utf8(user_ca.data.as_ref().unwrap()["tls.crt"].0.clone()).unwrap();
    assert_eq!(parsed.ca_cert_pem, ca_pem);
    assert_eq!(parsed.server, "https://kmc-demo.tenants.svc:30443");
}

/// Names of the Secrets the build creates.
fn created_names(d: &DesiredState) -> Vec<String> {
    d.create_secrets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect()
}

/// Marks the control plane initialized in its own status.
fn initialized(mut f: Facts) -> Facts {
    f.cp.initialized = true;
    f
}

#[test]
fn a_lost_ca_of_an_initialized_control_plane_is_never_generated_again() {
    for lost in ["demo-ca", "demo-sa", "demo-proxy", "demo-etcd"] {
        let mut f = initialized(facts(K0smotronControlPlaneSpec::default()));
        f.secrets.remove(lost);
        let err = build(&f).unwrap_err();
        assert_eq!(
            err.reason(),
            k0smotron_api::conditions::CA_MISSING_REASON,
            "{lost}"
        );
        let msg = err.to_string();
        assert!(msg.contains(lost) && msg.contains("backup"), "{msg}");
        // The Cluster saying so is enough (the control plane's status may be gone, e.g. after
        // clusterctl move).
        let mut f = facts(K0smotronControlPlaneSpec::default());
        f.cluster_initialized = true;
        f.secrets.remove(lost);
        assert_eq!(
            build(&f).unwrap_err().reason(),
            k0smotron_api::conditions::CA_MISSING_REASON
        );
    }
    // Leaf certificates are signed again from the CA that is still there.
    let mut f = initialized(facts(K0smotronControlPlaneSpec::default()));
    f.secrets.remove("demo-etcd-server");
    let d = build(&f).unwrap();
    let created = created_names(&d);
    assert_eq!(created, ["demo-etcd-server"]);
    // Not initialized yet: generated as before.
    let mut f = facts(K0smotronControlPlaneSpec::default());
    f.secrets.remove("demo-ca");
    assert_eq!(build(&f).unwrap().create_secrets.len(), 1);
}

#[test]
fn a_missing_user_named_certificate_is_an_error_not_generated() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.certificate_refs = vec![CertificateRef {
        type_: CertificateType::Ca,
        name: Some("my-ca".into()),
    }];
    let err = build(&facts(spec)).unwrap_err();
    assert_eq!(
        err.reason(),
        k0smotron_api::conditions::REFERENCE_NOT_FOUND_REASON
    );
    assert!(err.to_string().contains("my-ca"), "{err}");
}

/// A user name that is another certificate's default Secret: refused before anything is read or
/// renewed, so the etcd client certificate never replaces the CA in `demo-ca`.
#[test]
fn a_user_name_that_is_another_certificates_secret_is_refused() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.certificate_refs = vec![CertificateRef {
        type_: CertificateType::ApiserverEtcdClient,
        name: Some("demo-ca".into()),
    }];
    let err = build(&facts(spec)).unwrap_err();
    assert_eq!(err.reason(), k0smotron_api::conditions::INVALID_SPEC_REASON);
    let message = err.to_string();
    assert!(
        message.contains("\"demo-ca\"") && message.contains("ca and the apiserver-etcd-client"),
        "{message}"
    );
    // The defragmentation job's client Secret is one of them too.
    let mut spec = with_defrag(K0smotronControlPlaneSpec::default());
    spec.certificate_refs = vec![CertificateRef {
        type_: CertificateType::EtcdPeer,
        name: Some("demo-etcd-defrag-client".into()),
    }];
    assert!(
        build(&facts(spec))
            .unwrap_err()
            .to_string()
            .contains("etcd defragmentation client")
    );
}

#[test]
fn kine_secret_must_exist() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: None,
        data_source_secret_name: Some("nope".into()),
    });
    let err = build(&facts(spec)).unwrap_err();
    assert_eq!(
        err.reason(),
        k0smotron_api::conditions::REFERENCE_NOT_FOUND_REASON
    );
}

fn applied(plan: &Option<StatefulSetPlan>) -> StatefulSet {
    match plan {
        Some(StatefulSetPlan::Apply(s)) => (**s).clone(),
        other => panic!("expected a full apply, got {other:?}"),
    }
}

#[test]
fn same_inputs_never_reapply_the_template() {
    let first = build(&facts(K0smotronControlPlaneSpec::default())).unwrap();
    let live = applied(&first.statefulset);
    // Same spec (a provider restart): replicas only.
    let mut f = facts(K0smotronControlPlaneSpec::default());
    f.statefulset = Some(live.clone());
    let again = build(&f).unwrap();
    assert_eq!(
        again.statefulset,
        Some(StatefulSetPlan::ScaleOnly {
            name: "kmc-demo".into(),
            replicas: 1,
            record_inputs_hash: None
        })
    );
    // A rebuild produces the identical object.
    let rebuilt = applied(
        &build(&facts(K0smotronControlPlaneSpec::default()))
            .unwrap()
            .statefulset,
    );
    assert_eq!(to_json(&rebuilt), to_json(&live));
    // A template built by an older provider (different template, same inputs) is kept.
    let mut older = live.clone();
    older.spec.template.spec.as_mut().unwrap().containers[0].readiness_probe = None;
    f.statefulset = Some(older);
    assert!(matches!(
        build(&f).unwrap().statefulset,
        Some(StatefulSetPlan::ScaleOnly { .. })
    ));
    // Scaling changes replicas only.
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.replicas = 3;
    let mut f = facts(spec);
    f.statefulset = Some(live);
    assert_eq!(
        build(&f).unwrap().statefulset,
        Some(StatefulSetPlan::ScaleOnly {
            name: "kmc-demo".into(),
            replicas: 3,
            record_inputs_hash: None
        })
    );
}

/// Another field manager force-applied its image after our write: our template is written
/// again, although the foreign tag is no k0s version (which would otherwise block the version
/// change and keep the template).
#[test]
fn a_foreign_image_after_our_write_is_reverted() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
    let live = applied(
        &build(&facts(K0smotronControlPlaneSpec::default()))
            .unwrap()
            .statefulset,
    );
    let entry = |manager: &str, second: u32| ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some("Apply".into()),
        time: Some(Time(
            format!("2026-12-03T18:00:{second:02}Z").parse().unwrap(),
        )),
        fields_v1: Some(FieldsV1(
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}}),
        )),
        ..Default::default()
    };
    let mut edited = live.clone();
    edited.spec.template.spec.as_mut().unwrap().containers[0].image =
        Some("example.com/other:1".into());
    edited.metadata.managed_fields = Some(vec![
        entry(crate::ownership::MANAGER, 10),
        entry("chaos-writer", 20),
    ]);
    let mut f = facts(K0smotronControlPlaneSpec::default());
    f.statefulset = Some(edited.clone());
    let restored = applied(&build(&f).unwrap().statefulset);
    assert_eq!(
        to_json(&restored.spec.template),
        to_json(&live.spec.template)
    );
    // The same edit before our last write is not another writer's: kept.
    edited.metadata.managed_fields = Some(vec![
        entry("chaos-writer", 5),
        entry(crate::ownership::MANAGER, 10),
    ]);
    f.statefulset = Some(edited);
    assert!(matches!(
        build(&f).unwrap().statefulset,
        Some(StatefulSetPlan::ScaleOnly { .. })
    ));
}

#[test]
fn a_spec_change_reapplies_the_template() {
    let live = applied(
        &build(&facts(K0smotronControlPlaneSpec::default()))
            .unwrap()
            .statefulset,
    );
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.version = "v1.36.1+k0s.0".into();
    let mut f = facts(spec);
    f.statefulset = Some(live);
    let sts = applied(&build(&f).unwrap().statefulset);
    assert_eq!(
        sts.spec.template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("quay.io/k0sproject/k0s:v1.36.1-k0s.0")
    );
}

#[test]
fn a_version_jump_over_a_minor_is_refused_and_the_old_template_kept() {
    let live = applied(
        &build(&facts(K0smotronControlPlaneSpec::default()))
            .unwrap()
            .statefulset,
    );
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.version = "v1.37.0+k0s.0".into();
    let mut f = facts(spec);
    f.statefulset = Some(live);
    let d = build(&f).unwrap();
    assert!(matches!(
        d.statefulset,
        Some(StatefulSetPlan::ScaleOnly {
            record_inputs_hash: None,
            ..
        })
    ));
    let msg = d.version_blocked.unwrap();
    assert!(
        msg.contains("skips a minor release")
            && msg.contains(
                &k0smotron_api::version::to_image_tag(names::DEFAULT_K0S_VERSION).unwrap()
            ),
        "{msg}"
    );
}

#[test]
fn a_statefulset_made_by_upstream_is_adopted_without_touching_its_template() {
    let mut upstream = applied(
        &build(&facts(K0smotronControlPlaneSpec::default()))
            .unwrap()
            .statefulset,
    );
    upstream.metadata.annotations = Some(BTreeMap::from([(
        statefulset::STATEFULSET_HASH_ANNOTATION.to_string(),
        "6d4b7c9f8".to_string(),
    )]));
    let mut f = facts(K0smotronControlPlaneSpec::default());
    f.statefulset = Some(upstream);
    match build(&f).unwrap().statefulset {
        Some(StatefulSetPlan::ScaleOnly {
            record_inputs_hash: Some(h),
            replicas: 1,
            ..
        }) => assert_eq!(h.len(), 16),
        other => panic!("expected adoption, got {other:?}"),
    }
}

/// A claim template asking for `size`.
fn claim_template(size: &str) -> PersistentVolumeClaimTemplate {
    PersistentVolumeClaimTemplate {
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(size.into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn claim_template_changes_recreate_the_statefulset() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.persistence.type_ = PersistenceType::Pvc;
    spec.persistence.persistent_volume_claim = Some(claim_template("1Gi"));
    let live = applied(&build(&facts(spec.clone())).unwrap().statefulset);
    if let Some(pvc) = spec.persistence.persistent_volume_claim.as_mut() {
        pvc.spec.as_mut().unwrap().resources = Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity("5Gi".into()),
            )])),
            ..Default::default()
        });
    }
    let mut f = facts(spec);
    f.statefulset = Some(live);
    assert!(matches!(
        build(&f).unwrap().statefulset,
        Some(StatefulSetPlan::Recreate(_))
    ));
}

#[test]
fn etcd_keeps_its_first_dns_check_image_and_bootstrap_size() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.replicas = 3;
    let first = build(&facts(spec.clone())).unwrap();
    let mut live = applied(&first.etcd_statefulset);
    assert_eq!(live.spec.replicas, Some(3));
    live.status = Some(k8s_openapi::api::apps::v1::StatefulSetStatus {
        ready_replicas: Some(3),
        ..Default::default()
    });
    // A k0s upgrade and a scale-up do not change the etcd template.
    spec.version = "v1.36.0+k0s.0".into();
    spec.replicas = 5;
    let mut f = facts(spec);
    f.etcd_statefulset = Some(live);
    assert_eq!(
        build(&f).unwrap().etcd_statefulset,
        Some(StatefulSetPlan::ScaleOnly {
            name: "kmc-demo-etcd".into(),
            replicas: 4,
            record_inputs_hash: None
        })
    );
}

#[test]
fn our_expiring_etcd_leaf_is_renewed_a_user_one_is_not() {
    let mut f = facts(K0smotronControlPlaneSpec::default());
    f.now = now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 200))
        .unwrap();
    let d = build(&f).unwrap();
    let renewed: Vec<_> = d
        .renew_secrets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        renewed,
        vec![
            "demo-etcd-server",
            "demo-etcd-peer",
            "demo-apiserver-etcd-client"
        ]
    );
    // The same certificates without our owner reference (user-provided) are left alone.
    for name in [
        "demo-etcd-server",
        "demo-etcd-peer",
        "demo-apiserver-etcd-client",
    ] {
        if let Some(s) = f.secrets.get_mut(name) {
            s.metadata.owner_references = None;
        }
    }
    assert!(build(&f).unwrap().renew_secrets.is_empty());
}

#[test]
fn kubeconfig_is_reused_until_it_must_change() {
    let d = build(&facts(K0smotronControlPlaneSpec::default())).unwrap();
    assert_eq!(d.kubeconfig_regenerated, Some(RegenerateReason::Missing));
    let mut f = facts(K0smotronControlPlaneSpec::default());
    let secret = d.kubeconfig.clone().unwrap();
    f.secrets.insert("demo-kubeconfig".into(), secret.clone());
    let again = build(&f).unwrap();
    assert_eq!(again.kubeconfig_regenerated, None);
    assert_eq!(again.kubeconfig.unwrap().data, secret.data);
    // The endpoint moves: regenerated.
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.external_address = Some("203.0.113.9".into());
    let mut f = facts(spec);
    f.secrets.insert("demo-kubeconfig".into(), secret);
    assert_eq!(
        build(&f).unwrap().kubeconfig_regenerated,
        Some(RegenerateReason::ServerChanged)
    );
}

#[test]
fn a_kubeconfig_someone_else_wrote_is_replaced() {
    let d = build(&facts(K0smotronControlPlaneSpec::default())).unwrap();
    let mut secret = d.kubeconfig.unwrap();
    let ours = String::from_utf8(secret.data.as_ref().unwrap()["value"].0.clone()).unwrap();
    let theirs = ours.replace(
        "    server: https://kmc-demo.tenants.svc:30443\n",
        "    server: https://kmc-demo.tenants.svc:30443\n    proxy-url: http://127.0.0.1:3128\n",
    );
    assert_ne!(theirs, ours);
    secret.data = Some(BTreeMap::from([(
        "value".to_string(),
        ByteString(theirs.into_bytes()),
    )]));
    let mut f = facts(K0smotronControlPlaneSpec::default());
    f.secrets.insert("demo-kubeconfig".into(), secret);
    let d = build(&f).unwrap();
    assert_eq!(
        d.kubeconfig_regenerated,
        Some(RegenerateReason::NotWrittenByUs)
    );
    let value = String::from_utf8(d.kubeconfig.unwrap().data.unwrap()["value"].0.clone()).unwrap();
    assert!(!value.contains("proxy-url"), "{value}");
}

#[test]
fn a_user_set_endpoint_is_used_as_is() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.control_plane_endpoint = Some(ApiEndpoint {
        host: Some("api.example.com".into()),
        port: Some(443),
    });
    let d = build(&facts(spec)).unwrap();
    assert!(!d.publish_endpoint);
    assert_eq!(d.endpoint.unwrap().host.as_deref(), Some("api.example.com"));
    let config = &d.config_maps[0].data.as_ref().unwrap()[entrypoint::K0S_YAML_ENV];
    assert!(
        config.contains("api.example.com"),
        "the endpoint host is a SAN"
    );
}

#[test]
fn invalid_specs_are_refused_before_anything_is_built() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.k0s_config = Some(json!({"apiVersion": "v1", "kind": "ConfigMap"}));
    assert_eq!(
        build(&facts(spec)).unwrap_err().reason(),
        k0smotron_api::conditions::INVALID_SPEC_REASON
    );
}

fn pod_volumes(plan: Option<&StatefulSetPlan>) -> Vec<Volume> {
    let Some(StatefulSetPlan::Apply(sts)) = plan else {
        panic!("expected a full apply, got {plan:?}");
    };
    sts.spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.volumes.clone())
        .unwrap_or_default()
}

#[test]
fn host_path_persistence_is_refused_by_default_before_anything_is_built() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.persistence.type_ = PersistenceType::HostPath;
    spec.persistence.host_path = Some("/var/lib/k0smotron/demo".into());
    let mut f = facts(spec);
    let err = build(&f).unwrap_err();
    assert_eq!(
        err.reason(),
        k0smotron_api::conditions::FIELD_NOT_ALLOWED_REASON
    );
    let message = err.to_string();
    assert!(
        message.contains("spec.persistence.hostPath") && message.contains("--allow-host-path"),
        "{message}"
    );

    f.policy.host_path = true;
    let d = build(&f).unwrap();
    let data = pod_volumes(d.statefulset.as_ref())
        .into_iter()
        .find(|v| v.host_path.is_some())
        .unwrap();
    assert_eq!(
        data.host_path.unwrap().path,
        "/var/lib/k0smotron/demo".to_string()
    );
}

#[test]
fn a_patch_may_not_add_a_host_path_volume_without_the_flag() {
    let host_path_patch = |kind: &str, component: &str, path: &str| ApiPatch {
        target: PatchTarget {
            kind: kind.into(),
            component: component.into(),
        },
        patch: PatchSpec {
            type_: PatchType::Json,
            content: json!([{
                "op": "add",
                "path": path,
                "value": {"name": "node", "hostPath": {"path": "/"}},
            }])
            .to_string(),
        },
    };
    let volumes = "/spec/template/spec/volumes/-";
    for (patch, object) in [
        (
            host_path_patch("StatefulSet", names::component::CONTROL_PLANE, volumes),
            "StatefulSet kmc-demo",
        ),
        (
            host_path_patch("StatefulSet", names::component::ETCD, volumes),
            "StatefulSet kmc-demo-etcd",
        ),
        (
            host_path_patch(
                "CronJob",
                names::component::ETCD,
                "/spec/jobTemplate/spec/template/spec/volumes/-",
            ),
            "CronJob",
        ),
    ] {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.storage.etcd.defrag_job =
            Some(serde_json::from_value(json!({"enabled": true})).unwrap());
        spec.patches = vec![patch];
        let mut f = facts(spec);
        let err = build(&f).unwrap_err();
        assert_eq!(
            err.reason(),
            k0smotron_api::conditions::FIELD_NOT_ALLOWED_REASON,
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("spec.patches")
                && message.contains(object)
                && message.contains("--allow-host-path"),
            "{message}"
        );

        f.policy.host_path = true;
        let d = build(&f).unwrap();
        let patched: Vec<Volume> = match object {
            "StatefulSet kmc-demo" => pod_volumes(d.statefulset.as_ref()),
            "StatefulSet kmc-demo-etcd" => pod_volumes(d.etcd_statefulset.as_ref()),
            _ => d.cron_jobs[0]
                .spec
                .job_template
                .spec
                .as_ref()
                .and_then(|j| j.template.spec.as_ref())
                .and_then(|p| p.volumes.clone())
                .unwrap_or_default(),
        };
        assert!(
            patched
                .iter()
                .any(|v| v.name == "node" && v.host_path.is_some()),
            "{object}: the patch applies with --allow-host-path"
        );
    }

    // Also while the StatefulSet waits for the Service's cluster IP: the Services and ConfigMaps
    // are not written either.
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.patches = vec![host_path_patch(
        "StatefulSet",
        names::component::CONTROL_PLANE,
        volumes,
    )];
    let mut f = facts(spec);
    f.exposure_service = None;
    assert_eq!(
        build(&f).unwrap_err().reason(),
        k0smotron_api::conditions::FIELD_NOT_ALLOWED_REASON
    );
    f.policy.host_path = true;
    let d = build(&f).unwrap();
    assert!(
        d.waiting.is_some() && d.statefulset.is_none(),
        "{:?}",
        d.waiting
    );
}

/// The `tls.key` entries of Secrets a pod's volumes project or mount, by Secret name (a Secret
/// volume without items mounts every key, so it counts too).
fn secret_keys_mounted(pod: &PodSpec) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for v in pod.volumes.iter().flatten() {
        let mut secrets: Vec<(String, Option<Vec<KeyToPath>>)> = Vec::new();
        if let Some(s) = &v.secret {
            secrets.push((s.secret_name.clone().unwrap_or_default(), s.items.clone()));
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(s) = &source.secret {
                secrets.push((s.name.clone(), s.items.clone()));
            }
        }
        for (name, items) in secrets {
            let has_key = match items {
                None => true,
                Some(items) => items.iter().any(|i| i.key == names::TLS_KEY_KEY),
            };
            if has_key {
                out.insert(name);
            }
        }
    }
    out
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn sts_pod(plan: Option<&StatefulSetPlan>) -> PodSpec {
    let Some(StatefulSetPlan::Apply(sts)) = plan else {
        panic!("expected a full apply, got {plan:?}");
    };
    sts.spec.template.spec.clone().unwrap()
}

/// Each pod gets the private keys it uses and no other: k0s the cluster, front-proxy and
/// service-account keys and its etcd client key (never the etcd CA's key); etcd its server and
/// peer keys; the defragmentation job a client key of its own, not etcd's peer key.
#[test]
fn no_pod_mounts_a_key_it_does_not_use() {
    let d = build(&facts(with_defrag(K0smotronControlPlaneSpec::default()))).unwrap();
    assert_eq!(
        secret_keys_mounted(&sts_pod(d.statefulset.as_ref())),
        set(&[
            "demo-apiserver-etcd-client",
            "demo-ca",
            "demo-proxy",
            "demo-sa"
        ])
    );
    let etcd_pod = sts_pod(d.etcd_statefulset.as_ref());
    assert_eq!(
        secret_keys_mounted(&etcd_pod),
        set(&["demo-etcd-peer", "demo-etcd-server"])
    );
    let job_pod = d.cron_jobs[0]
        .spec
        .job_template
        .spec
        .as_ref()
        .and_then(|j| j.template.spec.clone())
        .unwrap();
    assert_eq!(
        secret_keys_mounted(&job_pod),
        set(&["demo-etcd-defrag-client"])
    );
    // The job authenticates with that certificate.
    let args = job_pod.containers[0].args.clone().unwrap();
    assert!(
        args.iter().any(|a| a.ends_with("/client.crt")) && !args.iter().any(|a| a.contains("peer")),
        "{args:?}"
    );

    // With kine, k0s gets nothing of the etcd CA, not even its certificate.
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: Some("sqlite:///var/lib/k0s/db/state.db".into()),
        data_source_secret_name: None,
    });
    let d = build(&facts(spec)).unwrap();
    let k0s_pod = sts_pod(d.statefulset.as_ref());
    assert_eq!(
        secret_keys_mounted(&k0s_pod),
        set(&["demo-ca", "demo-proxy", "demo-sa"])
    );
    assert!(
        !to_json(&k0s_pod).to_string().contains("demo-etcd"),
        "kine: the k0s pods mount nothing of the etcd CA"
    );
}

/// k0s's pki directory, where `certs-init` copies the keys and k0s signs its own, is an in-memory
/// volume of the pod: no key reaches the data volume (an emptyDir, a node directory or a claim
/// that may be retained), and what older providers left there is removed.
#[test]
fn keys_never_reach_the_data_volume() {
    for persistence in [
        PersistenceType::EmptyDir,
        PersistenceType::HostPath,
        PersistenceType::Pvc,
    ] {
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.persistence.type_ = persistence;
        spec.persistence.host_path = Some("/var/lib/k0smotron/demo".into());
        spec.persistence.persistent_volume_claim = Some(claim_template("1Gi"));
        let mut f = facts(spec);
        f.policy.host_path = true;
        let d = build(&f).unwrap();
        let pod = sts_pod(d.statefulset.as_ref());
        let pki = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "k0smotron-pki")
            .unwrap();
        assert_eq!(
            pki.empty_dir.as_ref().and_then(|e| e.medium.as_deref()),
            Some("Memory")
        );
        let mount_at = |c: &Container, path: &str| {
            c.volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path == path)
                .map(|m| m.name.clone())
        };
        let init = &pod.init_containers.as_ref().unwrap()[0];
        let controller = &pod.containers[0];
        assert_eq!(init.name, "certs-init");
        for c in [init, controller] {
            assert_eq!(
                mount_at(c, statefulset::K0S_PKI_DIR).as_deref(),
                Some("k0smotron-pki"),
                "{}",
                c.name
            );
        }
        let script = init.command.as_ref().unwrap().join(" ");
        assert!(
            script.contains(&format!("cp /certs-init/*.* {}/", statefulset::K0S_PKI_DIR)),
            "{script}"
        );
        // The old pki directory on the data volume is emptied.
        let data = mount_at(controller, statefulset::K0S_DATA_DIR).unwrap();
        let old = init
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == data)
            .unwrap();
        assert!(
            script.contains(&format!("rm -rf {}/pki/*", old.mount_path)),
            "{script}"
        );
    }
}

/// The defragmentation job's certificate is generated once, signed by the etcd CA, read as it is
/// on every later reconcile, renewed only when ours and due, and not made without the job.
#[test]
fn the_defrag_client_certificate_is_generated_once_and_kept() {
    let mut f = facts(with_defrag(K0smotronControlPlaneSpec::default()));
    f.secrets.remove("demo-etcd-defrag-client");
    let d = build(&f).unwrap();
    assert_eq!(created_names(&d), vec!["demo-etcd-defrag-client"]);
    let data = d.create_secrets[0].data.clone().unwrap();
    let cert = String::from_utf8(data["tls.crt"].0.clone()).unwrap();
    let ca = String::from_utf8(
        f.secrets["demo-etcd"].data.as_ref().unwrap()["tls.crt"]
            .0
            .clone(),
    )
    .unwrap();
    assert!(certs::is_signed_by(&cert, &ca));
    let info = certs::cert_info(&cert, "defrag").unwrap();
    assert_eq!(info.common_name.as_deref(), Some("etcd-defrag"));
    assert_eq!(
        d.create_secrets[0]
            .metadata
            .owner_references
            .as_ref()
            .unwrap()[0]
            .uid,
        UID
    );
    assert!(secret_names(&f.cp.spec, CLUSTER).contains(&"demo-etcd-defrag-client".to_string()));

    // Present: nothing is created or renewed (a provider restart does not re-mint it).
    let f = facts(with_defrag(K0smotronControlPlaneSpec::default()));
    let d = build(&f).unwrap();
    assert!(d.create_secrets.is_empty() && d.renew_secrets.is_empty());

    // Past half its lifetime: renewed if ours, left alone if not.
    let mut f = facts(with_defrag(K0smotronControlPlaneSpec::default()));
    f.now = now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 200))
        .unwrap();
    let renewed = created_or_renewed(&build(&f).unwrap());
    assert!(
        renewed.contains(&"demo-etcd-defrag-client".to_string()),
        "{renewed:?}"
    );
    if let Some(s) = f.secrets.get_mut("demo-etcd-defrag-client") {
        s.metadata.owner_references = None;
    }
    let renewed = created_or_renewed(&build(&f).unwrap());
    assert!(
        !renewed.contains(&"demo-etcd-defrag-client".to_string()),
        "{renewed:?}"
    );

    // Without the job: neither made nor read.
    let mut f = facts(K0smotronControlPlaneSpec::default());
    f.secrets.remove("demo-etcd-defrag-client");
    let d = build(&f).unwrap();
    assert!(d.create_secrets.is_empty() && d.cron_jobs.is_empty());
    assert!(!secret_names(&f.cp.spec, CLUSTER).contains(&"demo-etcd-defrag-client".to_string()));
}

fn created_or_renewed(d: &DesiredState) -> Vec<String> {
    d.create_secrets
        .iter()
        .chain(&d.renew_secrets)
        .map(|s| s.metadata.name.clone().unwrap())
        .collect()
}

#[test]
fn ipv6_server_urls_are_bracketed() {
    assert_eq!(server_url("fd00::1", 6443), "https://[fd00::1]:6443");
    assert_eq!(server_url("10.0.0.1", 6443), "https://10.0.0.1:6443");
}

/// Everything a build writes, as JSON, with every controller owner reference replaced by a
/// placeholder and the kubeconfig's data left out (each build without a stored kubeconfig mints
/// a fresh client key).
fn written_objects(d: &DesiredState) -> serde_json::Value {
    fn plan(p: &Option<StatefulSetPlan>) -> serde_json::Value {
        match p {
            Some(StatefulSetPlan::Apply(s) | StatefulSetPlan::Recreate(s)) => json!(s),
            Some(other) => json!(format!("{other:?}")),
            None => json!(null),
        }
    }
    let mut kubeconfig = d.kubeconfig.clone();
    if let Some(k) = kubeconfig.as_mut() {
        k.data = None;
    }
    let mut all = json!({
        "create_secrets": d.create_secrets,
        "renew_secrets": d.renew_secrets,
        "kubeconfig": kubeconfig,
        "config_maps": d.config_maps,
        "services": d.services,
        "statefulset": plan(&d.statefulset),
        "etcd_statefulset": plan(&d.etcd_statefulset),
        "cron_jobs": d.cron_jobs,
        "endpoint": d.endpoint,
        "external_address": d.external_address,
        "selector": d.selector,
    });
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if map.contains_key("ownerReferences") {
                    map.insert("ownerReferences".into(), json!("<owner>"));
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut all);
    all
}

#[test]
fn a_standalone_cluster_gets_the_objects_of_a_control_plane_of_the_same_spec_but_its_owner() {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.replicas = 3;
    spec.service.type_ = ServiceType::NodePort;
    spec.external_address = Some("203.0.113.7".into());
    spec.k0s_config = Some(json!({"spec": {"telemetry": {"enabled": false}}}));
    let capi = facts(spec.clone());
    let mut cluster =
        k0smotron_api::k0smotron::v1beta2::Cluster::new(CLUSTER, spec.cluster.clone());
    cluster.metadata.namespace = Some(NS.into());
    cluster.metadata.uid = Some(UID.into());
    let standalone = Facts {
        cp: ControlPlane::from_cluster(&cluster).unwrap(),
        ..capi.clone()
    };
    let (a, b) = (build(&capi).unwrap(), build(&standalone).unwrap());
    assert_eq!(written_objects(&a), written_objects(&b));
    assert_eq!(
        (a.owner.api_version.as_str(), a.owner.kind.as_str()),
        (
            "controlplane.cluster.x-k8s.io/v1beta2",
            "K0smotronControlPlane"
        )
    );
    assert_eq!(
        (b.owner.api_version.as_str(), b.owner.kind.as_str()),
        ("k0smotron.io/v1beta2", "Cluster")
    );
    // Every object the standalone build writes is controlled by the Cluster.
    let owners = |d: &DesiredState| -> Vec<OwnerReference> {
        let mut metas: Vec<&ObjectMeta> = Vec::new();
        metas.extend(d.config_maps.iter().map(|o| &o.metadata));
        metas.extend(d.services.iter().map(|o| &o.metadata));
        metas.extend(d.cron_jobs.iter().map(|o| &o.metadata));
        metas.extend(d.kubeconfig.iter().map(|o| &o.metadata));
        if let Some(StatefulSetPlan::Apply(s)) = &d.statefulset {
            metas.push(&s.metadata);
        }
        metas
            .into_iter()
            .flat_map(|m| m.owner_references.clone().unwrap_or_default())
            .collect()
    };
    let standalone_owners = owners(&b);
    assert!(standalone_owners.len() >= 5, "{standalone_owners:?}");
    assert!(standalone_owners.iter().all(|o| o == &b.owner));
}

/// A panic while building is this control plane's error, with the internal-error reason, and the
/// provider goes on.
#[test]
fn a_panic_while_building_is_an_error_of_that_control_plane() {
    let err = super::catch_panic::<()>(|| panic!("boom {}", 1)).unwrap_err();
    assert!(
        matches!(&err, BuildError::Panicked(m) if m == "boom 1"),
        "{err}"
    );
    assert_eq!(
        err.reason(),
        k0smotron_api::conditions::INTERNAL_ERROR_REASON
    );
    let err = super::catch_panic::<()>(|| panic!("static")).unwrap_err();
    assert!(
        matches!(&err, BuildError::Panicked(m) if m == "static"),
        "{err}"
    );
    // Without a panic, the result passes through.
    assert!(build_guarded(&facts(K0smotronControlPlaneSpec::default())).is_ok());
}

/// The inputs hash of the k0s StatefulSet `d` applies (what decides whether the pods roll).
fn inputs_hash(d: &DesiredState) -> String {
    let Some(StatefulSetPlan::Apply(sts)) = &d.statefulset else {
        panic!("expected a full apply");
    };
    annotation(&sts.metadata, INPUTS_HASH_ANNOTATION)
        .unwrap()
        .to_string()
}

fn pushed(d: &DesiredState) -> (&serde_json::Value, &str) {
    match &d.dynamic_config {
        DynamicConfig::Push { object, hash } => (object, hash.as_str()),
        other => panic!("expected a push, got {other:?}"),
    }
}

fn with_k0s_config(spec: serde_json::Value) -> K0smotronControlPlaneSpec {
    let mut s = K0smotronControlPlaneSpec::default();
    s.storage.type_ = StorageType::Kine;
    s.storage.kine = Some(KineSpec {
        data_source_url: Some("postgres://user:secret@db:5432/k0s".into()),
        data_source_secret_name: None,
    });
    s.k0s_config = Some(json!({"apiVersion": "k0s.k0sproject.io/v1beta1",
        "kind": "ClusterConfig", "spec": spec}));
    s
}

#[test]
fn a_dynamic_only_change_keeps_the_pods_and_changes_what_is_pushed() {
    let before = build(&facts(with_k0s_config(
        json!({"telemetry": {"enabled": true}}),
    )))
    .unwrap();
    let after = build(&facts(with_k0s_config(json!({
        "telemetry": {"enabled": false},
        "extensions": {"helm": {"charts": [{"name": "x", "chartname": "r/x", "namespace": "default"}]}},
        "network": {"kuberouter": {"mtu": 1300}}
    }))))
    .unwrap();
    // The ConfigMap carries the whole config (k0s reads it on its first start)...
    assert_ne!(before.config_maps[0].data, after.config_maps[0].data);
    // ...but the pod template, and so the pods, stay.
    assert_eq!(inputs_hash(&before), inputs_hash(&after));
    // The change goes to kube-system/k0s instead.
    let (object, hash) = pushed(&after);
    assert_ne!(pushed(&before).1, hash);
    assert_eq!(
        object.pointer("/spec/extensions/helm/charts/0/name"),
        Some(&json!("x"))
    );
    assert_eq!(
        object["metadata"],
        json!({"name": "k0s", "namespace": "kube-system"})
    );
    // Node-only fields never leave the management cluster: no storage (nor its DSN), no API.
    assert_eq!(object.pointer("/spec/storage"), None);
    assert_eq!(object.pointer("/spec/api"), None);
    assert!(!object.to_string().contains("secret@db"), "{object}");
}

#[test]
fn a_static_change_rolls_the_pods_and_pushes_nothing_new() {
    let before = build(&facts(with_k0s_config(
        json!({"telemetry": {"enabled": false}}),
    )))
    .unwrap();
    let after = build(&facts(with_k0s_config(json!({
        "telemetry": {"enabled": false},
        "api": {"extraArgs": {"event-ttl": "2h"}}
    }))))
    .unwrap();
    assert_ne!(inputs_hash(&before), inputs_hash(&after));
    assert_eq!(pushed(&before), pushed(&after));
    // Cluster-wide fields k0s hands only to components it starts once roll the pods too.
    for start_only in [
        json!({"konnectivity": {"adminPort": 8134}}),
        json!({"featureGates": [{"name": "X", "enabled": true}]}),
        json!({"network": {"dualStack": {"enabled": true}}}),
    ] {
        let mut spec = start_only.clone();
        spec["telemetry"] = json!({"enabled": false});
        let changed = build(&facts(with_k0s_config(spec))).unwrap();
        assert_ne!(inputs_hash(&before), inputs_hash(&changed), "{start_only}");
        assert_ne!(pushed(&before).1, pushed(&changed).1, "{start_only}");
    }
}

#[test]
fn dynamic_config_turned_off_by_a_flag_rolls_on_every_config_change() {
    let off = |spec: serde_json::Value| {
        let mut s = with_k0s_config(spec);
        s.control_plane_flags = vec!["--enable-dynamic-config=false".into()];
        build(&facts(s)).unwrap()
    };
    let before = off(json!({"telemetry": {"enabled": true}}));
    let after = off(json!({"telemetry": {"enabled": false}}));
    assert_eq!(before.dynamic_config, DynamicConfig::Disabled);
    assert_ne!(inputs_hash(&before), inputs_hash(&after));
}

#[test]
fn a_patch_that_breaks_the_config_yaml_rolls_and_pushes_nothing() {
    let mut spec = with_k0s_config(json!({"telemetry": {"enabled": false}}));
    spec.patches = vec![ApiPatch {
        target: PatchTarget {
            kind: "ConfigMap".into(),
            component: "cluster-config".into(),
        },
        patch: PatchSpec {
            type_: PatchType::Merge,
            content: "data:\n  K0SMOTRON_K0S_YAML: \"- just\\n- a list\\n\"\n".into(),
        },
    }];
    let d = build(&facts(spec)).unwrap();
    assert!(
        matches!(&d.dynamic_config, DynamicConfig::Unreadable(why) if why.contains("not a YAML object")),
        "{:?}",
        d.dynamic_config
    );
}

fn nats_spec(replicas: i32) -> K0smotronControlPlaneSpec {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.replicas = replicas;
    spec.storage.type_ = StorageType::Nats;
    spec
}

#[test]
fn nats_storage_gets_its_service_token_claim_and_kine_datasource() {
    let d = build(&facts(nats_spec(3))).unwrap();
    let service = d
        .services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("kmc-demo-nats"))
        .unwrap();
    let svc = service.spec.as_ref().unwrap();
    assert_eq!(svc.cluster_ip.as_deref(), Some("None"));
    assert_eq!(svc.publish_not_ready_addresses, Some(true));
    assert!(!d.obsolete_services.contains(&"kmc-demo-nats".to_string()));
    let token = d
        .create_secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("kmc-demo-nats-token"))
        .unwrap();
    assert_eq!(token.data.as_ref().unwrap()["token"].0.len(), 64);

    let Some(StatefulSetPlan::Apply(sts)) = &d.statefulset else {
        panic!("expected a full apply, got {:?}", d.statefulset);
    };
    let spec = &sts.spec;
    assert_eq!(spec.service_name.as_deref(), Some("kmc-demo-nats"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    let claims: Vec<_> = spec
        .volume_claim_templates
        .iter()
        .flatten()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(claims, ["nats-data"]);
    let container = &spec.template.spec.as_ref().unwrap().containers[0];
    let env: Vec<_> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert!(env.contains(&"K0SMOTRON_NATS_TOKEN"), "{env:?}");
    assert!(
        container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "nats-data" && m.mount_path == "/nats-data")
    );
    let config = &d.config_maps[0].data.as_ref().unwrap()[entrypoint::K0S_YAML_ENV];
    assert!(
        config.contains("nats://?serverConfig=/etc/nats/nats.conf&replicas=3"),
        "{config}"
    );
}

#[test]
fn an_existing_nats_token_is_kept_and_a_bad_one_refused() {
    let mut f = facts(nats_spec(1));
    let mut token = crate::nats::token_secret(CLUSTER, "ns", &f.cp.owner);
    f.secrets
        .insert("kmc-demo-nats-token".into(), token.clone());
    let d = build(&f).unwrap();
    assert!(
        d.create_secrets
            .iter()
            .all(|s| s.metadata.name.as_deref() != Some("kmc-demo-nats-token")),
        "an existing token is never replaced"
    );
    token.data = Some(BTreeMap::from([(
        "token".to_string(),
        k8s_openapi::ByteString(b"not a token".to_vec()),
    )]));
    f.secrets.insert("kmc-demo-nats-token".into(), token);
    let err = build(&f).unwrap_err();
    assert_eq!(err.reason(), k0smotron_api::conditions::INVALID_SPEC_REASON);
    assert!(err.to_string().contains("letters and digits"), "{err}");
}

#[test]
fn other_storage_deletes_the_nats_service_and_a_clashing_volume_name_is_refused() {
    let d = build(&facts(K0smotronControlPlaneSpec::default())).unwrap();
    assert!(d.obsolete_services.contains(&"kmc-demo-nats".to_string()));
    let mut spec = nats_spec(1);
    spec.mounts =
        vec![serde_json::from_value(json!({"path": "/nats-data", "emptyDir": {}})).unwrap()];
    let err = build(&facts(spec)).unwrap_err();
    assert_eq!(err.reason(), k0smotron_api::conditions::INVALID_SPEC_REASON);
    assert!(err.to_string().contains("nats-data"), "{err}");
}

fn monitoring_spec(monitoring: serde_json::Value) -> K0smotronControlPlaneSpec {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.monitoring = Some(serde_json::from_value(monitoring).unwrap());
    spec
}

#[test]
fn monitoring_with_upstreams_default_images() {
    let d = build(&facts(monitoring_spec(json!({"enabled": true})))).unwrap();
    insta::assert_snapshot!(snapshot(&d));
}

#[test]
fn monitoring_adds_its_objects_and_sidecars_and_nothing_without_it() {
    let plain = build(&facts(K0smotronControlPlaneSpec::default())).unwrap();
    // Present but disabled is the same as absent: same template, same inputs hash, no pod roll.
    let disabled = build(&facts(monitoring_spec(json!({"enabled": false})))).unwrap();
    assert_eq!(plain.statefulset, disabled.statefulset);
    assert_eq!(plain.config_maps, disabled.config_maps);
    assert!(
        plain
            .obsolete_services
            .contains(&"kmc-demo-metrics".to_string())
    );
    assert!(
        plain
            .config_maps
            .iter()
            .all(|c| c.metadata.name.as_deref() != Some("kmc-prometheus-demo-config"))
    );

    let d = build(&facts(monitoring_spec(
        json!({"enabled": true, "prometheusImage": "p:1", "proxyImage": "n:1"}),
    )))
    .unwrap();
    assert!(
        !d.obsolete_services
            .contains(&"kmc-demo-metrics".to_string())
    );
    assert!(
        d.services
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some("kmc-demo-metrics"))
    );
    let cm = d
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("kmc-prometheus-demo-config"))
        .unwrap();
    let data = cm.data.as_ref().unwrap();
    assert!(data["prometheus.yml"].contains("localhost:30443"));
    assert!(data["prometheus.yml"].contains("kmc-demo-etcd:2379"));
    assert!(data["nginx.conf"].contains("listen 8090;"));
    let (Some(StatefulSetPlan::Apply(sts)), Some(StatefulSetPlan::Apply(before))) =
        (&d.statefulset, &plain.statefulset)
    else {
        panic!("expected full applies");
    };
    assert_ne!(
        annotation(&sts.metadata, INPUTS_HASH_ANNOTATION),
        annotation(&before.metadata, INPUTS_HASH_ANNOTATION),
        "enabling monitoring rolls the pods"
    );
    let template = &sts.spec.template;
    let pod = template.spec.as_ref().unwrap();
    let images: Vec<_> = pod
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.image.as_deref().unwrap()))
        .collect();
    assert_eq!(
        images[1..],
        [("monitoring-agent", "p:1"), ("monitoring-proxy", "n:1")]
    );
    // The k0s container is the same as without monitoring.
    assert_eq!(
        pod.containers[0],
        before.spec.template.spec.as_ref().unwrap().containers[0]
    );
    let annotations = template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "8090");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    // Every mount of the sidecars has its volume.
    let volumes: BTreeSet<_> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    for c in &pod.containers[1..] {
        for m in c.volume_mounts.iter().flatten() {
            assert!(
                volumes.contains(m.name.as_str()),
                "{} has no volume",
                m.name
            );
        }
    }
    // The agent reads k0s's keys but cannot change them.
    let pki = pod.containers[1]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/var/lib/k0s/pki")
        .unwrap();
    assert_eq!(pki.read_only, Some(true));
}

#[test]
fn monitoring_without_etcd_has_no_etcd_job_and_needs_its_images() {
    let mut spec = monitoring_spec(json!({"enabled": true}));
    spec.storage.type_ = StorageType::Nats;
    let d = build(&facts(spec)).unwrap();
    let cm = d
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("kmc-prometheus-demo-config"))
        .unwrap();
    let prometheus = &cm.data.as_ref().unwrap()["prometheus.yml"];
    assert!(
        !prometheus.contains("k0smotron_etcd_metrics"),
        "{prometheus}"
    );

    let err = build(&facts(monitoring_spec(
        json!({"enabled": true, "proxyImage": " "}),
    )))
    .unwrap_err();
    assert_eq!(err.reason(), k0smotron_api::conditions::INVALID_SPEC_REASON);
    assert!(
        err.to_string().contains("spec.monitoring.proxyImage"),
        "{err}"
    );
    // Not checked while disabled: upstream manifests may carry anything there.
    build(&facts(monitoring_spec(
        json!({"enabled": false, "proxyImage": ""}),
    )))
    .unwrap();
}

fn ingress_spec(deploy: bool) -> K0smotronControlPlaneSpec {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.ingress = Some(
        serde_json::from_value(json!({
            "deploy": deploy,
            "apiHost": "api.demo.example.com",
            "konnectivityHost": "konnectivity.demo.example.com",
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"},
        }))
        .unwrap(),
    );
    spec
}

fn k0s_yaml(d: &DesiredState) -> serde_json::Value {
    let text = &d.config_maps[0].data.as_ref().unwrap()[entrypoint::K0S_YAML_ENV];
    serde_saphyr::from_str(text).unwrap()
}

fn kubeconfig_server(d: &DesiredState) -> String {
    let secret = d.kubeconfig.as_ref().unwrap();
    let text = String::from_utf8(secret.data.as_ref().unwrap()["value"].0.clone()).unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    doc["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `spec.ingress` (issue #13 part 3): the Ingress routes both hosts to the exposure Service, and
/// every address clients get is the ingress's: endpoint, kubeconfig, k0s external addresses.
#[test]
fn ingress_routes_both_hosts_and_clients_use_the_ingress() {
    let d = build(&facts(ingress_spec(true))).unwrap();
    assert_eq!(
        d.endpoint,
        Some(ApiEndpoint {
            host: Some("api.demo.example.com".into()),
            port: Some(443)
        })
    );
    assert_eq!(kubeconfig_server(&d), "https://api.demo.example.com:443");
    let k0s = k0s_yaml(&d);
    assert_eq!(
        k0s["spec"]["api"]["externalAddress"],
        "api.demo.example.com:443"
    );
    assert_eq!(
        k0s["spec"]["konnectivity"]["externalAddress"],
        "konnectivity.demo.example.com:443"
    );
    assert_eq!(
        k0s["spec"]["api"]["extraArgs"]["endpoint-reconciler-type"],
        "none"
    );
    let sans = k0s["spec"]["api"]["sans"].as_array().unwrap();
    for san in [
        "api.demo.example.com",
        "konnectivity.demo.example.com",
        "localhost",
        "127.0.0.1",
        "kmc-demo.tenants.svc",
    ] {
        assert!(sans.contains(&json!(san)), "{san} in {sans:?}");
    }
    let ingress = d.ingress.as_ref().unwrap();
    assert_eq!(ingress.metadata.name.as_deref(), Some("kmc-demo"));
    assert_eq!(d.obsolete_ingress, None);
    let rules: Vec<(String, String, i32)> = ingress
        .spec
        .as_ref()
        .unwrap()
        .rules
        .iter()
        .flatten()
        .map(|r| {
            let backend = r.http.as_ref().unwrap().paths[0]
                .backend
                .service
                .clone()
                .unwrap();
            (
                r.host.clone().unwrap(),
                backend.name,
                backend.port.unwrap().number.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("api.demo.example.com".into(), "kmc-demo".into(), 30443),
            (
                "konnectivity.demo.example.com".into(),
                "kmc-demo".into(),
                30132
            ),
        ]
    );
    // The endpoint manifest the workload cluster gets names the ingress too.
    let endpoint = d
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("kmc-demo-endpoint"))
        .unwrap();
    let manifest = &endpoint.data.as_ref().unwrap()["endpoint.yaml"];
    assert!(manifest.contains("api.demo.example.com"), "{manifest}");
    assert!(
        manifest.contains("'443'") || manifest.contains("\"443\""),
        "{manifest}"
    );
    insta::assert_snapshot!(snapshot(&d));
}

/// Behind an Ingress nothing waits for a LoadBalancer address or a node: the API host is known.
#[test]
fn ingress_with_a_load_balancer_service_does_not_wait_for_its_address() {
    let mut spec = ingress_spec(true);
    spec.service.type_ = ServiceType::LoadBalancer;
    let d = build(&facts(spec)).unwrap();
    assert_eq!(d.waiting, None);
    assert!(d.statefulset.is_some());
    let ingress = d.ingress.unwrap();
    let rule = &ingress.spec.unwrap().rules.unwrap()[0];
    assert_eq!(
        rule.http.as_ref().unwrap().paths[0]
            .backend
            .service
            .as_ref()
            .unwrap()
            .name,
        "kmc-demo-lb"
    );
}

/// `deploy: false`: the same config, endpoint and kubeconfig, but no Ingress of ours (one we
/// made before is deleted); without `spec.ingress` ours is deleted too.
#[test]
fn ingress_without_deploy_writes_no_ingress_and_expects_the_users() {
    let deployed = build(&facts(ingress_spec(true))).unwrap();
    let own = build(&facts(ingress_spec(false))).unwrap();
    assert!(own.ingress.is_none());
    assert_eq!(own.obsolete_ingress.as_deref(), Some("kmc-demo"));
    assert_eq!(own.endpoint, deployed.endpoint);
    assert_eq!(k0s_yaml(&own), k0s_yaml(&deployed));
    assert_eq!(kubeconfig_server(&own), kubeconfig_server(&deployed));
    let plain = build(&facts(K0smotronControlPlaneSpec::default())).unwrap();
    assert!(plain.ingress.is_none());
    assert_eq!(plain.obsolete_ingress.as_deref(), Some("kmc-demo"));
}

/// Moving behind an Ingress changes the kubeconfig's server: it is regenerated.
#[test]
fn moving_behind_an_ingress_regenerates_the_kubeconfig() {
    let d = build(&facts(K0smotronControlPlaneSpec::default())).unwrap();
    let mut f = facts(ingress_spec(true));
    f.secrets
        .insert("demo-kubeconfig".into(), d.kubeconfig.unwrap());
    assert_eq!(
        build(&f).unwrap().kubeconfig_regenerated,
        Some(RegenerateReason::ServerChanged)
    );
}

#[test]
fn an_ingress_host_that_is_not_a_dns_name_is_an_invalid_spec() {
    let mut spec = ingress_spec(true);
    spec.ingress.as_mut().unwrap().konnectivity_host = "konn\nectivity".into();
    let err = build(&facts(spec)).unwrap_err();
    assert_eq!(err.reason(), k0smotron_api::conditions::INVALID_SPEC_REASON);
    assert!(
        err.to_string().contains("spec.ingress.konnectivityHost"),
        "{err}"
    );
}

fn haproxy_secret(d: &DesiredState) -> Option<&Secret> {
    d.create_secrets
        .iter()
        .chain(&d.renew_secrets)
        .find(|s| s.metadata.name.as_deref() == Some("demo-ingress-haproxy"))
}

fn secret_text(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

fn controller_pod(d: &DesiredState) -> PodSpec {
    match &d.statefulset {
        Some(StatefulSetPlan::Apply(sts)) => sts.spec.clone().template.spec.unwrap(),
        other => panic!("expected a full apply, got {other:?}"),
    }
}

/// Behind an Ingress (issue #13 part 3, workload side): the manifests ConfigMap
/// `kmc-demo-ingress`, mounted where k0s reads manifests, and HAProxy's certificate, signed by
/// the cluster CA for the `kubernetes` Service's names, for server authentication only.
#[test]
fn ingress_ships_the_haproxy_manifests_and_a_certificate_of_the_cluster_ca() {
    let f = facts(ingress_spec(true));
    let d = build(&f).unwrap();
    let cm = d
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("kmc-demo-ingress"))
        .unwrap();
    assert_eq!(
        cm.metadata.labels.as_ref().unwrap()[names::APP_COMPONENT_LABEL],
        "ingress"
    );
    assert_eq!(cm.metadata.owner_references, Some(vec![f.cp.owner.clone()]));
    let data = cm.data.as_ref().unwrap();
    assert_eq!(data.len(), 4);
    let service: serde_json::Value = serde_saphyr::from_str(&data["3_kube-service.yaml"]).unwrap();
    assert_eq!(service["spec"]["clusterIP"], "10.96.0.1");
    assert!(
        data["1_haproxy-configmap.yaml"].contains("api.demo.example.com:443 ssl verify required")
    );

    let pod = controller_pod(&d);
    assert!(pod.volumes.unwrap().iter().any(|v| {
        v.config_map
            .as_ref()
            .is_some_and(|c| c.name == "kmc-demo-ingress")
    }));
    assert!(
        pod.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.name == "kmc-demo-ingress"
                && m.mount_path == "/var/lib/k0s/manifests/kmc-demo-ingress")
    );

    let secret = haproxy_secret(&d).unwrap();
    assert!(d.create_secrets.iter().any(|s| std::ptr::eq(s, secret)));
    assert_eq!(secret.type_.as_deref(), Some(names::CAPI_SECRET_TYPE));
    assert_eq!(
        secret.metadata.owner_references,
        Some(vec![f.cp.owner.clone()])
    );
    let cert = secret_text(secret, "tls.crt");
    let ca = secret_text(&f.secrets["demo-ca"], "tls.crt");
    assert!(certs::is_signed_by(&cert, &ca));
    certs::check_key(&secret_text(secret, "tls.key"), "haproxy").unwrap();
    let info = certs::cert_info(&cert, "haproxy").unwrap();
    let mut sans = info.sans.clone();
    sans.sort();
    assert_eq!(
        sans,
        [
            "10.96.0.1",
            "127.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost"
        ]
    );
    use rustls_pki_types::pem::PemObject as _;
    let der = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let ku = x509.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    assert!(!x509.is_ca());
}

/// HAProxy's certificate is kept while it fits; renewed (its Secret replaced) at half-life or when
/// the names change (another service CIDR); a Secret of that name that is not ours is only read.
#[test]
fn the_haproxy_certificate_is_kept_renewed_or_left_alone() {
    let mut f = facts(ingress_spec(true));
    let first = build(&f).unwrap();
    let secret = haproxy_secret(&first).unwrap().clone();
    f.secrets
        .insert("demo-ingress-haproxy".into(), secret.clone());
    let kept = build(&f).unwrap();
    assert!(haproxy_secret(&kept).is_none());

    let mut later = f.clone();
    later.now = f
        .now
        .checked_add(jiff::SignedDuration::from_hours(24 * 200))
        .unwrap();
    let renewed = build(&later).unwrap();
    assert!(
        renewed
            .renew_secrets
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some("demo-ingress-haproxy"))
    );

    let mut moved = f.clone();
    let mut spec = ingress_spec(true);
    spec.k0s_config = Some(json!({"spec": {"network": {"serviceCIDR": "10.100.0.0/16"}}}));
    moved.cp = ControlPlane::from_kcp(&kcp(spec), false).unwrap();
    let d = build(&moved).unwrap();
    let fresh = haproxy_secret(&d).unwrap();
    let info = certs::cert_info(&secret_text(fresh, "tls.crt"), "haproxy").unwrap();
    assert!(
        info.sans.contains(&"10.100.0.1".to_string()),
        "{:?}",
        info.sans
    );

    let mut users = secret;
    users.metadata.owner_references = None;
    later.secrets.insert("demo-ingress-haproxy".into(), users);
    assert!(haproxy_secret(&build(&later).unwrap()).is_none());
}

/// Without `spec.ingress`: no HAProxy certificate, no ingress manifests, nothing mounted.
#[test]
fn no_ingress_no_haproxy() {
    let d = build(&facts(K0smotronControlPlaneSpec::default())).unwrap();
    assert!(haproxy_secret(&d).is_none());
    assert!(
        d.config_maps
            .iter()
            .all(|c| c.metadata.name.as_deref() != Some("kmc-demo-ingress"))
    );
    assert!(
        controller_pod(&d)
            .volumes
            .unwrap()
            .iter()
            .all(|v| v.name != "kmc-demo-ingress")
    );
    assert!(
        !crate::build::secret_names(&K0smotronControlPlaneSpec::default(), "demo")
            .contains(&"demo-ingress-haproxy".to_string())
    );
    assert!(
        crate::build::secret_names(&ingress_spec(true), "demo")
            .contains(&"demo-ingress-haproxy".to_string())
    );
}

/// `spec.remoteHostCluster`: every child is controlled by the root owner in the hosting cluster,
/// except the `<cluster>-kubeconfig` Secret, which stays with the control-plane object in the
/// management cluster.
#[test]
fn a_hosted_control_planes_children_are_the_root_owners_but_its_kubeconfig() {
    let root = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "demo-root-owner".into(),
        uid: "root-uid".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut f = facts_with(with_defrag(K0smotronControlPlaneSpec::default()));
    let object_owner = f.cp.owner.clone();
    f.cp = f.cp.hosted_by(root.clone());
    let d = build(&f).unwrap();
    let owners = |meta: &ObjectMeta| meta.owner_references.clone().unwrap_or_default();
    let mut children: Vec<&ObjectMeta> = Vec::new();
    children.extend(d.create_secrets.iter().map(|s| &s.metadata));
    children.extend(d.config_maps.iter().map(|s| &s.metadata));
    children.extend(d.services.iter().map(|s| &s.metadata));
    children.extend(d.cron_jobs.iter().map(|s| &s.metadata));
    for plan in [&d.statefulset, &d.etcd_statefulset] {
        match plan {
            Some(StatefulSetPlan::Apply(sts)) => children.push(&sts.metadata),
            other => panic!("expected a full apply, got {other:?}"),
        }
    }
    assert!(children.len() > 10, "{}", children.len());
    for meta in children {
        assert_eq!(owners(meta), vec![root.clone()], "{:?}", meta.name);
    }
    assert_eq!(d.owner, root);
    let kubeconfig = d.kubeconfig.unwrap();
    assert_eq!(owners(&kubeconfig.metadata), vec![object_owner]);
}

/// The objects of `tests/fixtures/upstream-v2/control-plane.yaml` (a control plane as upstream
/// k0smotron v2.1.0 makes it, used by the migration harness test), placeholders filled with
/// dummies.
fn upstream_fixture() -> Vec<serde_json::Value> {
    let mut text = include_str!("../tests/fixtures/upstream-v2/control-plane.yaml").to_string();
    for (key, value) in [
        ("NAMESPACE", NS),
        ("KCP_UID", UID),
        ("KMC_UID", "4f0c2a8e-0000-4000-8000-000000000002"),
        ("API_PORT", "30443"),
    ] {
        text = text.replace(&format!("${{{key}}}"), value);
    }
    for key in [
        "CA_CRT",
        "CA_KEY",
        "PROXY_CRT",
        "PROXY_KEY",
        "SA_PUB",
        "SA_KEY",
        "ETCD_CRT",
        "ETCD_KEY",
        "KUBECONFIG",
    ] {
        text = text.replace(&format!("${{{key}}}"), "eA==");
    }
    assert!(!text.contains("${"));
    serde_saphyr::from_multiple(&text).unwrap()
}

fn labels_of(value: &serde_json::Value) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

/// What the migration relies on (docs/migration.md): for the spec of the fixture, we build
/// every object upstream made under the same name, with the same labels, the same immutable
/// StatefulSet selector and the same Service selector, and we adopt upstream's StatefulSet
/// without touching its template. If upstream's shapes and ours drift apart, this fails before
/// the harness test does.
#[test]
fn the_objects_of_an_upstream_control_plane_are_ours_by_name_label_and_selector() {
    let fixture = upstream_fixture();
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.version = "v1.35.4+k0s.0".into();
    spec.external_address = Some("127.0.0.1".into());
    spec.service.api_port = 30443;
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: Some(
            "sqlite:///var/lib/k0s/db/state.db?mode=rwc&_journal=WAL&cache=shared".into(),
        ),
        data_source_secret_name: None,
    });
    // Upstream wrote the certificate references into the KCP's spec.
    spec.certificate_refs = [
        (CertificateType::Ca, "demo-ca"),
        (CertificateType::Proxy, "demo-proxy"),
        (CertificateType::Sa, "demo-sa"),
        (CertificateType::Etcd, "demo-etcd"),
    ]
    .into_iter()
    .map(|(type_, name)| CertificateRef {
        type_,
        name: Some(name.into()),
    })
    .collect();
    let desired = build(&facts(spec.clone())).unwrap();
    let Some(StatefulSetPlan::Apply(ours)) = &desired.statefulset else {
        panic!("expected a StatefulSet to apply");
    };
    let ours = to_json(ours);
    let mut seen = BTreeSet::new();
    for obj in &fixture {
        let kind = obj["kind"].as_str().unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let labels = labels_of(&obj["metadata"]["labels"]);
        match kind {
            "StatefulSet" => {
                assert_eq!(ours["metadata"]["name"], obj["metadata"]["name"]);
                assert_eq!(labels_of(&ours["metadata"]["labels"]), labels);
                assert_eq!(
                    ours["spec"]["selector"], obj["spec"]["selector"],
                    "the selector is immutable: a different one would need a recreation"
                );
                assert_eq!(
                    labels_of(&ours["spec"]["template"]["metadata"]["labels"]),
                    labels_of(&obj["spec"]["template"]["metadata"]["labels"])
                );
            }
            "Service" => {
                let svc = desired
                    .services
                    .iter()
                    .map(to_json)
                    .find(|s| s["metadata"]["name"] == obj["metadata"]["name"])
                    .unwrap_or_else(|| panic!("no Service {name}"));
                assert_eq!(labels_of(&svc["metadata"]["labels"]), labels);
                assert_eq!(svc["spec"]["selector"], obj["spec"]["selector"]);
                // Ports are merged by (port, protocol): another port under one of our names
                // would make the apply a duplicate name, refused by the API server.
                let ports = |v: &serde_json::Value| -> BTreeSet<(String, i64)> {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            (
                                p["name"].as_str().unwrap_or_default().to_string(),
                                p["port"].as_i64().unwrap_or_default(),
                            )
                        })
                        .collect()
                };
                assert_eq!(ports(&svc["spec"]["ports"]), ports(&obj["spec"]["ports"]));
            }
            "ConfigMap" => {
                let cm = desired
                    .config_maps
                    .iter()
                    .map(to_json)
                    .find(|c| c["metadata"]["name"] == obj["metadata"]["name"])
                    .unwrap_or_else(|| panic!("no ConfigMap {name}"));
                assert_eq!(labels_of(&cm["metadata"]["labels"]), labels, "{name}");
            }
            "Secret" if name.ends_with("-kubeconfig") => {
                let secret = to_json(desired.kubeconfig.as_ref().unwrap());
                assert_eq!(secret["metadata"]["name"], obj["metadata"]["name"]);
                assert_eq!(secret["type"], obj["type"]);
                assert_eq!(labels_of(&secret["metadata"]["labels"]), labels);
            }
            // The CA Secrets: the names we look up, CAPI's format, the KCP as controller.
            "Secret" => {
                assert!(cert_secrets().contains_key(&name), "{name}");
                let made = to_json(&cert_secrets()[&name]);
                assert_eq!(made["type"], obj["type"]);
                assert_eq!(labels_of(&made["metadata"]["labels"]), labels);
                assert_eq!(obj["metadata"]["ownerReferences"][0]["uid"], UID);
                assert_eq!(obj["metadata"]["ownerReferences"][0]["controller"], true);
            }
            // Upstream's intermediate object: nothing of ours has its name and kind.
            "Cluster" => {
                assert_eq!(obj["apiVersion"], "k0smotron.io/v1beta2");
                assert_eq!(
                    obj["metadata"]["ownerReferences"][0]["kind"],
                    "K0smotronControlPlane"
                );
            }
            other => panic!("unexpected kind {other}"),
        }
        seen.insert(format!("{kind}/{name}"));
    }
    assert_eq!(
        seen.len(),
        fixture.len(),
        "duplicate objects in the fixture"
    );

    // Upstream's StatefulSet, as the API server serves it, is adopted: replicas and the inputs
    // hash only.
    let upstream_sts = fixture.iter().find(|o| o["kind"] == "StatefulSet").unwrap();
    let mut f = facts(spec);
    f.statefulset = Some(serde_json::from_value(upstream_sts.clone()).unwrap());
    match build(&f).unwrap().statefulset {
        Some(StatefulSetPlan::ScaleOnly {
            name,
            replicas: 1,
            record_inputs_hash: Some(_),
        }) => assert_eq!(name, "kmc-demo"),
        other => panic!("expected adoption, got {other:?}"),
    }
}
