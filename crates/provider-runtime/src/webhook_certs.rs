//! The conversion webhook's certificates, made and rotated by the provider itself (no
//! cert-manager): a CA and a serving certificate for the webhook's Service (or URL), kept in one
//! Secret of the provider's namespace so every replica and restart serves the same pair, renewed
//! before they expire, and the CA bundle written into `spec.conversion.webhook.clientConfig` of
//! exactly our CRDs, named one by one. Owns that Secret and that CRD field; serves nothing
//! (`webhook` does).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k0smotron_api::names::CONVERSION_PATH;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::webhook::ServingCert;

/// Lifetime of a new webhook CA.
pub const CA_VALIDITY: SignedDuration = SignedDuration::from_hours(10 * 365 * 24);
/// A CA with less than this left is replaced (the old one stays in the bundle until it expires).
pub const CA_RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(365 * 24);
/// Lifetime of a new serving certificate.
pub const SERVING_VALIDITY: SignedDuration = SignedDuration::from_hours(365 * 24);
/// A serving certificate with less than this left is replaced.
pub const SERVING_RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(90 * 24);
/// Clock skew allowance: certificates start this long before they are made.
const BACKDATE: SignedDuration = SignedDuration::from_mins(5);
/// How often the Secret and the CRDs are checked once all is well (a CRD re-applied by an
/// upgrade gets its CA bundle back within this).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// How soon a failed check is retried.
const RETRY_INTERVAL: Duration = Duration::from_secs(10);
/// Field manager of the CRD patches.
pub const FIELD_MANAGER: &str = "k0smotron-webhook";

/// Keys of the Secret.
pub const CA_CERT_KEY: &str = "ca.crt";
/// The current CA's private key.
pub const CA_KEY_KEY: &str = "ca.key";
/// The serving certificate.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// The serving certificate's key.
pub const TLS_KEY_KEY: &str = "tls.key";

/// Where the API server reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Service (port 443) in front of the provider's pods: what the release manifests use.
    Service {
        /// The Service's name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// An `https://` URL (the API server must reach it directly: local runs and tests).
    Url(String),
}

/// What [`run`] keeps up to date.
#[derive(Clone, Debug)]
pub struct CertConfig {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// Where the webhook is reached (names the certificate covers, and the CRDs' client config).
    pub target: Target,
    /// Names of the CRDs whose conversion webhook this provider serves; absent ones are skipped.
    pub crds: Vec<String>,
}

