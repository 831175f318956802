//! Certificates: the CAPI certificate Secrets (`<cluster>-ca`, `-proxy`, `-sa`, `-etcd`), the etcd
//! leaf certificates and the admin client certificate of the kubeconfig.
//!
//! Pure: every function takes the current time as an argument and does no I/O. This module never
//! decides *whether* to generate (that is the reconciler's look-up-or-generate step, which only
//! generates for Secrets that do not exist); it only generates, parses and checks material.
//!
//! New keys are ECDSA P-256 by default, RSA 2048 with `--key-algorithm=rsa-2048` (a process-wide
//! setting, [`set_key_algorithm`]). Upstream k0smotron makes RSA 2048 keys (CAPI's `secret`
//! package); an RSA key costs tens of milliseconds of CPU (seconds in debug builds) and a new
//! control plane needs about nine, which made key generation most of the provider's CPU when
//! many control planes are created at once (issue #11), while a P-256 key costs microseconds.
//! Every consumer of these keys takes ECDSA: k0s signs its own certificates with our CAs through
//! cfssl (RSA or ECDSA CA keys), kube-apiserver and kube-controller-manager take an ECDSA
//! service-account key (ES256 tokens), client-go and rustls take ECDSA client keys. Only tools
//! that cast the CA key to RSA (CAPI's in-memory test infrastructure) need `rsa-2048`. Keys
//! already stored are used as they are, whatever their type. Private keys are written as PKCS#8
//! (`PRIVATE KEY`); Go's parsers used by k0s, kube-apiserver and CAPI accept PKCS#1, SEC 1 and
//! PKCS#8 alike, and we read them all.

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize, SanType,
    SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use std::sync::atomic::{AtomicBool, Ordering};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Validity of a generated CA (CAPI's convention: ten years).
pub const CA_VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 365 * 10);
/// Validity of a generated leaf certificate (etcd server/peer/client, admin client): one year.
pub const LEAF_VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 365);
/// Clock skew tolerance: generated certificates are valid from a little before `now`, so a peer
/// whose clock runs slightly behind ours still accepts them.
const BACKDATE: SignedDuration = SignedDuration::from_mins(5);

/// Secret key holding the PEM certificate (or, for `sa`, the PEM public key), as CAPI.
pub const TLS_CRT: &str = "tls.crt";
/// Secret key holding the PEM private key, as CAPI.
pub const TLS_KEY: &str = "tls.key";

/// Errors of certificate generation and parsing.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The crypto backend failed to generate a key pair.
    #[error("generating an RSA key pair: {0}")]
    KeyGeneration(#[source] rcgen::Error),
    /// Signing a certificate failed.
    #[error("signing the certificate {common_name:?}: {source}")]
    Sign {
        /// The subject being signed.
        common_name: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// A SAN is not a valid DNS name or IP address.
    #[error("invalid subject alternative name {san:?}: {source}")]
    InvalidSan {
        /// The offending SAN.
        san: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM private key could not be parsed.
    #[error("parsing the private key of {what}: {source}")]
    ParseKey {
        /// What the key belongs to (a Secret name).
        what: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM certificate could not be parsed.
    #[error("parsing the certificate of {what}: {reason}")]
    ParseCert {
        /// What the certificate belongs to (a Secret name).
        what: String,
        /// Why parsing failed.
        reason: String,
    },
    /// A time could not be represented in a certificate.
    #[error("time {0} is out of range for a certificate")]
    TimeRange(Timestamp),
}

/// A PEM certificate (or public key, for `sa`) and its PEM private key, as stored in a CAPI
/// certificate Secret under `tls.crt` / `tls.key`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// PEM of the certificate (`tls.crt`).
    pub cert_pem: String,
    /// PEM of the private key (`tls.key`).
    pub key_pem: String,
}

impl std::fmt::Debug for KeyMaterial {
    // Never print key material, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl KeyMaterial {
    /// Reads `tls.crt` and `tls.key` from Secret data; `None` when either key is missing or not
    /// UTF-8 (the caller reports the Secret as unusable).
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Option<Self> {
        let cert = String::from_utf8(data.get(TLS_CRT)?.clone()).ok()?;
        let key = String::from_utf8(data.get(TLS_KEY)?.clone()).ok()?;
        Some(Self {
            cert_pem: cert,
            key_pem: key,
        })
    }

    /// The Secret data (`tls.crt`, `tls.key`) for this material.
    pub fn to_secret_data(&self) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            (TLS_CRT.to_string(), self.cert_pem.clone().into_bytes()),
            (TLS_KEY.to_string(), self.key_pem.clone().into_bytes()),
        ])
    }
}

