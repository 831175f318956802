//! proptest strategies for the control-plane provider's pure pipeline (issue #12): arbitrary but
//! type-correct `K0smotronControlPlane` specs and the facts the reconciler would have fetched.
//!
//! Two flavours share the generators: [`Flavour::Any`] reaches every corner a user can type
//! (any string in any field, k0s config of any shape, patches of any content) and is what the
//! no-panic and determinism properties run; [`Flavour::Admissible`] keeps to values the API
//! server admits for the control plane itself (DNS names, valid label keys, benign patches),
//! which is what the schema property needs: an object built for a spec the API server refused is
//! never applied.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use controlplane_provider::build::{self, Facts};
use controlplane_provider::control_plane::ControlPlane;
use controlplane_provider::kubeconfig;
use controlplane_provider::services::{self, ExternalAddress};
use controlplane_provider::validate::FieldPolicy;
use jiff::Timestamp;
use k0smotron_api::capi::{ApiEndpoint, ClusterNetwork, NetworkRanges};
use k0smotron_api::common::ObjectLabels;
use k0smotron_api::controlplane::v1beta2::{
    CertificateRef, CertificateType, ClaimMetadata, ClusterSpec, ComponentPatch, DefragJobSpec,
    EtcdSpec, IngressSpec, K0smotronControlPlane, K0smotronControlPlaneSpec, KineSpec,
    MonitoringSpec, Mount, PatchSpec, PatchTarget, PatchType, PersistenceSpec, PersistenceType,
    PersistentVolumeClaimTemplate, ServiceSpec, ServiceType, StoragePersistenceSpec, StorageSpec,
    StorageType,
};
use k0smotron_api::names;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, NodeStatus,
    PersistentVolumeClaimSpec, ResourceRequirements, Secret, Service, ServiceStatus,
    TopologySpreadConstraint, Volume, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The namespace and uid of every generated control plane (the schema test overrides the
/// namespace with its own).
pub const NAMESPACE: &str = "tenants";
/// uid of every generated control plane.
pub const UID: &str = "4f0c2a8e-0000-4000-8000-000000000001";
/// Cluster name the certificate Secrets are generated for once; renamed per case.
const TEMPLATE_CLUSTER: &str = "template";

/// Which values the generators produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Anything type-correct.
    Any,
    /// What the API server admits for a `K0smotronControlPlane` (and benign patches).
    Admissible,
}

/// The fixed "now" of every case: certificates and the kubeconfig are current at it.
pub fn now() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------------

/// Strings meant to hurt: empty, quotes, newlines, NUL, bidi marks, very long.
fn nasty_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        Just("\"'`$(id)${HOME}\\".to_string()),
        Just("a\nb\r\nc".to_string()),
        Just("\0".to_string()),
        Just("\u{202e}gnp.exe".to_string()),
        Just("ünïcødé-名前-🚀".to_string()),
        Just("-".to_string()),
        Just("--".to_string()),
        Just("/".to_string()),
        Just("..".to_string()),
        Just("a".repeat(300)),
        Just("#".to_string()),
        Just(": x".to_string()),
        Just("- item".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just("yes".to_string()),
        Just("0x1F".to_string()),
        Just("1e999".to_string()),
        Just("&anchor *alias".to_string()),
        Just("!!binary AAAA".to_string()),
    ]
}

/// Any string: printable, arbitrary Unicode (control characters included) or a nasty literal.
pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,24}",
        2 => any::<String>(),
        2 => nasty_literal(),
        1 => "[ -~]{0,80}",
    ]
}

/// A DNS-1123 label of `1..=max` characters.
pub fn dns_label(max: usize) -> impl Strategy<Value = String> {
    let inner = max.saturating_sub(2);
    prop_oneof![
        "[a-z]".prop_map(String::from),
        proptest::string::string_regex(&format!("[a-z][-a-z0-9]{{0,{inner}}}[a-z0-9]")).unwrap(),
    ]
}

/// A name: a DNS label for [`Flavour::Admissible`]; anything (any length, any character) or a
/// DNS label otherwise.
pub fn name(flavour: Flavour, max: usize) -> BoxedStrategy<String> {
    match flavour {
        Flavour::Admissible => dns_label(max).boxed(),
        Flavour::Any => {
            prop_oneof![3 => dns_label(max), 1 => any_text(), 1 => dns_label(63)].boxed()
        }
    }
}

fn label_key(flavour: Flavour) -> BoxedStrategy<String> {
    let valid = prop_oneof![
        "[a-z][a-z0-9]{0,10}",
        "[a-z]{1,8}\\.example\\.com/[a-z][-a-z0-9]{0,10}[a-z0-9]",
        Just(names::CLUSTER_NAME_LABEL.to_string()),
        Just(names::APP_COMPONENT_LABEL.to_string()),
    ];
    match flavour {
        Flavour::Admissible => valid.boxed(),
        Flavour::Any => prop_oneof![3 => valid, 1 => any_text()].boxed(),
    }
}

fn label_value(flavour: Flavour) -> BoxedStrategy<String> {
    let valid = prop_oneof![Just(String::new()), "[a-z0-9]([-a-z0-9._]{0,20}[a-z0-9])?"];
    match flavour {
        Flavour::Admissible => valid.boxed(),
        Flavour::Any => prop_oneof![3 => valid, 1 => any_text()].boxed(),
    }
}

fn labels(flavour: Flavour) -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(label_key(flavour), label_value(flavour), 0..4)
}

fn annotations(flavour: Flavour) -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(label_key(flavour), any_text(), 0..3)
}

/// An absolute path (mostly), or anything.
fn path(flavour: Flavour) -> BoxedStrategy<String> {
    let valid = "/[a-z0-9][-a-z0-9_./]{0,30}";
    match flavour {
        Flavour::Admissible => valid.boxed(),
        Flavour::Any => prop_oneof![
            12 => valid,
            1 => Just("/".to_string()),
            1 => Just("/a/".to_string()),
            1 => any_text(),
        ]
        .boxed(),
    }
}

