//! v1beta1 ⇄ v1beta2 conversion of every kind, through the function a conversion webhook calls
//! (`conversion::convert`), on realistic objects: upstream's documented v1beta1 layouts and our
//! v1beta2 fixtures.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use k0smotron_api::conversion::{CONVERSION_DATA_ANNOTATION, convert};
use pretty_assertions::assert_eq;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

fn to(object: &Value, api_version: &str) -> Value {
    convert(object.clone(), api_version)
        .unwrap_or_else(|e| panic!("conversion to {api_version} failed: {e}"))
}

/// The object as our types read and write it (the API server's defaults filled in).
fn normalized<T: DeserializeOwned + Serialize>(object: &Value) -> Value {
    let typed: T = serde_json::from_value(object.clone()).expect("valid object");
    serde_json::to_value(typed).expect("serialises")
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["annotations"][key].as_str()
}

// ---------------------------------------------------------------------------------------------
// k0smotron.io Cluster
// ---------------------------------------------------------------------------------------------

/// A v1beta1 Cluster as upstream's docs wrote them: kine at the top, the flags' old spelling,
/// a LoadBalancer Service with the four fields v1beta2 dropped, a remote hosting cluster.
fn v1beta1_cluster() -> Value {
    json!({
        "apiVersion": "k0smotron.io/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": "k0smotron-test", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "version": "v1.31.5-k0s.0",
            "kubeconfigRef": {"name": "hosting-kubeconfig", "namespace": "default", "key": "value"},
            "kineDataSourceURL": "postgres://postgres:postgres@postgres.default:5432/kine?sslmode=disable",
            "controllerPlaneFlags": ["--enable-metrics-scraper"],
            "service": {
                "type": "LoadBalancer",
                "apiPort": 6443,
                "konnectivityPort": 8132,
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
                "labels": {"team": "platform"},
                "loadBalancerClass": "service.k8s.aws/nlb",
                "externalTrafficPolicy": "Local"
            },
            "persistence": {"type": "emptyDir"},
            "etcd": {"image": "quay.io/k0sproject/etcd:v3.5.13", "args": ["--auto-compaction-retention=2"]}
        },
        "status": {"reconciliationStatus": "Reconciliation successful", "ready": true, "replicas": 3, "selector": "app=k0smotron"}
    })
}

