//! The conversion webhook against the real API server of `test/harness`: v1beta1 objects of
//! upstream's shape created through the API server and read back as v1beta2 and v1beta1, a
//! v1beta2 object with fields v1beta1 cannot express surviving a v1beta1 client's update, the CA
//! bundle injected into our CRDs, and v1beta2 reads and writes going on while the webhook is
//! down.
//!
//! The webhook runs in this process, as the binary runs it (`webhook::Webhook`, shared with
//! `upstream_manifests.rs`). The CRDs are cluster-wide, so this file holds one test, and it puts
//! their Service reference back when it ends. Run: `eval "$(test/harness/cluster up)"` then
//! `cargo test -p controlplane-provider --test conversion_webhook -- --include-ignored`.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod webhook;

use std::path::PathBuf;

use k0smotron_api::bootstrap::v1beta2 as bootstrap;
use k0smotron_api::controlplane::v1beta2 as controlplane;
use k0smotron_api::conversion::CONVERSION_DATA_ANNOTATION;
use k0smotron_api::k0smotron::v1beta2 as standalone;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};
use test_support::TestNamespace;
use webhook::{SECRET, Webhook, eventually, restore_crds, wait_injected};

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/crd/bases")
}

/// `Api` of `plural` at `group/version`, for objects of any version.
fn dynamic(
    client: &Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// `actual` has every field of `expected` with the same value (objects compared key by key,
/// everything else exactly): what a read-back must keep of what was written.
fn assert_contains(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, value) in expected {
                let inner = format!("{path}.{key}");
                let Some(found) = actual.get(key) else {
                    panic!("{inner} missing; have {actual:?}");
                };
                assert_contains(found, value, &inner);
            }
        }
        _ => assert_eq!(actual, expected, "at {path}"),
    }
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test harness (test/harness/cluster up)"]
async fn v1beta1_objects_round_trip_through_the_providers_webhook() {
    let ns = TestNamespace::create("conversion").await.unwrap();
    let client = ns.client();
    // (A failed earlier run may have left the CRDs pointing at its URL: the apply puts the
    // files' Service back, test_support::apply_crd_file.)
    test_support::apply_crd_dir(&client, &crd_dir())
        .await
        .unwrap();
    let name = ns.name().to_owned();

    let webhook = Webhook::start(&client, &name).await;
    let bundle = wait_injected(&client, &name).await;
    assert!(
        bundle.starts_with("-----BEGIN CERTIFICATE-----"),
        "{bundle}"
    );

    // --- k0smotron.io Cluster: upstream's v1beta1 manifest, read as v1beta2 and as v1beta1.
    let clusters_v1 = dynamic(
        &client,
        &name,
        "k0smotron.io",
        "v1beta1",
        "Cluster",
        "clusters",
    );
    let cluster_v1 = json!({
        "apiVersion": "k0smotron.io/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": "k0smotron-test"},
        "spec": {
            "replicas": 1,
            "version": "v1.31.5-k0s.0",
            "kineDataSourceURL": "postgres://postgres:postgres@postgres.default:5432/kine?sslmode=disable",
            "service": {
                "type": "LoadBalancer",
                "apiPort": 6443,
                "konnectivityPort": 8132,
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
                "externalTrafficPolicy": "Local"
            },
            "persistence": {"type": "emptyDir"}
        }
    });
    let created = eventually("create a v1beta1 Cluster", || {
        let (api, obj) = (clusters_v1.clone(), object(cluster_v1.clone()));
        async move { api.create(&PostParams::default(), &obj).await }
    })
    .await;
    assert_eq!(created.types.unwrap().api_version, "k0smotron.io/v1beta1");

    let v2: standalone::Cluster = ns.api().get("k0smotron-test").await.unwrap();
    assert_eq!(v2.spec.replicas, 1);
    assert_eq!(v2.spec.version, "v1.31.5-k0s.0");
    assert_eq!(
        v2.spec
            .storage
            .kine
            .as_ref()
            .and_then(|k| k.data_source_url.as_deref()),
        Some("postgres://postgres:postgres@postgres.default:5432/kine?sslmode=disable")
    );
    let annotations = v2.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("k0smotron.io/conversion-dropped-service.externalTrafficPolicy"),
        Some(&"\"Local\"".to_owned()),
        "{annotations:?}"
    );
    let back = clusters_v1.get("k0smotron-test").await.unwrap();
    let back = serde_json::to_value(&back).unwrap();
    assert_contains(&back["spec"], &cluster_v1["spec"], "spec");
    assert_eq!(back["apiVersion"], "k0smotron.io/v1beta1");

    // A v1beta1 client's update lands in the stored v1beta2 object.
    eventually("patch the Cluster at v1beta1", || {
        let api = clusters_v1.clone();
        async move {
            api.patch(
                "k0smotron-test",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 3}})),
            )
            .await
        }
    })
    .await;
    let v2: standalone::Cluster = ns.api().get("k0smotron-test").await.unwrap();
    assert_eq!(v2.spec.replicas, 3);

    // --- v1beta2 → v1beta1 → v1beta2 keeps what v1beta1 cannot express (patches here), also
    // through a v1beta1 client's read-modify-write.
    let patched: standalone::Cluster = serde_json::from_value(json!({
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "with-patches"},
        "spec": {
            "replicas": 1,
            "patches": [{
                "target": {"kind": "StatefulSet", "component": "control-plane"},
                "patch": {"type": "merge", "content": "{\"metadata\":{\"labels\":{\"x\":\"y\"}}}"}
            }]
        }
    }))
    .unwrap();
    let patched = ns
        .api::<standalone::Cluster>()
        .create(&PostParams::default(), &patched)
        .await
        .unwrap();
    let as_v1 = eventually("read at v1beta1", || clusters_v1.get("with-patches")).await;
    assert!(
        as_v1
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(CONVERSION_DATA_ANNOTATION)),
        "{:?}",
        as_v1.metadata.annotations
    );
    let mut edited = as_v1.clone();
    edited.data["spec"]["replicas"] = json!(2);
    eventually("replace at v1beta1", || {
        let (api, edited) = (clusters_v1.clone(), edited.clone());
        async move {
            api.replace("with-patches", &PostParams::default(), &edited)
                .await
        }
    })
    .await;
    let after: standalone::Cluster = ns.api().get("with-patches").await.unwrap();
    assert_eq!(after.spec.replicas, 2);
    assert_eq!(after.spec.patches, patched.spec.patches);
    assert!(!after.spec.patches.is_empty());
    assert_eq!(after.metadata.annotations, patched.metadata.annotations);

    // --- K0smotronControlPlane (v1beta1, upstream's shape).
    let kcp_v1 = dynamic(
        &client,
        &name,
        "controlplane.cluster.x-k8s.io",
        "v1beta1",
        "K0smotronControlPlane",
        "k0smotroncontrolplanes",
    );
    let kcp = json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "K0smotronControlPlane",
        "metadata": {"name": "docker-test-cp"},
        "spec": {
            "version": "v1.31.5-k0s.0",
            "persistence": {"type": "emptyDir"},
            "service": {"type": "NodePort", "apiPort": 30443, "konnectivityPort": 30132},
            "k0sConfig": {"apiVersion": "k0s.k0sproject.io/v1beta1", "kind": "ClusterConfig", "spec": {"telemetry": {"enabled": false}}}
        }
    });
    eventually("create a v1beta1 K0smotronControlPlane", || {
        let (api, obj) = (kcp_v1.clone(), object(kcp.clone()));
        async move { api.create(&PostParams::default(), &obj).await }
    })
    .await;
    let v2: controlplane::K0smotronControlPlane = ns.api().get("docker-test-cp").await.unwrap();
    assert_eq!(v2.spec.cluster.version, "v1.31.5-k0s.0");
    assert_eq!(v2.spec.cluster.service.api_port, 30443);
    let back = serde_json::to_value(kcp_v1.get("docker-test-cp").await.unwrap()).unwrap();
    assert_contains(&back["spec"], &kcp["spec"], "spec");

    // --- K0sWorkerConfig (v1beta1, upstream's shape).
    let kwc_v1 = dynamic(
        &client,
        &name,
        "bootstrap.cluster.x-k8s.io",
        "v1beta1",
        "K0sWorkerConfig",
        "k0sworkerconfigs",
    );
    let kwc = json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta1",
        "kind": "K0sWorkerConfig",
        "metadata": {"name": "docker-test-0"},
        "spec": {
            "version": "v1.31.5+k0s.0",
            "args": ["--labels=k0sproject.io/foo=bar"],
            "preStartCommands": ["echo hello"],
            "files": [{"path": "/etc/motd", "content": "hi", "permissions": "0644"}]
        }
    });
    eventually("create a v1beta1 K0sWorkerConfig", || {
        let (api, obj) = (kwc_v1.clone(), object(kwc.clone()));
        async move { api.create(&PostParams::default(), &obj).await }
    })
    .await;
    let v2: bootstrap::K0sWorkerConfig = ns.api().get("docker-test-0").await.unwrap();
    assert_eq!(v2.spec.version.as_deref(), Some("v1.31.5+k0s.0"));
    let back = serde_json::to_value(kwc_v1.get("docker-test-0").await.unwrap()).unwrap();
    assert_contains(&back["spec"], &kwc["spec"], "spec");

    // --- The webhook down: v1beta2 reads and writes go on; v1beta1 requests fail.
    webhook.stop().await;
    let clusters: Api<standalone::Cluster> = ns.api();
    assert_eq!(
        clusters
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    clusters
        .patch(
            "k0smotron-test",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(
        clusters.get("k0smotron-test").await.unwrap().spec.replicas,
        5
    );
    let kcps: Api<controlplane::K0smotronControlPlane> = ns.api();
    assert!(kcps.get("docker-test-cp").await.is_ok());
    let kwcs: Api<bootstrap::K0sWorkerConfig> = ns.api();
    assert_eq!(
        kwcs.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let err = clusters_v1.get("k0smotron-test").await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(status) if status.code >= 500),
        "{err}"
    );

    // --- A restarted webhook serves the same certificate from the Secret: nothing to inject.
    let secret_before: Secret = ns.api().get(SECRET).await.unwrap();
    let webhook = Webhook::start(&client, &name).await;
    eventually("read at v1beta1 after a restart", || {
        clusters_v1.get("k0smotron-test")
    })
    .await;
    let secret_after: Secret = ns.api().get(SECRET).await.unwrap();
    assert_eq!(secret_after.data, secret_before.data);
    webhook.stop().await;

    restore_crds(&client).await;
}
