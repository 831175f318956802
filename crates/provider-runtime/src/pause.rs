//! The pause gate every controller runs first: the CAPI pause rule (owned by
//! `k0smotron_api::capi::is_paused`) recorded as the `Paused` condition the v1beta2 contract asks
//! for, and one `Paused` event when an object becomes paused. What a paused reconcile still
//! writes (its status) is each controller's business; it skips everything else.

use k0smotron_api::capi::{self, Cluster};
use k0smotron_api::conditions::{NOT_PAUSED_REASON, PAUSED, PAUSED_REASON};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

use crate::conditions::{ConditionStatus, set_condition};
use crate::events::{EventPublisher, EventType};

/// The outcome of [`set_paused_condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paused {
    /// Reconciliation is paused: skip everything but status.
    pub paused: bool,
    /// The `Paused` condition changed (write status; emit an event if you emit one).
    pub changed: bool,
}

/// Evaluates the pause rule for an object (`meta`) belonging to `cluster` and sets its `Paused`
/// condition: True with reason `Paused` and a message naming the cause, or False with reason
/// `NotPaused`.
pub fn set_paused_condition(
    conditions: &mut Vec<Condition>,
    cluster: Option<&Cluster>,
    meta: &ObjectMeta,
    observed_generation: Option<i64>,
    now: Time,
) -> Paused {
    let paused = capi::is_paused(cluster, meta);
    let (reason, message) = if !paused {
        (NOT_PAUSED_REASON, "")
    } else if cluster.is_some_and(Cluster::spec_paused) {
        (PAUSED_REASON, "Cluster spec.paused is set to true")
    } else {
        (
            PAUSED_REASON,
            "Object has the cluster.x-k8s.io/paused annotation",
        )
    };
    let changed = set_condition(
        conditions,
        PAUSED,
        ConditionStatus::from(paused),
        reason,
        message,
        observed_generation,
        now,
    );
    Paused { paused, changed }
}

/// [`set_paused_condition`] for `obj`, and a `Paused` event when it has just become paused.
/// The caller writes status when `changed` and returns at once when `paused`.
pub async fn gate<K>(
    events: &EventPublisher,
    obj: &K,
    conditions: &mut Vec<Condition>,
    cluster: Option<&Cluster>,
    now: Time,
) -> Paused
where
    K: kube::Resource<DynamicType = ()>,
{
    let meta = obj.meta();
    let paused = set_paused_condition(conditions, cluster, meta, meta.generation, now);
    if paused.paused && paused.changed {
        let message = crate::conditions::get(conditions, PAUSED)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        events
            .report(obj, EventType::Normal, PAUSED_REASON, &message)
            .await;
    }
    paused
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conditions::get;
    use k0smotron_api::names::PAUSED_ANNOTATION;

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_000).unwrap())
    }

    #[test]
    fn annotation_pauses_and_removal_unpauses() {
        let mut conds = Vec::new();
        let annotated = ObjectMeta {
            annotations: Some([(PAUSED_ANNOTATION.to_owned(), String::new())].into()),
            ..ObjectMeta::default()
        };
        let p = set_paused_condition(&mut conds, None, &annotated, Some(3), now());
        assert_eq!(
            p,
            Paused {
                paused: true,
                changed: true
            }
        );
        let c = get(&conds, PAUSED).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Paused"));
        assert!(c.message.contains("annotation"), "{}", c.message);

        let again = set_paused_condition(&mut conds, None, &annotated, Some(3), now());
        assert_eq!(
            again,
            Paused {
                paused: true,
                changed: false
            }
        );

        let p = set_paused_condition(&mut conds, None, &ObjectMeta::default(), Some(3), now());
        assert_eq!(
            p,
            Paused {
                paused: false,
                changed: true
            }
        );
        let c = get(&conds, PAUSED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "NotPaused")
        );
    }

    #[test]
    fn paused_cluster_is_named_in_the_message() {
        let mut cluster = Cluster::new("c", Default::default());
        cluster.spec.paused = Some(true);
        let mut conds = Vec::new();
        let p = set_paused_condition(
            &mut conds,
            Some(&cluster),
            &ObjectMeta::default(),
            None,
            now(),
        );
        assert!(p.paused);
        assert!(get(&conds, PAUSED).unwrap().message.contains("spec.paused"));
    }
}
