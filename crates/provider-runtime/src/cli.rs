//! The flags every provider manager shares (scope, leader election, addresses, metrics security,
//! logging, concurrency) and what they turn into: watcher configs, `Api` handles, controller config and the
//! leader-election settings. Parsing and derived values only; nothing here talks to the cluster.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use k0smotron_api::names::WATCH_FILTER_LABEL;
use kube::runtime::{controller, watcher};
use kube::{Api, Client, Resource, core::NamespaceResourceScope};
use rand::RngExt;
use rand::distr::Alphanumeric;

use crate::leader::LeaderElection;

/// Environment variable (downward API `metadata.namespace`) giving the namespace the manager pod
/// runs in; the default for `--leader-election-namespace`.
pub const POD_NAMESPACE_ENV: &str = "POD_NAMESPACE";
/// Environment variable (downward API `metadata.name`) giving the manager pod's name; used for
/// the leader-election identity and the event reporter instance.
pub const POD_NAME_ENV: &str = "POD_NAME";

/// Output format of the logs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Flags shared by both provider managers; `#[command(flatten)]` it into a binary's CLI.
///
/// Every flag also reads an environment variable, so a Deployment can set either.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct ManagerArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Reconcile only objects labelled `cluster.x-k8s.io/watch-filter=<VALUE>` (CAPI
    /// multi-instance convention; default: no filter).
    #[arg(long, env = "WATCH_FILTER", value_name = "VALUE", value_parser = parse_watch_filter)]
    pub watch_filter: Option<String>,

    /// Elect one active replica through a `coordination.k8s.io/v1` Lease.
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease (default: `$POD_NAMESPACE`, else `default`).
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE", value_name = "NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of the leader-election Lease (default: chosen by the binary).
    #[arg(long, env = "LEADER_ELECTION_ID", value_name = "NAME")]
    pub leader_election_id: Option<String>,

    /// How long a Lease stays valid after its last renewal, in seconds (`15` or `15s`); standby
    /// replicas take over after this.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE_DURATION",
        value_name = "SECONDS",
        default_value = "15",
        value_parser = parse_seconds
    )]
    pub leader_election_lease_duration: u64,

    /// The leader stops its controllers and exits when it has not seen its own renewal for this
    /// many seconds; must be at least 2 and less than the lease duration.
    #[arg(
        long,
        env = "LEADER_ELECTION_RENEW_DEADLINE",
        value_name = "SECONDS",
        default_value = "10",
        value_parser = parse_seconds
    )]
    pub leader_election_renew_deadline: u64,

    /// Address of `/healthz` and `/readyz` (`host:port` or `:port`).
    #[arg(
        long,
        env = "HEALTH_ADDR",
        value_name = "ADDR",
        default_value = "0.0.0.0:8081",
        value_parser = parse_addr,
        alias = "health-probe-bind-address"
    )]
    pub health_addr: SocketAddr,

    /// Address of `/metrics` (`host:port` or `:port`): HTTPS, each request's bearer token
    /// checked by a TokenReview and a SubjectAccessReview (`get` on `/metrics`), unless
    /// `--insecure-metrics`.
    #[arg(
        long,
        env = "METRICS_ADDR",
        value_name = "ADDR",
        default_value = "0.0.0.0:8443",
        value_parser = parse_addr,
        alias = "metrics-bind-address"
    )]
    pub metrics_addr: SocketAddr,

    /// Serve `/metrics` as plain HTTP without authentication (for a loopback address, or where a
    /// network policy already decides who may connect).
    #[arg(long, env = "INSECURE_METRICS")]
    pub insecure_metrics: bool,

    /// Directory with `tls.crt` and `tls.key` for the metrics endpoint (default: a self-signed
    /// certificate made at start). Read once at start.
    #[arg(long, env = "METRICS_CERT_DIR", value_name = "DIR")]
    pub metrics_cert_dir: Option<PathBuf>,

    /// Address of the conversion webhook (`host:port` or `:port`; HTTPS, `POST /convert`),
    /// which serves our kinds' v1beta1 next to v1beta2. Unset: no webhook (v1beta2 works
    /// without it; v1beta1 requests fail). The release manifests set `:9443`.
    #[arg(long, env = "WEBHOOK_ADDR", value_name = "ADDR", value_parser = parse_addr)]
    pub webhook_addr: Option<SocketAddr>,

    /// Name of the Service in front of the webhook, in `--webhook-namespace`: the CRDs point at
    /// it and the serving certificate is made for it (default: chosen by the binary, the name
    /// the clusterctl components give it).
    #[arg(long, env = "WEBHOOK_SERVICE", value_name = "NAME")]
    pub webhook_service: Option<String>,

    /// `https://` URL the API server calls instead of the Service (an API server that reaches
    /// the provider directly: local runs and tests). The certificate is made for its host.
    #[arg(long, env = "WEBHOOK_URL", value_name = "URL", value_parser = parse_https_url)]
    pub webhook_url: Option<String>,

    /// Name of the Secret holding the webhook's CA and serving certificate (default: chosen by
    /// the binary).
    #[arg(long, env = "WEBHOOK_SECRET", value_name = "NAME")]
    pub webhook_secret: Option<String>,

    /// Namespace of the webhook's Secret and Service (default: `$POD_NAMESPACE`, else
    /// `default`).
    #[arg(long, env = "WEBHOOK_NAMESPACE", value_name = "NAMESPACE")]
    pub webhook_namespace: Option<String>,

    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Maximum number of objects each controller reconciles at the same time.
    #[arg(
        long,
        env = "CONCURRENCY",
        default_value_t = 5,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub concurrency: u16,
}

