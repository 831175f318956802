//! clusterctl as the oracle of our packaging: `clusterctl generate provider` renders both
//! components files from a `file://` repository with the transformations users get, and
//! `clusterctl init --bootstrap k0smotron --control-plane k0smotron` passes provider validation
//! against a real API server, failing only where cert-manager is needed, and installs everything
//! once a cert-manager API exists; docs/migration.md's clusterctl steps take a management cluster
//! from upstream k0smotron's release (built from its tag) to ours.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use std::time::Duration;

use e2e::command::{self, Output};
use e2e::process::Background;
use e2e::providers::{Provider, ProviderManager};
use e2e::release::{self, BOOTSTRAP_LABEL, CONTROL_PLANE_LABEL, Release};
use e2e::scratch::ScratchDir;
use e2e::{capi, pki, tools, yaml};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use pretty_assertions::assert_eq;
use serde_json::Value;

/// Kinds clusterctl treats as cluster-scoped that our components use.
const CLUSTER_SCOPED: [&str; 4] = [
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
];

struct ProviderCase {
    flag: &'static str,
    label: &'static str,
    namespace: &'static str,
    image: &'static str,
    /// The Cluster API kinds' CRDs (with the contract label).
    crds: [&'static str; 2],
    /// CRDs shipped too that no Cluster API contract covers (the standalone kinds).
    standalone_crds: &'static [&'static str],
    kinds: [&'static str; 2],
    /// The variables the components file declares (all with defaults), sorted.
    variables: &'static [&'static str],
}

const CONTROL_PLANE: ProviderCase = ProviderCase {
    flag: "--control-plane",
    label: CONTROL_PLANE_LABEL,
    namespace: "k0smotron-control-plane-system",
    image: "ghcr.io/k0smotron-rs/controlplane-provider",
    crds: [
        "k0smotroncontrolplanes.controlplane.cluster.x-k8s.io",
        "k0smotroncontrolplanetemplates.controlplane.cluster.x-k8s.io",
    ],
    standalone_crds: &["clusters.k0smotron.io", "jointokenrequests.k0smotron.io"],
    kinds: ["k0smotroncontrolplanes", "k0smotroncontrolplanetemplates"],
    variables: &[
        "K0SMOTRON_CONCURRENCY",
        "K0SMOTRON_LOG_FORMAT",
        "K0SMOTRON_WATCH_FILTER",
        "K0SMOTRON_WATCH_NAMESPACE",
    ],
};

const BOOTSTRAP: ProviderCase = ProviderCase {
    flag: "--bootstrap",
    label: BOOTSTRAP_LABEL,
    namespace: "k0smotron-bootstrap-system",
    image: "ghcr.io/k0smotron-rs/bootstrap-provider",
    crds: [
        "k0sworkerconfigs.bootstrap.cluster.x-k8s.io",
        "k0sworkerconfigtemplates.bootstrap.cluster.x-k8s.io",
    ],
    standalone_crds: &[],
    kinds: ["k0sworkerconfigs", "k0sworkerconfigtemplates"],
    variables: &[
        "K0SMOTRON_BOOTSTRAP_CONCURRENCY",
        "K0SMOTRON_BOOTSTRAP_TOKEN_TTL",
        "K0SMOTRON_FEATURE_GATES",
        "K0SMOTRON_LOG_FORMAT",
        "K0SMOTRON_WATCH_FILTER",
        "K0SMOTRON_WATCH_NAMESPACE",
    ],
};

async fn clusterctl(home: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut env = release::clusterctl_env(home);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    command::run(&tools::clusterctl().unwrap(), args, env, None)
        .await
        .unwrap()
}

