//! The k0s `ClusterConfig` the controller pods start with (ConfigMap `kmc-<name>-config`, key
//! `K0SMOTRON_K0S_YAML`): the user's `spec.k0sConfig` merged with the values the provider owns.
//!
//! Pure, over `serde_json::Value`: it knows k0s' field paths but not our API types. Values the
//! provider must own (API port, SANs, external address, konnectivity port, storage) override the
//! user's; network values from the CAPI Cluster only fill what the user left empty.

use serde_json::{Map, Value, json};

/// `apiVersion` of a k0s ClusterConfig.
pub const API_VERSION: &str = "k0s.k0sproject.io/v1beta1";
/// `kind` of a k0s ClusterConfig.
pub const KIND: &str = "ClusterConfig";

/// Errors of the k0s config merge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum K0sConfigError {
    /// `spec.k0sConfig` is not a YAML/JSON object.
    #[error("spec.k0sConfig must be an object, got {0}")]
    NotAnObject(&'static str),
    /// `spec.k0sConfig` has another apiVersion or kind.
    #[error(
        "spec.k0sConfig must be apiVersion {API_VERSION}, kind {KIND}; got {api_version}/{kind}"
    )]
    WrongType {
        /// The apiVersion found.
        api_version: String,
        /// The kind found.
        kind: String,
    },
    /// A path the provider must write is occupied by a non-object (e.g. `spec.api: 3`).
    #[error("spec.k0sConfig.{0} must be an object")]
    NotAnObjectAt(String),
}

/// Network values from `Cluster.spec.clusterNetwork`, used only where the user set none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkDefaults {
    /// `clusterNetwork.pods.cidrBlocks`, comma-joined (k0s' dual-stack form).
    pub pod_cidr: Option<String>,
    /// `clusterNetwork.services.cidrBlocks`, comma-joined.
    pub service_cidr: Option<String>,
    /// `clusterNetwork.serviceDomain`.
    pub cluster_domain: Option<String>,
}

/// The values the provider owns in the generated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    /// `spec.api.port`.
    pub api_port: i32,
    /// `spec.konnectivity.agentPort`.
    pub konnectivity_port: i32,
    /// `spec.api.externalAddress` (skipped when node-local load balancing is enabled, as k0s
    /// refuses both).
    pub external_address: Option<String>,
    /// Added to `spec.api.sans` (merged with the user's, sorted, de-duplicated).
    pub sans: Vec<String>,
    /// `spec.storage`, replacing the user's entirely.
    pub storage: Value,
    /// Exposure through an Ingress (`spec.ingress`): the addresses clients use instead.
    pub ingress: Option<IngressOwned>,
}

/// What `spec.ingress` owns in the k0s config (as upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressOwned {
    /// `spec.api.externalAddress` as `<apiHost>:<port>`, replacing [`Owned::external_address`]
    /// there (the host alone still goes into the SANs).
    pub api_address: String,
    /// `spec.konnectivity.externalAddress` as `<konnectivityHost>:<port>`.
    pub konnectivity_address: String,
}

/// The merged config and the user values the provider replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The ClusterConfig.
    pub config: Value,
    /// Dotted paths of user-set values that the provider overrode (reported to the user).
    pub overridden: Vec<String>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The object at `path` under `root`, created when missing.
fn object_at<'a>(
    root: &'a mut Map<String, Value>,
    path: &[&str],
) -> Result<&'a mut Map<String, Value>, K0sConfigError> {
    let mut cur = root;
    for (i, key) in path.iter().enumerate() {
        let entry = cur
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if entry.is_null() {
            *entry = Value::Object(Map::new());
        }
        cur = entry
            .as_object_mut()
            .ok_or_else(|| K0sConfigError::NotAnObjectAt(path[..=i].join(".")))?;
    }
    Ok(cur)
}

