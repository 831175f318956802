//! The generated CRDs: names CAPI can compute, contract labels, committed YAML in sync,
//! schemas the API server accepts and whose defaults match the Rust defaults, and snapshots.

#![allow(clippy::expect_used, clippy::panic)]

mod common;

use k0smotron_api::{
    bootstrap::v1beta2::{K0sWorkerConfigSpec, K0sWorkerConfigTemplateSpec},
    controlplane::v1beta2::{self as cp, K0smotronControlPlaneSpec},
    crds, names,
};
use kube::CustomResourceExt;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// The pluralisation CAPI's `contract.CalculateCRDName` uses (flect), for the suffixes a kind
/// name can end in. Kept independent of the kube-derive `plural` attribute on purpose.
fn flect_pluralize(word: &str) -> String {
    const VOWELS: &[char] = &['a', 'e', 'i', 'o', 'u'];
    if let Some(stem) = word.strip_suffix('y')
        && !stem.ends_with(VOWELS)
    {
        return format!("{stem}ies");
    }
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|s| word.ends_with(s))
    {
        return format!("{word}es");
    }
    format!("{word}s")
}

#[test]
fn pluralizer_sanity() {
    assert_eq!(flect_pluralize("policy"), "policies");
    assert_eq!(flect_pluralize("gateway"), "gateways");
    assert_eq!(flect_pluralize("box"), "boxes");
    assert_eq!(flect_pluralize("k0sworkerconfig"), "k0sworkerconfigs");
}

#[test]
fn crd_names_are_what_capi_computes() {
    let all = crds::all();
    assert_eq!(all.len(), 6);
    for crd in &all {
        let kind = &crd.spec.names.kind;
        let plural = flect_pluralize(&kind.to_lowercase());
        let expected = format!("{plural}.{}", crd.spec.group);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(expected.as_str()),
            "{kind}"
        );
        assert_eq!(crd.spec.names.plural, plural, "{kind}");
        assert_eq!(crds::file_name(crd), format!("{expected}.yaml"));
        assert_eq!(crd.spec.scope, "Namespaced", "{kind}");
    }
    let kinds: Vec<_> = all.iter().map(|c| c.spec.names.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "K0smotronControlPlane",
            "K0smotronControlPlaneTemplate",
            "Cluster",
            "JoinTokenRequest",
            "K0sWorkerConfig",
            "K0sWorkerConfigTemplate"
        ]
    );
}

#[test]
fn crds_carry_contract_and_provider_labels() {
    for (crd, provider) in crds::controlplane()
        .iter()
        .map(|c| (c, names::CONTROLPLANE_PROVIDER_LABEL_VALUE))
        .chain(
            crds::bootstrap()
                .iter()
                .map(|c| (c, names::BOOTSTRAP_PROVIDER_LABEL_VALUE)),
        )
        .collect::<Vec<_>>()
    {
        let labels = crd.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(names::PROVIDER_LABEL).map(String::as_str),
            Some(provider),
            "{:?}",
            crd.metadata.name
        );
        // The standalone kinds (k0smotron.io) are no Cluster API contract's.
        if crd.spec.group == "k0smotron.io" {
            assert_eq!(labels.get(names::CONTRACT_LABEL), None);
            continue;
        }
        assert_eq!(
            labels.get(names::CONTRACT_LABEL).map(String::as_str),
            Some("v1beta2"),
            "{:?}",
            crd.metadata.name
        );
        assert_eq!(
            labels.get(names::PROVIDER_LABEL).map(String::as_str),
            Some(provider),
            "{:?}",
            crd.metadata.name
        );
        // The contract label's value must name versions the CRD serves.
        for version in labels[names::CONTRACT_LABEL].split('_') {
            assert!(
                crd.spec
                    .versions
                    .iter()
                    .any(|v| v.name == version && v.served && v.storage)
            );
        }
    }
}

#[test]
fn subresources_as_the_contract_requires() {
    let kcp = cp::K0smotronControlPlane::crd();
    let sub = kcp.spec.versions[0]
        .subresources
        .as_ref()
        .expect("subresources");
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );

    let kwc = crds::bootstrap().remove(0);
    assert!(
        kwc.spec.versions[0]
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
}

