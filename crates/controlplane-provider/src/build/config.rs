//! What the k0s pods start with: the storage, the k0s `ClusterConfig` (the user's, with the
//! network defaults under it and the provider's values over it), and the ConfigMaps holding it,
//! the entrypoint script, the telemetry and the endpoint manifests; and their checksum.

use std::collections::BTreeMap;

use k0smotron_api::capi::ClusterNetwork;
use k0smotron_api::controlplane::v1beta2::{ClusterSpec, StorageType};
use k0smotron_api::names;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::certificates::secret_data;
use super::error::BuildError;
use super::exposure::Exposure;
use super::model::{DynamicConfig, Facts};
use super::patch::with_type_meta;
use crate::entrypoint;
use crate::haproxy;
use crate::hash;
use crate::k0s_config::{self, IngressOwned, Merged, NetworkDefaults, Owned};
use crate::labels;
use crate::patches::ComponentPatch;
use crate::services;

/// The ConfigMaps and what the StatefulSet needs to know of them.
pub(super) struct ConfigPlan {
    /// The ConfigMaps (patched): the k0s config, the entrypoint, the telemetry manifest, and the
    /// endpoint manifest when the endpoint's host is known.
    pub(super) config_maps: Vec<ConfigMap>,
    /// Checksum of what the pods read only at start: the part of the k0s config that k0s does
    /// not take from `kube-system/k0s`, and the entrypoint.
    pub(super) checksum: String,
    /// Whether the endpoint manifest is among the ConfigMaps.
    pub(super) endpoint_manifest: bool,
    /// Behind an Ingress: what the HAProxy side is made of (its manifests ConfigMap is among the
    /// ConfigMaps; its certificate is planned from it).
    pub(super) haproxy: Option<haproxy::Inputs>,
    /// User k0s config values the provider overrode.
    pub(super) overridden: Vec<String>,
    /// The cluster-wide part of the config, to push into the hosted cluster.
    pub(super) dynamic_config: DynamicConfig,
}

pub(super) fn kine_secret(spec: &ClusterSpec) -> Option<String> {
    if spec.storage.type_ != StorageType::Kine {
        return None;
    }
    spec.storage
        .kine
        .as_ref()
        .and_then(|k| k.data_source_secret_name.clone())
        .filter(|s| !s.is_empty())
}

/// The kine DSN Secret must exist with its key before pods can start.
pub(super) fn check_kine_secret(facts: &Facts) -> Result<(), BuildError> {
    let Some(name) = kine_secret(&facts.cp.spec) else {
        return Ok(());
    };
    let secret = facts.secrets.get(&name).ok_or_else(|| {
        BuildError::ReferenceNotFound(format!(
            "Secret {name} (spec.storage.kine.dataSourceSecretName) does not exist"
        ))
    })?;
    if !secret_data(secret).contains_key(names::KINE_DATASOURCE_URL_KEY) {
        return Err(BuildError::ReferenceNotFound(format!(
            "Secret {name} has no key {}",
            names::KINE_DATASOURCE_URL_KEY
        )));
    }
    Ok(())
}