fn write_config(dir: &ScratchDir, file: &str, text: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The manager container's arguments.
fn container_args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

fn manager_container(docs: &[Value]) -> &Value {
    let deployments: Vec<&Value> = docs
        .iter()
        .filter(|d| yaml::kind(d) == "Deployment")
        .collect();
    assert_eq!(deployments.len(), 1, "one Deployment per provider");
    deployments[0]["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "manager")
        .expect("a container named manager (clusterctl and Tilt find the manager by it)")
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        // An empty value is omitted by clusterctl's serializer.
        .map(|e| e["value"].as_str().unwrap_or(""))
}

/// Everything clusterctl's components contract asks, on one rendered components file.
fn check_components(case: &ProviderCase, docs: &[Value], namespace: &str, version: &str) {
    let namespaces: Vec<&str> = docs
        .iter()
        .filter(|d| yaml::kind(d) == "Namespace")
        .map(yaml::name)
        .collect();
    assert_eq!(namespaces, [namespace], "exactly one Namespace, the target");
    for doc in docs {
        let what = yaml::describe(doc);
        assert_eq!(
            yaml::label(doc, "cluster.x-k8s.io/provider"),
            Some(case.label),
            "{what}: provider label"
        );
        assert_eq!(
            yaml::label(doc, "clusterctl.cluster.x-k8s.io"),
            Some(""),
            "{what}: clusterctl label"
        );
        if CLUSTER_SCOPED.contains(&yaml::kind(doc)) {
            assert_eq!(yaml::namespace(doc), None, "{what} is cluster-scoped");
        } else {
            assert_eq!(yaml::namespace(doc), Some(namespace), "{what}: namespace");
        }
    }
    let crds: BTreeSet<&str> = docs
        .iter()
        .filter(|d| yaml::kind(d) == "CustomResourceDefinition")
        .map(yaml::name)
        .collect();
    let expected: BTreeSet<&str> = case
        .crds
        .iter()
        .chain(case.standalone_crds)
        .copied()
        .collect();
    assert_eq!(crds, expected);
    for crd in docs.iter().filter(|d| {
        yaml::kind(d) == "CustomResourceDefinition"
            && !case.standalone_crds.contains(&yaml::name(d))
    }) {
        assert_eq!(
            yaml::label(crd, "cluster.x-k8s.io/v1beta2"),
            Some("v1beta2"),
            "{}: CAPI contract label",
            yaml::name(crd)
        );
    }
    // Bindings point at the ServiceAccount in the target namespace.
    for binding in docs
        .iter()
        .filter(|d| yaml::kind(d).ends_with("RoleBinding"))
    {
        for subject in binding["subjects"].as_array().unwrap() {
            assert_eq!(
                subject["namespace"],
                namespace,
                "{}",
                yaml::describe(binding)
            );
        }
    }
    // CAPI core's manager role aggregates ours, for our kinds.
    let aggregated: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            yaml::kind(d) == "ClusterRole"
                && yaml::label(d, "cluster.x-k8s.io/aggregate-to-manager") == Some("true")
        })
        .collect();
    assert_eq!(aggregated.len(), 1, "one aggregate-to-manager ClusterRole");
    let resources: BTreeSet<&str> = aggregated[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    for kind in case.kinds {
        assert!(resources.contains(kind), "aggregated role covers {kind}");
    }
    // Least privilege: no rule of ours grants every resource or every verb (issue #12); the
    // infrastructure kinds are listed one by one.
    for role in docs
        .iter()
        .filter(|d| matches!(yaml::kind(d), "ClusterRole" | "Role"))
    {
        for rule in role["rules"].as_array().into_iter().flatten() {
            for field in ["resources", "verbs", "apiGroups"] {
                let wildcard = rule[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|v| v.contains('*'));
                assert!(
                    !wildcard,
                    "{}: wildcard in {field}: {rule}",
                    yaml::describe(role)
                );
            }
        }
    }
    let container = manager_container(docs);
    assert_eq!(container["image"], format!("{}:{version}", case.image));
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let ports: BTreeSet<&str> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        ports,
        BTreeSet::from(["healthz", "metrics", "webhook-server"])
    );
    // The conversion webhook: served on 9443 behind a Service in the target namespace, which
    // every CRD's conversion names (kustomize's prefix, clusterctl's namespace).
    assert!(
        container_args(container).contains(&"--webhook-addr=:9443"),
        "{container}"
    );
    let services: Vec<&Value> = docs.iter().filter(|d| yaml::kind(d) == "Service").collect();
    assert_eq!(services.len(), 1, "one Service, the webhook's");
    let service = services[0];
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "webhook-server");
    for crd in docs
        .iter()
        .filter(|d| yaml::kind(d) == "CustomResourceDefinition")
    {
        let conversion = &crd["spec"]["conversion"];
        assert_eq!(conversion["strategy"], "Webhook", "{}", yaml::name(crd));
        let target = &conversion["webhook"]["clientConfig"]["service"];
        assert_eq!(target["name"].as_str(), Some(yaml::name(service)));
        assert_eq!(target["namespace"].as_str(), Some(namespace));
        assert_eq!(target["path"], "/convert");
    }
    // Metrics are served over HTTPS to reviewed tokens: the manager may make the reviews, and
    // scrapers get a role to bind.
    let args = container_args(container);
    assert!(args.contains(&"--metrics-addr=:8443"), "{args:?}");
    assert!(!args.iter().any(|a| a.contains("insecure")), "{args:?}");
    let cluster_role = |suffix: &str| {
        docs.iter()
            .find(|d| yaml::kind(d) == "ClusterRole" && yaml::name(d).ends_with(suffix))
            .unwrap_or_else(|| panic!("no ClusterRole *{suffix}"))
    };
    assert_eq!(
        cluster_role("metrics-reader")["rules"],
        serde_json::json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
    );
    let auth_rules = cluster_role("metrics-auth-role")["rules"].to_string();
    assert!(
        auth_rules.contains("tokenreviews") && auth_rules.contains("subjectaccessreviews"),
        "{auth_rules}"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn generate_provider_renders_both_components_files_from_a_file_repository() {
    let release = Release::build().await.unwrap();
    let home = ScratchDir::new("clusterctl-home").unwrap();
    let config = write_config(
        &home,
        "clusterctl.yaml",
        &format!("providers:\n{}", release.provider_entries()),
    );
    for case in [CONTROL_PLANE, BOOTSTRAP] {
        let provider = format!("k0smotron:{}", release.version);

        // Defaults: the provider's own namespace, every variable at its default.
        let out = clusterctl(
            home.path(),
            &[
                "generate", "provider", case.flag, &provider, "--config", &config,
            ],
            &[],
        )
        .await
        .success()
        .unwrap();
        assert!(!out.stdout.contains("${"), "no variable left unsubstituted");
        let docs = yaml::documents(&out.stdout).unwrap();
        check_components(&case, &docs, case.namespace, &release.version);
        let container = manager_container(&docs);
        let args = container_args(container);
        assert!(args.contains(&"--log-format=json"), "{args:?}");
        let concurrency = if case.label == BOOTSTRAP_LABEL {
            "--concurrency=20"
        } else {
            "--concurrency=5"
        };
        assert!(args.contains(&concurrency), "{args:?}");
        assert!(args.contains(&"--leader-elect"), "{args:?}");
        assert_eq!(env_value(container, "WATCH_FILTER"), Some(""));
        assert_eq!(env_value(container, "WATCH_NAMESPACE"), Some(""));
        if case.label == BOOTSTRAP_LABEL {
            assert_eq!(env_value(container, "TOKEN_TTL"), Some("15m"));
        }

        // A custom target namespace and variables: clusterctl rewrites the namespace everywhere
        // (bindings included) and substitutes the values.
        let out = clusterctl(
            home.path(),
            &[
                "generate",
                "provider",
                case.flag,
                &provider,
                "--config",
                &config,
                "--target-namespace",
                "custom-ns",
            ],
            &[
                ("K0SMOTRON_WATCH_FILTER", "blue"),
                ("K0SMOTRON_LOG_FORMAT", "text"),
            ],
        )
        .await
        .success()
        .unwrap();
        let docs = yaml::documents(&out.stdout).unwrap();
        check_components(&case, &docs, "custom-ns", &release.version);
        let container = manager_container(&docs);
        assert_eq!(env_value(container, "WATCH_FILTER"), Some("blue"));
        assert!(
            container["args"]
                .as_array()
                .unwrap()
                .contains(&Value::from("--log-format=text"))
        );

        // The variables users can set, as clusterctl lists them.
        let out = clusterctl(
            home.path(),
            &[
                "generate",
                "provider",
                case.flag,
                &provider,
                "--config",
                &config,
                "--describe",
            ],
            &[],
        )
        .await
        .success()
        .unwrap();
        let variables: Vec<&str> = out
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with("Variables:"))
            .skip(1)
            .take_while(|l| l.starts_with("  - "))
            .map(|l| l.trim_start_matches("  - "))
            .collect();
        assert_eq!(variables, case.variables, "{}", out.stdout);
    }
}