#[test]
fn committed_yaml_is_up_to_date() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/crd/bases");
    for crd in crds::all() {
        let path = dir.join(crds::file_name(&crd));
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask crd`", path.display()));
        let generated = crds::to_yaml(&crd).expect("render");
        assert!(
            committed == generated,
            "{} is stale; run `cargo xtask crd`",
            path.display()
        );
    }
}

#[test]
fn yaml_round_trips_to_the_same_crd() {
    for crd in crds::all() {
        let yaml = crds::to_yaml(&crd).expect("render");
        let back: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_saphyr::from_str(&yaml).expect("parse");
        assert_eq!(
            serde_json::to_value(&back).expect("json"),
            serde_json::to_value(&crd).expect("json")
        );
    }
}

/// Walks every subschema, calling `f(path, schema)`.
fn walk(path: &str, schema: &Value, f: &mut dyn FnMut(&str, &Value)) {
    f(path, schema);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            walk(&format!("{path}.{name}"), sub, f);
        }
    }
    if let Some(items) = schema.get("items") {
        walk(&format!("{path}[]"), items, f);
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        walk(&format!("{path}{{}}"), additional, f);
    }
}

#[test]
fn schemas_stay_in_the_kubernetes_dialect() {
    for crd in crds::all() {
        let schema = common::schema_of(&crd);
        let name = crd.metadata.name.clone().unwrap_or_default();
        walk(&name, &schema, &mut |path, s| {
            // Kubernetes strips unknown integer formats; uint* would let out-of-range values in.
            if let Some(format) = s.get("format").and_then(Value::as_str) {
                assert!(
                    !format.starts_with("uint"),
                    "{path}: format {format} is not enforced by Kubernetes"
                );
            }
            // Structural schemas: every node (except int-or-string and preserve-unknown ones)
            // has a type; no $ref, no unevaluated JSON-Schema-only keywords.
            let typed = s.get("type").is_some()
                || s.get("x-kubernetes-int-or-string") == Some(&json!(true))
                || s.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            assert!(typed, "{path}: no type");
            for banned in ["$ref", "const", "uniqueItems", "$schema", "definitions"] {
                assert!(s.get(banned).is_none(), "{path}: {banned}");
            }
            // A list-map key must be a required, non-nullable scalar of the items.
            if s.get("x-kubernetes-list-type") == Some(&json!("map")) {
                let items = &s["items"];
                for key in s["x-kubernetes-list-map-keys"].as_array().expect("keys") {
                    let key = key.as_str().expect("key");
                    assert!(
                        items["required"]
                            .as_array()
                            .is_some_and(|r| r.contains(&json!(key))),
                        "{path}: list-map key {key} not required"
                    );
                    assert_ne!(items["properties"][key]["nullable"], json!(true));
                }
            }
        });
    }
}

/// Our own fields (not embedded Kubernetes types) all have a description, because it becomes
/// `kubectl explain` output.
#[test]
fn our_fields_are_documented() {
    // Subtrees whose descriptions are stripped on purpose (embedded core Kubernetes types).
    let embedded = [
        ".manifests[]",
        ".topologySpreadConstraints[]",
        ".resources.",
        ".persistentVolumeClaim.spec.",
        ".persistentVolumeClaim.status.",
        ".conditions[]",
    ];
    for crd in crds::all() {
        let schema = common::schema_of(&crd);
        let name = crd.metadata.name.clone().unwrap_or_default();
        walk(&name, &schema, &mut |path, s| {
            if embedded.iter().any(|e| path.contains(e))
                || path.ends_with("{}")
                || path.ends_with("[]")
                // Volume sources inlined into mounts[] (everything but path and readOnly).
                || (path.contains(".mounts[].")
                    && !path.ends_with(".mounts[].path")
                    && !path.ends_with(".mounts[].readOnly"))
            {
                return;
            }
            assert!(
                s.get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.trim().is_empty()),
                "{path} has no description"
            );
        });
    }
}

/// What the API server stores for `spec: {}` is exactly what serde produces for `{}` and what
/// `Default` returns, so the controller sees the same values whoever filled them in.
#[test]
fn schema_defaults_match_serde_and_default_impls() {
    let kcp_schema = common::schema_of(&crds::controlplane().remove(0));
    let mut defaulted = json!({});
    common::apply_defaults(&kcp_schema["properties"]["spec"], &mut defaulted);
    let from_serde: K0smotronControlPlaneSpec =
        serde_json::from_value(json!({})).expect("empty spec deserialises");
    assert_eq!(from_serde, K0smotronControlPlaneSpec::default());
    assert_eq!(serde_json::to_value(&from_serde).expect("json"), defaulted);
    assert_eq!(defaulted["version"], json!(names::DEFAULT_K0S_VERSION));
    assert_eq!(defaulted["replicas"], json!(1));
    assert_eq!(defaulted["service"]["apiPort"], json!(30443));
    assert_eq!(
        defaulted["storage"]["etcd"]["image"],
        json!(names::DEFAULT_ETCD_IMAGE)
    );

    let kwc_schema = common::schema_of(&crds::bootstrap().remove(0));
    let mut defaulted = json!({});
    common::apply_defaults(&kwc_schema["properties"]["spec"], &mut defaulted);
    let from_serde: K0sWorkerConfigSpec =
        serde_json::from_value(json!({})).expect("empty spec deserialises");
    assert_eq!(from_serde, K0sWorkerConfigSpec::default());
    assert_eq!(serde_json::to_value(&from_serde).expect("json"), defaulted);
    assert_eq!(defaulted["k0sInstallDir"], json!("/usr/local/bin"));
    assert_eq!(
        defaulted["provisioner"],
        json!({"type": "cloud-config", "platform": "linux"})
    );

    // Templates embed the same spec with the same defaults.
    let t: K0sWorkerConfigTemplateSpec =
        serde_json::from_value(json!({"template": {}})).expect("template");
    assert_eq!(t.template.spec, K0sWorkerConfigSpec::default());
}

#[test]
fn nested_defaults_fill_in_partial_objects() {
    // A user who enables defragmentation gets upstream's schedule, rule and image.
    let spec: K0smotronControlPlaneSpec = serde_json::from_value(json!({
        "storage": {"etcd": {"defragJob": {"enabled": true}}}
    }))
    .expect("spec");
    let defrag = spec.storage.etcd.defrag_job.clone().expect("defragJob");
    assert!(defrag.enabled);
    assert_eq!(defrag.schedule, names::DEFAULT_ETCD_DEFRAG_SCHEDULE);
    assert_eq!(defrag.image, names::DEFAULT_ETCD_DEFRAG_IMAGE);
    assert_eq!(spec.storage.etcd.image, names::DEFAULT_ETCD_IMAGE);

    // An explicit null size (the schema allows it) reads as the default size.
    let spec: K0smotronControlPlaneSpec = serde_json::from_value(json!({
        "storage": {"etcd": {"persistence": {"size": null}}}
    }))
    .expect("spec");
    assert_eq!(
        spec.storage.etcd.persistence.size.0,
        names::DEFAULT_STORAGE_SIZE
    );
}

#[test]
fn version_patterns_match_the_published_constants() {
    let kcp = common::schema_of(&crds::controlplane().remove(0));
    assert_eq!(
        common::subschema(&kcp, "spec.version")["pattern"],
        json!(cp::VERSION_PATTERN)
    );
    let kwc = common::schema_of(&crds::bootstrap().remove(0));
    assert_eq!(
        common::subschema(&kwc, "spec.version")["pattern"],
        json!(k0smotron_api::bootstrap::v1beta2::VERSION_PATTERN)
    );
}

#[test]
fn mounts_take_any_volume_source_but_no_name() {
    let kcp = common::schema_of(&crds::controlplane().remove(0));
    let item = &common::subschema(&kcp, "spec.mounts")["items"];
    assert_eq!(item["required"], json!(["path"]));
    assert!(item["properties"].get("name").is_none());
    for source in [
        "configMap",
        "secret",
        "hostPath",
        "persistentVolumeClaim",
        "emptyDir",
    ] {
        assert!(item["properties"].get(source).is_some(), "{source}");
    }
    let mount: cp::Mount = serde_json::from_value(json!({
        "path": "/etc/extra",
        "secret": {"secretName": "extra", "defaultMode": 420}
    }))
    .expect("mount");
    let volume = mount.to_volume("extra-0").expect("volume");
    assert_eq!(volume.name, "extra-0");
    assert_eq!(
        volume.secret.and_then(|s| s.secret_name).as_deref(),
        Some("extra")
    );
}

#[test]
fn snapshots() {
    for crd in crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        insta::assert_snapshot!(name, crds::to_yaml(&crd).expect("render"));
    }
}