// ---------------------------------------------------------------------------------------------
// Versions, quantities, JSON
// ---------------------------------------------------------------------------------------------

/// k0s versions: well-formed ones in every spelling, and odd ones (overflowing numbers, wrong
/// separators, stray text, empty).
pub fn version(flavour: Flavour) -> BoxedStrategy<String> {
    let pre = option::of(("(alpha|beta|rc)", 0u32..5));
    let k0s = option::of(("[-+]", 0u32..5));
    let well_formed = (1u32..3, 0u32..40, 0u32..20, pre, k0s).prop_map(|(ma, mi, pa, pre, k)| {
        let mut v = format!("v{ma}.{mi}.{pa}");
        if let Some((tag, n)) = pre {
            v.push_str(&format!("-{tag}.{n}"));
        }
        if let Some((sep, n)) = k {
            v.push_str(&format!("{sep}k0s.{n}"));
        }
        v
    });
    let regex_shaped = "v[0-9]{1,25}\\.[0-9]{1,25}\\.[0-9]{1,25}([-+]k0s\\.[0-9]{1,25})?";
    match flavour {
        // The CRD pattern accepts any digit run; the length limit is 64.
        Flavour::Admissible => {
            prop_oneof![8 => well_formed, 1 => "v[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"].boxed()
        }
        Flavour::Any => prop_oneof![
            16 => well_formed,
            2 => regex_shaped,
            1 => any_text(),
            1 => prop_oneof![
                Just("v1.30.0+k0s".to_string()),
                Just("v1.30.0-k0s.0-k0s.1".to_string()),
                Just("1.30.0".to_string()),
                Just("v1.30".to_string()),
                Just("v1.30.0+k0s.0\n".to_string()),
                Just("v\u{0663}.1.1".to_string()),
                Just("v-1.2.3".to_string()),
                Just("v1.2.3-rc.".to_string()),
            ],
        ]
        .boxed(),
    }
}

/// Resource quantities: canonical ones, odd ones the API server still parses, and garbage.
fn quantity(flavour: Flavour) -> BoxedStrategy<Quantity> {
    let valid = prop_oneof![
        "[1-9][0-9]{0,3}(Ki|Mi|Gi|Ti|k|M|G|m)?",
        "[1-9][0-9]{0,2}\\.[0-9]{1,2}(Gi|Mi)?",
        "[1-9]e[0-9]",
    ];
    match flavour {
        Flavour::Admissible => valid.prop_map(Quantity).boxed(),
        Flavour::Any => prop_oneof![4 => valid, 1 => any_text()]
            .prop_map(Quantity)
            .boxed(),
    }
}

/// Keys that k0s config merging looks at, and others.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "apiVersion", "kind", "spec", "api", "port", "sans", "externalAddress", "network",
            "nodeLocalLoadBalancing", "enabled", "clusterDomain", "podCIDR", "serviceCIDR",
            "konnectivity", "agentPort", "storage", "type", "etcd", "kine", "metadata",
            "labels", "name", "replicas", "template", "containers", "volumes", "image", "",
        ])
        .prop_map(String::from),
        1 => any_text(),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any_text().prop_map(Value::String),
    ]
}

/// JSON of any shape, a few levels deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `spec.k0sConfig`: absent, of any shape, or a ClusterConfig whose `spec` is of any shape.
fn k0s_config(flavour: Flavour) -> BoxedStrategy<Option<Value>> {
    // Mostly objects where k0s expects them, so the merge runs; sometimes anything.
    let section = || {
        prop_oneof![
            4 => btree_map(json_key(), json_value(), 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => json_value(),
        ]
    };
    let shaped = (
        option::of(section()),
        option::of(section()),
        option::of(json_value()),
        any::<bool>(),
    )
        .prop_map(|(api, network, rest, typed)| {
            let mut spec = match rest {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            if let Some(api) = api {
                spec.insert("api".into(), api);
            }
            if let Some(network) = network {
                spec.insert("network".into(), network);
            }
            let mut root = Map::new();
            if typed {
                root.insert("apiVersion".into(), json!("k0s.k0sproject.io/v1beta1"));
                root.insert("kind".into(), json!("ClusterConfig"));
            }
            root.insert("spec".into(), Value::Object(spec));
            Value::Object(root)
        });
    let objects_only = prop_oneof![
        Just(
            json!({"spec": {"network": {"clusterDomain": "example.local", "nodeLocalLoadBalancing": {"enabled": true}}}})
        ),
        Just(
            json!({"apiVersion": "k0s.k0sproject.io/v1beta1", "kind": "ClusterConfig", "spec": {"api": {"sans": ["a.example.com", "10.0.0.1"]}, "telemetry": {"enabled": false}}})
        ),
        Just(json!({"spec": {"api": {"extraArgs": {"v": "2"}}}})),
    ];
    match flavour {
        Flavour::Admissible => option::of(objects_only).boxed(),
        Flavour::Any => prop_oneof![
            3 => Just(None),
            5 => shaped.prop_map(Some),
            1 => json_value().prop_map(Some),
            2 => objects_only.prop_map(Some),
        ]
        .boxed(),
    }
}

// ---------------------------------------------------------------------------------------------
// Spec parts
// ---------------------------------------------------------------------------------------------

fn service(flavour: Flavour) -> BoxedStrategy<ServiceSpec> {
    let type_ = prop_oneof![
        Just(ServiceType::ClusterIP),
        Just(ServiceType::NodePort),
        Just(ServiceType::LoadBalancer)
    ];
    let port = match flavour {
        Flavour::Admissible => prop_oneof![30000i32..=32767, 1i32..=65535].boxed(),
        Flavour::Any => prop_oneof![
            4 => 30000i32..=32767,
            2 => 1i32..=65535,
            1 => any::<i32>(),
            1 => Just(0),
        ]
        .boxed(),
    };
    (type_, port.clone(), port)
        .prop_map(|(type_, api_port, konnectivity_port)| ServiceSpec {
            type_,
            api_port,
            konnectivity_port,
        })
        .boxed()
}

fn claim_template(flavour: Flavour) -> impl Strategy<Value = PersistentVolumeClaimTemplate> {
    (
        option::of((
            option::of(name(flavour, 40)),
            labels(flavour),
            annotations(flavour),
        )),
        // Mostly complete: validate refuses a template without access modes or a size.
        option::weighted(
            0.95,
            (
                quantity(flavour),
                option::of(name(flavour, 30)),
                prop::sample::select(vec!["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"]),
            ),
        ),
    )
        .prop_map(|(meta, spec)| PersistentVolumeClaimTemplate {
            api_version: None,
            kind: None,
            metadata: meta.map(|(name, labels, annotations)| ClaimMetadata {
                name,
                namespace: None,
                labels,
                annotations,
                finalizers: Vec::new(),
            }),
            spec: spec.map(|(size, class, mode)| PersistentVolumeClaimSpec {
                access_modes: Some(vec![mode.to_string()]),
                storage_class_name: class,
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), size)])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        })
}

