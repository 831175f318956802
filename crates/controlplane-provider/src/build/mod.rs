//! The build step: from everything the reconciler fetched ([`Facts`]) to the complete desired
//! state ([`DesiredState`]) — every Secret, ConfigMap, Service and StatefulSet, the endpoint, and
//! what the status will report.
//!
//! No I/O. It is not deterministic in two places only, both unavoidable: it generates keys for
//! certificate Secrets that do not exist yet, and mints the kubeconfig's client certificate when
//! the existing one must be renewed. Everything the snapshot tests look at is deterministic.
//!
//! One stage per generated object or concern, called in order by [`build`]: the certificates,
//! the exposure Service and endpoint, the kubeconfig Secret, the k0s config and its ConfigMaps,
//! the k0s StatefulSet, and the etcd objects.

mod certificates;
mod config;
mod error;
mod etcd;
mod exposure;
mod kubeconfig;
mod model;
mod patch;
mod statefulset;

use k0smotron_api::controlplane::v1beta2::ClusterSpec;
use k0smotron_api::names;

use crate::labels;
use crate::services;
use crate::validate;

pub use certificates::default_secret_name;
pub use error::BuildError;
pub use kubeconfig::server_url;
pub use model::{DesiredState, DynamicConfig, Facts, StatefulSetPlan};

/// Names of every Secret the build may read: certificates, the kubeconfig, the kine DSN, the
/// NATS token.
pub fn secret_names(spec: &ClusterSpec, cluster: &str) -> Vec<String> {
    let mut out: Vec<String> = certificates::purposes(spec)
        .into_iter()
        .map(|p| certificates::secret_name_for(spec, cluster, p))
        .collect();
    if certificates::defrag_enabled(spec) {
        out.push(crate::etcd::defrag_client_secret(cluster));
    }
    out.push(names::kubeconfig_secret(cluster));
    if spec.ingress.is_some() {
        out.push(names::ingress_haproxy_secret(cluster));
    }
    if let Some(s) = config::kine_secret(spec) {
        out.push(s);
    }
    if let Some(n) = crate::nats::inputs(spec, cluster) {
        out.push(n.token_secret);
    }
    out.sort();
    out.dedup();
    out
}

/// The exposure Service alone, as [`build`] makes it, for a control plane whose Service does not
/// exist yet; `None` when the spec would not build (the build reports why). Its cluster IP goes
/// into the API server certificate and the k0s config, so the reconciler creates it before the
/// build: the rest is then built once, in the same reconcile, instead of being written without
/// the address and again once the Service has one.
pub fn exposure_service_first(facts: &Facts) -> Option<k8s_openapi::api::core::v1::Service> {
    if facts.exposure_service.is_some() {
        return None;
    }
    catch_panic(|| {
        validate::validate(&facts.cp.spec, &facts.policy)?;
        config::check_kine_secret(facts)?;
        let patches = patch::component_patches(&facts.cp.spec);
        exposure::exposure_service(facts, &patches)
    })
    .ok()
}

/// [`build`], with a panic turned into [`BuildError::Panicked`]: the spec is a tenant's, and a
/// bug that one spec reaches must fail that control plane's reconcile (a condition), not take the
/// provider and every other tenant's reconciles down with it. The property tests look for such
/// bugs (one was json-patch's undo, issue #12); this is the net under them.
pub fn build_guarded(facts: &Facts) -> Result<DesiredState, BuildError> {
    catch_panic(|| build(facts))
}

fn catch_panic<T>(f: impl FnOnce() -> Result<T, BuildError>) -> Result<T, BuildError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(BuildError::Panicked(what))
    })
}

