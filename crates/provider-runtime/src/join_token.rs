//! The k0s join token: base64(gzip(kubeconfig YAML)), the format `k0s install worker
//! --token-file` (and `k0s controller --token-file`) reads, with the cluster CA, the API URL and
//! the `kubelet-bootstrap` (`controller-bootstrap`) user.
//!
//! Pure encoding and decoding; it never creates the bootstrap token it embeds.

use std::io::{Read as _, Write as _};

use base64::{Engine as _, prelude::BASE64_STANDARD};
use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use k0smotron_api::yaml::YamlError;
use serde::{Deserialize, Serialize};

use crate::token::{BootstrapToken, TokenError};

/// Name of the cluster and the context in the embedded kubeconfig, as k0s names them.
pub const KUBECONFIG_NAME: &str = "k0s";
/// User name k0s reads to recognise a worker token.
pub const WORKER_USER: &str = "kubelet-bootstrap";
/// User name k0s reads to recognise a controller token.
pub const CONTROLLER_USER: &str = "controller-bootstrap";

/// Errors encoding or decoding a join token.
#[derive(Debug, thiserror::Error)]
pub enum JoinTokenError {
    /// The kubeconfig could not be serialised.
    #[error("serialising the join-token kubeconfig")]
    Serialize(#[source] serde_saphyr::ser::Error),
    /// gzip failed (only on I/O errors of the in-memory buffer).
    #[error("compressing the join token")]
    Compress(#[source] std::io::Error),
    /// The token is not base64 (the decoder's error is dropped: it names an offending byte of
    /// the token).
    #[error("join token is not base64")]
    Base64,
    /// The token is not gzip, or the kubeconfig inside is not UTF-8.
    #[error("join token is not a gzip-compressed kubeconfig")]
    Decompress(#[source] std::io::Error),
    /// The decompressed content is not a kubeconfig.
    #[error("join token does not contain a kubeconfig")]
    Parse(#[source] YamlError),
    /// The kubeconfig lacks the `kubelet-bootstrap` user or its token.
    #[error("join token kubeconfig has no {WORKER_USER} token")]
    MissingUser,
    /// The embedded bearer token is malformed.
    #[error("join token carries a malformed bootstrap token")]
    Token(#[source] TokenError),
}

/// `https://<host>:<port>`, bracketing IPv6 literals (upstream's `%s:%d` does not).
pub fn api_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// The kubeconfig inside a join token. Field names and order follow client-go's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JoinKubeconfig {
    /// Always `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// The one cluster, `k0s`.
    pub clusters: Vec<NamedCluster>,
    /// The one context, `k0s`.
    pub contexts: Vec<NamedContext>,
    /// Always `k0s`.
    pub current_context: String,
    /// Always `Config`.
    pub kind: String,
    /// The one user, `kubelet-bootstrap`.
    pub users: Vec<NamedUser>,
}

/// A named cluster entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    /// Cluster details.
    pub cluster: ClusterEntry,
    /// Entry name.
    pub name: String,
}

/// Where the API server is and which CA signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterEntry {
    /// base64 of the CA certificate PEM.
    pub certificate_authority_data: String,
    /// `https://host:port`.
    pub server: String,
}

/// A named context entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    /// Context details.
    pub context: ContextEntry,
    /// Entry name.
    pub name: String,
}

/// A cluster/user pairing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEntry {
    /// Cluster entry name.
    pub cluster: String,
    /// User entry name.
    pub user: String,
}

/// A named user entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    /// Entry name.
    pub name: String,
    /// Credentials.
    pub user: UserEntry,
}

/// Bearer-token credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// `<id>.<secret>`.
    pub token: String,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("token", &"<redacted>")
            .finish()
    }
}

impl JoinKubeconfig {
    /// The worker join kubeconfig for `server`, trusting `ca_pem`, authenticating with `token`.
    pub fn worker(server: &str, ca_pem: &[u8], token: &BootstrapToken) -> Self {
        Self::for_user(server, ca_pem, WORKER_USER, token)
    }

    /// The join kubeconfig of `user` ([`WORKER_USER`] or [`CONTROLLER_USER`]).
    pub fn for_user(server: &str, ca_pem: &[u8], user: &str, token: &BootstrapToken) -> Self {
        Self {
            api_version: "v1".to_string(),
            clusters: vec![NamedCluster {
                cluster: ClusterEntry {
                    certificate_authority_data: BASE64_STANDARD.encode(ca_pem),
                    server: server.to_string(),
                },
                name: KUBECONFIG_NAME.to_string(),
            }],
            contexts: vec![NamedContext {
                context: ContextEntry {
                    cluster: KUBECONFIG_NAME.to_string(),
                    user: user.to_string(),
                },
                name: KUBECONFIG_NAME.to_string(),
            }],
            current_context: KUBECONFIG_NAME.to_string(),
            kind: "Config".to_string(),
            users: vec![NamedUser {
                name: user.to_string(),
                user: UserEntry {
                    token: token.bearer(),
                },
            }],
        }
    }

