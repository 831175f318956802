//! Minimal HTTP/1.0 over TLS for tests. [`https_get`] is for the secure metrics endpoint: the
//! certificate is not verified (the endpoint's is self-signed by default; the tests are about the
//! bearer token, not about the certificate). [`https_post_mtls`] verifies the server against a
//! given CA and presents a client certificate (an etcd member and a client of it). Never use
//! these outside tests.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Body (the request is HTTP/1.0, so it comes unchunked).
    pub body: String,
}

/// `GET path` over TLS to `addr`, with `Authorization: Bearer <token>` when a token is given.
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<HttpResponse> {
    let provider = Arc::new(ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    // HTTP/1.0: the server answers with an unchunked body and closes.
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n");
    exchange(config, addr, "localhost", &request).await
}

/// A client certificate and its key, both PEM.
#[derive(Clone, Copy)]
pub struct ClientIdentity<'a> {
    /// PEM certificate.
    pub cert_pem: &'a str,
    /// PEM private key (PKCS#1 or PKCS#8).
    pub key_pem: &'a str,
}

/// `POST path` with a JSON `body` over TLS to `addr`: the server must present a certificate for
/// `server_name` signed by `ca_pem`; `client` is presented when given. A server that requires a
/// client certificate fails the exchange without one (an error, not a status).
pub async fn https_post_mtls(
    addr: SocketAddr,
    server_name: &str,
    ca_pem: &str,
    client: Option<ClientIdentity<'_>>,
    path: &str,
    body: &str,
) -> std::io::Result<HttpResponse> {
    let provider = Arc::new(ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots);
    let config = match client {
        Some(id) => {
            let chain = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(std::io::Error::other)?;
            let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())
                .map_err(std::io::Error::other)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(std::io::Error::other)?
        }
        None => builder.with_no_client_auth(),
    };
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {server_name}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(config, addr, server_name, &request).await
}

/// Sends `request` over TLS and reads the whole response.
async fn exchange(
    config: ClientConfig,
    addr: SocketAddr,
    server_name: &str,
    request: &str,
) -> std::io::Result<HttpResponse> {
    let stream = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(std::io::Error::other)?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await?;
    tls.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    // A server closing without close_notify is not an error for this purpose.
    if let Err(err) = tls.read_to_end(&mut raw).await
        && err.kind() != std::io::ErrorKind::UnexpectedEof
    {
        return Err(err);
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(HttpResponse { status, body })
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
