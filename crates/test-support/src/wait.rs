//! Waiting for one object to reach a condition. Owns polling and the timeout message; never
//! writes to the cluster.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use kube::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How often [`wait_for`] looks at the object.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Why a wait ended without the condition holding.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The condition did not hold within the timeout. `last_seen` is the object as last read
    /// (YAML-ish JSON), or why it could not be read.
    #[error(
        "timed out after {timeout:?} waiting for {what} ({kind} {name}); last seen:\n{last_seen}"
    )]
    Timeout {
        /// What the caller waited for, in words.
        what: String,
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// The timeout that expired.
        timeout: Duration,
        /// The last observed state.
        last_seen: String,
    },
}

/// Wait until `condition` holds for object `name` in `api`, reading it every 250 ms, and
/// return the object that satisfied it. A missing object counts as "not yet". On timeout
/// the error carries `what` and the last seen object (pretty JSON) or the last read error.
///
/// ```no_run
/// # async fn f(api: kube::Api<k8s_openapi::api::apps::v1::StatefulSet>) -> Result<(), test_support::WaitError> {
/// use std::time::Duration;
/// test_support::wait_for(&api, "etcd", |s| {
///     s.status.as_ref().and_then(|s| s.ready_replicas) == Some(3)
/// }, Duration::from_secs(60), "3 ready replicas").await?;
/// # Ok(()) }
/// ```
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    condition: impl Fn(&K) -> bool,
    timeout: Duration,
    what: &str,
) -> Result<K, WaitError>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last_seen = match api.get_opt(name).await {
            Ok(Some(obj)) if condition(&obj) => return Ok(obj),
            Ok(Some(obj)) => serde_json::to_string_pretty(&obj)
                .unwrap_or_else(|e| format!("{obj:?} (not serializable: {e})")),
            Ok(None) => String::from("<object does not exist>"),
            Err(e) => format!("<error reading it: {e}>"),
        };
        if Instant::now() >= deadline {
            return Err(WaitError::Timeout {
                what: what.to_owned(),
                kind: K::kind(&Default::default()).into_owned(),
                name: name.to_owned(),
                timeout,
                last_seen,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
