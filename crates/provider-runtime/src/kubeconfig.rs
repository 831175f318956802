//! Kubeconfigs read from `<cluster>-kubeconfig` Secrets: the check that accepts only inline
//! credentials for the control plane's published endpoint, and the client configuration built
//! from what it accepted.
//!
//! Whoever can write Secrets in a cluster's namespace writes this input, so it is untrusted: a
//! kubeconfig may name a command to run (`exec`, auth providers), files of the provider's pod to
//! read (`tokenFile`, certificate and key paths), a proxy or an arbitrary server to connect to,
//! or turn TLS verification off. [`validate`] refuses all of them; [`Trusted::client_config`]
//! builds the client configuration field by field, so nothing else of the file is ever used.
//!
//! Pure: no file, environment or network access. Refusals name fields, never their values (they
//! end up in conditions and events); the one value they quote is the server URL, which is not
//! secret.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use kube::config::{AuthInfo, Cluster, Kubeconfig};
use secrecy::{ExposeSecret as _, SecretString};

/// Why a kubeconfig is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It is not a kubeconfig (the parser's message is left out: it may quote the content).
    #[error("the kubeconfig does not parse")]
    Unparseable,
    /// `current-context` is missing or names no context, or the context's cluster or user
    /// entry is missing.
    #[error("the kubeconfig's current context is incomplete: {0}")]
    Incomplete(&'static str),
    /// The user runs a command to get credentials.
    #[error("the kubeconfig's user runs a command (exec); only inline credentials are accepted")]
    Exec,
    /// The user gets credentials from an auth provider plugin.
    #[error("the kubeconfig's user uses an auth provider; only inline credentials are accepted")]
    AuthProvider,
    /// A field names a file (of the provider's own file system).
    #[error("the kubeconfig names a file ({0}); only inline data is accepted")]
    FilePath(&'static str),
    /// TLS verification is turned off.
    #[error("the kubeconfig sets insecure-skip-tls-verify")]
    InsecureSkipTlsVerify,
    /// The cluster is reached through a proxy.
    #[error("the kubeconfig sets proxy-url; the server must be reached directly")]
    Proxy,
    /// The certificate must match another name than the server's host.
    #[error("the kubeconfig sets tls-server-name")]
    TlsServerName,
    /// User name and password.
    #[error("the kubeconfig uses basic authentication (username/password)")]
    BasicAuth,
    /// The user impersonates someone else.
    #[error(
        "the kubeconfig impersonates another user or group (as, as-groups, as-uid, as-user-extra)"
    )]
    Impersonation,
    /// Fields this provider does not understand (client-go might act on them).
    #[error("the kubeconfig's {entry} entry has fields this provider does not accept: {fields}")]
    UnknownFields {
        /// `cluster` or `user`.
        entry: &'static str,
        /// Their names, comma-separated.
        fields: String,
    },
    /// The server is not the control plane's endpoint.
    #[error("the kubeconfig's server {server:?} is not the control plane's endpoint {expected}")]
    ServerMismatch {
        /// What the kubeconfig says (cut to 200 bytes).
        server: String,
        /// `https://host:port` of the endpoint.
        expected: String,
    },
    /// The server is not an `https://host[:port]` URL (hosting-cluster kubeconfigs).
    #[error("the kubeconfig's server {server:?} is not an https://host[:port] URL")]
    NotHttps {
        /// What the kubeconfig says (cut to 200 bytes).
        server: String,
    },
    /// No inline CA: the system's trust store would be used.
    #[error("the kubeconfig has no certificate-authority-data")]
    NoCa,
    /// No inline client certificate and key, and no token.
    #[error(
        "the kubeconfig's user has no inline credentials (client-certificate-data with client-key-data, or token)"
    )]
    NoCredentials,
    /// Inline data that does not decode (base64, PEM).
    #[error("the kubeconfig's {0} is not base64-encoded PEM of the expected kind")]
    BadData(&'static str),
}

/// The endpoint the kubeconfig must point at: the control plane's published
/// `spec.controlPlaneEndpoint` (or the CAPI Cluster's copy of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// Host name or IP address (IPv6 without brackets).
    pub host: &'a str,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for Endpoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "https://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "https://{}:{}", self.host, self.port)
        }
    }
}

