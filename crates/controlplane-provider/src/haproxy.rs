//! The workload side of a control plane behind an Ingress (`spec.ingress`, issue #13 part 3):
//! the k0s manifests that make the in-cluster `kubernetes` Service reach the API server through
//! the ingress, and the request of HAProxy's serving certificate.
//!
//! Pods reach the API at the `kubernetes` Service's cluster IP, with no TLS server name, so the
//! SNI-routing ingress cannot route their traffic. Every worker therefore runs an HAProxy
//! (DaemonSet, host network, port [`LISTEN_PORT`]) that terminates their TLS with a certificate
//! of the cluster CA valid for the Service's names, and opens a new connection to
//! `https://<apiHost>:<port>` with `apiHost` as the server name, verifying the API server with
//! the cluster CA. The `default/kubernetes` Service selects those pods with
//! `internalTrafficPolicy: Local`, so each pod talks to its own node's HAProxy (the API server
//! does not manage that Service's endpoints: `endpoint-reconciler-type: none` behind an ingress).
//!
//! Pure: builds text and objects; the build step decides where they go. `apiHost` and the port
//! are the tenant's and end up in HAProxy's configuration: they are checked here again (not only
//! by `spec.ingress` validation) so no value can add a directive.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k0smotron_api::names;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EndpointAddress,
    EndpointPort, EndpointSubset, Endpoints, HostPathVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SecurityContext, Service, ServicePort,
    ServiceSpec, TCPSocketAction, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::certs::{LeafSpec, Usage};
use crate::hash;
use crate::ingress::is_dns_subdomain;

/// HAProxy's image, pinned to one release (upstream uses the moving tag `haproxy:2.8`, so
/// workers of one cluster could run different HAProxy builds).
pub const IMAGE: &str = "docker.io/library/haproxy:2.8.10";
/// The port HAProxy listens on, on every worker's host network (upstream's).
pub const LISTEN_PORT: i32 = 7443;
/// Namespace of the hosted-cluster objects: the `kubernetes` Service's, whose selector only
/// matches pods of its own namespace.
const NAMESPACE: &str = "default";
/// Name and `app` label of the DaemonSet (upstream's, so a cluster moved from upstream keeps
/// one DaemonSet).
const NAME: &str = "k0smotron-haproxy";
/// Name of the HAProxy configuration ConfigMap in the hosted cluster (upstream's).
const CONFIG_NAME: &str = "k0smotron-haproxy-config";
/// Key of the configuration in that ConfigMap.
const CONFIG_KEY: &str = "haproxy.cfg";
/// Where the image's entrypoint reads its configuration.
const CONFIG_DIR: &str = "/usr/local/etc/haproxy";
/// The address of the placeholder `default/kubernetes` Endpoints (see [`manifests`]): from
/// TEST-NET-1 (RFC 5737), which is never routed, instead of upstream's `1.2.3.4`, a public
/// address someone owns.
const PLACEHOLDER_ADDRESS: &str = "192.0.2.1";
/// Pod template annotation with the hash of the configuration: a changed configuration (a new
/// `apiHost` or port) rolls the DaemonSet, as HAProxy reads it only at start.
const CONFIG_HASH_ANNOTATION: &str = "k0smotron.io/haproxy-config-hash";
/// k0s's service CIDR when the config names none.
const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// k0s's cluster domain when the config names none.
const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// What the HAProxy side is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// `spec.ingress.apiHost`.
    pub api_host: String,
    /// `spec.ingress.port`.
    pub port: i32,
    /// The hosted cluster's `kubernetes` Service IP (first address of the service CIDR).
    pub service_ip: IpAddr,
    /// The hosted cluster's DNS domain.
    pub cluster_domain: String,
}

/// Errors building the HAProxy side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HaproxyError {
    /// `apiHost` is not a DNS name or IP address (it would go into HAProxy's configuration).
    #[error("spec.ingress.apiHost {0:?} is not a DNS name or IP address")]
    Host(String),
    /// The port is out of range.
    #[error("spec.ingress.port {0} is not between 1 and 65535")]
    Port(i32),
    /// The k0s config's service CIDR cannot be read.
    #[error(
        "spec.network.serviceCIDR {0:?} of the k0s config is not a CIDR with room for the kubernetes Service IP"
    )]
    ServiceCidr(String),
    /// The k0s config's cluster domain is not a DNS name.
    #[error("spec.network.clusterDomain {0:?} of the k0s config is not a DNS name")]
    ClusterDomain(String),
    /// A manifest could not be written as YAML.
    #[error("writing the {what} manifest: {message}")]
    Yaml {
        /// Which manifest.
        what: &'static str,
        /// The serializer's message (no secret material: these manifests hold none).
        message: String,
    },
}