/// The k0s config, entrypoint, telemetry and endpoint ConfigMaps, patched, and their checksum.
pub(super) fn plan_config(
    facts: &Facts,
    exposure: &Exposure,
    patches: &[ComponentPatch],
) -> Result<ConfigPlan, BuildError> {
    let spec = &facts.cp.spec;
    let merged = merged_k0s_config(facts, exposure)?;
    let yaml = k0s_config::to_yaml(&merged.config).map_err(BuildError::Yaml)?;
    let script = entrypoint::script(
        &spec.control_plane_flags,
        spec.storage.type_ == StorageType::Nats,
    );
    let maps = ConfigMaps {
        cluster: &facts.cluster_name,
        namespace: &facts.cp.namespace,
        owner: &facts.cp.owner,
    };
    let mut config_maps = vec![
        maps.make(
            names::config_map_name(maps.cluster),
            names::component::CLUSTER_CONFIG,
            BTreeMap::from([(entrypoint::K0S_YAML_ENV.to_string(), yaml)]),
        ),
        maps.make(
            names::entrypoint_config_map_name(maps.cluster),
            names::component::ENTRYPOINT,
            BTreeMap::from([(entrypoint::SCRIPT_KEY.to_string(), script)]),
        ),
        maps.make(
            names::telemetry_config_map_name(maps.cluster),
            names::component::TELEMETRY,
            BTreeMap::from([("configmap.yaml".to_string(), TELEMETRY_MANIFEST.to_string())]),
        ),
    ];
    let endpoint_manifest = endpoint_manifest_address(facts, exposure);
    if let Some((host, port)) = &endpoint_manifest {
        config_maps.push(maps.make(
            names::endpoint_config_map_name(maps.cluster),
            names::component::CONTROL_PLANE,
            services::endpoint_manifest(host, *port).map_err(BuildError::Yaml)?,
        ));
    }
    let haproxy = match &exposure.ingress {
        Some(ingress) => {
            let inputs = haproxy::Inputs::new(&ingress.api_host, ingress.port, &merged.config)
                .map_err(|e| {
                    BuildError::Spec(crate::validate::SpecError::Invalid(e.to_string()))
                })?;
            config_maps.push(maps.make(
                names::ingress_manifests_config_map_name(maps.cluster),
                names::component::INGRESS,
                haproxy::manifests(&inputs).map_err(|e| {
                    BuildError::Spec(crate::validate::SpecError::Invalid(e.to_string()))
                })?,
            ));
            Some(inputs)
        }
        None => None,
    };
    let config_maps = config_maps
        .into_iter()
        .map(|cm| with_type_meta(cm, patches))
        .collect::<Result<Vec<_>, _>>()?;
    // What the pods start with and cannot take from the hosted cluster later: the part of the
    // (patched) config k0s reads only at start, and the entrypoint. A change of the rest goes to
    // `kube-system/k0s` instead of restarting the pods.
    let (read_at_start, dynamic_config) = split_config(&config_maps[0], &spec.control_plane_flags)?;
    let checksum = hash::stable_hash("config", &[&read_at_start, &config_maps[1].data])?;
    Ok(ConfigPlan {
        config_maps,
        checksum,
        endpoint_manifest: endpoint_manifest.is_some(),
        haproxy,
        overridden: merged.overridden,
        dynamic_config,
    })
}

/// The data of the config ConfigMap with the k0s config cut down to what k0s reads only at start
/// (so only a change of that restarts the pods), and the cluster-wide part to push. With dynamic
/// config off, or a config a patch made unreadable, all of it counts as read at start.
fn split_config(
    config_map: &ConfigMap,
    control_plane_flags: &[String],
) -> Result<(Option<BTreeMap<String, String>>, DynamicConfig), BuildError> {
    let data = config_map.data.clone();
    if !entrypoint::dynamic_config_enabled(control_plane_flags) {
        return Ok((data, DynamicConfig::Disabled));
    }
    let Some(yaml) = data.as_ref().and_then(|d| d.get(entrypoint::K0S_YAML_ENV)) else {
        let why = format!(
            "the patched ConfigMap {} has no key {}",
            config_map.metadata.name.as_deref().unwrap_or_default(),
            entrypoint::K0S_YAML_ENV
        );
        return Ok((data, DynamicConfig::Unreadable(why)));
    };
    let config = match serde_saphyr::from_str::<serde_json::Value>(yaml) {
        Ok(config @ serde_json::Value::Object(_)) => config,
        Ok(_) => {
            let why = format!("{} is not a YAML object", entrypoint::K0S_YAML_ENV);
            return Ok((data, DynamicConfig::Unreadable(why)));
        }
        Err(e) => {
            let why = format!("{} is not YAML: {e}", entrypoint::K0S_YAML_ENV);
            return Ok((data, DynamicConfig::Unreadable(why)));
        }
    };
    let split = k0s_config::split(&config);
    let hash = hash::stable_hash("dynamic config", &split.cluster_wide)?;
    let mut read_at_start = data;
    if let Some(d) = read_at_start.as_mut() {
        let text = serde_json::to_string(&split.read_at_start).map_err(|source| {
            BuildError::Serialize {
                what: "k0s config".into(),
                source,
            }
        })?;
        d.insert(entrypoint::K0S_YAML_ENV.to_string(), text);
    }
    Ok((
        read_at_start,
        DynamicConfig::Push {
            object: split.cluster_wide,
            hash,
        },
    ))
}

