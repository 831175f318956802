//! Every template in `templates/` renders with `clusterctl generate cluster --from`, declares
//! exactly the variables its header documents, and what it renders is accepted by a server-side
//! dry run against CAPI's, CAPD's and our CRDs. The AWS flavour's own kinds (CAPA) have no CRDs
//! here; the test checks that exactly those are left unvalidated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use e2e::command::{self, Output};
use e2e::scratch::ScratchDir;
use e2e::{dry_run, release, tools, yaml};
use pretty_assertions::assert_eq;
use test_support::TestNamespace;

const KUBERNETES_VERSION: &str = "v1.34.1";

/// Values for the AWS flavour's required variables.
const AWS_ENV: [(&str, &str); 6] = [
    ("AWS_REGION", "eu-west-1"),
    ("AWS_SSH_KEY_NAME", "e2e"),
    ("AWS_VPC_ID", "vpc-0123456789abcdef0"),
    ("AWS_SUBNET_ID", "subnet-0123456789abcdef0"),
    ("AWS_SUBNET_AZ", "eu-west-1a"),
    ("AWS_AMI_ID", "ami-0123456789abcdef0"),
];

struct Template {
    file: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
    kinds: &'static [&'static str],
    /// Kinds whose CRDs the harness does not have (an infrastructure provider we cannot run).
    unvalidated: &'static [&'static str],
}

const TEMPLATES: [Template; 4] = [
    Template {
        file: "cluster-template-docker.yaml",
        required: &["KUBERNETES_VERSION"],
        optional: &[
            "CLUSTER_NAME",
            "CONTROL_PLANE_MACHINE_COUNT",
            "K0SMOTRON_SERVICE_TYPE",
            "NAMESPACE",
            "POD_CIDR",
            "SERVICE_CIDR",
            "WORKER_MACHINE_COUNT",
        ],
        kinds: &[
            "Cluster",
            "DevCluster",
            "K0smotronControlPlane",
            "MachineDeployment",
            "DevMachineTemplate",
            "K0sWorkerConfigTemplate",
        ],
        unvalidated: &[],
    },
    Template {
        file: "cluster-template-aws.yaml",
        required: &[
            "AWS_AMI_ID",
            "AWS_REGION",
            "AWS_SSH_KEY_NAME",
            "AWS_SUBNET_AZ",
            "AWS_SUBNET_ID",
            "AWS_VPC_ID",
            "KUBERNETES_VERSION",
        ],
        optional: &[
            "AWS_NODE_MACHINE_TYPE",
            "CLUSTER_NAME",
            "CONTROL_PLANE_MACHINE_COUNT",
            "NAMESPACE",
            "POD_CIDR",
            "SERVICE_CIDR",
            "WORKER_MACHINE_COUNT",
        ],
        kinds: &[
            "Cluster",
            "AWSCluster",
            "K0smotronControlPlane",
            "MachineDeployment",
            "AWSMachineTemplate",
            "K0sWorkerConfigTemplate",
        ],
        unvalidated: &["AWSCluster", "AWSMachineTemplate"],
    },
    Template {
        file: "clusterclass-k0smotron.yaml",
        required: &[],
        optional: &[],
        kinds: &[
            "ClusterClass",
            "K0smotronControlPlaneTemplate",
            "DevClusterTemplate",
            "DevMachineTemplate",
            "K0sWorkerConfigTemplate",
        ],
        unvalidated: &[],
    },
    Template {
        file: "cluster-template-topology.yaml",
        required: &["KUBERNETES_VERSION"],
        optional: &[
            "CLUSTER_NAME",
            "CONTROL_PLANE_MACHINE_COUNT",
            "NAMESPACE",
            "POD_CIDR",
            "SERVICE_CIDR",
            "WORKER_MACHINE_COUNT",
        ],
        kinds: &["Cluster"],
        unvalidated: &[],
    },
];

async fn clusterctl(home: &ScratchDir, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = release::clusterctl_env(home.path());
    all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    command::run(&tools::clusterctl().unwrap(), args, all, None)
        .await
        .unwrap()
}

