//! Monitoring sidecars (`spec.monitoring.enabled`, issue #13 part 4): a Prometheus
//! (`monitoring-agent`) in each k0s pod scrapes the pod's kube-apiserver, kube-scheduler and
//! kube-controller-manager (and the etcd Service with etcd storage) every 10 s, and an nginx
//! (`monitoring-proxy`) serves what it holds on port 8090 at `/metrics` (Prometheus's `/federate`),
//! so the management cluster's Prometheus scrapes one port per control-plane pod.
//!
//! Upstream's shape, so its users' scrapers keep working: the ConfigMap
//! `kmc-prometheus-<cluster>-config` (`prometheus.yml`, `nginx.conf`), the two containers and
//! their ports, the pod annotations `prometheus.io/{scrape,port,path}`, and upstream's volume
//! names. Added (docs/deviations.md): the headless Service `kmc-<cluster>-metrics` with a port
//! named `metrics`, for a prometheus-operator `ServiceMonitor`; modest resource requests; the
//! TSDB on an emptyDir; the etcd job with the etcd client certificate k0s already has (upstream
//! uses the etcd CA's key, which our pods do not hold) and only with etcd storage.
//!
//! Pure: objects and pod-template parts; the build step decides when they are written. Nothing
//! here is added to a pod of a control plane without monitoring, so those keep their template.

use std::collections::BTreeMap;

use k0smotron_api::controlplane::v1beta2::{ClusterSpec, StorageType};
use k0smotron_api::names;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    KeyToPath, ResourceRequirements, SecurityContext, Service, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;

use crate::labels;
use crate::services;

/// The Prometheus container.
pub const AGENT_CONTAINER: &str = "monitoring-agent";
/// The nginx container.
pub const PROXY_CONTAINER: &str = "monitoring-proxy";
/// Prometheus's port in the pod (upstream's).
pub const PROMETHEUS_PORT: i32 = 9090;
/// nginx's port, where `/metrics` is served (upstream's).
pub const PROXY_PORT: i32 = 8090;
/// The path scrapers ask for.
pub const METRICS_PATH: &str = "/metrics";
/// Name of the metrics port on the Service (what a `ServiceMonitor` endpoint names).
pub const SERVICE_PORT_NAME: &str = "metrics";
/// ConfigMap keys.
pub const PROMETHEUS_KEY: &str = "prometheus.yml";
/// See [`PROMETHEUS_KEY`].
pub const NGINX_KEY: &str = "nginx.conf";
/// Volume of Prometheus's TSDB; a name no `spec.mounts` path is likely to produce.
const DATA_VOLUME: &str = "k0smotron-monitoring-data";
/// Where Prometheus keeps its TSDB.
const DATA_DIR: &str = "/prometheus/data";
/// Upstream's retention by size; its default time retention (15 d) rarely binds before it.
const RETENTION_SIZE: &str = "200MB";
/// Mode of the ConfigMap files (upstream's).
const CONFIG_MODE: i32 = 0o744;

/// What the k0s StatefulSet needs of monitoring; part of its inputs hash (absent without
/// monitoring, so other control planes keep their hash and their pods).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringInputs {
    /// `spec.monitoring.prometheusImage`.
    pub prometheus_image: String,
    /// `spec.monitoring.proxyImage`.
    pub proxy_image: String,
    /// The etcd Service scraped by the etcd job (etcd storage only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_service: Option<String>,
}

/// The monitoring inputs of `spec`, `None` unless `spec.monitoring.enabled`.
pub fn inputs(spec: &ClusterSpec, cluster: &str) -> Option<MonitoringInputs> {
    let m = spec.monitoring.as_ref().filter(|m| m.enabled)?;
    Some(MonitoringInputs {
        prometheus_image: m.prometheus_image.clone(),
        proxy_image: m.proxy_image.clone(),
        etcd_service: (spec.storage.type_ == StorageType::Etcd).then(|| names::etcd_name(cluster)),
    })
}

/// `prometheus.yml`: upstream's jobs and labels. The hosted components are reached on loopback
/// with k0s's admin certificate (k0s writes it into its pki directory at start); etcd with the
/// kube-apiserver's etcd client certificate. Certificates are not verified, as upstream: the
/// targets are the pod's own components, or the etcd Service whose certificate names its pods.
pub fn prometheus_config(cluster: &str, api_port: i32, etcd_service: Option<&str>) -> String {
    let mut out = format!(
        r#"global:
  scrape_interval: 10s
  evaluation_interval: 10s
scrape_configs:
  - job_name: "k0smotron_cluster_metrics"
    scheme: https
    tls_config:
      insecure_skip_verify: true
      cert_file: /var/lib/k0s/pki/admin.crt
      key_file: /var/lib/k0s/pki/admin.key
    static_configs:
      - targets: ["localhost:{api_port}"]
        labels:
          component: kube-apiserver
          k0smotron_cluster: "{cluster}"
      - targets: ["localhost:10259"]
        labels:
          component: kube-scheduler
          k0smotron_cluster: "{cluster}"
      - targets: ["localhost:10257"]
        labels:
          component: kube-controller-manager
          k0smotron_cluster: "{cluster}"
"#
    );
    if let Some(etcd) = etcd_service {
        out.push_str(&format!(
            r#"  - job_name: "k0smotron_etcd_metrics"
    scheme: https
    tls_config:
      insecure_skip_verify: true
      cert_file: /var/lib/k0s/pki/apiserver-etcd-client.crt
      key_file: /var/lib/k0s/pki/apiserver-etcd-client.key
    static_configs:
      - targets: ["{etcd}:2379"]
        labels:
          component: etcd
          k0smotron_cluster: "{cluster}"
"#
        ));
    }
    out
}