impl ManagerArgs {
    /// The namespace to watch, or `None` for all namespaces (an empty `--namespace` means all).
    pub fn watch_namespace(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|ns| !ns.is_empty())
    }

    /// The label selector `--watch-filter` stands for, if any.
    pub fn watch_filter_selector(&self) -> Option<String> {
        self.watch_filter
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| format!("{WATCH_FILTER_LABEL}={v}"))
    }

    /// Watcher config for the objects this manager reconciles: every object must carry the
    /// watch-filter label when `--watch-filter` is set.
    ///
    /// Use it for the primary resource (and for watches of objects that carry the label); children
    /// we create do not carry it, so `.owns()` watches should use `watcher::Config::default()`.
    pub fn watcher_config(&self) -> watcher::Config {
        let config = watcher::Config::default().any_semantic();
        match self.watch_filter_selector() {
            Some(selector) => config.labels(&selector),
            None => config,
        }
    }

    /// An `Api` for a namespaced kind, scoped to `--namespace` when set, else all namespaces.
    pub fn api<K>(&self, client: Client) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self.watch_namespace() {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }

    /// Controller config carrying `--concurrency`.
    pub fn controller_config(&self) -> controller::Config {
        controller::Config::default().concurrency(self.concurrency)
    }

    /// The leader-election Lease namespace: the flag, else `$POD_NAMESPACE`, else `default`.
    pub fn leader_election_namespace(&self) -> String {
        resolve_lease_namespace(
            self.leader_election_namespace.as_deref(),
            std::env::var(POD_NAMESPACE_ENV).ok().as_deref(),
        )
    }

    /// Leader-election settings, or `None` when `--leader-elect` is off. `default_lease_name`
    /// is used when `--leader-election-id` is not given; each binary passes its own.
    pub fn leader_election(&self, default_lease_name: &str) -> Option<LeaderElection> {
        if !self.leader_elect {
            return None;
        }
        let lease_name = self
            .leader_election_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .unwrap_or(default_lease_name)
            .to_owned();
        Some(LeaderElection {
            namespace: self.leader_election_namespace(),
            lease_name,
            identity: default_identity(),
            lease_duration_seconds: self.leader_election_lease_duration,
            renew_deadline_seconds: self.leader_election_renew_deadline,
        })
    }
}

impl ManagerArgs {
    /// What the webhook's certificate keeper needs, or `None` without `--webhook-addr`.
    /// `default_service` and `default_secret` stand in for the flags left unset; `crds` are the
    /// CRDs whose conversion this binary serves.
    pub fn webhook_cert_config(
        &self,
        default_service: &str,
        default_secret: &str,
        crds: Vec<String>,
    ) -> Option<crate::webhook_certs::CertConfig> {
        self.webhook_addr?;
        let namespace = resolve_lease_namespace(
            self.webhook_namespace.as_deref(),
            std::env::var(POD_NAMESPACE_ENV).ok().as_deref(),
        );
        let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let target = match non_empty(&self.webhook_url) {
            Some(url) => crate::webhook_certs::Target::Url(url),
            None => crate::webhook_certs::Target::Service {
                name: non_empty(&self.webhook_service)
                    .unwrap_or_else(|| default_service.to_owned()),
                namespace: namespace.clone(),
            },
        };
        Some(crate::webhook_certs::CertConfig {
            namespace,
            secret: non_empty(&self.webhook_secret).unwrap_or_else(|| default_secret.to_owned()),
            target,
            crds,
        })
    }
}