/// How a leaf certificate may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server only.
    Server,
    /// TLS client only.
    Client,
    /// Both (etcd server and peer certificates are also used as clients).
    ServerAndClient,
}

/// What to put into a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// Subject common name.
    pub common_name: String,
    /// Subject organisations (Kubernetes groups for client certificates).
    pub organizations: Vec<String>,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
    /// Key usage.
    pub usage: Usage,
}

/// The algorithm of newly generated keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (the default).
    #[default]
    EcdsaP256,
    /// RSA 2048 with SHA-256 (what upstream k0smotron and CAPI make).
    Rsa2048,
}

static RSA_KEYS: AtomicBool = AtomicBool::new(false);

/// Sets the algorithm of the keys this process generates from now on (`--key-algorithm`).
pub fn set_key_algorithm(algorithm: KeyAlgorithm) {
    RSA_KEYS.store(algorithm == KeyAlgorithm::Rsa2048, Ordering::Relaxed);
}

/// The algorithm of the keys this process generates.
pub fn key_algorithm() -> KeyAlgorithm {
    if RSA_KEYS.load(Ordering::Relaxed) {
        KeyAlgorithm::Rsa2048
    } else {
        KeyAlgorithm::EcdsaP256
    }
}

fn to_offset(ts: Timestamp) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(ts.as_second()).map_err(|_| CertError::TimeRange(ts))
}

/// A new key of `algorithm`. An RSA-2048 key takes long enough (tens of milliseconds in release
/// builds, seconds in debug builds) that, generated inline on a runtime worker, it starves every
/// other task on it; on two cores the leader-election renewal missed its deadline that way
/// (docs/chaos.md, finding 2). On a multi-threaded runtime the worker is handed over for the
/// duration ([`tokio::task::block_in_place`]); elsewhere (a current-thread runtime, no runtime)
/// the key is generated inline. A P-256 key is generated inline.
fn new_key(algorithm: KeyAlgorithm) -> Result<KeyPair, CertError> {
    if algorithm == KeyAlgorithm::EcdsaP256 {
        return KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CertError::KeyGeneration);
    }
    let generate = || {
        KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
            .map_err(CertError::KeyGeneration)
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(generate)
        }
        _ => generate(),
    }
}