/// `nginx.conf`, upstream's: port 8090, `/metrics` answered by Prometheus's `/federate` with
/// every series (`match[]={job!=''}`).
pub const NGINX_CONF: &str = r#"worker_processes  2;
error_log  /dev/stdout warn;
pid        /var/run/nginx.pid;

events {
  worker_connections  4096;  ## Default: 1024
}

http {
   server {
      access_log /dev/stdout;
      listen 8090;
      location /metrics {
         set $lbr "{";
         set $rbr "}";
         set $q "'";
         rewrite ^(.*)$ /federate?match[]=${lbr}job!=${q}${q}${rbr} break;
         proxy_pass http://localhost:9090/;
      }
   }
}
"#;

fn metadata(name: String, cluster: &str, namespace: &str, owner: &OwnerReference) -> ObjectMeta {
    let selector = labels::control_plane_selector(cluster);
    labels::child_metadata(
        name,
        namespace,
        selector,
        names::component::MONITORING,
        owner,
    )
}

/// The ConfigMap `kmc-prometheus-<cluster>-config` with both files.
pub fn config_map(
    inputs: &MonitoringInputs,
    cluster: &str,
    namespace: &str,
    api_port: i32,
    owner: &OwnerReference,
) -> ConfigMap {
    ConfigMap {
        metadata: metadata(
            names::monitoring_config_map_name(cluster),
            cluster,
            namespace,
            owner,
        ),
        data: Some(BTreeMap::from([
            (
                PROMETHEUS_KEY.to_string(),
                prometheus_config(cluster, api_port, inputs.etcd_service.as_deref()),
            ),
            (NGINX_KEY.to_string(), NGINX_CONF.to_string()),
        ])),
        ..Default::default()
    }
}

/// The headless Service `kmc-<cluster>-metrics`: one endpoint per ready k0s pod on the port
/// named `metrics`, so a `ServiceMonitor` scrapes every pod. Headless: scrapers go to the
/// endpoints anyway, and no cluster IP or proxy rules are spent on it.
pub fn service(cluster: &str, namespace: &str, owner: &OwnerReference) -> Service {
    Service {
        metadata: metadata(
            names::metrics_service_name(cluster),
            cluster,
            namespace,
            owner,
        ),
        spec: Some(services::headless_spec(
            cluster,
            SERVICE_PORT_NAME,
            PROXY_PORT,
            false,
        )),
        status: None,
    }
}

/// The pod annotations of annotation-based scrape configs (upstream's).
pub fn pod_annotations() -> [(String, String); 3] {
    [
        ("prometheus.io/scrape".into(), "true".into()),
        ("prometheus.io/port".into(), PROXY_PORT.to_string()),
        ("prometheus.io/path".into(), METRICS_PATH.into()),
    ]
}

/// The pod volumes: upstream's two views of the ConfigMap, and the TSDB's emptyDir.
pub fn volumes(cluster: &str) -> Vec<Volume> {
    let config_map = names::monitoring_config_map_name(cluster);
    let view = |volume: String, key: &str| Volume {
        name: volume,
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.clone(),
            items: Some(vec![KeyToPath {
                key: key.into(),
                path: key.into(),
                ..Default::default()
            }]),
            default_mode: Some(CONFIG_MODE),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        view(config_map.clone(), PROMETHEUS_KEY),
        view(names::monitoring_nginx_volume_name(cluster), NGINX_KEY),
        Volume {
            name: DATA_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ]
}

fn requests(cpu: &str, memory: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])),
        ..Default::default()
    }
}

fn security_context(run_as_root: bool, capabilities: &[&str]) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_user: run_as_root.then_some(0),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: (!capabilities.is_empty())
                .then(|| capabilities.iter().map(|c| (*c).to_string()).collect()),
        }),
        ..Default::default()
    }
}

