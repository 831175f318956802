//! The helpers themselves against the harness cluster: CRD apply, wait_for's timeout report,
//! namespace cleanup. Needs `cluster up` (CAPD CRDs from `cluster build`).

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use test_support::{TestNamespace, WaitError, apply_crd_dir, client, env_path, wait_for};

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn apply_crd_dir_installs_capd_crds() -> anyhow::Result<()> {
    let client = client().await?;
    let applied = apply_crd_dir(&client, &env_path("CAPD_CRD_DIR")?).await?;
    ensure!(applied.len() >= 6, "only {} CRDs applied", applied.len());
    let crd = Api::<CustomResourceDefinition>::all(client)
        .get("devmachines.infrastructure.cluster.x-k8s.io")
        .await?;
    let established = crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    ensure!(established, "devmachines CRD is not Established");
    Ok(())
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn wait_for_timeout_reports_what_and_last_seen_object() -> anyhow::Result<()> {
    let ns = TestNamespace::create("wait").await?;
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "probe"}, "data": {"marker": "last-seen-value"}
    }))?;
    let api = ns.api::<ConfigMap>();
    api.create(&PostParams::default(), &cm).await?;
    let err = wait_for(
        &api,
        "probe",
        |_| false,
        Duration::from_millis(600),
        "the impossible",
    )
    .await
    .err()
    .context("an impossible condition was met")?;
    let WaitError::Timeout { .. } = &err;
    let message = err.to_string();
    for needle in ["the impossible", "ConfigMap probe", "last-seen-value"] {
        ensure!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn test_namespace_is_deleted_on_drop() -> anyhow::Result<()> {
    let ns = TestNamespace::create("drop").await?;
    let name = ns.name().to_owned();
    let api = Api::<Namespace>::all(ns.client());
    drop(ns);
    // Without a namespace controller it stays Terminating; either way it is being deleted.
    let gone = match api.get_opt(&name).await? {
        None => true,
        Some(n) => n.metadata.deletion_timestamp.is_some(),
    };
    ensure!(gone, "namespace {name} was not deleted");
    Ok(())
}
