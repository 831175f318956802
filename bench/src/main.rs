//! `k0smotron-bench`: the driver of `make bench` (issue #11). `provider` runs the burst, steady
//! and churn workloads against a running control-plane provider and captures what it created;
//! `floor` creates exactly those objects with a bare client; `bootstrap` runs the bootstrap
//! workload against a running bootstrap provider. Each prints one JSON document;
//! `bench/run.sh` orchestrates and `bench/report.py` summarises. Progress goes to stderr.

mod audit;
mod bootstrap;
mod contract;
mod sampler;
mod tracker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Api, Client, ResourceExt as _};
use serde_json::{Value, json};

use contract::{NAMESPACES, Spec};
use tracker::Tracker;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// burst → settle → capture → steady → churn, against the provider running as `--pid`.
    Provider {
        #[arg(long)]
        n: usize,
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        audit_log: PathBuf,
        /// The provider's user name in the audit log (its client certificate's CN).
        #[arg(long)]
        user: String,
        #[arg(long, default_value_t = 300)]
        steady_seconds: u64,
        /// Quiet period (no provider write) that counts as settled.
        #[arg(long, default_value_t = 10)]
        quiet_seconds: u64,
        /// Give up waiting for the quiet period after this long (a provider that never stops
        /// writing is measured by the steady phase anyway).
        #[arg(long, default_value_t = 120)]
        settle_max_seconds: u64,
        /// Where the provider's output is captured for the floor.
        #[arg(long)]
        capture: PathBuf,
        /// Concurrent creates of the burst ("at once", bounded so the driver is not the limit).
        #[arg(long, default_value_t = 50)]
        create_concurrency: usize,
        #[arg(long, default_value_t = 1800)]
        timeout_seconds: u64,
    },
    /// N Machines + K0sWorkerConfigs of one initialized Cluster, until every
    /// `status.dataSecretName` is set, against the bootstrap provider running as `--pid`.
    Bootstrap {
        #[arg(long)]
        n: usize,
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        audit_log: PathBuf,
        /// The provider's user name in the audit log (its client certificate's CN).
        #[arg(long)]
        user: String,
        /// Admin kubeconfig of the workload API server (inline credentials): the Cluster's
        /// endpoint and its `<cluster>-kubeconfig`.
        #[arg(long)]
        workload_kubeconfig: PathBuf,
        /// The workload cluster's CA certificate (PEM), for `<cluster>-ca`.
        #[arg(long)]
        ca_cert: PathBuf,
        /// The workload cluster's CA key (PEM), for `<cluster>-ca`.
        #[arg(long)]
        ca_key: PathBuf,
        /// Concurrent Machine + config creates.
        #[arg(long, default_value_t = 50)]
        create_concurrency: usize,
        /// Quiet period (no provider write) after the last data that counts as settled.
        #[arg(long, default_value_t = 5)]
        quiet_seconds: u64,
        #[arg(long, default_value_t = 60)]
        settle_max_seconds: u64,
        #[arg(long, default_value_t = 1800)]
        timeout_seconds: u64,
    },
    /// Creates the captured objects with a bare client, `--concurrency` clusters at a time.
    Floor {
        #[arg(long)]
        capture: PathBuf,
        #[arg(long)]
        n: usize,
        #[arg(long, default_value_t = 5)]
        concurrency: usize,
        #[arg(long, default_value_t = 1800)]
        timeout_seconds: u64,
    },
}

fn say(msg: &str) {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        % 86400;
    eprintln!(
        "{:02}:{:02}:{:02} bench: {msg}",
        t / 3600,
        (t / 60) % 60,
        t % 60
    );
}

fn secs(from: Instant, to: Instant) -> f64 {
    (to.saturating_duration_since(from).as_secs_f64() * 1000.0).round() / 1000.0
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

async fn ensure_namespaces(client: &Client, prefix: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for i in 0..NAMESPACES {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("{prefix}-{i}")}});
        api.patch(
            &format!("{prefix}-{i}"),
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&ns),
        )
        .await
        .context("creating the benchmark namespaces")?;
    }
    Ok(())
}