/// Key usages of a certificate for `key`: key encipherment only for RSA (RFC 5480 §3: an ECDSA
/// key signs, it enciphers nothing).
fn usages_for(key: &KeyPair, mut usages: Vec<KeyUsagePurpose>) -> Vec<KeyUsagePurpose> {
    if key.algorithm() != &PKCS_RSA_SHA256 {
        usages.retain(|u| *u != KeyUsagePurpose::KeyEncipherment);
    }
    usages
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // A positive, non-zero INTEGER (RFC 5280 §4.1.2.2).
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn base_params(
    common_name: &str,
    organizations: &[String],
    now: Timestamp,
    validity: SignedDuration,
) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for org in organizations {
        dn.push(DnType::OrganizationName, org.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let start = now
        .checked_sub(BACKDATE)
        .map_err(|_| CertError::TimeRange(now))?;
    let end = now
        .checked_add(validity)
        .map_err(|_| CertError::TimeRange(now))?;
    params.not_before = to_offset(start)?;
    params.not_after = to_offset(end)?;
    params.serial_number = Some(random_serial());
    Ok(params)
}

/// Generates a self-signed CA valid for [`CA_VALIDITY`] from `now`, with a key of the process's
/// [`key_algorithm`].
pub fn generate_ca(common_name: &str, now: Timestamp) -> Result<KeyMaterial, CertError> {
    generate_ca_with(key_algorithm(), common_name, now)
}

/// [`generate_ca`] with a key of `algorithm`.
pub fn generate_ca_with(
    algorithm: KeyAlgorithm,
    common_name: &str,
    now: Timestamp,
) -> Result<KeyMaterial, CertError> {
    let key = new_key(algorithm)?;
    let mut params = base_params(common_name, &[], now, CA_VALIDITY)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = usages_for(
        &key,
        vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::CrlSign,
        ],
    );
    let cert = params.self_signed(&key).map_err(|source| CertError::Sign {
        common_name: common_name.to_string(),
        source,
    })?;
    Ok(KeyMaterial {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Generates the service-account key pair in CAPI's `sa` format: `tls.crt` holds the PEM public
/// key, `tls.key` the private key.
pub fn generate_sa_key_pair() -> Result<KeyMaterial, CertError> {
    let key = new_key(key_algorithm())?;
    Ok(KeyMaterial {
        cert_pem: key.public_key_pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Signs a leaf certificate with a fresh key of the process's [`key_algorithm`], valid for
/// [`LEAF_VALIDITY`] from `now`. The signature's algorithm follows the CA's key.
pub fn sign_leaf(
    ca: &KeyMaterial,
    ca_name: &str,
    spec: &LeafSpec,
    now: Timestamp,
) -> Result<KeyMaterial, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|source| CertError::ParseKey {
        what: ca_name.to_string(),
        source,
    })?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(|e| CertError::ParseCert {
            what: ca_name.to_string(),
            reason: e.to_string(),
        })?;
    let key = new_key(key_algorithm())?;
    let mut params = base_params(&spec.common_name, &spec.organizations, now, LEAF_VALIDITY)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = usages_for(
        &key,
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
    );
    params.extended_key_usages = match spec.usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.subject_alt_names = spec
        .sans
        .iter()
        .map(|san| match san.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => san
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|source| CertError::InvalidSan {
                    san: san.clone(),
                    source,
                }),
        })
        .collect::<Result<_, _>>()?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|source| CertError::Sign {
            common_name: spec.common_name.clone(),
            source,
        })?;
    Ok(KeyMaterial {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What we need to know about an existing certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// Subject common name.
    pub common_name: Option<String>,
    /// DNS and IP SANs, as strings.
    pub sans: Vec<String>,
}

/// The DER of the first `CERTIFICATE` block of a PEM bundle (other blocks, such as a key, and
/// text around the blocks are skipped), read by rustls-pki-types' RFC 7468 reader.
fn parse_pem_cert(pem_str: &str, what: &str) -> Result<CertificateDer<'static>, CertError> {
    let reason = match CertificateDer::pem_slice_iter(pem_str.as_bytes()).next() {
        Some(Ok(der)) => return Ok(der),
        // The reader's error names a marker or line, never the base64 body.
        Some(Err(e)) => e.to_string(),
        None => "no PEM CERTIFICATE block".to_string(),
    };
    Err(CertError::ParseCert {
        what: what.to_string(),
        reason,
    })
}

fn parse_x509<'a>(
    der: &'a CertificateDer<'static>,
    what: &str,
) -> Result<X509Certificate<'a>, CertError> {
    X509Certificate::from_der(der.as_ref())
        .map(|(_, cert)| cert)
        .map_err(|e| CertError::ParseCert {
            what: what.to_string(),
            reason: e.to_string(),
        })
}

fn asn1_to_timestamp(t: x509_parser::time::ASN1Time, what: &str) -> Result<Timestamp, CertError> {
    Timestamp::from_second(t.timestamp()).map_err(|e| CertError::ParseCert {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Parses the first certificate of a PEM bundle.
pub fn cert_info(cert_pem: &str, what: &str) -> Result<CertInfo, CertError> {
    let der = parse_pem_cert(cert_pem, what)?;
    let cert = parse_x509(&der, what)?;
    let validity = cert.validity();
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push((*d).to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        not_before: asn1_to_timestamp(validity.not_before, what)?,
        not_after: asn1_to_timestamp(validity.not_after, what)?,
        common_name,
        sans,
    })
}

/// Whether `cert_pem` was signed by the CA certificate `ca_cert_pem`.
pub fn is_signed_by(cert_pem: &str, ca_cert_pem: &str) -> bool {
    let (Ok(der), Ok(ca_der)) = (
        parse_pem_cert(cert_pem, "leaf"),
        parse_pem_cert(ca_cert_pem, "ca"),
    ) else {
        return false;
    };
    let (Ok(cert), Ok(ca)) = (parse_x509(&der, "leaf"), parse_x509(&ca_der, "ca")) else {
        return false;
    };
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// Whether a leaf certificate must be regenerated: it cannot be parsed, it is not signed by the
/// current CA, or less than half of its lifetime remains (CAPI's rotation convention; upstream
/// never rotates etcd leaf certificates — observed).
pub fn needs_renewal(cert_pem: &str, ca_cert_pem: &str, now: Timestamp) -> bool {
    let Ok(info) = cert_info(cert_pem, "leaf") else {
        return true;
    };
    if !is_signed_by(cert_pem, ca_cert_pem) {
        return true;
    }
    let lifetime = info.not_after.duration_since(info.not_before);
    let Ok(half_life) = info.not_before.checked_add(lifetime / 2) else {
        return true;
    };
    now >= half_life
}

/// Checks that a private key parses (used to validate user-provided Secrets before use).
pub fn check_key(key_pem: &str, what: &str) -> Result<(), CertError> {
    KeyPair::from_pem(key_pem)
        .map(|_| ())
        .map_err(|source| CertError::ParseKey {
            what: what.to_string(),
            source,
        })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn ca_is_self_signed_valid_ten_years_with_a_key_of_the_chosen_algorithm() {
        for (algorithm, expected) in [
            (KeyAlgorithm::Rsa2048, &PKCS_RSA_SHA256),
            (KeyAlgorithm::EcdsaP256, &PKCS_ECDSA_P256_SHA256),
        ] {
            let ca = generate_ca_with(algorithm, "kubernetes", now()).unwrap();
            check_key(&ca.key_pem, "ca").unwrap();
            let key = KeyPair::from_pem(&ca.key_pem).unwrap();
            assert_eq!(key.algorithm(), expected);
            let der = parse_pem_cert(&ca.cert_pem, "ca").unwrap();
            let cert = parse_x509(&der, "ca").unwrap();
            let usage = cert.key_usage().unwrap().unwrap().value;
            assert!(usage.key_cert_sign() && usage.crl_sign() && usage.digital_signature());
            assert_eq!(
                usage.key_encipherment(),
                algorithm == KeyAlgorithm::Rsa2048,
                "key encipherment only for RSA keys"
            );
            // An RSA CA signs a leaf with an ECDSA key, and the other way round.
            let other = match algorithm {
                KeyAlgorithm::Rsa2048 => KeyAlgorithm::EcdsaP256,
                KeyAlgorithm::EcdsaP256 => KeyAlgorithm::Rsa2048,
            };
            let issuer = generate_ca_with(other, "other", now()).unwrap();
            let leaf = sign_leaf(&issuer, "other", &kubeconfig_like_leaf(), now()).unwrap();
            assert!(is_signed_by(&leaf.cert_pem, &issuer.cert_pem));
        }
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::EcdsaP256);
        let ca = generate_ca("kubernetes", now()).unwrap();
        assert!(ca.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let info = cert_info(&ca.cert_pem, "ca").unwrap();
        assert_eq!(info.common_name.as_deref(), Some("kubernetes"));
        let days = info.not_after.duration_since(now()).as_hours() / 24;
        assert_eq!(days, 3650);
        assert!(is_signed_by(&ca.cert_pem, &ca.cert_pem));
        let der = parse_pem_cert(&ca.cert_pem, "ca").unwrap();
        let cert = parse_x509(&der, "ca").unwrap();
        assert!(cert.is_ca());
    }

    fn kubeconfig_like_leaf() -> LeafSpec {
        LeafSpec {
            common_name: "kubernetes-admin".into(),
            organizations: vec!["system:masters".into()],
            sans: vec![],
            usage: Usage::Client,
        }
    }

    #[test]
    fn leaf_is_signed_by_its_ca_with_sans_and_groups() {
        let ca = generate_ca("etcd-ca", now()).unwrap();
        let spec = LeafSpec {
            common_name: "kubernetes-admin".into(),
            organizations: vec!["system:masters".into()],
            sans: vec![
                "127.0.0.1".into(),
                "kmc-a-etcd".into(),
                "*.kmc-a-etcd".into(),
            ],
            usage: Usage::ServerAndClient,
        };
        let leaf = sign_leaf(&ca, "a-etcd", &spec, now()).unwrap();
        assert!(is_signed_by(&leaf.cert_pem, &ca.cert_pem));
        let info = cert_info(&leaf.cert_pem, "leaf").unwrap();
        assert_eq!(info.common_name.as_deref(), Some("kubernetes-admin"));
        assert_eq!(info.sans, vec!["127.0.0.1", "kmc-a-etcd", "*.kmc-a-etcd"]);
        let der = parse_pem_cert(&leaf.cert_pem, "leaf").unwrap();
        let cert = parse_x509(&der, "leaf").unwrap();
        let org: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap().to_string())
            .collect();
        assert_eq!(org, vec!["system:masters"]);
        assert!(!cert.is_ca());
    }

    #[test]
    fn leaf_from_another_ca_is_not_signed_by_this_one() {
        let ca = generate_ca("kubernetes", now()).unwrap();
        let other = generate_ca("kubernetes", now()).unwrap();
        let spec = LeafSpec {
            common_name: "x".into(),
            organizations: vec![],
            sans: vec![],
            usage: Usage::Client,
        };
        let leaf = sign_leaf(&other, "other", &spec, now()).unwrap();
        assert!(!is_signed_by(&leaf.cert_pem, &ca.cert_pem));
        assert!(needs_renewal(&leaf.cert_pem, &ca.cert_pem, now()));
    }

    #[test]
    fn renewal_at_half_life() {
        let ca = generate_ca("kubernetes", now()).unwrap();
        let spec = LeafSpec {
            common_name: "x".into(),
            organizations: vec![],
            sans: vec![],
            usage: Usage::Client,
        };
        let leaf = sign_leaf(&ca, "ca", &spec, now()).unwrap();
        assert!(!needs_renewal(&leaf.cert_pem, &ca.cert_pem, now()));
        let almost = now()
            .checked_add(SignedDuration::from_hours(24 * 180))
            .unwrap();
        assert!(!needs_renewal(&leaf.cert_pem, &ca.cert_pem, almost));
        let past_half = now()
            .checked_add(SignedDuration::from_hours(24 * 183))
            .unwrap();
        assert!(needs_renewal(&leaf.cert_pem, &ca.cert_pem, past_half));
        assert!(needs_renewal("garbage", &ca.cert_pem, now()));
    }

    #[test]
    fn sa_key_pair_is_public_and_private_pem() {
        let sa = generate_sa_key_pair().unwrap();
        assert!(sa.cert_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        check_key(&sa.key_pem, "sa").unwrap();
    }

    #[test]
    fn reads_the_first_certificate_of_a_bundle_whatever_surrounds_it() {
        let ca = generate_ca("bundle-ca", now()).unwrap();
        let other = generate_ca("second", now()).unwrap();
        // openssl's text dump before it, a key block first, CRLF line ends, a second certificate.
        let bundle = format!(
            "Certificate:\n    Data: ...\n{}{}{}",
            ca.key_pem,
            ca.cert_pem.replace('\n', "\r\n"),
            other.cert_pem
        );
        let info = cert_info(&bundle, "ca").unwrap();
        assert_eq!(info.common_name.as_deref(), Some("bundle-ca"));
        // A block cut short, or with a broken body, is refused rather than half read.
        let truncated = ca.cert_pem.replace("-----END CERTIFICATE-----", "");
        assert!(cert_info(&truncated, "ca").is_err());
        let garbled = ca.cert_pem.replacen("MII", "M!I", 1);
        assert!(cert_info(&garbled, "ca").is_err());
        assert!(cert_info("no pem here", "ca").is_err());
    }

    #[test]
    fn reads_pkcs1_keys_as_capi_writes_them() {
        // A user-provided Secret made by CAPI tooling carries `RSA PRIVATE KEY` (PKCS#1).
        let pkcs1 = include_str!("../tests/fixtures/pkcs1-key.pem");
        check_key(pkcs1, "user").unwrap();
        assert!(check_key("not a key", "user").is_err());
    }

    #[test]
    fn secret_data_round_trip_and_debug_hides_key() {
        let m = KeyMaterial {
            cert_pem: "C".into(),
            key_pem: "SECRET".into(),
        };
        assert_eq!(
            KeyMaterial::from_secret_data(&m.to_secret_data()),
            Some(m.clone())
        );
        assert!(!format!("{m:?}").contains("SECRET"));
        let mut partial = m.to_secret_data();
        partial.remove(TLS_KEY);
        assert_eq!(KeyMaterial::from_secret_data(&partial), None);
    }

    /// Key generation hands its worker over: a ticker on a one-worker runtime keeps ticking
    /// while keys are generated (inline, it would stop for the whole generation).
    #[test]
    fn key_generation_does_not_starve_the_runtime() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::{Duration, Instant};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let max_gap_ms = Arc::new(AtomicU64::new(0));
        let gaps = max_gap_ms.clone();
        let elapsed = rt.block_on(async move {
            let ticker = tokio::spawn(async move {
                let mut last = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let now = Instant::now();
                    let gap = u64::try_from((now - last).as_millis()).unwrap_or(u64::MAX);
                    gaps.fetch_max(gap, Ordering::SeqCst);
                    last = now;
                }
            });
            // Let the ticker start before the keys take the worker.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let elapsed = tokio::spawn(async {
                let t = Instant::now();
                for _ in 0..3 {
                    new_key(KeyAlgorithm::Rsa2048).unwrap();
                }
                t.elapsed()
            })
            .await
            .unwrap();
            ticker.abort();
            elapsed
        });
        let max_gap = Duration::from_millis(max_gap_ms.load(Ordering::SeqCst));
        // Inline generation would stall the ticker for at least one key's time (a third of the
        // total); handed over, its gaps stay scheduling noise.
        assert!(
            max_gap < elapsed / 3,
            "the runtime stalled {max_gap:?} while generating keys for {elapsed:?}"
        );
    }
}
