//! The etcd of etcd storage: its headless Service, its StatefulSet (scaled one member at a time)
//! and the defragmentation CronJob.

use k0smotron_api::controlplane::v1beta2::StorageType;
use k0smotron_api::names;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Service;

use super::error::BuildError;
use super::model::{Facts, StatefulSetPlan};
use super::patch::with_type_meta;
use super::statefulset::{check_patched_statefulset, finish_statefulset, plan_statefulset};
use crate::claims::{self, ClaimExpansion};
use crate::etcd;
use crate::patches::ComponentPatch;
use crate::validate;

/// The etcd objects of etcd storage.
pub(super) struct EtcdPlan {
    /// The headless Service.
    pub(super) service: Service,
    /// How to bring the etcd StatefulSet to its desired state.
    pub(super) statefulset: StatefulSetPlan,
    /// Existing etcd volume claims to grow to the template's size.
    pub(super) claim_expansions: Vec<ClaimExpansion>,
    /// The defragmentation CronJob; `None` when disabled.
    pub(super) defrag_cronjob: Option<CronJob>,
}

/// The etcd objects; `None` without etcd storage. `image` is the k0s image (the first etcd
/// StatefulSet's DNS check runs it).
pub(super) fn plan_etcd(
    facts: &Facts,
    image: &str,
    patches: &[ComponentPatch],
) -> Result<Option<EtcdPlan>, BuildError> {
    let spec = &facts.cp.spec;
    if spec.storage.type_ != StorageType::Etcd {
        return Ok(None);
    }
    let cluster = facts.cluster_name.as_str();
    let namespace = facts.cp.namespace.as_str();
    let owner = &facts.cp.owner;
    let service = with_type_meta(etcd::service(cluster, namespace, owner), patches)?;
    let live = facts.etcd_statefulset.as_ref();
    let inputs = etcd::EtcdInputs::new(
        cluster,
        namespace,
        &spec.storage.etcd,
        live.and_then(dns_check_image_of)
            .unwrap_or_else(|| image.to_string()),
        spec.service_account.clone().filter(|s| !s.is_empty()),
        spec.topology_spread_constraints.clone(),
        live.and_then(bootstrap_replicas_of)
            .unwrap_or_else(|| etcd::target_replicas(spec.replicas)),
    );
    let replicas = etcd::next_replicas(spec.replicas, live.map(replicas_of));
    let (sts, inputs_hash) = finish_statefulset(
        etcd::statefulset(&inputs, replicas, owner),
        &inputs,
        patches,
        names::component::ETCD,
    )?;
    check_patched_statefulset(&sts, &facts.policy)?;
    let claim_expansions = claims::expansions(&sts, &facts.claims);
    let statefulset = plan_statefulset(sts, live, &inputs_hash, false);
    let defrag_cronjob = defrag_cronjob(facts, patches)?;
    Ok(Some(EtcdPlan {
        service,
        statefulset,
        claim_expansions,
        defrag_cronjob,
    }))
}

/// The defragmentation CronJob (patched and checked); `None` when disabled.
fn defrag_cronjob(
    facts: &Facts,
    patches: &[ComponentPatch],
) -> Result<Option<CronJob>, BuildError> {
    let Some(job) = etcd::defrag_cronjob(
        &facts.cluster_name,
        &facts.cp.namespace,
        &facts.cp.spec.storage.etcd,
        &facts.cp.owner,
    ) else {
        return Ok(None);
    };
    let job = with_type_meta(job, patches)?;
    let pod = job
        .spec
        .job_template
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    let name = job.metadata.name.as_deref().unwrap_or_default();
    validate::check_patched_pod(pod, &format!("CronJob {name}"), &facts.policy)?;
    Ok(Some(job))
}

fn replicas_of(sts: &StatefulSet) -> (i32, i32) {
    (
        sts.spec.replicas.unwrap_or(1),
        sts.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
    )
}

fn dns_check_image_of(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .template
        .spec
        .as_ref()?
        .init_containers
        .as_ref()?
        .iter()
        .find(|c| c.name == "dns-check")?
        .image
        .clone()
}

fn bootstrap_replicas_of(sts: &StatefulSet) -> Option<i32> {
    let env = sts
        .spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "etcd")?
        .env
        .as_ref()?;
    let value = env
        .iter()
        .find(|e| e.name == "ETCD_INITIAL_CLUSTER")?
        .value
        .as_ref()?;
    i32::try_from(value.split(',').count()).ok()
}