/// The names under "Required Variables:" or "Optional Variables:" in `--list-variables` output.
fn listed(output: &str, heading: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .take_while(|l| l.starts_with("  - "))
        .filter_map(|l| l.trim_start_matches("  - ").split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_template_in_the_directory_is_covered() {
    let mut files: Vec<String> = std::fs::read_dir(tools::templates_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut covered: Vec<&str> = TEMPLATES.iter().map(|t| t.file).collect();
    covered.sort_unstable();
    assert_eq!(files, covered);
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn templates_render_and_pass_a_server_side_dry_run() {
    let ns = TestNamespace::create("templates").await.unwrap();
    let client = ns.client();
    for dir in [
        tools::capi_crd_dir().unwrap(),
        tools::capd_crd_dir().unwrap(),
        tools::provider_crd_dir(),
    ] {
        test_support::apply_crd_dir(&client, &dir).await.unwrap();
    }
    let home = ScratchDir::new("clusterctl-home").unwrap();
    for template in TEMPLATES {
        let path = tools::templates_dir().join(template.file);
        let path = path.to_str().unwrap();
        let base = [
            "generate",
            "cluster",
            "e2e-tpl",
            "--from",
            path,
            "--target-namespace",
            ns.name(),
        ];

        let out = clusterctl(&home, &[&base[..], &["--list-variables"]].concat(), &[])
            .await
            .success()
            .unwrap();
        assert_eq!(
            listed(&out.stdout, "Required Variables:"),
            template.required,
            "{}: required variables\n{}",
            template.file,
            out.stdout
        );
        assert_eq!(
            listed(&out.stdout, "Optional Variables:"),
            template.optional,
            "{}: optional variables\n{}",
            template.file,
            out.stdout
        );

        let out = clusterctl(
            &home,
            &[
                &base[..],
                &[
                    "--kubernetes-version",
                    KUBERNETES_VERSION,
                    "--control-plane-machine-count",
                    "3",
                    "--worker-machine-count",
                    "2",
                ],
            ]
            .concat(),
            &AWS_ENV,
        )
        .await
        .success()
        .unwrap();
        assert!(
            !out.stdout.contains("${"),
            "{}: unsubstituted variable",
            template.file
        );
        let objects = yaml::documents(&out.stdout).unwrap();
        let kinds: Vec<&str> = objects.iter().map(yaml::kind).collect();
        assert_eq!(kinds, template.kinds, "{}", template.file);
        for obj in &objects {
            assert_eq!(
                yaml::namespace(obj),
                Some(ns.name()),
                "{}: {} in the target namespace",
                template.file,
                yaml::describe(obj)
            );
        }
        // The standard variables reach our objects.
        for obj in &objects {
            match yaml::kind(obj) {
                "K0smotronControlPlane" => {
                    assert_eq!(obj["spec"]["replicas"], 3, "{}", template.file);
                    assert_eq!(
                        obj["spec"]["version"],
                        format!("{KUBERNETES_VERSION}+k0s.0"),
                        "{}",
                        template.file
                    );
                }
                "MachineDeployment" => {
                    assert_eq!(obj["spec"]["replicas"], 2, "{}", template.file);
                }
                "Cluster" if !obj["spec"]["topology"].is_null() => {
                    let topology = &obj["spec"]["topology"];
                    assert_eq!(topology["version"], KUBERNETES_VERSION);
                    assert_eq!(topology["controlPlane"]["replicas"], 3);
                    assert_eq!(topology["workers"]["machineDeployments"][0]["replicas"], 2);
                }
                _ => {}
            }
        }

        let report = dry_run::apply(&client, &objects).await.unwrap();
        assert_eq!(
            report.rejected,
            Vec::<String>::new(),
            "{}: rejected by the API server",
            template.file
        );
        let unvalidated: BTreeSet<&str> = report
            .unknown_kind
            .iter()
            .filter_map(|s| s.split_whitespace().nth(1))
            .filter_map(|s| s.split('/').next())
            .collect();
        assert_eq!(
            unvalidated,
            template.unvalidated.iter().copied().collect(),
            "{}: kinds left unvalidated",
            template.file
        );
        assert_eq!(
            report.accepted.len(),
            objects.len() - report.unknown_kind.len(),
            "{}",
            template.file
        );
    }
}

/// Every manifest in `examples/` (and its subfolders) is admitted by a server-side dry run
/// against CAPI's and our CRDs, so an example never shows a field we do not serve. Templates
/// with clusterctl variables (`cluster-local.yaml`) are rendered and applied by the CAPI test.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn examples_pass_a_server_side_dry_run() {
    let ns = TestNamespace::create("examples").await.unwrap();
    let client = ns.client();
    for dir in [tools::capi_crd_dir().unwrap(), tools::provider_crd_dir()] {
        test_support::apply_crd_dir(&client, &dir).await.unwrap();
    }
    let mut checked = Vec::new();
    let mut files = Vec::new();
    let mut dirs = vec![tools::repo_root().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.iter().any(|f| f.ends_with("nats.yaml")), "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if text.contains("${") {
            continue;
        }
        checked.push(file.file_name().unwrap().to_string_lossy().into_owned());
        // Examples name their namespace (`default`); the dry run keeps them in the test's own.
        let objects: Vec<_> = yaml::documents(&text)
            .unwrap()
            .into_iter()
            .map(|mut o| {
                o["metadata"]["namespace"] = ns.name().into();
                o
            })
            .collect();
        let report = dry_run::apply(&client, &objects).await.unwrap();
        assert_eq!(
            (report.rejected, report.unknown_kind),
            (Vec::<String>::new(), Vec::<String>::new()),
            "{}",
            file.display()
        );
        assert_eq!(report.accepted.len(), objects.len(), "{}", file.display());
    }
    eprintln!("examples admitted: {checked:?}");
    assert!(checked.len() >= 3, "{checked:?}");
}
