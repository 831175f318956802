//! The `<cluster>-kubeconfig` content: rendering an admin kubeconfig with a client certificate
//! minted from the cluster CA, and deciding when an existing one must be regenerated.
//!
//! Pure: no I/O, the caller passes the current time. Upstream execs `k0s kubeconfig create` in a
//! running pod; we sign the client certificate ourselves (see docs/deviations.md), so the
//! kubeconfig exists as soon as the CA and the endpoint are known.

use base64::Engine as _;
use jiff::Timestamp;
use secrecy::ExposeSecret as _;
use serde::Serialize;

use crate::certs::{self, CertError, KeyMaterial, LeafSpec, Usage};

/// Common name of the admin client certificate (kubeadm's and CAPI's convention).
pub const ADMIN_COMMON_NAME: &str = "kubernetes-admin";
/// Group of the admin client certificate.
pub const ADMIN_GROUP: &str = "system:masters";

/// Errors of kubeconfig rendering.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// Signing the client certificate failed.
    #[error("minting the admin client certificate: {0}")]
    Certificate(#[from] CertError),
    /// Serialising the kubeconfig failed.
    #[error("serialising the kubeconfig: {0}")]
    Serialize(#[source] serde_saphyr::SerializeError),
}

/// The entry names upstream uses: cluster `<name>-k0s`, user `<name>-admin`, context
/// `<name>-admin@<name>-k0s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryNames {
    /// Cluster entry.
    pub cluster: String,
    /// User entry.
    pub user: String,
    /// Context entry (also the current context).
    pub context: String,
}

impl EntryNames {
    /// Names for the CAPI cluster `name`.
    pub fn for_cluster(name: &str) -> Self {
        let cluster = format!("{name}-k0s");
        let user = format!("{name}-admin");
        let context = format!("{user}@{cluster}");
        Self {
            cluster,
            user,
            context,
        }
    }
}

/// The admin client certificate request.
pub fn admin_leaf_spec() -> LeafSpec {
    LeafSpec {
        common_name: ADMIN_COMMON_NAME.to_string(),
        organizations: vec![ADMIN_GROUP.to_string()],
        sans: Vec::new(),
        usage: Usage::Client,
    }
}

// Our own serialisation structs: the field order is fixed, so the output is stable.
#[derive(Serialize)]
struct File<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    clusters: Vec<Named<'a, ClusterEntry<'a>>>,
    contexts: Vec<Named<'a, ContextEntry<'a>>>,
    #[serde(rename = "current-context")]
    current_context: &'a str,
    users: Vec<Named<'a, UserEntry>>,
}

#[derive(Serialize)]
struct Named<'a, T> {
    name: &'a str,
    #[serde(flatten)]
    value: T,
}

#[derive(Serialize)]
struct ClusterEntry<'a> {
    cluster: ClusterData<'a>,
}

#[derive(Serialize)]
struct ClusterData<'a> {
    server: &'a str,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: String,
}

#[derive(Serialize)]
struct ContextEntry<'a> {
    context: ContextData<'a>,
}

#[derive(Serialize)]
struct ContextData<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[derive(Serialize)]
struct UserEntry {
    user: UserData,
}