/// What [`validate`] accepted: the server, its CA and inline credentials, nothing else.
pub struct Trusted {
    server: http::Uri,
    /// DER of each CA certificate.
    ca: Vec<Vec<u8>>,
    /// Client certificate and key, both PEM.
    client: Option<(String, SecretString)>,
    token: Option<SecretString>,
}

impl std::fmt::Debug for Trusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trusted")
            .field("server", &self.server)
            .field("client_certificate", &self.client.is_some())
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// Timeouts of a workload client: a reconcile worker waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP and TLS connect.
    pub connect: Duration,
    /// Each read and write.
    pub io: Duration,
}

impl Trusted {
    /// The server URL.
    pub fn server(&self) -> &http::Uri {
        &self.server
    }

    /// The trusted CA certificates, PEM-encoded (what a k0s join token embeds).
    pub fn ca_pem(&self) -> String {
        let blocks: Vec<pem::Pem> = self
            .ca
            .iter()
            .map(|der| pem::Pem::new("CERTIFICATE", der.clone()))
            .collect();
        pem::encode_many(&blocks)
    }

    /// The client configuration: the server, its CA, the inline credentials and `timeouts`. No
    /// proxy (not even from the environment), TLS verified against the inline CA only.
    pub fn client_config(&self, timeouts: Timeouts) -> kube::Config {
        let mut auth = AuthInfo::default();
        if let Some((cert, key)) = &self.client {
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
            auth.client_certificate_data = Some(b64(cert));
            auth.client_key_data = Some(SecretString::from(b64(key.expose_secret())));
        }
        auth.token = self.token.clone();
        let mut config = kube::Config::new(self.server.clone());
        config.root_cert = Some(self.ca.clone());
        config.auth_info = auth;
        config.accept_invalid_certs = false;
        config.proxy_url = None;
        config.tls_server_name = None;
        config.connect_timeout = Some(timeouts.connect);
        config.read_timeout = Some(timeouts.io);
        config.write_timeout = Some(timeouts.io);
        config
    }

    /// A client from [`Trusted::client_config`].
    pub fn client(&self, timeouts: Timeouts) -> Result<kube::Client, kube::Error> {
        kube::Client::try_from(self.client_config(timeouts))
    }

    /// [`Trusted::client_config`], connecting to `address` (on the server's port) instead of
    /// resolving the server's host name, with TLS still verified against that name. For a server
    /// named after a Service whose address the caller read from the API: nothing waits on DNS.
    pub fn client_config_dialing(&self, address: IpAddr, timeouts: Timeouts) -> kube::Config {
        let mut config = self.client_config(timeouts);
        let Some(host) = self.server.host() else {
            return config;
        };
        if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
            return config;
        }
        let port = self.server.port_u16().unwrap_or(443);
        let url = match address {
            IpAddr::V4(a) => format!("https://{a}:{port}"),
            IpAddr::V6(a) => format!("https://[{a}]:{port}"),
        };
        if let Ok(uri) = url.parse::<http::Uri>() {
            config.tls_server_name = Some(host.to_string());
            config.cluster_url = uri;
        }
        config
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.trim().is_empty())
}

/// PEM blocks of `data` (base64 of PEM) with a tag for which `wanted` holds; refused with
/// `field` when it does not decode or has none.
fn pem_blocks(
    data: &str,
    field: &'static str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<pem::Pem>, Refusal> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| Refusal::BadData(field))?;
    let blocks: Vec<pem::Pem> = pem::parse_many(bytes)
        .map_err(|_| Refusal::BadData(field))?
        .into_iter()
        .filter(|p| wanted(p.tag()))
        .collect();
    if blocks.is_empty() {
        return Err(Refusal::BadData(field));
    }
    Ok(blocks)
}

