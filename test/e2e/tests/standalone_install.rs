//! The standalone install as users make it, without Cluster API: `kubectl apply --server-side` of
//! the release's `k0smotron-standalone.yaml`, and the Helm chart (`charts/k0smotron`) linted,
//! rendered, dry-run on the server, installed and uninstalled with the Helm the harness builds.
//! Both must agree with each other on what the provider is allowed to do and how it runs.
//!
//! Nothing runs the provider here (the harness has no image registry): these tests check what
//! the API server accepts and stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use e2e::command::{self, Output};
use e2e::release::Release;
use e2e::scratch::ScratchDir;
use e2e::{dry_run, objects, tools, yaml};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client};
use pretty_assertions::assert_eq;
use serde_json::Value;
use test_support::{TestNamespace, unique_name};

/// The standalone kinds' CRDs, the only CRDs either install ships.
const STANDALONE_CRDS: [&str; 2] = ["clusters.k0smotron.io", "jointokenrequests.k0smotron.io"];
/// The namespace of the kubectl install (upstream's standalone namespace).
const NAMESPACE: &str = "k0smotron";
/// The name prefix config/standalone gives every object.
const PREFIX: &str = "k0smotron-";

/// Held by the tests that apply the standalone CRDs: the kubectl install takes their conversion
/// webhook Service over for a while, which the chart's dry run (applying the chart's CRDs,
/// without force) must not meet.
static SHARED_CRDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(program: &Path, args: &[&str]) -> Output {
    command::run(program, args, std::iter::empty::<(&str, &str)>(), None)
        .await
        .unwrap()
}

fn succeeded(out: Output) -> Output {
    out.success().unwrap_or_else(|e| panic!("{e}"))
}

/// Helm from the harness, with its cache, config and data in a scratch directory of its own (no
/// user repositories or plugins leak in).
struct Helm {
    bin: std::path::PathBuf,
    home: ScratchDir,
}

impl Helm {
    /// Its absence fails the test: CI builds it with `cluster build`.
    fn new() -> Self {
        let bin = tools::helm()
            .unwrap_or_else(|e| panic!("helm is needed for the chart tests and CI builds it: {e}"));
        Self {
            bin,
            home: ScratchDir::new("helm-home").unwrap(),
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let env = ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"]
            .map(|key| (key, self.home.join(key.to_ascii_lowercase())));
        command::run(&self.bin, args, env, None).await.unwrap()
    }

    /// `helm template RELEASE charts/k0smotron -n NAMESPACE [extra...]`, CRDs included.
    async fn template(&self, release: &str, namespace: &str, extra: &[&str]) -> String {
        let chart = tools::chart_dir();
        let mut args = vec![
            "template",
            release,
            chart.to_str().unwrap(),
            "--namespace",
            namespace,
            "--include-crds",
        ];
        args.extend_from_slice(extra);
        succeeded(self.run(&args).await).stdout
    }
}

fn by_kind_name<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| yaml::kind(d) == kind && yaml::name(d) == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", names(docs)))
}

fn names(docs: &[Value]) -> Vec<String> {
    docs.iter().map(yaml::describe).collect()
}

/// The manager Deployment's pod spec.
fn pod_spec(docs: &[Value]) -> &Value {
    let deployments: Vec<&Value> = docs
        .iter()
        .filter(|d| yaml::kind(d) == "Deployment")
        .collect();
    assert_eq!(deployments.len(), 1, "one Deployment in {:?}", names(docs));
    &deployments[0]["spec"]["template"]["spec"]
}

fn manager_container(docs: &[Value]) -> &Value {
    &pod_spec(docs)["containers"][0]
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

/// An API for `obj`'s kind, resolved through discovery.
fn api_for(client: &Client, discovery: &Discovery, obj: &Value) -> Api<DynamicObject> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, yaml::kind(obj));
    let (resource, caps) = discovery.resolve_gvk(&gvk).unwrap_or_else(|| {
        panic!(
            "the server does not serve {api_version} {}",
            yaml::kind(obj)
        )
    });
    match (caps.scope, yaml::namespace(obj)) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (Scope::Namespaced, None) => panic!("{} has no namespace", yaml::describe(obj)),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    }
}