/// An `https://` URL (empty: unset).
fn parse_https_url(value: &str) -> Result<String, String> {
    if value.is_empty() || value.starts_with("https://") && value.len() > "https://".len() {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not an https:// URL"))
    }
}

fn resolve_lease_namespace(flag: Option<&str>, pod_namespace: Option<&str>) -> String {
    flag.filter(|ns| !ns.is_empty())
        .or(pod_namespace.filter(|ns| !ns.is_empty()))
        .unwrap_or("default")
        .to_owned()
}

/// Accepts `host:port`, `[v6]:port` and Go's `:port` (all interfaces), so flags written for the
/// upstream manager (`--health-probe-bind-address=:8081`) keep working.
// Deviation (docs/deviations.md, manager runtime): our flag names, upstream's as aliases.
fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    if let Some(port) = value.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|e| format!("invalid port in {value:?}: {e}"))?;
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    value
        .parse()
        .map_err(|e| format!("invalid address {value:?} (want host:port or :port): {e}"))
}

/// Accepts a whole number of seconds, with or without an `s` suffix (`15`, `15s`).
fn parse_seconds(value: &str) -> Result<u64, String> {
    let digits = value.strip_suffix('s').unwrap_or(value);
    digits
        .parse()
        .map_err(|e| format!("invalid seconds {value:?} (want e.g. 15 or 15s): {e}"))
}

/// A label value: at most 63 characters, alphanumerics plus `-`, `_`, `.`, starting and ending
/// alphanumeric. Checked here so a typo fails at start-up instead of as an API error on every
/// watch. Empty means "no filter" (upstream's default).
// Deviation (docs/deviations.md, manager runtime): upstream does not check the value.
fn parse_watch_filter(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let valid_inner = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let valid_ends = match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric(),
        _ => true,
    };
    if value.len() <= 63 && valid_inner && valid_ends {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a valid label value (at most 63 characters of [A-Za-z0-9-_.], \
             starting and ending alphanumeric)"
        ))
    }
}

