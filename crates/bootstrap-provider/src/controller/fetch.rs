//! Reads of the management cluster a reconcile needs (owner, Cluster, CA, `contentFrom`
//! objects, the workload kubeconfig). Reads only: nothing here writes or sets a condition.

use std::collections::BTreeMap;
use std::sync::Arc;

use k0smotron_api::bootstrap::v1beta2::K0sWorkerConfig;
use k0smotron_api::capi::{self, Cluster, MachinePool};
use k0smotron_api::names;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};
use provider_runtime::kubeconfig::Endpoint;
use tracing::warn;

use super::context::{Context, RETRY};
use super::error::{Error, kube_err};
use crate::validate::{ContentRef, OwnerInfo, Resolved};
use crate::workload::{Workload, WorkloadError};

/// What we need from the owner.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub(super) name: String,
    pub(super) version: Option<String>,
    pub(super) is_pool: bool,
    pub(super) node_joined: bool,
    pub(super) cluster_name: Option<String>,
}

impl Owner {
    pub(super) fn info(&self) -> OwnerInfo<'_> {
        OwnerInfo {
            name: &self.name,
            version: self.version.as_deref(),
            is_pool: self.is_pool,
        }
    }
}

async fn fetch_owner(
    config: &K0sWorkerConfig,
    ctx: &Context,
    ns: &str,
) -> Result<Option<Owner>, Error> {
    let Some(owner_ref) = config.owner_references().iter().find(|r| {
        r.api_version.split('/').next() == Some(names::CAPI_GROUP)
            && (r.kind == "Machine" || r.kind == "MachinePool")
    }) else {
        return Ok(None);
    };
    let label_cluster = |meta: &ObjectMeta| capi::cluster_name_label(meta).map(str::to_string);
    if owner_ref.kind == "Machine" {
        let machine = ctx.stores.machine(&ctx.client, ns, &owner_ref.name).await?;
        Ok(machine.map(|m| Owner {
            name: m.name_any(),
            version: m.spec.version.clone(),
            is_pool: false,
            node_joined: m
                .status
                .as_ref()
                .and_then(|s| s.node_ref.as_ref())
                .is_some_and(|n| !n.name.is_empty()),
            cluster_name: Some(m.spec.cluster_name.clone())
                .filter(|c| !c.is_empty())
                .or_else(|| label_cluster(&m.metadata)),
        }))
    } else {
        // MachinePools are not watched (no store): read each time.
        let api: Api<MachinePool> = Api::namespaced(ctx.client.clone(), ns);
        let pool = api
            .get_opt(&owner_ref.name)
            .await
            .map_err(kube_err(format!(
                "reading MachinePool {ns}/{}",
                owner_ref.name
            )))?;
        Ok(pool.map(|p| Owner {
            name: p.name_any(),
            version: p.spec.template.spec.version.clone(),
            is_pool: true,
            node_joined: false,
            cluster_name: Some(p.spec.cluster_name.clone())
                .filter(|c| !c.is_empty())
                .or_else(|| label_cluster(&p.metadata)),
        }))
    }
}

/// Reads every `contentFrom` reference of the spec and `provisioner.customUserDataRef` (each
/// once).
pub(super) async fn fetch_contents(
    config: &K0sWorkerConfig,
    ctx: &Context,
    ns: &str,
) -> Result<BTreeMap<ContentRef, Resolved>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let mut out = BTreeMap::new();
    let custom_user_data = config.spec.provisioner.custom_user_data_ref.as_ref();
    for source in config
        .spec
        .files
        .iter()
        .filter_map(|f| f.content_from.as_ref())
        .chain(custom_user_data)
    {
        let Some(reference) = ContentRef::from_source(source) else {
            continue; // validate reports it
        };
        if out.contains_key(&reference) {
            continue;
        }
        let resolved = match &reference {
            ContentRef::Secret { name, key } => {
                match secrets
                    .get_opt(name)
                    .await
                    .map_err(kube_err(format!("reading Secret {ns}/{name}")))?
                {
                    None => Resolved::ObjectMissing,
                    Some(s) => s
                        .data
                        .and_then(|d| d.get(key).map(|v| v.0.clone()))
                        .map_or(Resolved::KeyMissing, Resolved::Found),
                }
            }
            ContentRef::ConfigMap { name, key } => {
                match config_maps
                    .get_opt(name)
                    .await
                    .map_err(kube_err(format!("reading ConfigMap {ns}/{name}")))?
                {
                    None => Resolved::ObjectMissing,
                    Some(cm) => cm
                        .data
                        .as_ref()
                        .and_then(|d| d.get(key).map(|v| v.clone().into_bytes()))
                        .or_else(|| {
                            cm.binary_data
                                .as_ref()
                                .and_then(|d| d.get(key).map(|v| v.0.clone()))
                        })
                        .map_or(Resolved::KeyMissing, Resolved::Found),
                }
            }
        };
        out.insert(reference, resolved);
    }
    Ok(out)
}

