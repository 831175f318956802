//! The k0s controller StatefulSet `kmc-<cluster>`: its inputs (image, data volume, mounted
//! certificates, config checksum), the patches and hash annotations that finish it, and how to
//! move the live StatefulSet to it ([`StatefulSetPlan`]): applied, recreated, or only scaled.

use std::collections::BTreeMap;

use k0smotron_api::controlplane::v1beta2::{
    CertificateRef, CertificateType, ClusterSpec, PersistenceType, StorageType,
};
use k0smotron_api::names;
use k0smotron_api::version::{self, K0sVersion};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::config::{ConfigPlan, kine_secret};
use super::error::BuildError;
use super::model::{Facts, StatefulSetPlan};
use super::patch::with_type_meta;
use crate::claims::{self, ClaimExpansion};
use crate::hash;
use crate::ownership;
use crate::patches::ComponentPatch;
use crate::statefulset::{
    self, ControllerInputs, DataVolume, INPUTS_HASH_ANNOTATION, MountedCert, TEMPLATE_GENERATION,
};
use crate::validate::{self, FieldPolicy, SpecError};

/// The k0s StatefulSet and what the status and the etcd StatefulSet need of it.
pub(super) struct ControllerPlan {
    /// How to bring the StatefulSet to its desired state (`None` while waiting).
    pub(super) statefulset: Option<StatefulSetPlan>,
    /// Existing volume claims to grow to the template's size.
    pub(super) claim_expansions: Vec<ClaimExpansion>,
    /// The k0s image (`<spec.image>:<tag>`).
    pub(super) image: String,
    /// Its tag.
    pub(super) desired_tag: String,
    /// A refused version change (the old version keeps running).
    pub(super) version_blocked: Option<String>,
}

/// The k0s StatefulSet: built (and checked) even while `waiting`, so a refused patch stops the
/// reconcile before the Services and ConfigMaps are written, not only once it could be applied.
pub(super) fn plan_controller(
    facts: &Facts,
    certificate_refs: &[CertificateRef],
    config: &ConfigPlan,
    waiting: bool,
    patches: &[ComponentPatch],
) -> Result<ControllerPlan, BuildError> {
    let spec = &facts.cp.spec;
    let k0s_version =
        K0sVersion::parse(&spec.version).map_err(|e| SpecError::Invalid(e.to_string()))?;
    let desired_tag = k0s_version.image_tag();
    let image = format!("{}:{}", spec.image, desired_tag);
    let version_blocked = version_blocked(facts);
    let inputs = controller_inputs(facts, certificate_refs, config, image.clone());
    let (sts, inputs_hash) = finish_statefulset(
        statefulset::statefulset(&inputs, spec.replicas, &facts.cp.owner)?,
        &inputs,
        patches,
        names::component::CONTROL_PLANE,
    )?;
    check_patched_statefulset(&sts, &facts.policy)?;
    let mut claim_expansions = Vec::new();
    let statefulset = if waiting {
        None
    } else {
        claim_expansions.extend(claims::expansions(&sts, &facts.claims));
        Some(plan_statefulset(
            sts,
            facts.statefulset.as_ref(),
            &inputs_hash,
            version_blocked.is_some(),
        ))
    };
    Ok(ControllerPlan {
        statefulset,
        claim_expansions,
        image,
        desired_tag,
        version_blocked,
    })
}

/// A version change may not skip a minor release; the old version keeps running.
fn version_blocked(facts: &Facts) -> Option<String> {
    facts
        .statefulset
        .as_ref()
        .and_then(image_tag_of)
        .and_then(
            |running| match version::check_upgrade(&running, &facts.cp.spec.version) {
                Ok(()) => None,
                Err(e) => Some(format!("{e}; still running {running}")),
            },
        )
}

/// Everything the k0s pod template is built from.
fn controller_inputs(
    facts: &Facts,
    certificate_refs: &[CertificateRef],
    config: &ConfigPlan,
    image: String,
) -> ControllerInputs {
    let spec = &facts.cp.spec;
    ControllerInputs {
        generation: TEMPLATE_GENERATION,
        cluster: facts.cluster_name.clone(),
        namespace: facts.cp.namespace.clone(),
        image,
        service_account: spec.service_account.clone().filter(|s| !s.is_empty()),
        api_port: spec.service.api_port,
        konnectivity_port: spec.service.konnectivity_port,
        kine_secret: kine_secret(spec),
        certificates: mounted_certificates(spec, certificate_refs),
        data: data_volume(spec, &facts.cluster_name),
        manifests: spec.manifests.clone(),
        mounts: spec.mounts.clone(),
        endpoint_manifest: config.endpoint_manifest,
        ingress_manifests: config.haproxy.is_some(),
        topology_spread_constraints: spec.topology_spread_constraints.clone(),
        resources: spec.resources.clone(),
        config_checksum: config.checksum.clone(),
        nats: crate::nats::inputs(spec, &facts.cluster_name),
        monitoring: crate::monitoring::inputs(spec, &facts.cluster_name),
    }
}

/// The etcd server and peer certificates go to the etcd pods only; the etcd CA's certificate
/// to the k0s pods only with etcd storage (with kine, k0s never reads it).
fn mounted_certificates(spec: &ClusterSpec, refs: &[CertificateRef]) -> Vec<MountedCert> {
    refs.iter()
        .filter(|r| match r.type_ {
            CertificateType::EtcdPeer | CertificateType::EtcdServer => false,
            CertificateType::Etcd => spec.storage.type_ == StorageType::Etcd,
            _ => true,
        })
        .map(|r| MountedCert {
            purpose: r.type_,
            secret: r.name.clone().unwrap_or_default(),
        })
        .collect()
}