async fn discovery(client: &Client) -> Discovery {
    Discovery::new(client.clone()).run().await.unwrap()
}

/// Names of the objects of `docs` the server does (`want_present`) or does not have.
async fn presence(client: &Client, docs: &[Value], want_present: bool) -> Vec<String> {
    let discovery = discovery(client).await;
    let mut wrong = Vec::new();
    for doc in docs {
        let found = api_for(client, &discovery, doc)
            .get_opt(yaml::name(doc))
            .await
            .unwrap_or_else(|e| panic!("reading {}: {e}", yaml::describe(doc)))
            .is_some_and(|o| o.metadata.deletion_timestamp.is_none());
        if found != want_present {
            wrong.push(yaml::describe(doc));
        }
    }
    wrong
}

async fn wait_established(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in STANDALONE_CRDS {
        test_support::wait_for(
            &crds,
            name,
            |crd| {
                crd.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            },
            Duration::from_secs(30),
            "Established",
        )
        .await
        .unwrap();
    }
}

/// `kubectl kustomize config/standalone` with the harness's kubectl.
async fn kustomize_standalone() -> Vec<Value> {
    let kubectl = tools::kubectl().unwrap();
    let dir = tools::repo_root().join("config/standalone");
    let out = succeeded(run(&kubectl, &["kustomize", dir.to_str().unwrap()]).await);
    yaml::documents(&out.stdout).unwrap()
}

/// The workspace version, as `Cargo.toml` declares it.
fn workspace_version() -> String {
    let cargo = std::fs::read_to_string(tools::repo_root().join("Cargo.toml")).unwrap();
    cargo
        .split("[workspace.package]")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.trim().strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("version in [workspace.package]")
}

#[test]
fn chart_version_follows_the_workspace() {
    let chart = std::fs::read_to_string(tools::chart_dir().join("Chart.yaml")).unwrap();
    let chart: Value = serde_saphyr::from_str(&chart).unwrap();
    let version = workspace_version();
    assert_eq!(chart["version"].as_str(), Some(version.as_str()));
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(format!("v{version}").as_str()),
        "appVersion is the default image tag, which the release tags v<version>"
    );
}