fn check_server(server: &str, expected: &Endpoint<'_>) -> Result<http::Uri, Refusal> {
    let mismatch = || Refusal::ServerMismatch {
        server: crate::truncate_utf8(server, 200).to_string(),
        expected: expected.to_string(),
    };
    let uri: http::Uri = server.parse().map_err(|_| mismatch())?;
    let authority = uri.authority().ok_or_else(mismatch)?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let path_ok = matches!(uri.path(), "" | "/") && uri.query().is_none();
    let ok = uri.scheme_str() == Some("https")
        && !authority.as_str().contains('@')
        && host.eq_ignore_ascii_case(expected.host)
        && authority.port_u16().unwrap_or(443) == expected.port
        && path_ok;
    if ok { Ok(uri) } else { Err(mismatch()) }
}

/// A hosting cluster's server (`spec.remoteHostCluster`): any host, but `https://host[:port]`
/// only (no user info, path or query).
fn check_any_server(server: &str) -> Result<http::Uri, Refusal> {
    let refused = || Refusal::NotHttps {
        server: crate::truncate_utf8(server, 200).to_string(),
    };
    let uri: http::Uri = server.parse().map_err(|_| refused())?;
    let authority = uri.authority().ok_or_else(refused)?;
    let ok = uri.scheme_str() == Some("https")
        && !authority.as_str().contains('@')
        && !authority.host().is_empty()
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none();
    if ok { Ok(uri) } else { Err(refused()) }
}

/// Checks `yaml` (the Secret's `value`) and keeps only what a client needs; see the module
/// documentation for what is refused. Only the current context's cluster and user are used, so
/// only they are checked.
pub fn validate(yaml: &str, expected: &Endpoint<'_>) -> Result<Trusted, Refusal> {
    validate_with(yaml, |server| check_server(server, expected))
}

/// [`validate`] for the kubeconfig of a cluster that is not one of ours: the hosting cluster of
/// a control plane with `spec.remoteHostCluster`. Everything is checked as for [`validate`]
/// except that the server may be any `https://host[:port]` (there is no endpoint of ours to pin
/// it to).
pub fn validate_hosting(yaml: &str) -> Result<Trusted, Refusal> {
    validate_with(yaml, check_any_server)
}

fn validate_with(
    yaml: &str,
    check: impl FnOnce(&str) -> Result<http::Uri, Refusal>,
) -> Result<Trusted, Refusal> {
    let config = Kubeconfig::from_yaml(yaml).map_err(|_| Refusal::Unparseable)?;
    let (cluster, user) = current_entries(&config)?;
    refuse_unsafe(cluster, user)?;

    let server = non_empty(cluster.server.as_deref())
        .ok_or(Refusal::Incomplete("the cluster has no server"))?;
    let server = check(server)?;

    let ca_data = non_empty(cluster.certificate_authority_data.as_deref()).ok_or(Refusal::NoCa)?;
    let ca = pem_blocks(ca_data, "certificate-authority-data", |t| {
        t == "CERTIFICATE"
    })?
    .into_iter()
    .map(pem::Pem::into_contents)
    .collect();

    let (client, token) = credentials(user)?;
    Ok(Trusted {
        server,
        ca,
        client,
        token,
    })
}

/// The cluster and user entries the current context names.
fn current_entries(config: &Kubeconfig) -> Result<(&Cluster, &AuthInfo), Refusal> {
    let current = non_empty(config.current_context.as_deref())
        .ok_or(Refusal::Incomplete("no current-context"))?;
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .ok_or(Refusal::Incomplete("current-context names no context"))?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or(Refusal::Incomplete("the context's cluster is missing"))?;
    let user_name = non_empty(context.user.as_deref())
        .ok_or(Refusal::Incomplete("the context names no user"))?;
    let user = config
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .and_then(|u| u.auth_info.as_ref())
        .ok_or(Refusal::Incomplete("the context's user is missing"))?;
    Ok((cluster, user))
}