/// The k0s data directory of `spec.persistence`.
fn data_volume(spec: &ClusterSpec, cluster: &str) -> DataVolume {
    match spec.persistence.type_ {
        PersistenceType::EmptyDir => DataVolume::EmptyDir,
        PersistenceType::HostPath => {
            DataVolume::HostPath(spec.persistence.host_path.clone().unwrap_or_default())
        }
        PersistenceType::Pvc => {
            let template = spec
                .persistence
                .persistent_volume_claim
                .clone()
                .unwrap_or_default();
            let meta = template.metadata.unwrap_or_default();
            DataVolume::Pvc {
                claim: Box::new(PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some(
                            meta.name
                                .filter(|n| !n.is_empty())
                                .unwrap_or_else(|| names::kmc_name(cluster)),
                        ),
                        labels: (!meta.labels.is_empty()).then_some(meta.labels),
                        annotations: (!meta.annotations.is_empty()).then_some(meta.annotations),
                        finalizers: (!meta.finalizers.is_empty()).then_some(meta.finalizers),
                        ..Default::default()
                    },
                    spec: template.spec,
                    status: None,
                }),
                auto_delete: spec.persistence.auto_delete_pvcs,
            }
        }
    }
}

fn image_tag_of(sts: &StatefulSet) -> Option<String> {
    let image = statefulset::controller_image(sts.spec.template.spec.as_ref()?)?;
    statefulset::image_tag(image).map(str::to_string)
}

pub(super) fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn claims_signature(claims: Option<&Vec<PersistentVolumeClaim>>) -> Vec<(Option<String>, String)> {
    claims
        .map(|c| {
            c.iter()
                .map(|claim| {
                    let spec = claim.spec.as_ref().map(|s| {
                        serde_json::json!({
                            "accessModes": s.access_modes,
                            "storageClassName": s.storage_class_name,
                            "requests": s.resources.as_ref().and_then(|r| r.requests.clone()),
                        })
                        .to_string()
                    });
                    (claim.metadata.name.clone(), spec.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Applies the StatefulSet patches of `component` to a built StatefulSet and stamps both hash
/// annotations. The inputs hash covers `inputs` and those patches: patches change the template
/// too, so they are template inputs. Returns the StatefulSet and its inputs hash.
pub(super) fn finish_statefulset<I: Serialize>(
    sts: StatefulSet,
    inputs: &I,
    patches: &[ComponentPatch],
    component: &str,
) -> Result<(StatefulSet, String), BuildError> {
    let relevant: Vec<ComponentPatch> = patches
        .iter()
        .filter(|p| p.kind == "StatefulSet" && p.component == component)
        .cloned()
        .collect();
    let inputs_hash = hash::stable_hash("statefulset inputs", &(inputs, &relevant))?;
    let mut sts = with_type_meta(sts, &relevant)?;
    let template_hash = hash::stable_hash("pod template", &sts.spec.template)?;
    let annotations = sts.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(
        statefulset::STATEFULSET_HASH_ANNOTATION.into(),
        template_hash,
    );
    annotations.insert(INPUTS_HASH_ANNOTATION.into(), inputs_hash.clone());
    Ok((sts, inputs_hash))
}

/// [`validate::check_patched_pod`] for a generated (and patched) StatefulSet.
pub(super) fn check_patched_statefulset(
    sts: &StatefulSet,
    policy: &FieldPolicy,
) -> Result<(), SpecError> {
    let name = sts.metadata.name.as_deref().unwrap_or_default();
    validate::check_patched_pod(
        sts.spec.template.spec.as_ref(),
        &format!("StatefulSet {name}"),
        policy,
    )
}

/// Decides how to move `live` to `desired` (see [`StatefulSetPlan`]).
pub(super) fn plan_statefulset(
    desired: StatefulSet,
    live: Option<&StatefulSet>,
    inputs_hash: &str,
    keep_template: bool,
) -> StatefulSetPlan {
    let Some(live) = live else {
        return StatefulSetPlan::Apply(Box::new(desired));
    };
    let name = desired.metadata.name.clone().unwrap_or_default();
    let replicas = desired.spec.replicas.unwrap_or(1);
    let live_hash = annotation(&live.metadata, INPUTS_HASH_ANNOTATION);
    // Same inputs, but another writer changed a field of our template: write ours again. This
    // goes before `keep_template`: the inputs, so the version, are the ones we deployed, and a
    // version block computed from the other writer's image (its tag is no k0s version) must not
    // keep that image.
    if live_hash == Some(inputs_hash) && ownership::template_drifted(&desired, live) {
        return StatefulSetPlan::Apply(Box::new(desired));
    }
    if keep_template {
        return StatefulSetPlan::ScaleOnly {
            name,
            replicas,
            record_inputs_hash: None,
        };
    }
    match live_hash {
        Some(h) if h == inputs_hash => StatefulSetPlan::ScaleOnly {
            name,
            replicas,
            record_inputs_hash: None,
        },
        // Made by someone else (upstream k0smotron): adopt it as it is. Its pods keep running;
        // our template replaces theirs only when the spec changes.
        None => StatefulSetPlan::ScaleOnly {
            name,
            replicas,
            record_inputs_hash: Some(inputs_hash.to_string()),
        },
        Some(_) => {
            // NATS storage also sets `serviceName` and `podManagementPolicy`, immutable too;
            // it always comes with its `nats-data` claim template, so a move to or from NATS
            // changes the claims as well and is caught here.
            if claims_signature(live.spec.volume_claim_templates.as_ref())
                != claims_signature(desired.spec.volume_claim_templates.as_ref())
            {
                StatefulSetPlan::Recreate(Box::new(desired))
            } else {
                StatefulSetPlan::Apply(Box::new(desired))
            }
        }
    }
}
