//! Log set-up: a tracing subscriber filtered by `RUST_LOG` (default `info,kube=warn,kube_client=warn,kube_runtime=warn`) writing
//! text or JSON lines to stderr. Called once by `main`; owns nothing else.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;

/// Filter used when `RUST_LOG` is unset: our logs at info, kube's chatty watcher logs at warn.
pub const DEFAULT_FILTER: &str = "info,kube=warn,kube_client=warn,kube_runtime=warn";

/// Failures of the log set-up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` is set but not a valid filter; refusing it beats silently logging nothing.
    #[error("RUST_LOG={value:?} is not a valid log filter")]
    Filter {
        /// The rejected value.
        value: String,
        /// The parse error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("installing the log subscriber")]
    Init(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber with the filter from `RUST_LOG` and the given format.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let filter = filter(std::env::var(EnvFilter::DEFAULT_ENV).ok().as_deref())?;
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry
            .with(fmt.json().with_current_span(true).with_span_list(false))
            .try_init(),
    }
    .map_err(TelemetryError::Init)
}

/// The filter for a `RUST_LOG` value (`None` or empty: the default).
fn filter(value: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(EnvFilter::new(DEFAULT_FILTER)),
        Some(v) => EnvFilter::try_new(v).map_err(|source| TelemetryError::Filter {
            value: v.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_filter_when_unset_or_empty() {
        // kube's crates log under their own targets (`kube_client`, `kube_runtime`): each needs
        // its own directive, or every failed request is logged at ERROR.
        let want = ["info", "kube=warn", "kube_client=warn", "kube_runtime=warn"];
        for input in [None, Some(" ")] {
            let got = filter(input).unwrap().to_string();
            let mut got: Vec<&str> = got.split(',').collect();
            got.sort_unstable();
            assert_eq!(got, want, "filter for {input:?}");
        }
    }

    #[test]
    fn rust_log_overrides_and_bad_values_are_errors() {
        assert_eq!(filter(Some("debug")).unwrap().to_string(), "debug");
        assert!(matches!(
            filter(Some("kube=notalevel")),
            Err(TelemetryError::Filter { .. })
        ));
    }
}