/// Refuses every field that runs code, reads files, weakens TLS, goes through a proxy, or that
/// this module does not know.
fn refuse_unsafe(cluster: &Cluster, user: &AuthInfo) -> Result<(), Refusal> {
    // What runs code or reads files first: those are the dangerous ones.
    if user.exec.is_some() {
        return Err(Refusal::Exec);
    }
    if user.auth_provider.is_some() {
        return Err(Refusal::AuthProvider);
    }
    for (value, field) in [
        (user.token_file.as_deref(), "tokenFile"),
        (user.client_certificate.as_deref(), "client-certificate"),
        (user.client_key.as_deref(), "client-key"),
        (
            cluster.certificate_authority.as_deref(),
            "certificate-authority",
        ),
    ] {
        if non_empty(value).is_some() {
            return Err(Refusal::FilePath(field));
        }
    }
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err(Refusal::InsecureSkipTlsVerify);
    }
    if non_empty(cluster.proxy_url.as_deref()).is_some() {
        return Err(Refusal::Proxy);
    }
    if non_empty(cluster.tls_server_name.as_deref()).is_some() {
        return Err(Refusal::TlsServerName);
    }
    if user.username.is_some() || user.password.is_some() {
        return Err(Refusal::BasicAuth);
    }
    if user.impersonate.is_some()
        || user.impersonate_uid.is_some()
        || user.impersonate_groups.is_some()
        || user.impersonate_user_extra.is_some()
    {
        return Err(Refusal::Impersonation);
    }
    for (entry, other) in [("cluster", &cluster.other), ("user", &user.other)] {
        if !other.is_empty() {
            let fields: Vec<&str> = other.keys().map(String::as_str).collect();
            return Err(Refusal::UnknownFields {
                entry,
                fields: crate::truncate_utf8(&fields.join(", "), 200).to_string(),
            });
        }
    }
    Ok(())
}

/// A client certificate and key (both PEM), a bearer token, or both; at least one.
type Credentials = (Option<(String, SecretString)>, Option<SecretString>);