/// The user's k0s config over the CAPI network defaults, with the provider's values on top.
fn merged_k0s_config(facts: &Facts, exposure: &Exposure) -> Result<Merged, BuildError> {
    let spec = &facts.cp.spec;
    let base = k0s_config::with_network_defaults(
        spec.k0s_config.as_ref(),
        &network_defaults(facts.cluster_network.as_ref()),
    )?;
    let mut sans = services::service_sans(
        &exposure.service_name,
        &facts.cp.namespace,
        &exposure.cluster_ips,
    );
    if let Some(host) = facts.cp.user_endpoint.as_ref().and_then(|e| e.host.clone()) {
        sans.push(host);
    }
    if let Some(ingress) = &exposure.ingress {
        sans.extend(ingress.sans());
    }
    Ok(k0s_config::merge(
        base,
        &Owned {
            api_port: spec.service.api_port,
            konnectivity_port: spec.service.konnectivity_port,
            external_address: exposure.external_address.clone(),
            sans,
            storage: storage(spec, &facts.cluster_name),
            ingress: exposure.ingress.as_ref().map(|i| IngressOwned {
                api_address: i.api_address(),
                konnectivity_address: i.konnectivity_address(),
            }),
        },
    )?)
}

/// The k0s storage: the etcd StatefulSet, or kine (an inline DSN, or the DSN Secret's).
fn storage(spec: &ClusterSpec, cluster: &str) -> serde_json::Value {
    match spec.storage.type_ {
        StorageType::Etcd => k0s_config::etcd_storage(&names::etcd_name(cluster), cluster),
        StorageType::Nats => {
            k0s_config::kine_storage(Some(&crate::nats::data_source(spec.replicas)))
        }
        StorageType::Kine => {
            let inline = spec
                .storage
                .kine
                .as_ref()
                .and_then(|k| k.data_source_url.as_deref())
                .filter(|s| !s.is_empty());
            k0s_config::kine_storage(inline)
        }
    }
}

/// Host and port of the endpoint manifest: the user's endpoint, else the external address (with
/// the ingress port behind an Ingress).
fn endpoint_manifest_address(facts: &Facts, exposure: &Exposure) -> Option<(String, i32)> {
    let api_port = exposure
        .ingress
        .as_ref()
        .map_or(facts.cp.spec.service.api_port, |i| i.port);
    match (&facts.cp.user_endpoint, &exposure.external_address) {
        (Some(e), _) => e.host.clone().map(|h| (h, e.port.unwrap_or(api_port))),
        (None, Some(a)) => Some((a.clone(), api_port)),
        _ => None,
    }
}

fn network_defaults(network: Option<&ClusterNetwork>) -> NetworkDefaults {
    let join = |r: Option<&k0smotron_api::capi::NetworkRanges>| {
        r.map(|r| r.cidr_blocks.join(",")).filter(|s| !s.is_empty())
    };
    NetworkDefaults {
        pod_cidr: network.and_then(|n| join(n.pods.as_ref())),
        service_cidr: network.and_then(|n| join(n.services.as_ref())),
        cluster_domain: network
            .and_then(|n| n.service_domain.clone())
            .filter(|s| !s.is_empty()),
    }
}

/// Makes the ConfigMaps of one control plane.
struct ConfigMaps<'a> {
    cluster: &'a str,
    namespace: &'a str,
    owner: &'a OwnerReference,
}

impl ConfigMaps<'_> {
    fn make(&self, name: String, component: &str, data: BTreeMap<String, String>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(self.namespace.to_string()),
                labels: Some(labels::with_component(
                    labels::base(self.cluster, names::COMPONENT_CLUSTER),
                    component,
                )),
                owner_references: Some(vec![self.owner.clone()]),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    }
}

const TELEMETRY_MANIFEST: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: k0s-telemetry\n  namespace: kube-system\ndata:\n  provider: \"k0smotron\"\n";