fn is_unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// Sets `key` in `obj` to `value`, recording `path` when a different user value is replaced.
fn set_owned(
    obj: &mut Map<String, Value>,
    key: &str,
    value: Value,
    path: &str,
    overridden: &mut Vec<String>,
) {
    if let Some(old) = obj.get(key)
        && !is_unset(Some(old))
        && *old != value
    {
        overridden.push(path.to_string());
    }
    obj.insert(key.to_string(), value);
}

fn set_default(obj: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value
        && !v.is_empty()
        && is_unset(obj.get(key))
    {
        obj.insert(key.to_string(), Value::String(v.clone()));
    }
}

/// Whether `spec.network.nodeLocalLoadBalancing.enabled` is true in a config.
pub fn node_local_load_balancing(config: &Value) -> bool {
    config
        .pointer("/spec/network/nodeLocalLoadBalancing/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Validates the user's config and fills the CAPI network defaults (no provider-owned values
/// yet). The result is what [`merge`] starts from.
pub fn with_network_defaults(
    user: Option<&Value>,
    network: &NetworkDefaults,
) -> Result<Value, K0sConfigError> {
    let mut root = match user {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(K0sConfigError::NotAnObject(type_name(other))),
    };
    let api_version = root.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = root.get("kind").and_then(Value::as_str).unwrap_or("");
    // Upstream rejects any other type; an absent apiVersion/kind is filled in (a bare `spec:` is
    // a common hand-written form and unambiguous).
    if (!api_version.is_empty() && api_version != API_VERSION) || (!kind.is_empty() && kind != KIND)
    {
        return Err(K0sConfigError::WrongType {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        });
    }
    root.insert("apiVersion".into(), json!(API_VERSION));
    root.insert("kind".into(), json!(KIND));
    if *network == NetworkDefaults::default() {
        return Ok(Value::Object(root));
    }
    let net = object_at(&mut root, &["spec", "network"])?;
    set_default(net, "podCIDR", network.pod_cidr.as_ref());
    set_default(net, "serviceCIDR", network.service_cidr.as_ref());
    set_default(net, "clusterDomain", network.cluster_domain.as_ref());
    Ok(Value::Object(root))
}

/// Merges the provider-owned values into a config prepared by [`with_network_defaults`].
pub fn merge(base: Value, owned: &Owned) -> Result<Merged, K0sConfigError> {
    let nllb = node_local_load_balancing(&base);
    let mut root = match base {
        Value::Object(m) => m,
        other => return Err(K0sConfigError::NotAnObject(type_name(&other))),
    };
    let mut overridden = Vec::new();

    let api = object_at(&mut root, &["spec", "api"])?;
    set_owned(
        api,
        "port",
        json!(owned.api_port),
        "spec.api.port",
        &mut overridden,
    );
    let mut sans: Vec<String> = match api.get("sans") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    sans.extend(owned.sans.iter().cloned());
    if let Some(addr) = &owned.external_address {
        sans.push(addr.clone());
    }
    sans.retain(|s| !s.is_empty());
    sans.sort();
    sans.dedup();
    api.insert("sans".into(), json!(sans));
    // k0s refuses externalAddress together with node-local load balancing; the address still goes
    // into the SANs above.
    let api_address = match &owned.ingress {
        Some(i) => Some(&i.api_address),
        None => owned.external_address.as_ref(),
    };
    if let Some(addr) = api_address
        && !nllb
    {
        set_owned(
            api,
            "externalAddress",
            json!(addr),
            "spec.api.externalAddress",
            &mut overridden,
        );
    }
    if owned.ingress.is_some() {
        // The API server must not write its own (pod) address into `default/kubernetes`: the
        // pods are not reachable from the workers, only the ingress is.
        let extra_args = object_at(api, &["extraArgs"])?;
        set_owned(
            extra_args,
            "endpoint-reconciler-type",
            json!("none"),
            "spec.api.extraArgs.endpoint-reconciler-type",
            &mut overridden,
        );
    }

    let konnectivity = object_at(&mut root, &["spec", "konnectivity"])?;
    set_owned(
        konnectivity,
        "agentPort",
        json!(owned.konnectivity_port),
        "spec.konnectivity.agentPort",
        &mut overridden,
    );
    if let Some(i) = &owned.ingress {
        set_owned(
            konnectivity,
            "externalAddress",
            json!(i.konnectivity_address),
            "spec.konnectivity.externalAddress",
            &mut overridden,
        );
    }

    let spec = object_at(&mut root, &["spec"])?;
    set_owned(
        spec,
        "storage",
        owned.storage.clone(),
        "spec.storage",
        &mut overridden,
    );
    Ok(Merged {
        config: Value::Object(root),
        overridden,
    })
}

/// `spec.storage` for the managed etcd `kmc-<name>-etcd`.
pub fn etcd_storage(etcd_service: &str, etcd_prefix: &str) -> Value {
    json!({
        "type": "etcd",
        "etcd": {
            "externalCluster": {
                "endpoints": [format!("https://{etcd_service}:2379")],
                "etcdPrefix": etcd_prefix,
                "caFile": "/var/lib/k0s/pki/etcd-ca.crt",
                "clientCertFile": "/var/lib/k0s/pki/apiserver-etcd-client.crt",
                "clientKeyFile": "/var/lib/k0s/pki/apiserver-etcd-client.key",
            }
        }
    })
}

/// Placeholder the entrypoint script replaces with `$K0SMOTRON_KINE_DATASOURCE_URL` (the DSN from
/// `storage.kine.dataSourceSecretName`), so the secret never lands in a ConfigMap.
pub const KINE_DSN_PLACEHOLDER: &str = "__K0SMOTRON_KINE_DATASOURCE_URL_PLACEHOLDER__";

/// `spec.storage` for kine with an inline DSN, or the placeholder when it comes from a Secret.
pub fn kine_storage(inline_dsn: Option<&str>) -> Value {
    json!({
        "type": "kine",
        "kine": { "dataSource": inline_dsn.unwrap_or(KINE_DSN_PLACEHOLDER) }
    })
}

/// Name and namespace of the cluster-wide config k0s reads with `--enable-dynamic-config`
/// (`clusterconfigs.k0s.k0sproject.io` `kube-system/k0s`).
pub const DYNAMIC_CONFIG_NAME: &str = "k0s";
/// See [`DYNAMIC_CONFIG_NAME`].
pub const DYNAMIC_CONFIG_NAMESPACE: &str = "kube-system";

/// Fields of `spec` that k0s keeps on the node: its `GetClusterWideConfig` (v1.35.4,
/// `pkg/apis/k0s/v1beta1/clusterconfig_types.go`) removes them before it writes the cluster-wide
/// config into `kube-system/k0s`, so they are read from the config file only.
const NODE_ONLY_SPEC: &[&str] = &["api", "storage", "installConfig"];
/// Fields of `spec.network` that `GetClusterWideConfig` removes as well.
const NODE_ONLY_NETWORK: &[&str] = &[
    "serviceCIDR",
    "clusterDomain",
    "controlPlaneLoadBalancing",
    "primaryAddressFamily",
];
/// Cluster-wide fields that k0s v1.35.4 also hands, from its config file, to components it starts
/// once and never reconciles (`cmd/controller/controller.go`): the konnectivity server gets
/// `spec.konnectivity`, kube-apiserver `spec.featureGates` (`--feature-gates`) and
/// `spec.network.dualStack` (the IPv6 half of `--service-cluster-ip-range`). They are pushed with
/// the rest, and a change of them restarts the pods too, or it would reach only half of k0s.
const READ_AT_START_SPEC: &[&str] = &["konnectivity", "featureGates"];
/// See [`READ_AT_START_SPEC`].
const READ_AT_START_NETWORK: &[&str] = &["dualStack"];

/// Moves `keys` of `from` (those present) into a new object.
fn take_keys(from: &mut Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| from.remove(*k).map(|v| ((*k).to_string(), v)))
        .collect()
}

/// Copies `keys` of `from` (those present) into a new object.
fn copy_keys(from: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| from.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect()
}

/// A k0s `ClusterConfig` split as k0s itself splits it when dynamic config is on.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// What k0s reads from its config file only: `apiVersion`, `kind` and the node-only fields
    /// of `spec` ([`NODE_ONLY_SPEC`], [`NODE_ONLY_NETWORK`]).
    pub node_only: Value,
    /// The rest, as the object k0s would create in the hosted cluster: `apiVersion`, `kind`,
    /// `metadata` `{name: k0s, namespace: kube-system}` and the cluster-wide `spec`. Any other
    /// top-level field (`status`, the user's `metadata`) is dropped, as k0s drops it.
    pub cluster_wide: Value,
    /// What a running k0s cannot take from `kube-system/k0s`: the node-only part and the
    /// cluster-wide fields of [`READ_AT_START_SPEC`] and [`READ_AT_START_NETWORK`]. A change
    /// here needs a restart; a change anywhere else reaches k0s through `kube-system/k0s`.
    pub read_at_start: Value,
}