/// The user's inline credentials: a client certificate with its key, a token, or both.
fn credentials(user: &AuthInfo) -> Result<Credentials, Refusal> {
    let cert = non_empty(user.client_certificate_data.as_deref());
    let key = user
        .client_key_data
        .as_ref()
        .map(|k| k.expose_secret())
        .filter(|k| !k.trim().is_empty());
    let client = match (cert, key) {
        (Some(cert), Some(key)) => {
            let cert = pem_blocks(cert, "client-certificate-data", |t| t == "CERTIFICATE")?;
            let key = pem_blocks(key, "client-key-data", |t| t.ends_with("PRIVATE KEY"))?;
            Some((
                pem::encode_many(&cert),
                SecretString::from(pem::encode_many(&key)),
            ))
        }
        (None, None) => None,
        _ => return Err(Refusal::NoCredentials),
    };
    let token = user
        .token
        .as_ref()
        .filter(|t| !t.expose_secret().trim().is_empty())
        .cloned();
    if client.is_none() && token.is_none() {
        return Err(Refusal::NoCredentials);
    }
    Ok((client, token))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUAMBExDzANBgNVBAMMBnVu\n-----END CERTIFICATE-----\n";
    const KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIDc0bXQ=\n-----END PRIVATE KEY-----\n";
    const EXPECTED: Endpoint<'static> = Endpoint {
        host: "10.0.0.1",
        port: 30443,
    };

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// A good kubeconfig with `cluster_extra` and `user_extra` (YAML lines, 4 spaces deep)
    /// added to the entries the current context uses.
    fn kubeconfig(server: &str, cluster_extra: &str, user_extra: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
current-context: admin@demo
clusters:
- name: demo
  cluster:
    server: {server}
    certificate-authority-data: {ca}
{cluster_extra}
contexts:
- name: admin@demo
  context:
    cluster: demo
    user: admin
users:
- name: admin
  user:
    client-certificate-data: {ca}
    client-key-data: {key}
{user_extra}
",
            ca = b64(CA),
            key = b64(KEY),
        )
    }

    fn good(cluster_extra: &str, user_extra: &str) -> String {
        kubeconfig("https://10.0.0.1:30443", cluster_extra, user_extra)
    }

    #[test]
    fn a_hosting_cluster_may_be_any_https_server_but_nothing_else_is_relaxed() {
        for server in [
            "https://hosting.example.com:6443",
            "https://10.1.2.3",
            "https://[fd00::1]:443/",
        ] {
            let t = validate_hosting(&kubeconfig(server, "", "")).unwrap();
            assert_eq!(t.server().scheme_str(), Some("https"), "{server}");
        }
        for server in [
            "http://hosting.example.com",
            "https://user@hosting.example.com",
            "https://hosting.example.com/api",
            "https://hosting.example.com/?a=b",
            "hosting.example.com:6443",
        ] {
            assert!(
                matches!(
                    validate_hosting(&kubeconfig(server, "", "")),
                    Err(Refusal::NotHttps { .. })
                ),
                "{server}"
            );
        }
        let exec =
            "    exec:\n      command: /bin/sh\n      apiVersion: client.authentication.k8s.io/v1";
        assert_eq!(
            validate_hosting(&good("", exec)).unwrap_err(),
            Refusal::Exec
        );
        assert_eq!(
            validate_hosting(&good("    insecure-skip-tls-verify: true", "")).unwrap_err(),
            Refusal::InsecureSkipTlsVerify
        );
        assert_eq!(
            validate_hosting(&good("", "    tokenFile: /var/run/secrets/token")).unwrap_err(),
            Refusal::FilePath("tokenFile")
        );
    }

    #[test]
    fn inline_credentials_for_the_endpoint_are_accepted() {
        let trusted = validate(&good("", ""), &EXPECTED).unwrap();
        assert_eq!(trusted.server().to_string(), "https://10.0.0.1:30443/");
        let config = trusted.client_config(Timeouts {
            connect: Duration::from_secs(1),
            io: Duration::from_secs(2),
        });
        assert_eq!(config.root_cert.as_ref().map(Vec::len), Some(1));
        assert!(config.proxy_url.is_none());
        assert!(!config.accept_invalid_certs);
        assert!(config.auth_info.client_certificate_data.is_some());
        assert!(config.auth_info.exec.is_none());
        assert_eq!(config.connect_timeout, Some(Duration::from_secs(1)));
        assert_eq!(config.read_timeout, Some(Duration::from_secs(2)));
        // A token alone will do too.
        let token_only = good("", "").replace(
            &format!(
                "    client-certificate-data: {}\n    client-key-data: {}\n",
                b64(CA),
                b64(KEY)
            ),
            "    token: abc.def\n",
        );
        let trusted = validate(&token_only, &EXPECTED).unwrap();
        assert!(
            trusted
                .client_config(Timeouts {
                    connect: Duration::ZERO,
                    io: Duration::ZERO
                })
                .auth_info
                .token
                .is_some()
        );
    }

    #[test]
    fn dialing_an_address_keeps_the_server_name_for_tls_and_everything_else() {
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            io: Duration::from_secs(2),
        };
        let named = Endpoint {
            host: "kmc-demo.ns.svc",
            port: 30443,
        };
        let server = "https://kmc-demo.ns.svc:30443";
        let trusted = validate(&kubeconfig(server, "", ""), &named).unwrap();
        let plain = trusted.client_config(timeouts);
        for (address, url) in [
            ("10.96.0.7", "https://10.96.0.7:30443/"),
            ("fd00::7", "https://[fd00::7]:30443/"),
        ] {
            let config = trusted.client_config_dialing(address.parse().unwrap(), timeouts);
            assert_eq!(config.cluster_url.to_string(), url);
            assert_eq!(config.tls_server_name.as_deref(), Some("kmc-demo.ns.svc"));
            assert_eq!(config.root_cert, plain.root_cert);
            assert_eq!(
                config.auth_info.client_certificate_data,
                plain.auth_info.client_certificate_data
            );
            assert!(config.proxy_url.is_none());
            assert!(!config.accept_invalid_certs);
            assert_eq!(config.connect_timeout, Some(Duration::from_secs(1)));
        }
        // A server that is an address already is dialed as it is.
        let by_ip = validate(&good("", ""), &EXPECTED).unwrap();
        let config = by_ip.client_config_dialing("10.96.0.7".parse().unwrap(), timeouts);
        assert_eq!(config.cluster_url.to_string(), "https://10.0.0.1:30443/");
        assert_eq!(config.tls_server_name, None);
    }

    #[test]
    fn the_server_must_be_the_endpoint() {
        for server in [
            "https://10.0.0.2:30443",
            "https://10.0.0.1:6443",
            "http://10.0.0.1:30443",
            "https://10.0.0.1:30443/api/proxy",
            "https://10.0.0.1:30443/?x=1",
            "https://user@10.0.0.1:30443",
            "https://10.0.0.1.evil.example:30443",
            "not a url",
        ] {
            let err = validate(&kubeconfig(server, "", ""), &EXPECTED).unwrap_err();
            assert!(
                matches!(err, Refusal::ServerMismatch { .. }),
                "{server}: {err}"
            );
            assert!(err.to_string().contains("https://10.0.0.1:30443"), "{err}");
        }
        // Case and a trailing slash do not matter; the default port is 443.
        let host = Endpoint {
            host: "cp.example.com",
            port: 443,
        };
        validate(&kubeconfig("https://CP.example.com/", "", ""), &host).unwrap();
        let v6 = Endpoint {
            host: "fd00::1",
            port: 6443,
        };
        validate(&kubeconfig("https://[fd00::1]:6443", "", ""), &v6).unwrap();
    }

    #[test]
    fn every_indirection_is_refused() {
        let cases: [(&str, &str, Refusal); 13] = [
            (
                "",
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n",
                Refusal::Exec,
            ),
            (
                "",
                "    auth-provider:\n      name: oidc\n",
                Refusal::AuthProvider,
            ),
            (
                "",
                "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
                Refusal::FilePath("tokenFile"),
            ),
            (
                "",
                "    client-certificate: /etc/ssl/cert.pem\n",
                Refusal::FilePath("client-certificate"),
            ),
            (
                "",
                "    client-key: /etc/ssl/key.pem\n",
                Refusal::FilePath("client-key"),
            ),
            (
                "    certificate-authority: /etc/ssl/ca.pem\n",
                "",
                Refusal::FilePath("certificate-authority"),
            ),
            (
                "    insecure-skip-tls-verify: true\n",
                "",
                Refusal::InsecureSkipTlsVerify,
            ),
            ("    proxy-url: http://127.0.0.1:3128\n", "", Refusal::Proxy),
            ("    tls-server-name: other\n", "", Refusal::TlsServerName),
            (
                "",
                "    username: admin\n    password: hunter2\n",
                Refusal::BasicAuth,
            ),
            ("", "    as: system:admin\n", Refusal::Impersonation),
            (
                "",
                "    as-groups: [system:masters]\n",
                Refusal::Impersonation,
            ),
            (
                "    future-field: x\n",
                "",
                Refusal::UnknownFields {
                    entry: "cluster",
                    fields: "future-field".into(),
                },
            ),
        ];
        for (cluster_extra, user_extra, want) in cases {
            let yaml = good(cluster_extra, user_extra);
            assert_eq!(validate(&yaml, &EXPECTED).unwrap_err(), want, "{yaml}");
        }
    }

    #[test]
    fn inline_material_is_required() {
        let no_ca = good("", "").replace(
            &format!("    certificate-authority-data: {}\n", b64(CA)),
            "",
        );
        assert_eq!(validate(&no_ca, &EXPECTED).unwrap_err(), Refusal::NoCa);
        let no_key = good("", "").replace(&format!("    client-key-data: {}\n", b64(KEY)), "");
        assert_eq!(
            validate(&no_key, &EXPECTED).unwrap_err(),
            Refusal::NoCredentials
        );
        let bad_ca = good("", "").replace(
            &format!("certificate-authority-data: {}", b64(CA)),
            "certificate-authority-data: bm90IHBlbQ==",
        );
        assert_eq!(
            validate(&bad_ca, &EXPECTED).unwrap_err(),
            Refusal::BadData("certificate-authority-data")
        );
        assert_eq!(
            validate("{{{", &EXPECTED).unwrap_err(),
            Refusal::Unparseable
        );
        let no_context = good("", "").replace("current-context: admin@demo\n", "");
        assert!(matches!(
            validate(&no_context, &EXPECTED).unwrap_err(),
            Refusal::Incomplete(_)
        ));
    }

    #[test]
    fn refusals_never_quote_secret_values() {
        let yaml = good("", "    username: admin\n    password: hunter2\n");
        let err = validate(&yaml, &EXPECTED).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let yaml = good("", "    token: s3cr3t-token\n    tokenFile: /etc/t\n");
        let err = validate(&yaml, &EXPECTED).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t") && !err.contains("/etc/t"), "{err}");
    }
}
