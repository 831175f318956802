//! Exposure through an Ingress controller with TLS passthrough (`spec.ingress`, issue #13 part 3):
//! the checks of the tenant's hosts, class and annotations, the addresses the rest of the build
//! uses (endpoint, k0s `externalAddress`s, SANs), and the Ingress `kmc-<cluster>` with upstream's
//! two rules (apiHost → the Service's API port, konnectivityHost → its konnectivity port).
//!
//! The ingress controller must pass TLS through by SNI (e.g. ingress-nginx's
//! `nginx.ingress.kubernetes.io/ssl-passthrough: "true"`): the API server and konnectivity
//! terminate TLS themselves. With `deploy: false` no Ingress is written and the user's routing is
//! expected; everything else (config, endpoint, kubeconfig) is the same.
//!
//! Pure: it does not write the Ingress; the build step decides when it is written.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k0smotron_api::controlplane::v1beta2::IngressSpec;
use k0smotron_api::names;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as IngressObjectSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::labels;
use crate::validate::SpecError;

/// What the rest of the build needs of a checked `spec.ingress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressAddresses {
    /// `spec.ingress.apiHost`.
    pub api_host: String,
    /// `spec.ingress.konnectivityHost`.
    pub konnectivity_host: String,
    /// `spec.ingress.port`, the ingress controller's port clients connect to.
    pub port: i32,
}

impl IngressAddresses {
    /// The addresses of a spec's ingress; `None` without one. Call after [`check`].
    pub fn of(ingress: Option<&IngressSpec>) -> Option<Self> {
        let i = ingress?;
        Some(Self {
            api_host: i.api_host.clone(),
            konnectivity_host: i.konnectivity_host.clone(),
            port: i32::try_from(i.port).unwrap_or(i32::from(u16::MAX)),
        })
    }

    /// k0s `spec.api.externalAddress`: `<apiHost>:<port>` (k0s ≥ 1.35 takes a host:port and then
    /// uses that port in the URLs it makes, instead of `spec.api.port`).
    pub fn api_address(&self) -> String {
        host_port(&self.api_host, self.port)
    }

    /// k0s `spec.konnectivity.externalAddress`: `<konnectivityHost>:<port>`, where workers'
    /// konnectivity agents connect (k0s ≥ v1.35.1 runs its own agent with it).
    pub fn konnectivity_address(&self) -> String {
        host_port(&self.konnectivity_host, self.port)
    }

    /// The SANs the API server certificate needs behind the ingress (as upstream): loopback, and
    /// both hosts (clients verify the API host; the konnectivity host is harmless and matches
    /// upstream's certificate).
    pub fn sans(&self) -> Vec<String> {
        vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            self.api_host.clone(),
            self.konnectivity_host.clone(),
        ]
    }
}

fn host_port(host: &str, port: i32) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Checks `spec.ingress`: the hosts, the class and the annotations are the tenant's, and end up in
/// the Ingress the ingress controller reads, in the API server certificate and in every worker's
/// join token; anything that is not a plain name is refused here with the field named.
pub fn check(ingress: &IngressSpec) -> Result<(), SpecError> {
    check_host("spec.ingress.apiHost", &ingress.api_host, ingress.deploy)?;
    check_host(
        "spec.ingress.konnectivityHost",
        &ingress.konnectivity_host,
        ingress.deploy,
    )?;
    if ingress
        .api_host
        .eq_ignore_ascii_case(&ingress.konnectivity_host)
    {
        return Err(SpecError::Invalid(format!(
            "spec.ingress.apiHost and konnectivityHost must differ, both are {:?}: the ingress controller routes the API and konnectivity by the TLS server name alone",
            ingress.api_host
        )));
    }
    if !(1..=65535).contains(&ingress.port) {
        return Err(SpecError::Invalid(format!(
            "spec.ingress.port must be between 1 and 65535, got {}",
            ingress.port
        )));
    }
    if let Some(class) = &ingress.class_name
        && !is_dns_subdomain(class)
    {
        return Err(SpecError::Invalid(format!(
            "spec.ingress.className must be the name of an IngressClass (a DNS-1123 subdomain), got {class:?}"
        )));
    }
    for key in ingress.annotations.keys() {
        check_annotation_key(key)?;
    }
    let size: usize = ingress
        .annotations
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > MAX_ANNOTATIONS_SIZE {
        return Err(SpecError::Invalid(format!(
            "spec.ingress.annotations hold {size} bytes, more than the {MAX_ANNOTATIONS_SIZE} the API server accepts"
        )));
    }
    Ok(())
}