/// `Cluster.spec.controlPlaneEndpoint` as host and port, when complete.
pub(super) fn endpoint_of(cluster: &Cluster) -> Option<(String, u16)> {
    let e = cluster.control_plane_endpoint()?;
    let port = u16::try_from(e.port?).ok()?;
    Some((e.host.clone().filter(|h| !h.is_empty())?, port))
}

/// A client of `cluster`'s workload cluster from its `<cluster>-kubeconfig` Secret, `None`
/// while the Secret does not exist. The kubeconfig must point at the Cluster's
/// `spec.controlPlaneEndpoint` with inline credentials; anything else is refused
/// ([`WorkloadError::Refused`]) without a connection being attempted.
pub(super) async fn workload_for(
    ctx: &Context,
    ns: &str,
    cluster: &Cluster,
) -> Result<Option<Workload>, Error> {
    let cluster_name = cluster.name_any();
    let workload_err = |source| Error::Workload {
        cluster: cluster_name.clone(),
        source,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = names::kubeconfig_secret(&cluster_name);
    let Some(secret) = secrets
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {ns}/{name}")))?
    else {
        return Ok(None);
    };
    let (host, port) = endpoint_of(cluster).ok_or_else(|| {
        workload_err(WorkloadError::NoEndpoint {
            cluster: format!("{ns}/{cluster_name}"),
        })
    })?;
    let endpoint = Endpoint { host: &host, port };
    ctx.workloads
        .get_or_build(
            &super::caches::cluster_key(ns, &cluster_name),
            &secret,
            (&host, port),
            || Workload::from_kubeconfig_secret(&secret, &endpoint),
        )
        .map(Some)
        .map_err(workload_err)
}

/// The workload cluster as far as a reconcile can use it.
pub(super) enum WorkloadAccess {
    /// A client of the workload cluster.
    Ready(Box<Workload>),
    /// The `<cluster>-kubeconfig` Secret does not exist (yet).
    NoKubeconfig,
    /// The kubeconfig was refused (logged here); the message says why.
    Refused(String),
}

/// [`workload_for`], with a refused kubeconfig as a state rather than an error.
pub(super) async fn workload_access(
    ctx: &Context,
    ns: &str,
    cluster: &Cluster,
) -> Result<WorkloadAccess, Error> {
    match workload_for(ctx, ns, cluster).await {
        Ok(Some(workload)) => Ok(WorkloadAccess::Ready(Box::new(workload))),
        Ok(None) => Ok(WorkloadAccess::NoKubeconfig),
        Err(Error::Workload {
            source: source @ WorkloadError::Refused { .. },
            ..
        }) => {
            let message = source.to_string();
            warn!(error = %message, "refusing the workload kubeconfig");
            Ok(WorkloadAccess::Refused(message))
        }
        Err(err) => Err(err),
    }
}

/// The cluster CA certificate (`tls.crt` of `<cluster>-ca`), `None` while it does not exist.
pub(super) async fn fetch_ca(
    ctx: &Context,
    ns: &str,
    ca_name: &str,
) -> Result<Option<Vec<u8>>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    Ok(secrets
        .get_opt(ca_name)
        .await
        .map_err(kube_err(format!("reading Secret {ns}/{ca_name}")))?
        .and_then(|s| s.data)
        .and_then(|d| d.get(names::TLS_CRT_KEY).map(|v| v.0.clone())))
}

