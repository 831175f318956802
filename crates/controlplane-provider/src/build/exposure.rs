//! The exposure Service (`kmc-<cluster>[-nodeport|-lb]`), the external address it gives (or the
//! Ingress's API host), the API endpoint, the Ingress `kmc-<cluster>`, and whether the
//! StatefulSet must wait for the exposure.

use k0smotron_api::capi::ApiEndpoint;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;

use super::error::BuildError;
use super::model::Facts;
use super::patch::with_type_meta;
use crate::ingress::{IngressAddresses, IngressInputs};
use crate::patches::ComponentPatch;
use crate::services::{self, AddressSource, ExternalAddress, ServiceInputs};

/// The exposure Service and what it tells about the endpoint.
pub(super) struct Exposure {
    /// The exposure Service (patched).
    pub(super) service: Service,
    /// The external address in use.
    pub(super) external_address: Option<String>,
    /// The endpoint; `None` while unknown.
    pub(super) endpoint: Option<ApiEndpoint>,
    /// The live Service's cluster IPs (they go into the API server certificate).
    pub(super) cluster_ips: Vec<String>,
    /// The Service's name.
    pub(super) service_name: String,
    /// Why the StatefulSet is not built yet.
    pub(super) waiting: Option<String>,
    /// The addresses behind an Ingress (`spec.ingress`).
    pub(super) ingress: Option<IngressAddresses>,
    /// The Ingress `kmc-<cluster>` (patched), when `spec.ingress.deploy`.
    pub(super) ingress_object: Option<Ingress>,
}

/// The exposure Service of `spec.service`, the external address and the endpoint.
pub(super) fn plan_exposure(
    facts: &Facts,
    patches: &[ComponentPatch],
) -> Result<Exposure, BuildError> {
    let spec = &facts.cp.spec;
    let cluster = facts.cluster_name.as_str();
    let service_name = services::service_name(cluster, spec.service.type_);
    let service = exposure_service(facts, patches)?;
    let ingress = IngressAddresses::of(spec.ingress.as_ref());
    // Behind an Ingress, clients use the API host whatever the Service type: nothing to discover
    // (upstream too takes the host and port from the ingress then).
    let address = match &ingress {
        Some(i) => ExternalAddress::Known(i.api_host.clone(), AddressSource::Ingress),
        None => services::external_address(
            spec.external_address.as_deref(),
            spec.service.type_,
            facts.exposure_service.as_ref(),
            &facts.nodes,
            facts.cp.previous_address.as_deref(),
        ),
    };
    let (external_address, mut waiting) = match &address {
        ExternalAddress::Known(a, _) => (Some(a.clone()), None),
        ExternalAddress::NotApplicable => (None, None),
        ExternalAddress::Pending(why) => (None, Some(why.clone())),
    };
    let api_port = ingress.as_ref().map_or(spec.service.api_port, |i| i.port);
    let endpoint = endpoint(facts, &address, &service_name, api_port);
    let ingress_object = match spec.ingress.as_ref().filter(|i| i.deploy) {
        Some(i) => {
            let inputs = IngressInputs {
                cluster,
                namespace: &facts.cp.namespace,
                spec: i,
                service: &service_name,
                api_port: spec.service.api_port,
                konnectivity_port: spec.service.konnectivity_port,
            };
            Some(with_type_meta(
                crate::ingress::ingress(&inputs, &facts.cp.owner),
                patches,
            )?)
        }
        None => None,
    };
    let cluster_ips = facts
        .exposure_service
        .as_ref()
        .map(services::cluster_ips)
        .unwrap_or_default();
    if waiting.is_none() && cluster_ips.is_empty() {
        // The Service's cluster IP goes into the API server certificate; building the config
        // without it would roll the pods right after they start.
        waiting = Some(format!(
            "waiting for Service {service_name} to get a cluster IP"
        ));
    }
    Ok(Exposure {
        service,
        external_address,
        endpoint,
        cluster_ips,
        service_name,
        waiting,
        ingress,
        ingress_object,
    })
}

/// The exposure Service of `spec.service` (patched).
pub(super) fn exposure_service(
    facts: &Facts,
    patches: &[ComponentPatch],
) -> Result<Service, BuildError> {
    let spec = &facts.cp.spec;
    let svc_inputs = ServiceInputs {
        cluster: facts.cluster_name.clone(),
        namespace: facts.cp.namespace.clone(),
        type_: spec.service.type_,
        api_port: spec.service.api_port,
        konnectivity_port: spec.service.konnectivity_port,
    };
    with_type_meta(services::service(&svc_inputs, &facts.cp.owner), patches)
}

/// The user's endpoint, else the external address, else the Service's DNS name; `None` while
/// the address is pending.
fn endpoint(
    facts: &Facts,
    address: &ExternalAddress,
    service_name: &str,
    api_port: i32,
) -> Option<ApiEndpoint> {
    match (&facts.cp.user_endpoint, address) {
        (Some(e), _) => Some(e.clone()),
        (None, ExternalAddress::Known(a, _)) => Some(ApiEndpoint {
            host: Some(a.clone()),
            port: Some(api_port),
        }),
        // Deviation: upstream waits forever here. The Service's DNS name is reachable from the
        // management cluster, where CAPI and this provider run (docs/deviations.md).
        (None, ExternalAddress::NotApplicable) => Some(ApiEndpoint {
            host: Some(services::service_dns(service_name, &facts.cp.namespace)),
            port: Some(api_port),
        }),
        (None, ExternalAddress::Pending(_)) => None,
    }
}
