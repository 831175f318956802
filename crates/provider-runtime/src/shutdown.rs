//! The process's one shutdown signal: a `CancellationToken` cancelled on the first SIGTERM or
//! SIGINT, handed to every controller (`Controller::graceful_shutdown_on`), the leader elector and
//! the HTTP server. Owns signal handling only.

use tokio_util::sync::CancellationToken;

/// Exit code after a second signal (128 + SIGINT, as shells report an interrupted program).
const FORCED_EXIT_CODE: i32 = 130;

/// Failure to install the signal handlers.
#[derive(Debug, thiserror::Error)]
#[error("installing the {signal} handler")]
pub struct ShutdownError {
    signal: &'static str,
    #[source]
    source: std::io::Error,
}

/// Installs SIGTERM and SIGINT handlers and returns the token they cancel. Must be called inside
/// the tokio runtime.
///
/// The first signal cancels the token so everything drains gracefully; a second one exits the
/// process at once (status 130), for an operator who does not want to wait.
pub fn on_signals() -> Result<CancellationToken, ShutdownError> {
    let token = CancellationToken::new();
    let mut signals = Signals::install()?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let first = signals.next().await;
        tracing::info!(
            signal = first,
            "shutting down; a second signal exits immediately"
        );
        cancel.cancel();
        let second = signals.next().await;
        tracing::warn!(signal = second, "second signal, exiting without draining");
        std::process::exit(FORCED_EXIT_CODE);
    });
    Ok(token)
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Result<Self, ShutdownError> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).map_err(|source| ShutdownError {
            signal: "SIGTERM",
            source,
        })?;
        let int = signal(SignalKind::interrupt()).map_err(|source| ShutdownError {
            signal: "SIGINT",
            source,
        })?;
        Ok(Self { term, int })
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Result<Self, ShutdownError> {
        Ok(Self)
    }

    async fn next(&mut self) -> &'static str {
        // Without unix signals only Ctrl-C is available; an error means no handler can be
        // installed, and then nothing will ever arrive.
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}
