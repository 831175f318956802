//! The bootstrap workload: one initialized Cluster whose API is a workload API server (started
//! by `bench/run.sh`), N Machines each with a `K0sWorkerConfig`, created 50 at a time, watched
//! until every config's `status.dataSecretName` is set. Per-config latency is from the moment
//! its Machine is created (the Cluster is initialized from the start, so the Machine is ready for
//! bootstrap as soon as it exists) to the watch event that carries `dataSecretName`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt as _};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::contract::{self, boot};
use crate::{audit, mib, percentile, round3, sampler, say, secs};

/// What the run needs besides the management client.
pub struct Options<'a> {
    pub n: usize,
    pub pid: u32,
    /// The workload API server's admin kubeconfig (inline credentials, its server URL the
    /// Cluster's endpoint): stored as `<cluster>-kubeconfig`.
    pub workload_kubeconfig: &'a Path,
    /// The workload cluster's CA (PEM certificate and key): stored as `<cluster>-ca`.
    pub ca: (&'a Path, &'a Path),
    pub create_concurrency: usize,
    /// Quiet period (no provider write) after the last `dataSecretName`, and its bound.
    pub quiet: (Duration, Duration),
    pub timeout: Duration,
}

/// When each config's `dataSecretName` was first seen.
#[derive(Clone, Default)]
struct Seen {
    at: Arc<Mutex<HashMap<String, Instant>>>,
    changed: Arc<Notify>,
}

impl Seen {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Watches the configs of the bootstrap namespace; returns once the watch has listed.
    async fn start(client: &Client) -> anyhow::Result<Self> {
        let seen = Self::default();
        let listed = Arc::new(tokio::sync::Semaphore::new(0));
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            boot::NAMESPACE,
            &contract::worker_config_resource(),
        );
        let (s, l) = (seen.clone(), listed.clone());
        tokio::spawn(
            watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .for_each(move |e| {
                    let now = Instant::now();
                    match e {
                        Ok(Event::InitApply(o) | Event::Apply(o))
                            if boot::data_secret_name(&o.data).is_some() =>
                        {
                            s.lock().entry(o.name_any()).or_insert(now);
                            s.changed.notify_waiters();
                        }
                        Ok(Event::InitDone) => l.add_permits(1),
                        _ => {}
                    }
                    futures::future::ready(())
                }),
        );
        tokio::time::timeout(Duration::from_secs(120), listed.acquire())
            .await
            .context("the K0sWorkerConfig watch did not list within 120 s")??
            .forget();
        Ok(seen)
    }

    /// Waits until `n` configs have their `dataSecretName`; returns when the last one was seen.
    async fn wait_all(&self, n: usize, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            {
                let seen = self.lock();
                if seen.len() >= n {
                    return Ok(seen.values().max().copied().unwrap_or_else(Instant::now));
                }
            }
            let until = (tokio::time::Instant::now() + Duration::from_millis(500)).min(deadline);
            let _ = tokio::time::timeout_at(until, notified).await;
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "timed out after {} s: {} of {n} configs have status.dataSecretName",
                    timeout.as_secs(),
                    self.lock().len()
                );
            }
        }
    }
}

/// `https://host:port` of the kubeconfig's current cluster, and a client for it.
async fn workload(path: &Path) -> anyhow::Result<(String, String, u16, Client)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the workload kubeconfig {}", path.display()))?;
    let kubeconfig = Kubeconfig::from_yaml(&text).context("parsing the workload kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("the workload kubeconfig")?;
    let url = config.cluster_url.clone();
    let host = url.host().context("workload URL without host")?.to_string();
    let port = url.port_u16().unwrap_or(443);
    let client = Client::try_from(config).context("workload client")?;
    Ok((text, host, port, client))
}

/// Namespace, `<cluster>-ca`, `<cluster>-kubeconfig`, and the Cluster with its control plane
/// initialized: everything a bootstrap provider waits for before it writes a config's data.
async fn initialized_cluster(
    client: &Client,
    kubeconfig: &str,
    (host, port): (&str, u16),
    (ca_crt, ca_key): (&Path, &Path),
) -> anyhow::Result<()> {
    let apply = PatchParams::apply("bench").force();
    Api::<Namespace>::all(client.clone())
        .patch(
            boot::NAMESPACE,
            &apply,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": boot::NAMESPACE}})),
        )
        .await
        .context("creating the bootstrap namespace")?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), boot::NAMESPACE);
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    for (suffix, data) in [
        (
            "ca",
            json!({"tls.crt": read(ca_crt)?, "tls.key": read(ca_key)?}),
        ),
        ("kubeconfig", json!({"value": kubeconfig})),
    ] {
        let secret = boot::secret_json(suffix, data);
        secrets
            .patch(
                &format!("{}-{suffix}", boot::CLUSTER),
                &apply,
                &Patch::Apply(&secret),
            )
            .await
            .with_context(|| format!("applying Secret {}-{suffix}", boot::CLUSTER))?;
    }
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        boot::NAMESPACE,
        &contract::cluster_resource(),
    );
    clusters
        .patch(
            boot::CLUSTER,
            &apply,
            &Patch::Apply(boot::cluster_json(host, port)),
        )
        .await
        .context("applying the bootstrap Cluster")?;
    clusters
        .patch_status(
            boot::CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(boot::cluster_initialized_status()),
        )
        .await
        .context("marking the bootstrap Cluster's control plane initialized")?;
    Ok(())
}