/// The two sidecars. `pki` is the k0s pki directory's volume (read-only here: the agent needs
/// the admin and etcd client certificates k0s writes there).
///
/// The agent runs as root without any capability: k0s's keys are root's, mode 0640, and
/// upstream's image would run as `nobody`; its TSDB goes to an emptyDir (root may not write into
/// an image directory owned by `nobody` without `DAC_OVERRIDE`). nginx keeps the three
/// capabilities its master needs to hand its workers their temp directories. Neither has a
/// probe: a sidecar must not take the control plane's readiness with it.
pub fn containers(inputs: &MonitoringInputs, cluster: &str, pki: VolumeMount) -> [Container; 2] {
    let config_map = names::monitoring_config_map_name(cluster);
    let port = |name: &str, port: i32| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    let file = |volume: String, path: &str, key: &str| VolumeMount {
        name: volume,
        mount_path: path.into(),
        sub_path: Some(key.into()),
        read_only: Some(true),
        ..Default::default()
    };
    let agent = Container {
        name: AGENT_CONTAINER.into(),
        image: Some(inputs.prometheus_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "prometheus".into(),
            format!("--config.file=/prometheus/{PROMETHEUS_KEY}"),
        ]),
        args: Some(vec![
            format!("--storage.tsdb.retention.size={RETENTION_SIZE}"),
            format!("--storage.tsdb.path={DATA_DIR}"),
        ]),
        ports: Some(vec![port("prometheus", PROMETHEUS_PORT)]),
        resources: Some(requests("50m", "192Mi")),
        volume_mounts: Some(vec![
            VolumeMount {
                read_only: Some(true),
                ..pki
            },
            file(
                config_map,
                &format!("/prometheus/{PROMETHEUS_KEY}"),
                PROMETHEUS_KEY,
            ),
            VolumeMount {
                name: DATA_VOLUME.into(),
                mount_path: DATA_DIR.into(),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            ..security_context(true, &[])
        }),
        ..Default::default()
    };
    let proxy = Container {
        name: PROXY_CONTAINER.into(),
        image: Some(inputs.proxy_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: Some(vec![port("nginx", PROXY_PORT)]),
        resources: Some(requests("5m", "16Mi")),
        volume_mounts: Some(vec![file(
            names::monitoring_nginx_volume_name(cluster),
            &format!("/etc/nginx/{NGINX_KEY}"),
            NGINX_KEY,
        )]),
        security_context: Some(security_context(false, &["CHOWN", "SETGID", "SETUID"])),
        ..Default::default()
    };
    [agent, proxy]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k0smotron_api::controlplane::v1beta2::MonitoringSpec;

    fn spec(enabled: bool, storage: StorageType) -> ClusterSpec {
        let mut spec = ClusterSpec::default();
        spec.storage.type_ = storage;
        spec.monitoring = Some(MonitoringSpec {
            enabled,
            prometheus_image: "p:1".into(),
            proxy_image: "n:1".into(),
        });
        spec
    }

    #[test]
    fn only_an_enabled_spec_has_inputs_and_only_etcd_storage_an_etcd_job() {
        assert_eq!(inputs(&spec(false, StorageType::Etcd), "c"), None);
        assert_eq!(inputs(&ClusterSpec::default(), "c"), None);
        let etcd = inputs(&spec(true, StorageType::Etcd), "c").unwrap();
        assert_eq!(etcd.etcd_service.as_deref(), Some("kmc-c-etcd"));
        assert_eq!(etcd.prometheus_image, "p:1");
        let kine = inputs(&spec(true, StorageType::Kine), "c").unwrap();
        assert_eq!(kine.etcd_service, None);
        let with = prometheus_config("c", 6443, etcd.etcd_service.as_deref());
        let without = prometheus_config("c", 6443, None);
        assert!(with.contains(r#"targets: ["kmc-c-etcd:2379"]"#), "{with}");
        assert!(!without.contains("etcd"), "{without}");
        assert!(without.contains(r#"targets: ["localhost:6443"]"#));
    }

    #[test]
    fn the_prometheus_config_is_yaml_with_upstreams_jobs() {
        let text = prometheus_config("demo", 30443, Some("kmc-demo-etcd"));
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let jobs: Vec<&str> = v["scrape_configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_name"].as_str().unwrap())
            .collect();
        assert_eq!(
            jobs,
            ["k0smotron_cluster_metrics", "k0smotron_etcd_metrics"]
        );
        let components: Vec<&str> = v["scrape_configs"][0]["static_configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["labels"]["component"].as_str().unwrap())
            .collect();
        assert_eq!(
            components,
            [
                "kube-apiserver",
                "kube-scheduler",
                "kube-controller-manager"
            ]
        );
        assert_eq!(v["global"]["scrape_interval"], "10s");
    }

    #[test]
    fn nginx_serves_metrics_on_8090_from_federate() {
        assert!(NGINX_CONF.contains("listen 8090;"));
        assert!(NGINX_CONF.contains("location /metrics {"));
        assert!(NGINX_CONF.contains("/federate?match[]=${lbr}job!=${q}${q}${rbr}"));
        assert!(NGINX_CONF.contains("proxy_pass http://localhost:9090/;"));
    }

    #[test]
    fn the_service_selects_the_k0s_pods_on_a_port_named_metrics() {
        let s = service("demo", "ns", &OwnerReference::default());
        let spec = s.spec.unwrap();
        assert_eq!(
            spec.selector.unwrap(),
            labels::control_plane_selector("demo")
        );
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port),
            (Some("metrics"), PROXY_PORT)
        );
        assert_eq!(
            s.metadata.labels.unwrap()[names::APP_COMPONENT_LABEL],
            names::component::MONITORING
        );
    }
}