impl Inputs {
    /// The inputs from the ingress and the merged k0s config (`spec.network.serviceCIDR`,
    /// `spec.network.clusterDomain`, with k0s's defaults).
    pub fn new(
        api_host: &str,
        port: i32,
        k0s_config: &serde_json::Value,
    ) -> Result<Self, HaproxyError> {
        let network = k0s_config.pointer("/spec/network");
        let text = |key: &str| {
            network
                .and_then(|n| n.get(key))
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let cidr = text("serviceCIDR").unwrap_or(DEFAULT_SERVICE_CIDR);
        let domain = text("clusterDomain").unwrap_or(DEFAULT_CLUSTER_DOMAIN);
        if !is_dns_subdomain(domain) {
            return Err(HaproxyError::ClusterDomain(domain.to_string()));
        }
        let inputs = Self {
            api_host: api_host.to_string(),
            port,
            service_ip: kubernetes_service_ip(cidr)?,
            cluster_domain: domain.to_string(),
        };
        inputs.check()?;
        Ok(inputs)
    }

    /// `apiHost` must be a DNS name or an IP address and the port in range: both are written
    /// into HAProxy's configuration, where a space or a newline would start another directive.
    fn check(&self) -> Result<(), HaproxyError> {
        if !(is_dns_subdomain(&self.api_host) || self.api_host.parse::<IpAddr>().is_ok()) {
            return Err(HaproxyError::Host(self.api_host.clone()));
        }
        if !(1..=65535).contains(&self.port) {
            return Err(HaproxyError::Port(self.port));
        }
        Ok(())
    }
}

/// The `kubernetes` Service IP of a service CIDR: the first address after the network address,
/// as the API server allocates it. A dual-stack list (`a,b`) uses its first CIDR, as k0s does.
pub fn kubernetes_service_ip(service_cidr: &str) -> Result<IpAddr, HaproxyError> {
    let bad = || HaproxyError::ServiceCidr(service_cidr.to_string());
    let first = service_cidr.split(',').next().unwrap_or_default().trim();
    let (addr, prefix) = first.split_once('/').ok_or_else(bad)?;
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    match addr.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V4(a) if prefix <= 30 => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            Ok(IpAddr::V4(Ipv4Addr::from((u32::from(a) & mask) + 1)))
        }
        IpAddr::V6(a) if prefix <= 126 => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            Ok(IpAddr::V6(Ipv6Addr::from((u128::from(a) & mask) + 1)))
        }
        _ => Err(bad()),
    }
}

/// HAProxy's serving certificate: every name a pod may use for the API in-cluster (the
/// `kubernetes` Service's DNS names and IP) and loopback, server authentication only.
/// Upstream's odd `kubernetes.svc.<domain>` and `kubernetes.default.svc.cluster` names, which no
/// resolver answers, are left out.
pub fn certificate_spec(inputs: &Inputs) -> LeafSpec {
    LeafSpec {
        common_name: "ingress-haproxy".to_string(),
        organizations: vec![],
        sans: vec![
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            format!("kubernetes.default.svc.{}", inputs.cluster_domain),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            inputs.service_ip.to_string(),
        ],
        usage: Usage::Server,
    }
}

/// HAProxy's configuration: TLS in on [`LISTEN_PORT`] with the worker's certificate, TLS out to
/// the ingress with `apiHost` as server name and host name to verify, against the cluster CA.
/// Timeouts (upstream sets none, which HAProxy warns about) allow long API watches; `maxconn`
/// bounds the memory HAProxy would otherwise size from the file-descriptor limit.
pub fn config(inputs: &Inputs) -> Result<String, HaproxyError> {
    inputs.check()?;
    let host = &inputs.api_host;
    let port = inputs.port;
    let ip = host.parse::<IpAddr>().ok();
    let mut server = match ip {
        Some(IpAddr::V6(v6)) => format!("ipv6@{v6}:{port}"),
        _ => format!("{host}:{port}"),
    };
    server.push_str(&format!(
        " ssl verify required ca-file {}",
        names::HAPROXY_CA_FILE
    ));
    // A name gets SNI and a host name check, and is resolved again while HAProxy runs (the
    // ingress's address may change). An IP address can be neither sent as SNI nor checked by
    // HAProxy against the certificate: only the chain is verified then (`deploy: false` only).
    let resolvers = if ip.is_none() {
        server.push_str(&format!(
            " sni str({host}) verifyhost {host} resolvers node resolve-prefer ipv4 init-addr last,libc,none"
        ));
        "\nresolvers node\n    parse-resolv-conf\n    hold valid 30s\n"
    } else {
        ""
    };
    Ok(format!(
        "# Generated by k0smotron: forwards the in-cluster kubernetes Service to the API behind the ingress.
global
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-server-options ssl-min-ver TLSv1.2

defaults
    mode tcp
    timeout connect 10s
    timeout client 1h
    timeout server 1h
{resolvers}
frontend kubernetes
    bind :::{LISTEN_PORT} v4v6 ssl crt {pem}
    default_backend apiserver

backend apiserver
    server apiserver {server}
",
        pem = names::HAPROXY_PEM_FILE,
    ))
}