#[test]
fn cluster_v1beta1_converts_to_v1beta2_as_upstream() {
    let v2 = to(&v1beta1_cluster(), "k0smotron.io/v1beta2");
    assert_eq!(v2["apiVersion"], "k0smotron.io/v1beta2");
    let spec = &v2["spec"];
    assert_eq!(
        spec["remoteHostCluster"]["kubeconfigRef"]["name"],
        "hosting-kubeconfig"
    );
    assert_eq!(spec["storage"]["type"], "kine");
    assert_eq!(
        spec["storage"]["kine"]["dataSourceURL"],
        "postgres://postgres:postgres@postgres.default:5432/kine?sslmode=disable"
    );
    assert_eq!(
        spec["storage"]["etcd"]["args"],
        json!(["--auto-compaction-retention=2"])
    );
    assert_eq!(
        spec["controlPlaneFlags"],
        json!(["--enable-metrics-scraper"])
    );
    assert_eq!(
        spec["service"],
        json!({"type": "LoadBalancer", "apiPort": 6443, "konnectivityPort": 8132})
    );
    // Upstream's annotations, JSON-encoded as upstream encodes them.
    assert_eq!(
        annotation(&v2, "k0smotron.io/conversion-dropped-service.annotations"),
        Some(r#"{"service.beta.kubernetes.io/aws-load-balancer-type":"nlb"}"#)
    );
    assert_eq!(
        annotation(&v2, "k0smotron.io/conversion-dropped-service.labels"),
        Some(r#"{"team":"platform"}"#)
    );
    assert_eq!(
        annotation(
            &v2,
            "k0smotron.io/conversion-dropped-service.externalTrafficPolicy"
        ),
        Some(r#""Local""#)
    );
    assert_eq!(
        annotation(
            &v2,
            "k0smotron.io/conversion-dropped-service.loadBalancerClass"
        ),
        Some(r#""service.k8s.aws/nlb""#)
    );
    assert_eq!(
        v2["status"]["deprecated"]["v1beta1"],
        json!({"reconciliationStatus": "Reconciliation successful", "ready": true})
    );
    assert_eq!(v2["status"]["replicas"], 3);
    // Nothing of ours on a v1beta2 object.
    assert_eq!(annotation(&v2, CONVERSION_DATA_ANNOTATION), None);
}

#[test]
fn cluster_v1beta1_round_trips_through_v1beta2() {
    let v1 = v1beta1_cluster();
    let back = to(&to(&v1, "k0smotron.io/v1beta2"), "k0smotron.io/v1beta1");
    assert_eq!(
        back,
        normalized::<k0smotron_api::k0smotron::v1beta1::Cluster>(&v1)
    );
    assert_eq!(
        back["metadata"].get("annotations"),
        None,
        "no annotation left behind"
    );
}

#[test]
fn cluster_v1beta2_with_nats_and_patches_round_trips_through_v1beta1() {
    let v2 = json!({
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "nats", "namespace": "tenants", "annotations": {"owner": "team-a"}},
        "spec": {
            "replicas": 1,
            "image": "quay.io/k0sproject/k0s",
            "version": "v1.34.3+k0s.0",
            "service": {"type": "NodePort", "apiPort": 30443, "konnectivityPort": 30132},
            "persistence": {"type": "emptyDir", "autoDeletePVCs": false},
            "storage": {
                "type": "nats",
                "etcd": {"image": "quay.io/k0sproject/etcd:v3.7.1", "persistence": {"size": "1Gi"}, "autoDeletePVCs": false},
                "nats": {"persistence": {"storageClass": "fast", "size": "5Gi"}}
            },
            "patches": [{
                "target": {"kind": "Service", "component": "control-plane"},
                "patch": {"type": "merge", "content": "{\"metadata\":{\"labels\":{\"x\":\"y\"}}}"}
            }]
        },
        "status": {
            "replicas": 1, "readyReplicas": 1, "observedGeneration": 4,
            "externalAddress": "192.0.2.7", "controlPlaneInitialized": true,
            "conditions": [{"type": "Available", "status": "True", "reason": "Available", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "deprecated": {"v1beta1": {"reconciliationStatus": "Reconciliation successful", "ready": true}}
        }
    });
    let v1 = to(&v2, "k0smotron.io/v1beta1");
    assert_eq!(v1["spec"].get("patches"), None);
    assert_eq!(v1["spec"].get("kineDataSourceURL"), None);
    assert_eq!(
        v1["spec"]["etcd"]["image"],
        "quay.io/k0sproject/etcd:v3.7.1"
    );
    assert_eq!(
        v1["status"]["reconciliationStatus"],
        "Reconciliation successful"
    );
    assert_eq!(v1["status"]["ready"], true);
    assert!(annotation(&v1, CONVERSION_DATA_ANNOTATION).is_some());
    assert_eq!(annotation(&v1, "owner"), Some("team-a"));
    assert_eq!(to(&v1, "k0smotron.io/v1beta2"), v2);
}

// ---------------------------------------------------------------------------------------------
// JoinTokenRequest
// ---------------------------------------------------------------------------------------------

#[test]
fn join_token_request_keeps_the_cluster_namespace_in_upstreams_annotation() {
    let v1 = json!({
        "apiVersion": "k0smotron.io/v1beta1",
        "kind": "JoinTokenRequest",
        "metadata": {"name": "my-token", "namespace": "default"},
        "spec": {"clusterRef": {"name": "my-cluster", "namespace": "k0smotron"}, "expiry": "1h", "role": "worker"},
        "status": {"reconciliationStatus": "Reconciliation successful", "tokenID": "abcdef", "clusterUID": "0f8c9e62-0000-4000-8000-000000000001"}
    });
    let v2 = to(&v1, "k0smotron.io/v1beta2");
    assert_eq!(
        v2["spec"],
        json!({"clusterName": "my-cluster", "expiry": "1h", "role": "worker"})
    );
    assert_eq!(
        annotation(&v2, "k0smotron.io/cluster-ref-namespace"),
        Some("k0smotron")
    );
    assert_eq!(v2["status"]["tokenID"], "abcdef");
    assert_eq!(
        v2["status"]["deprecated"]["v1beta1"],
        json!({"reconciliationStatus": "Reconciliation successful", "clusterUID": "0f8c9e62-0000-4000-8000-000000000001"})
    );
    assert_eq!(to(&v2, "k0smotron.io/v1beta1"), v1);
}

#[test]
fn join_token_request_v1beta2_conditions_survive_v1beta1() {
    let v2 = json!({
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "JoinTokenRequest",
        "metadata": {"name": "t", "namespace": "default"},
        "spec": {"clusterName": "my-cluster", "expiry": "0s", "role": "controller"},
        "status": {"tokenID": "abcdef", "observedGeneration": 1, "conditions": [
            {"type": "JoinTokenSecretCreated", "status": "True", "reason": "Created", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}
    });
    let v1 = to(&v2, "k0smotron.io/v1beta1");
    assert_eq!(
        v1["spec"]["clusterRef"],
        json!({"name": "my-cluster", "namespace": ""})
    );
    assert_eq!(v1["status"]["tokenID"], "abcdef");
    assert_eq!(to(&v1, "k0smotron.io/v1beta2"), v2);
}

// ---------------------------------------------------------------------------------------------
// K0smotronControlPlane and its template
// ---------------------------------------------------------------------------------------------

#[test]
fn control_plane_status_maps_onto_the_capi_v1beta1_contract() {
    let v2 = json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
        "kind": "K0smotronControlPlane",
        "metadata": {"name": "cp", "namespace": "default"},
        "spec": {"version": "v1.34.3+k0s.0"},
        "status": {
            "initialization": {"controlPlaneInitialized": true},
            "externalManagedControlPlane": true,
            "version": "v1.34.3+k0s.0",
            "versions": [{"version": "v1.34.3+k0s.0", "replicas": 3}],
            "replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "upToDateReplicas": 1,
            "selector": "app=k0smotron,cluster=cp",
            "certificateRefs": [{"type": "ca", "name": "cp-ca"}]
        }
    });
    let v1 = to(&v2, "controlplane.cluster.x-k8s.io/v1beta1");
    let status = &v1["status"];
    assert_eq!(status["ready"], true);
    assert_eq!(status["initialized"], true);
    assert_eq!(status["initialization"]["controlPlaneInitialized"], true);
    assert_eq!(status["externalManagedControlPlane"], true);
    assert_eq!(status["updatedReplicas"], 1);
    assert_eq!(status["readyReplicas"], 2);
    assert_eq!(status["unavailableReplicas"], 1);
    assert_eq!(status["version"], "v1.34.3+k0s.0");
    assert_eq!(status.get("versions"), None);
    // Exactly the input, even the defaults it did not spell out.
    assert_eq!(to(&v1, "controlplane.cluster.x-k8s.io/v1beta2"), v2);
}

#[test]
fn control_plane_v1beta1_status_maps_back_as_upstream() {
    let v1 = json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "K0smotronControlPlane",
        "metadata": {"name": "cp", "namespace": "default"},
        "spec": {"version": "v1.31.5-k0s.0", "kineDataSourceSecretName": "kine-dsn"},
        "status": {"ready": true, "initialized": true, "initialization": {"controlPlaneInitialized": true},
                   "externalManagedControlPlane": true, "version": "v1.31.5-k0s.0", "replicas": 3,
                   "updatedReplicas": 3, "readyReplicas": 3, "unavailableReplicas": 1}
    });
    let v2 = to(&v1, "controlplane.cluster.x-k8s.io/v1beta2");
    assert_eq!(v2["spec"]["storage"]["type"], "kine");
    assert_eq!(
        v2["spec"]["storage"]["kine"],
        json!({"dataSourceSecretName": "kine-dsn"})
    );
    assert_eq!(v2["status"]["availableReplicas"], 2);
    assert_eq!(v2["status"]["upToDateReplicas"], 3);
    assert_eq!(
        v2["status"]["initialization"]["controlPlaneInitialized"],
        true
    );
    assert_eq!(
        to(&v2, "controlplane.cluster.x-k8s.io/v1beta1"),
        normalized::<k0smotron_api::controlplane::v1beta1::K0smotronControlPlane>(&v1)
    );
}

#[test]
fn every_v1beta2_fixture_round_trips_through_v1beta1_exactly() {
    for (file, fixture) in common::fixtures() {
        let api_version = fixture["apiVersion"].as_str().expect("apiVersion");
        let group = api_version.split_once('/').expect("group").0;
        let v1 = convert(fixture.clone(), &format!("{group}/v1beta1"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let back = convert(v1, api_version).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(back, fixture, "{file}");
    }
}

#[test]
fn a_v1beta1_edit_wins_over_the_carried_v1beta2_data() {
    let (_, fixture) = common::fixtures()
        .into_iter()
        .find(|(file, _)| file == "k0smotroncontrolplane-kine.yaml")
        .expect("fixture");
    let mut v1 = to(&fixture, "controlplane.cluster.x-k8s.io/v1beta1");
    // controlPlaneEndpoint travels in the annotation.
    assert!(annotation(&v1, CONVERSION_DATA_ANNOTATION).is_some());
    v1["spec"]["replicas"] = json!(3);
    v1["spec"]["kineDataSourceURL"] = json!("postgres://new");
    let v2 = to(&v1, "controlplane.cluster.x-k8s.io/v1beta2");
    assert_eq!(v2["spec"]["replicas"], 3);
    assert_eq!(
        v2["spec"]["storage"]["kine"]["dataSourceURL"],
        "postgres://new"
    );
    assert_eq!(
        v2["spec"]["controlPlaneEndpoint"],
        fixture["spec"]["controlPlaneEndpoint"]
    );
    assert_eq!(annotation(&v2, CONVERSION_DATA_ANNOTATION), None);
}

#[test]
fn control_plane_template_keeps_service_fields_on_the_template_object() {
    let v1 = json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "K0smotronControlPlaneTemplate",
        "metadata": {"name": "k0smotron-cp-template", "namespace": "default"},
        "spec": {"template": {
            "metadata": {"labels": {"tier": "cp"}},
            "spec": {"version": "v1.30.2-k0s.0", "service": {"type": "LoadBalancer", "apiPort": 6443, "konnectivityPort": 8132, "labels": {"a": "b"}}}
        }}
    });
    let v2 = to(&v1, "controlplane.cluster.x-k8s.io/v1beta2");
    assert_eq!(
        annotation(&v2, "k0smotron.io/conversion-dropped-service.labels"),
        Some(r#"{"a":"b"}"#)
    );
    assert_eq!(
        v2["spec"]["template"]["metadata"],
        json!({"labels": {"tier": "cp"}})
    );
    assert_eq!(
        to(&v2, "controlplane.cluster.x-k8s.io/v1beta1"),
        normalized::<k0smotron_api::controlplane::v1beta1::K0smotronControlPlaneTemplate>(&v1)
    );
}

// ---------------------------------------------------------------------------------------------
// K0sWorkerConfig and its template
// ---------------------------------------------------------------------------------------------

#[test]
fn worker_config_template_ignition_sample_converts_as_upstream() {
    // Upstream's Flatcar sample (docs/ignition-support.md), in the v1beta1 layout it is written in.
    let v1 = json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta1",
        "kind": "K0sWorkerConfigTemplate",
        "metadata": {"name": "ignition-test-cluster-machine-config", "namespace": "ignition-test"},
        "spec": {"template": {"spec": {
            "version": "v1.30.2+k0s.0",
            "k0sInstallDir": "/opt/bin",
            "ignition": {"variant": "flatcar", "version": "1.1.0", "additionalConfig": "variant: flatcar\nversion: 1.1.0\n"},
            "preStartCommands": ["echo pre"],
            "postStartCommands": ["echo post"]
        }}}
    });
    let v2 = to(&v1, "bootstrap.cluster.x-k8s.io/v1beta2");
    let spec = &v2["spec"]["template"]["spec"];
    assert_eq!(spec["provisioner"]["type"], "ignition");
    assert_eq!(spec["provisioner"]["platform"], "linux");
    assert_eq!(spec["provisioner"]["ignition"]["variant"], "flatcar");
    assert_eq!(spec["preK0sCommands"], json!(["echo pre"]));
    assert_eq!(spec["postK0sCommands"], json!(["echo post"]));
    assert_eq!(
        to(&v2, "bootstrap.cluster.x-k8s.io/v1beta1"),
        normalized::<k0smotron_api::bootstrap::v1beta1::K0sWorkerConfigTemplate>(&v1)
    );
}

#[test]
fn windows_worker_config_survives_v1beta1_which_has_no_platform() {
    // docs/windows-workers.md.
    let v2 = json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2",
        "kind": "K0sWorkerConfig",
        "metadata": {"name": "windows-worker", "namespace": "default"},
        "spec": {
            "version": "v1.34.2+k0s.0",
            "provisioner": {"platform": "windows", "type": "powershell",
                            "customUserDataRef": {"secretRef": {"name": "extra", "key": "ps1"}}},
            "k0sInstallDir": "/usr/local/bin", "useSystemHostname": false, "preInstalledK0s": false
        },
        "status": {"dataSecretName": "windows-worker", "initialization": {"dataSecretCreated": true}, "observedGeneration": 2}
    });
    let v1 = to(&v2, "bootstrap.cluster.x-k8s.io/v1beta1");
    assert_eq!(v1["spec"].get("ignition"), None);
    // Upstream drops customUserDataRef on the way down; v1beta1 has the field, so we keep it.
    assert_eq!(
        v1["spec"]["customUserDataRef"],
        json!({"secretRef": {"name": "extra", "key": "ps1"}})
    );
    assert_eq!(
        v1["status"],
        json!({"ready": true, "dataSecretName": "windows-worker"})
    );
    assert_eq!(to(&v1, "bootstrap.cluster.x-k8s.io/v1beta2"), v2);
}

