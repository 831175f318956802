//! The committed CRDs on a real API server (`test/harness`): the API server accepts them, admits
//! every fixture, applies the defaults our types expect, and refuses bad input at admission with
//! a message naming the offending field (the job upstream's validating webhooks do).
//!
//! Needs `eval "$(test/harness/cluster up)"` (reads `KUBECONFIG`); run with `--include-ignored`.

#![allow(clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use k0smotron_api::{
    bootstrap::v1beta2::{BootstrapInitialization, K0sWorkerConfig, K0sWorkerConfigStatus},
    controlplane::v1beta2::{
        CertificateRef, CertificateType, ControlPlaneInitialization, K0smotronControlPlane,
        K0smotronControlPlaneStatus, StatusVersion,
    },
    crds,
};
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource,
    api::{ApiResource, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const FIELD_MANAGER: &str = "k0smotron-api-tests";

/// A test namespace, deleted (best effort) when dropped.
struct TestNs {
    name: String,
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot be async; delete from a short-lived runtime on its own thread, with a
        // client of its own (the test's client is served by the test's runtime, which this
        // thread's join blocks).
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async move {
                    if let Ok(client) = Client::try_default().await {
                        let _ = Api::<Namespace>::all(client)
                            .delete(&name, &DeleteParams::background())
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// Client, CRDs installed from `config/crd/bases` (what users install), and a fresh namespace.
async fn setup(prefix: &str) -> (Client, TestNs) {
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG of a running test/harness");
    install_crds(&client).await;
    let name = format!(
        "{prefix}-{:08x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id()
    );
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    (client, TestNs { name })
}

async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/crd/bases");
    for generated in crds::all() {
        let path = dir.join(crds::file_name(&generated));
        let text = std::fs::read_to_string(&path).expect("committed CRD file");
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("CRD YAML");
        let name = crd.metadata.name.clone().expect("name");
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("the API server refused CRD {name}: {e}"));
        wait_established(&api, &name).await;
    }
}

async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) {
    for _ in 0..150 {
        let crd = api.get(name).await.expect("get CRD");
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("CRD {name} not Established after 30 s");
}

/// A dynamic API for the kind of `object` (so fixtures are sent exactly as written).
fn dynamic_api(client: &Client, ns: &str, object: &Value) -> Api<DynamicObject> {
    let (group, version) = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let crd = crds::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("known kind");
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn to_dynamic(object: &Value, ns: &str) -> DynamicObject {
    let mut object: DynamicObject = serde_json::from_value(object.clone()).expect("object");
    object.metadata.namespace = Some(ns.to_owned());
    object
}

fn fixture(file: &str) -> Value {
    common::fixtures()
        .into_iter()
        .find(|(f, _)| f == file)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no fixture {file}"))
}

/// Retries a request while the API server is still setting up a just-established CRD's
/// handler (it answers 404 for a moment).
async fn retry_not_found<T, F, Fut>(mut f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut last = None;
    for _ in 0..50 {
        match f().await {
            Err(kube::Error::Api(s)) if s.code == 404 => {
                last = Some(kube::Error::Api(s));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
    Err(last.expect("at least one attempt"))
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn fixtures_are_admitted_and_defaulted_as_our_types_expect() {
    let (client, ns) = setup("api-fixtures").await;
    let crds = crds::all();
    for (file, value) in common::fixtures() {
        let api = dynamic_api(&client, &ns.name, &value);
        let object = to_dynamic(&value, &ns.name);
        let dry_run = PostParams {
            dry_run: true,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        retry_not_found(|| api.create(&dry_run, &object))
            .await
            .unwrap_or_else(|e| panic!("{file}: dry-run create refused: {e}"));

        // Create for real and compare what the API server stored with our model of its
        // defaulting (which the round-trip test also relies on).
        let create = PostParams::default();
        let created = retry_not_found(|| api.create(&create, &object))
            .await
            .unwrap_or_else(|e| panic!("{file}: create refused: {e}"));
        let stored = serde_json::to_value(&created).expect("json");
        let kind = value["kind"].as_str().expect("kind");
        let crd = crds
            .iter()
            .find(|c| c.spec.names.kind == kind)
            .expect("crd");
        let mut expected = value.clone();
        common::apply_defaults(&common::schema_of(crd), &mut expected);
        assert_eq!(stored["spec"], expected["spec"], "{file}: server defaults");

        // What the server stores deserialises into our types.
        match kind {
            "K0smotronControlPlane" => {
                serde_json::from_value::<K0smotronControlPlane>(stored).expect(&file);
            }
            "K0sWorkerConfig" => {
                serde_json::from_value::<K0sWorkerConfig>(stored).expect(&file);
            }
            "K0smotronControlPlaneTemplate" => {
                serde_json::from_value::<
                    k0smotron_api::controlplane::v1beta2::K0smotronControlPlaneTemplate,
                >(stored)
                .expect(&file);
            }
            "K0sWorkerConfigTemplate" => {
                serde_json::from_value::<k0smotron_api::bootstrap::v1beta2::K0sWorkerConfigTemplate>(
                    stored,
                )
                .expect(&file);
            }
            other => panic!("{file}: unexpected kind {other}"),
        }
    }

    // `spec: {}` is admitted and fully defaulted.
    let empty = json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
        "kind": "K0smotronControlPlane",
        "metadata": {"name": "empty"},
        "spec": {}
    });
    let api = dynamic_api(&client, &ns.name, &empty);
    let create = PostParams::default();
    let object = to_dynamic(&empty, &ns.name);
    let created = retry_not_found(|| api.create(&create, &object))
        .await
        .expect("empty spec admitted");
    let typed: K0smotronControlPlane =
        serde_json::from_value(serde_json::to_value(&created).expect("json")).expect("typed");
    assert_eq!(typed.spec, Default::default());

    // No `spec` at all, and `spec: null` (upstream's Hetzner sample), as upstream's CRDs admit
    // them: every kind but JoinTokenRequest (which must name its cluster) gets the defaults
    // (for a standalone Cluster upstream's own: a NodePort Service).
    for (i, (api_version, kind)) in [
        (
            "controlplane.cluster.x-k8s.io/v1beta2",
            "K0smotronControlPlane",
        ),
        (
            "controlplane.cluster.x-k8s.io/v1beta2",
            "K0smotronControlPlaneTemplate",
        ),
        ("bootstrap.cluster.x-k8s.io/v1beta2", "K0sWorkerConfig"),
        (
            "bootstrap.cluster.x-k8s.io/v1beta2",
            "K0sWorkerConfigTemplate",
        ),
        ("k0smotron.io/v1beta2", "Cluster"),
    ]
    .into_iter()
    .enumerate()
    {
        for (j, spec) in [None, Some(Value::Null)].into_iter().enumerate() {
            let mut manifest = json!({"apiVersion": api_version, "kind": kind,
                "metadata": {"name": format!("no-spec-{i}-{j}")}});
            if let Some(spec) = spec {
                manifest["spec"] = spec;
            }
            let api = dynamic_api(&client, &ns.name, &manifest);
            let object = to_dynamic(&manifest, &ns.name);
            let created = retry_not_found(|| api.create(&create, &object))
                .await
                .unwrap_or_else(|e| panic!("{kind} with spec {manifest}: refused: {e}"));
            let stored = serde_json::to_value(&created).expect("json");
            assert!(stored["spec"].is_object(), "{kind}: {stored}");
            match kind {
                "K0smotronControlPlane" => {
                    let typed: K0smotronControlPlane = serde_json::from_value(stored).expect(kind);
                    assert_eq!(typed.spec, Default::default());
                }
                "K0sWorkerConfig" => {
                    let typed: K0sWorkerConfig = serde_json::from_value(stored).expect(kind);
                    assert_eq!(typed.spec, Default::default());
                }
                "K0smotronControlPlaneTemplate" => {
                    serde_json::from_value::<
                        k0smotron_api::controlplane::v1beta2::K0smotronControlPlaneTemplate,
                    >(stored)
                    .expect(kind);
                }
                "K0sWorkerConfigTemplate" => {
                    serde_json::from_value::<
                        k0smotron_api::bootstrap::v1beta2::K0sWorkerConfigTemplate,
                    >(stored)
                    .expect(kind);
                }
                _ => {
                    // Upstream's default for an absent spec: a NodePort Service.
                    let typed: k0smotron_api::k0smotron::v1beta2::Cluster =
                        serde_json::from_value(stored).expect(kind);
                    assert_eq!(
                        typed.spec.service.type_,
                        k0smotron_api::k0smotron::v1beta2::ServiceType::NodePort
                    );
                }
            }
        }
    }
}

/// One bad input: a fixture, a change that breaks it, and what the error must mention.
struct Case {
    name: &'static str,
    fixture: &'static str,
    mutate: fn(&mut Value),
    expect: &'static [&'static str],
}

const KCP: &str = "k0smotroncontrolplane-etcd.yaml";
const KCP_KINE: &str = "k0smotroncontrolplane-kine.yaml";
const KCPT: &str = "k0smotroncontrolplanetemplate.yaml";
const KWC: &str = "k0sworkerconfig-ignition.yaml";
const KWCT: &str = "k0sworkerconfigtemplate.yaml";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "unknown service type",
            fixture: KCP,
            mutate: |v| v["spec"]["service"]["type"] = json!("Ingress"),
            expect: &["spec.service.type", "Unsupported value"],
        },
        Case {
            name: "service port out of range",
            fixture: KCP,
            mutate: |v| v["spec"]["service"]["apiPort"] = json!(70000),
            expect: &["spec.service.apiPort"],
        },
        Case {
            name: "unknown persistence type",
            fixture: KCP,
            mutate: |v| v["spec"]["persistence"]["type"] = json!("nfs"),
            expect: &["spec.persistence.type", "Unsupported value"],
        },
        Case {
            name: "pvc persistence without a claim",
            fixture: KCP,
            mutate: |v| {
                v["spec"]["persistence"]
                    .as_object_mut()
                    .expect("obj")
                    .remove("persistentVolumeClaim");
            },
            expect: &[
                "spec.persistence.persistentVolumeClaim",
                "required when type is pvc",
            ],
        },
        Case {
            name: "hostPath persistence without a path",
            fixture: KCP_KINE,
            mutate: |v| {
                v["spec"]["persistence"]
                    .as_object_mut()
                    .expect("obj")
                    .remove("hostPath");
            },
            expect: &[
                "spec.persistence.hostPath",
                "required when type is hostPath",
            ],
        },
        Case {
            name: "unknown storage type",
            fixture: KCP,
            mutate: |v| v["spec"]["storage"]["type"] = json!("mysql"),
            expect: &["spec.storage.type", "Unsupported value"],
        },
        Case {
            name: "negative replicas",
            fixture: KCP,
            mutate: |v| v["spec"]["replicas"] = json!(-1),
            expect: &["spec.replicas"],
        },
        Case {
            name: "version without patch",
            fixture: KCP,
            mutate: |v| v["spec"]["version"] = json!("v1.35"),
            expect: &["spec.version"],
        },
        Case {
            name: "version not a version",
            fixture: KCP,
            mutate: |v| v["spec"]["version"] = json!("latest"),
            expect: &["spec.version"],
        },
        Case {
            name: "unknown patch type",
            fixture: KCP,
            mutate: |v| v["spec"]["patches"][0]["patch"]["type"] = json!("yaml"),
            expect: &["spec.patches[0].patch.type", "Unsupported value"],
        },
        Case {
            name: "patch without content",
            fixture: KCP,
            mutate: |v| {
                v["spec"]["patches"][1]["patch"]
                    .as_object_mut()
                    .expect("obj")
                    .remove("content");
            },
            expect: &["spec.patches[1].patch.content", "Required value"],
        },
        Case {
            name: "unknown certificate type",
            fixture: KCP,
            mutate: |v| v["spec"]["certificateRefs"][0]["type"] = json!("tls"),
            expect: &["spec.certificateRefs[0].type", "Unsupported value"],
        },
        Case {
            name: "ingress on k0s 1.34.0",
            fixture: KCP_KINE,
            mutate: |v| v["spec"]["version"] = json!("v1.34.0+k0s.0"),
            expect: &["spec.ingress", "v1.34.1"],
        },
        Case {
            name: "ingress without apiHost",
            fixture: KCP_KINE,
            mutate: |v| {
                v["spec"]["ingress"]
                    .as_object_mut()
                    .expect("obj")
                    .remove("apiHost");
            },
            expect: &["spec.ingress.apiHost", "Required value"],
        },
        Case {
            name: "empty controlPlaneEndpoint",
            fixture: KCP_KINE,
            mutate: |v| v["spec"]["controlPlaneEndpoint"] = json!({}),
            expect: &["spec.controlPlaneEndpoint"],
        },
        Case {
            name: "remote host kubeconfigRef without namespace",
            fixture: KCP_KINE,
            mutate: |v| {
                v["spec"]["remoteHostCluster"]["kubeconfigRef"]
                    .as_object_mut()
                    .expect("obj")
                    .remove("namespace");
            },
            expect: &[
                "spec.remoteHostCluster.kubeconfigRef.namespace",
                "Required value",
            ],
        },
        Case {
            name: "template: unknown service type",
            fixture: KCPT,
            mutate: |v| v["spec"]["template"]["spec"]["service"]["type"] = json!("Ingress"),
            expect: &["spec.template.spec.service.type", "Unsupported value"],
        },
        Case {
            name: "file with both content and contentFrom",
            fixture: KWCT,
            mutate: |v| {
                v["spec"]["template"]["spec"]["files"][0]["contentFrom"] =
                    json!({"secretRef": {"name": "s", "key": "k"}});
            },
            expect: &[
                "spec.template.spec.files[0]",
                "exactly one of content or contentFrom",
            ],
        },
        Case {
            name: "file with neither content nor contentFrom",
            fixture: KWCT,
            mutate: |v| {
                v["spec"]["template"]["spec"]["files"][0]
                    .as_object_mut()
                    .expect("obj")
                    .remove("content");
            },
            expect: &[
                "spec.template.spec.files[0]",
                "exactly one of content or contentFrom",
            ],
        },
        Case {
            name: "contentFrom with both refs",
            fixture: KWCT,
            mutate: |v| {
                v["spec"]["template"]["spec"]["files"][1]["contentFrom"]["configMapRef"] =
                    json!({"name": "c", "key": "k"});
            },
            expect: &[
                "spec.template.spec.files[1].contentFrom",
                "exactly one of secretRef or configMapRef",
            ],
        },
        Case {
            name: "contentFrom ref without a name",
            fixture: KWCT,
            mutate: |v| {
                v["spec"]["template"]["spec"]["files"][1]["contentFrom"]["secretRef"]
                    .as_object_mut()
                    .expect("obj")
                    .remove("name");
            },
            expect: &[
                "spec.template.spec.files[1].contentFrom.secretRef.name",
                "Required value",
            ],
        },
        Case {
            name: "duplicate file paths",
            fixture: KWCT,
            mutate: |v| {
                v["spec"]["template"]["spec"]["files"][1]["path"] = json!("/etc/motd");
            },
            expect: &["spec.template.spec.files[1]", "Duplicate value"],
        },
        Case {
            name: "worker version in image-tag spelling",
            fixture: KWC,
            mutate: |v| v["spec"]["version"] = json!("v1.35.7-k0s.0"),
            expect: &["spec.version", "+k0s.N"],
        },
        Case {
            name: "unknown provisioner type",
            fixture: KWC,
            mutate: |v| v["spec"]["provisioner"]["type"] = json!("shell"),
            expect: &["spec.provisioner.type", "Unsupported value"],
        },
        Case {
            name: "unknown ignition variant",
            fixture: KWC,
            mutate: |v| v["spec"]["provisioner"]["ignition"]["variant"] = json!("ubuntu"),
            expect: &["spec.provisioner.ignition.variant", "Unsupported value"],
        },
        Case {
            name: "windows on an old k0s",
            fixture: KWC,
            mutate: |v| {
                v["spec"]["provisioner"] = json!({"type": "powershell", "platform": "windows"});
                v["spec"]["version"] = json!("v1.34.1+k0s.0");
            },
            expect: &["spec.version", "v1.34.2"],
        },
        Case {
            name: "powershell for a linux node",
            fixture: KWC,
            mutate: |v| v["spec"]["provisioner"] = json!({"type": "powershell"}),
            expect: &["spec.provisioner.platform", "need platform windows"],
        },
        Case {
            name: "ignition for a windows node",
            fixture: KWC,
            mutate: |v| {
                v["spec"]["provisioner"]["platform"] = json!("windows");
                v["spec"]["version"] = json!("v1.34.2+k0s.0");
            },
            expect: &["spec.provisioner.type", "not ignition"],
        },
        Case {
            name: "download URL with an unsupported scheme",
            fixture: KWC,
            mutate: |v| v["spec"]["downloadURL"] = json!("ftp://example.com/k0s"),
            expect: &["spec.downloadURL"],
        },
    ]
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn bad_input_is_refused_naming_the_field() {
    let (client, ns) = setup("api-admission").await;
    let dry_run = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let mut failures = Vec::new();
    for case in cases() {
        let mut value = fixture(case.fixture);
        (case.mutate)(&mut value);
        let api = dynamic_api(&client, &ns.name, &value);
        let object = to_dynamic(&value, &ns.name);
        match retry_not_found(|| api.create(&dry_run, &object)).await {
            Ok(_) => failures.push(format!("{}: admitted", case.name)),
            Err(kube::Error::Api(status)) => {
                let missing: Vec<_> = case
                    .expect
                    .iter()
                    .filter(|s| !status.message.contains(**s))
                    .collect();
                if status.code != 422 || !missing.is_empty() {
                    failures.push(format!(
                        "{}: HTTP {} {:?} lacks {missing:?}",
                        case.name, status.code, status.message
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn create_object(api: &Api<DynamicObject>, value: &Value, ns: &str) {
    let create = PostParams::default();
    let object = to_dynamic(value, ns);
    retry_not_found(|| api.create(&create, &object))
        .await
        .expect("create");
}

async fn merge(
    api: &Api<DynamicObject>,
    name: &str,
    patch: Value,
) -> Result<DynamicObject, kube::Error> {
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

fn refusal(result: Result<DynamicObject, kube::Error>) -> String {
    match result {
        Ok(_) => panic!("update was admitted"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{}", status.message);
            status.message
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn version_changes_may_not_skip_a_minor() {
    let (client, ns) = setup("api-upgrade").await;
    let mut value = fixture("k0smotroncontrolplane-minimal.yaml");
    value["spec"]["version"] = json!("v1.33.4+k0s.0");
    let api = dynamic_api(&client, &ns.name, &value);
    create_object(&api, &value, &ns.name).await;
    let name = "minimal-cp";

    let message = refusal(merge(&api, name, json!({"spec": {"version": "v1.35.7+k0s.0"}})).await);
    assert!(message.contains("spec.version"), "{message}");
    assert!(message.contains("may not skip a minor"), "{message}");

    merge(&api, name, json!({"spec": {"version": "v1.34.3+k0s.0"}}))
        .await
        .expect("one minor step");
    merge(&api, name, json!({"spec": {"version": "v1.35.7-k0s.0"}}))
        .await
        .expect("next minor step, image-tag spelling");
    merge(&api, name, json!({"spec": {"version": "v1.35.7+k0s.1"}}))
        .await
        .expect("k0s build bump");
    // Unrelated updates pass while the version stays.
    merge(&api, name, json!({"spec": {"replicas": 2}}))
        .await
        .expect("unrelated update");

    // Templates are not upgraded in place by CAPI; the rule does not apply to them.
    let mut template = fixture("k0smotroncontrolplanetemplate.yaml");
    template["spec"]["template"]["spec"]["version"] = json!("v1.32.0+k0s.0");
    let tapi = dynamic_api(&client, &ns.name, &template);
    create_object(&tapi, &template, &ns.name).await;
    merge(
        &tapi,
        "k0smotron-cp-template",
        json!({"spec": {"template": {"spec": {"version": "v1.35.7+k0s.0"}}}}),
    )
    .await
    .expect("template version change");
}

/// Names are bounded so that the StatefulSet `kmc-<name>` (`kmc-<name>-etcd` with etcd storage)
/// plus the revision hash the StatefulSet controller appends still fit a 63-character pod label.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn names_too_long_for_the_statefulset_label_are_refused() {
    let (client, ns) = setup("api-name-length").await;
    let dry_run = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    for (file, length, admitted) in [
        (KCP, 43, true),
        (KCP, 44, false),
        (KCP_KINE, 48, true),
        (KCP_KINE, 49, false),
    ] {
        let mut value = fixture(file);
        value["metadata"]["name"] = json!("a".repeat(length));
        let api = dynamic_api(&client, &ns.name, &value);
        let object = to_dynamic(&value, &ns.name);
        let result = retry_not_found(|| api.create(&dry_run, &object)).await;
        match (result, admitted) {
            (Ok(_), true) => {}
            (Err(kube::Error::Api(status)), false) => {
                assert_eq!(status.code, 422, "{}", status.message);
                assert!(
                    status
                        .message
                        .contains("metadata.name may have at most 48 characters"),
                    "{}",
                    status.message
                );
            }
            (result, _) => panic!(
                "{file} with a {length}-character name: {:?}",
                result.map(|_| "admitted")
            ),
        }
    }
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn nats_replicas_cannot_change() {
    let (client, ns) = setup("api-nats").await;
    let value = fixture("k0smotroncontrolplane-nats.yaml");
    let api = dynamic_api(&client, &ns.name, &value);
    create_object(&api, &value, &ns.name).await;
    let message = refusal(merge(&api, "nats-cp", json!({"spec": {"replicas": 5}})).await);
    assert!(message.contains("spec.replicas"), "{message}");

    // The same change on etcd storage is fine.
    let value = fixture("k0smotroncontrolplane-etcd.yaml");
    create_object(&api, &value, &ns.name).await;
    merge(&api, "etcd-cp", json!({"spec": {"replicas": 5}}))
        .await
        .expect("etcd replicas change");
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn typed_status_is_accepted_and_scale_works() {
    let (client, ns) = setup("api-status").await;
    let value = fixture("k0smotroncontrolplane-etcd.yaml");
    let dapi = dynamic_api(&client, &ns.name, &value);
    create_object(&dapi, &value, &ns.name).await;

    let api: Api<K0smotronControlPlane> = Api::namespaced(client.clone(), &ns.name);
    let status = K0smotronControlPlaneStatus {
        initialization: Some(ControlPlaneInitialization {
            control_plane_initialized: Some(true),
        }),
        external_managed_control_plane: Some(true),
        version: Some("v1.35.7+k0s.0".into()),
        versions: vec![StatusVersion {
            version: "v1.35.7+k0s.0".into(),
            replicas: Some(3),
        }],
        replicas: Some(3),
        ready_replicas: Some(3),
        available_replicas: Some(3),
        up_to_date_replicas: Some(3),
        selector: Some("app=k0smotron,cluster=etcd-cp".into()),
        conditions: vec![
            serde_json::from_value(json!({
                "type": "Available", "status": "True", "reason": "Available", "message": "",
                "lastTransitionTime": "2026-01-02T03:04:05Z", "observedGeneration": 1
            }))
            .expect("condition"),
        ],
        observed_generation: Some(1),
        external_address: Some("192.0.2.1".into()),
        certificate_refs: vec![CertificateRef {
            type_: CertificateType::Ca,
            name: Some("etcd-cp-ca".into()),
        }],
        dynamic_config_hash: Some("0123456789abcdef".into()),
    };
    let patched = apply_status(&api, "etcd-cp", FIELD_MANAGER, json!(status)).await;
    assert_eq!(patched.status, Some(status));

    let scale = api.get_scale("etcd-cp").await.expect("scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(
        scale.status.map(|s| (s.replicas, s.selector)),
        Some((3, Some("app=k0smotron,cluster=etcd-cp".into())))
    );

    // Bootstrap status.
    let kwc = fixture("k0sworkerconfig-ignition.yaml");
    let dapi = dynamic_api(&client, &ns.name, &kwc);
    create_object(&dapi, &kwc, &ns.name).await;
    let api: Api<K0sWorkerConfig> = Api::namespaced(client.clone(), &ns.name);
    let status = K0sWorkerConfigStatus {
        data_secret_name: Some("flatcar-worker".into()),
        initialization: Some(BootstrapInitialization {
            data_secret_created: Some(true),
        }),
        conditions: vec![
            serde_json::from_value(json!({
                "type": "Ready", "status": "True", "reason": "Ready", "message": "",
                "lastTransitionTime": "2026-01-02T03:04:05Z"
            }))
            .expect("condition"),
        ],
        observed_generation: Some(1),
    };
    let patched = apply_status(&api, "flatcar-worker", FIELD_MANAGER, json!(status)).await;
    assert_eq!(patched.status, Some(status));

    // Status conditions are a list-map keyed by type: a second manager's condition merges in.
    let merged = apply_status(
        &api,
        "flatcar-worker",
        "another-manager",
        json!({"conditions": [condition_json("DataSecretAvailable")]}),
    )
    .await;
    let types: Vec<_> = merged
        .status
        .map(|s| s.conditions.into_iter().map(|c| c.type_).collect())
        .unwrap_or_default();
    assert_eq!(types, ["Ready", "DataSecretAvailable"]);

    // The API server stores our schemas unchanged: nothing in them is silently dropped.
    let crd_api: Api<CustomResourceDefinition> = Api::all(client);
    for generated in crds::all() {
        let name = generated.metadata.name.clone().expect("name");
        let served = crd_api.get(&name).await.expect("crd");
        assert_eq!(
            serde_json::to_value(&served.spec.versions).expect("json"),
            serde_json::to_value(&generated.spec.versions).expect("json"),
            "{name}"
        );
    }
}

/// Server-side applies `status` through the status subresource as `manager` (forcing conflicts).
async fn apply_status<K>(api: &Api<K>, name: &str, manager: &str, status: Value) -> K
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await
    .unwrap_or_else(|e| panic!("status apply by {manager}: {e}"))
}

fn condition_json(type_: &str) -> Value {
    json!({
        "type": type_, "status": "True", "reason": "Testing", "message": "set by a test",
        "lastTransitionTime": "2026-01-02T03:04:05Z"
    })
}