/// `kubectl apply --server-side -f k0smotron-standalone.yaml` on a cluster without Cluster API's
/// kinds in it: every object accepted, the CRDs Established, the provider's Deployment asking for
/// the standalone kinds only. Then everything but the CRDs is deleted again.
#[tokio::test]
#[ignore = "needs the harness: eval \"$(test/harness/cluster up --workloads)\""]
async fn standalone_manifest_applies_with_kubectl() {
    let _crds = SHARED_CRDS.lock().await;
    let release = Release::build().await.unwrap();
    let text = std::fs::read_to_string(release.standalone()).unwrap();
    assert!(
        !text.contains("${"),
        "plain kubectl would apply variable syntax literally"
    );
    let docs = yaml::documents(&text).unwrap();

    // What is in it: one Namespace, the two standalone CRDs and no other, the RBAC and the
    // Deployment, all in (or named for) the k0smotron namespace.
    let namespaces: Vec<&str> = docs
        .iter()
        .filter(|d| yaml::kind(d) == "Namespace")
        .map(yaml::name)
        .collect();
    assert_eq!(namespaces, [NAMESPACE]);
    let mut crds: Vec<&str> = docs
        .iter()
        .filter(|d| yaml::kind(d) == "CustomResourceDefinition")
        .map(yaml::name)
        .collect();
    crds.sort_unstable();
    assert_eq!(crds, STANDALONE_CRDS);
    for doc in &docs {
        let kind = yaml::kind(doc);
        if !["Namespace", "CustomResourceDefinition"].contains(&kind) {
            assert!(
                yaml::name(doc).starts_with(PREFIX),
                "{} lacks the {PREFIX} prefix",
                yaml::describe(doc)
            );
        }
        if let Some(ns) = yaml::namespace(doc) {
            assert_eq!(ns, NAMESPACE, "{}", yaml::describe(doc));
        }
        for rule in doc["rules"].as_array().into_iter().flatten() {
            for group in rule["apiGroups"].as_array().into_iter().flatten() {
                assert!(
                    !group
                        .as_str()
                        .unwrap_or_default()
                        .ends_with("cluster.x-k8s.io"),
                    "{} grants Cluster API group {group}",
                    yaml::describe(doc)
                );
            }
        }
    }
    let manager = manager_container(&docs);
    assert_eq!(env_value(manager, "KINDS"), Some("standalone"));
    assert!(
        env_value(manager, "WATCH_NAMESPACE").is_none_or(str::is_empty),
        "the standalone install watches every namespace"
    );

    let client = test_support::client().await.unwrap();
    // The CRDs are this harness's shared ones, which other tests applied with the clusterctl
    // components' conversion webhook Service: this install takes them over (its own Service,
    // `k0smotron/k0smotron-webhook-service`), as an install over another one must
    // (`--force-conflicts`). Everything else is applied as a fresh install, without force.
    let (crd_docs, other_docs): (Vec<Value>, Vec<Value>) = docs
        .iter()
        .cloned()
        .partition(|d| yaml::kind(d) == "CustomResourceDefinition");
    let mut report = dry_run::apply_stored_forced(&client, &crd_docs)
        .await
        .unwrap();
    let rest = dry_run::apply_stored(&client, &other_docs).await.unwrap();
    report.accepted.extend(rest.accepted);
    report.rejected.extend(rest.rejected);
    report.unknown_kind.extend(rest.unknown_kind);
    assert!(
        report.rejected.is_empty() && report.unknown_kind.is_empty(),
        "rejected: {:#?}\nkinds not served: {:#?}",
        report.rejected,
        report.unknown_kind
    );
    assert_eq!(report.accepted.len(), docs.len());
    let crds_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in STANDALONE_CRDS {
        let crd = crds_api.get(name).await.unwrap();
        let service = crd
            .spec
            .conversion
            .and_then(|c| c.webhook)
            .and_then(|w| w.client_config)
            .and_then(|c| c.service)
            .unwrap();
        assert_eq!(
            (service.namespace.as_str(), service.name.as_str()),
            (NAMESPACE, "k0smotron-webhook-service"),
            "{name}"
        );
    }
    wait_established(&client).await;
    let missing = presence(&client, &docs, true).await;
    assert!(missing.is_empty(), "applied but not stored: {missing:?}");

    // Clean up all but the CRDs (other tests of this harness use them; their conversion goes
    // back to the committed files' Service): the namespace takes the namespaced objects with it.
    test_support::apply_crd_dir(&client, &tools::repo_root().join("config/crd/bases"))
        .await
        .unwrap();
    let discovery = discovery(&client).await;
    for doc in docs
        .iter()
        .filter(|d| yaml::kind(d) != "CustomResourceDefinition")
    {
        let _ = api_for(&client, &discovery, doc)
            .delete(yaml::name(doc), &DeleteParams::background())
            .await;
    }
}