/// Failures of one check.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A key could not be generated.
    #[error("generating a key")]
    Key(#[source] rcgen::Error),
    /// A certificate could not be signed.
    #[error("signing the webhook {what} certificate")]
    Sign {
        /// `CA` or `serving`.
        what: &'static str,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
    /// A name of the target is not a valid DNS name.
    #[error("{name:?} cannot be a certificate name")]
    Name {
        /// The name.
        name: String,
    },
    /// The time is outside what certificates can express.
    #[error("certificate validity out of range")]
    Time,
    /// The stored serving pair was refused by rustls.
    #[error("loading the webhook serving certificate")]
    Load(#[source] rustls::Error),
    /// Reading or writing the Secret failed.
    #[error("{action} Secret {namespace}/{name}")]
    Secret {
        /// `reading`, `creating` or `replacing`.
        action: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Reading or patching a CRD failed.
    #[error("{action} CRD {name}")]
    Crd {
        /// `reading` or `patching`.
        action: &'static str,
        /// The CRD's name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
}

// ---------------------------------------------------------------------------------------------
// Pure: names, plans, issuing
// ---------------------------------------------------------------------------------------------

/// The names the serving certificate must cover.
pub fn dns_names(target: &Target) -> Vec<String> {
    match target {
        Target::Service { name, namespace } => vec![
            format!("{name}.{namespace}.svc"),
            format!("{name}.{namespace}.svc.cluster.local"),
        ],
        Target::Url(url) => url_host(url).into_iter().collect(),
    }
}

/// The host of an `https://host[:port]/path` URL, IPv6 brackets removed.
fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// The four PEM values of the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    /// The CAs the API server trusts: the current one first, then a replaced one until it
    /// expires (serving certificates it signed are still in use on other replicas).
    pub ca_bundle: String,
    /// The current CA's key.
    pub ca_key: String,
    /// The serving certificate.
    pub cert: String,
    /// Its key.
    pub key: String,
}

impl Material {
    /// Reads the Secret's data; `None` when a key is missing or not UTF-8.
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let get = |key: &str| {
            data.get(key)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
        };
        Some(Self {
            ca_bundle: get(CA_CERT_KEY)?,
            ca_key: get(CA_KEY_KEY)?,
            cert: get(TLS_CERT_KEY)?,
            key: get(TLS_KEY_KEY)?,
        })
    }

    fn into_data(self) -> BTreeMap<String, ByteString> {
        BTreeMap::from([
            (
                CA_CERT_KEY.to_owned(),
                ByteString(self.ca_bundle.into_bytes()),
            ),
            (CA_KEY_KEY.to_owned(), ByteString(self.ca_key.into_bytes())),
            (TLS_CERT_KEY.to_owned(), ByteString(self.cert.into_bytes())),
            (TLS_KEY_KEY.to_owned(), ByteString(self.key.into_bytes())),
        ])
    }

    /// The serving pair as rustls serves it.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, CertError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| CertError::Load(rustls::Error::General(e.to_string())))?;
        let key = PrivateKeyDer::from_pem_slice(self.key.as_bytes())
            .map_err(|e| CertError::Load(rustls::Error::General(e.to_string())))?;
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider).map_err(CertError::Load)?;
        Ok(Arc::new(certified))
    }
}

/// What a check must do with the stored material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// All is valid for long enough.
    Keep,
    /// A new serving certificate from the current CA.
    NewServing,
    /// A new CA (and serving certificate); the old CA stays in the bundle while valid.
    NewCa,
}

struct Parsed {
    not_before: Timestamp,
    not_after: Timestamp,
    names: Vec<String>,
}

fn pem_ders(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

fn parse(der: &CertificateDer<'_>) -> Option<Parsed> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let validity = cert.validity();
    let mut names = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    Some(Parsed {
        not_before: Timestamp::from_second(validity.not_before.timestamp()).ok()?,
        not_after: Timestamp::from_second(validity.not_after.timestamp()).ok()?,
        names,
    })
}

fn signed_by(cert: &CertificateDer<'_>, ca: &CertificateDer<'_>) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(cert.as_ref()),
        X509Certificate::from_der(ca.as_ref()),
    ) else {
        return false;
    };
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// `true` while `now` is inside the validity and at least `margin` of it remains.
fn fresh(parsed: &Parsed, now: Timestamp, margin: SignedDuration) -> bool {
    parsed.not_before <= now
        && now
            .checked_add(margin)
            .is_ok_and(|limit| limit < parsed.not_after)
}

/// Decides what to renew: the CA when it is missing, unreadable, not matched by its key or
/// within [`CA_RENEW_BEFORE`] of its end; the serving certificate when it is missing,
/// unreadable, not signed by the current CA, not for all of `names`, not matched by its key,
/// or within [`SERVING_RENEW_BEFORE`] of its end.
pub fn plan(existing: Option<&Material>, names: &[String], now: Timestamp) -> Plan {
    let Some(material) = existing else {
        return Plan::NewCa;
    };
    let cas = pem_ders(&material.ca_bundle);
    let Some(ca) = cas.first() else {
        return Plan::NewCa;
    };
    let ca_ok = parse(ca).is_some_and(|p| fresh(&p, now, CA_RENEW_BEFORE))
        && Issuer::from_ca_cert_pem(
            &material.ca_bundle,
            match KeyPair::from_pem(&material.ca_key) {
                Ok(key) => key,
                Err(_) => return Plan::NewCa,
            },
        )
        .is_ok();
    if !ca_ok {
        return Plan::NewCa;
    }
    let serving = pem_ders(&material.cert);
    let serving_ok = serving.first().is_some_and(|cert| {
        signed_by(cert, ca)
            && parse(cert).is_some_and(|p| {
                fresh(&p, now, SERVING_RENEW_BEFORE) && names.iter().all(|n| p.names.contains(n))
            })
    }) && material.certified_key().is_ok();
    if serving_ok {
        Plan::Keep
    } else {
        Plan::NewServing
    }
}