/// Splits `config` (a merged `ClusterConfig`, see [`merge`]) like k0s's `GetClusterWideConfig`.
/// Never fails: a `spec` or `spec.network` that is not an object stays whole in the
/// cluster-wide part, where the API server's schema refuses it with a message for the user.
pub fn split(config: &Value) -> Split {
    let typed = |spec: Map<String, Value>| json!({"apiVersion": API_VERSION, "kind": KIND, "spec": Value::Object(spec)});
    let mut spec = match config.get("spec") {
        Some(Value::Object(spec)) => spec.clone(),
        Some(other) => {
            let mut cluster_wide = typed(Map::new());
            cluster_wide["spec"] = other.clone();
            set_metadata(&mut cluster_wide);
            return Split {
                node_only: typed(Map::new()),
                cluster_wide,
                read_at_start: typed(Map::new()),
            };
        }
        None => Map::new(),
    };
    let mut node_only = take_keys(&mut spec, NODE_ONLY_SPEC);
    let mut read_at_start = node_only.clone();
    read_at_start.extend(copy_keys(&spec, READ_AT_START_SPEC));
    if let Some(Value::Object(network)) = spec.get_mut("network") {
        let node_network = take_keys(network, NODE_ONLY_NETWORK);
        let mut start_network = node_network.clone();
        start_network.extend(copy_keys(network, READ_AT_START_NETWORK));
        if !node_network.is_empty() {
            node_only.insert("network".into(), Value::Object(node_network));
        }
        if !start_network.is_empty() {
            read_at_start.insert("network".into(), Value::Object(start_network));
        }
        // k0s keeps an emptied `network: {}`; an empty object we would own says nothing.
        if network.is_empty() {
            spec.remove("network");
        }
    }
    let mut cluster_wide = typed(spec);
    set_metadata(&mut cluster_wide);
    Split {
        node_only: typed(node_only),
        cluster_wide,
        read_at_start: typed(read_at_start),
    }
}