/// Children present / pods Ready per cluster, relative to `t0`, for the JSON.
fn burst_figures(tracker: &Tracker, t0: Instant) -> Value {
    let st = tracker.lock();
    let children: Vec<f64> = st
        .clusters
        .values()
        .filter_map(|c| c.children_at)
        .map(|t| secs(t0, t))
        .collect();
    let ready: Vec<f64> = st
        .clusters
        .values()
        .filter_map(|c| c.ready_at)
        .map(|t| secs(t0, t))
        .collect();
    json!({
        "children_p50_s": percentile(children.clone(), 0.5),
        "children_p99_s": percentile(children, 0.99),
        "ready_p50_s": percentile(ready.clone(), 0.5),
        "ready_p99_s": percentile(ready, 0.99),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let client = Client::try_default()
        .await
        .context("client from KUBECONFIG")?;
    let out = match cli.cmd {
        Cmd::Provider {
            n,
            pid,
            audit_log,
            user,
            steady_seconds,
            quiet_seconds,
            settle_max_seconds,
            capture,
            create_concurrency,
            timeout_seconds,
        } => {
            provider(
                &client,
                n,
                pid,
                audit::Audit::open(audit_log, user)?,
                steady_seconds,
                (quiet_seconds, settle_max_seconds),
                &capture,
                create_concurrency,
                Duration::from_secs(timeout_seconds),
            )
            .await?
        }
        Cmd::Bootstrap {
            n,
            pid,
            audit_log,
            user,
            workload_kubeconfig,
            ca_cert,
            ca_key,
            create_concurrency,
            quiet_seconds,
            settle_max_seconds,
            timeout_seconds,
        } => {
            bootstrap::run(
                &client,
                audit::Audit::open(audit_log, user)?,
                bootstrap::Options {
                    n,
                    pid,
                    workload_kubeconfig: &workload_kubeconfig,
                    ca: (&ca_cert, &ca_key),
                    create_concurrency,
                    quiet: (
                        Duration::from_secs(quiet_seconds),
                        Duration::from_secs(settle_max_seconds),
                    ),
                    timeout: Duration::from_secs(timeout_seconds),
                },
            )
            .await?
        }
        Cmd::Floor {
            capture,
            n,
            concurrency,
            timeout_seconds,
        } => {
            floor(
                &client,
                &capture,
                n,
                concurrency,
                Duration::from_secs(timeout_seconds),
            )
            .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn provider(
    client: &Client,
    n: usize,
    pid: u32,
    mut audit: audit::Audit,
    steady_seconds: u64,
    (quiet_seconds, settle_max_seconds): (u64, u64),
    capture: &std::path::Path,
    create_concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let specs = contract::workload(n, "bench");
    ensure_namespaces(client, "bench").await?;
    let sampler = sampler::Sampler::start(pid);
    let tracker = Tracker::start(client, &specs).await?;
    // Whatever the provider did at start (its watches' lists) is not the burst's.
    let (start_sample, start_peak) = sampler.take();
    let startup_requests = audit.take()?;
    let mut result = json!({
        "n": n,
        "provider_start": {"rss_mib": mib(start_sample.rss_kib), "peak_rss_mib": mib(start_peak),
            "cpu_s": start_sample.cpu_s, "requests": startup_requests},
    });

    // 1. burst
    say(&format!(
        "burst: creating {n} Clusters + K0smotronControlPlanes in {NAMESPACES} namespaces"
    ));
    let t0 = Instant::now();
    let server_t0 = sampler::ServerCpu::now();
    futures::stream::iter(specs.iter().cloned())
        .map(|s| {
            let client = client.clone();
            async move {
                let clusters = Api::<DynamicObject>::namespaced_with(
                    client.clone(),
                    &s.namespace,
                    &contract::cluster_resource(),
                );
                let kcps = Api::<DynamicObject>::namespaced_with(
                    client,
                    &s.namespace,
                    &contract::kcp_resource(),
                );
                let c: DynamicObject = serde_json::from_value(s.cluster_json())?;
                let c = clusters
                    .create(&PostParams::default(), &c)
                    .await
                    .with_context(|| format!("creating Cluster {}", s.name))?;
                let kcp: DynamicObject =
                    serde_json::from_value(s.kcp_json(&c.uid().unwrap_or_default()))?;
                kcps.create(&PostParams::default(), &kcp)
                    .await
                    .with_context(|| format!("creating K0smotronControlPlane {}", s.name))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(create_concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let t_created = Instant::now();
    say(&format!(
        "burst: all created after {:.1} s; waiting for every cluster's children",
        secs(t0, t_created)
    ));
    let t_children = tracker
        .wait(
            "all children (StatefulSet, Service, <cluster>-kubeconfig, <cluster>-ca)",
            timeout,
            |st| st.clusters.values().all(|c| c.children_at.is_some()),
        )
        .await?;
    let server_children = sampler::ServerCpu::now();
    say(&format!(
        "burst: all children present after {:.1} s",
        secs(t0, t_children)
    ));
    let t_ready = tracker
        .wait("all pods Ready", timeout, |st| {
            st.clusters.values().all(|c| c.ready_at.is_some())
        })
        .await?;
    say(&format!(
        "burst: all pods Ready after {:.1} s",
        secs(t0, t_ready)
    ));
    let t_observed = tracker
        .wait(
            "status.observedGeneration of every control plane",
            timeout,
            |st| {
                st.clusters
                    .values()
                    .all(|c| c.kcp.is_some_and(|(g, o)| o >= g && g > 0))
            },
        )
        .await?;
    let (s, peak) = sampler.take();
    let mut figures = burst_figures(&tracker, t0);
    figures["to_children"] = server_cpu_until(server_t0, server_children, t0, t_children);
    figures["created_s"] = json!(secs(t0, t_created));
    figures["children_s"] = json!(secs(t0, t_children));
    figures["ready_s"] = json!(secs(t0, t_ready));
    figures["status_observed_s"] = json!(secs(t0, t_observed));
    figures["peak_rss_mib"] = json!(mib(peak));
    figures["rss_mib"] = json!(mib(s.rss_kib));
    figures["cpu_s"] = json!(round3(s.cpu_s - start_sample.cpu_s));

    // settle: no provider write for `quiet_seconds` (bounded).
    say(&format!(
        "settle: waiting for {quiet_seconds} s without a provider write"
    ));
    let settle_deadline = Instant::now() + Duration::from_secs(settle_max_seconds);
    let settled = loop {
        audit.poll()?;
        let quiet_since = audit.last_write.unwrap_or(t_observed).max(t_observed);
        if quiet_since.elapsed() >= Duration::from_secs(quiet_seconds) {
            break true;
        }
        if Instant::now() > settle_deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let t_settled = Instant::now();
    let (s, peak) = sampler.take();
    figures["settled_s"] = json!(secs(t0, t_settled));
    figures["settled"] = json!(settled);
    figures["settle_max_s"] = json!(settle_max_seconds);
    figures["peak_rss_mib"] = json!(mib(peak).max(figures["peak_rss_mib"].as_f64().unwrap_or(0.0)));
    figures["cpu_to_settled_s"] = json!(round3(s.cpu_s - start_sample.cpu_s));
    let burst_requests = audit.take()?;
    figures["writes"] = json!(audit::writes(&burst_requests));
    figures["requests"] = json!(burst_requests);
    if settled {
        say(&format!("settled after {:.1} s", secs(t0, t_settled)));
    } else {
        say(&format!(
            "not settled: the provider still writes after {settle_max_seconds} s; going on"
        ));
    }
    result["burst"] = figures;

    let captured = capture_children(client, "bench").await?;
    std::fs::write(capture, serde_json::to_vec(&captured)?)?;
    result["captured_objects"] = json!(captured["objects"].as_array().map_or(0, Vec::len));
    result["captured_kinds"] = captured["kinds"].clone();
    // The provider's requests while the driver captured belong to no phase.
    let _ = audit.take()?;

    // 2. steady
    say(&format!("steady: watching for {steady_seconds} s"));
    let (s0, _) = sampler.take();
    tracker.take_changes();
    tokio::time::sleep(Duration::from_secs(steady_seconds)).await;
    let (s1, peak) = sampler.take();
    let steady_requests = audit.take()?;
    let steady_writes = audit::writes(&steady_requests);
    say(&format!(
        "steady: {steady_writes} provider writes, {:.1} CPU-s",
        s1.cpu_s - s0.cpu_s
    ));
    result["steady"] = json!({
        "seconds": steady_seconds,
        "writes": steady_writes,
        // The write requests' effect: changes to the StatefulSets, Services, Secrets and
        // control planes the watches saw (a no-op server-side apply changes nothing).
        "object_changes": tracker.take_changes(),
        "requests": steady_requests,
        "cpu_s": round3(s1.cpu_s - s0.cpu_s),
        "cpu_s_per_min": round3((s1.cpu_s - s0.cpu_s) * 60.0 / steady_seconds.max(1) as f64),
        "settled_rss_mib": mib(s1.rss_kib),
        "peak_rss_mib": mib(peak),
    });

    // 3. churn: 10 % changed, then 10 % (others) deleted.
    let changed: Vec<&Spec> = specs.iter().filter(|s| s.index % 10 == 0).collect();
    let deleted: Vec<&Spec> = specs.iter().filter(|s| s.index % 10 == 5).collect();
    say(&format!(
        "churn: changing k0sConfig of {} control planes",
        changed.len()
    ));
    let t0 = Instant::now();
    for s in &changed {
        let kcps = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            &s.namespace,
            &contract::kcp_resource(),
        );
        kcps.patch(
            &s.name,
            &PatchParams::default(),
            &Patch::Merge(Spec::k0s_config_patch()),
        )
        .await
        .with_context(|| format!("patching {}", s.name))?;
    }
    let keys: Vec<(String, String)> = changed
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone()))
        .collect();
    // A patch that changes the spec bumps the generation; wait until status has seen the new one.
    let gens: BTreeMap<(String, String), i64> = {
        let st = tracker.lock();
        keys.iter()
            .map(|k| {
                (
                    k.clone(),
                    st.clusters.get(k).and_then(|c| c.kcp).map_or(0, |(g, _)| g),
                )
            })
            .collect()
    };
    let t_observed = tracker
        .wait(
            "status.observedGeneration after the change",
            timeout,
            |st| {
                keys.iter().all(|k| {
                    st.clusters
                        .get(k)
                        .and_then(|c| c.kcp)
                        .is_some_and(|(g, o)| o >= g && g >= gens[k])
                })
            },
        )
        .await?;
    let t_rolled = tracker
        .wait("the changed StatefulSets rolled and Ready", timeout, |st| {
            keys.iter().all(|k| {
                st.clusters
                    .get(k)
                    .and_then(|c| c.sts.as_ref())
                    .is_some_and(tracker::Sts::rolled_and_ready)
            })
        })
        .await?;
    let (s_mid, _) = sampler.take();
    let change_requests = audit.take()?;
    say(&format!(
        "churn: changes observed after {:.1} s, rolled after {:.1} s",
        secs(t0, t_observed),
        secs(t0, t_rolled)
    ));

    say(&format!(
        "churn: deleting {} control planes and their Clusters",
        deleted.len()
    ));
    let t1 = Instant::now();
    for s in &deleted {
        let kcps = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            &s.namespace,
            &contract::kcp_resource(),
        );
        kcps.delete(&s.name, &DeleteParams::background())
            .await
            .with_context(|| format!("deleting {}", s.name))?;
        let clusters = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            &s.namespace,
            &contract::cluster_resource(),
        );
        clusters
            .delete(&s.name, &DeleteParams::background())
            .await
            .with_context(|| format!("deleting Cluster {}", s.name))?;
    }
    let del_keys: Vec<(String, String)> = deleted
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone()))
        .collect();
    let t_kcp_gone = tracker
        .wait(
            "the deleted control planes gone (finalizers done)",
            timeout,
            |st| {
                del_keys
                    .iter()
                    .all(|k| st.clusters.get(k).is_some_and(|c| c.kcp.is_none()))
            },
        )
        .await?;
    let t_children_gone = tracker
        .wait("the deleted control planes' children gone", timeout, |st| {
            del_keys.iter().all(|k| {
                st.clusters
                    .get(k)
                    .is_some_and(tracker::ClusterState::children_gone)
            })
        })
        .await?;
    let (s_end, peak) = sampler.take();
    let delete_requests = audit.take()?;
    say(&format!(
        "churn: deleted after {:.1} s, children gone after {:.1} s",
        secs(t1, t_kcp_gone),
        secs(t1, t_children_gone)
    ));
    result["churn"] = json!({
        "changed": changed.len(),
        "change_observed_s": secs(t0, t_observed),
        "change_rolled_s": secs(t0, t_rolled),
        "change_cpu_s": round3(s_mid.cpu_s - s1.cpu_s),
        "change_writes": audit::writes(&change_requests),
        "change_requests": change_requests,
        "deleted": deleted.len(),
        "delete_finalized_s": secs(t1, t_kcp_gone),
        "delete_children_gone_s": secs(t1, t_children_gone),
        "delete_cpu_s": round3(s_end.cpu_s - s_mid.cpu_s),
        "delete_writes": audit::writes(&delete_requests),
        "delete_requests": delete_requests,
        "peak_rss_mib": mib(peak),
        "rss_mib": mib(s_end.rss_kib),
    });
    result["provider_total_cpu_s"] = json!(round3(s_end.cpu_s));
    result["provider_alive_at_end"] = json!(sampler.alive());
    Ok(result)
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Every namespaced object in the `prefix-*` namespaces whose controller is a
/// K0smotronControlPlane, stripped of what the server sets, grouped by its cluster.
async fn capture_children(client: &Client, prefix: &str) -> anyhow::Result<Value> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .context("discovery")?;
    let mut objects = Vec::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            for obj in list.items {
                let ns = obj.namespace().unwrap_or_default();
                if !ns.starts_with(&format!("{prefix}-")) {
                    continue;
                }
                let Some(owner) = obj
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true) && o.kind == "K0smotronControlPlane")
                else {
                    continue;
                };
                let cluster = owner.name.clone();
                *kinds.entry(ar.kind.clone()).or_default() += 1;
                let created = obj
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
                    .unwrap_or(0);
                objects.push(json!({
                    "cluster": cluster,
                    "namespace_index": ns.rsplit('-').next().and_then(|i| i.parse::<usize>().ok()).unwrap_or(0),
                    "created": created,
                    "resource": {"group": ar.group, "version": ar.version, "kind": ar.kind, "plural": ar.plural},
                    "object": strip(&ar, obj)?,
                }));
            }
        }
    }
    Ok(json!({"kinds": kinds, "objects": objects}))
}

