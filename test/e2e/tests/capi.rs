//! End to end with the real CAPI core manager: a Cluster whose control plane is a
//! K0smotronControlPlane and whose workers are a MachineDeployment of K0sWorkerConfigTemplate
//! bootstrap configs and test infrastructure machines. CAPI core, both provider binaries and the
//! workload API server run as separate processes against the harness; the providers run under
//! the ServiceAccounts and RBAC of the released components (so a missing permission fails this
//! test), with leader election on.
//!
//! The workload cluster is a second API server (`test/harness/cluster workload up`) serving with
//! the cluster's CA (`<cluster>-ca`, created by the test before the Cluster, as a user bringing
//! their own CA would), at the control plane's `spec.externalAddress` and `service.apiPort`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use e2e::capi::{CapiManager, CapiOptions};
use e2e::command;
use e2e::infra;
use e2e::objects::{self, api, apply, capi, condition, join_token, resource, summary};
use e2e::pki;
use e2e::providers::{Provider, ProviderManager};
use e2e::release::{self, Release};
use e2e::scratch::ScratchDir;
use e2e::{tools, yaml};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use test_support::{TestNamespace, WorkloadServer};

const CLUSTER: &str = "e2e";
const KUBERNETES_VERSION: &str = "v1.34.1";

/// Everything the test started, for diagnostics when a wait times out.
struct Running {
    /// `None` when the harness already runs CAPI core (`cluster up --capi-manager`).
    capi: Option<CapiManager>,
    control_plane: ProviderManager,
    bootstrap: ProviderManager,
}

impl Running {
    fn diagnose(&self) -> String {
        let capi = match &self.capi {
            Some(capi) => format!("({})\n{}", capi.log().display(), capi.log_tail(30)),
            None => "(run by the harness: $HARNESS_DIR/logs/capi-manager.log)".to_owned(),
        };
        format!(
            "--- cluster-api-manager {capi}\n--- controlplane-provider ---\n{}\n--- bootstrap-provider ---\n{}",
            self.control_plane.log_tail(30),
            self.bootstrap.log_tail(30)
        )
    }
}

/// [`objects::poll`] with the processes' logs as diagnostics.
async fn poll<T, F, Fut>(running: &Running, timeout: Duration, what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    objects::poll(timeout, what, || running.diagnose(), probe).await
}

/// The bootstrap token authenticates against the workload API server as a bootstrapper.
async fn assert_token_authenticates(server_url: &str, ca_pem: &str, token: &str) {
    let client = objects::token_client(server_url, ca_pem, token).await;
    let (_, groups) = objects::whoami(&client).await.unwrap();
    assert!(
        groups.iter().any(|g| g == "system:bootstrappers"),
        "token authenticates as a bootstrapper: {groups:?}"
    );
}