fn persistence(flavour: Flavour) -> BoxedStrategy<PersistenceSpec> {
    let type_ = prop_oneof![
        4 => Just(PersistenceType::EmptyDir),
        1 => Just(PersistenceType::HostPath),
        2 => Just(PersistenceType::Pvc)
    ];
    (
        type_,
        option::of(claim_template(flavour)),
        any::<bool>(),
        option::of(path(flavour)),
        prop::bool::weighted(0.9),
    )
        .prop_map(move |(type_, claim, auto_delete_pvcs, host_path, fix)| {
            let mut p = PersistenceSpec {
                type_,
                persistent_volume_claim: claim,
                auto_delete_pvcs,
                host_path,
            };
            // The CRD's CEL rules: each type needs its field (mostly kept, so that most cases
            // get past validate).
            if flavour == Flavour::Admissible || fix {
                if type_ == PersistenceType::Pvc && p.persistent_volume_claim.is_none() {
                    p.persistent_volume_claim = Some(PersistentVolumeClaimTemplate::default());
                }
                if type_ == PersistenceType::HostPath && p.host_path.is_none() {
                    p.host_path = Some("/var/lib/k0smotron".into());
                }
            }
            p
        })
        .boxed()
}

fn storage(flavour: Flavour) -> BoxedStrategy<StorageSpec> {
    let type_ = match flavour {
        Flavour::Admissible => {
            prop_oneof![Just(StorageType::Etcd), Just(StorageType::Kine)].boxed()
        }
        Flavour::Any => prop_oneof![
            10 => Just(StorageType::Etcd),
            8 => Just(StorageType::Kine),
            1 => Just(StorageType::Nats)
        ]
        .boxed(),
    };
    let dsn = prop_oneof![
        Just("postgres://user:pass@db:5432/k0s".to_string()),
        Just("mysql://u:p@tcp(db:3306)/k0s".to_string()),
        any_text(),
    ];
    let kine = option::of((option::of(dsn), option::of(name(flavour, 40)))).prop_map(|k| {
        k.map(|(url, secret)| KineSpec {
            data_source_url: url,
            data_source_secret_name: secret,
        })
    });
    let image = match flavour {
        Flavour::Admissible => Just(names::DEFAULT_ETCD_IMAGE.to_string()).boxed(),
        Flavour::Any => {
            prop_oneof![3 => Just(names::DEFAULT_ETCD_IMAGE.to_string()), 1 => any_text()].boxed()
        }
    };
    let schedule = match flavour {
        Flavour::Admissible => Just(names::DEFAULT_ETCD_DEFRAG_SCHEDULE.to_string()).boxed(),
        Flavour::Any => prop_oneof![
            Just(names::DEFAULT_ETCD_DEFRAG_SCHEDULE.to_string()),
            any_text()
        ]
        .boxed(),
    };
    let etcd = (
        image,
        vec(
            prop_oneof![3 => "--[a-z-]{1,20}=[a-z0-9]{0,10}", 1 => any_text()],
            0..3,
        ),
        option::of(name(flavour, 30)),
        quantity(flavour),
        any::<bool>(),
        option::of((any::<bool>(), schedule, any_text())),
        option::of(resources(flavour)),
    )
        .prop_map(
            |(image, args, storage_class, size, auto_delete_pvcs, defrag, resources)| EtcdSpec {
                image,
                args,
                persistence: StoragePersistenceSpec {
                    storage_class,
                    size,
                },
                auto_delete_pvcs,
                defrag_job: defrag.map(|(enabled, schedule, rule)| DefragJobSpec {
                    enabled,
                    schedule,
                    rule,
                    image: names::DEFAULT_ETCD_DEFRAG_IMAGE.to_string(),
                }),
                resources,
            },
        );
    (
        type_,
        kine,
        etcd,
        prop::bool::weighted(0.9),
        option::of(name(flavour, 40)),
    )
        .prop_map(move |(type_, kine, etcd, fix, secret)| {
            let mut kine = kine;
            if type_ == StorageType::Kine && (flavour == Flavour::Admissible || fix) {
                // Exactly one source, as validate wants.
                kine = Some(match secret {
                    Some(name) if flavour == Flavour::Any => KineSpec {
                        data_source_url: None,
                        data_source_secret_name: Some(name),
                    },
                    _ => KineSpec {
                        data_source_url: Some("postgres://user:pass@db:5432/k0s".into()),
                        data_source_secret_name: None,
                    },
                });
            }
            StorageSpec {
                type_,
                kine,
                etcd,
                nats: None,
            }
        })
        .boxed()
}