/// The API server's limit on all annotations of an object.
const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

/// A host is a DNS-1123 subdomain (lower case, as the Ingress API and TLS server names want it),
/// or, only with `deploy: false`, an IP address: the Ingress API refuses IP hosts, and TLS clients
/// send no server name for an IP, so only a proxy of the user's routing by port can use one.
fn check_host(field: &str, host: &str, deploy: bool) -> Result<(), SpecError> {
    if host.parse::<IpAddr>().is_ok() {
        if deploy {
            return Err(SpecError::Invalid(format!(
                "{field} is the IP address {host:?}: the Ingress needs a DNS name (TLS clients send no server name for an IP); use a DNS name, or deploy: false with your own routing"
            )));
        }
        return Ok(());
    }
    if !is_dns_subdomain(host) {
        return Err(SpecError::Invalid(format!(
            "{field} must be a DNS name (lower-case DNS-1123 subdomain, e.g. api.example.com){}, got {host:?}",
            if deploy { "" } else { " or an IP address" }
        )));
    }
    Ok(())
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated labels of lower-case letters,
/// digits and `-`, each at most 63, starting and ending alphanumeric.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_dns_label(l: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = l.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            l.len() <= 63
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|&c| alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// An annotation key is `[prefix/]name` as the API server wants it (prefix a DNS-1123 subdomain,
/// name at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends). Keys naming a configuration
/// snippet (ingress-nginx's `*-snippet`) are refused: they put the tenant's text into the ingress
/// controller's own configuration, shared by every tenant (docs/deviations.md).
fn check_annotation_key(key: &str) -> Result<(), SpecError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = |n: &str| {
        let b = n.as_bytes();
        let alnum = |c: &u8| c.is_ascii_alphanumeric();
        !n.is_empty()
            && n.len() <= 63
            && b.first().is_some_and(alnum)
            && b.last().is_some_and(alnum)
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    };
    if !name_ok(name) || prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        return Err(SpecError::Invalid(format!(
            "spec.ingress.annotations: {key:?} is not a valid annotation key ([prefix/]name, prefix a DNS subdomain, name up to 63 of A-Z a-z 0-9 - _ .)"
        )));
    }
    if name.to_ascii_lowercase().ends_with("snippet") {
        return Err(SpecError::Invalid(format!(
            "spec.ingress.annotations: {key:?} is refused: snippet annotations put text into the ingress controller's own configuration, which every tenant shares"
        )));
    }
    Ok(())
}

/// What the Ingress is built from.
#[derive(Debug, Clone)]
pub struct IngressInputs<'a> {
    /// Cluster name (children are named after it).
    pub cluster: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// The checked `spec.ingress`.
    pub spec: &'a IngressSpec,
    /// The exposure Service the rules route to.
    pub service: &'a str,
    /// Its API port.
    pub api_port: i32,
    /// Its konnectivity port.
    pub konnectivity_port: i32,
}