fn set_metadata(config: &mut Value) {
    config["metadata"] = json!({
        "name": DYNAMIC_CONFIG_NAME,
        "namespace": DYNAMIC_CONFIG_NAMESPACE,
    });
}

/// YAML text of a config, as stored in the ConfigMap.
pub fn to_yaml(config: &Value) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(config)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn owned() -> Owned {
        Owned {
            api_port: 30443,
            konnectivity_port: 30132,
            external_address: Some("203.0.113.10".into()),
            sans: vec!["kmc-a".into(), "kmc-a.ns".into(), "10.96.0.20".into()],
            storage: etcd_storage("kmc-a-etcd", "a"),
            ingress: None,
        }
    }

    /// Behind an Ingress (as upstream): both external addresses carry the ingress port, the API
    /// server leaves `default/kubernetes` alone, and a user's values there are reported.
    #[test]
    fn ingress_owns_the_external_addresses_and_the_endpoint_reconciler() {
        let base = json!({"apiVersion": "k0s.k0sproject.io/v1beta1", "kind": "ClusterConfig",
            "spec": {"api": {"extraArgs": {"endpoint-reconciler-type": "lease", "v": "2"}},
                     "konnectivity": {"externalAddress": "old:1"}}});
        let mut o = owned();
        o.external_address = Some("api.example.com".into());
        o.ingress = Some(IngressOwned {
            api_address: "api.example.com:8443".into(),
            konnectivity_address: "konn.example.com:8443".into(),
        });
        let m = merge(base, &o).unwrap();
        let spec = &m.config["spec"];
        assert_eq!(spec["api"]["externalAddress"], "api.example.com:8443");
        assert_eq!(spec["api"]["extraArgs"]["endpoint-reconciler-type"], "none");
        assert_eq!(spec["api"]["extraArgs"]["v"], "2", "other args stay");
        assert_eq!(
            spec["konnectivity"]["externalAddress"],
            "konn.example.com:8443"
        );
        let sans: Vec<&str> = spec["api"]["sans"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(sans.contains(&"api.example.com"), "{sans:?}");
        assert!(
            !sans.iter().any(|s| s.contains(':') && !s.contains("::")),
            "no host:port SAN: {sans:?}"
        );
        assert!(
            m.overridden
                .contains(&"spec.api.extraArgs.endpoint-reconciler-type".to_string())
        );
        assert!(
            m.overridden
                .contains(&"spec.konnectivity.externalAddress".to_string())
        );
    }

    #[test]
    fn empty_user_config_gets_type_network_and_owned_values() {
        let base = with_network_defaults(
            None,
            &NetworkDefaults {
                pod_cidr: Some("192.168.0.0/16".into()),
                service_cidr: Some("10.128.0.0/12".into()),
                cluster_domain: Some("example.local".into()),
            },
        )
        .unwrap();
        let merged = merge(base, &owned()).unwrap();
        assert_eq!(merged.overridden, Vec::<String>::new());
        insta::assert_snapshot!(to_yaml(&merged.config).unwrap());
    }

    #[test]
    fn user_network_wins_over_capi_but_provider_values_win_over_user() {
        let user = json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": "k0s"},
            "spec": {
                "api": {"port": 6443, "sans": ["user.example.com", "kmc-a"], "externalAddress": "1.2.3.4",
                        "extraArgs": {"anonymous-auth": "false"}},
                "konnectivity": {"agentPort": 8132},
                "network": {"podCIDR": "10.244.0.0/16", "provider": "calico"},
                "storage": {"type": "kine"},
                "telemetry": {"enabled": false}
            }
        });
        let base = with_network_defaults(
            Some(&user),
            &NetworkDefaults {
                pod_cidr: Some("192.168.0.0/16".into()),
                service_cidr: Some("10.128.0.0/12".into()),
                cluster_domain: None,
            },
        )
        .unwrap();
        let merged = merge(base, &owned()).unwrap();
        assert_eq!(
            merged.overridden,
            vec![
                "spec.api.port",
                "spec.api.externalAddress",
                "spec.konnectivity.agentPort",
                "spec.storage"
            ]
        );
        let c = &merged.config;
        assert_eq!(
            c.pointer("/spec/network/podCIDR"),
            Some(&json!("10.244.0.0/16"))
        );
        assert_eq!(
            c.pointer("/spec/network/serviceCIDR"),
            Some(&json!("10.128.0.0/12"))
        );
        assert_eq!(c.pointer("/spec/network/clusterDomain"), None);
        assert_eq!(
            c.pointer("/spec/api/extraArgs/anonymous-auth"),
            Some(&json!("false"))
        );
        insta::assert_snapshot!(to_yaml(c).unwrap());
    }

    #[test]
    fn node_local_load_balancing_keeps_external_address_out() {
        let user = json!({"spec": {"network": {"nodeLocalLoadBalancing": {"enabled": true}}}});
        let base = with_network_defaults(Some(&user), &NetworkDefaults::default()).unwrap();
        let merged = merge(base, &owned()).unwrap();
        assert_eq!(merged.config.pointer("/spec/api/externalAddress"), None);
        let sans = merged.config.pointer("/spec/api/sans").unwrap();
        assert!(sans.as_array().unwrap().contains(&json!("203.0.113.10")));
    }

    #[test]
    fn wrong_types_are_refused() {
        let wrong = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert!(matches!(
            with_network_defaults(Some(&wrong), &NetworkDefaults::default()),
            Err(K0sConfigError::WrongType { .. })
        ));
        assert_eq!(
            with_network_defaults(Some(&json!([1])), &NetworkDefaults::default()),
            Err(K0sConfigError::NotAnObject("a list"))
        );
        let bad_api = json!({"spec": {"api": "nope"}});
        let base = with_network_defaults(Some(&bad_api), &NetworkDefaults::default()).unwrap();
        assert_eq!(
            merge(base, &owned()),
            Err(K0sConfigError::NotAnObjectAt("spec.api".into()))
        );
    }

    /// A config using every field `GetClusterWideConfig` treats specially, and some it does not.
    fn full_config() -> Value {
        json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": "user-name", "namespace": "user-ns", "labels": {"a": "b"}},
            "spec": {
                "api": {"port": 30443, "sans": ["a"], "extraArgs": {"event-ttl": "2h"}},
                "storage": {"type": "kine", "kine": {"dataSource": KINE_DSN_PLACEHOLDER}},
                "installConfig": {"users": {"etcdUser": "etcd"}},
                "network": {
                    "provider": "kuberouter",
                    "podCIDR": "10.244.0.0/16",
                    "serviceCIDR": "10.96.0.0/12",
                    "clusterDomain": "cluster.local",
                    "controlPlaneLoadBalancing": {"enabled": false},
                    "primaryAddressFamily": "IPv4",
                    "dualStack": {"enabled": true, "IPv6podCIDR": "fd00::/108", "IPv6serviceCIDR": "fd01::/108"},
                    "kuberouter": {"mtu": 1300}
                },
                "konnectivity": {"agentPort": 30132, "adminPort": 8133},
                "featureGates": [{"name": "X", "enabled": true}],
                "telemetry": {"enabled": false},
                "extensions": {"helm": {"charts": [{"name": "c", "chartname": "r/c", "namespace": "default"}]}},
                "controllerManager": {"extraArgs": {"v": "2"}},
                "workerProfiles": [{"name": "p", "values": {}}]
            },
            "status": {"whatever": true}
        })
    }

    /// Deep-merges `b` into `a` (objects only), for checking that a split loses nothing.
    fn union(a: &mut Value, b: &Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(k) {
                        Some(existing) => union(existing, v),
                        None => {
                            a.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (a, b) => *a = b.clone(),
        }
    }

    #[test]
    fn split_follows_k0s_get_cluster_wide_config() {
        let config = full_config();
        let split = split(&config);
        let wide = &split.cluster_wide;
        // What GetClusterWideConfig removes is not pushed...
        for gone in [
            "/spec/api",
            "/spec/storage",
            "/spec/installConfig",
            "/spec/network/serviceCIDR",
            "/spec/network/clusterDomain",
            "/spec/network/controlPlaneLoadBalancing",
            "/spec/network/primaryAddressFamily",
            "/status",
            "/metadata/labels",
        ] {
            assert_eq!(wide.pointer(gone), None, "{gone} is node-only");
        }
        // ...everything else is, under the name k0s reads.
        assert_eq!(
            wide["metadata"],
            json!({"name": "k0s", "namespace": "kube-system"})
        );
        for kept in [
            "/spec/network/provider",
            "/spec/network/podCIDR",
            "/spec/network/dualStack",
            "/spec/network/kuberouter/mtu",
            "/spec/konnectivity/agentPort",
            "/spec/featureGates",
            "/spec/telemetry/enabled",
            "/spec/extensions/helm/charts/0/name",
            "/spec/controllerManager",
            "/spec/workerProfiles",
        ] {
            assert!(wide.pointer(kept).is_some(), "{kept} is cluster-wide");
        }
        insta::assert_snapshot!(to_yaml(wide).unwrap());
        // Node-only and cluster-wide together are the whole spec again.
        let mut whole = split.node_only.clone();
        union(&mut whole, &split.cluster_wide);
        assert_eq!(whole["spec"], config["spec"]);
        assert_eq!(
            split.node_only["spec"]["network"],
            json!({"serviceCIDR": "10.96.0.0/12", "clusterDomain": "cluster.local",
                "controlPlaneLoadBalancing": {"enabled": false}, "primaryAddressFamily": "IPv4"})
        );
    }

    #[test]
    fn read_at_start_is_node_only_plus_what_start_time_components_read() {
        let split = split(&full_config());
        let start = &split.read_at_start["spec"];
        let mut keys: Vec<&String> = start.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "api",
                "featureGates",
                "installConfig",
                "konnectivity",
                "network",
                "storage"
            ]
        );
        assert_eq!(
            start["network"]["dualStack"],
            full_config()["spec"]["network"]["dualStack"]
        );
        assert_eq!(start["network"].get("kuberouter"), None);
        assert_eq!(start["network"].get("podCIDR"), None);
    }

    #[test]
    fn a_dynamic_change_leaves_the_read_at_start_part_alone() {
        let before = full_config();
        let mut after = before.clone();
        after["spec"]["telemetry"]["enabled"] = json!(true);
        after["spec"]["extensions"]["helm"]["charts"][0]["version"] = json!("1.2.3");
        after["spec"]["network"]["kuberouter"]["mtu"] = json!(1400);
        assert_eq!(split(&before).read_at_start, split(&after).read_at_start);
        assert_ne!(split(&before).cluster_wide, split(&after).cluster_wide);
        // A static change moves the read-at-start part, and only it.
        let mut static_change = before.clone();
        static_change["spec"]["api"]["extraArgs"]["event-ttl"] = json!("3h");
        assert_ne!(
            split(&before).read_at_start,
            split(&static_change).read_at_start
        );
        assert_eq!(
            split(&before).cluster_wide,
            split(&static_change).cluster_wide
        );
    }

    #[test]
    fn split_of_odd_configs_never_panics() {
        for config in [
            json!({}),
            json!({"spec": null}),
            json!({"spec": 3}),
            json!({"spec": {"network": "calico"}}),
            json!({"spec": {"network": {"serviceCIDR": "10.96.0.0/12"}}}),
            json!([1, 2]),
            Value::Null,
        ] {
            let s = split(&config);
            assert_eq!(s.cluster_wide["metadata"]["name"], json!("k0s"), "{config}");
        }
        // A network left empty is not pushed as `network: {}`.
        let s = split(&json!({"spec": {"network": {"serviceCIDR": "10.96.0.0/12"}}}));
        assert_eq!(s.cluster_wide["spec"], json!({}));
        // A non-object spec goes to the API server as it is, to be refused there.
        let s = split(&json!({"spec": {"network": "calico"}}));
        assert_eq!(s.cluster_wide["spec"]["network"], json!("calico"));
        assert_eq!(split(&json!({"spec": 3})).cluster_wide["spec"], json!(3));
    }

    #[test]
    fn kine_storage_placeholder_and_inline() {
        assert_eq!(
            kine_storage(None).pointer("/kine/dataSource"),
            Some(&json!(KINE_DSN_PLACEHOLDER))
        );
        assert_eq!(
            kine_storage(Some("postgres://u:p@db:5432/k0s")).pointer("/kine/dataSource"),
            Some(&json!("postgres://u:p@db:5432/k0s"))
        );
    }
}