    /// The bootstrap token of the `kubelet-bootstrap` user.
    pub fn worker_token(&self) -> Result<BootstrapToken, JoinTokenError> {
        let user = self
            .users
            .iter()
            .find(|u| u.name == WORKER_USER)
            .ok_or(JoinTokenError::MissingUser)?;
        BootstrapToken::parse(&user.user.token).map_err(JoinTokenError::Token)
    }
}

/// Encodes a worker join token exactly as k0s does: base64 (standard alphabet, padded) of the
/// gzip (best compression) of the kubeconfig YAML.
pub fn encode(
    server: &str,
    ca_pem: &[u8],
    token: &BootstrapToken,
) -> Result<String, JoinTokenError> {
    encode_kubeconfig(&JoinKubeconfig::worker(server, ca_pem, token))
}

/// Encodes any join kubeconfig (a controller token's, say) as [`encode`] does.
pub fn encode_kubeconfig(kubeconfig: &JoinKubeconfig) -> Result<String, JoinTokenError> {
    let yaml = serde_saphyr::to_string(kubeconfig).map_err(JoinTokenError::Serialize)?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(yaml.as_bytes())
        .map_err(JoinTokenError::Compress)?;
    let compressed = gz.finish().map_err(JoinTokenError::Compress)?;
    Ok(BASE64_STANDARD.encode(compressed))
}

/// Decodes a join token back to the kubeconfig YAML text (base64 → gunzip). Surrounding
/// whitespace is ignored, as k0s ignores it.
pub fn decode_to_yaml(join_token: &str) -> Result<String, JoinTokenError> {
    let compressed = BASE64_STANDARD
        .decode(join_token.trim().as_bytes())
        .map_err(|_| JoinTokenError::Base64)?;
    let mut yaml = String::new();
    GzDecoder::new(compressed.as_slice())
        .read_to_string(&mut yaml)
        .map_err(JoinTokenError::Decompress)?;
    Ok(yaml)
}

/// Decodes a join token into its kubeconfig.
pub fn decode(join_token: &str) -> Result<JoinKubeconfig, JoinTokenError> {
    let yaml = decode_to_yaml(join_token)?;
    serde_saphyr::from_str(&yaml).map_err(|e| JoinTokenError::Parse(e.into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

    #[test]
    fn round_trip_through_kube_kubeconfig_parser() {
        let token = BootstrapToken::generate();
        let join = encode("https://10.0.0.1:30443", CA.as_bytes(), &token).unwrap();

        // Independent decoding path: base64 → gunzip → kube's own kubeconfig parser.
        let yaml = decode_to_yaml(&join).unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("k0s"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(kc.clusters[0].name, "k0s");
        assert_eq!(cluster.server.as_deref(), Some("https://10.0.0.1:30443"));
        let ca = BASE64_STANDARD
            .decode(cluster.certificate_authority_data.as_deref().unwrap())
            .unwrap();
        assert_eq!(ca, CA.as_bytes());
        let ctx = kc.contexts[0].context.as_ref().unwrap();
        assert_eq!(
            (kc.contexts[0].name.as_str(), ctx.cluster.as_str()),
            ("k0s", "k0s")
        );
        assert_eq!(ctx.user.as_deref(), Some("kubelet-bootstrap"));
        assert_eq!(kc.auth_infos[0].name, "kubelet-bootstrap");
        // kube keeps the token in a SecretString; its serialisation exposes the value.
        let user = serde_json::to_value(kc.auth_infos[0].auth_info.as_ref().unwrap()).unwrap();
        assert_eq!(user["token"], serde_json::Value::String(token.bearer()));

        // Our own decoder agrees.
        assert_eq!(decode(&join).unwrap().worker_token().unwrap(), token);
    }

    #[test]
    fn gzip_header_and_best_compression() {
        let join = encode("https://h:1", CA.as_bytes(), &BootstrapToken::placeholder()).unwrap();
        let raw = BASE64_STANDARD.decode(join).unwrap();
        assert_eq!(&raw[..3], &[0x1f, 0x8b, 0x08], "gzip magic + deflate");
        assert_eq!(
            raw[8], 2,
            "XFL=2 marks maximum compression, as Go's BestCompression writes"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(api_url("fd00::1", 6443), "https://[fd00::1]:6443");
        assert_eq!(api_url("example.com", 443), "https://example.com:443");
        assert_eq!(api_url("[fd00::1]", 6443), "https://[fd00::1]:6443");
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(matches!(decode("!!!"), Err(JoinTokenError::Base64)));
        assert!(matches!(
            decode(&BASE64_STANDARD.encode("plain")),
            Err(JoinTokenError::Decompress(_))
        ));
    }
}