/// The config's owner and its Cluster, or what is missing.
pub(super) enum OwnerAndCluster {
    /// Both exist.
    Found(Owner, Arc<Cluster>),
    /// One is missing: the message for status and when to look again.
    Missing(String, Action),
}

/// The Machine or MachinePool that owns `config`, and the Cluster it names.
pub(super) async fn fetch_owner_and_cluster(
    config: &K0sWorkerConfig,
    ctx: &Context,
    ns: &str,
) -> Result<OwnerAndCluster, Error> {
    let missing = |message: &str, action| Ok(OwnerAndCluster::Missing(message.to_string(), action));
    let Some(owner) = fetch_owner(config, ctx, ns).await? else {
        return missing(
            "Waiting for a Machine or MachinePool owner",
            Action::await_change(),
        );
    };
    let Some(cluster_name) = owner
        .cluster_name
        .clone()
        .or_else(|| capi::cluster_name_label(&config.metadata).map(str::to_string))
    else {
        return missing("The owner names no Cluster yet", Action::await_change());
    };
    match ctx.stores.cluster(&ctx.client, ns, &cluster_name).await? {
        Some(cluster) => Ok(OwnerAndCluster::Found(owner, cluster)),
        None => missing(
            &format!("Cluster {cluster_name} does not exist"),
            Action::requeue(RETRY),
        ),
    }
}

/// Whether the workers of `cluster` need the HAProxy files of a control plane behind an Ingress,
/// and their material.
pub(super) enum Haproxy {
    /// The control plane is not a K0smotronControlPlane with `spec.ingress`.
    NotBehindIngress,
    /// It is, and its certificate Secret holds what the files are made of.
    Ready(crate::haproxy::HaproxyMaterial),
    /// It is (or its object is gone), and this is missing: the message names it.
    Missing(String),
}

/// Reads the Cluster's control plane, if it is a `K0smotronControlPlane`, and with
/// `spec.ingress` its HAProxy certificate Secret `<cluster>-ingress-haproxy` (`ca` is the
/// cluster CA already read). The control plane is read as a dynamic object: only whether
/// `spec.ingress` is set matters, and no other field of it may fail the read.
pub(super) async fn haproxy_material(
    ctx: &Context,
    ns: &str,
    cluster: &Cluster,
    ca: &[u8],
) -> Result<Haproxy, Error> {
    let Some(cp) =
        cluster.spec.control_plane_ref.as_ref().filter(|r| {
            r.kind == "K0smotronControlPlane" && r.api_group == names::CONTROLPLANE_GROUP
        })
    else {
        return Ok(Haproxy::NotBehindIngress);
    };
    let resource = kube::discovery::ApiResource {
        group: names::CONTROLPLANE_GROUP.to_string(),
        version: "v1beta2".to_string(),
        api_version: format!("{}/v1beta2", names::CONTROLPLANE_GROUP),
        kind: "K0smotronControlPlane".to_string(),
        plural: "k0smotroncontrolplanes".to_string(),
    };
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &resource);
    let Some(object) = api.get_opt(&cp.name).await.map_err(kube_err(format!(
        "reading K0smotronControlPlane {ns}/{}",
        cp.name
    )))?
    else {
        return Ok(Haproxy::Missing(format!(
            "Waiting for K0smotronControlPlane {} (the Cluster's control plane)",
            cp.name
        )));
    };
    let behind_ingress = object
        .data
        .pointer("/spec/ingress")
        .is_some_and(serde_json::Value::is_object);
    if !behind_ingress {
        return Ok(Haproxy::NotBehindIngress);
    }
    let name = names::ingress_haproxy_secret(&cluster.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let data = secrets
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {ns}/{name}")))?
        .and_then(|s| s.data);
    let field = |key: &str| {
        data.as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.0.clone())
            .filter(|v| !v.is_empty())
    };
    match (field(names::TLS_CRT_KEY), field(names::TLS_KEY_KEY)) {
        (Some(cert), Some(key)) => Ok(Haproxy::Ready(crate::haproxy::HaproxyMaterial {
            ca: ca.to_vec(),
            cert,
            key,
        })),
        _ => Ok(Haproxy::Missing(format!(
            "Waiting for Secret {name} with keys tls.crt and tls.key (the HAProxy certificate of a control plane behind an ingress)"
        ))),
    }
}