/// Install the RBAC of a provider's released components (rendered by clusterctl into the test
/// namespace; cluster-scoped names suffixed with it) and return a kubeconfig authenticating as
/// the provider's ServiceAccount.
async fn provider_identity(
    client: &Client,
    ns: &str,
    release: &Release,
    flag: &str,
    scratch: &ScratchDir,
) -> PathBuf {
    let home = scratch.join(format!("clusterctl-{}", flag.trim_start_matches('-')));
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("clusterctl.yaml");
    std::fs::write(
        &config,
        format!("providers:\n{}", release.provider_entries()),
    )
    .unwrap();
    let provider = format!("k0smotron:{}", release.version);
    let out = command::run(
        &tools::clusterctl().unwrap(),
        [
            "generate",
            "provider",
            flag,
            &provider,
            "--config",
            config.to_str().unwrap(),
            "--target-namespace",
            ns,
        ],
        release::clusterctl_env(&home),
        None,
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let docs = yaml::documents(&out.stdout).unwrap();
    let suffix = |name: &str| format!("{name}-{ns}");
    let mut service_account = None;
    for mut doc in docs {
        match yaml::kind(&doc) {
            "ServiceAccount" => {
                service_account = Some(yaml::name(&doc).to_owned());
                apply(client, &doc).await;
            }
            "Role" | "RoleBinding" => apply(client, &doc).await,
            "ClusterRole" => {
                doc["metadata"]["name"] = suffix(yaml::name(&doc)).into();
                apply(client, &doc).await;
            }
            "ClusterRoleBinding" => {
                doc["metadata"]["name"] = suffix(yaml::name(&doc)).into();
                let role = suffix(doc["roleRef"]["name"].as_str().unwrap());
                doc["roleRef"]["name"] = role.into();
                apply(client, &doc).await;
            }
            _ => {}
        }
    }
    let service_account = service_account.expect("the components have a ServiceAccount");
    let token = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(
            &service_account,
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .expect("a token in the TokenRequest status");
    let admin = std::fs::read_to_string(std::env::var("KUBECONFIG").unwrap()).unwrap();
    let admin = &yaml::documents(&admin).unwrap()[0];
    let cluster = &admin["clusters"][0]["cluster"];
    let path = scratch.join(format!("{service_account}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: harness\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: {service_account}\n  user:\n    token: {token}\ncontexts:\n- name: harness\n  context:\n    cluster: harness\n    user: {service_account}\n    namespace: {ns}\ncurrent-context: harness\n",
            cluster["server"].as_str().unwrap(),
            cluster["certificate-authority-data"].as_str().unwrap(),
        ),
    )
    .unwrap();
    path
}

/// Cluster-scoped RBAC `provider_identity` created, to delete at the end.
async fn delete_cluster_rbac(client: &Client, ns: &str) {
    for kind in ["ClusterRoleBinding", "ClusterRole"] {
        let api: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &resource("rbac.authorization.k8s.io/v1", kind),
        );
        for obj in api.list(&ListParams::default()).await.unwrap() {
            let name = obj.metadata.name.clone().unwrap_or_default();
            if name.starts_with("k0smotron-") && name.ends_with(&format!("-{ns}")) {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }
        }
    }
}

/// Machines of the cluster with their bootstrap data Secret, once every one of `count` has it:
/// machine name → (data Secret name, join token).
async fn machines_with_bootstrap_data(
    running: &Running,
    client: &Client,
    ns: &str,
    count: usize,
    endpoint: &str,
) -> BTreeMap<String, (String, String)> {
    let machines = capi(client, ns, "Machine");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    poll(
        running,
        Duration::from_secs(120),
        &format!("{count} Machines with bootstrap data"),
        || async {
            let list = machines
                .list(
                    &ListParams::default()
                        .labels(&format!("cluster.x-k8s.io/cluster-name={CLUSTER}")),
                )
                .await
                .map_err(|e| e.to_string())?;
            if list.items.len() != count {
                return Err(format!("{} Machines", list.items.len()));
            }
            let mut out = BTreeMap::new();
            for machine in &list.items {
                let name = machine.metadata.name.clone().unwrap_or_default();
                let data_secret = machine.data["spec"]["bootstrap"]["dataSecretName"]
                    .as_str()
                    .ok_or_else(|| {
                        format!("Machine {name} has no dataSecretName: {}", summary(machine))
                    })?;
                if machine.data["status"]["initialization"]["bootstrapDataSecretCreated"] != true {
                    return Err(format!("Machine {name}: {}", summary(machine)));
                }
                let secret = secrets.get(data_secret).await.map_err(|e| e.to_string())?;
                let data = secret.data.unwrap_or_default();
                let format = data
                    .get("format")
                    .map(|v| String::from_utf8_lossy(&v.0).into_owned());
                assert_eq!(format.as_deref(), Some("cloud-config"), "{data_secret}");
                assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
                let value = String::from_utf8_lossy(&data["value"].0).into_owned();
                assert!(value.starts_with("#cloud-config"), "{value}");
                let (token, server) = join_token(&value)?;
                assert_eq!(
                    server, endpoint,
                    "the join token points at the control plane"
                );
                out.insert(name, (data_secret.to_owned(), token));
            }
            Ok(out)
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn cluster_converges_scales_and_deletes_under_capi_core() {
    let ns = TestNamespace::create("e2e-capi").await.unwrap();
    let ns_name = ns.name().to_owned();
    let client = ns.client();
    for dir in [
        tools::capi_crd_dir().unwrap(),
        tools::provider_crd_dir(),
        tools::test_infra_crd_dir(),
    ] {
        test_support::apply_crd_dir(&client, &dir).await.unwrap();
    }
    let scratch = ScratchDir::new("e2e-capi").unwrap();
    let logs = std::env::var_os("E2E_LOG_DIR")
        .map_or_else(|| scratch.join("logs"), |d| PathBuf::from(d).join(&ns_name));
    eprintln!("process logs in {}", logs.display());

    // The workload cluster: an API server with the cluster's own CA, where the control plane's
    // external address and API port say it is.
    let ca = pki::cluster_ca().unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns_name);
    secrets
        .create(
            &PostParams::default(),
            &pki::ca_secret(CLUSTER, &ns_name, &ca),
        )
        .await
        .unwrap();
    let api_port = test_support::free_port().unwrap();
    let konnectivity_port = test_support::free_port().unwrap();
    let workload = WorkloadServer::start(
        &test_support::unique_name("e2e"),
        &ca.cert_pem,
        &ca.key_pem,
        api_port,
    )
    .await
    .unwrap();
    let endpoint = format!("https://127.0.0.1:{api_port}");
    assert_eq!(workload.url(), endpoint);

    // The providers as users deploy them (released RBAC, ServiceAccount identity, leader
    // election), and CAPI core.
    let release = Release::build().await.unwrap();
    let cp_kubeconfig =
        provider_identity(&client, &ns_name, &release, "--control-plane", &scratch).await;
    // TestCluster is no kind the release grants: as a user with another infrastructure kind would,
    // grant it through a ClusterRole that Kubernetes aggregates into the provider's
    // infrastructure role (config/controlplane/infrastructure_role.yaml).
    apply(
        &client,
        &serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": format!("k0smotron-test-infrastructure-{ns_name}"),
                "labels": {"controlplane.cluster.x-k8s.io/aggregate-to-k0smotron": "true"},
            },
            "rules": [
                {"apiGroups": ["infrastructure.cluster.x-k8s.io"], "resources": ["testclusters"],
                 "verbs": ["get"]},
                {"apiGroups": ["infrastructure.cluster.x-k8s.io"],
                 "resources": ["testclusters/status"], "verbs": ["patch"]},
            ],
        }),
    )
    .await;
    let bs_kubeconfig =
        provider_identity(&client, &ns_name, &release, "--bootstrap", &scratch).await;
    let control_plane = ProviderManager::start(
        Provider::ControlPlane,
        &cp_kubeconfig,
        &ns_name,
        &logs,
        true,
    )
    .await
    .unwrap();
    let bootstrap =
        ProviderManager::start(Provider::Bootstrap, &bs_kubeconfig, &ns_name, &logs, true)
            .await
            .unwrap();
    // CAPI core: the harness's when it runs one (all namespaces, webhooks registered), else our
    // own, scoped to the test namespace.
    let capi_manager = if std::env::var("HARNESS_CAPI_MANAGER").is_ok_and(|v| v == "1") {
        None
    } else {
        let admin_kubeconfig = PathBuf::from(std::env::var("KUBECONFIG").unwrap());
        Some(
            CapiManager::start(CapiOptions {
                kubeconfig: &admin_kubeconfig,
                namespace: &ns_name,
                log_dir: &logs,
                feature_gates: "",
            })
            .await
            .unwrap(),
        )
    };
    let running = Running {
        capi: capi_manager,
        control_plane,
        bootstrap,
    };

    // The cluster: examples/cluster-local.yaml (the local run's sample), rendered by clusterctl
    // as a user would render it.
    let home = scratch.join("clusterctl-home");
    std::fs::create_dir_all(&home).unwrap();
    let example = tools::repo_root().join("examples/cluster-local.yaml");
    let mut env = release::clusterctl_env(&home);
    env.push(("K0SMOTRON_API_PORT".to_owned(), api_port.to_string()));
    env.push((
        "K0SMOTRON_KONNECTIVITY_PORT".to_owned(),
        konnectivity_port.to_string(),
    ));
    let rendered = command::run(
        &tools::clusterctl().unwrap(),
        [
            "generate",
            "cluster",
            CLUSTER,
            "--from",
            example.to_str().unwrap(),
            "--target-namespace",
            &ns_name,
            "--kubernetes-version",
            KUBERNETES_VERSION,
            "--control-plane-machine-count",
            "1",
            "--worker-machine-count",
            "1",
        ],
        env,
        None,
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let objects = yaml::documents(&rendered.stdout).unwrap();
    assert_eq!(
        objects.iter().map(yaml::kind).collect::<Vec<_>>(),
        [
            "Cluster",
            "TestCluster",
            "K0smotronControlPlane",
            "MachineDeployment",
            "TestMachineTemplate",
            "K0sWorkerConfigTemplate"
        ]
    );
    for obj in &objects {
        apply(&client, obj).await;
    }

    // The TestCluster is annotated `cluster.x-k8s.io/managed-by: k0smotron`: no infrastructure
    // provider acts on it; the control-plane provider marks it provisioned (under its released
    // RBAC) once the endpoint is known, and CAPI core takes that up.
    let test_clusters = api(
        &client,
        &ns_name,
        "infrastructure.cluster.x-k8s.io/v1alpha1",
        "TestCluster",
    );
    let clusters = capi(&client, &ns_name, "Cluster");
    poll(
        &running,
        Duration::from_secs(120),
        "TestCluster provisioned by the control-plane provider, Cluster infrastructureProvisioned",
        || async {
            let infra = test_clusters
                .get(CLUSTER)
                .await
                .map_err(|e| e.to_string())?;
            let cluster = clusters.get(CLUSTER).await.map_err(|e| e.to_string())?;
            let by_us = infra.metadata.managed_fields.iter().flatten().any(|f| {
                f.manager.as_deref() == Some("k0smotron-controlplane-infrastructure")
                    && f.subresource.as_deref() == Some("status")
            });
            let provisioned = infra.data["status"]["initialization"]["provisioned"] == true;
            if by_us
                && provisioned
                && cluster.data["status"]["initialization"]["infrastructureProvisioned"] == true
            {
                Ok(())
            } else {
                Err(format!(
                    "TestCluster status {} (marked by us: {by_us}); {}",
                    infra.data["status"],
                    summary(&cluster)
                ))
            }
        },
    )
    .await;

    // 1. The control plane comes up: CAPI core sees it initialized and available, and takes
    //    the endpoint the provider publishes.
    let cluster = poll(
        &running,
        Duration::from_secs(180),
        "Cluster ControlPlaneInitialized=True and ControlPlaneAvailable=True",
        || async {
            let cluster = clusters.get(CLUSTER).await.map_err(|e| e.to_string())?;
            let ready = condition(&cluster, "ControlPlaneInitialized") == Some("True")
                && condition(&cluster, "ControlPlaneAvailable") == Some("True")
                && cluster.data["status"]["initialization"]["controlPlaneInitialized"] == true;
            if ready {
                Ok(cluster)
            } else {
                Err(summary(&cluster))
            }
        },
    )
    .await;
    assert_eq!(
        cluster.data["spec"]["controlPlaneEndpoint"],
        json!({"host": "127.0.0.1", "port": api_port}),
        "Cluster endpoint from the control plane"
    );
    // The Cluster is annotated with its workload cluster's identity (upstream's cluster-id).
    let kube_system: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(workload.client().await.unwrap());
    let uid = kube_system.get("kube-system").await.unwrap().metadata.uid;
    let cluster_id = poll(
        &running,
        Duration::from_secs(60),
        "Cluster annotated k0sproject.io/cluster-id",
        || async {
            let cluster = clusters.get(CLUSTER).await.map_err(|e| e.to_string())?;
            cluster
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("k0sproject.io/cluster-id"))
                .cloned()
                .ok_or_else(|| summary(&cluster))
        },
    )
    .await;
    assert_eq!(cluster_id, format!("kube-system:{}", uid.unwrap()));
    let kcp = api(
        &client,
        &ns_name,
        "controlplane.cluster.x-k8s.io/v1beta2",
        "K0smotronControlPlane",
    )
    .get(CLUSTER)
    .await
    .unwrap();
    assert_eq!(kcp.data["status"]["externalManagedControlPlane"], true);
    assert_eq!(
        condition(&kcp, "Available"),
        Some("True"),
        "{}",
        summary(&kcp)
    );
    let kubeconfig_secret = secrets.get(&format!("{CLUSTER}-kubeconfig")).await.unwrap();
    assert_eq!(
        kubeconfig_secret.type_.as_deref(),
        Some("cluster.x-k8s.io/secret")
    );

    // 2. The MachineDeployment's MachineSet creates the Machine; the bootstrap provider gives it
    //    bootstrap data with its own join token for the control plane's endpoint.
    let first = machines_with_bootstrap_data(&running, &client, &ns_name, 1, &endpoint).await;
    for (_, token) in first.values() {
        assert_token_authenticates(&endpoint, &ca.cert_pem, token).await;
    }
    // The infrastructure provider's part: each machine runs once it has bootstrap data.
    let test_machines = api(
        &client,
        &ns_name,
        &format!("{}/{}", infra::GROUP, infra::VERSION),
        "TestMachine",
    );
    for machine in test_machines.list(&ListParams::default()).await.unwrap() {
        infra::provision_machine(&client, &ns_name, &machine.metadata.name.unwrap())
            .await
            .unwrap();
    }

    // 3. Scaling adds Machines, each with its own data Secret and token; the first keeps its.
    capi(&client, &ns_name, "MachineDeployment")
        .patch(
            &format!("{CLUSTER}-md-0"),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let all = machines_with_bootstrap_data(&running, &client, &ns_name, 3, &endpoint).await;
    for (name, data) in &first {
        assert_eq!(
            all.get(name),
            Some(data),
            "Machine {name} kept its bootstrap data"
        );
    }
    let secrets_used: BTreeSet<&String> = all.values().map(|(s, _)| s).collect();
    let tokens: BTreeSet<&String> = all.values().map(|(_, t)| t).collect();
    assert_eq!(
        secrets_used.len(),
        3,
        "one data Secret per Machine: {all:?}"
    );
    assert_eq!(tokens.len(), 3, "one token per Machine: {all:?}");
    for (_, token) in all.values() {
        assert_token_authenticates(&endpoint, &ca.cert_pem, token).await;
    }

    // 4. Deleting the Cluster removes everything; nothing is held back by a finalizer.
    clusters
        .delete(CLUSTER, &DeleteParams::background())
        .await
        .unwrap();
    let kinds: [(&str, &str); 12] = [
        ("cluster.x-k8s.io/v1beta2", "Cluster"),
        ("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
        ("cluster.x-k8s.io/v1beta2", "MachineSet"),
        ("cluster.x-k8s.io/v1beta2", "Machine"),
        (
            "controlplane.cluster.x-k8s.io/v1beta2",
            "K0smotronControlPlane",
        ),
        ("bootstrap.cluster.x-k8s.io/v1beta2", "K0sWorkerConfig"),
        ("infrastructure.cluster.x-k8s.io/v1alpha1", "TestMachine"),
        ("infrastructure.cluster.x-k8s.io/v1alpha1", "TestCluster"),
        ("apps/v1", "StatefulSet"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
    ];
    poll(
        &running,
        Duration::from_secs(180),
        "every object of the cluster to be deleted",
        || async {
            let mut left = Vec::new();
            for (api_version, kind) in kinds {
                for obj in api(&client, &ns_name, api_version, kind)
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?
                {
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    // The CA the user brought stays theirs; kube-root-ca.crt is the namespace's.
                    if (kind == "Secret" && name == format!("{CLUSTER}-ca"))
                        || (kind == "ConfigMap" && name == "kube-root-ca.crt")
                    {
                        continue;
                    }
                    left.push(format!(
                        "{kind}/{name} (finalizers {:?}, deleting since {:?})",
                        obj.metadata.finalizers.unwrap_or_default(),
                        obj.metadata.deletion_timestamp
                    ));
                }
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join(", "))
            }
        },
    )
    .await;
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns_name);
    assert!(
        statefulsets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // The processes stayed up throughout, and each provider (the leader, caches synced) reports
    // ready, as a Deployment's readiness probe and `clusterctl init --wait-providers` need.
    let Running {
        capi,
        mut control_plane,
        mut bootstrap,
    } = running;
    if let Some(mut capi) = capi {
        capi.check().await.unwrap();
        capi.stop().await;
    }
    control_plane.check_running().unwrap();
    bootstrap.check_running().unwrap();
    control_plane
        .wait_ready(Duration::from_secs(10))
        .await
        .unwrap();
    bootstrap.wait_ready(Duration::from_secs(10)).await.unwrap();
    control_plane.stop().await;
    bootstrap.stop().await;
    delete_cluster_rbac(&client, &ns_name).await;
    workload.stop().unwrap();
}