fn strip(ar: &ApiResource, obj: DynamicObject) -> anyhow::Result<Value> {
    let mut v = serde_json::to_value(&obj)?;
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "ownerReferences",
            "namespace",
        ] {
            m.remove(k);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        o.insert("apiVersion".into(), json!(ar.api_version));
        o.insert("kind".into(), json!(ar.kind));
    }
    if ar.kind == "Service"
        && let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut)
    {
        if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        // Node ports are cluster-wide: the floor's copies get their own.
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                if let Some(p) = p.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
    }
    Ok(v)
}

/// Same objects, same names, in the `floor-*` namespaces, by server-side apply (as the provider
/// writes), `concurrency` clusters at a time, each cluster's objects in the provider's order.
/// The API server's, etcd's and the machine's CPU from `t0` to `t1` (empty outside a harness).
fn server_cpu_until(
    at_t0: Option<sampler::ServerCpu>,
    at_t1: Option<sampler::ServerCpu>,
    t0: Instant,
    t1: Instant,
) -> Value {
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    match (at_t0, at_t1) {
        (Some(a), Some(b)) => a.since(&b, secs(t0, t1), cores),
        _ => json!({}),
    }
}

async fn floor(
    client: &Client,
    capture: &std::path::Path,
    n: usize,
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let captured: Value =
        serde_json::from_slice(&std::fs::read(capture).context("reading the capture")?)?;
    let order = |kind: &str| match kind {
        "Secret" => 0,
        "ConfigMap" => 1,
        "ServiceAccount" | "Role" | "RoleBinding" => 2,
        "Service" => 3,
        "StatefulSet" => 5,
        _ => 4,
    };
    let mut by_cluster: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for o in captured["objects"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        by_cluster
            .entry(o["cluster"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(o.clone());
    }
    for objs in by_cluster.values_mut() {
        objs.sort_by_key(|o| {
            (
                o["created"].as_i64().unwrap_or(0),
                order(o["resource"]["kind"].as_str().unwrap_or("")),
            )
        });
    }
    // The capture runs before the churn: every cluster of the burst is here.
    let specs = contract::workload(n, "floor");
    ensure_namespaces(client, "floor").await?;
    let tracker = Tracker::start(client, &specs).await?;
    let total: usize = by_cluster.values().map(Vec::len).sum();
    say(&format!(
        "floor: applying {total} objects of {} clusters, {concurrency} clusters at a time",
        by_cluster.len()
    ));
    let t0 = Instant::now();
    let server_t0 = sampler::ServerCpu::now();
    futures::stream::iter(by_cluster.into_values())
        .map(|objs| {
            let client = client.clone();
            async move {
                for o in objs {
                    let r = &o["resource"];
                    let ar = ApiResource::from_gvk_with_plural(
                        &kube::core::GroupVersionKind::gvk(
                            r["group"].as_str().unwrap_or(""),
                            r["version"].as_str().unwrap_or(""),
                            r["kind"].as_str().unwrap_or(""),
                        ),
                        r["plural"].as_str().unwrap_or(""),
                    );
                    let ns = format!("floor-{}", o["namespace_index"].as_u64().unwrap_or(0));
                    let mut obj = o["object"].clone();
                    obj["metadata"]["namespace"] = json!(ns);
                    let name = obj["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let api = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &ar);
                    api.patch(
                        &name,
                        &PatchParams::apply("bench-floor").force(),
                        &Patch::Apply(&obj),
                    )
                    .await
                    .with_context(|| format!("floor: applying {} {ns}/{name}", ar.kind))?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let t_written = Instant::now();
    let t_children = tracker
        .wait("floor: all children", timeout, |st| {
            st.clusters.values().all(|c| c.children_at.is_some())
        })
        .await?;
    let server_children = sampler::ServerCpu::now();
    let t_ready = tracker
        .wait("floor: all pods Ready", timeout, |st| {
            st.clusters.values().all(|c| c.ready_at.is_some())
        })
        .await?;
    say(&format!(
        "floor: written after {:.1} s, children {:.1} s, pods Ready {:.1} s",
        secs(t0, t_written),
        secs(t0, t_children),
        secs(t0, t_ready)
    ));
    let mut figures = burst_figures(&tracker, t0);
    figures["to_children"] = server_cpu_until(server_t0, server_children, t0, t_children);
    figures["objects"] = json!(total);
    figures["concurrency"] = json!(concurrency);
    figures["written_s"] = json!(secs(t0, t_written));
    figures["children_s"] = json!(secs(t0, t_children));
    figures["ready_s"] = json!(secs(t0, t_ready));
    Ok(figures)
}