/// The bootstrap workload against the provider running as `opts.pid`.
pub async fn run(
    client: &Client,
    mut audit: audit::Audit,
    opts: Options<'_>,
) -> anyhow::Result<Value> {
    let n = opts.n;
    let (kubeconfig, host, port, workload_client) = workload(opts.workload_kubeconfig).await?;
    initialized_cluster(client, &kubeconfig, (&host, port), opts.ca).await?;
    let sampler = sampler::Sampler::start(opts.pid);
    let seen = Seen::start(client).await?;
    // Whatever the provider did at start and on the Cluster's arrival is not the workload's.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (start_sample, start_peak) = sampler.take();
    let startup_requests = audit.take()?;

    say(&format!(
        "bootstrap: creating {n} Machines + K0sWorkerConfigs for Cluster {}/{} (API at {host}:{port})",
        boot::NAMESPACE,
        boot::CLUSTER
    ));
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (client, created) = (client.clone(), created.clone());
            async move {
                let api = |ar: kube::api::ApiResource| {
                    Api::<DynamicObject>::namespaced_with(client.clone(), boot::NAMESPACE, &ar)
                };
                let machine: DynamicObject = serde_json::from_value(boot::machine_json(i))?;
                let t = Instant::now();
                let machine = api(contract::machine_resource())
                    .create(&PostParams::default(), &machine)
                    .await
                    .with_context(|| format!("creating Machine {}", boot::worker(i)))?;
                let config: DynamicObject = serde_json::from_value(boot::worker_config_json(
                    i,
                    &machine.uid().unwrap_or_default(),
                ))?;
                api(contract::worker_config_resource())
                    .create(&PostParams::default(), &config)
                    .await
                    .with_context(|| format!("creating K0sWorkerConfig {}", boot::worker(i)))?;
                created
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(boot::worker(i), t);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(opts.create_concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let t_created = Instant::now();
    say(&format!(
        "bootstrap: all created after {:.1} s; waiting for every status.dataSecretName",
        secs(t0, t_created)
    ));
    let t_all = seen.wait_all(n, opts.timeout).await?;
    let (s_all, peak_all) = sampler.take();
    let latencies: Vec<f64> = {
        let created = created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seen = seen.lock();
        created
            .iter()
            .filter_map(|(name, t)| seen.get(name).map(|s| secs(*t, *s)))
            .collect()
    };
    let max = latencies.iter().copied().fold(0.0, f64::max);
    say(&format!(
        "bootstrap: every dataSecretName set after {:.1} s; per config p50 {:.3} s, p99 {:.3} s, max {max:.3} s",
        secs(t0, t_all),
        percentile(latencies.clone(), 0.5),
        percentile(latencies.clone(), 0.99),
    ));

    // What the provider still does after the last data (status, token checks), bounded.
    let (quiet, settle_max) = opts.quiet;
    let settle_deadline = Instant::now() + settle_max;
    let settled = loop {
        audit.poll()?;
        let quiet_since = audit.last_write.unwrap_or(t_all).max(t_all);
        if quiet_since.elapsed() >= quiet {
            break true;
        }
        if Instant::now() > settle_deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let t_settled = Instant::now();
    let (s_end, peak_end) = sampler.take();
    let requests = audit.take()?;

    // One bootstrap token per config in the workload cluster (kube-system, the type Kubernetes'
    // bootstrap-token authenticator reads).
    let tokens = Api::<Secret>::namespaced(workload_client, "kube-system")
        .list_metadata(&ListParams::default().fields("type=bootstrap.kubernetes.io/token"))
        .await
        .context("listing the workload cluster's bootstrap tokens")?
        .items
        .len();

    Ok(json!({
        "n": n,
        "provider_start": {"rss_mib": mib(start_sample.rss_kib), "peak_rss_mib": mib(start_peak),
            "cpu_s": start_sample.cpu_s, "requests": startup_requests},
        "created_s": secs(t0, t_created),
        "all_data_s": secs(t0, t_all),
        "latency_p50_s": percentile(latencies.clone(), 0.5),
        "latency_p99_s": percentile(latencies.clone(), 0.99),
        "latency_max_s": round3(max),
        "latency_min_s": round3(latencies.iter().copied().fold(f64::INFINITY, f64::min)),
        "cpu_s": round3(s_all.cpu_s - start_sample.cpu_s),
        "peak_rss_mib": mib(peak_all.max(peak_end)),
        "rss_mib": mib(s_end.rss_kib),
        "settled": settled,
        "settled_s": secs(t0, t_settled),
        "quiet_s": quiet.as_secs(),
        "settle_max_s": settle_max.as_secs(),
        "cpu_to_settled_s": round3(s_end.cpu_s - start_sample.cpu_s),
        "writes": audit::writes(&requests),
        "requests": requests,
        "workload_tokens": tokens,
        "provider_alive_at_end": sampler.alive(),
    }))
}
