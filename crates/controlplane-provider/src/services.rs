//! The exposure Service (`kmc-<name>` ClusterIP, `kmc-<name>-nodeport`, `kmc-<name>-lb`) and the
//! external address discovered from it.
//!
//! Pure: discovery reads facts the reconciler fetched (the Service's status, the Nodes' addresses)
//! and never waits or polls.

use std::collections::BTreeMap;

use k0smotron_api::controlplane::v1beta2::ServiceType;
use k0smotron_api::names;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::labels;

/// Name of the exposure Service for a Service type.
pub fn service_name(cluster: &str, type_: ServiceType) -> String {
    match type_ {
        ServiceType::ClusterIP => names::cluster_ip_service_name(cluster),
        ServiceType::NodePort => names::nodeport_service_name(cluster),
        ServiceType::LoadBalancer => names::load_balancer_service_name(cluster),
    }
}

/// Names of the exposure Services of the other types (deleted when the type changes).
pub fn other_service_names(cluster: &str, type_: ServiceType) -> Vec<String> {
    [
        ServiceType::ClusterIP,
        ServiceType::NodePort,
        ServiceType::LoadBalancer,
    ]
    .into_iter()
    .filter(|t| *t != type_)
    .map(|t| service_name(cluster, t))
    .collect()
}

fn type_str(type_: ServiceType) -> &'static str {
    match type_ {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    }
}

/// What the Service is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInputs {
    /// CAPI cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// `spec.service.type`.
    pub type_: ServiceType,
    /// `spec.service.apiPort`.
    pub api_port: i32,
    /// `spec.service.konnectivityPort`.
    pub konnectivity_port: i32,
}

