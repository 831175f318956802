//! Reading and writing arbitrary objects as the end-to-end tests do: dynamic APIs by apiVersion
//! and kind, server-side apply, conditions, polling with diagnostics, and the join token inside
//! a worker's bootstrap data. These helpers fail the calling test by panicking, with the reason.
#![allow(clippy::panic)]

use std::future::Future;
use std::io::Read as _;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::Value;

use crate::yaml;

/// Field manager of everything the tests apply.
pub const FIELD_MANAGER: &str = "e2e";

/// Poll `probe` every half second until it yields a value; after `timeout`, panic with `what`,
/// the last observation and `diagnose()` (the processes' logs).
pub async fn poll<T, F, Fut>(
    timeout: Duration,
    what: &str,
    diagnose: impl Fn() -> String,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\nlast observed: {last}\n{}",
                diagnose()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The API resource of `kind` in `api_version` (plural: lower-case kind + `s`).
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        &format!("{}s", kind.to_ascii_lowercase()),
    )
}

/// A namespaced dynamic API.
pub fn api(client: &Client, ns: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource(api_version, kind))
}

/// A namespaced CAPI core (`cluster.x-k8s.io/v1beta2`) API.
pub fn capi(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    api(client, ns, "cluster.x-k8s.io/v1beta2", kind)
}

/// Server-side apply of `obj` (any kind, namespaced or not) under [`FIELD_MANAGER`], forced.
pub async fn apply(client: &Client, obj: &Value) {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = yaml::kind(obj);
    let api: Api<DynamicObject> = match yaml::namespace(obj) {
        Some(ns) => api(client, ns, api_version, kind),
        None => Api::all_with(client.clone(), &resource(api_version, kind)),
    };
    if let Err(e) = api
        .patch(
            yaml::name(obj),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
    {
        panic!("applying {}: {e}", yaml::describe(obj));
    }
}

/// `status` of condition `type_` in `obj.status.conditions`.
pub fn condition<'a>(obj: &'a DynamicObject, type_: &str) -> Option<&'a str> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str())
}

/// `obj.status`, pretty-printed, for messages.
pub fn summary(obj: &DynamicObject) -> String {
    serde_json::to_string_pretty(&obj.data["status"]).unwrap_or_default()
}

/// The join token inside a worker's cloud-config: the content of `/etc/k0s.token`,
/// base64(gzip(kubeconfig)), as (bootstrap token, API server URL).
pub fn join_token(user_data: &str) -> Result<(String, String), String> {
    let docs = yaml::documents(user_data).map_err(|e| e.to_string())?;
    let file = docs
        .first()
        .and_then(|d| d["write_files"].as_array())
        .and_then(|files| files.iter().find(|f| f["path"] == "/etc/k0s.token"))
        .ok_or("no /etc/k0s.token file in the cloud-config")?;
    k0s_token(file["content"].as_str().unwrap_or_default())
}

/// The bearer token and server of a k0s join token, base64(gzip(kubeconfig)): the format
/// `k0s worker --token-file` reads, in cloud-configs and JoinTokenRequest Secrets alike.
pub fn k0s_token(encoded: &str) -> Result<(String, String), String> {
    let gz = BASE64_STANDARD
        .decode(encoded.trim())
        .map_err(|e| e.to_string())?;
    let mut kubeconfig = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut kubeconfig)
        .map_err(|e| e.to_string())?;
    let kubeconfig = yaml::documents(&kubeconfig).map_err(|e| e.to_string())?;
    let kubeconfig = kubeconfig.first().ok_or("an empty join token")?;
    let field = |v: &Value| v.as_str().map(str::to_owned);
    Ok((
        field(&kubeconfig["users"][0]["user"]["token"]).ok_or("no token in the join token")?,
        field(&kubeconfig["clusters"][0]["cluster"]["server"]).ok_or("no server")?,
    ))
}

/// A client for `server_url` (trusting `ca_pem`) that authenticates with a bearer `token`.
pub async fn token_client(server_url: &str, ca_pem: &str, token: &str) -> Client {
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: w\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {}\nusers:\n- name: b\n  user:\n    token: {token}\ncontexts:\n- name: w\n  context:\n    cluster: w\n    user: b\ncurrent-context: w\n",
        BASE64_STANDARD.encode(ca_pem)
    );
    match test_support::client_from_kubeconfig_yaml(&kubeconfig).await {
        Ok(client) => client,
        Err(e) => panic!("a client for {server_url}: {e}"),
    }
}

/// Who `client` authenticates as: (user name, groups), from a SelfSubjectReview.
pub async fn whoami(client: &Client) -> Result<(String, Vec<String>), kube::Error> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    let user = review.status.and_then(|s| s.user_info).unwrap_or_default();
    Ok((
        user.username.unwrap_or_default(),
        user.groups.unwrap_or_default(),
    ))
}
