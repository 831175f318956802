//! Server-side apply and events against the real API server of `test/harness`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, ObjectMeta};
use kube::{Api, ResourceExt};
use provider_runtime::apply::{AppliedMemo, apply, controller_owner_ref};
use provider_runtime::events::{EventPublisher, EventType};
use test_support::TestNamespace;

fn config_map(ns: &str, name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..ConfigMap::default()
    }
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn apply_owns_its_fields_and_ignores_stale_metadata() {
    let namespace = TestNamespace::create("pr-apply").await.unwrap();
    let api: Api<ConfigMap> = namespace.api();
    let ns = namespace.name();

    let owner = apply(&api, &config_map(ns, "owner", &[("a", "1")]), "test/owner")
        .await
        .unwrap();
    let mut child = config_map(ns, "child", &[("k", "v1"), ("extra", "x")]);
    child.metadata.owner_references = Some(vec![controller_owner_ref(&owner).unwrap()]);
    let first = apply(&api, &child, "test/child").await.unwrap();

    // Re-applying an object carrying server metadata (a stale resourceVersion, managedFields)
    // must still succeed: the helper strips both.
    let mut stale = first.clone();
    stale.metadata.resource_version = Some("1".into());
    stale.data = Some([("k".to_owned(), "v2".to_owned())].into());
    let second = apply(&api, &stale, "test/child").await.unwrap();
    let data = second.data.clone().unwrap_or_default();
    assert_eq!(data.get("k").map(String::as_str), Some("v2"));
    // A field this manager owned and left out is removed (what SSA with one manager per site
    // relies on).
    assert_eq!(data.get("extra"), None);

    let refs = second.owner_references();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].uid, owner.uid().unwrap());
    assert_eq!(refs[0].controller, Some(true));
    assert_eq!(refs[0].block_owner_deletion, Some(true));

    // Another manager's apply of the same field is forced through (we own what we send).
    let forced = apply(
        &api,
        &config_map(ns, "child", &[("k", "other")]),
        "test/other",
    )
    .await
    .unwrap();
    assert_eq!(
        forced.data.unwrap_or_default().get("k").map(String::as_str),
        Some("other")
    );
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn memo_skips_only_writes_that_would_change_nothing() {
    let namespace = TestNamespace::create("pr-memo").await.unwrap();
    let api: Api<ConfigMap> = namespace.api();
    let ns = namespace.name();
    let memo = AppliedMemo::default();
    let live = |api: Api<ConfigMap>| async move {
        api.get_opt("cm")
            .await
            .unwrap()
            .and_then(|c| c.metadata.resource_version)
    };
    let desired = config_map(ns, "cm", &[("k", "v1")]);

    // Absent: written. As we left it: skipped, and nothing changes on the server.
    assert!(memo.apply(&api, &desired, "test/memo", None).await.unwrap());
    let version = live(api.clone()).await;
    assert!(
        !memo
            .apply(&api, &desired, "test/memo", version.as_deref())
            .await
            .unwrap()
    );
    assert_eq!(live(api.clone()).await, version);

    // Another writer changed it: written again, our value restored.
    apply(
        &api,
        &config_map(ns, "cm", &[("k", "theirs")]),
        "test/other",
    )
    .await
    .unwrap();
    let theirs = live(api.clone()).await;
    assert_ne!(theirs, version);
    assert!(
        memo.apply(&api, &desired, "test/memo", theirs.as_deref())
            .await
            .unwrap()
    );
    let data = api.get("cm").await.unwrap().data.unwrap_or_default();
    assert_eq!(data.get("k").map(String::as_str), Some("v1"));

    // A new desired body: written.
    let now = live(api.clone()).await;
    let changed = config_map(ns, "cm", &[("k", "v2")]);
    assert!(
        memo.apply(&api, &changed, "test/memo", now.as_deref())
            .await
            .unwrap()
    );
    // A fresh memo (a restarted process) knows nothing: written once, then skipped.
    let fresh = AppliedMemo::default();
    let now = live(api.clone()).await;
    assert!(
        fresh
            .apply(&api, &changed, "test/memo", now.as_deref())
            .await
            .unwrap()
    );
    let now = live(api.clone()).await;
    assert!(
        !fresh
            .apply(&api, &changed, "test/memo", now.as_deref())
            .await
            .unwrap()
    );
    assert_eq!(fresh.len(), 1);
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn events_are_published_about_the_object() {
    let namespace = TestNamespace::create("pr-events").await.unwrap();
    let api: Api<ConfigMap> = namespace.api();
    let cm = apply(&api, &config_map(namespace.name(), "subject", &[]), "test")
        .await
        .unwrap();

    let publisher = EventPublisher::new(namespace.client(), "provider-runtime-test");
    publisher
        .publish(
            &cm,
            EventType::Warning,
            "SomethingFailed",
            "Reconcile",
            "it broke",
        )
        .await
        .unwrap();

    let events: Api<Event> = namespace.api();
    let list = events.list(&ListParams::default()).await.unwrap();
    let event = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("SomethingFailed"))
        .expect("the event was not recorded");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.note.as_deref(), Some("it broke"));
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("provider-runtime-test")
    );
    let regarding = event.regarding.as_ref().unwrap();
    assert_eq!(regarding.name.as_deref(), Some("subject"));
    assert_eq!(regarding.uid, cm.uid());
}