fn resources(flavour: Flavour) -> impl Strategy<Value = ResourceRequirements> {
    let resource = prop::sample::select(vec!["cpu", "memory", "ephemeral-storage"]);
    (
        btree_map(
            resource.clone().prop_map(String::from),
            quantity(flavour),
            0..3,
        ),
        btree_map(resource.prop_map(String::from), quantity(flavour), 0..3),
    )
        .prop_map(move |(mut limits, requests)| {
            if flavour == Flavour::Admissible {
                // The API server refuses a request above its limit; keep limits out of the way.
                limits.clear();
            }
            ResourceRequirements {
                limits: (!limits.is_empty()).then_some(limits),
                requests: (!requests.is_empty()).then_some(requests),
                ..Default::default()
            }
        })
}

/// An inline volume source as JSON (`configMap`, `secret`, ...), for mounts and manifests.
fn volume_source(flavour: Flavour) -> BoxedStrategy<Map<String, Value>> {
    let one = prop_oneof![
        name(flavour, 40).prop_map(|n| ("configMap", json!({"name": n}))),
        name(flavour, 40).prop_map(|n| ("secret", json!({"secretName": n}))),
        Just(("emptyDir", json!({}))),
        path(flavour).prop_map(|p| ("hostPath", json!({"path": p}))),
        name(flavour, 40).prop_map(|n| ("persistentVolumeClaim", json!({"claimName": n}))),
    ]
    .prop_map(|(k, v)| Map::from_iter([(k.to_string(), v)]));
    match flavour {
        Flavour::Admissible => one.boxed(),
        Flavour::Any => prop_oneof![
            6 => one.clone(),
            1 => Just(Map::new()),
            1 => (one.clone(), one).prop_map(|(mut a, b)| {
                a.extend(b);
                a
            }),
            1 => btree_map(json_key(), json_value(), 0..3).prop_map(|m| m.into_iter().collect()),
        ]
        .boxed(),
    }
}

fn manifest(flavour: Flavour) -> impl Strategy<Value = Volume> {
    (name(flavour, 40), volume_source(flavour)).prop_filter_map(
        "a volume k8s-openapi can read",
        |(name, mut source)| {
            source.insert("name".into(), Value::String(name));
            serde_json::from_value(Value::Object(source)).ok()
        },
    )
}

fn mount(flavour: Flavour) -> impl Strategy<Value = Mount> {
    (path(flavour), any::<bool>(), volume_source(flavour)).prop_map(
        |(path, read_only, volume_source)| Mount {
            path,
            read_only,
            volume_source,
        },
    )
}

fn certificate_type() -> impl Strategy<Value = CertificateType> {
    prop::sample::select(vec![
        CertificateType::Ca,
        CertificateType::Sa,
        CertificateType::Proxy,
        CertificateType::Etcd,
        CertificateType::ApiserverEtcdClient,
        CertificateType::EtcdPeer,
        CertificateType::EtcdServer,
    ])
}

fn certificate_refs(flavour: Flavour) -> impl Strategy<Value = Vec<CertificateRef>> {
    vec(
        (certificate_type(), option::of(name(flavour, 50)))
            .prop_map(|(type_, name)| CertificateRef { type_, name }),
        0..4,
    )
}

/// JSON pointers into the generated objects, real and made up.
fn pointer() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "/metadata/labels/extra",
            "/metadata/annotations/extra",
            "/metadata/name",
            "/metadata/namespace",
            "/kind",
            "/spec/replicas",
            "/spec/template/spec/containers/0/image",
            "/spec/template/spec/containers/-",
            "/spec/template/spec/volumes/0",
            "/spec/template/spec/volumes/-",
            "/spec/ports/0/port",
            "/spec/type",
            "/data/extra",
            "/data",
            "",
            "/",
            "/spec/template/spec/containers/99",
        ])
        .prop_map(String::from),
        1 => any_text(),
    ]
}

fn json_patch_content() -> impl Strategy<Value = String> {
    let op = (
        prop::sample::select(vec![
            "add", "remove", "replace", "test", "move", "copy", "bogus",
        ]),
        pointer(),
        pointer(),
        json_value(),
    )
        .prop_map(
            |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
        );
    vec(op, 0..4).prop_map(|ops| Value::Array(ops).to_string())
}

/// A merge patch: an object of any shape, or one aimed at the generated objects' real fields.
fn merge_patch_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        (json_value(), json_value()).prop_map(|(labels, spec)| json!({"metadata": {"labels": labels}, "spec": spec})),
        json_value().prop_map(|v| json!({"spec": {"template": {"spec": {"containers": [{"name": "controller", "image": v}], "volumes": [{"name": "extra", "hostPath": {"path": "/"}}]}}}})),
        Just(json!({"spec": {"template": {"spec": {"volumes": [{"name": "node", "hostPath": {"path": "/etc"}}]}}}})),
    ]
}

fn patch_content(type_: PatchType) -> BoxedStrategy<String> {
    match type_ {
        PatchType::Json => prop_oneof![4 => json_patch_content(), 1 => any_text()].boxed(),
        _ => prop_oneof![
            3 => merge_patch_value().prop_map(|v| v.to_string()),
            2 => merge_patch_value().prop_filter_map("YAML", |v| serde_saphyr::to_string(&v).ok()),
            1 => any_text(),
        ]
        .boxed(),
    }
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            names::component::CONTROL_PLANE,
            names::component::CLUSTER_CONFIG,
            names::component::ENTRYPOINT,
            names::component::TELEMETRY,
            names::component::ETCD,
            names::component::KUBECONFIG,
        ])
        .prop_map(String::from),
        1 => any_text(),
    ]
}

fn patch_kind() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["StatefulSet", "Service", "ConfigMap", "CronJob", "Secret"])
            .prop_map(String::from),
        1 => any_text(),
    ]
}