/// The k0s manifests (file name → YAML) for the hosted cluster, applied by k0s from the
/// ConfigMap `kmc-<cluster>-ingress`:
/// - `0_temp-kubernetes-ep.yaml`: a placeholder `default/kubernetes` Endpoints. With the API
///   server's endpoint reconciler off, nothing else creates it before HAProxy runs, and k0s
///   makes no worker profile without it (upstream's finding); the endpoints controller replaces
///   its address with the HAProxy pods' once the Service below selects them.
/// - `1_haproxy-configmap.yaml`: the configuration of [`config`].
/// - `2_haproxy-ds.yaml`: the DaemonSet (see [`daemon_set`]).
/// - `3_kube-service.yaml`: the `default/kubernetes` Service selecting it, node-local.
pub fn manifests(inputs: &Inputs) -> Result<BTreeMap<String, String>, HaproxyError> {
    let cfg = config(inputs)?;
    let cfg_hash = hash::hex_prefix(cfg.as_bytes());
    let yaml = |what: &'static str, r: Result<String, serde_saphyr::SerializeError>| {
        r.map_err(|e| HaproxyError::Yaml {
            what,
            message: e.to_string(),
        })
    };
    Ok(BTreeMap::from([
        (
            "0_temp-kubernetes-ep.yaml".to_string(),
            yaml(
                "Endpoints",
                serde_saphyr::to_string(&placeholder_endpoints()),
            )?,
        ),
        (
            "1_haproxy-configmap.yaml".to_string(),
            yaml("ConfigMap", serde_saphyr::to_string(&config_map(cfg)))?,
        ),
        (
            "2_haproxy-ds.yaml".to_string(),
            yaml("DaemonSet", serde_saphyr::to_string(&daemon_set(&cfg_hash)))?,
        ),
        (
            "3_kube-service.yaml".to_string(),
            yaml(
                "Service",
                serde_saphyr::to_string(&kubernetes_service(inputs.service_ip)),
            )?,
        ),
    ]))
}

fn meta(name: &str, labels: Option<BTreeMap<String, String>>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(NAMESPACE.to_string()),
        labels,
        ..Default::default()
    }
}

fn app_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), NAME.to_string())])
}

fn placeholder_endpoints() -> Endpoints {
    Endpoints {
        metadata: meta("kubernetes", None),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: PLACEHOLDER_ADDRESS.to_string(),
                ..Default::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some("https".to_string()),
                port: LISTEN_PORT,
                protocol: Some("TCP".to_string()),
                ..Default::default()
            }]),
            not_ready_addresses: None,
        }]),
    }
}

fn config_map(cfg: String) -> ConfigMap {
    ConfigMap {
        metadata: meta(CONFIG_NAME, Some(app_labels())),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), cfg)])),
        ..Default::default()
    }
}