/// A clusterctl local repository for CAPI core (from the CAPI module the harness pins), a
/// cert-manager stand-in, the providers of `release` as found in `providers_repo`, and the
/// `providers:` entries `more_providers`; writes the config to `file` in `dir` and returns its
/// path.
async fn init_config(
    dir: &ScratchDir,
    file: &str,
    release: &Release,
    providers_repo: &Path,
    more_providers: &str,
) -> String {
    let capi_version = tools::capi_version().expect("CAPI_VERSION in test/harness/versions.env");
    let module = capi::module_dir(&capi_version).await.unwrap();
    let core = dir.join(format!("repository/cluster-api/v{capi_version}"));
    std::fs::create_dir_all(&core).unwrap();
    let components = succeed(
        &tools::kubectl().unwrap(),
        [
            "kustomize".as_ref(),
            module.join("config/default").as_os_str(),
        ],
    )
    .await;
    std::fs::write(core.join("core-components.yaml"), components.stdout).unwrap();
    std::fs::copy(module.join("metadata.yaml"), core.join("metadata.yaml")).unwrap();
    // clusterctl installs cert-manager from this "release" when the cert-manager API is missing:
    // a Namespace only, so the install "succeeds" and the wait for the API then times out.
    let cert_manager = dir.join("repository/cert-manager/v1.17.0");
    std::fs::create_dir_all(&cert_manager).unwrap();
    std::fs::write(
        cert_manager.join("cert-manager.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cert-manager\n",
    )
    .unwrap();
    let ours = release.provider_entries().replace(
        &release.repository().display().to_string(),
        &providers_repo.display().to_string(),
    );
    write_config(
        dir,
        file,
        &format!(
            "providers:\n  - name: cluster-api\n    type: CoreProvider\n    url: file://{}/core-components.yaml\n{ours}{more_providers}cert-manager:\n  url: file://{}/cert-manager.yaml\n  version: v1.17.0\n  timeout: 10s\n",
            core.display(),
            cert_manager.display()
        ),
    )
}

/// `clusterctl init` succeeded (`out`) and installed both our providers of `release`: its
/// output says so, clusterctl's inventory lists them, and each has its one Deployment. Returns
/// the inventory.
async fn assert_ours_installed(
    client: &Client,
    out: &Output,
    release: &Release,
) -> BTreeSet<(String, String, String, String)> {
    assert!(out.status.success(), "{out}");
    let text = lines(out);
    for expected in [
        "Skipping installing cert-manager as it is already installed".to_owned(),
        format!(
            "Installing provider=\"{BOOTSTRAP_LABEL}\" version=\"{}\" targetNamespace=\"{}\"",
            release.version, BOOTSTRAP.namespace
        ),
        format!(
            "Installing provider=\"{CONTROL_PLANE_LABEL}\" version=\"{}\" targetNamespace=\"{}\"",
            release.version, CONTROL_PLANE.namespace
        ),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{out}");
    }
    let installed = inventory(client).await;
    for (case, provider_type) in [
        (CONTROL_PLANE, "ControlPlaneProvider"),
        (BOOTSTRAP, "BootstrapProvider"),
    ] {
        assert!(
            installed.contains(&(
                case.namespace.to_owned(),
                case.label.to_owned(),
                provider_type.to_owned(),
                release.version.clone()
            )),
            "{installed:?}"
        );
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), case.namespace);
        let names: Vec<String> = deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .into_iter()
            .filter_map(|d| d.metadata.name)
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
    installed
}

/// A fresh API server of its own (named after `name`), its client and its kubeconfig's path:
/// clusterctl installs CAPI core with webhooks and CRDs, which must not land in the shared
/// harness cluster.
async fn fresh_api_server(name: &str) -> (test_support::WorkloadServer, Client, String) {
    let ca = pki::cluster_ca().unwrap();
    let port = test_support::free_port().unwrap();
    let server = test_support::WorkloadServer::start(
        &test_support::unique_name(name),
        &ca.cert_pem,
        &ca.key_pem,
        port,
    )
    .await
    .unwrap();
    let client = server.client().await.unwrap();
    let kubeconfig = server.kubeconfig_path().display().to_string();
    (server, client, kubeconfig)
}

/// Runs `program` with `args` (no extra environment, in the current directory); the test fails
/// unless it succeeds.
async fn succeed<I, S>(program: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    command::run(program, args, std::iter::empty::<(&str, &str)>(), None)
        .await
        .unwrap()
        .success()
        .unwrap()
}

