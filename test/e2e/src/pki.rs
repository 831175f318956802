//! Key material a test brings: a cluster CA in CAPI's `<cluster>-ca` Secret format (RSA, as the
//! provider would generate it) and a throwaway serving certificate for CAPI core's webhook
//! server. Generation only.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256,
    RsaKeySize,
};

/// Key or certificate generation failed.
#[derive(Debug, thiserror::Error)]
#[error("generating {what}")]
pub struct PkiError {
    /// What was generated.
    pub what: &'static str,
    /// What went wrong.
    #[source]
    pub source: rcgen::Error,
}

/// A PEM certificate and its PEM private key.
#[derive(Clone, Debug)]
pub struct CertAndKey {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

/// A self-signed RSA-2048 CA named `kubernetes`, valid ten years from now, like the one the
/// control-plane provider generates when `<cluster>-ca` does not exist.
pub fn cluster_ca() -> Result<CertAndKey, PkiError> {
    let err = |what| move |source| PkiError { what, source };
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
        .map_err(err("an RSA key"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA params"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kubernetes");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let now = rcgen::date_time_ymd(2020, 1, 1);
    params.not_before = now;
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let cert = params
        .self_signed(&key)
        .map_err(err("the CA certificate"))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A self-signed serving certificate for `localhost` / `127.0.0.1` (CAPI core's webhook server
/// refuses to start without one, even when no webhook is registered).
pub fn localhost_serving_cert() -> Result<CertAndKey, PkiError> {
    let err = |what| move |source| PkiError { what, source };
    let key = KeyPair::generate().map_err(err("a serving key"))?;
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(err("serving certificate params"))?;
    let cert = params
        .self_signed(&key)
        .map_err(err("the serving certificate"))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The `<cluster>-ca` Secret CAPI and the providers read: type `cluster.x-k8s.io/secret`,
/// label `cluster.x-k8s.io/cluster-name`, keys `tls.crt` and `tls.key`.
pub fn ca_secret(cluster: &str, namespace: &str, ca: &CertAndKey) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("{cluster}-ca")),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "cluster.x-k8s.io/cluster-name".to_owned(),
                cluster.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("cluster.x-k8s.io/secret".to_owned()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_owned(),
                ByteString(ca.cert_pem.clone().into_bytes()),
            ),
            (
                "tls.key".to_owned(),
                ByteString(ca.key_pem.clone().into_bytes()),
            ),
        ])),
        ..Secret::default()
    }
}