#[derive(Serialize)]
struct UserData {
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: String,
    #[serde(rename = "client-key-data")]
    client_key_data: String,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// Renders a kubeconfig for `cluster_name` reaching `server` (an `https://host:port` URL), trusting
/// `ca_cert_pem` and authenticating with `client`.
pub fn render(
    cluster_name: &str,
    server: &str,
    ca_cert_pem: &str,
    client: &KeyMaterial,
) -> Result<String, KubeconfigError> {
    let names = EntryNames::for_cluster(cluster_name);
    let file = File {
        api_version: "v1",
        kind: "Config",
        clusters: vec![Named {
            name: &names.cluster,
            value: ClusterEntry {
                cluster: ClusterData {
                    server,
                    certificate_authority_data: b64(ca_cert_pem),
                },
            },
        }],
        contexts: vec![Named {
            name: &names.context,
            value: ContextEntry {
                context: ContextData {
                    cluster: &names.cluster,
                    user: &names.user,
                },
            },
        }],
        current_context: &names.context,
        users: vec![Named {
            name: &names.user,
            value: UserEntry {
                user: UserData {
                    client_certificate_data: b64(&client.cert_pem),
                    client_key_data: b64(&client.key_pem),
                },
            },
        }],
    };
    serde_saphyr::to_string(&file).map_err(KubeconfigError::Serialize)
}

/// Mints a fresh admin client certificate from the cluster CA and renders the kubeconfig.
pub fn generate(
    cluster_name: &str,
    server: &str,
    ca: &KeyMaterial,
    now: Timestamp,
) -> Result<String, KubeconfigError> {
    let client = certs::sign_leaf(ca, &format!("{cluster_name}-ca"), &admin_leaf_spec(), now)?;
    render(cluster_name, server, &ca.cert_pem, &client)
}

/// Why an existing kubeconfig must be regenerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegenerateReason {
    /// There is none yet.
    Missing,
    /// It cannot be parsed or lacks the current context's cluster or user.
    Unreadable,
    /// The server URL changed (the endpoint moved).
    ServerChanged,
    /// It trusts another CA than the current `<cluster>-ca`.
    CaChanged,
    /// Its client certificate is past half of its lifetime, or not signed by the current CA.
    CertificateRenewal,
    /// It is not exactly what [`render`] writes (other fields, entries or layout): someone else
    /// wrote it. Kept, it would hand whatever it holds (a command, a proxy, a file path) to
    /// every reader of the Secret, CAPI core included.
    NotWrittenByUs,
}

/// What matters about an existing kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Server URL of the current context's cluster.
    pub server: String,
    /// PEM of the trusted CA.
    pub ca_cert_pem: String,
    /// PEM of the client certificate.
    pub client_cert_pem: String,
    /// PEM of the client key.
    pub client_key_pem: String,
}

fn decode_b64(s: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// Reads the current context's cluster and user of a kubeconfig; `None` when anything is missing.
pub fn parse(yaml: &str) -> Option<Existing> {
    let config = kube::config::Kubeconfig::from_yaml(yaml).ok()?;
    let current = config.current_context.as_deref()?;
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == current)?
        .context
        .as_ref()?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)?
        .cluster
        .as_ref()?;
    let user_name = context.user.as_deref()?;
    let user = config
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)?
        .auth_info
        .as_ref()?;
    Some(Existing {
        server: cluster.server.clone()?,
        ca_cert_pem: decode_b64(cluster.certificate_authority_data.as_deref()?)?,
        client_cert_pem: decode_b64(user.client_certificate_data.as_deref()?)?,
        client_key_pem: decode_b64(user.client_key_data.as_ref()?.expose_secret())?,
    })
}