/// `helm lint` accepts the chart; its rendering agrees with the kubectl install on RBAC and on
/// how the manager runs; the server accepts the rendering (default and non-default values) in a
/// dry run; `helm install` stores every object and `helm uninstall` removes them again (CRDs
/// stay, as Helm leaves `crds/` alone).
#[tokio::test]
#[ignore = "needs the harness: eval \"$(test/harness/cluster up --workloads)\""]
async fn helm_chart_lints_renders_and_installs() {
    let _crds = SHARED_CRDS.lock().await;
    let helm = Helm::new();
    let chart = tools::chart_dir();
    let chart_arg = chart.to_str().unwrap();
    succeeded(helm.run(&["lint", "--strict", chart_arg]).await);

    let ns = TestNamespace::create("helm").await.unwrap();
    let client = ns.client();
    let release = unique_name("e2e");

    // Same rules, same container as the kubectl install (the chart duplicates
    // config/standalone, which this keeps honest).
    let chart_docs = yaml::documents(&helm.template(&release, ns.name(), &[]).await).unwrap();
    let kustomized = kustomize_standalone().await;
    let full = format!("{release}-k0smotron");
    for (kind, suffix) in [
        ("ClusterRole", "manager-role"),
        ("Role", "leader-election-role"),
        ("ClusterRole", "metrics-auth-role"),
        ("ClusterRole", "metrics-reader"),
        ("Role", "webhook-certs-role"),
    ] {
        let ours = by_kind_name(&chart_docs, kind, &format!("{full}-{suffix}"));
        let theirs = by_kind_name(&kustomized, kind, &format!("{PREFIX}{suffix}"));
        assert_eq!(
            ours["rules"], theirs["rules"],
            "{kind} {suffix}: the chart and config/standalone grant different rules"
        );
    }
    let (ours, theirs) = (
        manager_container(&chart_docs),
        manager_container(&kustomized),
    );
    for field in [
        "args",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "securityContext",
        "resources",
    ] {
        assert_eq!(ours[field], theirs[field], "manager container {field}");
    }
    for field in [
        "securityContext",
        "tolerations",
        "terminationGracePeriodSeconds",
    ] {
        assert_eq!(
            pod_spec(&chart_docs)[field],
            pod_spec(&kustomized)[field],
            "manager pod {field}"
        );
    }
    assert_eq!(env_value(ours, "KINDS"), Some("standalone"));
    let mut crds: Vec<&str> = chart_docs
        .iter()
        .filter(|d| yaml::kind(d) == "CustomResourceDefinition")
        .map(yaml::name)
        .collect();
    crds.sort_unstable();
    assert_eq!(crds, STANDALONE_CRDS);

    // The server accepts what the chart renders, with the defaults and with the other branches
    // of the templates.
    let kubectl = tools::kubectl().unwrap();
    let scratch = ScratchDir::new("helm").unwrap();
    let variants: [&[&str]; 2] = [
        &[],
        &[
            "--set",
            "replicas=2,metrics.secure=false,metrics.address=127.0.0.1:9090",
            "--set",
            "watchNamespace=tenants,kinds={standalone,capi},nodeSelector.zone=a",
            "--set",
            "leaderElection.enabled=true,logFormat=text,concurrency=3",
        ],
    ];
    for (i, extra) in variants.iter().enumerate() {
        let rendered = helm.template(&release, ns.name(), extra).await;
        let file = scratch.join(format!("rendered-{i}.yaml"));
        std::fs::write(&file, rendered).unwrap();
        succeeded(
            run(
                &kubectl,
                &[
                    "apply",
                    "--dry-run=server",
                    "--server-side",
                    "--field-manager=e2e-helm-dry-run",
                    "-f",
                    file.to_str().unwrap(),
                ],
            )
            .await,
        );
    }

    // Install for real; the pods cannot start (no registry), so nothing waits for them.
    succeeded(
        helm.run(&[
            "install",
            &release,
            chart_arg,
            "--namespace",
            ns.name(),
            "--timeout",
            "2m",
        ])
        .await,
    );
    let templated: Vec<Value> = chart_docs
        .iter()
        .filter(|d| yaml::kind(d) != "CustomResourceDefinition")
        .cloned()
        .collect();
    wait_established(&client).await;
    let missing = presence(&client, &templated, true).await;
    assert!(missing.is_empty(), "installed but not stored: {missing:?}");
    let listed = succeeded(
        helm.run(&["list", "--namespace", ns.name(), "--short"])
            .await,
    );
    assert_eq!(listed.stdout.trim(), release, "helm list");

    succeeded(
        helm.run(&["uninstall", &release, "--namespace", ns.name(), "--wait"])
            .await,
    );
    objects::poll(
        Duration::from_secs(30),
        "the release's objects to be deleted",
        String::new,
        || {
            let (client, templated) = (client.clone(), templated.clone());
            async move {
                let left = presence(&client, &templated, false).await;
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("still there: {left:?}"))
                }
            }
        },
    )
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in STANDALONE_CRDS {
        assert!(
            crds.get_opt(name).await.unwrap().is_some(),
            "helm uninstall must leave CRD {name} (and so the users' Clusters) alone"
        );
    }
}