/// The default identity: `$POD_NAME` (else `$HOSTNAME`, else `manager`) plus a random suffix, so
/// a restarted container never mistakes its predecessor's lease for its own.
fn default_identity() -> String {
    let base = [POD_NAME_ENV, "HOSTNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "manager".to_owned());
    let suffix: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(8)
        .map(char::from)
        .collect();
    format!("{base}_{suffix}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;
    use pretty_assertions::assert_eq;

    #[test]
    fn identities_are_unique_per_process_start() {
        let (a, b) = (default_identity(), default_identity());
        assert_ne!(a, b);
        assert!(a.len() > 9, "{a}");
    }

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        manager: ManagerArgs,
    }

    fn parse(args: &[&str]) -> Result<ManagerArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("manager").chain(args.iter().copied()))
            .map(|c| c.manager)
    }

    // NB: these tests assume none of the flags' environment variables are set in the test
    // process (CI does not set them).
    #[test]
    fn defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.watch_namespace(), None);
        assert_eq!(args.watch_filter_selector(), None);
        assert!(!args.leader_elect);
        assert_eq!(args.health_addr, "0.0.0.0:8081".parse().unwrap());
        assert_eq!(args.metrics_addr, "0.0.0.0:8443".parse().unwrap());
        assert!(!args.insecure_metrics, "metrics are secure by default");
        assert_eq!(args.metrics_cert_dir, None);
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.concurrency, 5);
        assert_eq!(args.leader_election_lease_duration, 15);
        assert_eq!(args.leader_election_renew_deadline, 10);
        assert!(args.leader_election("lease").is_none());
    }

    #[test]
    fn watch_filter_becomes_a_label_selector() {
        let args = parse(&["--watch-filter", "secondary"]).unwrap();
        assert_eq!(
            args.watch_filter_selector().as_deref(),
            Some("cluster.x-k8s.io/watch-filter=secondary")
        );
        assert_eq!(
            args.watcher_config().label_selector.as_deref(),
            Some("cluster.x-k8s.io/watch-filter=secondary")
        );
        assert_eq!(parse(&[]).unwrap().watcher_config().label_selector, None);
        // Upstream's default is the empty string: no filter.
        let empty = parse(&["--watch-filter="]).unwrap();
        assert_eq!(empty.watcher_config().label_selector, None);
    }

    #[test]
    fn watch_filter_rejects_selector_injection() {
        assert!(parse(&["--watch-filter", "a,b=c"]).is_err());
        assert!(parse(&["--watch-filter", "a b"]).is_err());
        assert!(parse(&["--watch-filter", "-leading"]).is_err());
        assert!(parse(&["--watch-filter", &"x".repeat(64)]).is_err());
        assert!(parse(&["--watch-filter", "my-instance_1.a"]).is_ok());
    }

    #[test]
    fn namespace_scopes_and_empty_means_all() {
        let args = parse(&["--namespace", "capi-system"]).unwrap();
        assert_eq!(args.watch_namespace(), Some("capi-system"));
        assert_eq!(parse(&["--namespace="]).unwrap().watch_namespace(), None);
    }

    #[test]
    fn go_style_addresses_and_aliases() {
        let args = parse(&[
            "--health-probe-bind-address=:9440",
            "--metrics-bind-address",
            "127.0.0.1:9090",
        ])
        .unwrap();
        assert_eq!(args.health_addr, "0.0.0.0:9440".parse().unwrap());
        assert_eq!(args.metrics_addr, "127.0.0.1:9090".parse().unwrap());
        assert!(parse(&["--health-addr", "nonsense"]).is_err());
        assert!(parse(&["--health-addr", ":99999"]).is_err());
    }

    #[test]
    fn insecure_metrics_only_when_asked() {
        let args = parse(&["--insecure-metrics", "--metrics-cert-dir", "/certs"]).unwrap();
        assert!(args.insecure_metrics);
        assert_eq!(args.metrics_cert_dir, Some(PathBuf::from("/certs")));
    }

    #[test]
    fn webhook_is_off_unless_given_an_address() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.webhook_addr, None);
        assert!(args.webhook_cert_config("svc", "secret", vec![]).is_none());

        let args = parse(&["--webhook-addr=:9443", "--webhook-namespace", "k0smotron"]).unwrap();
        assert_eq!(args.webhook_addr, Some("0.0.0.0:9443".parse().unwrap()));
        let config = args
            .webhook_cert_config("svc", "secret", vec!["a.b".into()])
            .unwrap();
        assert_eq!(config.namespace, "k0smotron");
        assert_eq!(config.secret, "secret");
        assert_eq!(config.crds, ["a.b"]);
        assert_eq!(
            config.target,
            crate::webhook_certs::Target::Service {
                name: "svc".into(),
                namespace: "k0smotron".into()
            }
        );

        let args = parse(&[
            "--webhook-addr=127.0.0.1:0",
            "--webhook-url=https://127.0.0.1:9443/convert",
            "--webhook-secret=mine",
            "--webhook-service=ignored",
        ])
        .unwrap();
        let config = args.webhook_cert_config("svc", "secret", vec![]).unwrap();
        assert_eq!(config.secret, "mine");
        assert_eq!(
            config.target,
            crate::webhook_certs::Target::Url("https://127.0.0.1:9443/convert".into())
        );
        assert!(parse(&["--webhook-url=http://127.0.0.1/convert"]).is_err());
    }

    #[test]
    fn concurrency_must_be_positive() {
        assert!(parse(&["--concurrency", "0"]).is_err());
        let args = parse(&["--concurrency", "2", "--log-format", "json"]).unwrap();
        assert_eq!(args.concurrency, 2);
        assert_eq!(args.log_format, LogFormat::Json);
    }

    #[test]
    fn leader_election_settings() {
        let args = parse(&[
            "--leader-elect",
            "--leader-election-namespace",
            "k0smotron",
            "--leader-election-lease-duration",
            "20s",
            "--leader-election-renew-deadline",
            "12",
        ])
        .unwrap();
        let election = args.leader_election("fallback-id").unwrap();
        assert_eq!(election.namespace, "k0smotron");
        assert_eq!(election.lease_name, "fallback-id");
        assert_eq!(election.lease_duration_seconds, 20);
        assert_eq!(election.renew_deadline_seconds, 12);
        assert!(!election.identity.is_empty());

        let named = parse(&["--leader-elect", "--leader-election-id", "cp.k0smotron.io"]).unwrap();
        assert_eq!(
            named.leader_election("fallback-id").unwrap().lease_name,
            "cp.k0smotron.io"
        );
    }

    #[test]
    fn lease_namespace_falls_back_to_pod_namespace_then_default() {
        assert_eq!(resolve_lease_namespace(Some("a"), Some("b")), "a");
        assert_eq!(resolve_lease_namespace(None, Some("b")), "b");
        assert_eq!(resolve_lease_namespace(Some(""), Some("b")), "b");
        assert_eq!(resolve_lease_namespace(None, None), "default");
        assert_eq!(resolve_lease_namespace(None, Some("")), "default");
    }
}
