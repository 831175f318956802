//! Property tests of the pure pipeline (issue #12): validate → build on arbitrary specs.
//!
//! - validate and build never panic, whatever the spec, the policy and the fetched facts;
//! - build is deterministic: the same facts twice give byte-identical serialised output;
//! - a second reconcile that finds what the first one wrote plans no rollout (no write loop).
//!
//! Cases per property: `PROPTEST_CASES` (proptest's default, 256, in CI). The full run is
//! `make proptest` (docs/security.md, "Property tests"). The schema property is in `tests/schema_properties.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod strategies;

use controlplane_provider::build::{self, StatefulSetPlan};
use controlplane_provider::validate;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use strategies::{Flavour, case, case_named, serialize_desired, spec};

fn config() -> ProptestConfig {
    // `default()` reads PROPTEST_CASES. A failure is saved next to this file
    // (`properties.proptest-regressions`) and replayed first on every later run.
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// validate returns, whatever the spec and the installation's policy.
    #[test]
    fn validate_never_panics(spec in spec(Flavour::Any), host_path: bool, patches: bool, mounts: bool) {
        let policy = validate::FieldPolicy { host_path, patches, mounts, ..validate::FieldPolicy::default() };
        let _ = validate::validate(&spec, &policy);
    }

    /// build returns (Ok or a typed error), and twice on the same facts gives the same bytes;
    /// when it succeeds with every Secret present it generates no key and keeps the kubeconfig.
    #[test]
    fn build_never_panics_and_is_deterministic(case in case(Flavour::Any)) {
        let first = build::build(&case.facts);
        let second = build::build(&case.facts.clone());
        match (&first, &second) {
            (Ok(a), Ok(b)) => {
                prop_assert!(a.create_secrets.is_empty(), "generated keys although every Secret exists");
                prop_assert_eq!(a.kubeconfig_regenerated, None, "regenerated a current kubeconfig");
                prop_assert_eq!(serialize_desired(a), serialize_desired(b));
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(a.to_string(), b.to_string());
                prop_assert_eq!(a.reason(), b.reason());
            }
            _ => prop_assert!(false, "one build succeeded, the other failed: {:?} / {:?}", first.as_ref().err(), second.as_ref().err()),
        }
        // Whatever validate accepts is what build starts from: a spec validate refuses never builds.
        if validate::validate(&case.facts.cp.spec, &case.facts.policy).is_err() {
            prop_assert!(first.is_err());
        }
    }

    /// A reconcile that finds the StatefulSets the previous one applied only scales them: no
    /// rollout, no re-recorded hash, same ConfigMaps and Services. Names are Kubernetes names
    /// here (no `,`: the etcd member count is read back from the `,`-separated initial cluster).
    #[test]
    fn second_reconcile_plans_no_rollout(case in case_named(Flavour::Any, Flavour::Admissible)) {
        let Ok(first) = build::build(&case.facts) else { return Ok(()) };
        let mut facts = case.facts.clone();
        let applied = |plan: &Option<StatefulSetPlan>| match plan {
            Some(StatefulSetPlan::Apply(s)) => Some((**s).clone()),
            _ => None,
        };
        facts.statefulset = applied(&first.statefulset);
        facts.etcd_statefulset = applied(&first.etcd_statefulset);
        let second = build::build(&facts);
        prop_assert!(second.is_ok(), "second build failed: {:?}", second.as_ref().err());
        let second = second.unwrap();
        for (what, plan) in [("k0s", &second.statefulset), ("etcd", &second.etcd_statefulset)] {
            match plan {
                None | Some(StatefulSetPlan::ScaleOnly { record_inputs_hash: None, .. }) => {}
                other => prop_assert!(false, "{} StatefulSet: expected no rollout, got {:?}", what, other.as_ref().map(|p| match p {
                    StatefulSetPlan::Apply(_) => "Apply".to_string(),
                    StatefulSetPlan::Recreate(_) => "Recreate".to_string(),
                    StatefulSetPlan::ScaleOnly { record_inputs_hash, .. } => format!("ScaleOnly recording {record_inputs_hash:?}"),
                })),
            }
        }
        prop_assert_eq!(serde_json::to_string(&first.config_maps).unwrap(), serde_json::to_string(&second.config_maps).unwrap());
        prop_assert_eq!(serde_json::to_string(&first.services).unwrap(), serde_json::to_string(&second.services).unwrap());
    }
}

/// The generators must reach the builder, not only validate's refusals: at least a third of the
/// arbitrary cases must build, or the properties above prove little.
#[test]
fn generated_cases_mostly_build() {
    let mut runner = TestRunner::deterministic();
    let strategy = case(Flavour::Any);
    let total = 200;
    let mut built = 0;
    let mut with_patches = 0;
    let mut refusals = std::collections::BTreeMap::new();
    for _ in 0..total {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        match build::build(&case.facts) {
            Ok(d) => {
                built += 1;
                if !case.facts.cp.spec.patches.is_empty() && d.statefulset.is_some() {
                    with_patches += 1;
                }
            }
            Err(e) => {
                let what: String = e.to_string().chars().take(60).collect();
                *refusals.entry(what).or_insert(0u32) += 1;
            }
        }
    }
    eprintln!("{built} of {total} generated cases build ({with_patches} of them with patches)");
    let mut refusals: Vec<_> = refusals.into_iter().collect();
    refusals.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (what, n) in refusals.iter().take(12) {
        eprintln!("  {n:4} refused: {what}");
    }
    assert!(
        built * 3 >= total,
        "only {built} of {total} generated cases build"
    );
    assert!(with_patches > 0, "no generated case with patches builds");
}
