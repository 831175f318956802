//! One watch per kind the control-plane controllers need, feeding both their triggers and the
//! stores reconciles read instead of the API server.
//!
//! Before, each controller watched its children only to be woken, and every reconcile read the
//! same objects again by GET (about 23 requests a reconcile, most of a burst's load on the API
//! server). Now a reconcile reads StatefulSets, Services, ConfigMaps, CronJobs, the control-plane
//! pods, the Nodes and the CAPI Clusters from these stores.
//!
//! A store can lag behind the API server. Reads by name fall back to a GET on a miss, so a miss
//! never hides an object (a foreign object squatting on a child's name without our label is not
//! in the store, and is still found and refused). A stale hit is harmless: the change that made
//! it stale wakes the control plane again, after the store has it. The pod and Node lists come
//! from the API server until their store has done its first full list.
//!
//! Secrets are watched by metadata only, for the triggers, and not kept: reconciles read the few
//! Secret bodies they need by name. Only each Secret's resourceVersion is remembered
//! ([`SecretVersions`]), so that a requeue can tell that none of a control plane's Secrets moved
//! without reading them (`crate::quiet`). Ingresses (`spec.ingress`) are kept as metadata only: a
//! reconcile needs their owner and resourceVersion, and a control plane without an Ingress then
//! costs no request to learn it has none to delete.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use k0smotron_api::capi::Cluster;
use k0smotron_api::names;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Node, NodeAddress, NodeStatus, Pod, PodCondition, PodSpec, PodStatus,
    Secret, Service,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use provider_runtime::ManagerArgs;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::packed::Packed;

/// Events a controller may be behind on one kind before the watch waits for it.
const BUFFER: usize = 1024;

/// A watch's store (objects kept as JSON, [`Packed`]) and whether its first full list is in.
#[derive(Clone)]
pub struct Kept<K> {
    packed: Packed<K>,
    listed: Arc<AtomicBool>,
}

/// What a store says of one name.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<K> {
    /// It is there (perhaps a little behind the API server).
    Found(K),
    /// The store has listed its kind and has no such object: absent, or not carrying the label
    /// the watch selects, or created a moment ago.
    Missing,
    /// The store has not listed its kind yet, or cannot read what it kept: nothing can be said.
    Unknown,
}

impl<K> Kept<K> {
    fn empty() -> Self {
        Self {
            packed: Packed::default(),
            listed: Arc::default(),
        }
    }

    /// How many objects are kept.
    pub fn len(&self) -> usize {
        self.packed.len()
    }
}

impl<K: Resource + Serialize> Kept<K> {
    /// Takes in one watch event (the watch's side).
    fn observe(&self, event: &watcher::Event<K>) {
        self.packed.apply(event);
        if let watcher::Event::InitDone = event {
            self.listed.store(true, Ordering::Release);
        }
    }
}

impl<K> Kept<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    /// Whether the first full list is in.
    pub fn listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }

    /// `ns/name`.
    pub fn get(&self, ns: &str, name: &str) -> Lookup<K> {
        match self.packed.get(Some(ns), name) {
            Some(Ok(obj)) => Lookup::Found(obj),
            Some(Err(e)) => {
                tracing::warn!(kind = %K::kind(&()), %ns, %name, error = %e, "read from the API server instead");
                Lookup::Unknown
            }
            None if self.listed() => Lookup::Missing,
            None => Lookup::Unknown,
        }
    }

    /// The objects of `ns` (all when `None`) with cluster-name label `cluster` (any when
    /// `None`), or `None` before the first full list (or when one cannot be read back).
    pub fn list(&self, ns: Option<&str>, cluster: Option<&str>) -> Option<Vec<K>> {
        if !self.listed() {
            return None;
        }
        self.packed
            .list(ns, cluster)
            .inspect_err(|e| {
                tracing::warn!(kind = %K::kind(&()), error = %e, "list from the API server instead");
            })
            .ok()
    }
}

/// The stores reconciles read.
#[derive(Clone)]
pub struct Stores {
    /// StatefulSets with the cluster-name label.
    pub statefulsets: Kept<StatefulSet>,
    /// Services with the cluster-name label.
    pub services: Kept<Service>,
    /// ConfigMaps with the cluster-name label.
    pub config_maps: Kept<ConfigMap>,
    /// CronJobs with the cluster-name label.
    pub cron_jobs: Kept<CronJob>,
    /// Ingresses with the cluster-name label, as metadata: a reconcile reads only their owner
    /// and resourceVersion, and only control planes with `spec.ingress` have one.
    pub ingresses: Kept<PartialObjectMeta<Ingress>>,
    /// Control-plane pods (`app=k0smotron`, `cluster.x-k8s.io/control-plane`), their spec cut
    /// down to container names and images.
    pub pods: Kept<Pod>,
    /// Nodes, cut down to their name and addresses.
    pub nodes: Kept<Node>,
    /// CAPI Clusters (empty when the Cluster API kind is not served).
    pub clusters: Kept<Cluster>,
    /// The resourceVersion of each Secret with the cluster-name label.
    pub secrets: SecretVersions,
}