fn patches(flavour: Flavour) -> BoxedStrategy<Vec<ComponentPatch>> {
    match flavour {
        // Patches may write anything; the schema property holds for patches that keep the
        // objects valid, such as extra labels.
        Flavour::Admissible => vec(
            (
                patch_kind(),
                component(),
                label_key(flavour),
                label_value(flavour),
                any::<bool>(),
            )
                .prop_map(|(kind, component, key, value, merge)| {
                    let (type_, content) = if merge {
                        (
                            PatchType::Merge,
                            json!({"metadata": {"labels": {key: value}}}).to_string(),
                        )
                    } else {
                        (
                            PatchType::Strategic,
                            json!({"metadata": {"annotations": {key: value}}}).to_string(),
                        )
                    };
                    ComponentPatch {
                        target: PatchTarget { kind, component },
                        patch: PatchSpec { type_, content },
                    }
                }),
            0..3,
        )
        .boxed(),
        Flavour::Any => prop_oneof![
            2 => Just(Vec::new()),
            1 => patch_list(),
        ]
        .boxed(),
    }
}

fn patch_list() -> impl Strategy<Value = Vec<ComponentPatch>> {
    vec(
        prop_oneof![
            Just(PatchType::Json),
            Just(PatchType::Merge),
            Just(PatchType::Strategic)
        ]
        .prop_flat_map(|type_| {
            (patch_kind(), component(), patch_content(type_)).prop_map(
                move |(kind, component, content)| ComponentPatch {
                    target: PatchTarget { kind, component },
                    patch: PatchSpec { type_, content },
                },
            )
        }),
        1..4,
    )
}

fn topology_spread(flavour: Flavour) -> impl Strategy<Value = TopologySpreadConstraint> {
    (
        1i32..4,
        prop::sample::select(vec![
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        ]),
        prop::sample::select(vec!["DoNotSchedule", "ScheduleAnyway"]),
        labels(flavour),
    )
        .prop_map(|(max_skew, key, when, labels)| TopologySpreadConstraint {
            max_skew,
            topology_key: key.to_string(),
            when_unsatisfiable: when.to_string(),
            label_selector: Some(LabelSelector {
                match_labels: Some(labels),
                ..Default::default()
            }),
            ..Default::default()
        })
}

fn host(flavour: Flavour) -> BoxedStrategy<String> {
    let valid = prop_oneof![
        "10\\.[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}",
        Just("fd00::10".to_string()),
        Just("2001:db8::1".to_string()),
        "[a-z]{1,10}\\.example\\.com",
    ];
    match flavour {
        Flavour::Admissible => valid.boxed(),
        Flavour::Any => prop_oneof![4 => valid, 1 => any_text()].boxed(),
    }
}

fn control_plane_flags(flavour: Flavour) -> BoxedStrategy<Vec<String>> {
    let flag = "--[a-z][-a-z]{0,15}(=[-a-z0-9,.]{0,10})?";
    match flavour {
        Flavour::Admissible => vec(flag, 0..3).boxed(),
        Flavour::Any => vec(prop_oneof![24 => flag, 1 => any_text()], 0..3).boxed(),
    }
}

fn image(flavour: Flavour) -> BoxedStrategy<String> {
    let valid = prop_oneof![
        Just(names::DEFAULT_K0S_IMAGE.to_string()),
        Just("registry.example.com:5000/k0sproject/k0s".to_string()),
        "[a-z]{1,10}/[a-z]{1,10}",
    ];
    match flavour {
        Flavour::Admissible => valid.boxed(),
        Flavour::Any => prop_oneof![12 => valid, 1 => any_text()].boxed(),
    }
}

/// `spec.monitoring`, rarely set (enabled or not).
fn monitoring() -> impl Strategy<Value = Option<MonitoringSpec>> {
    prop_oneof![
        20 => Just(None),
        1 => any::<bool>().prop_map(|enabled| Some(MonitoringSpec {
            enabled,
            prometheus_image: names::DEFAULT_PROMETHEUS_IMAGE.into(),
            proxy_image: names::DEFAULT_MONITORING_PROXY_IMAGE.into(),
        })),
    ]
}

/// `spec.ingress`, rarely: DNS names (sometimes one host for both, which is refused), and with
/// `Any` text of all kinds, IPs and odd annotation keys.
fn ingress(flavour: Flavour) -> BoxedStrategy<Option<IngressSpec>> {
    let name = match flavour {
        Flavour::Admissible => "[a-z]{1,8}\\.example\\.com".boxed(),
        Flavour::Any => prop_oneof![4 => "[a-z]{1,8}\\.example\\.com", 1 => host(flavour)].boxed(),
    };
    let key = match flavour {
        Flavour::Admissible => "[a-z]{1,8}\\.example\\.com/[a-z-]{1,10}[a-z]".boxed(),
        Flavour::Any => {
            prop_oneof![4 => "[a-z]{1,8}\\.example\\.com/[a-z-]{1,10}[a-z]", 1 => any_text()]
                .boxed()
        }
    };
    let spec = (
        any::<bool>(),
        prop_oneof![1i64..=65535, Just(443i64)],
        name.clone(),
        name,
        option::of("[a-z]{1,8}"),
        btree_map(key, "[ -~]{0,12}", 0..3),
    )
        .prop_map(
            |(deploy, port, api_host, konnectivity_host, class_name, annotations)| IngressSpec {
                deploy,
                port,
                api_host,
                konnectivity_host,
                class_name,
                annotations,
            },
        );
    prop_oneof![12 => Just(None), 1 => spec.prop_map(Some)].boxed()
}