/// The exposure Service: ports `api` and `konnectivity`, port = targetPort (= nodePort for
/// NodePort, as upstream, so the ports must be inside the NodePort range).
pub fn service(inputs: &ServiceInputs, owner: &OwnerReference) -> Service {
    let node_port = |p: i32| (inputs.type_ == ServiceType::NodePort).then_some(p);
    let port = |name: &str, p: i32| ServicePort {
        name: Some(name.to_string()),
        port: p,
        target_port: Some(IntOrString::Int(p)),
        node_port: node_port(p),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some(service_name(&inputs.cluster, inputs.type_)),
            namespace: Some(inputs.namespace.clone()),
            labels: Some(labels::with_component(
                labels::base(&inputs.cluster, names::COMPONENT_CLUSTER),
                names::component::CONTROL_PLANE,
            )),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(type_str(inputs.type_).into()),
            selector: Some(labels::service_selector(&inputs.cluster)),
            ports: Some(vec![
                port("api", inputs.api_port),
                port("konnectivity", inputs.konnectivity_port),
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The spec of a headless Service (no cluster IP, no proxy rules) over the control plane's pods
/// with one TCP port `name` = `port` on the pods' same port; `publish_not_ready`: list pods before
/// they are ready (peers that must find each other to become ready).
pub fn headless_spec(cluster: &str, name: &str, port: i32, publish_not_ready: bool) -> ServiceSpec {
    ServiceSpec {
        type_: Some("ClusterIP".into()),
        cluster_ip: Some("None".into()),
        publish_not_ready_addresses: publish_not_ready.then_some(true),
        selector: Some(labels::control_plane_selector(cluster)),
        ports: Some(vec![ServicePort {
            name: Some(name.into()),
            port,
            target_port: Some(IntOrString::Int(port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// In-cluster DNS name of a Service (`<svc>.<namespace>.svc`).
pub fn service_dns(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc")
}

/// The SANs the API server certificate needs for the exposure Service: its short and qualified DNS
/// names and its cluster IPs.
pub fn service_sans(service: &str, namespace: &str, cluster_ips: &[String]) -> Vec<String> {
    let mut sans = vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        service_dns(service, namespace),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    sans.extend(cluster_ips.iter().filter(|ip| *ip != "None").cloned());
    sans
}

/// Cluster IPs of a live Service.
pub fn cluster_ips(service: &Service) -> Vec<String> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let mut ips = spec.cluster_ips.clone().unwrap_or_default();
    if ips.is_empty()
        && let Some(ip) = &spec.cluster_ip
    {
        ips.push(ip.clone());
    }
    ips.retain(|ip| !ip.is_empty() && ip != "None");
    ips
}

/// The first LoadBalancer ingress address of a live Service, IP preferred over hostname.
pub fn load_balancer_address(service: &Service) -> Option<String> {
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?;
    ingress
        .ip
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| ingress.hostname.clone().filter(|s| !s.is_empty()))
}

/// Candidate NodePort addresses, best first: every node's `ExternalIP`/`ExternalDNS`, else every
/// `InternalIP` (nodes in name order, so the answer does not depend on list order).
pub fn node_addresses(nodes: &[Node]) -> Vec<String> {
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let of_type = |wanted: &[&str]| -> Vec<String> {
        sorted
            .iter()
            .filter_map(|n| n.status.as_ref()?.addresses.as_ref())
            .flatten()
            .filter(|a| wanted.contains(&a.type_.as_str()) && !a.address.is_empty())
            .map(|a| a.address.clone())
            .collect()
    };
    let external = of_type(&["ExternalIP", "ExternalDNS"]);
    if external.is_empty() {
        of_type(&["InternalIP"])
    } else {
        external
    }
}

/// Where the external address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressSource {
    /// `spec.externalAddress`.
    Spec,
    /// The LoadBalancer Service's ingress.
    LoadBalancer,
    /// A node address (NodePort).
    Node,
    /// `spec.ingress.apiHost`.
    Ingress,
}

/// The external address or why there is none yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalAddress {
    /// Known.
    Known(String, AddressSource),
    /// ClusterIP exposure without `spec.externalAddress`: there is none, by design.
    NotApplicable,
    /// Not known yet (LoadBalancer without ingress, NodePort without node addresses).
    Pending(String),
}

/// Decides the external address. `spec.externalAddress` wins; otherwise LoadBalancer ingress or a
/// node address. `previous` (the address in status) is kept while it is still a candidate, so a
/// NodePort control plane does not move (and roll its pods) when nodes come and go.
pub fn external_address(
    spec_address: Option<&str>,
    type_: ServiceType,
    live_service: Option<&Service>,
    nodes: &[Node],
    previous: Option<&str>,
) -> ExternalAddress {
    if let Some(a) = spec_address.filter(|a| !a.is_empty()) {
        return ExternalAddress::Known(a.to_string(), AddressSource::Spec);
    }
    match type_ {
        ServiceType::ClusterIP => ExternalAddress::NotApplicable,
        ServiceType::LoadBalancer => match live_service.and_then(load_balancer_address) {
            Some(a) => ExternalAddress::Known(a, AddressSource::LoadBalancer),
            None => ExternalAddress::Pending(
                "waiting for the LoadBalancer Service to get an ingress address".into(),
            ),
        },
        ServiceType::NodePort => {
            let candidates = node_addresses(nodes);
            if let Some(p) = previous
                && candidates.iter().any(|c| c == p)
            {
                return ExternalAddress::Known(p.to_string(), AddressSource::Node);
            }
            match candidates.into_iter().next() {
                Some(a) => ExternalAddress::Known(a, AddressSource::Node),
                None => ExternalAddress::Pending("waiting for a node with an address".into()),
            }
        }
    }
}

/// The endpoint manifest ConfigMap content (`kmc-<name>-endpoint`, key `endpoint.yaml`): deploys
/// `kube-system/control-plane-endpoint` with the API host and port into the workload cluster.
/// Serialised from the typed object, so any host (quotes, `#`, newlines) stays one string value.
pub fn endpoint_manifest(
    host: &str,
    port: i32,
) -> Result<BTreeMap<String, String>, serde_saphyr::SerializeError> {
    let manifest = ConfigMap {
        metadata: ObjectMeta {
            name: Some("control-plane-endpoint".to_string()),
            namespace: Some("kube-system".to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("apiServerHost".to_string(), host.to_string()),
            ("apiServerPort".to_string(), port.to_string()),
        ])),
        ..ConfigMap::default()
    };
    // k8s-openapi writes apiVersion and kind itself.
    let yaml = serde_saphyr::to_string(&manifest)?;
    Ok(BTreeMap::from([("endpoint.yaml".to_string(), yaml)]))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeAddress, NodeStatus, ServiceStatus,
    };

    fn node(name: &str, addrs: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                addresses: Some(
                    addrs
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: (*t).into(),
                            address: (*a).into(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lb(ip: Option<&str>, host: Option<&str>) -> Service {
        Service {
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: ip.map(Into::into),
                        hostname: host.map(Into::into),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn spec_address_wins() {
        assert_eq!(
            external_address(
                Some("1.2.3.4"),
                ServiceType::LoadBalancer,
                Some(&lb(Some("9.9.9.9"), None)),
                &[],
                None
            ),
            ExternalAddress::Known("1.2.3.4".into(), AddressSource::Spec)
        );
    }

    #[test]
    fn load_balancer_prefers_ip_then_hostname() {
        let t = ServiceType::LoadBalancer;
        assert_eq!(
            external_address(
                None,
                t,
                Some(&lb(Some("9.9.9.9"), Some("lb.example"))),
                &[],
                None
            ),
            ExternalAddress::Known("9.9.9.9".into(), AddressSource::LoadBalancer)
        );
        assert_eq!(
            external_address(None, t, Some(&lb(None, Some("lb.example"))), &[], None),
            ExternalAddress::Known("lb.example".into(), AddressSource::LoadBalancer)
        );
        assert!(matches!(
            external_address(None, t, Some(&Service::default()), &[], None),
            ExternalAddress::Pending(_)
        ));
    }

    #[test]
    fn node_port_prefers_external_addresses_and_stays_put() {
        let nodes = vec![
            node(
                "b",
                &[("InternalIP", "10.0.0.2"), ("ExternalIP", "203.0.113.2")],
            ),
            node("a", &[("InternalIP", "10.0.0.1")]),
        ];
        let t = ServiceType::NodePort;
        assert_eq!(
            external_address(None, t, None, &nodes, None),
            ExternalAddress::Known("203.0.113.2".into(), AddressSource::Node)
        );
        let internal = vec![
            node("b", &[("InternalIP", "10.0.0.2")]),
            node("a", &[("InternalIP", "10.0.0.1")]),
        ];
        assert_eq!(
            external_address(None, t, None, &internal, None),
            ExternalAddress::Known("10.0.0.1".into(), AddressSource::Node)
        );
        assert_eq!(
            external_address(None, t, None, &internal, Some("10.0.0.2")),
            ExternalAddress::Known("10.0.0.2".into(), AddressSource::Node)
        );
        assert!(matches!(
            external_address(None, t, None, &[], None),
            ExternalAddress::Pending(_)
        ));
    }

    #[test]
    fn cluster_ip_has_no_external_address() {
        assert_eq!(
            external_address(None, ServiceType::ClusterIP, None, &[], None),
            ExternalAddress::NotApplicable
        );
    }

    #[test]
    fn other_services() {
        assert_eq!(
            other_service_names("demo", ServiceType::NodePort),
            vec!["kmc-demo", "kmc-demo-lb"]
        );
    }

    #[test]
    fn endpoint_manifest_keeps_any_host_one_string() {
        for host in [
            "192.0.2.10",
            "api.example.com",
            "a\nb: c",
            "#x",
            "\"q\" 'r'",
            "x\u{1}y",
            "2001:db8::1",
        ] {
            let data = endpoint_manifest(host, 6443).unwrap();
            let parsed: serde_json::Value = serde_saphyr::from_str(&data["endpoint.yaml"]).unwrap();
            assert_eq!(parsed["apiVersion"], "v1");
            assert_eq!(parsed["kind"], "ConfigMap");
            assert_eq!(parsed["metadata"]["name"], "control-plane-endpoint");
            assert_eq!(parsed["metadata"]["namespace"], "kube-system");
            assert_eq!(parsed["data"]["apiServerHost"], host, "{host:?}");
            assert_eq!(parsed["data"]["apiServerPort"], "6443");
        }
    }
}