/// Whether the kubeconfig `existing` (the Secret's `value`) of `cluster_name` must be
/// regenerated for `server` and the CA `ca_cert_pem`; `None` when it is still good.
///
/// It is kept only when it is byte for byte what [`render`] makes of its own server, CA, client
/// certificate and key: then it holds nothing but those, whoever wrote it. An annotation with a
/// hash would prove nothing, since whoever can write the Secret can write the annotation too.
pub fn regenerate_reason(
    existing: Option<&str>,
    cluster_name: &str,
    server: &str,
    ca_cert_pem: &str,
    now: Timestamp,
) -> Option<RegenerateReason> {
    let Some(existing) = existing else {
        return Some(RegenerateReason::Missing);
    };
    let Some(parsed) = parse(existing) else {
        return Some(RegenerateReason::Unreadable);
    };
    let client = KeyMaterial {
        cert_pem: parsed.client_cert_pem.clone(),
        key_pem: parsed.client_key_pem.clone(),
    };
    let ours = render(cluster_name, &parsed.server, &parsed.ca_cert_pem, &client);
    if ours.ok().as_deref() != Some(existing) {
        return Some(RegenerateReason::NotWrittenByUs);
    }
    if parsed.server != server {
        return Some(RegenerateReason::ServerChanged);
    }
    if parsed.ca_cert_pem.trim() != ca_cert_pem.trim() {
        return Some(RegenerateReason::CaChanged);
    }
    if certs::needs_renewal(&parsed.client_cert_pem, ca_cert_pem, now) {
        return Some(RegenerateReason::CertificateRenewal);
    }
    None
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn renders_upstream_entry_names() {
        let client = KeyMaterial {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let yaml = render("demo", "https://10.0.0.1:30443", "CA", &client).unwrap();
        insta::assert_snapshot!(yaml);
    }

    #[test]
    fn generated_kubeconfig_parses_and_is_current() {
        let ca = certs::generate_ca("kubernetes", now()).unwrap();
        let yaml = generate("demo", "https://h:6443", &ca, now()).unwrap();
        let parsed = parse(&yaml).unwrap();
        assert_eq!(parsed.server, "https://h:6443");
        assert_eq!(parsed.ca_cert_pem, ca.cert_pem);
        let info = certs::cert_info(&parsed.client_cert_pem, "client").unwrap();
        assert_eq!(info.common_name.as_deref(), Some(ADMIN_COMMON_NAME));
        assert!(certs::is_signed_by(&parsed.client_cert_pem, &ca.cert_pem));
        assert_eq!(
            regenerate_reason(Some(&yaml), "demo", "https://h:6443", &ca.cert_pem, now()),
            None
        );
    }

    #[test]
    fn regeneration_reasons() {
        let ca = certs::generate_ca("kubernetes", now()).unwrap();
        let other_ca = certs::generate_ca("kubernetes", now()).unwrap();
        let yaml = generate("demo", "https://h:6443", &ca, now()).unwrap();
        assert_eq!(
            regenerate_reason(None, "demo", "https://h:6443", &ca.cert_pem, now()),
            Some(RegenerateReason::Missing)
        );
        assert_eq!(
            regenerate_reason(
                Some("nope: ["),
                "demo",
                "https://h:6443",
                &ca.cert_pem,
                now()
            ),
            Some(RegenerateReason::Unreadable)
        );
        assert_eq!(
            regenerate_reason(
                Some(&yaml),
                "demo",
                "https://other:6443",
                &ca.cert_pem,
                now()
            ),
            Some(RegenerateReason::ServerChanged)
        );
        assert_eq!(
            regenerate_reason(
                Some(&yaml),
                "demo",
                "https://h:6443",
                &other_ca.cert_pem,
                now()
            ),
            Some(RegenerateReason::CaChanged)
        );
        let later = now()
            .checked_add(SignedDuration::from_hours(24 * 200))
            .unwrap();
        assert_eq!(
            regenerate_reason(Some(&yaml), "demo", "https://h:6443", &ca.cert_pem, later),
            Some(RegenerateReason::CertificateRenewal)
        );
    }

    /// Same server, CA and client certificate as ours, but something added: never kept. Today's
    /// code kept it word for word (only server, CA and certificate were compared).
    #[test]
    fn anything_but_our_own_rendering_is_regenerated() {
        let ca = certs::generate_ca("kubernetes", now()).unwrap();
        let yaml = generate("demo", "https://h:6443", &ca, now()).unwrap();
        let keep =
            |y: &str| regenerate_reason(Some(y), "demo", "https://h:6443", &ca.cert_pem, now());
        assert_eq!(keep(&yaml), None);
        let additions = [
            yaml.replace(
                "    server: https://h:6443\n",
                "    server: https://h:6443\n    proxy-url: http://127.0.0.1:3128\n",
            ),
            yaml.replace(
                "  user:\n",
                "  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n",
            ),
            yaml.replace(
                "    server: https://h:6443\n",
                "    server: https://h:6443\n    insecure-skip-tls-verify: true\n",
            ),
            format!("{yaml}preferences: {{}}\n"),
            yaml.replace("current-context:", "current-context:  "),
        ];
        for changed in additions {
            assert_ne!(changed, yaml);
            assert_eq!(
                keep(&changed),
                Some(RegenerateReason::NotWrittenByUs),
                "{changed}"
            );
        }
    }
}
