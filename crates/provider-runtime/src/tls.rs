//! The metrics endpoint's TLS: its serving certificate (`tls.crt`/`tls.key` from
//! `--metrics-cert-dir`, else a self-signed one made at start) and a listener that hands axum
//! connections whose handshake has finished. Knows nothing about who may read metrics
//! (`metrics_auth` decides that).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// File of the serving certificate chain (PEM) in `--metrics-cert-dir`, as controller-runtime.
pub const CERT_FILE: &str = "tls.crt";
/// File of the serving private key (PEM) in `--metrics-cert-dir`, as controller-runtime.
pub const KEY_FILE: &str = "tls.key";

/// A client that has not finished its handshake by then is dropped, so a slow or silent client
/// cannot hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Failures preparing the serving certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file is missing or not PEM.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The PEM reader's error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("{path} holds no certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The self-signed certificate could not be made.
    #[error("generating the self-signed metrics certificate")]
    Generate(#[source] rcgen::Error),
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("building the metrics TLS configuration")]
    Config(#[source] rustls::Error),
}

/// The TLS configuration of the metrics endpoint: the certificate in `cert_dir` when given, else
/// a fresh self-signed one for `localhost`, the loopback addresses and `$HOSTNAME` (scrapers of
/// a self-signed endpoint skip verification; the bearer token is what authenticates).
pub fn server_config(cert_dir: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = match cert_dir {
        Some(dir) => read_pair(dir)?,
        None => self_signed()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    // HTTP/1.1 only: axum serves HTTP/1 here (no `http2` feature), so offering h2 would make
    // clients that prefer it (Prometheus' Go client) fail after the handshake.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_pair(
    dir: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let read = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Read { path, source }
    };
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(read(&cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read(&cert_path))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key_path = dir.join(KEY_FILE);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(read(&key_path))?;
    Ok((chain, key))
}

fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::env::var("HOSTNAME")
        && !host.is_empty()
        && !names.contains(&host)
    {
        names.push(host);
    }
    let certified = rcgen::generate_simple_self_signed(names).map_err(TlsError::Generate)?;
    let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|e| TlsError::Config(rustls::Error::General(format!("self-signed key: {e}"))))?;
    Ok((vec![certified.cert.der().clone()], key))
}

/// An axum listener yielding TLS connections. Handshakes run in their own tasks, so one slow
/// client does not hold up the others; failed handshakes are dropped (logged at debug).
pub(crate) struct TlsListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener` until `shutdown` fires.
    pub(crate) fn new(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        shutdown: CancellationToken,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(16);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!(error = %err, "accepting a metrics connection");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "metrics TLS handshake")
                        }
                        Err(_) => tracing::debug!(%peer, "metrics TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local_addr,
            accepted,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop stopped (shutdown): axum's graceful shutdown ends the server.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_when_no_directory() {
        let config = server_config(None).unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn reads_tls_crt_and_tls_key_from_the_directory() {
        let dir = std::env::temp_dir().join(format!("metrics-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["metrics".to_owned()]).unwrap();
        std::fs::write(dir.join(CERT_FILE), certified.cert.pem()).unwrap();
        std::fs::write(dir.join(KEY_FILE), certified.signing_key.serialize_pem()).unwrap();
        assert!(server_config(Some(&dir)).is_ok());

        // A key of another certificate is refused at start-up.
        let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()]).unwrap();
        std::fs::write(dir.join(KEY_FILE), other.signing_key.serialize_pem()).unwrap();
        assert!(matches!(
            server_config(Some(&dir)),
            Err(TlsError::Config(_))
        ));

        std::fs::write(dir.join(CERT_FILE), "no pem here").unwrap();
        assert!(matches!(
            server_config(Some(&dir)),
            Err(TlsError::NoCertificate { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            server_config(Some(&dir)),
            Err(TlsError::Read { .. })
        ));
    }
}
