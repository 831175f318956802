//! Reconcile metrics (runs, failures by reason, duration) registered in a prometheus-client
//! `Registry`, and the OpenMetrics text rendering `/metrics` serves. Counting only; the HTTP side
//! lives in `server`.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric registered here (`k0smotron_reconcile_total`, ...).
pub const METRIC_PREFIX: &str = "k0smotron";

/// Upper bounds of the reconcile duration buckets, in seconds. Reconciles are mostly API calls:
/// milliseconds when nothing changes, seconds when certificates or RSA keys are generated.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    reason: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Per-controller reconcile metrics. Cheap to clone; clones count into the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    reconciles: Family<ControllerLabels, Counter>,
    failures: Family<ErrorLabels, Counter>,
    unchanged: Family<ControllerLabels, Counter>,
    secret_reads: Family<SourceLabels, Counter>,
    duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
}

impl Metrics {
    /// Registers the reconcile metrics in `registry` under the `k0smotron_` prefix:
    /// `reconcile_total{controller}`, `reconcile_errors_total{controller,reason}` and
    /// `reconcile_duration_seconds{controller}`, `reconcile_unchanged_total{controller}` and
    /// `secret_reads_total{source}`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            failures: Family::default(),
            unchanged: Family::default(),
            secret_reads: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        };
        let sub = registry.sub_registry_with_prefix(METRIC_PREFIX);
        sub.register(
            "reconcile",
            "Reconciliations started, by controller",
            metrics.reconciles.clone(),
        );
        sub.register(
            "reconcile_errors",
            "Reconciliations that failed, by controller and error reason",
            metrics.failures.clone(),
        );
        sub.register(
            "reconcile_unchanged",
            "Reconciliations that found nothing changed since the last full one and only probed again, by controller",
            metrics.unchanged.clone(),
        );
        sub.register(
            "secret_reads",
            "Secrets a reconcile read, by source: `kept` (a body kept since it was last read or written, still at the version the watch shows) or `api` (a GET)",
            metrics.secret_reads.clone(),
        );
        sub.register_with_unit(
            "reconcile_duration",
            "Time a reconciliation took, by controller",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        metrics
    }

    /// Counts a reconcile of `controller` and returns a guard that records its duration when
    /// dropped: `let _timer = metrics.reconcile_started("controlplane");`.
    pub fn reconcile_started(&self, controller: &'static str) -> ReconcileTimer {
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
        ReconcileTimer {
            metrics: self.clone(),
            controller,
            start: Instant::now(),
        }
    }

    /// Counts a reconcile of `controller` that found nothing changed and did no more than probe.
    pub fn reconcile_unchanged(&self, controller: &'static str) {
        self.unchanged
            .get_or_create(&ControllerLabels { controller })
            .inc();
    }

    /// Counts a Secret read by a reconcile: `kept` when its kept body was used, `api` for a GET.
    pub fn secret_read(&self, source: &'static str) {
        self.secret_reads
            .get_or_create(&SourceLabels { source })
            .inc();
    }

    /// Counts a failed reconcile of `controller`; `reason` is the error's stable metric label
    /// (e.g. `Error::metric_label()`), never free text, to keep the series count bounded.
    pub fn reconcile_failed(&self, controller: &'static str, reason: &'static str) {
        self.failures
            .get_or_create(&ErrorLabels { controller, reason })
            .inc();
    }
}

/// Records a reconcile's duration when dropped; see [`Metrics::reconcile_started`].
#[derive(Debug)]
#[must_use = "the duration is recorded when the timer is dropped; bind it to `_timer`"]
pub struct ReconcileTimer {
    metrics: Metrics,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&ControllerLabels {
                controller: self.controller,
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// Renders `registry` in the OpenMetrics text format (what `/metrics` serves).
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_failures_and_durations_show_up_in_the_rendering() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        {
            let _timer = metrics.reconcile_started("controlplane");
            let _timer = metrics.clone().reconcile_started("controlplane");
        }
        metrics.reconcile_failed("controlplane", "apply_statefulset");
        metrics.reconcile_unchanged("controlplane");
        metrics.secret_read("kept");
        metrics.secret_read("kept");

        let text = render(&registry).unwrap();
        assert!(
            text.contains("k0smotron_reconcile_total{controller=\"controlplane\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "k0smotron_reconcile_errors_total{controller=\"controlplane\",reason=\"apply_statefulset\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "k0smotron_reconcile_duration_seconds_count{controller=\"controlplane\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("k0smotron_reconcile_unchanged_total{controller=\"controlplane\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("k0smotron_secret_reads_total{source=\"kept\"} 2"),
            "{text}"
        );
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics needs the EOF marker: {text}"
        );
    }

    #[test]
    fn timer_records_only_when_dropped() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let timer = metrics.reconcile_started("bootstrap");
        let before = render(&registry).unwrap();
        assert!(
            !before
                .contains("k0smotron_reconcile_duration_seconds_count{controller=\"bootstrap\"}"),
            "{before}"
        );
        drop(timer);
        let after = render(&registry).unwrap();
        assert!(
            after
                .contains("k0smotron_reconcile_duration_seconds_count{controller=\"bootstrap\"} 1"),
            "{after}"
        );
    }
}