/// A whole spec.
pub fn spec(flavour: Flavour) -> impl Strategy<Value = K0smotronControlPlaneSpec> {
    let small = |p: f64| prop::bool::weighted(p);
    let a = (
        prop_oneof![
            12 => 0i32..=5,
            4 => 6i32..=32,
            1 => match flavour {
                Flavour::Admissible => (0i32..=3).boxed(),
                Flavour::Any => prop_oneof![any::<i32>(), -3i32..0].boxed(),
            },
        ],
        image(flavour),
        option::of(name(flavour, 40)),
        version(flavour),
        option::of(host(flavour)),
        service(flavour),
        persistence(flavour),
        storage(flavour),
        k0s_config(flavour),
    );
    let b = (
        small(0.3).prop_flat_map(move |on| {
            if on {
                certificate_refs(flavour).boxed()
            } else {
                Just(Vec::new()).boxed()
            }
        }),
        vec(manifest(flavour), 0..3),
        vec(mount(flavour), 0..3),
        control_plane_flags(flavour),
        monitoring(),
        vec(topology_spread(flavour), 0..2),
        option::of(resources(flavour)),
        option::of((labels(flavour), annotations(flavour))),
        patches(flavour),
        option::of((
            option::of(host(flavour)),
            option::of(prop_oneof![1i32..=65535, any::<i32>()]),
        )),
        ingress(flavour),
    );
    (a, b).prop_map(
        move |(
            (
                replicas,
                image,
                service_account,
                version,
                external_address,
                service,
                persistence,
                storage,
                k0s_config,
            ),
            (
                certificate_refs,
                manifests,
                mounts,
                control_plane_flags,
                monitoring,
                tsc,
                resources,
                kubeconfig_meta,
                patches,
                endpoint,
                ingress,
            ),
        )| {
            let cluster = ClusterSpec {
                replicas,
                image,
                service_account,
                version,
                external_address,
                service,
                persistence,
                storage,
                k0s_config,
                certificate_refs,
                manifests,
                mounts,
                control_plane_flags,
                monitoring,
                topology_spread_constraints: tsc,
                resources,
                kubeconfig_secret_metadata: kubeconfig_meta.map(|(labels, annotations)| {
                    ObjectLabels {
                        labels,
                        annotations,
                    }
                }),
                patches,
                ingress,
                ..ClusterSpec::default()
            };
            let mut spec = K0smotronControlPlaneSpec {
                cluster,
                control_plane_endpoint: endpoint.map(|(host, port)| ApiEndpoint { host, port }),
            };
            if flavour == Flavour::Admissible {
                // The endpoint needs a port in 1..=65535 when set.
                if let Some(e) = &mut spec.control_plane_endpoint
                    && e.port.is_some_and(|p| !(1..=65535).contains(&p))
                {
                    e.port = Some(6443);
                }
            }
            spec
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------------------------

fn exposure_service() -> impl Strategy<Value = Option<Service>> {
    let ips = prop_oneof![
        4 => Just(vec!["10.96.12.34".to_string()]),
        1 => Just(vec!["10.96.12.34".to_string(), "fd00::1234".to_string()]),
        1 => Just(Vec::new()),
        1 => Just(vec!["None".to_string()]),
    ];
    let ingress = option::of(prop_oneof![
        "192\\.0\\.2\\.[0-9]{1,3}".prop_map(|ip| LoadBalancerIngress {
            ip: Some(ip),
            ..Default::default()
        }),
        "[a-z]{1,10}\\.elb\\.example\\.com".prop_map(|h| LoadBalancerIngress {
            hostname: Some(h),
            ..Default::default()
        }),
        Just(LoadBalancerIngress::default()),
    ]);
    option::weighted(
        0.95,
        (ips, ingress).prop_map(|(ips, ingress)| Service {
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                cluster_ip: ips.first().cloned(),
                cluster_ips: (!ips.is_empty()).then_some(ips),
                ..Default::default()
            }),
            status: ingress.map(|i| ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![i]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
}

fn nodes() -> impl Strategy<Value = Vec<Node>> {
    let address = (
        prop::sample::select(vec!["ExternalIP", "InternalIP", "Hostname", "Other"]),
        prop_oneof![
            "198\\.51\\.100\\.[0-9]{1,3}",
            "[a-z]{1,8}",
            Just("fd00::5".to_string())
        ],
    )
        .prop_map(|(type_, address)| NodeAddress {
            address,
            type_: type_.to_string(),
        });
    vec(
        vec(address, 0..3).prop_map(|addresses| Node {
            status: Some(NodeStatus {
                addresses: Some(addresses),
                ..Default::default()
            }),
            ..Default::default()
        }),
        0..3,
    )
}

fn cluster_network(flavour: Flavour) -> impl Strategy<Value = Option<ClusterNetwork>> {
    let cidr = match flavour {
        Flavour::Admissible => prop_oneof![
            Just("10.244.0.0/16".to_string()),
            Just("fd00:10::/56".to_string())
        ]
        .boxed(),
        Flavour::Any => prop_oneof![Just("10.244.0.0/16".to_string()), any_text()].boxed(),
    };
    option::of((
        option::of(vec(cidr.clone(), 0..3)),
        option::of(vec(cidr, 0..2)),
        option::of(prop_oneof![
            Just("cluster.local".to_string()),
            name(flavour, 30)
        ]),
    ))
    .prop_map(|n| {
        n.map(|(pods, services, domain)| ClusterNetwork {
            pods: pods.map(|cidr_blocks| NetworkRanges { cidr_blocks }),
            services: services.map(|cidr_blocks| NetworkRanges { cidr_blocks }),
            service_domain: domain,
            ..Default::default()
        })
    })
}

fn policy() -> impl Strategy<Value = FieldPolicy> {
    prop_oneof![
        8 => Just(FieldPolicy { host_path: true, ..FieldPolicy::default() }),
        1 => Just(FieldPolicy::default()),
        1 => (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(host_path, patches, mounts, manifests, service_account, remote_host_cluster)| FieldPolicy {
                host_path,
                patches,
                mounts,
                manifests,
                service_account,
                remote_host_cluster,
            }
        ),
    ]
}

/// One generated case: the facts build reads.
#[derive(Clone)]
pub struct Case {
    /// The control plane as the user wrote it (the schema test sends it to the API server).
    pub kcp: K0smotronControlPlane,
    /// What build reads.
    pub facts: Facts,
}

/// Everything but the Secrets' key material, so a failing case is readable.
impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let facts = &self.facts;
        f.debug_struct("Case")
            .field("name", &self.kcp.metadata.name)
            .field("spec", &self.kcp.spec)
            .field("status", &self.kcp.status)
            .field("cluster_name", &facts.cluster_name)
            .field("cluster_initialized", &facts.cluster_initialized)
            .field("cluster_network", &facts.cluster_network)
            .field("secrets", &facts.secrets.keys().collect::<Vec<_>>())
            .field("exposure_service", &facts.exposure_service)
            .field("nodes", &facts.nodes)
            .field("policy", &facts.policy)
            .finish_non_exhaustive()
    }
}

/// Certificate Secrets for [`TEMPLATE_CLUSTER`], generated once per test process (RSA key
/// generation is far too slow to repeat per case).
fn template_secrets() -> &'static BTreeMap<String, Secret> {
    static SECRETS: OnceLock<BTreeMap<String, Secret>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        // With the defragmentation job, so its client certificate is among the Secrets too.
        let mut spec = K0smotronControlPlaneSpec::default();
        spec.storage.etcd.defrag_job =
            Some(serde_json::from_value(json!({"enabled": true})).expect("a defrag job"));
        let mut kcp = K0smotronControlPlane::new(TEMPLATE_CLUSTER, spec);
        kcp.metadata.namespace = Some(NAMESPACE.into());
        kcp.metadata.uid = Some(UID.into());
        let facts = Facts {
            cp: ControlPlane::from_kcp(&kcp, false).expect("a complete control plane"),
            cluster_name: TEMPLATE_CLUSTER.into(),
            cluster_initialized: false,
            cluster_network: None,
            secrets: BTreeMap::new(),
            exposure_service: None,
            nodes: Vec::new(),
            statefulset: None,
            etcd_statefulset: None,
            claims: Vec::new(),
            now: now(),
            policy: FieldPolicy::default(),
        };
        let desired = build::build(&facts).expect("the default spec builds");
        desired
            .create_secrets
            .into_iter()
            .map(|s| (s.metadata.name.clone().unwrap(), s))
            .collect()
    })
}

