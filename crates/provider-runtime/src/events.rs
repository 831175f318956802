//! Kubernetes Events (events.k8s.io/v1) about our objects, one create each (no cache; see
//! [`EventPublisher`]). Callers publish on condition transitions only, never on every reconcile.
//! RBAC: `create` on `events.k8s.io/events`.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
/// Event severity, re-exported for [`EventPublisher::publish`].
pub use kube::runtime::events::EventType;
use kube::{Api, Client, Resource};

use crate::cli::POD_NAME_ENV;

/// events.k8s.io/v1 rejects a note longer than 1 KiB.
const MAX_NOTE_BYTES: usize = 1024;

/// Failure to publish an event.
#[derive(Debug, thiserror::Error)]
#[error("publishing {type_:?} event {reason:?}")]
pub struct EventError {
    type_: &'static str,
    reason: String,
    #[source]
    source: Box<kube::Error>,
}

/// Publishes events as one controller. Cheap to clone.
///
/// NB: kube's `Recorder` keeps every event it published for six minutes, to fold repeats into a
/// series, and walks that whole cache on every publish. We publish only on condition
/// transitions, so there is little to fold, and at a thousand control planes the cache was
/// megabytes held after every burst and a walk of thousands of entries per event. Each event
/// here is one create and nothing is kept.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// A publisher reporting as `controller` (e.g. `k0smotron-controlplane`), with the instance
    /// taken from `$POD_NAME`, else the controller's name.
    pub fn new(client: Client, controller: &str) -> Self {
        let instance = std::env::var(POD_NAME_ENV)
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| controller.to_owned());
        Self {
            client,
            controller: controller.to_owned(),
            instance,
        }
    }

    /// Publishes an event of `type_` about `obj`. `reason` is UpperCamelCase
    /// (`CertificatesGenerated`), `action` what we did (`Reconcile`), `note` the human-readable
    /// detail (cut to 1 KiB; empty for none).
    pub async fn publish<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), EventError>
    where
        K: Resource<DynamicType = ()>,
    {
        let regarding = obj.object_ref(&());
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let event = build_event(
            Reporting {
                controller: &self.controller,
                instance: &self.instance,
            },
            regarding,
            (type_, reason, action, note),
            jiff::Timestamp::now(),
        );
        Api::<Event>::namespaced(self.client.clone(), &ns)
            .create(&PostParams::default(), &event)
            .await
            .map(|_| ())
            .map_err(|source| EventError {
                type_: type_name(type_),
                reason: reason.to_owned(),
                source: Box::new(source),
            })
    }

    /// Publishes like [`Self::publish`] and logs a failure instead of returning it: an event is
    /// news for people, never a reason to fail a reconcile. The one way every controller
    /// publishes.
    pub async fn report<K>(&self, obj: &K, type_: EventType, reason: &str, note: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        if let Err(err) = self.publish(obj, type_, reason, "Reconcile", note).await {
            tracing::warn!(error = %crate::reconcile::error_chain(&err), "publishing an event failed");
        }
    }
}

/// Who reports an event.
struct Reporting<'a> {
    controller: &'a str,
    instance: &'a str,
}

/// The event `(type, reason, action, note)` about `regarding` at `now`.
fn build_event(
    by: Reporting<'_>,
    regarding: ObjectReference,
    (type_, reason, action, note): (EventType, &str, &str, &str),
    now: jiff::Timestamp,
) -> Event {
    // Named as client-go names them: the object's name and the time in hex nanoseconds.
    let name = format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or(by.controller),
        now.as_nanosecond()
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        action: Some(action.to_owned()),
        reason: Some(reason.to_owned()),
        note: (!note.is_empty()).then(|| crate::truncate_utf8(note, MAX_NOTE_BYTES).to_owned()),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding),
        reporting_controller: Some(by.controller.to_owned()),
        reporting_instance: Some(by.instance.to_owned()),
        type_: Some(type_name(type_).to_owned()),
        ..Event::default()
    }
}

fn type_name(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// [`EventType::Warning`] when `warning`, else [`EventType::Normal`].
pub fn severity(warning: bool) -> EventType {
    if warning {
        EventType::Warning
    } else {
        EventType::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(type_: EventType, note: &str) -> Event {
        let regarding = ObjectReference {
            name: Some("demo".into()),
            namespace: Some("ns".into()),
            kind: Some("K0smotronControlPlane".into()),
            ..ObjectReference::default()
        };
        let by = Reporting {
            controller: "k0smotron-controlplane",
            instance: "pod-0",
        };
        let now = jiff::Timestamp::from_second(1_000).unwrap_or_default();
        build_event(by, regarding, (type_, "Failed", "Reconcile", note), now)
    }

    #[test]
    fn notes_are_cut_to_the_api_limit_and_empty_notes_omitted() {
        let e = event(EventType::Warning, &"ü".repeat(600));
        let note = e.note.unwrap_or_default();
        assert!(note.len() <= MAX_NOTE_BYTES && note.len() >= MAX_NOTE_BYTES - 1);
        assert!(note.chars().all(|c| c == 'ü'));
        assert_eq!(event(EventType::Normal, "").note, None);
    }

    #[test]
    fn an_event_names_its_object_reporter_and_time() {
        let e = event(EventType::Warning, "n");
        assert_eq!(e.metadata.name.as_deref(), Some("demo.e8d4a51000"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some("k0smotron-controlplane")
        );
        assert_eq!(e.reporting_instance.as_deref(), Some("pod-0"));
        assert_eq!(e.regarding.and_then(|r| r.name).as_deref(), Some("demo"));
        assert!(e.series.is_none());
    }
}