// ---------------------------------------------------------------------------------------------
// Upstream's own v1beta1 manifests (e2e data, placeholders filled in)
// ---------------------------------------------------------------------------------------------

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("valid YAML")
}

/// e2e/data/infrastructure-docker/main/cluster-template-ingress/cluster-with-ingress.yaml.
const UPSTREAM_INGRESS_CONTROL_PLANE: &str = r#"
apiVersion: controlplane.cluster.x-k8s.io/v1beta1
kind: K0smotronControlPlane
metadata:
  name: e2e-cp
  namespace: e2e
spec:
  version: v1.36.2-k0s.0
  service:
    type: NodePort
  ingress:
    apiHost: kube-api.172.18.0.2.nip.io
    konnectivityHost: konnectivity.172.18.0.2.nip.io
    port: 31443
    annotations:
      haproxy.org/ssl-passthrough: "true"
  k0sConfig:
    apiVersion: k0s.k0sproject.io/v1beta1
    kind: ClusterConfig
    spec:
      api:
        extraArgs:
          anonymous-auth: "true"
      telemetry:
        enabled: false
"#;

#[test]
fn upstream_e2e_ingress_control_plane_converts_and_comes_back() {
    let v1 = yaml(UPSTREAM_INGRESS_CONTROL_PLANE);
    let v2 = to(&v1, "controlplane.cluster.x-k8s.io/v1beta2");
    assert_eq!(v2["spec"]["version"], "v1.36.2-k0s.0");
    assert_eq!(v2["spec"]["service"]["type"], "NodePort");
    assert_eq!(v2["spec"]["ingress"]["port"], 31443);
    assert_eq!(v2["spec"]["ingress"]["deploy"], true);
    assert_eq!(v2["spec"]["k0sConfig"], v1["spec"]["k0sConfig"]);
    assert_eq!(v2["spec"]["storage"]["type"], "etcd");
    assert_eq!(v2["metadata"].get("annotations"), None);
    assert_eq!(
        to(&v2, "controlplane.cluster.x-k8s.io/v1beta1"),
        normalized::<k0smotron_api::controlplane::v1beta1::K0smotronControlPlane>(&v1)
    );
}