/// A pre-minted admin client certificate, so kubeconfigs for any server can be rendered without
/// a key generation per case.
fn admin_client() -> &'static controlplane_provider::certs::KeyMaterial {
    static CLIENT: OnceLock<controlplane_provider::certs::KeyMaterial> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let ca = ca_material();
        controlplane_provider::certs::sign_leaf(&ca, "ca", &kubeconfig::admin_leaf_spec(), now())
            .expect("admin client certificate")
    })
}

fn ca_material() -> controlplane_provider::certs::KeyMaterial {
    let secret = &template_secrets()[&names::ca_secret(TEMPLATE_CLUSTER)];
    let data = secret.data.as_ref().unwrap();
    controlplane_provider::certs::KeyMaterial {
        cert_pem: String::from_utf8(data[names::TLS_CRT_KEY].0.clone()).unwrap(),
        key_pem: String::from_utf8(data[names::TLS_KEY_KEY].0.clone()).unwrap(),
    }
}

/// The certificate Secrets under `cluster`'s names (and under the names `spec.certificateRefs`
/// gives, when `refs_present`), with the kine DSN Secret when the spec names one.
fn secrets_for(
    kcp: &K0smotronControlPlane,
    cluster: &str,
    refs_present: bool,
) -> BTreeMap<String, Secret> {
    let mut out = BTreeMap::new();
    for (name, secret) in template_secrets() {
        let suffix = name.strip_prefix(TEMPLATE_CLUSTER).unwrap_or(name);
        let renamed = format!("{cluster}{suffix}");
        let mut s = secret.clone();
        s.metadata.name = Some(renamed.clone());
        out.insert(renamed, s);
    }
    if refs_present {
        for r in &kcp.spec.certificate_refs {
            if let Some(n) = r.name.clone().filter(|n| !n.is_empty()) {
                let default = build::default_secret_name(TEMPLATE_CLUSTER, r.type_);
                if let Some(s) = template_secrets().get(&default) {
                    let mut s = s.clone();
                    s.metadata.name = Some(n.clone());
                    out.insert(n, s);
                }
            }
        }
    }
    // Behind an ingress: HAProxy's certificate Secret, present (not ours, so only read).
    if kcp.spec.ingress.is_some() {
        let n = names::ingress_haproxy_secret(cluster);
        let mut s = template_secrets()
            .get(&names::ca_secret(TEMPLATE_CLUSTER))
            .cloned()
            .unwrap_or_default();
        s.metadata.name = Some(n.clone());
        s.metadata.owner_references = None;
        out.insert(n, s);
    }
    // NATS storage: its token Secret, as a previous reconcile made it.
    if kcp.spec.storage.type_ == k0smotron_api::controlplane::v1beta2::StorageType::Nats {
        let n = names::nats_token_secret_name(cluster);
        out.insert(
            n.clone(),
            Secret {
                metadata: ObjectMeta {
                    name: Some(n),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    "token".to_string(),
                    k8s_openapi::ByteString(b"0123456789abcdef".to_vec()),
                )])),
                ..Default::default()
            },
        );
    }
    if let Some(n) = kcp
        .spec
        .storage
        .kine
        .as_ref()
        .and_then(|k| k.data_source_secret_name.clone())
    {
        out.insert(
            n.clone(),
            Secret {
                metadata: ObjectMeta {
                    name: Some(n),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    names::KINE_DATASOURCE_URL_KEY.to_string(),
                    ByteString(b"postgres://db".to_vec()),
                )])),
                ..Default::default()
            },
        );
    }
    out
}