fn offset(t: Timestamp) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(|_| CertError::Time)
}

fn params(
    common_name: &str,
    now: Timestamp,
    validity: SignedDuration,
) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = offset(now.checked_sub(BACKDATE).map_err(|_| CertError::Time)?)?;
    params.not_after = offset(now.checked_add(validity).map_err(|_| CertError::Time)?)?;
    let serial: [u8; 16] = rand::random();
    // Positive (high bit clear), as RFC 5280 asks.
    let mut serial = serial.to_vec();
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    Ok(params)
}

fn new_key() -> Result<KeyPair, CertError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CertError::Key)
}

/// Carries out `plan` (anything but [`Plan::Keep`]) on `existing`, for `names`.
pub fn issue(
    existing: Option<&Material>,
    plan: Plan,
    names: &[String],
    now: Timestamp,
) -> Result<Material, CertError> {
    let (ca_cert, ca_key, bundle) = match (plan, existing) {
        (Plan::NewServing | Plan::Keep, Some(material)) => (
            pem_ders(&material.ca_bundle)
                .first()
                .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())))
                .unwrap_or_default(),
            material.ca_key.clone(),
            material.ca_bundle.clone(),
        ),
        _ => {
            let key = new_key()?;
            let mut ca = params("k0smotron webhook CA", now, CA_VALIDITY)?;
            ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            ca.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::CrlSign,
            ];
            let cert = ca
                .self_signed(&key)
                .map_err(|source| CertError::Sign { what: "CA", source })?;
            // The replaced CAs that are still valid stay trusted: other replicas may serve
            // certificates they signed until they pick up the new Secret.
            let mut bundle = cert.pem();
            if let Some(old) = existing {
                for der in pem_ders(&old.ca_bundle) {
                    if parse(&der).is_some_and(|p| now < p.not_after) {
                        bundle.push_str(&pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())));
                    }
                }
            }
            (cert.pem(), key.serialize_pem(), bundle)
        }
    };
    let issuer_key =
        KeyPair::from_pem(&ca_key).map_err(|source| CertError::Sign { what: "CA", source })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, issuer_key)
        .map_err(|source| CertError::Sign { what: "CA", source })?;
    let key = new_key()?;
    let common_name = names.first().map_or("k0smotron-webhook", String::as_str);
    let mut serving = params(common_name, now, SERVING_VALIDITY)?;
    serving.is_ca = IsCa::ExplicitNoCa;
    serving.use_authority_key_identifier_extension = true;
    serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    serving.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| CertError::Name { name: name.clone() }),
        })
        .collect::<Result<_, _>>()?;
    let cert = serving
        .signed_by(&key, &issuer)
        .map_err(|source| CertError::Sign {
            what: "serving",
            source,
        })?;
    Ok(Material {
        ca_bundle: bundle,
        ca_key,
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The merge patch giving a CRD our conversion webhook: `target` and `ca_bundle` (PEM), the
/// other kind of target removed.
pub fn crd_patch(target: &Target, ca_bundle: &str) -> serde_json::Value {
    let (service, url) = match target {
        Target::Service { name, namespace } => (
            json!({"name": name, "namespace": namespace, "path": CONVERSION_PATH, "port": 443}),
            serde_json::Value::Null,
        ),
        Target::Url(url) => (serde_json::Value::Null, json!(url)),
    };
    json!({"spec": {"conversion": {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {
                "caBundle": ByteString(ca_bundle.as_bytes().to_vec()),
                "service": service,
                "url": url,
            }
        }
    }}})
}

/// Whether `crd` already has what [`crd_patch`] writes.
fn crd_is_current(crd: &CustomResourceDefinition, target: &Target, ca_bundle: &str) -> bool {
    let Some(conversion) = crd.spec.conversion.as_ref() else {
        return false;
    };
    let Some(config) = conversion
        .webhook
        .as_ref()
        .and_then(|w| w.client_config.as_ref())
    else {
        return false;
    };
    let target_ok = match target {
        Target::Service { name, namespace } => {
            config.url.is_none()
                && config.service.as_ref().is_some_and(|s| {
                    s.name == *name
                        && s.namespace == *namespace
                        && s.path.as_deref() == Some(CONVERSION_PATH)
                        && s.port.unwrap_or(443) == 443
                })
        }
        Target::Url(url) => config.service.is_none() && config.url.as_deref() == Some(url),
    };
    conversion.strategy == "Webhook"
        && target_ok
        && config.ca_bundle.as_ref().map(|b| b.0.as_slice()) == Some(ca_bundle.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// I/O
// ---------------------------------------------------------------------------------------------

/// Reads the Secret, renews what [`plan`] says (creating the Secret, or replacing it at the
/// version read so that replicas racing each other keep one result), and returns what is
/// stored.
pub async fn ensure_secret(
    client: &Client,
    config: &CertConfig,
    now: Timestamp,
) -> Result<Material, CertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let err = |action: &'static str| {
        let (namespace, name) = (config.namespace.clone(), config.secret.clone());
        move |source| CertError::Secret {
            action,
            namespace,
            name,
            source: Box::new(source),
        }
    };
    let names = dns_names(&config.target);
    let existing = api.get_opt(&config.secret).await.map_err(err("reading"))?;
    let material = existing.as_ref().and_then(Material::from_secret);
    let plan = plan(material.as_ref(), &names, now);
    if plan == Plan::Keep
        && let Some(material) = material
    {
        return Ok(material);
    }
    tracing::info!(secret = %config.secret, ?plan, "renewing the webhook certificates");
    let renewed = issue(material.as_ref(), plan, &names, now)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(config.secret.clone()),
            namespace: Some(config.namespace.clone()),
            resource_version: existing
                .as_ref()
                .and_then(|s| s.metadata.resource_version.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "k0smotron".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(renewed.clone().into_data()),
        ..Secret::default()
    };
    let written = match existing {
        None => api.create(&PostParams::default(), &secret).await,
        Some(_) => {
            api.replace(&config.secret, &PostParams::default(), &secret)
                .await
        }
    };
    match written {
        Ok(_) => Ok(renewed),
        // Another replica wrote first: serve what it wrote.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let stored = api.get(&config.secret).await.map_err(err("reading"))?;
            Material::from_secret(&stored).ok_or_else(|| CertError::Secret {
                action: "reading",
                namespace: config.namespace.clone(),
                name: config.secret.clone(),
                source: Box::new(kube::Error::Api(status)),
            })
        }
        Err(source) => Err(err(if secret.metadata.resource_version.is_some() {
            "replacing"
        } else {
            "creating"
        })(source)),
    }
}

