//! The `<cluster>-kubeconfig` Secret: an admin kubeconfig for the endpoint, kept as it is until
//! it must be renewed (another server or CA, or its client certificate near expiry).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use k0smotron_api::capi::ApiEndpoint;
use k0smotron_api::names;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::certificates::secret_data;
use super::error::BuildError;
use super::model::Facts;
use crate::certs::KeyMaterial;
use crate::kubeconfig::{self, RegenerateReason};
use crate::labels;

/// The kubeconfig Secret for `endpoint` (none while the endpoint is unknown), and why its value
/// is (re)generated this time, if it is.
pub(super) fn plan_kubeconfig(
    facts: &Facts,
    endpoint: Option<&ApiEndpoint>,
    ca: &KeyMaterial,
) -> Result<(Option<Secret>, Option<RegenerateReason>), BuildError> {
    let Some(ep) = endpoint else {
        return Ok((None, None));
    };
    let spec = &facts.cp.spec;
    let cluster = facts.cluster_name.as_str();
    let server = server_url(
        ep.host.as_deref().unwrap_or_default(),
        ep.port.unwrap_or(spec.service.api_port),
    );
    let name = names::kubeconfig_secret(cluster);
    let existing = facts
        .secrets
        .get(&name)
        .and_then(|s| secret_data(s).remove(names::SECRET_VALUE_KEY))
        .and_then(|v| String::from_utf8(v).ok());
    let reason = kubeconfig::regenerate_reason(
        existing.as_deref(),
        cluster,
        &server,
        &ca.cert_pem,
        facts.now,
    );
    let value = match (reason, existing) {
        (None, Some(v)) => v,
        _ => kubeconfig::generate(cluster, &server, ca, facts.now)?,
    };
    Ok((Some(kubeconfig_secret(facts, name, value)), reason))
}

/// The Secret holding `value`, with the user's metadata and the CAPI labels. It is always written
/// to the management cluster (CAPI reads it there), owned by the control-plane object itself even
/// when the other children live in a hosting cluster.
fn kubeconfig_secret(facts: &Facts, name: String, value: String) -> Secret {
    let cluster = facts.cluster_name.as_str();
    let meta = facts
        .cp
        .spec
        .kubeconfig_secret_metadata
        .clone()
        .unwrap_or_default();
    let mut secret_labels = labels::with_component(
        labels::base(cluster, names::COMPONENT_CLUSTER),
        names::component::KUBECONFIG,
    );
    secret_labels.extend(meta.labels);
    // The CAPI labels must stay whatever the user adds.
    secret_labels.extend(labels::capi_secret(cluster));
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(facts.cp.namespace.clone()),
            labels: Some(secret_labels),
            annotations: (!meta.annotations.is_empty()).then_some(meta.annotations),
            owner_references: Some(vec![facts.cp.object_owner.clone()]),
            ..Default::default()
        },
        type_: Some(names::CAPI_SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([(
            names::SECRET_VALUE_KEY.to_string(),
            ByteString(value.into_bytes()),
        )])),
        ..Default::default()
    }
}

/// `https://host:port`, with IPv6 addresses in brackets.
pub fn server_url(host: &str, port: i32) -> String {
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}