/// The resourceVersion (as a hash) of every Secret the metadata watch of children sees, by
/// namespace and name: about 90 bytes a Secret, where keeping the metadata itself would cost
/// several hundred.
#[derive(Clone, Default)]
pub struct SecretVersions(Arc<RwLock<VersionIndex>>);

#[derive(Default)]
struct VersionIndex {
    /// `ns/name` → (hash of the resourceVersion, the list it was last seen in).
    versions: HashMap<String, (u64, u32)>,
    /// Which list of the watch is current: every (re)list counts one up, and what the new list
    /// did not contain is dropped when it is done.
    list: u32,
    listed: bool,
}

/// The hash a resourceVersion is remembered and compared by.
pub fn version_hash(version: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    version.hash(&mut h);
    h.finish()
}

impl SecretVersions {
    /// What the index says of `ns/name`: `Some(Some(hash))` for a Secret it has, `Some(None)`
    /// for one it has not (once listed), `None` before the first full list.
    pub fn get(&self, ns: &str, name: &str) -> Option<Option<u64>> {
        let index = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !index.listed {
            return None;
        }
        Some(index.versions.get(&format!("{ns}/{name}")).map(|v| v.0))
    }

    /// Takes in one event of the watch (before its triggers are sent, so a reconcile woken by a
    /// change finds the change here).
    pub fn observe(&self, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        let key = |o: &PartialObjectMeta<Secret>| {
            format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
        };
        let mut index = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = index.list;
        match event {
            watcher::Event::Init => index.list = list.wrapping_add(1),
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let version = version_hash(o.resource_version().as_deref().unwrap_or_default());
                index.versions.insert(key(o), (version, list));
            }
            watcher::Event::Delete(o) => {
                index.versions.remove(&key(o));
            }
            watcher::Event::InitDone => {
                index.versions.retain(|_, (_, seen)| *seen == list);
                index.listed = true;
            }
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("statefulsets", &self.statefulsets.len())
            .field("pods", &self.pods.len())
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Stores that stay empty (the reconciler then reads everything from the API server).
    pub fn empty() -> Self {
        Self {
            statefulsets: Kept::empty(),
            services: Kept::empty(),
            config_maps: Kept::empty(),
            cron_jobs: Kept::empty(),
            ingresses: Kept::empty(),
            pods: Kept::empty(),
            nodes: Kept::empty(),
            clusters: Kept::empty(),
            secrets: SecretVersions::default(),
        }
    }

    /// The control-plane pods of `ns` matching every label of `selector`, in name order, or
    /// `None` while the pod watch has not listed them yet.
    pub fn pods(&self, ns: &str, selector: &BTreeMap<String, String>) -> Option<Vec<Pod>> {
        let cluster = selector.get(names::CLUSTER_NAME_LABEL).map(String::as_str);
        let mut pods: Vec<Pod> = self
            .pods
            .list(Some(ns), cluster)?
            .into_iter()
            .filter(|p| {
                let labels = p.labels();
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect();
        pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Some(pods)
    }

    /// Every Node, or `None` while the Node watch has not listed them yet.
    pub fn nodes(&self) -> Option<Vec<Node>> {
        self.nodes.list(None, None)
    }
}

/// A stream of one kind's objects as they change, for one controller's trigger.
pub type Feed<K> = mpsc::Receiver<K>;

/// The triggers of one control-plane controller: its children and their pods.
pub struct Triggers {
    /// StatefulSets.
    pub statefulsets: Feed<StatefulSet>,
    /// Services.
    pub services: Feed<Service>,
    /// ConfigMaps.
    pub config_maps: Feed<ConfigMap>,
    /// Secrets (metadata).
    pub secrets: Feed<PartialObjectMeta<Secret>>,
    /// CronJobs.
    pub cron_jobs: Feed<CronJob>,
    /// Ingresses (metadata).
    pub ingresses: Feed<PartialObjectMeta<Ingress>>,
    /// Control-plane pods.
    pub pods: Feed<Pod>,
}

/// The watches, their stores, and the triggers of the controllers that run.
pub struct Watches {
    /// What reconciles read.
    pub stores: Stores,
    /// The Cluster API kind's triggers and its CAPI Cluster feed (when it runs).
    pub capi: Option<(Triggers, Feed<Cluster>)>,
    /// The standalone kind's triggers (when it runs).
    pub standalone: Option<Triggers>,
    /// Runs every watch; never ends (drop it to stop them).
    pub driver: futures::future::BoxFuture<'static, ()>,
}

/// Starts nothing yet: builds the watches for the controllers that run (`capi`, `standalone`);
/// [`Watches::driver`] runs them.
pub fn watches(client: &Client, args: &ManagerArgs, capi: bool, standalone: bool) -> Watches {
    let subscribers = usize::from(capi) + usize::from(standalone);
    let mut plan = Plan {
        client,
        args,
        subscribers,
        drivers: Vec::new(),
    };
    let (statefulsets, mut sts_feeds) = plan.child();
    let (services, mut svc_feeds) = plan.child();
    let (config_maps, mut cm_feeds) = plan.child();
    let (cron_jobs, mut cj_feeds) = plan.child();
    let (ingresses, mut ingress_feeds) = stored(
        args.api::<PartialObjectMeta<Ingress>>(client.clone()),
        children_config(),
        subscribers,
        &mut plan.drivers,
    );
    let secrets = SecretVersions::default();
    let mut secret_feeds = {
        let secrets = secrets.clone();
        unstored(
            args.api::<PartialObjectMeta<Secret>>(client.clone()),
            children_config(),
            move |event| secrets.observe(event),
            subscribers,
            &mut plan.drivers,
        )
    };
    let pods_config = watcher::Config::default().any_semantic().labels(&format!(
        "{}={},{}",
        names::APP_LABEL,
        names::APP_LABEL_VALUE,
        names::CONTROL_PLANE_LABEL
    ));
    let (pods, mut pod_feeds) = stored(
        args.api::<Pod>(client.clone()),
        pods_config,
        subscribers,
        &mut plan.drivers,
    );
    let everything = || watcher::Config::default().any_semantic();
    let (nodes, _) = stored(
        Api::<Node>::all(client.clone()),
        everything(),
        0,
        &mut plan.drivers,
    );
    let (clusters, mut cluster_feeds) = if capi {
        stored(
            args.api::<Cluster>(client.clone()),
            everything(),
            1,
            &mut plan.drivers,
        )
    } else {
        (Kept::empty(), Vec::new())
    };

    let mut take = || Triggers {
        statefulsets: sts_feeds.remove(0),
        services: svc_feeds.remove(0),
        config_maps: cm_feeds.remove(0),
        secrets: secret_feeds.remove(0),
        cron_jobs: cj_feeds.remove(0),
        ingresses: ingress_feeds.remove(0),
        pods: pod_feeds.remove(0),
    };
    let capi_triggers = capi.then(|| (take(), cluster_feeds.remove(0)));
    let standalone_triggers = standalone.then(take);
    let driver = if subscribers == 0 {
        // No controller reads the stores: nothing to watch.
        futures::future::pending().boxed()
    } else {
        futures::future::join_all(plan.drivers).map(|_| ()).boxed()
    };
    Watches {
        stores: Stores {
            statefulsets,
            services,
            config_maps,
            cron_jobs,
            ingresses,
            pods,
            nodes,
            clusters,
            secrets,
        },
        capi: capi_triggers,
        standalone: standalone_triggers,
        driver,
    }
}

/// Every child carries the cluster-name label; caching only those keeps unrelated objects out of
/// memory.
fn children_config() -> watcher::Config {
    watcher::Config::default()
        .any_semantic()
        .labels(names::CLUSTER_NAME_LABEL)
}

/// The watches [`watches`] is setting up, and what each needs.
struct Plan<'a> {
    client: &'a Client,
    args: &'a ManagerArgs,
    subscribers: usize,
    drivers: Vec<futures::future::BoxFuture<'static, ()>>,
}

impl Plan<'_> {
    /// A stored watch of one kind of child, with a feed per subscriber.
    fn child<K>(&mut self) -> (Kept<K>, Vec<Feed<K>>)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
        K: Trim + Clone + Serialize + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    {
        stored(
            self.args.api(self.client.clone()),
            children_config(),
            self.subscribers,
            &mut self.drivers,
        )
    }
}

/// How an object is cut down before it is kept: `managedFields` (except a StatefulSet's); pods
/// to what status reads (container names and images, labels, phase, conditions' types and
/// statuses); Nodes to their addresses.
pub trait Trim {
    /// Drops what no reconcile reads.
    fn trim(&mut self);
}

macro_rules! trim_managed_fields {
    ($($kind:ty),*) => {$(
        impl Trim for $kind {
            fn trim(&mut self) {
                self.managed_fields_mut().clear();
            }
        }
    )*};
}
trim_managed_fields!(
    Service,
    CronJob,
    PartialObjectMeta<Secret>,
    PartialObjectMeta<Ingress>
);

/// Kept as metadata: a reconcile reads a ConfigMap only for its owner and its resourceVersion
/// (whether our last apply is still what is live, `AppliedMemo`); another writer's change moves
/// the resourceVersion, so the data is never compared. The k0s config and scripts in the data
/// were most of what a control plane's ConfigMaps cost in memory (issue #11, N = 1,000).
impl Trim for ConfigMap {
    fn trim(&mut self) {
        self.managed_fields_mut().clear();
        self.data = None;
        self.binary_data = None;
    }
}

/// Kept with thinned `managedFields`: whether another field manager changed our pod template is
/// read from them (`ownership::foreign_template_edit`; without them a foreign image stayed, as
/// the second-writer fault test showed), and that needs only each entry's manager, time and
/// whether it owns a field under `spec.template`.
///
/// Of the pod spec only the containers' and init containers' names, images and environment are
/// kept: what a reconcile reads of a live StatefulSet (the k0s version running, etcd's
/// `dns-check` image and bootstrap size). The whole template, most of what a StatefulSet cost
/// in the store (34 of 115 MiB at N = 1,000, issue #11), is read by GET only when another writer
/// has edited it (`reconcile::whole_if_edited`), to compare it with ours.
impl Trim for StatefulSet {
    fn trim(&mut self) {
        thin_managed_fields(self.managed_fields_mut(), &["/f:spec/f:template"]);
        if let Some(spec) = self.spec.template.spec.as_mut() {
            let keep = |c: Container| Container {
                name: c.name,
                image: c.image,
                env: c.env,
                ..Default::default()
            };
            *spec = PodSpec {
                containers: std::mem::take(&mut spec.containers)
                    .into_iter()
                    .map(keep)
                    .collect(),
                init_containers: spec
                    .init_containers
                    .take()
                    .map(|cs| cs.into_iter().map(keep).collect()),
                ..Default::default()
            };
        }
    }
}

/// `kubectl apply`'s (and client-side GitOps tools') copy of the whole object as last applied: as
/// large as the spec again, and read by no reconcile.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops the last-applied copy of an object a user writes (a control plane, a CAPI Cluster)
/// before it is kept. Nothing writes a stored object back whole, so what is dropped here is
/// never dropped from the API server.
fn drop_last_applied(meta: &mut ObjectMeta) {
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Kept without `managedFields` or the last-applied annotation: a reconcile reads a Cluster's
/// spec, status and its cluster-id annotation.
impl Trim for Cluster {
    fn trim(&mut self) {
        self.managed_fields_mut().clear();
        drop_last_applied(&mut self.metadata);
    }
}

/// Cuts a control-plane object (either kind) down for the controller's store: `managedFields`
/// to [`CONTROL_PLANE_FIELDS`], and no last-applied copy (as large as the spec again; GitOps tools
/// that apply client-side write one on every object).
pub(crate) fn trim_control_plane<K: Resource>(obj: &mut K) {
    thin_managed_fields(obj.managed_fields_mut(), CONTROL_PLANE_FIELDS);
    drop_last_applied(obj.meta_mut());
}

/// The `managedFields` paths a reconcile reads of a control-plane object: whether we alone own
/// `spec.controlPlaneEndpoint` (`reconcile::endpoint_owned_by_provider`).
pub(crate) const CONTROL_PLANE_FIELDS: &[&str] = &["/f:spec/f:controlPlaneEndpoint"];

/// Cuts `managedFields` down to what a reconcile reads of them: the entries of the object itself
/// (a subresource's, such as status written by the StatefulSet controller, are dropped), each
/// with its manager, operation and time, and of its field set only the `keep` paths (JSON
/// pointers) it has, each as an empty set. A StatefulSet's entries were more than a third of
/// what it cost in the store (issue #11).
pub(crate) fn thin_managed_fields(entries: &mut Vec<ManagedFieldsEntry>, keep: &[&str]) {
    entries.retain(|e| e.subresource.is_none());
    for entry in entries.iter_mut() {
        entry.fields_v1 = entry
            .fields_v1
            .take()
            .and_then(|f| only_paths(&f.0, keep))
            .map(FieldsV1);
    }
}

/// The paths of `keep` that `fields` has, as a field set of empty sets; `None` when it has none.
fn only_paths(fields: &serde_json::Value, keep: &[&str]) -> Option<serde_json::Value> {
    let mut out = serde_json::Value::Object(serde_json::Map::new());
    let mut any = false;
    for path in keep.iter().filter(|p| fields.pointer(p).is_some()) {
        let mut at = &mut out;
        for segment in path.split('/').skip(1) {
            at = at
                .as_object_mut()?
                .entry(segment)
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        }
        any = true;
    }
    any.then_some(out)
}

impl Trim for Pod {
    fn trim(&mut self) {
        self.managed_fields_mut().clear();
        self.metadata.annotations = None;
        if let Some(spec) = self.spec.take() {
            let containers = spec
                .containers
                .into_iter()
                .map(|c| k8s_openapi::api::core::v1::Container {
                    name: c.name,
                    image: c.image,
                    ..Default::default()
                })
                .collect();
            self.spec = Some(PodSpec {
                containers,
                ..Default::default()
            });
        }
        if let Some(status) = self.status.take() {
            self.status = Some(PodStatus {
                phase: status.phase,
                conditions: status.conditions.map(|cs| {
                    cs.into_iter()
                        .map(|c| PodCondition {
                            type_: c.type_,
                            status: c.status,
                            ..Default::default()
                        })
                        .collect()
                }),
                ..Default::default()
            });
        }
    }
}

impl Trim for Node {
    fn trim(&mut self) {
        let addresses: Option<Vec<NodeAddress>> = self.status.take().and_then(|s| s.addresses);
        self.metadata = kube::api::ObjectMeta {
            name: self.metadata.name.take(),
            resource_version: self.metadata.resource_version.take(),
            uid: self.metadata.uid.take(),
            ..Default::default()
        };
        self.spec = None;
        self.status = Some(NodeStatus {
            addresses,
            ..Default::default()
        });
    }
}

/// A kept watch of `api`: its store, one feed per subscriber, its driver pushed on `drivers`.
fn stored<K>(
    api: Api<K>,
    config: watcher::Config,
    subscribers: usize,
    drivers: &mut Vec<futures::future::BoxFuture<'static, ()>>,
) -> (Kept<K>, Vec<Feed<K>>)
where
    K: Resource<DynamicType = ()> + Trim + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    K: Send + Sync + 'static,
{
    let kept = Kept::empty();
    let writer = kept.clone();
    let events = watcher(api, config)
        .default_backoff()
        .modify(Trim::trim)
        .inspect(move |event| {
            if let Ok(event) = event {
                writer.observe(event);
            }
        });
    let (senders, feeds) = channels(subscribers);
    drivers.push(fan_out(events, senders).boxed());
    (kept, feeds)
}

/// A watch of `api` only for the triggers (nothing kept but what `observe` takes from each
/// event before the triggers are sent).
fn unstored<K>(
    api: Api<K>,
    config: watcher::Config,
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
    subscribers: usize,
    drivers: &mut Vec<futures::future::BoxFuture<'static, ()>>,
) -> Vec<Feed<K>>
where
    K: Resource<DynamicType = ()> + Trim + Clone + DeserializeOwned + std::fmt::Debug,
    K: Send + Sync + 'static,
{
    let events = watcher(api, config)
        .default_backoff()
        .modify(Trim::trim)
        .inspect(move |event| {
            if let Ok(event) = event {
                observe(event);
            }
        });
    let (senders, feeds) = channels(subscribers);
    drivers.push(fan_out(events, senders).boxed());
    feeds
}

fn channels<K>(n: usize) -> (Vec<mpsc::Sender<K>>, Vec<Feed<K>>) {
    (0..n).map(|_| mpsc::channel(BUFFER)).unzip()
}

/// Sends every object a watch event touches to each subscriber (waiting for a slow one: its
/// controller drains its triggers continuously). A subscriber that went away is skipped.
async fn fan_out<K, S>(events: S, senders: Vec<mpsc::Sender<K>>)
where
    K: Resource<DynamicType = ()> + Clone + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut senders = senders;
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let obj = match event {
            Ok(
                watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o),
            ) => o,
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            Err(e) => {
                // The watcher retries with backoff; the kind's name says which watch it is.
                tracing::debug!(kind = %K::kind(&()), error = %e, "watch error");
                continue;
            }
        };
        for sender in &mut senders {
            if !sender.is_closed() {
                let _ = sender.send(obj.clone()).await;
            }
        }
    }
}

