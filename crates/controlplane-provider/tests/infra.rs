//! Self-managed infrastructure against the real API server (test/harness with `--capi`): CAPD's
//! real `DevCluster` CRD (v1beta2 contract) and two test kinds
//! (`tests/fixtures/infra-contract-crds.yaml`: a v1beta1-contract kind, and a kind whose schema
//! has no provisioned field).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use controlplane_provider::infra::INFRA_MANAGER;
use controlplane_provider::reconcile::{InfraError, InfraOutcome, provision_infrastructure};
use k0smotron_api::capi::ContractVersionedObjectReference;
use k0smotron_api::names::MANAGED_BY_ANNOTATION;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::{Value, json};
use test_support::{TestNamespace, apply_crd_file, env_path};

const GROUP: &str = "infrastructure.cluster.x-k8s.io";

async fn setup() -> (TestNamespace, Client) {
    let ns = TestNamespace::create("cp-infra").await.unwrap();
    let client = ns.client();
    let capd = env_path("CAPD_CRD_DIR").expect("CAPD CRDs: start the harness with --capi");
    apply_crd_file(
        &client,
        &capd.join("infrastructure.cluster.x-k8s.io_devclusters.yaml"),
    )
    .await
    .unwrap();
    // The contract labels CAPD's config/crd/kustomization.yaml adds at install (the bases lack
    // them).
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            "devclusters.infrastructure.cluster.x-k8s.io",
            &PatchParams::apply("capd-kustomize").force(),
            &Patch::Apply(json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {
                    "name": "devclusters.infrastructure.cluster.x-k8s.io",
                    "labels": {
                        "cluster.x-k8s.io/v1beta1": "v1beta1",
                        "cluster.x-k8s.io/v1beta2": "v1beta2",
                    },
                },
            })),
        )
        .await
        .unwrap();
    apply_crd_file(
        &client,
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/infra-contract-crds.yaml"),
    )
    .await
    .unwrap();
    (ns, client)
}

fn api(client: &Client, ns: &str, version: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, version, kind),
        &format!("{}s", kind.to_ascii_lowercase()),
    );
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// The API of `kind` at `version`, and a way to create objects of it.
struct Kind {
    api: Api<DynamicObject>,
    version: &'static str,
    kind: &'static str,
}

impl Kind {
    fn new(client: &Client, ns: &str, version: &'static str, kind: &'static str) -> Self {
        Self {
            api: api(client, ns, version, kind),
            version,
            kind,
        }
    }

    /// Creates `name`, annotated for us when `ours`, with `spec`.
    async fn create(&self, name: &str, ours: bool, spec: Value) {
        let mut annotations = serde_json::Map::new();
        if ours {
            annotations.insert(MANAGED_BY_ANNOTATION.into(), "k0smotron".into());
        }
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/{}", self.version),
            "kind": self.kind,
            "metadata": { "name": name, "annotations": annotations },
            "spec": spec,
        }))
        .unwrap();
        self.api
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }

    async fn get(&self, name: &str) -> DynamicObject {
        self.api.get(name).await.unwrap()
    }
}

fn reference(kind: &str, name: &str) -> ContractVersionedObjectReference {
    ContractVersionedObjectReference {
        api_group: GROUP.into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn status_managers(obj: &DynamicObject) -> Vec<String> {
    obj.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.as_deref() == Some("status"))
        .filter_map(|f| f.manager.clone())
        .collect()
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG) started with --capi"]
async fn self_managed_infrastructure_is_marked_provisioned_per_its_contract() {
    let (ns, client) = setup().await;
    let ns_name = ns.name().to_owned();
    // CAPD 1.13 DevCluster: v1beta2 contract, `spec.backend` required by its schema.
    let dev = Kind::new(&client, &ns_name, "v1beta2", "DevCluster");
    let spec = json!({ "backend": { "docker": {} } });
    dev.create("ours", true, spec.clone()).await;
    dev.create("theirs", false, spec).await;

    // Without the annotation: read, left alone.
    let outcome = provision_infrastructure(&client, &ns_name, &reference("DevCluster", "theirs"))
        .await
        .unwrap();
    assert_eq!(outcome, InfraOutcome::NotOurs);
    let theirs = dev.get("theirs").await;
    assert_eq!(theirs.data["status"]["initialization"], Value::Null);
    assert!(status_managers(&theirs).is_empty());

    // With it: `status.initialization.provisioned`, under our own field manager only; the spec
    // is untouched. A second call writes nothing.
    let outcome = provision_infrastructure(&client, &ns_name, &reference("DevCluster", "ours"))
        .await
        .unwrap();
    assert_eq!(outcome, InfraOutcome::Provisioned);
    let ours = dev.get("ours").await;
    assert_eq!(ours.data["status"]["initialization"]["provisioned"], true);
    assert_eq!(status_managers(&ours), [INFRA_MANAGER]);
    assert_eq!(ours.data["spec"], json!({ "backend": { "docker": {} } }));
    let outcome = provision_infrastructure(&client, &ns_name, &reference("DevCluster", "ours"))
        .await
        .unwrap();
    assert_eq!(outcome, InfraOutcome::AlreadyProvisioned);
    assert_eq!(
        dev.get("ours").await.metadata.resource_version,
        ours.metadata.resource_version
    );

    // A v1beta1-contract kind: `status.ready`.
    let legacy = Kind::new(&client, &ns_name, "v1beta2", "LegacyTestCluster");
    legacy.create("old", true, json!({})).await;
    let outcome =
        provision_infrastructure(&client, &ns_name, &reference("LegacyTestCluster", "old"))
            .await
            .unwrap();
    assert_eq!(outcome, InfraOutcome::Provisioned);
    let old = legacy.get("old").await;
    assert_eq!(old.data["status"], json!({ "ready": true }));

    // A schema without the field: an error, never a reported success.
    let narrow = Kind::new(&client, &ns_name, "v1alpha1", "NarrowTestCluster");
    narrow.create("narrow", true, json!({})).await;
    let err =
        provision_infrastructure(&client, &ns_name, &reference("NarrowTestCluster", "narrow"))
            .await
            .unwrap_err();
    // (Server-side apply refuses a field the schema lacks; were it dropped instead, that is
    // `Pruned`.)
    assert!(
        matches!(err, InfraError::Write { .. } | InfraError::Pruned { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("NarrowTestCluster"), "{err}");

    // A kind the group does not serve, and a missing object, name what is wrong.
    let err = provision_infrastructure(&client, &ns_name, &reference("NoSuchCluster", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, InfraError::UnknownKind { .. }), "{err}");
    let err = provision_infrastructure(&client, &ns_name, &reference("DevCluster", "missing"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("DevCluster") && err.to_string().contains("missing"),
        "{err}"
    );
}