/// The server URL build will put into the kubeconfig, mirroring build's endpoint rule (user
/// endpoint, else the ingress's API host, else the external address, else the Service's DNS name
/// for ClusterIP).
fn expected_server(facts: &Facts) -> Option<String> {
    let spec = &facts.cp.spec;
    let api_port = spec.service.api_port;
    if let Some(e) = facts.cp.user_endpoint.clone() {
        return Some(build::server_url(
            e.host.as_deref()?,
            e.port.unwrap_or(api_port),
        ));
    }
    if let Some(i) = &spec.ingress {
        // Behind an Ingress, clients use its API host and port.
        return Some(build::server_url(&i.api_host, i32::try_from(i.port).ok()?));
    }
    let previous = facts.cp.previous_address.as_deref();
    match services::external_address(
        spec.external_address.as_deref(),
        spec.service.type_,
        facts.exposure_service.as_ref(),
        &facts.nodes,
        previous,
    ) {
        ExternalAddress::Known(a, _) => Some(build::server_url(&a, api_port)),
        ExternalAddress::NotApplicable => {
            let namespace = facts.cp.namespace.as_str();
            let svc = services::service_name(&facts.cluster_name, spec.service.type_);
            Some(build::server_url(
                &services::service_dns(&svc, namespace),
                api_port,
            ))
        }
        ExternalAddress::Pending(_) => None,
    }
}

/// The kubeconfig Secret our last reconcile would have written for `facts`.
fn kubeconfig_secret(facts: &Facts) -> Option<(String, Secret)> {
    let server = expected_server(facts)?;
    let value = kubeconfig::render(
        &facts.cluster_name,
        &server,
        &ca_material().cert_pem,
        admin_client(),
    )
    .ok()?;
    let name = names::kubeconfig_secret(&facts.cluster_name);
    Some((
        name.clone(),
        Secret {
            metadata: ObjectMeta {
                name: Some(name),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                names::SECRET_VALUE_KEY.to_string(),
                ByteString(value.into_bytes()),
            )])),
            ..Default::default()
        },
    ))
}

/// Facts for a generated spec: every certificate present (so build never generates keys and is
/// fully deterministic), the kubeconfig as our last reconcile wrote it, arbitrary exposure,
/// nodes, network and policy.
pub fn case(flavour: Flavour) -> impl Strategy<Value = Case> {
    case_named(flavour, flavour)
}

/// [`case`] with names of `names` flavour: Kubernetes names can hold no `,` or newline, and some
/// properties only hold for names the API server admits.
pub fn case_named(flavour: Flavour, names: Flavour) -> impl Strategy<Value = Case> {
    case_in(flavour, names, NAMESPACE.to_string())
}

/// [`case_named`] for a control plane in `namespace`.
pub fn case_in(flavour: Flavour, names: Flavour, namespace: String) -> impl Strategy<Value = Case> {
    (
        spec(flavour),
        name(names, 40),
        prop_oneof![4 => Just(true), 1 => Just(false)],
        any::<bool>(),
        exposure_service(),
        nodes(),
        cluster_network(flavour),
        policy(),
        option::of(host(flavour)),
    )
        .prop_map(
            move |(
                spec,
                cluster,
                refs_present,
                initialized,
                exposure,
                nodes,
                network,
                policy,
                previous,
            )| {
                let kcp_name = cluster.clone();
                let mut kcp = K0smotronControlPlane::new(&kcp_name, spec);
                kcp.metadata.namespace = Some(namespace.clone());
                kcp.metadata.uid = Some(UID.into());
                kcp.metadata.generation = Some(1);
                if previous.is_some() {
                    kcp.status = Some(
                        k0smotron_api::controlplane::v1beta2::K0smotronControlPlaneStatus {
                            external_address: previous,
                            ..Default::default()
                        },
                    );
                }
                let secrets = secrets_for(&kcp, &cluster, refs_present);
                let mut facts = Facts {
                    cp: ControlPlane::from_kcp(&kcp, false).expect("a complete control plane"),
                    cluster_name: cluster,
                    cluster_initialized: initialized,
                    cluster_network: network,
                    secrets,
                    exposure_service: exposure,
                    nodes,
                    statefulset: None,
                    etcd_statefulset: None,
                    claims: Vec::new(),
                    now: now(),
                    policy: if flavour == Flavour::Admissible {
                        FieldPolicy {
                            host_path: true,
                            ..FieldPolicy::default()
                        }
                    } else {
                        policy
                    },
                };
                if let Some((name, secret)) = kubeconfig_secret(&facts) {
                    facts.secrets.insert(name, secret);
                }
                Case { kcp, facts }
            },
        )
}

/// Everything a [`build::DesiredState`] holds, serialised (the apply step writes these bytes).
pub fn serialize_desired(d: &build::DesiredState) -> String {
    fn plan(p: &Option<build::StatefulSetPlan>) -> Value {
        match p {
            None => Value::Null,
            Some(build::StatefulSetPlan::Apply(s)) => json!({"apply": s}),
            Some(build::StatefulSetPlan::Recreate(s)) => json!({"recreate": s}),
            Some(build::StatefulSetPlan::ScaleOnly {
                name,
                replicas,
                record_inputs_hash,
            }) => {
                json!({"scaleOnly": [name, replicas, record_inputs_hash]})
            }
        }
    }
    json!({
        "owner": d.owner,
        "createSecrets": d.create_secrets,
        "renewSecrets": d.renew_secrets,
        "kubeconfig": d.kubeconfig,
        "kubeconfigRegenerated": format!("{:?}", d.kubeconfig_regenerated),
        "configMaps": d.config_maps,
        "services": d.services,
        "obsoleteServices": d.obsolete_services,
        "statefulset": plan(&d.statefulset),
        "etcdStatefulset": plan(&d.etcd_statefulset),
        "claimExpansions": format!("{:?}", d.claim_expansions),
        "cronJobs": d.cron_jobs,
        "obsoleteCronJobs": d.obsolete_cron_jobs,
        "endpoint": d.endpoint,
        "publishEndpoint": d.publish_endpoint,
        "externalAddress": d.external_address,
        "certificateRefs": d.certificate_refs,
        "waiting": d.waiting,
        "versionBlocked": d.version_blocked,
        "overridden": d.overridden,
        "desiredImageTag": d.desired_image_tag,
        "selector": d.selector,
    })
    .to_string()
}
