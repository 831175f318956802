//! `WorkloadServer`: a second API server fronted by a CA the test generates, as our provider's
//! cluster CA will front one. Needs `cluster up`.

use anyhow::{Context, ensure};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use serde_json::json;
use test_support::{WorkloadServer, client_from_kubeconfig_yaml, free_port, unique_name};

/// An RSA CA like the one our control-plane provider generates.
fn rsa_ca(cn: &str) -> anyhow::Result<(CertificateParams, KeyPair, String)> {
    let key = KeyPair::generate_for(&PKCS_RSA_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((params, key, cert.pem()))
}

/// A client certificate for `user` in `group`, signed by the CA; returned as (cert, key) PEM.
fn client_cert(
    ca: &CertificateParams,
    ca_key: &KeyPair,
    user: &str,
    group: &str,
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    params
        .distinguished_name
        .push(DnType::OrganizationName, group);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &Issuer::from_params(ca, ca_key))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn kubeconfig(url: &str, ca_pem: &str, user: serde_json::Value) -> String {
    json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "w",
        "clusters": [{"name": "w", "cluster": {
            "server": url, "certificate-authority-data": BASE64_STANDARD.encode(ca_pem)}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "w", "context": {"cluster": "w", "user": "u"}}],
    })
    .to_string()
}

fn cert_user(cert: &str, key: &str) -> serde_json::Value {
    json!({"client-certificate-data": BASE64_STANDARD.encode(cert),
           "client-key-data": BASE64_STANDARD.encode(key)})
}

/// Who the API server says we are: (username, groups).
async fn whoami(client: Client) -> Result<(String, Vec<String>), kube::Error> {
    let review = Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    let info = review.status.and_then(|s| s.user_info).unwrap_or_default();
    Ok((
        info.username.unwrap_or_default(),
        info.groups.unwrap_or_default(),
    ))
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn workload_server_trusts_the_given_ca() -> anyhow::Result<()> {
    let (ca, ca_key, ca_pem) = rsa_ca("workload-test-ca")?;
    let name = unique_name("wl");
    let server =
        WorkloadServer::start(&name, &ca_pem, &ca_key.serialize_pem(), free_port()?).await?;

    // The script's own admin kubeconfig works.
    let admin = server.client().await?;
    Api::<Namespace>::all(admin.clone())
        .list(&ListParams::default())
        .await?;

    // A client certificate we sign with the CA authenticates (and the serving certificate
    // verifies against the same CA: the kubeconfig trusts nothing else).
    let (cert, key) = client_cert(&ca, &ca_key, "alice", "system:masters")?;
    let alice =
        client_from_kubeconfig_yaml(&kubeconfig(server.url(), &ca_pem, cert_user(&cert, &key)))
            .await?;
    let (user, groups) = whoami(alice).await?;
    ensure!(user == "alice", "authenticated as {user:?}");
    ensure!(
        groups.iter().any(|g| g == "system:masters"),
        "groups {groups:?}"
    );

    // A certificate from another CA is rejected.
    let (other, other_key, _) = rsa_ca("some-other-ca")?;
    let (cert, key) = client_cert(&other, &other_key, "mallory", "system:masters")?;
    let mallory =
        client_from_kubeconfig_yaml(&kubeconfig(server.url(), &ca_pem, cert_user(&cert, &key)))
            .await?;
    match whoami(mallory).await {
        Err(kube::Error::Api(status)) if status.code == 401 => {}
        other => anyhow::bail!("a foreign client certificate was not rejected with 401: {other:?}"),
    }

    // Bootstrap tokens authenticate as system:bootstrappers (--enable-bootstrap-token-auth).
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                       "usage-bootstrap-authentication": "true"}
    }))?;
    Api::<Secret>::namespaced(admin, "kube-system")
        .create(&PostParams::default(), &secret)
        .await?;
    let bootstrapper = client_from_kubeconfig_yaml(&kubeconfig(
        server.url(),
        &ca_pem,
        json!({"token": "abcdef.0123456789abcdef"}),
    ))
    .await?;
    let (user, groups) = whoami(bootstrapper).await.context("bootstrap token")?;
    ensure!(
        user == "system:bootstrap:abcdef",
        "authenticated as {user:?}"
    );
    ensure!(
        groups.iter().any(|g| g == "system:bootstrappers"),
        "groups {groups:?}"
    );

    server.stop()?;
    Ok(())
}
