//! What every step of a reconcile shares: the tunables ([`Settings`], from the command line),
//! the clients and counters ([`Context`]), and the [`Step`] outcome of a step that may wait.

use std::time::Duration;

use kube::Client;
use kube::runtime::controller::Action;
use provider_runtime::Metrics;
use provider_runtime::events::EventPublisher;

/// How long to wait before looking again when waiting on something we do not watch.
pub(super) const RETRY: Duration = Duration::from_secs(30);

/// Tunables of the reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Lifetime of a bootstrap token; it is pushed forward every third of it until the Node
    /// joins.
    pub token_ttl: Duration,
    /// How long after its data Secret was written a token may still be pushed forward; after
    /// that it is left to expire (bounds a MachinePool's token, which no join ever ends).
    pub token_max_lifetime: Duration,
    /// Feature gates (`--feature-gates`).
    pub gates: crate::features::Gates,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_ttl: DEFAULT_TOKEN_TTL,
            token_max_lifetime: DEFAULT_TOKEN_MAX_LIFETIME,
            gates: crate::features::Gates::default(),
        }
    }
}

/// Default `--token-ttl`: 15 minutes, as CAPI's kubeadm bootstrap provider.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Default `--token-max-lifetime`: 7 days. Long enough for a MachinePool to scale over a week
/// without a new config; short enough that a leaked pool token does not stay valid for months.
pub const DEFAULT_TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

impl Settings {
    /// How often a token is checked and refreshed while its Node has not joined.
    pub fn refresh_interval(&self) -> Duration {
        (self.token_ttl / 3).max(Duration::from_secs(5))
    }
}

/// Parses `--token-ttl`: a whole number with an optional unit `s`, `m` or `h` (`900`, `15m`).
/// At least 30 seconds, so a refresh every third of it stays meaningful.
pub fn parse_ttl(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (digits, unit) = match value.char_indices().last() {
        Some((i, c @ ('s' | 'm' | 'h'))) => (&value[..i], c),
        _ => (value, 's'),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {value:?} (want e.g. 900, 900s, 15m or 1h)"))?;
    let secs = match unit {
        'h' => n.saturating_mul(3600),
        'm' => n.saturating_mul(60),
        _ => n,
    };
    if secs < 30 {
        return Err(format!(
            "token TTL {value:?} is too short; the minimum is 30s"
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// What every reconcile shares.
pub(crate) struct Context {
    /// Management-cluster client.
    pub client: Client,
    /// Tunables.
    pub settings: Settings,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// Event publisher.
    pub events: EventPublisher,
    /// Retry delays of configs whose reconcile failed (per config, doubling).
    pub backoff: provider_runtime::backoff::Backoff,
    /// The Machine and Cluster watches' stores.
    pub stores: super::caches::Stores,
    /// One workload client per Cluster.
    pub workloads: super::caches::WorkloadClients,
}

/// The outcome of a step that may have to wait for something: its value, or the action to
/// return meanwhile (the step has already said why in status).
pub(super) enum Step<T> {
    /// The step is done.
    Ready(T),
    /// Something is missing; look again as the action says.
    Wait(Action),
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("900").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_ttl("10s").is_err());
        assert!(parse_ttl("soon").is_err());
        assert_eq!(
            Settings::default().refresh_interval(),
            Duration::from_secs(300)
        );
    }
}