/// e2e/data/infrastructure-docker/main/cluster-template-remote-hcp/machine-with-hostname-override.yaml.
const UPSTREAM_WORKER_CONFIG: &str = r#"
apiVersion: bootstrap.cluster.x-k8s.io/v1beta1
kind: K0sWorkerConfig
metadata:
  name: docker-test-worker-0
  namespace: e2e
spec:
  version: v1.30.1+k0s.0
  args:
    - --labels=k0sproject.io/foo=bar
    - --kubelet-extra-args="--hostname-override=e2e-docker-test-worker-0"
  preStartCommands:
    - echo -n "pre-start" > /tmp/pre-start
  postStartCommands:
    - echo -n "post-start" > /tmp/post-start
  files:
    - path: /tmp/test-file
      content: test-file
    - path: /tmp/test-file-secret
      contentFrom:
        secretRef:
          name: test-file-secret
          key: value
"#;

#[test]
fn upstream_e2e_worker_config_converts_and_comes_back() {
    let v1 = yaml(UPSTREAM_WORKER_CONFIG);
    let v2 = to(&v1, "bootstrap.cluster.x-k8s.io/v1beta2");
    let spec = &v2["spec"];
    assert_eq!(
        spec["provisioner"],
        json!({"type": "cloud-config", "platform": "linux"})
    );
    assert_eq!(
        spec["preK0sCommands"],
        json!(["echo -n \"pre-start\" > /tmp/pre-start"])
    );
    assert_eq!(
        spec["postK0sCommands"],
        json!(["echo -n \"post-start\" > /tmp/post-start"])
    );
    assert_eq!(spec["files"], v1["spec"]["files"]);
    assert_eq!(spec["args"], v1["spec"]["args"]);
    assert_eq!(spec.get("preStartCommands"), None);
    assert_eq!(
        to(&v2, "bootstrap.cluster.x-k8s.io/v1beta1"),
        normalized::<k0smotron_api::bootstrap::v1beta1::K0sWorkerConfig>(&v1)
    );
}
