//! Helpers for a `metav1.Condition` list keyed by `type`: set one (keeping `lastTransitionTime`
//! unless the status flips), read one. Pure list manipulation; writing the status is the
//! caller's job.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The API server rejects a condition message longer than this many bytes.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// The status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"`.
    Unknown,
}

impl ConditionStatus {
    /// The string the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

/// Sets the condition of type `type_` in `conditions`, adding it if absent.
///
/// `lastTransitionTime` becomes `now` only when the condition is new or its status changes;
/// a changed reason, message or generation alone keeps the old time. Messages longer than the
/// API allows are cut (at a character boundary). Returns whether anything changed, so callers
/// write status and emit events only then.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) -> bool {
    let message = crate::truncate_utf8(message, MAX_MESSAGE_BYTES);
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) else {
        conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.as_str().to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation,
            last_transition_time: now,
        });
        return true;
    };
    let status_changed = existing.status != status.as_str();
    let changed = status_changed
        || existing.reason != reason
        || existing.message != message
        || existing.observed_generation != observed_generation;
    if status_changed {
        existing.status = status.as_str().to_owned();
        existing.last_transition_time = now;
    }
    if changed {
        existing.reason = reason.to_owned();
        existing.message = message.to_owned();
        existing.observed_generation = observed_generation;
    }
    changed
}

/// The condition of type `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present with status `"True"`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True.as_str())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn new_condition_is_added_with_now() {
        let mut conds = Vec::new();
        assert!(set_condition(
            &mut conds,
            "Available",
            ConditionStatus::False,
            "NotAvailable",
            "waiting",
            Some(1),
            at(100)
        ));
        assert_eq!(conds.len(), 1);
        let c = get(&conds, "Available").unwrap();
        assert_eq!(c.status, "False");
        assert_eq!(c.last_transition_time, at(100));
        assert_eq!(c.observed_generation, Some(1));
        assert!(!is_true(&conds, "Available"));
        assert!(!is_true(&conds, "Missing"));
    }

    #[test]
    fn same_values_change_nothing() {
        let mut conds = Vec::new();
        set_condition(
            &mut conds,
            "Ready",
            true.into(),
            "Ready",
            "",
            Some(2),
            at(100),
        );
        let before = conds.clone();
        assert!(!set_condition(
            &mut conds,
            "Ready",
            true.into(),
            "Ready",
            "",
            Some(2),
            at(200)
        ));
        assert_eq!(conds, before);
    }

    #[test]
    fn reason_message_or_generation_change_keeps_transition_time() {
        let mut conds = Vec::new();
        set_condition(
            &mut conds,
            "Ready",
            ConditionStatus::False,
            "A",
            "a",
            Some(1),
            at(100),
        );
        assert!(set_condition(
            &mut conds,
            "Ready",
            ConditionStatus::False,
            "B",
            "b",
            Some(2),
            at(200)
        ));
        let c = get(&conds, "Ready").unwrap();
        assert_eq!(
            (c.reason.as_str(), c.message.as_str(), c.observed_generation),
            ("B", "b", Some(2))
        );
        assert_eq!(c.last_transition_time, at(100));
    }

    #[test]
    fn status_change_moves_transition_time() {
        let mut conds = Vec::new();
        set_condition(
            &mut conds,
            "Ready",
            ConditionStatus::Unknown,
            "X",
            "",
            None,
            at(100),
        );
        set_condition(
            &mut conds,
            "Other",
            ConditionStatus::True,
            "Y",
            "",
            None,
            at(100),
        );
        assert!(set_condition(
            &mut conds,
            "Ready",
            ConditionStatus::True,
            "X",
            "",
            None,
            at(300)
        ));
        assert_eq!(get(&conds, "Ready").unwrap().last_transition_time, at(300));
        assert!(is_true(&conds, "Ready"));
        // Only the condition of that type is touched, and order is kept.
        assert_eq!(get(&conds, "Other").unwrap().last_transition_time, at(100));
        let types: Vec<&str> = conds.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Other"]);
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let mut conds = Vec::new();
        let long = "é".repeat(MAX_MESSAGE_BYTES); // two bytes each
        set_condition(
            &mut conds,
            "Ready",
            ConditionStatus::False,
            "R",
            &long,
            None,
            at(1),
        );
        let message = &get(&conds, "Ready").unwrap().message;
        assert_eq!(message.len(), MAX_MESSAGE_BYTES);
        // Setting the same long message again is not a change.
        assert!(!set_condition(
            &mut conds,
            "Ready",
            ConditionStatus::False,
            "R",
            &long,
            None,
            at(2)
        ));
        assert_eq!(crate::truncate_utf8("aé", 2), "a");
    }
}