/// Builds the desired state.
pub fn build(facts: &Facts) -> Result<DesiredState, BuildError> {
    let spec = &facts.cp.spec;
    validate::validate(spec, &facts.policy)?;
    let cluster = facts.cluster_name.as_str();
    let patches = patch::component_patches(spec);
    // Certificates first: nothing else is useful without them.
    let mut certs = certificates::plan_certificates(
        facts,
        cluster,
        &facts.cp.namespace,
        &facts.cp.uid,
        &facts.cp.owner,
    )?;
    let ca = certs.ca()?;
    config::check_kine_secret(facts)?;
    let exposure = exposure::plan_exposure(facts, &patches)?;
    // The kubeconfig needs only the CA and the endpoint.
    let (kubeconfig, kubeconfig_regenerated) =
        kubeconfig::plan_kubeconfig(facts, exposure.endpoint.as_ref(), &ca)?;
    let config = config::plan_config(facts, &exposure, &patches)?;
    if let Some(inputs) = &config.haproxy {
        certificates::plan_haproxy_certificate(&mut certs, facts, cluster, inputs)?;
    }
    let waiting = exposure.waiting.is_some();
    let controller = statefulset::plan_controller(facts, &certs.refs, &config, waiting, &patches)?;
    let etcd = etcd::plan_etcd(facts, &controller.image, &patches)?;

    let ingress = exposure.ingress_object;
    let obsolete_ingress = ingress.is_none().then(|| names::kmc_name(cluster));
    let mut services = vec![exposure.service];
    let mut config_maps = config.config_maps;
    if let Some(m) = crate::monitoring::inputs(spec, cluster) {
        let (namespace, owner) = (&facts.cp.namespace, &facts.cp.owner);
        let cm =
            crate::monitoring::config_map(&m, cluster, namespace, spec.service.api_port, owner);
        config_maps.push(patch::with_type_meta(cm, &patches)?);
        services.push(crate::monitoring::service(cluster, namespace, owner));
    }
    let mut create_secrets = certs.create;
    if let Some(token) = plan_nats(facts, &mut services)? {
        create_secrets.push(token);
    }
    let mut claim_expansions = controller.claim_expansions;
    let mut cron_jobs = Vec::new();
    let mut obsolete_cron_jobs = Vec::new();
    let etcd_statefulset = etcd.map(|etcd| {
        services.push(etcd.service);
        claim_expansions.extend(etcd.claim_expansions);
        match etcd.defrag_cronjob {
            Some(job) => cron_jobs.push(job),
            None => obsolete_cron_jobs.push(names::etcd_defrag_name(cluster)),
        }
        etcd.statefulset
    });
    Ok(DesiredState {
        owner: facts.cp.owner.clone(),
        create_secrets,
        renew_secrets: certs.renew,
        kubeconfig,
        kubeconfig_regenerated,
        config_maps,
        services,
        obsolete_services: obsolete_services(spec, cluster),
        ingress,
        obsolete_ingress,
        statefulset: controller.statefulset,
        etcd_statefulset,
        claim_expansions,
        cron_jobs,
        obsolete_cron_jobs,
        endpoint: exposure.endpoint,
        publish_endpoint: facts.cp.user_endpoint.is_none(),
        external_address: exposure.external_address,
        certificate_refs: certs.refs,
        waiting: exposure.waiting,
        version_blocked: controller.version_blocked,
        overridden: config.overridden,
        desired_image_tag: controller.desired_tag,
        selector: labels::control_plane_selector(cluster),
        dynamic_config: config.dynamic_config,
    })
}

/// Services of ours the spec no longer asks for: the exposure Services of the other types, the
/// NATS Service once the storage is no longer NATS, and the metrics Service once monitoring is
/// off.
fn obsolete_services(spec: &ClusterSpec, cluster: &str) -> Vec<String> {
    let mut out = services::other_service_names(cluster, spec.service.type_);
    if spec.storage.type_ != k0smotron_api::controlplane::v1beta2::StorageType::Nats {
        out.push(names::nats_service_name(cluster));
    }
    if crate::monitoring::inputs(spec, cluster).is_none() {
        out.push(names::metrics_service_name(cluster));
    }
    out
}

/// NATS storage: its headless Service, and its token Secret when there is none yet (an existing
/// one, ours or the user's, is checked and kept).
fn plan_nats(
    facts: &Facts,
    services: &mut Vec<k8s_openapi::api::core::v1::Service>,
) -> Result<Option<k8s_openapi::api::core::v1::Secret>, BuildError> {
    let Some(inputs) = crate::nats::inputs(&facts.cp.spec, &facts.cluster_name) else {
        return Ok(None);
    };
    let (cluster, namespace) = (&facts.cluster_name, &facts.cp.namespace);
    services.push(crate::nats::service(cluster, namespace, &facts.cp.owner));
    match facts.secrets.get(&inputs.token_secret) {
        Some(existing) => {
            crate::nats::check_token(existing).map_err(validate::SpecError::Invalid)?;
            Ok(None)
        }
        None => Ok(Some(crate::nats::token_secret(
            cluster,
            namespace,
            &facts.cp.owner,
        ))),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
#[path = "../build_tests.rs"]
mod tests;