/// Writes the client config and CA bundle into each of `config.crds` that lacks them.
pub async fn inject(
    client: &Client,
    config: &CertConfig,
    ca_bundle: &str,
) -> Result<(), CertError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let patch = crd_patch(&config.target, ca_bundle);
    for name in &config.crds {
        let crd = api.get_opt(name).await.map_err(|source| CertError::Crd {
            action: "reading",
            name: name.clone(),
            source: Box::new(source),
        })?;
        let Some(crd) = crd else {
            tracing::debug!(crd = %name, "CRD not installed; no CA bundle to inject");
            continue;
        };
        if crd_is_current(&crd, &config.target, ca_bundle) {
            continue;
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        api.patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|source| CertError::Crd {
                action: "patching",
                name: name.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(crd = %name, "conversion webhook CA bundle injected");
    }
    Ok(())
}

/// One check: the Secret renewed as needed, the CRDs patched, then the serving certificate
/// swapped in (after the CRDs trust its CA).
pub async fn check(
    client: &Client,
    config: &CertConfig,
    serving: &ServingCert,
) -> Result<(), CertError> {
    let material = ensure_secret(client, config, Timestamp::now()).await?;
    inject(client, config, &material.ca_bundle).await?;
    serving.set(material.certified_key()?);
    Ok(())
}

/// Keeps the certificates and CRDs current until `shutdown`: a check every
/// [`CHECK_INTERVAL`], sooner after a failure.
pub async fn run(
    client: Client,
    config: CertConfig,
    serving: Arc<ServingCert>,
    shutdown: CancellationToken,
) {
    loop {
        let wait = match check(&client, &config, &serving).await {
            Ok(()) => CHECK_INTERVAL,
            Err(err) => {
                tracing::warn!(error = %crate::webhook::error_chain(&err), "webhook certificates");
                RETRY_INTERVAL
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn service() -> Target {
        Target::Service {
            name: "k0smotron-control-plane-webhook-service".into(),
            namespace: "k0smotron-control-plane-system".into(),
        }
    }

    fn now() -> Timestamp {
        "2026-12-06T20:00:00Z".parse().unwrap()
    }

    fn days(n: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * n)
    }

    #[test]
    fn names_of_a_service_and_of_a_url() {
        assert_eq!(
            dns_names(&service()),
            [
                "k0smotron-control-plane-webhook-service.k0smotron-control-plane-system.svc",
                "k0smotron-control-plane-webhook-service.k0smotron-control-plane-system.svc.cluster.local"
            ]
        );
        assert_eq!(
            dns_names(&Target::Url("https://127.0.0.1:9443/convert".into())),
            ["127.0.0.1"]
        );
        assert_eq!(
            dns_names(&Target::Url("https://[::1]:9443/convert".into())),
            ["::1"]
        );
        assert_eq!(
            dns_names(&Target::Url("https://webhook.example/convert".into())),
            ["webhook.example"]
        );
        assert!(dns_names(&Target::Url("http://plain/convert".into())).is_empty());
    }

    #[test]
    fn a_new_pair_is_kept_until_renewal_is_due() {
        let names = dns_names(&service());
        assert_eq!(plan(None, &names, now()), Plan::NewCa);
        let material = issue(None, Plan::NewCa, &names, now()).unwrap();
        assert_eq!(plan(Some(&material), &names, now()), Plan::Keep);
        assert!(material.certified_key().is_ok());
        // The serving certificate is renewed 90 days before its year ends, from the same CA.
        let later = now().checked_add(days(365 - 89)).unwrap();
        assert_eq!(plan(Some(&material), &names, later), Plan::NewServing);
        let renewed = issue(Some(&material), Plan::NewServing, &names, later).unwrap();
        assert_eq!(renewed.ca_bundle, material.ca_bundle);
        assert_eq!(renewed.ca_key, material.ca_key);
        assert_ne!(renewed.cert, material.cert);
        assert_eq!(plan(Some(&renewed), &names, later), Plan::Keep);
    }

    #[test]
    fn other_names_or_a_foreign_certificate_get_a_new_serving_certificate() {
        let names = dns_names(&service());
        let material = issue(None, Plan::NewCa, &names, now()).unwrap();
        let url = dns_names(&Target::Url("https://127.0.0.1:9443/convert".into()));
        assert_eq!(plan(Some(&material), &url, now()), Plan::NewServing);
        let other = issue(None, Plan::NewCa, &names, now()).unwrap();
        let mixed = Material {
            cert: other.cert.clone(),
            key: other.key.clone(),
            ..material.clone()
        };
        assert_eq!(plan(Some(&mixed), &names, now()), Plan::NewServing);
        let wrong_key = Material {
            key: other.key,
            ..material.clone()
        };
        assert_eq!(plan(Some(&wrong_key), &names, now()), Plan::NewServing);
        let garbage = Material {
            cert: "garbage".into(),
            ..material
        };
        assert_eq!(plan(Some(&garbage), &names, now()), Plan::NewServing);
    }

    #[test]
    fn the_ca_is_replaced_a_year_before_it_ends_and_the_old_one_stays_trusted() {
        let names = dns_names(&service());
        let material = issue(None, Plan::NewCa, &names, now()).unwrap();
        let late = now().checked_add(days(9 * 365 + 10)).unwrap();
        assert_eq!(plan(Some(&material), &names, late), Plan::NewCa);
        let rotated = issue(Some(&material), Plan::NewCa, &names, late).unwrap();
        assert_ne!(rotated.ca_key, material.ca_key);
        let bundle = pem_ders(&rotated.ca_bundle);
        assert_eq!(bundle.len(), 2, "new CA first, then the old one");
        assert_eq!(bundle[1], pem_ders(&material.ca_bundle)[0]);
        assert!(signed_by(&pem_ders(&rotated.cert)[0], &bundle[0]));
        assert_eq!(plan(Some(&rotated), &names, late), Plan::Keep);
        // Once the old CA has expired, the next rotation drops it.
        let much_later = late.checked_add(days(9 * 365 + 10)).unwrap();
        let again = issue(Some(&rotated), Plan::NewCa, &names, much_later).unwrap();
        let bundle = pem_ders(&again.ca_bundle);
        assert_eq!(bundle.len(), 2);
        assert_eq!(bundle[1], pem_ders(&rotated.ca_bundle)[0]);
    }

    #[test]
    fn a_ca_without_its_key_is_replaced() {
        let names = dns_names(&service());
        let material = issue(None, Plan::NewCa, &names, now()).unwrap();
        let other = issue(None, Plan::NewCa, &names, now()).unwrap();
        let broken = Material {
            ca_key: "not a key".into(),
            ..material.clone()
        };
        assert_eq!(plan(Some(&broken), &names, now()), Plan::NewCa);
        let empty = Material {
            ca_bundle: String::new(),
            ..material
        };
        assert_eq!(plan(Some(&empty), &names, now()), Plan::NewCa);
        assert_eq!(plan(Some(&other), &names, now()), Plan::Keep);
    }

    #[test]
    fn the_crd_patch_sets_one_target_and_the_bundle() {
        let patch = crd_patch(&service(), "PEM");
        let config = &patch["spec"]["conversion"]["webhook"]["clientConfig"];
        assert_eq!(config["caBundle"], "UEVN");
        assert_eq!(config["url"], serde_json::Value::Null);
        assert_eq!(config["service"]["path"], "/convert");
        assert_eq!(config["service"]["port"], 443);
        assert_eq!(
            patch["spec"]["conversion"]["webhook"]["conversionReviewVersions"],
            json!(["v1"])
        );
        let url = crd_patch(&Target::Url("https://127.0.0.1:1/convert".into()), "PEM");
        let config = &url["spec"]["conversion"]["webhook"]["clientConfig"];
        assert_eq!(config["service"], serde_json::Value::Null);
        assert_eq!(config["url"], "https://127.0.0.1:1/convert");

        // A CRD carrying exactly that is left alone.
        let mut crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {"group": "g", "names": {"kind": "K", "plural": "ks"}, "scope": "Namespaced", "versions": []}
        }))
        .unwrap();
        assert!(!crd_is_current(&crd, &service(), "PEM"));
        crd.spec.conversion = serde_json::from_value(patch["spec"]["conversion"].clone()).unwrap();
        assert!(crd_is_current(&crd, &service(), "PEM"));
        assert!(!crd_is_current(&crd, &service(), "OTHER"));
        assert!(!crd_is_current(
            &crd,
            &Target::Url("https://127.0.0.1:1/convert".into()),
            "PEM"
        ));
    }
}