/// The control plane of kind `K` a control-plane pod belongs to: the pod's StatefulSet (from
/// `statefulsets`) and that StatefulSet's controller.
pub fn control_plane_of_pod<K>(statefulsets: &Kept<StatefulSet>, pod: &Pod) -> Option<ObjectRef<K>>
where
    K: Resource<DynamicType = ()>,
{
    let ns = pod.namespace()?;
    let sts_name = pod
        .owner_references()
        .iter()
        .find(|r| r.kind == "StatefulSet" && r.controller == Some(true))?
        .name
        .clone();
    let Lookup::Found(sts) = statefulsets.get(&ns, &sts_name) else {
        return None;
    };
    let owner = sts
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true))?;
    (owner.kind == K::kind(&()) && owner.api_version == K::api_version(&()))
        .then(|| ObjectRef::new(&owner.name).within(&ns))
}

/// What about a control-plane pod can change its control plane's status: readiness, revision,
/// image, deletion. Other changes (kubelet heartbeats of conditions, IPs) do not wake it.
pub fn pod_state(pod: &Pod) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pod.metadata.deletion_timestamp.is_some().hash(&mut h);
    pod.labels().get("controller-revision-hash").hash(&mut h);
    if let Some(spec) = &pod.spec {
        for c in &spec.containers {
            (&c.name, &c.image).hash(&mut h);
        }
    }
    if let Some(status) = &pod.status {
        status.phase.hash(&mut h);
        for c in status.conditions.iter().flatten() {
            if c.type_ == "Ready" {
                c.status.hash(&mut h);
            }
        }
    }
    Some(h.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::runtime::watcher::Event;
    use pretty_assertions::assert_eq;

    fn pod(ready: &str, heartbeat: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("kmc-demo-0".into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: "kmc-demo".into(),
            uid: "sts".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        p.spec = Some(PodSpec {
            containers: vec![Container {
                name: "controller".into(),
                image: Some("k0s:v1".into()),
                args: Some(vec!["--secret".into()]),
                ..Default::default()
            }],
            ..Default::default()
        });
        p.status = Some(PodStatus {
            conditions: Some(vec![
                PodCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                },
                PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    message: Some(heartbeat.into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        p
    }

    #[test]
    fn only_what_status_reads_changes_a_pods_state() {
        assert_eq!(pod_state(&pod("True", "a")), pod_state(&pod("True", "b")));
        assert_ne!(pod_state(&pod("True", "a")), pod_state(&pod("False", "a")));
        let mut trimmed = pod("True", "a");
        trimmed.trim();
        assert_eq!(
            pod_state(&trimmed),
            pod_state(&pod("True", "a")),
            "trimming keeps what the state hashes"
        );
        let c = &trimmed.spec.as_ref().unwrap().containers[0];
        assert_eq!((c.name.as_str(), c.args.as_ref()), ("controller", None));
        let conditions = trimmed.status.unwrap().conditions.unwrap();
        assert_eq!(
            conditions
                .iter()
                .map(|c| (c.type_.as_str(), c.status.as_str(), c.message.as_deref()))
                .collect::<Vec<_>>(),
            [("Ready", "True", None), ("PodScheduled", "True", None)],
            "conditions keep their type and status only"
        );
    }

    #[test]
    fn a_kept_cluster_has_no_last_applied_copy_and_no_managed_fields() {
        let mut cluster: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": {
                "name": "demo",
                "namespace": "ns",
                "annotations": {
                    LAST_APPLIED: "{\"spec\":{}}",
                    names::CLUSTER_ID_ANNOTATION: "id",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
            },
            "spec": {},
        }))
        .unwrap();
        cluster.trim();
        assert_eq!(
            cluster.annotations().keys().collect::<Vec<_>>(),
            [names::CLUSTER_ID_ANNOTATION]
        );
        assert!(cluster.managed_fields().is_empty());

        let mut cp = k0smotron_api::controlplane::v1beta2::K0smotronControlPlane::new(
            "demo",
            Default::default(),
        );
        cp.metadata.annotations = cluster.metadata.annotations.clone();
        cp.annotations_mut()
            .insert(LAST_APPLIED.into(), "{\"spec\":{}}".into());
        trim_control_plane(&mut cp);
        assert_eq!(
            cp.annotations().keys().collect::<Vec<_>>(),
            [names::CLUSTER_ID_ANNOTATION]
        );
    }

    #[test]
    fn a_kept_statefulset_has_what_a_reconcile_reads_and_little_else() {
        let mut inputs = crate::statefulset::tests::inputs();
        inputs.nats = crate::nats::inputs(
            &{
                let mut spec = k0smotron_api::controlplane::v1beta2::ClusterSpec::default();
                spec.storage.type_ = k0smotron_api::controlplane::v1beta2::StorageType::Nats;
                spec
            },
            "demo",
        );
        let full = crate::statefulset::statefulset(&inputs, 3, &OwnerReference::default()).unwrap();
        let mut kept = full.clone();
        kept.trim();
        let pod = |s: &StatefulSet| s.spec.template.spec.clone().unwrap();
        assert_eq!(
            crate::statefulset::controller_image(&pod(&kept)),
            crate::statefulset::controller_image(&pod(&full))
        );
        assert_eq!(pod(&kept).containers[0].env, pod(&full).containers[0].env);
        assert_eq!(kept.metadata.labels, full.metadata.labels);
        assert_eq!(kept.metadata.annotations, full.metadata.annotations);
        assert_eq!(
            kept.spec.volume_claim_templates,
            full.spec.volume_claim_templates
        );
        assert_eq!(kept.spec.replicas, Some(3));
        assert_eq!(pod(&kept).volumes, None);
        let size = |s: &StatefulSet| serde_json::to_string(s).unwrap().len();
        assert!(
            size(&kept) * 2 < size(&full),
            "{} of {}",
            size(&kept),
            size(&full)
        );
    }

    #[test]
    fn a_pod_maps_through_its_statefulset_to_the_control_plane() {
        use k0smotron_api::controlplane::v1beta2::K0smotronControlPlane;
        let store = Kept::<StatefulSet>::empty();
        let p = pod("True", "a");
        assert_eq!(
            control_plane_of_pod::<K0smotronControlPlane>(&store, &p),
            None,
            "an unknown StatefulSet maps nowhere"
        );
        let mut sts = StatefulSet::default();
        sts.metadata.name = Some("kmc-demo".into());
        sts.metadata.namespace = Some("ns".into());
        sts.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "controlplane.cluster.x-k8s.io/v1beta2".into(),
            kind: "K0smotronControlPlane".into(),
            name: "demo-cp".into(),
            uid: "kcp".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        store.observe(&Event::Apply(sts));
        assert_eq!(
            control_plane_of_pod::<K0smotronControlPlane>(&store, &p),
            Some(ObjectRef::new("demo-cp").within("ns"))
        );
        assert_eq!(
            control_plane_of_pod::<k0smotron_api::k0smotron::v1beta2::Cluster>(&store, &p),
            None,
            "another kind's controller does not claim it"
        );
    }

    #[test]
    fn statefulsets_keep_their_managed_fields() {
        let mut sts = StatefulSet::default();
        sts.metadata.managed_fields = Some(vec![Default::default()]);
        sts.trim();
        assert_eq!(sts.metadata.managed_fields.map(|m| m.len()), Some(1));
        let mut svc = Service::default();
        svc.metadata.managed_fields = Some(vec![Default::default()]);
        svc.trim();
        assert_eq!(svc.metadata.managed_fields.map(|m| m.len()), Some(0));
    }

    fn entry(
        manager: &str,
        subresource: Option<&str>,
        fields: serde_json::Value,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            subresource: subresource.map(Into::into),
            time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(1_000).unwrap(),
            )),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn thinned_managed_fields_keep_only_the_paths_read() {
        let template = serde_json::json!({"f:spec": {"f:replicas": {}, "f:template": {
            "f:spec": {"f:containers": {"k:{\"name\":\"controller\"}": {"f:image": {}}}}}}});
        let mut entries = vec![
            entry("k0smotron-controlplane", None, template.clone()),
            entry(
                "kubectl",
                None,
                serde_json::json!({"f:metadata": {"f:labels": {}}}),
            ),
            entry(
                "kube-controller-manager",
                Some("status"),
                serde_json::json!({"f:status": {}}),
            ),
        ];
        thin_managed_fields(&mut entries, &["/f:spec/f:template"]);
        assert_eq!(entries.len(), 2, "the status entry is dropped");
        assert_eq!(
            entries[0].fields_v1.as_ref().map(|f| f.0.clone()),
            Some(serde_json::json!({"f:spec": {"f:template": {}}}))
        );
        assert_eq!(
            entries[0].manager.as_deref(),
            Some("k0smotron-controlplane")
        );
        assert!(entries[0].time.is_some());
        assert_eq!(entries[1].fields_v1, None);
    }

    /// What the readers of managedFields conclude is the same before and after the thinning.
    #[test]
    fn thinning_keeps_what_the_readers_of_managed_fields_conclude() {
        let ours = entry(
            "k0smotron-controlplane",
            None,
            serde_json::json!({"f:spec": {"f:template": {"f:metadata": {}}}}),
        );
        let foreign = entry(
            "kubectl-edit",
            None,
            serde_json::json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}}),
        );
        let status = entry(
            "kube-controller-manager",
            Some("status"),
            serde_json::json!({"f:status": {}}),
        );
        for entries in [
            vec![ours.clone(), foreign.clone(), status.clone()],
            vec![ours.clone(), status.clone()],
            vec![foreign.clone()],
        ] {
            let mut sts = StatefulSet::default();
            sts.metadata.managed_fields = Some(entries);
            let before = crate::ownership::foreign_template_edit(&sts);
            sts.trim();
            assert_eq!(crate::ownership::foreign_template_edit(&sts), before);
        }
        let endpoint = |manager: &str| {
            entry(
                manager,
                None,
                serde_json::json!({"f:spec": {"f:controlPlaneEndpoint": {"f:host": {}}, "f:replicas": {}}}),
            )
        };
        for entries in [
            vec![endpoint(crate::reconcile::ENDPOINT_MANAGER)],
            vec![
                endpoint(crate::reconcile::ENDPOINT_MANAGER),
                endpoint("argocd"),
            ],
            vec![endpoint(crate::reconcile::ENDPOINT_MANAGER), status.clone()],
        ] {
            let mut meta = kube::api::ObjectMeta {
                managed_fields: Some(entries),
                ..Default::default()
            };
            let before = crate::reconcile::endpoint_owned_by_provider(&meta);
            thin_managed_fields(
                meta.managed_fields.get_or_insert_default(),
                CONTROL_PLANE_FIELDS,
            );
            assert_eq!(crate::reconcile::endpoint_owned_by_provider(&meta), before);
        }
    }

    #[test]
    fn config_maps_keep_only_their_metadata() {
        let mut cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("kmc-a-config".into()),
                resource_version: Some("7".into()),
                managed_fields: Some(vec![Default::default()]),
                ..Default::default()
            },
            data: Some([("k0s.yaml".to_string(), "spec: {}".to_string())].into()),
            binary_data: Some(Default::default()),
            ..Default::default()
        };
        cm.trim();
        assert_eq!(cm.data, None);
        assert_eq!(cm.binary_data, None);
        assert_eq!(cm.metadata.managed_fields.map(|m| m.len()), Some(0));
        assert_eq!(cm.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(cm.metadata.name.as_deref(), Some("kmc-a-config"));
    }

    #[test]
    fn nodes_keep_only_their_addresses() {
        let mut n = Node::default();
        n.metadata.name = Some("n1".into());
        n.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        n.status = Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: "10.0.0.1".into(),
            }]),
            capacity: Some(Default::default()),
            ..Default::default()
        });
        n.trim();
        assert_eq!(n.metadata.labels, None);
        assert_eq!(
            crate::services::node_addresses(std::slice::from_ref(&n)),
            vec!["10.0.0.1".to_string()]
        );
        assert_eq!(n.status.unwrap().capacity, None);
    }

    fn secret(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut s = PartialObjectMeta::<Secret>::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("ns".into());
        s.metadata.resource_version = Some(version.into());
        s
    }

    #[test]
    fn secret_versions_follow_the_watch_and_a_relist_drops_what_it_did_not_list() {
        let index = SecretVersions::default();
        assert_eq!(index.get("ns", "a"), None, "unknown before the first list");
        index.observe(&Event::Init);
        index.observe(&Event::InitApply(secret("a", "1")));
        index.observe(&Event::InitApply(secret("b", "1")));
        assert_eq!(index.get("ns", "a"), None, "still unknown while listing");
        index.observe(&Event::InitDone);
        assert_eq!(index.get("ns", "a"), Some(Some(version_hash("1"))));
        assert_eq!(index.get("ns", "c"), Some(None));
        assert_eq!(index.get("other", "a"), Some(None));
        index.observe(&Event::Apply(secret("a", "2")));
        assert_eq!(index.get("ns", "a"), Some(Some(version_hash("2"))));
        index.observe(&Event::Delete(secret("b", "1")));
        assert_eq!(index.get("ns", "b"), Some(None));
        // A relist after a watch outage: "a" was deleted meanwhile, "c" created.
        index.observe(&Event::Init);
        index.observe(&Event::InitApply(secret("c", "5")));
        assert_eq!(
            index.get("ns", "c"),
            Some(Some(version_hash("5"))),
            "seen at once"
        );
        index.observe(&Event::InitDone);
        assert_eq!(index.get("ns", "a"), Some(None));
        assert_eq!(index.get("ns", "c"), Some(Some(version_hash("5"))));
    }

    #[test]
    fn the_pod_list_waits_for_the_first_full_list() {
        let stores = Stores::empty();
        assert_eq!(stores.pods("ns", &Default::default()), None);
        assert_eq!(stores.statefulsets.get("ns", "kmc-demo"), Lookup::Unknown);
        stores.pods.listed.store(true, Ordering::Release);
        stores.statefulsets.listed.store(true, Ordering::Release);
        assert_eq!(stores.pods("ns", &Default::default()), Some(Vec::new()));
        assert_eq!(stores.statefulsets.get("ns", "kmc-demo"), Lookup::Missing);
    }
}