/// The Ingress `kmc-<cluster>`: one rule per host, path `/` (Prefix) to the exposure Service's
/// port, class and annotations from the spec, the component label `ingress`.
pub fn ingress(inputs: &IngressInputs<'_>, owner: &OwnerReference) -> Ingress {
    let rule = |host: &str, port: i32| IngressRule {
        host: Some(host.to_string()),
        http: Some(HTTPIngressRuleValue {
            paths: vec![HTTPIngressPath {
                path: Some("/".to_string()),
                path_type: "Prefix".to_string(),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: inputs.service.to_string(),
                        port: Some(ServiceBackendPort {
                            number: Some(port),
                            name: None,
                        }),
                    }),
                    resource: None,
                },
            }],
        }),
    };
    let annotations: BTreeMap<String, String> = inputs.spec.annotations.clone();
    Ingress {
        metadata: ObjectMeta {
            name: Some(names::kmc_name(inputs.cluster)),
            namespace: Some(inputs.namespace.to_string()),
            labels: Some(labels::with_component(
                labels::base(inputs.cluster, names::COMPONENT_CLUSTER),
                names::component::INGRESS,
            )),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        spec: Some(IngressObjectSpec {
            ingress_class_name: inputs.spec.class_name.clone(),
            rules: Some(vec![
                rule(&inputs.spec.api_host, inputs.api_port),
                rule(&inputs.spec.konnectivity_host, inputs.konnectivity_port),
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn spec() -> IngressSpec {
        IngressSpec {
            deploy: true,
            port: 443,
            api_host: "api.demo.example.com".into(),
            konnectivity_host: "konnectivity.demo.example.com".into(),
            class_name: Some("nginx".into()),
            annotations: BTreeMap::from([(
                "nginx.ingress.kubernetes.io/ssl-passthrough".into(),
                "true".into(),
            )]),
        }
    }

    fn refused(s: &IngressSpec) -> String {
        match check(s) {
            Err(SpecError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_spec_passes() {
        check(&spec()).unwrap();
    }

    #[test]
    fn hosts_must_be_dns_names() {
        for bad in [
            "API.example.com",
            "api_example.com",
            "-api.example.com",
            "api..example.com",
            "*.example.com",
            "api.example.com:443",
            "api.example.com\nx",
            "",
        ] {
            let mut s = spec();
            s.api_host = bad.into();
            let m = refused(&s);
            assert!(m.contains("spec.ingress.apiHost"), "{bad:?}: {m}");
        }
        let mut s = spec();
        s.konnectivity_host = "a".repeat(64) + ".example.com";
        assert!(refused(&s).contains("spec.ingress.konnectivityHost"));
    }

    #[test]
    fn an_ip_host_only_without_our_ingress() {
        let mut s = spec();
        s.api_host = "192.0.2.10".into();
        assert!(refused(&s).contains("IP address"));
        s.deploy = false;
        check(&s).unwrap();
    }

    #[test]
    fn the_hosts_must_differ() {
        let mut s = spec();
        s.konnectivity_host = s.api_host.clone();
        assert!(refused(&s).contains("must differ"));
    }

    #[test]
    fn class_and_annotation_keys_are_checked() {
        let mut s = spec();
        s.class_name = Some("Nginx Class".into());
        assert!(refused(&s).contains("spec.ingress.className"));
        for bad in ["bad key", "/x", "-x", "Example.com/x"] {
            let mut s = spec();
            s.annotations.insert(bad.into(), "v".into());
            assert!(refused(&s).contains("not a valid annotation key"), "{bad}");
        }
        let mut s = spec();
        s.annotations.insert(
            "nginx.ingress.kubernetes.io/configuration-snippet".into(),
            "more_set_headers x".into(),
        );
        assert!(refused(&s).contains("snippet"));
        let mut s = spec();
        s.port = 70000;
        assert!(refused(&s).contains("spec.ingress.port"));
    }

    #[test]
    fn addresses_carry_the_ingress_port() {
        let a = IngressAddresses::of(Some(&spec())).unwrap();
        assert_eq!(a.api_address(), "api.demo.example.com:443");
        assert_eq!(
            a.konnectivity_address(),
            "konnectivity.demo.example.com:443"
        );
        assert!(a.sans().contains(&"api.demo.example.com".to_string()));
        let mut v6 = spec();
        v6.deploy = false;
        v6.api_host = "2001:db8::1".into();
        v6.port = 8443;
        let a = IngressAddresses::of(Some(&v6)).unwrap();
        assert_eq!(a.api_address(), "[2001:db8::1]:8443");
    }
}
