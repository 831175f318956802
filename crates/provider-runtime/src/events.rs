//! Kubernetes Events (events.k8s.io/v1) about our objects, through one shared kube `Recorder`
//! per controller. Callers publish on condition transitions only, never on every reconcile.
//! RBAC: `create` and `patch` on `events.k8s.io/events`.

/// Event severity, re-exported for [`EventPublisher::publish`].
pub use kube::runtime::events::EventType;
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::{Client, Resource};

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

/// Publishes events as one controller. Cheap to clone; clones share the recorder's cache, which
/// folds repeats of the same event into a count.
#[derive(Clone)]
pub struct EventPublisher {
    recorder: Recorder,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher").finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// A publisher reporting as `controller` (e.g. `k0smotron-controlplane`), with the instance
    /// taken from `$POD_NAME`, else the hostname.
    pub fn new(client: Client, controller: &str) -> Self {
        let mut reporter = Reporter::from(controller);
        if let Some(pod) = std::env::var(POD_NAME_ENV).ok().filter(|p| !p.is_empty()) {
            reporter.instance = Some(pod);
        }
        Self {
            recorder: Recorder::new(client, reporter),
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
        let event = build_event(type_, reason, action, note);
        self.recorder
            .publish(&event, &obj.object_ref(&()))
            .await
            .map_err(|source| EventError {
                type_: match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                },
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

/// [`EventType::Warning`] when `warning`, else [`EventType::Normal`].
pub fn severity(warning: bool) -> EventType {
    if warning {
        EventType::Warning
    } else {
        EventType::Normal
    }
}

fn build_event(type_: EventType, reason: &str, action: &str, note: &str) -> Event {
    Event {
        type_,
        reason: reason.to_owned(),
        note: (!note.is_empty()).then(|| crate::truncate_utf8(note, MAX_NOTE_BYTES).to_owned()),
        action: action.to_owned(),
        secondary: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_to_the_api_limit_and_empty_notes_omitted() {
        let event = build_event(EventType::Warning, "Failed", "Reconcile", &"ü".repeat(600));
        let note = event.note.unwrap_or_default();
        assert!(note.len() <= MAX_NOTE_BYTES && note.len() >= MAX_NOTE_BYTES - 1);
        assert!(note.chars().all(|c| c == 'ü'));
        assert_eq!(build_event(EventType::Normal, "R", "A", "").note, None);
    }
}
