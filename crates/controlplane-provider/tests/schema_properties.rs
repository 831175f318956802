//! The schema property of issue #12, against the real API server of `test/harness`: for a sample
//! of generated control planes that the API server admits, every object build emits is admitted
//! too (server-side apply with `dryRun=All`, as the apply step sends it, into a test namespace).
//!
//! Run: `eval "$(test/harness/cluster up)"`, then
//! `cargo test -p controlplane-provider --test schema_properties -- --include-ignored`.
//! Sample size: `PROP_SCHEMA_CASES` (200 by default).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod strategies;

use std::fmt::Debug;
use std::path::PathBuf;

use controlplane_provider::build::{self, DesiredState, StatefulSetPlan};
use k0smotron_api::controlplane::v1beta2::K0smotronControlPlane;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde::Serialize;
use serde::de::DeserializeOwned;
use strategies::{Flavour, case_in};
use test_support::TestNamespace;

const FIELD_MANAGER: &str = "prop-schema";

/// Server-side applies `obj` in `namespace` with `dryRun=All`; the API server's refusal, if any.
async fn dry_run_apply<K>(client: &Client, namespace: &str, obj: &K) -> Option<String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = obj.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    match api.patch(&name, &params, &Patch::Apply(obj)).await {
        Ok(_) => None,
        Err(e) => Some(format!("{} {name}: {e}", K::kind(&()))),
    }
}

/// Every object a desired state writes, dry-run applied; the refusals.
async fn refusals(client: &Client, namespace: &str, d: &DesiredState) -> (usize, Vec<String>) {
    let mut out = Vec::new();
    let mut checked = 0;
    for s in d
        .create_secrets
        .iter()
        .chain(&d.renew_secrets)
        .chain(&d.kubeconfig)
    {
        checked += 1;
        out.extend(dry_run_apply(client, namespace, s).await);
    }
    for cm in &d.config_maps {
        checked += 1;
        out.extend(dry_run_apply(client, namespace, cm).await);
    }
    for svc in &d.services {
        checked += 1;
        out.extend(dry_run_apply(client, namespace, svc).await);
    }
    for plan in [&d.statefulset, &d.etcd_statefulset] {
        if let Some(StatefulSetPlan::Apply(sts) | StatefulSetPlan::Recreate(sts)) = plan {
            checked += 1;
            out.extend(dry_run_apply(client, namespace, sts.as_ref()).await);
        }
    }
    for job in &d.cron_jobs {
        checked += 1;
        out.extend(dry_run_apply(client, namespace, job).await);
    }
    (checked, out)
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn everything_build_emits_for_an_admitted_spec_is_admitted() {
    let total: usize = std::env::var("PROP_SCHEMA_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let client = test_support::client().await.unwrap();
    test_support::apply_crd_dir(
        &client,
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/crd/bases"),
    )
    .await
    .unwrap();
    let ns = TestNamespace::create("prop-schema").await.unwrap();
    let kcps: Api<K0smotronControlPlane> = Api::namespaced(client.clone(), ns.name());

    let mut runner = TestRunner::deterministic();
    let strategy = case_in(
        Flavour::Admissible,
        Flavour::Admissible,
        ns.name().to_string(),
    );
    let (mut built, mut objects, mut kcp_refused, mut build_refused) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    let mut tries = 0;
    while built < total {
        tries += 1;
        assert!(
            tries < total * 20,
            "only {built} of {tries} generated control planes build"
        );
        let case = strategy.new_tree(&mut runner).unwrap().current();
        // Only specs the API server admits for the control plane itself count.
        let mut kcp = case.kcp.clone();
        kcp.metadata.uid = None;
        kcp.metadata.generation = None;
        kcp.status = None;
        if let Err(e) = kcps
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &kcp,
            )
            .await
        {
            kcp_refused += 1;
            if kcp_refused <= 3 {
                eprintln!("K0smotronControlPlane refused (skipped): {e}");
            }
            continue;
        }
        let desired = match build::build(&case.facts) {
            Ok(d) => d,
            Err(e) => {
                build_refused += 1;
                if build_refused <= 3 {
                    eprintln!("build refused (skipped): {e}");
                }
                continue;
            }
        };
        built += 1;
        let (checked, refused) = refusals(&client, ns.name(), &desired).await;
        objects += checked;
        for r in &refused {
            eprintln!("refused: {r}");
        }
        if !refused.is_empty() {
            failures.push(format!("{case:#?}\n{}", refused.join("\n")));
        }
    }
    eprintln!(
        "{built} admitted control planes built: {objects} objects dry-run applied, {} cases with refusals; skipped {kcp_refused} specs the API server refused and {build_refused} that build refused",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {built} cases emitted objects the API server refuses; first:\n{}",
        failures.len(),
        failures[0]
    );
}
