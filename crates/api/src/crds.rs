//! The CRDs the providers install, as `CustomResourceDefinition` objects: the input of
//! `cargo xtask crd` and of the CRD tests. CAPI core's own kinds (see [`crate::capi`]) are not
//! among them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, JSON, JSONSchemaProps, ServiceReference,
    WebhookClientConfig, WebhookConversion,
};
use kube::CustomResourceExt;

use crate::names;
use crate::{
    bootstrap::v1beta1 as bootstrap_v1beta1, bootstrap::v1beta2 as bootstrap,
    controlplane::v1beta1 as controlplane_v1beta1, controlplane::v1beta2 as controlplane,
    k0smotron::v1beta1 as standalone_v1beta1, k0smotron::v1beta2 as standalone,
};

/// Every CRD of the control-plane provider: the Cluster API kinds and the standalone ones it
/// also serves.
pub fn controlplane() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        optional_spec(
            versions(
                controlplane::K0smotronControlPlane::crd(),
                controlplane_v1beta1::K0smotronControlPlane::crd(),
            ),
            &[],
        ),
        optional_spec(
            versions(
                controlplane::K0smotronControlPlaneTemplate::crd(),
                controlplane_v1beta1::K0smotronControlPlaneTemplate::crd(),
            ),
            &["template"],
        ),
    ];
    crds.extend(standalone());
    crds
}

/// The standalone kinds (`k0smotron.io`): a control plane without Cluster API, and its join
/// tokens.
pub fn standalone() -> Vec<CustomResourceDefinition> {
    vec![
        // Upstream's default for an absent spec, a NodePort Service (a given spec without
        // `service` still gets ClusterIP, as upstream's does).
        optional_spec_with(
            versions(
                standalone::Cluster::crd(),
                standalone_v1beta1::Cluster::crd(),
            ),
            serde_json::json!({"service": {"type": "NodePort"}}),
        ),
        // Kept required: upstream admits a request without a spec and then fails on it, as
        // it names no cluster; refused here at once (docs/deviations.md).
        versions(
            standalone::JoinTokenRequest::crd(),
            standalone_v1beta1::JoinTokenRequest::crd(),
        ),
    ]
}

/// Every CRD of the bootstrap provider.
pub fn bootstrap() -> Vec<CustomResourceDefinition> {
    vec![
        optional_spec(
            versions(
                bootstrap::K0sWorkerConfig::crd(),
                bootstrap_v1beta1::K0sWorkerConfig::crd(),
            ),
            &[],
        ),
        optional_spec(
            versions(
                bootstrap::K0sWorkerConfigTemplate::crd(),
                bootstrap_v1beta1::K0sWorkerConfigTemplate::crd(),
            ),
            &["template"],
        ),
    ]
}

/// Every CRD we install, control plane first.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = controlplane();
    crds.extend(bootstrap());
    crds
}

/// One CRD serving `hub` (v1beta2, stored) and `spoke` (v1beta1, served, not stored), converted
/// by the provider's webhook ([`conversion_webhook`]). Metadata (labels included: the CAPI
/// contract label names v1beta2 only, so Cluster API never reads v1beta1) comes from `hub`.
fn versions(
    hub: CustomResourceDefinition,
    spoke: CustomResourceDefinition,
) -> CustomResourceDefinition {
    // Both come from kube-derive with the same group, kind and scope, one version each: merging
    // them cannot fail (the CRD tests would show it at once).
    #[allow(clippy::expect_used)]
    let mut crd = kube::core::crd::merge_crds(vec![hub, spoke], crate::conversion::V1BETA2)
        .expect("the two versions of one kind merge");
    crd.spec.conversion = Some(conversion_webhook());
    crd
}

/// `spec.conversion` of every CRD we generate: the provider's webhook behind the Service
/// [`names::WEBHOOK_SERVICE_NAME`] in the namespace `system`, both rewritten by kustomize (the
/// provider's name prefix and namespace; config/crd/kustomizeconfig.yaml), and by clusterctl
/// for `--target-namespace`. The provider overwrites the whole client config with its own
/// Service (or URL) and the CA bundle when it starts (docs/packaging.md, "Conversion webhook").
pub fn conversion_webhook() -> CustomResourceConversion {
    CustomResourceConversion {
        strategy: "Webhook".to_owned(),
        webhook: Some(WebhookConversion {
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    name: names::WEBHOOK_SERVICE_NAME.to_owned(),
                    namespace: "system".to_owned(),
                    path: Some(names::CONVERSION_PATH.to_owned()),
                    port: Some(443),
                }),
                ..WebhookClientConfig::default()
            }),
            conversion_review_versions: vec!["v1".to_owned()],
        }),
    }
}

/// The names of `crds` (`<plural>.<group>`).
pub fn names(crds: &[CustomResourceDefinition]) -> Vec<String> {
    crds.iter()
        .filter_map(|crd| crd.metadata.name.clone())
        .collect()
}

/// Makes `spec` optional, as upstream's CRDs have it (Go's `json:"spec,omitempty"`): a manifest
/// with no `spec`, or with `spec: null` (upstream's own samples have both), is admitted and gets
/// `spec: {}`, then the defaults of the fields inside. The `spec` fields named in `inner` become
/// optional the same way. The Rust types keep a plain `spec`: the API server never returns an
/// object without one.
fn optional_spec(mut crd: CustomResourceDefinition, inner: &[&str]) -> CustomResourceDefinition {
    optional_fields(&mut crd, inner, &serde_json::json!({}));
    crd
}

/// [`optional_spec`] with `default` for an absent `spec` instead of `{}`.
fn optional_spec_with(
    mut crd: CustomResourceDefinition,
    default: serde_json::Value,
) -> CustomResourceDefinition {
    optional_fields(&mut crd, &[], &default);
    crd
}

fn optional_fields(
    crd: &mut CustomResourceDefinition,
    inner: &[&str],
    spec_default: &serde_json::Value,
) {
    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        not_required(root, "spec", spec_default);
        let Some(spec) = root.properties.as_mut().and_then(|p| p.get_mut("spec")) else {
            continue;
        };
        for field in inner {
            not_required(spec, field, &serde_json::json!({}));
        }
    }
}

/// Drops `field` from `schema`'s required list and defaults it to `default`.
fn not_required(schema: &mut JSONSchemaProps, field: &str, default: &serde_json::Value) {
    if let Some(required) = schema.required.as_mut() {
        required.retain(|r| r != field);
        if required.is_empty() {
            schema.required = None;
        }
    }
    if let Some(property) = schema.properties.as_mut().and_then(|p| p.get_mut(field)) {
        property.default = Some(JSON(default.clone()));
    }
}

/// The file name `cargo xtask crd` writes a CRD to: `<plural>.<group>.yaml` (the CRD's name).
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.{}.yaml", crd.spec.names.plural, crd.spec.group)
}

/// First line of every generated CRD file.
pub const YAML_HEADER: &str = "# Generated by `cargo xtask crd` from crates/api. Do not edit.\n";

/// The committed form of a CRD: [`YAML_HEADER`] followed by the CRD as YAML.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!("{YAML_HEADER}{}", serde_saphyr::to_string(crd)?))
}