/// The `default/kubernetes` Service as the API server makes it (labels, the cluster IP, port
/// 443 named `https`), but selecting the HAProxy pods on port [`LISTEN_PORT`], node-local. The
/// API server only creates this Service and never corrects it afterwards; the cluster IP is set
/// so that, should k0s apply this before the API server made the Service, it still gets the
/// address every pod is told. The IP families are left to the API server (upstream forces
/// single-stack IPv4, wrong for an IPv6 service CIDR).
fn kubernetes_service(service_ip: IpAddr) -> Service {
    Service {
        metadata: meta(
            "kubernetes",
            Some(BTreeMap::from([
                ("component".to_string(), "apiserver".to_string()),
                ("provider".to_string(), "kubernetes".to_string()),
            ])),
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: Some(service_ip.to_string()),
            internal_traffic_policy: Some("Local".to_string()),
            session_affinity: Some("None".to_string()),
            selector: Some(app_labels()),
            ports: Some(vec![ServicePort {
                name: Some("https".to_string()),
                port: 443,
                protocol: Some("TCP".to_string()),
                target_port: Some(IntOrString::Int(LISTEN_PORT)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The HAProxy DaemonSet: host network, every node (all taints tolerated: CNI and other
/// node agents on tainted nodes need the API through it too, and it needs no pod network),
/// node-critical priority, resources bounded, and as little privilege as reading the worker's
/// key allows: the key file is root's with mode 0600, so HAProxy runs as uid 0 but with every
/// capability dropped, no privilege escalation, a read-only root file system and no API token.
/// The certificate directory must exist on the node (`Directory`, where upstream creates an
/// empty one): a worker without the files fails visibly at the mount.
fn daemon_set(config_hash: &str) -> DaemonSet {
    let mounts = vec![
        VolumeMount {
            name: "config".to_string(),
            mount_path: CONFIG_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "certs".to_string(),
            mount_path: names::HAPROXY_CERT_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        },
    ];
    let probe = |initial: i32| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(LISTEN_PORT),
            host: None,
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(10),
        ..Default::default()
    };
    let container = Container {
        name: "haproxy".to_string(),
        image: Some(IMAGE.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec!["-f".to_string(), format!("{CONFIG_DIR}/{CONFIG_KEY}")]),
        ports: Some(vec![ContainerPort {
            container_port: LISTEN_PORT,
            name: Some("https".to_string()),
            protocol: Some("TCP".to_string()),
            ..Default::default()
        }]),
        readiness_probe: Some(probe(0)),
        liveness_probe: Some(probe(15)),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("10m".to_string())),
                ("memory".to_string(), Quantity("32Mi".to_string())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("256Mi".to_string()),
            )])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let volumes = vec![
        Volume {
            name: "config".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: CONFIG_NAME.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "certs".to_string(),
            host_path: Some(HostPathVolumeSource {
                path: names::HAPROXY_CERT_DIR.to_string(),
                type_: Some("Directory".to_string()),
            }),
            ..Default::default()
        },
    ];
    DaemonSet {
        metadata: meta(NAME, Some(app_labels())),
        spec: DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(app_labels()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(app_labels()),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_string(),
                        config_hash.to_string(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    host_network: Some(true),
                    // A Linux image reading a host directory only Linux workers get.
                    node_selector: Some(BTreeMap::from([(
                        "kubernetes.io/os".to_string(),
                        "linux".to_string(),
                    )])),
                    dns_policy: Some("Default".to_string()),
                    priority_class_name: Some("system-node-critical".to_string()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".to_string()),
                        ..Default::default()
                    }]),
                    security_context: Some(PodSecurityContext {
                        seccomp_profile: Some(k8s_openapi::api::core::v1::SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        status: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs() -> Inputs {
        Inputs::new("api.demo.example.com", 443, &json!({})).unwrap()
    }

    #[test]
    fn service_ip_is_the_first_address_of_the_service_cidr() {
        for (cidr, ip) in [
            ("10.96.0.0/12", "10.96.0.1"),
            ("10.100.7.9/16", "10.100.0.1"),
            ("10.0.0.0/24,fd01::/108", "10.0.0.1"),
            ("fd01::/108", "fd01::1"),
        ] {
            assert_eq!(
                kubernetes_service_ip(cidr).unwrap().to_string(),
                ip,
                "{cidr}"
            );
        }
        for bad in [
            "",
            "10.96.0.0",
            "10.96.0.0/33",
            "10.0.0.0/31",
            "x/12",
            "10.96.0.0/a",
        ] {
            assert!(kubernetes_service_ip(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn inputs_take_k0s_defaults_and_the_configs_network() {
        let i = inputs();
        assert_eq!(i.service_ip.to_string(), "10.96.0.1");
        assert_eq!(i.cluster_domain, "cluster.local");
        let config = json!({"spec": {"network": {"serviceCIDR": "10.100.0.0/16", "clusterDomain": "demo.local"}}});
        let i = Inputs::new("api.demo.example.com", 8443, &config).unwrap();
        assert_eq!(i.service_ip.to_string(), "10.100.0.1");
        assert_eq!(i.cluster_domain, "demo.local");
        let config = json!({"spec": {"network": {"clusterDomain": "a b"}}});
        assert!(matches!(
            Inputs::new("api.demo.example.com", 443, &config),
            Err(HaproxyError::ClusterDomain(_))
        ));
    }

    /// Whatever validation let through, no value can reach HAProxy's configuration as more than
    /// one token: a newline would start a new directive (e.g. a `server` to elsewhere).
    #[test]
    fn a_host_that_is_not_a_name_or_address_never_reaches_the_config() {
        for bad in [
            "api.example.com\n    server evil 203.0.113.9:443",
            "api.example.com ssl verify none",
            "api.example.com#",
            "API.example.com",
            "",
        ] {
            let mut i = inputs();
            i.api_host = bad.to_string();
            assert_eq!(config(&i), Err(HaproxyError::Host(bad.to_string())));
            assert!(manifests(&i).is_err());
        }
        let mut i = inputs();
        i.port = 0;
        assert_eq!(config(&i), Err(HaproxyError::Port(0)));
    }

    #[test]
    fn the_server_line_verifies_the_api_server_by_name() {
        let cfg = config(&inputs()).unwrap();
        let server = cfg
            .lines()
            .find(|l| l.trim_start().starts_with("server "))
            .unwrap();
        assert!(server.contains("api.demo.example.com:443 ssl verify required"));
        assert!(server.contains("ca-file /etc/haproxy/certs/ca.crt"));
        assert!(server.contains("sni str(api.demo.example.com)"));
        assert!(server.contains("verifyhost api.demo.example.com"));
        assert!(cfg.contains("bind :::7443 v4v6 ssl crt /etc/haproxy/certs/server.pem"));
    }

    #[test]
    fn certificate_names_cover_the_kubernetes_service() {
        let mut i = inputs();
        i.cluster_domain = "demo.local".into();
        let spec = certificate_spec(&i);
        assert_eq!(spec.usage, Usage::Server);
        for san in [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.demo.local",
            "10.96.0.1",
            "127.0.0.1",
            "localhost",
        ] {
            assert!(spec.sans.contains(&san.to_string()), "{san}");
        }
    }

    #[test]
    fn a_changed_host_rolls_the_daemon_set() {
        let a = manifests(&inputs()).unwrap();
        let mut other = inputs();
        other.api_host = "api2.demo.example.com".into();
        let b = manifests(&other).unwrap();
        assert_ne!(a["2_haproxy-ds.yaml"], b["2_haproxy-ds.yaml"]);
        assert_eq!(a["3_kube-service.yaml"], b["3_kube-service.yaml"]);
    }

    /// The configuration as the real `haproxy -c` sees it, with the certificate paths moved to a
    /// scratch directory holding a CA and a certificate of ours. HAProxy is required (CI installs
    /// Debian's): without it this fails rather than passing unchecked. Warnings fail too.
    #[test]
    fn haproxy_accepts_the_config() {
        let haproxy = std::process::Command::new("haproxy").arg("-v").output();
        assert!(
            haproxy.is_ok_and(|o| o.status.success()),
            "the haproxy binary is needed to check the generated configuration (apt-get install -y haproxy)"
        );
        let dir = std::env::temp_dir().join(format!("k0smotron-haproxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let now = jiff::Timestamp::now();
        let ca = crate::certs::generate_ca("kubernetes", now).unwrap();
        let leaf = crate::certs::sign_leaf(&ca, "ca", &certificate_spec(&inputs()), now).unwrap();
        std::fs::write(dir.join("ca.crt"), &ca.cert_pem).unwrap();
        std::fs::write(
            dir.join("server.pem"),
            format!("{}{}", leaf.cert_pem, leaf.key_pem),
        )
        .unwrap();
        // `localhost` stands for a DNS name that resolves (there is no DNS here; an unresolvable
        // name is only a warning, at start, and `init-addr none` keeps HAProxy running).
        for (host, port) in [
            ("localhost", 443),
            ("192.0.2.10", 8443),
            ("2001:db8::10", 443),
        ] {
            let mut i = inputs();
            i.api_host = host.into();
            i.port = port;
            let cfg = config(&i)
                .unwrap()
                .replace(names::HAPROXY_CERT_DIR, dir.to_str().unwrap());
            let file = dir.join("haproxy.cfg");
            std::fs::write(&file, &cfg).unwrap();
            let out = std::process::Command::new("haproxy")
                .arg("-c")
                .arg("-f")
                .arg(&file)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success(),
                "haproxy refused the config for {host}:\n{cfg}\n{text}"
            );
            assert!(
                !text.contains("WARNING"),
                "haproxy warns for {host}:\n{cfg}\n{text}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn manifests_snapshot() {
        let m = manifests(&inputs()).unwrap();
        let all: String = m.iter().map(|(k, v)| format!("# {k}\n---\n{v}")).collect();
        insta::assert_snapshot!(all);
    }
}