fn lines(output: &Output) -> Vec<String> {
    output
        .combined()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Two CRDs standing in for cert-manager's API: clusterctl detects cert-manager by creating a
/// test Issuer and Certificate, which is all these accept.
async fn install_fake_cert_manager_api(client: &Client, dir: &ScratchDir) {
    let mut text = String::new();
    for (kind, plural) in [("Issuer", "issuers"), ("Certificate", "certificates")] {
        text.push_str(&format!(
            "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.cert-manager.io\nspec:\n  group: cert-manager.io\n  names:\n    kind: {kind}\n    listKind: {kind}List\n    plural: {plural}\n    singular: {singular}\n  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          x-kubernetes-preserve-unknown-fields: true\n",
            singular = kind.to_ascii_lowercase()
        ));
    }
    let path = dir.join("fake-cert-manager-crds.yaml");
    std::fs::write(&path, text).unwrap();
    test_support::apply_crd_file(client, &path).await.unwrap();
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn init_passes_provider_validation_and_only_cert_manager_is_missing() {
    let release = Release::build().await.unwrap();
    let dir = ScratchDir::new("clusterctl-init").unwrap();
    let (server, client, kubeconfig) = fresh_api_server("ctl-init").await;
    let config = init_config(&dir, "clusterctl.yaml", &release, &release.repository(), "").await;
    let init = |config: String| {
        let (home, kubeconfig) = (dir.path().to_owned(), kubeconfig.clone());
        async move {
            clusterctl(
                &home,
                &[
                    "init",
                    "--kubeconfig",
                    &kubeconfig,
                    "--config",
                    &config,
                    "--bootstrap",
                    "k0smotron",
                    "--control-plane",
                    "k0smotron",
                ],
                &[],
            )
            .await
        }
    };

    // 1. Without cert-manager: validation (contracts, CRD names, one instance per provider)
    //    passes, then init stops exactly at cert-manager, which never becomes available.
    let out = init(config.clone()).await;
    assert!(!out.status.success(), "{out}");
    assert_eq!(
        lines(&out),
        [
            "Fetching providers",
            "Installing cert-manager version=\"v1.17.0\"",
            "Waiting for cert-manager to be available...",
            "Error: context deadline exceeded",
        ],
        "{out}"
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces
            .get_opt(CONTROL_PLANE.namespace)
            .await
            .unwrap()
            .is_none(),
        "nothing of ours is installed before cert-manager"
    );

    // 2. The same validation refuses a broken provider before touching cert-manager, so step 1
    //    proves ours passed it: an incompatible contract, and a CRD name core cannot derive.
    let broken = dir.join("broken");
    succeed(
        Path::new("cp"),
        [
            "-r".as_ref(),
            release.repository().as_os_str(),
            broken.as_os_str(),
        ],
    )
    .await;
    let version_dir = broken.join(CONTROL_PLANE_LABEL).join(&release.version);
    let metadata = std::fs::read_to_string(version_dir.join("metadata.yaml")).unwrap();
    std::fs::write(
        version_dir.join("metadata.yaml"),
        metadata.replace("contract: v1beta2", "contract: v1alpha4"),
    )
    .unwrap();
    let broken_config = init_config(&dir, "broken.yaml", &release, &broken, "").await;
    let out = init(broken_config.clone()).await;
    // clusterctl lists the contracts it supports (which depend on its minor) in map order,
    // which varies from run to run; ours, v1beta2, must be among them.
    let got = lines(&out);
    let refusal = got.get(1).map(String::as_str).unwrap_or_default();
    let contracts = refusal
        .strip_prefix(
            "Error: current version of clusterctl is only compatible with providers implementing the ",
        )
        .and_then(|r| {
            r.strip_suffix(
                " detected contract version v1alpha4 for provider control-plane-k0smotron",
            )
        })
        .and_then(|r| r.strip_suffix(" contract versions,").or(r.strip_suffix(" contract version,")));
    assert!(
        got.len() == 2
            && got[0] == "Fetching providers"
            && contracts.is_some_and(|c| c.split(", ").any(|c| c == "v1beta2")),
        "{out}"
    );
    std::fs::write(version_dir.join("metadata.yaml"), &metadata).unwrap();
    let components_path = version_dir.join("control-plane-components.yaml");
    let components = std::fs::read_to_string(&components_path).unwrap();
    std::fs::write(
        &components_path,
        components.replace(
            "  name: k0smotroncontrolplanes.controlplane.cluster.x-k8s.io\n",
            "  name: kcps.controlplane.cluster.x-k8s.io\n",
        ),
    )
    .unwrap();
    let out = init(broken_config).await;
    let text = lines(&out).join("\n");
    assert!(
        text.starts_with(
            "Fetching providers\nError: ERROR: CRD name \"kcps.controlplane.cluster.x-k8s.io\" is invalid"
        ),
        "{out}"
    );

    // 3. With a cert-manager API present, init installs core and both providers.
    install_fake_cert_manager_api(&client, &dir).await;
    let out = init(config).await;
    assert_ours_installed(&client, &out, &release).await;
    for case in [CONTROL_PLANE, BOOTSTRAP] {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for name in case.crds {
            let crd = crds.get(name).await.unwrap();
            let labels = crd.metadata.labels.unwrap_or_default();
            assert_eq!(
                labels.get("cluster.x-k8s.io/provider").map(String::as_str),
                Some(case.label)
            );
            assert_eq!(
                labels.get("cluster.x-k8s.io/v1beta2").map(String::as_str),
                Some("v1beta2")
            );
        }
    }
    server.stop().unwrap();
}

/// Where upstream k0smotron's git directory is named (as in the controlplane-provider's
/// `upstream_manifests` test; `test/run-all.sh` sets it when the machine has a copy).
const UPSTREAM_GIT_ENV: &str = "K0SMOTRON_UPSTREAM_GIT";
/// The upstream release the migration starts from.
const UPSTREAM_TAG: &str = "v2.1.0";
/// Upstream's clusterctl provider name (control-plane and bootstrap).
const UPSTREAM_NAME: &str = "k0sproject-k0smotron";
/// The namespace of both of upstream's providers.
const UPSTREAM_NAMESPACE: &str = "k0smotron";
/// Where the migrated objects live.
const TENANT: &str = "tenant";

/// Writes to stderr past libtest's capture: a skipped run must be seen.
fn loud(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Upstream's clusterctl release at [`UPSTREAM_TAG`], made the way its release workflow makes
/// it (`make bootstrap-components.yaml control-plane-components.yaml
/// IMG=quay.io/k0sproject/k0smotron:<tag>`, i.e. the image set in `config/manager`, then
/// `kustomize build config/clusterapi/{bootstrap,controlplane}`; the CRDs the Makefile would
/// regenerate first are the ones committed at the tag) from the tag's files in `git`, laid out
/// as a clusterctl local repository in `dir`. Returns its `providers:` entries and the
/// components of both providers.
async fn upstream_release(git: &Path, dir: &ScratchDir) -> (String, Vec<Value>) {
    // A bare clone is its own git directory; a checkout has one in `.git`.
    let git = if git.join(".git").exists() {
        git.join(".git")
    } else {
        git.to_owned()
    };
    let src = dir.join("upstream-src");
    std::fs::create_dir_all(&src).unwrap();
    succeed(
        Path::new("bash"),
        [
            "-c",
            r#"git --git-dir="$1" archive "$2" config metadata.yaml | tar -x -C "$3""#,
            "archive",
            &git.display().to_string(),
            UPSTREAM_TAG,
            &src.display().to_string(),
        ],
    )
    .await;
    // `kustomize edit set image controller=quay.io/k0sproject/k0smotron:<tag>`.
    let images = src.join("config/manager/kustomization.yaml");
    let text = std::fs::read_to_string(&images).unwrap();
    let edited = text.replace(
        "newName: k0s/k0smotron\n  newTag: latest",
        &format!("newName: quay.io/k0sproject/k0smotron\n  newTag: {UPSTREAM_TAG}"),
    );
    assert_ne!(edited, text, "upstream's image entry moved: {text}");
    std::fs::write(&images, edited).unwrap();

    let mut entries = String::new();
    let mut components = Vec::new();
    for (provider_type, label, kustomization, file) in [
        (
            "ControlPlaneProvider",
            "control-plane",
            "controlplane",
            "control-plane-components.yaml",
        ),
        (
            "BootstrapProvider",
            "bootstrap",
            "bootstrap",
            "bootstrap-components.yaml",
        ),
    ] {
        let rendered = succeed(
            &tools::kubectl().unwrap(),
            [
                "kustomize".as_ref(),
                src.join("config/clusterapi")
                    .join(kustomization)
                    .as_os_str(),
            ],
        )
        .await;
        let version_dir = dir.join(format!(
            "upstream-repository/{label}-{UPSTREAM_NAME}/{UPSTREAM_TAG}"
        ));
        std::fs::create_dir_all(&version_dir).unwrap();
        std::fs::write(version_dir.join(file), &rendered.stdout).unwrap();
        std::fs::copy(src.join("metadata.yaml"), version_dir.join("metadata.yaml")).unwrap();
        components.extend(yaml::documents(&rendered.stdout).unwrap());
        entries.push_str(&format!(
            "  - name: {UPSTREAM_NAME}\n    type: {provider_type}\n    url: file://{}\n",
            version_dir.join(file).display()
        ));
    }
    (entries, components)
}

/// A dynamic API for `obj`'s kind (namespaced or not).
fn api_for(client: &Client, obj: &Value) -> Api<DynamicObject> {
    let resource = e2e::objects::resource(obj["apiVersion"].as_str().unwrap(), yaml::kind(obj));
    match yaml::namespace(obj) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// The clusterctl inventory: (namespace, name, type, version) of every `Provider`.
async fn inventory(client: &Client) -> BTreeSet<(String, String, String, String)> {
    let inventory = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("clusterctl.cluster.x-k8s.io", "v1alpha3", "Provider"),
        "providers",
    );
    let providers: Api<DynamicObject> = Api::all_with(client.clone(), &inventory);
    providers
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
                p.data["type"].as_str().unwrap_or_default().to_owned(),
                p.data["version"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The webhooks of upstream's providers and of CAPI core have no endpoints here: their managers
/// do not run (upstream's has no image on this machine and is not built; CAPI core's is not
/// started, nothing here needs it). Each webhook of their configurations is set to
/// `failurePolicy: Ignore` so that objects can be created through their CRDs at all; their
/// defaulting and validation do not run, so the test writes every field itself. The
/// configurations stay, for step 1 to remove upstream's. Returns how many webhooks of each
/// provider label were set.
async fn ignore_webhooks(client: &Client) -> BTreeMap<String, usize> {
    let selector = format!(
        "cluster.x-k8s.io/provider in (cluster-api,control-plane-{UPSTREAM_NAME},bootstrap-{UPSTREAM_NAME})"
    );
    let mut patched = BTreeMap::new();
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let api: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &e2e::objects::resource("admissionregistration.k8s.io/v1", kind),
        );
        for mut config in api
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
        {
            let label =
                config.metadata.labels.as_ref().unwrap()["cluster.x-k8s.io/provider"].clone();
            for webhook in config.data["webhooks"].as_array_mut().unwrap() {
                webhook["failurePolicy"] = Value::from("Ignore");
                *patched.entry(label.clone()).or_default() += 1;
            }
            let name = config.metadata.name.clone().unwrap();
            api.replace(&name, &Default::default(), &config)
                .await
                .unwrap();
        }
    }
    patched
}

/// uid and resourceVersion of an object.
async fn identity(client: &Client, obj: &Value) -> (String, String) {
    let got = api_for(client, obj).get(yaml::name(obj)).await.unwrap();
    (
        got.metadata.uid.unwrap_or_default(),
        got.metadata.resource_version.unwrap_or_default(),
    )
}

/// clusterctl probes cert-manager's API with test objects in a namespace `cert-manager-test`,
/// which it deletes after; this API server has no namespace controller to finish that deletion,
/// and a second probe (the next `clusterctl init`) fails on the terminating namespace. Does the
/// namespace controller's last step: empties the namespace's finalizers once it is terminating.
async fn finish_cert_manager_probe(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let Some(mut ns) = namespaces.get_opt("cert-manager-test").await.unwrap() else {
        return;
    };
    assert!(
        ns.metadata.deletion_timestamp.is_some(),
        "clusterctl deletes its probe namespace"
    );
    ns.spec = Some(Default::default());
    namespaces
        .replace_subresource("finalize", "cert-manager-test", &Default::default(), &ns)
        .await
        .unwrap();
    e2e::objects::poll(
        std::time::Duration::from_secs(10),
        "the namespace cert-manager-test gone",
        String::new,
        || async {
            match namespaces.get_opt("cert-manager-test").await.unwrap() {
                None => Ok(()),
                Some(ns) => Err(format!("{:?}", ns.status)),
            }
        },
    )
    .await;
}

/// kube-controller-manager against `server` with the controllers step 2 and the takeover need:
/// the garbage collector (orphaning), the namespace and service-account controllers, and the
/// StatefulSet controller (revisions). No scheduler and no nodes: pods stay Pending.
fn start_controllers(server: &test_support::WorkloadServer, dir: &ScratchDir) -> Background {
    let bin = tools::kubectl()
        .unwrap()
        .parent()
        .unwrap()
        .join("kube-controller-manager");
    let port = test_support::free_port().unwrap();
    Background::spawn(
        "kube-controller-manager",
        &bin,
        [
            format!("--kubeconfig={}", server.kubeconfig_path().display()),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", dir.join("kcm-certs").display()),
            "--leader-elect=false".to_owned(),
            "--controllers=garbagecollector,namespace,serviceaccount,statefulset".to_owned(),
            "--use-service-account-credentials=false".to_owned(),
        ],
        std::iter::empty::<(&str, &str)>(),
        &dir.join("logs"),
    )
    .unwrap()
}

/// Names and revisions of the ControllerRevisions of StatefulSet `sts` in [`TENANT`].
async fn revisions(client: &Client, sts: &str) -> BTreeSet<(String, Option<i64>)> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), TENANT);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "StatefulSet" && o.name == sts)
        })
        .map(|r| (r.metadata.name.unwrap_or_default(), r.revision))
        .collect()
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// docs/migration.md's clusterctl steps, run as written against upstream v2.1.0's clusterctl
/// release (built from its tag) on a fresh API server with a cert-manager API: upstream
/// installed with `clusterctl init`, a control plane's objects as upstream leaves them
/// (`K0smotronControlPlane` and `K0sWorkerConfig` stored through upstream's CRDs, and the
/// intermediate Cluster and children of the shared fixture), then step 1 (`clusterctl delete
/// --control-plane k0sproject-k0smotron --bootstrap k0sproject-k0smotron`) removes upstream's
/// components and keeps its CRDs, namespace and every object, and step 3 (`clusterctl init
/// --control-plane k0smotron --bootstrap k0smotron`) installs ours over upstream's CRDs, after
/// which the objects read at `v1beta2` into our types.
///
/// Then, with kube-controller-manager's garbage collector and StatefulSet controller started,
/// step 2 as written and our control-plane provider's process: it takes the StatefulSet over
/// without a new revision and leaves the CA Secrets alone.
///
/// Not run: upstream's manager (no image here, so its webhooks and conversion have no
/// endpoint) and CAPI core's (not needed; its webhooks are ignored too). There is no node here, so the pod stays Pending and the control plane does not
/// become Available; `an_upstream_control_plane_is_taken_over_*` in
/// crates/controlplane-provider/tests/harness.rs check that part, with a running pod and a
/// hosted API server.
#[tokio::test]
#[ignore = "needs test/harness and K0SMOTRON_UPSTREAM_GIT"]
async fn migration_from_upstream_with_clusterctl_as_docs_migration_md_writes_it() {
    let Some(git) = std::env::var_os(UPSTREAM_GIT_ENV) else {
        loud(&format!(
            "\n{bar}\nSKIPPED clusterctl migration: {UPSTREAM_GIT_ENV} is unset, so NOTHING was checked.\n\
             Point it at a git directory of github.com/k0sproject/k0smotron (a bare clone is\n\
             enough; test/run-all.sh sets it when /work/.mirror/k0sproject+k0smotron/repo exists).\n{bar}\n\n",
            bar = "!".repeat(78)
        ));
        return;
    };
    let release = Release::build().await.unwrap();
    let dir = ScratchDir::new("clusterctl-migrate").unwrap();
    let (upstream_entries, upstream) = upstream_release(Path::new(&git), &dir).await;
    let (server, client, kubeconfig) = fresh_api_server("ctl-migrate").await;
    install_fake_cert_manager_api(&client, &dir).await;
    let config = init_config(
        &dir,
        "clusterctl.yaml",
        &release,
        &release.repository(),
        &upstream_entries,
    )
    .await;
    let run = |args: &'static [&'static str]| {
        let (home, kubeconfig, config) =
            (dir.path().to_owned(), kubeconfig.clone(), config.clone());
        async move {
            let mut all = args.to_vec();
            all.extend(["--kubeconfig", &kubeconfig, "--config", &config]);
            clusterctl(&home, &all, &[]).await
        }
    };
    let upstream_label = |prefix: &str| format!("{prefix}-{UPSTREAM_NAME}");
    let upstream_inventory = BTreeSet::from([
        (
            UPSTREAM_NAMESPACE.to_owned(),
            upstream_label("control-plane"),
            "ControlPlaneProvider".to_owned(),
            UPSTREAM_TAG.to_owned(),
        ),
        (
            UPSTREAM_NAMESPACE.to_owned(),
            upstream_label("bootstrap"),
            "BootstrapProvider".to_owned(),
            UPSTREAM_TAG.to_owned(),
        ),
    ]);

    // Upstream installed as its users install it.
    let out = run(&[
        "init",
        "--core",
        "cluster-api",
        "--control-plane",
        UPSTREAM_NAME,
        "--bootstrap",
        UPSTREAM_NAME,
    ])
    .await;
    assert!(out.status.success(), "{out}");
    finish_cert_manager_probe(&client).await;
    let installed = inventory(&client).await;
    assert!(installed.is_superset(&upstream_inventory), "{installed:?}");
    for doc in &upstream {
        api_for(&client, doc)
            .get(yaml::name(doc))
            .await
            .unwrap_or_else(|e| panic!("{} not installed: {e}", yaml::describe(doc)));
    }
    let ignored = ignore_webhooks(&client).await;
    assert_eq!(ignored.len(), 3, "{ignored:?}");

    // What upstream leaves for one control plane: a CAPI Cluster, the KCP (owned by it, as CAPI
    // core makes it) and a K0sWorkerConfig as users (and upstream's finalizer and certificate
    // references) wrote them, then the fixture's
    // intermediate Cluster and children.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": TENANT}})).unwrap(),
        )
        .await
        .unwrap();
    let api_port = 30443;
    let cluster = serde_json::json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": TENANT},
        "spec": {"controlPlaneRef": {
            "apiGroup": "controlplane.cluster.x-k8s.io",
            "kind": "K0smotronControlPlane",
            "name": "demo",
        }},
    });
    let typed: DynamicObject = serde_json::from_value(cluster.clone()).unwrap();
    api_for(&client, &cluster)
        .create(&Default::default(), &typed)
        .await
        .unwrap();
    let (cluster_uid, _) = identity(&client, &cluster).await;
    let kcp = serde_json::json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
        "kind": "K0smotronControlPlane",
        "metadata": {
            "name": "demo",
            "namespace": TENANT,
            "labels": {"cluster.x-k8s.io/cluster-name": "demo"},
            "ownerReferences": [{
                "apiVersion": "cluster.x-k8s.io/v1beta2",
                "kind": "Cluster",
                "name": "demo",
                "uid": cluster_uid,
            }],
            "finalizers": ["k0smotron.controlplane.cluster.x-k8s.io"],
        },
        "spec": {
            "replicas": 1,
            "version": "v1.35.4+k0s.0",
            "externalAddress": "127.0.0.1",
            "service": {"type": "ClusterIP", "apiPort": api_port, "konnectivityPort": 30132},
            "persistence": {"type": "emptyDir"},
            "storage": {"type": "kine", "kine": {
                "dataSourceURL": "sqlite:///var/lib/k0s/db/state.db?mode=rwc&_journal=WAL&cache=shared",
            }},
            "certificateRefs": [
                {"type": "ca", "name": "demo-ca"},
                {"type": "proxy", "name": "demo-proxy"},
                {"type": "sa", "name": "demo-sa"},
                {"type": "etcd", "name": "demo-etcd"},
            ],
        },
    });
    let worker = serde_json::json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2",
        "kind": "K0sWorkerConfig",
        "metadata": {"name": "demo-worker-0", "namespace": TENANT},
        "spec": {"version": "v1.35.4+k0s.0", "args": ["--labels=pool=a"]},
    });
    let mut objects = vec![cluster];
    for obj in [kcp, worker] {
        let typed: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
        api_for(&client, &obj)
            .create(&Default::default(), &typed)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", yaml::describe(&obj)));
        objects.push(obj);
    }
    let (kcp_uid, _) = identity(&client, &objects[1]).await;
    // Key material our provider reads when it takes over (the kubeconfig it re-mints).
    let (kcp_ca, proxy, etcd) = (
        pki::cluster_ca().unwrap(),
        pki::cluster_ca().unwrap(),
        pki::cluster_ca().unwrap(),
    );
    let sa = rcgen::KeyPair::generate().unwrap();
    let mut values = BTreeMap::from([
        ("NAMESPACE", TENANT.to_owned()),
        ("KCP_UID", kcp_uid),
        ("API_PORT", api_port.to_string()),
        ("CA_CRT", b64(&kcp_ca.cert_pem)),
        ("CA_KEY", b64(&kcp_ca.key_pem)),
        ("PROXY_CRT", b64(&proxy.cert_pem)),
        ("PROXY_KEY", b64(&proxy.key_pem)),
        ("SA_PUB", b64(&sa.public_key_pem())),
        ("SA_KEY", b64(&sa.serialize_pem())),
        ("ETCD_CRT", b64(&etcd.cert_pem)),
        ("ETCD_KEY", b64(&etcd.key_pem)),
        (
            "KUBECONFIG",
            b64("upstream's kubeconfig, re-minted by ours"),
        ),
        ("KMC_UID", "known once the Cluster exists".to_owned()),
    ]);
    for pass in 0..2 {
        // The intermediate Cluster first: its uid is in the others' owner references.
        let docs = test_support::upstream_fixture(&values).unwrap();
        let docs = if pass == 0 { &docs[..1] } else { &docs[1..] };
        for doc in docs {
            let api = api_for(&client, &doc.object);
            let typed: DynamicObject = serde_json::from_value(doc.object.clone()).unwrap();
            let written = match doc.write {
                test_support::UpstreamWrite::Create => {
                    let params = kube::api::PostParams {
                        field_manager: Some(doc.manager.clone()),
                        ..Default::default()
                    };
                    api.create(&params, &typed).await
                }
                test_support::UpstreamWrite::Apply => {
                    api.patch(
                        yaml::name(&doc.object),
                        &kube::api::PatchParams::apply(&doc.manager).force(),
                        &kube::api::Patch::Apply(&typed),
                    )
                    .await
                }
            };
            written.unwrap_or_else(|e| panic!("{}: {e}", yaml::describe(&doc.object)));
            objects.push(doc.object.clone());
        }
        if pass == 0 {
            values.insert("KMC_UID", identity(&client, &objects[3]).await.0);
        }
    }
    let mut before = Vec::new();
    for obj in &objects {
        before.push(identity(&client, obj).await);
    }

    // docs/migration.md, step 1, as written.
    let out = run(&[
        "delete",
        "--control-plane",
        "k0sproject-k0smotron",
        "--bootstrap",
        "k0sproject-k0smotron",
    ])
    .await;
    assert!(out.status.success(), "{out}");
    let text = lines(&out);
    for provider in [upstream_label("bootstrap"), upstream_label("control-plane")] {
        let expected = format!(
            "Deleting Provider={{\"name\":\"{provider}\",\"namespace\":\"{UPSTREAM_NAMESPACE}\"}} providerVersion=\"\""
        );
        assert!(text.contains(&expected), "missing {expected:?} in\n{out}");
    }
    let installed = inventory(&client).await;
    assert!(installed.is_disjoint(&upstream_inventory), "{installed:?}");
    // Upstream's components are gone (Deployments, RBAC, webhook configurations, Services,
    // cert-manager objects), its CRDs and namespace stay.
    let mut kept = BTreeSet::new();
    for doc in &upstream {
        let found = api_for(&client, doc)
            .get_opt(yaml::name(doc))
            .await
            .unwrap()
            .is_some();
        let keep = matches!(yaml::kind(doc), "CustomResourceDefinition" | "Namespace");
        assert_eq!(found, keep, "{} after step 1", yaml::describe(doc));
        if keep {
            kept.insert(yaml::name(doc));
        }
    }
    assert_eq!(
        kept,
        BTreeSet::from([
            UPSTREAM_NAMESPACE,
            "clusters.k0smotron.io",
            "jointokenrequests.k0smotron.io",
            "k0scontrolplanes.controlplane.cluster.x-k8s.io",
            "k0scontrolplanetemplates.controlplane.cluster.x-k8s.io",
            "k0smotroncontrolplanes.controlplane.cluster.x-k8s.io",
            "k0smotroncontrolplanetemplates.controlplane.cluster.x-k8s.io",
            "k0scontrollerconfigs.bootstrap.cluster.x-k8s.io",
            "k0sworkerconfigs.bootstrap.cluster.x-k8s.io",
            "k0sworkerconfigtemplates.bootstrap.cluster.x-k8s.io",
        ])
    );
    // Every object is there, untouched.
    for (obj, before) in objects.iter().zip(&before) {
        assert_eq!(
            &identity(&client, obj).await,
            before,
            "{} after step 1",
            yaml::describe(obj)
        );
    }

    // docs/migration.md, step 3, as written: ours over upstream's CRDs.
    let out = run(&[
        "init",
        "--control-plane",
        "k0smotron",
        "--bootstrap",
        "k0smotron",
    ])
    .await;
    let installed = assert_ours_installed(&client, &out, &release).await;
    assert!(installed.is_disjoint(&upstream_inventory), "{installed:?}");
    // Our CRDs replaced upstream's: our versions (v1beta1 served, v1beta2 stored), schemas and
    // conversion (our webhook Service in our namespace), our provider label.
    let ours: Vec<Value> = [
        release.control_plane_components(),
        release.bootstrap_components(),
    ]
    .iter()
    .flat_map(|path| yaml::documents(&std::fs::read_to_string(path).unwrap()).unwrap())
    .filter(|d| yaml::kind(d) == "CustomResourceDefinition")
    .collect();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Read untyped: the typed schema turns integers (`maximum: 65535`) into floats.
    let raw_crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &e2e::objects::resource("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    );
    let mut replaced = BTreeSet::new();
    for case in [CONTROL_PLANE, BOOTSTRAP] {
        for name in case.crds.iter().chain(case.standalone_crds) {
            let crd = serde_json::to_value(raw_crds.get(name).await.unwrap()).unwrap();
            let expected = ours.iter().find(|d| yaml::name(d) == *name).unwrap();
            assert!(
                upstream.iter().any(|d| yaml::name(d) == *name),
                "{name}: upstream installs it too"
            );
            assert_eq!(
                yaml::label(&crd, "cluster.x-k8s.io/provider"),
                Some(case.label)
            );
            // (name, served, storage, schema) of each version; the API server lists them by
            // priority, the file by name.
            let versions = |crd: &Value| -> BTreeSet<(String, bool, bool, String)> {
                crd["spec"]["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        (
                            v["name"].as_str().unwrap().to_owned(),
                            v["served"].as_bool().unwrap(),
                            v["storage"].as_bool().unwrap(),
                            v["schema"].to_string(),
                        )
                    })
                    .collect()
            };
            let got = versions(&crd);
            assert_eq!(got, versions(expected), "{name}");
            assert_eq!(
                got.iter()
                    .map(|(v, served, storage, _)| (v.as_str(), *served, *storage))
                    .collect::<Vec<_>>(),
                [("v1beta1", true, false), ("v1beta2", true, true)],
                "{name}"
            );
            let service = &crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"];
            assert_eq!(service["namespace"], case.namespace, "{name}");
            assert_eq!(
                service["name"],
                expected["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["name"],
                "{name}"
            );
            assert_eq!(
                crd["status"]["storedVersions"],
                serde_json::json!(["v1beta2"])
            );
            replaced.insert(name.to_owned());
        }
    }
    // Upstream's CRDs of kinds we do not serve stay as upstream installed them.
    for doc in upstream.iter().filter(|d| {
        yaml::kind(d) == "CustomResourceDefinition" && !replaced.contains(yaml::name(d))
    }) {
        let crd = crds.get(yaml::name(doc)).await.unwrap();
        let labels = crd.metadata.labels.unwrap_or_default();
        assert!(
            labels
                .get("cluster.x-k8s.io/provider")
                .is_some_and(|l| l.ends_with(UPSTREAM_NAME)),
            "{}: {labels:?}",
            yaml::name(doc)
        );
    }
    assert!(
        namespaces
            .get_opt(UPSTREAM_NAMESPACE)
            .await
            .unwrap()
            .is_some(),
        "upstream's namespace stays"
    );

    // The objects, still the same ones, read at v1beta2 into our controllers' types.
    let kcps: Api<k0smotron_api::controlplane::v1beta2::K0smotronControlPlane> =
        Api::namespaced(client.clone(), TENANT);
    let kcp = kcps.get("demo").await.unwrap();
    assert_eq!(kcp.metadata.uid.as_deref(), Some(before[1].0.as_str()));
    assert_eq!(kcp.spec.version, "v1.35.4+k0s.0");
    assert_eq!(kcp.spec.certificate_refs.len(), 4);
    let workers: Api<k0smotron_api::bootstrap::v1beta2::K0sWorkerConfig> =
        Api::namespaced(client.clone(), TENANT);
    let worker = workers.get("demo-worker-0").await.unwrap();
    assert_eq!(worker.metadata.uid.as_deref(), Some(before[2].0.as_str()));
    assert_eq!(worker.spec.args, ["--labels=pool=a"]);
    let kmcs: Api<k0smotron_api::k0smotron::v1beta2::Cluster> =
        Api::namespaced(client.clone(), TENANT);
    let kmc = kmcs.get("demo").await.unwrap();
    assert_eq!(kmc.metadata.uid.as_deref(), Some(before[3].0.as_str()));
    assert_eq!(kmc.spec.certificate_refs.len(), 4);
    for (obj, before) in objects.iter().zip(&before) {
        assert_eq!(
            &identity(&client, obj).await,
            before,
            "{} after step 3",
            yaml::describe(obj)
        );
    }

    // The takeover. kube-controller-manager starts only now: its StatefulSet controller writes
    // status, which the unchanged-objects checks above would have seen.
    let controllers = start_controllers(&server, &dir);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), TENANT);
    let pods: Api<Pod> = Api::namespaced(client.clone(), TENANT);
    let (sts_before, pod_uid) = e2e::objects::poll(
        Duration::from_secs(60),
        "upstream's StatefulSet observed by the StatefulSet controller, its pod made",
        || controllers.log_tail(20),
        || async {
            let sts = statefulsets.get("kmc-demo").await.unwrap();
            let status = sts.status.clone().unwrap_or_default();
            let pod = pods.get_opt("kmc-demo-0").await.unwrap();
            if status.observed_generation == sts.metadata.generation
                && status.current_revision.is_some()
                && pod.is_some()
            {
                Ok((sts, pod.and_then(|p| p.metadata.uid)))
            } else {
                Err(format!("{status:?}"))
            }
        },
    )
    .await;
    let revisions_before = revisions(&client, "kmc-demo").await;
    assert_eq!(revisions_before.len(), 1, "{revisions_before:?}");
    // docs/migration.md, step 2, as written: upstream's finalizer removed, then the intermediate
    // Cluster deleted with `--cascade=orphan`; the garbage collector releases its children.
    let kmc_api = api_for(&client, &objects[3]);
    kmc_api
        .patch(
            "demo",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Json::<()>(
                serde_json::from_value(serde_json::json!([
                    {"op": "remove", "path": "/metadata/finalizers"},
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    kmc_api
        .delete("demo", &kube::api::DeleteParams::orphan())
        .await
        .unwrap();
    let kmc_uid = before[3].0.clone();
    e2e::objects::poll(
        Duration::from_secs(60),
        "the intermediate Cluster gone and its children released",
        || controllers.log_tail(20),
        || async {
            let kmc = kmc_api.get_opt("demo").await.unwrap();
            let sts = statefulsets.get("kmc-demo").await.unwrap();
            let owners = sts.metadata.owner_references.unwrap_or_default();
            if kmc.is_none() && !owners.iter().any(|o| o.uid == kmc_uid) {
                Ok(())
            } else {
                Err(format!(
                    "Cluster present: {}, owners {owners:?}",
                    kmc.is_some()
                ))
            }
        },
    )
    .await;

    let mut provider = ProviderManager::start(
        Provider::ControlPlane,
        server.kubeconfig_path(),
        TENANT,
        &dir.join("logs"),
        false,
    )
    .await
    .unwrap();
    let kcp_uid = before[1].0.clone();
    let sts_after = e2e::objects::poll(
        Duration::from_secs(90),
        "the StatefulSet controlled by the K0smotronControlPlane",
        || provider.log_tail(40),
        || async {
            let sts = statefulsets.get("kmc-demo").await.unwrap();
            let owners = sts.metadata.owner_references.clone().unwrap_or_default();
            if owners
                .iter()
                .any(|o| o.uid == kcp_uid && o.controller == Some(true))
            {
                Ok(sts)
            } else {
                Err(format!("owners {owners:?}"))
            }
        },
    )
    .await;
    provider.check_running().unwrap();
    assert_eq!(sts_after.metadata.uid, sts_before.metadata.uid);
    assert_eq!(
        sts_after.metadata.generation,
        sts_before.metadata.generation
    );
    assert_eq!(sts_after.spec, sts_before.spec);
    // Let the StatefulSet controller see our write, then: still upstream's only revision.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(revisions(&client, "kmc-demo").await, revisions_before);
    let pod = pods.get("kmc-demo-0").await.unwrap();
    assert_eq!(pod.metadata.uid, pod_uid, "the pod was not recreated");
    // The CA Secrets (controlled by the KCP under upstream too) are read, never written.
    for obj in objects.iter().zip(&before).filter(|(o, _)| {
        yaml::kind(o) == "Secret"
            && ["demo-ca", "demo-proxy", "demo-sa", "demo-etcd"].contains(&yaml::name(o))
    }) {
        assert_eq!(
            &identity(&client, obj.0).await,
            obj.1,
            "{}",
            yaml::describe(obj.0)
        );
    }
    provider.stop().await;
    controllers.stop(Duration::from_secs(5)).await;
    server.stop().unwrap();
}
