//! The pure side of the fault tests (`tests/chaos.rs`, `make chaos`): seeded kill points and the
//! normalized digest of "the final objects" that a faulty run must share with a fault-free one.
//! No I/O: the tests list the objects and hand them in as JSON.
//!
//! A digest keeps what a user relies on and drops what differs between two correct runs:
//! uids, resourceVersions, timestamps, managedFields, generations of children (a restart may
//! write an object once more), addresses the API server allocates, children's status (kwok's),
//! and the bytes of key material. Key material is kept as its *shape*: which keys a Secret has,
//! and for every certificate its subject, whether it is a CA, and which CA of the namespace
//! issued it. CAs are numbered in the order they are first met, so a restart that minted a
//! second CA shows up as a `CA#2` the fault-free digest does not have.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// A small seeded generator (SplitMix64): the same seed gives the same kill points on every
/// machine, without pulling a random-number crate's version-specific seeding API into tests.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    /// The generator for `seed` (mixed with `salt`, so scenarios sharing a seed differ).
    pub fn new(seed: u64, salt: &str) -> Self {
        let mut state = seed;
        for b in salt.bytes() {
            state = state.rotate_left(8) ^ u64::from(b);
        }
        Self(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`0` when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        self.next_u64() % bound
    }
}

/// One certificate as the digest shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CertInfo {
    fingerprint: String,
    subject: String,
    issuer: String,
    is_ca: bool,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
}

fn parse_certs(text: &str) -> Vec<CertInfo> {
    let Ok(blocks) = pem::parse_many(text.as_bytes()) else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .filter_map(|b| cert_info(b.contents()))
        .collect()
}

fn cert_info(der: &[u8]) -> Option<CertInfo> {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut ski = None;
    let mut aki = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|id| id.0.to_vec());
            }
            _ => {}
        }
    }
    Some(CertInfo {
        fingerprint: hex::encode(Sha256::digest(der)),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        is_ca: cert.is_ca(),
        subject_key_id: ski,
        authority_key_id: aki,
    })
}

/// Numbers the CAs of one digest in the order they are met.
#[derive(Debug, Default)]
struct CaTable {
    cas: Vec<CertInfo>,
}

impl CaTable {
    fn learn(&mut self, cert: &CertInfo) {
        if cert.is_ca && !self.cas.iter().any(|c| c.fingerprint == cert.fingerprint) {
            self.cas.push(cert.clone());
        }
    }

    fn describe(&self, cert: &CertInfo) -> String {
        if cert.is_ca {
            let n = self
                .cas
                .iter()
                .position(|c| c.fingerprint == cert.fingerprint)
                .map_or(0, |i| i + 1);
            return format!("CA#{n} [{}]", cert.subject);
        }
        let issuer = self
            .cas
            .iter()
            .position(|ca| {
                ca.subject == cert.issuer
                    && match (&ca.subject_key_id, &cert.authority_key_id) {
                        (Some(s), Some(a)) => s == a,
                        _ => true,
                    }
            })
            .map_or_else(|| "an unknown CA".to_owned(), |i| format!("CA#{}", i + 1));
        format!("leaf [{}] issued by {issuer}", cert.subject)
    }
}

/// The text forms a Secret value may hide certificates in: the value itself (PEM) and, for a
/// kubeconfig, its base64 `*-data` fields.
fn cert_texts(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    for line in value.lines() {
        let line = line.trim();
        let Some((key, data)) = line.split_once(':') else {
            continue;
        };
        if key.ends_with("-data")
            && let Ok(bytes) = BASE64_STANDARD.decode(data.trim())
            && let Ok(text) = String::from_utf8(bytes)
        {
            out.push(text);
        }
    }
    out
}

/// Secrets as `(name, key, decoded value)`, sorted, for the CA table and the digest.
fn secret_values(secrets: &[Value]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for s in secrets {
        let name = s["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(data) = s["data"].as_object() {
            for (key, v) in data {
                let bytes = v
                    .as_str()
                    .and_then(|b| BASE64_STANDARD.decode(b).ok())
                    .unwrap_or_default();
                out.push((
                    name.clone(),
                    key.clone(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The fingerprints of every CA certificate in `secrets`, by `secret/key`: taken before a kill
/// and after the restart, they must be equal where both exist (a restart never re-mints a CA).
pub fn ca_fingerprints(secrets: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (name, key, value) in secret_values(secrets) {
        let cas: Vec<String> = parse_certs(&value)
            .into_iter()
            .filter(|c| c.is_ca)
            .map(|c| c.fingerprint)
            .collect();
        if !cas.is_empty() {
            out.insert(format!("{name}/{key}"), cas);
        }
    }
    out
}

/// Where CA fingerprints recorded at kill time (`before`) differ from the final ones. A Secret
/// that is gone is not reported here (deletion removes them; the digest shows a missing one).
pub fn reminted_cas(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    before
        .iter()
        .filter_map(|(where_, fps)| match after.get(where_) {
            Some(now) if now != fps => Some(format!("{where_}: CA replaced after the restart")),
            _ => None,
        })
        .collect()
}

/// What the digest keeps of `metadata`: name, labels, annotations, finalizers, and owner
/// references without uids.
fn meta(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let owners: Vec<Value> = m["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .map(|r| {
                    serde_json::json!({
                        "kind": r["kind"], "name": r["name"], "controller": r["controller"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "name": m["name"],
        "labels": m["labels"],
        "annotations": m["annotations"],
        "finalizers": m["finalizers"],
        "ownerReferences": owners,
    })
}

/// Removes `path` (dot-separated; `[]` descends into every array element) from `v`.
fn strip(v: &mut Value, path: &str) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    if head == "[]" {
        if let (Some(items), Some(rest)) = (v.as_array_mut(), rest) {
            for item in items {
                strip(item, rest);
            }
        }
        return;
    }
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    match rest {
        None => {
            obj.remove(head);
        }
        Some(rest) => {
            if let Some(child) = obj.get_mut(head) {
                strip(child, rest);
            }
        }
    }
}

/// A child object (StatefulSet, Service, ConfigMap, CronJob, PVC): metadata as [`meta`], the
/// spec without what the API server allocates, no status.
fn child(obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("metadata".into(), meta(obj));
    for field in ["spec", "data", "binaryData"] {
        if !obj[field].is_null() {
            let mut v = obj[field].clone();
            // Allocated by the API server (Services) or by the volume binder (claims).
            for path in [
                "clusterIP",
                "clusterIPs",
                "ports.[].nodePort",
                "healthCheckNodePort",
                "volumeName",
            ] {
                strip(&mut v, path);
            }
            out.insert(field.into(), v);
        }
    }
    Value::Object(out)
}

/// A Secret: metadata, type, and per key either the certificates it holds (as described by
/// the CA table), "private key", or "opaque".
fn secret(obj: &Value, cas: &CaTable) -> Value {
    let mut keys = Map::new();
    if let Some(data) = obj["data"].as_object() {
        for (key, v) in data {
            let bytes = v
                .as_str()
                .and_then(|b| BASE64_STANDARD.decode(b).ok())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let certs: Vec<Value> = cert_texts(&text)
                .iter()
                .flat_map(|t| parse_certs(t))
                .map(|c| Value::String(cas.describe(&c)))
                .collect();
            let shape = if !certs.is_empty() {
                Value::Array(certs)
            } else if text.contains("PRIVATE KEY-----") {
                Value::String("private key".into())
            } else {
                Value::String("opaque".into())
            };
            keys.insert(key.clone(), shape);
        }
    }
    serde_json::json!({"metadata": meta(obj), "type": obj["type"], "keys": keys})
}

/// A custom resource we reconcile (K0smotronControlPlane, K0sWorkerConfig): metadata, spec,
/// generation, and status with conditions reduced to type, status and reason.
fn reconciled(obj: &Value) -> Value {
    let mut status = obj["status"].clone();
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions.iter_mut() {
            *c = serde_json::json!({"type": c["type"], "status": c["status"], "reason": c["reason"]});
        }
        conditions.sort_by_key(|c| c["type"].as_str().unwrap_or_default().to_owned());
    }
    serde_json::json!({
        "metadata": meta(obj),
        "generation": obj["metadata"]["generation"],
        "spec": obj["spec"],
        "status": status,
    })
}

/// Everything a scenario compares, as listed from one namespace.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    /// The objects we reconcile, by kind (`K0smotronControlPlane`, `K0sWorkerConfig`).
    pub reconciled: BTreeMap<String, Vec<Value>>,
    /// Children and other plain objects, by kind (`StatefulSet`, `Service`, `Cluster`, ...).
    pub children: BTreeMap<String, Vec<Value>>,
    /// Secrets of the namespace.
    pub secrets: Vec<Value>,
    /// Free-form facts a scenario adds (e.g. the number of bootstrap tokens left).
    pub facts: BTreeMap<String, String>,
    /// The namespace they were listed from: it appears inside generated text (service DNS names
    /// in certificate SANs and configs) and is replaced by `<ns>`.
    pub namespace: String,
}

/// Replaces, in every string of `v`, the namespace by `<ns>` and Service addresses of the
/// harness's range (`10.0.0.0/24`) by `<cluster-ip>`; the values of keys ending in `hash` or
/// `checksum` (digests of those inputs) become `<hash>`, those ending in `token-id` (a random
/// bootstrap token's public half) `<token-id>`.
fn normalize(v: &mut Value, namespace: &str) {
    match v {
        Value::String(s) => {
            if !namespace.is_empty() {
                *s = s.replace(namespace, "<ns>");
            }
            *s = mask_cluster_ips(s);
        }
        Value::Array(items) => items.iter_mut().for_each(|i| normalize(i, namespace)),
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if (k.ends_with("hash") || k.ends_with("checksum")) && val.is_string() {
                    *val = Value::String("<hash>".into());
                } else if k.ends_with("token-id") && val.is_string() {
                    *val = Value::String("<token-id>".into());
                } else {
                    normalize(val, namespace);
                }
            }
        }
        _ => {}
    }
}

fn mask_cluster_ips(s: &str) -> String {
    const PREFIX: &str = "10.0.0.";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(PREFIX) {
        let before_ok = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !c.is_ascii_digit() && c != '.');
        let tail = &rest[i + PREFIX.len()..];
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        out.push_str(&rest[..i]);
        if before_ok && (1..=3).contains(&digits) {
            out.push_str("<cluster-ip>");
        } else {
            out.push_str(&rest[i..i + PREFIX.len() + digits]);
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

fn by_name(items: &[Value]) -> Vec<&Value> {
    let mut v: Vec<&Value> = items.iter().collect();
    v.sort_by_key(|o| {
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    v
}

/// The normalized digest of `objects`: one line per object, sorted, as text (so a divergence
/// can be shown as a line diff).
pub fn digest(objects: &Objects) -> String {
    let mut cas = CaTable::default();
    for (_, _, value) in secret_values(&objects.secrets) {
        for text in cert_texts(&value) {
            for c in parse_certs(&text) {
                cas.learn(&c);
            }
        }
    }
    let mut out = String::new();
    let ns = objects.namespace.as_str();
    let mut line = |kind: &str, mut v: Value| {
        normalize(&mut v, ns);
        let _ = writeln!(out, "{kind} {v}");
    };
    for (kind, items) in &objects.reconciled {
        for o in by_name(items) {
            line(kind, reconciled(o));
        }
    }
    for (kind, items) in &objects.children {
        for o in by_name(items) {
            line(kind, child(o));
        }
    }
    for o in by_name(&objects.secrets) {
        line("Secret", secret(o, &cas));
    }
    for (k, v) in &objects.facts {
        let _ = writeln!(out, "fact {k}={v}");
    }
    out
}

/// The lines of `b` not in `a` (`+`) and of `a` not in `b` (`-`): enough to show a divergence.
pub fn line_diff(a: &str, b: &str) -> String {
    let left: Vec<&str> = a.lines().collect();
    let right: Vec<&str> = b.lines().collect();
    let mut out = String::new();
    for l in &left {
        if !right.contains(l) {
            let _ = writeln!(out, "- {l}");
        }
    }
    for r in &right {
        if !left.contains(r) {
            let _ = writeln!(out, "+ {r}");
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use serde_json::json;

    fn ca(cn: &str) -> (String, KeyPair, CertificateParams) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.use_authority_key_identifier_extension = true;
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key, params)
    }

    fn leaf(cn: &str, issuer_params: &CertificateParams, issuer_key: &KeyPair) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(issuer_params, issuer_key);
        params.signed_by(&key, &issuer).unwrap().pem()
    }

    fn secret_json(name: &str, data: &[(&str, &str)]) -> Value {
        let data: Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(BASE64_STANDARD.encode(v))))
            .collect();
        json!({"metadata": {"name": name, "uid": "x", "resourceVersion": "1"}, "type": "Opaque", "data": data})
    }

    /// A namespace with a CA Secret and a kubeconfig whose CA data and client cert it issued.
    fn world(ca_pem: &str, ca_key: &KeyPair, ca_params: &CertificateParams) -> Objects {
        let client = leaf("admin", ca_params, ca_key);
        let kubeconfig = format!(
            "clusters:\n- cluster:\n    certificate-authority-data: {}\nusers:\n- user:\n    client-certificate-data: {}\n",
            BASE64_STANDARD.encode(ca_pem),
            BASE64_STANDARD.encode(&client)
        );
        Objects {
            secrets: vec![
                secret_json(
                    "demo-ca",
                    &[("tls.crt", ca_pem), ("tls.key", &ca_key.serialize_pem())],
                ),
                secret_json("demo-kubeconfig", &[("value", &kubeconfig)]),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn two_correct_runs_with_fresh_keys_have_the_same_digest() {
        let (pem1, key1, p1) = ca("kubernetes");
        let (pem2, key2, p2) = ca("kubernetes");
        let a = digest(&world(&pem1, &key1, &p1));
        let b = digest(&world(&pem2, &key2, &p2));
        assert_eq!(a, b);
        assert!(a.contains("CA#1 [CN=kubernetes]"), "{a}");
        assert!(a.contains("leaf [CN=admin] issued by CA#1"), "{a}");
        assert!(a.contains("\"tls.key\":\"private key\""), "{a}");
    }

    #[test]
    fn a_second_ca_behind_the_kubeconfig_is_a_divergence() {
        let (pem1, key1, p1) = ca("kubernetes");
        let (pem2, key2, p2) = ca("kubernetes");
        let good = digest(&world(&pem1, &key1, &p1));
        // The kubeconfig was minted from a CA that is not the one in `demo-ca`.
        let mut bad = world(&pem1, &key1, &p1);
        bad.secrets[1] = world(&pem2, &key2, &p2).secrets[1].clone();
        let bad = digest(&bad);
        assert_ne!(good, bad);
        assert!(bad.contains("CA#2"), "{bad}");
        assert!(!line_diff(&good, &bad).is_empty());
    }

    #[test]
    fn volatile_metadata_and_allocated_addresses_are_ignored() {
        let svc = |uid: &str, ip: &str, port: u16| {
            json!({
                "metadata": {"name": "kmc-demo", "uid": uid, "resourceVersion": uid,
                    "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{"manager": uid}],
                    "ownerReferences": [{"kind": "K0smotronControlPlane", "name": "demo", "uid": uid, "controller": true}]},
                "spec": {"type": "NodePort", "clusterIP": ip, "clusterIPs": [ip],
                    "ports": [{"name": "api", "port": 30443, "nodePort": port}]},
                "status": {"loadBalancer": {}},
            })
        };
        let mut a = Objects::default();
        a.children
            .insert("Service".into(), vec![svc("a", "10.0.0.5", 31000)]);
        let mut b = Objects::default();
        b.children
            .insert("Service".into(), vec![svc("b", "10.0.0.9", 32000)]);
        assert_eq!(digest(&a), digest(&b));
        // A changed port the user asked for is not ignored.
        let mut c = b.clone();
        c.children.get_mut("Service").unwrap()[0]["spec"]["ports"][0]["port"] = json!(443);
        assert_ne!(digest(&a), digest(&c));
    }

    #[test]
    fn conditions_compare_by_type_status_reason_and_finalizers_count() {
        let kcp = |reason: &str, finalizers: Value| {
            json!({"metadata": {"name": "demo", "generation": 2, "finalizers": finalizers},
                "spec": {"replicas": 3},
                "status": {"conditions": [{"type": "Available", "status": "False", "reason": reason,
                    "message": "x", "lastTransitionTime": "t"}]}})
        };
        let with = |o: Value| {
            let mut objs = Objects::default();
            objs.reconciled
                .insert("K0smotronControlPlane".into(), vec![o]);
            digest(&objs)
        };
        let a = with(kcp("Probing", json!(["f"])));
        let mut other_message = kcp("Probing", json!(["f"]));
        other_message["status"]["conditions"][0]["message"] = json!("y");
        assert_eq!(a, with(other_message));
        assert_ne!(a, with(kcp("Ready", json!(["f"]))));
        assert_ne!(a, with(kcp("Probing", json!([]))));
    }

    #[test]
    fn namespace_cluster_ips_and_hashes_are_masked() {
        let cm = |ns: &str, ip: &str, hash: &str| {
            let mut o = Objects {
                namespace: ns.into(),
                ..Default::default()
            };
            o.children.insert(
                "ConfigMap".into(),
                vec![json!({"metadata": {"name": "c", "annotations": {"k0smotron.io/statefulset-hash": hash}},
                    "data": {"k0s.yaml": format!("sans: [{ip}, kmc-demo.{ns}.svc]\nother: 10.0.0.1234 110.0.0.1")}})],
            );
            digest(&o)
        };
        let a = cm("chaos-a", "10.0.0.91", "abc");
        assert_eq!(a, cm("chaos-b", "10.0.0.204", "def"));
        assert!(a.contains("sans: [<cluster-ip>, kmc-demo.<ns>.svc]"), "{a}");
        // Not a /24 host address, or part of another address: left alone.
        assert!(a.contains("10.0.0.1234 110.0.0.1"), "{a}");
    }

    #[test]
    fn reminted_cas_are_reported() {
        let (pem1, _, _) = ca("kubernetes");
        let (pem2, _, _) = ca("kubernetes");
        let before = ca_fingerprints(&[secret_json("demo-ca", &[("tls.crt", &pem1)])]);
        let same = ca_fingerprints(&[secret_json("demo-ca", &[("tls.crt", &pem1)])]);
        let other = ca_fingerprints(&[secret_json("demo-ca", &[("tls.crt", &pem2)])]);
        assert!(reminted_cas(&before, &same).is_empty());
        assert_eq!(reminted_cas(&before, &other).len(), 1);
        assert!(reminted_cas(&before, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn seeded_rng_repeats_and_scenarios_differ() {
        let mut a = SeededRng::new(7, "create");
        let mut b = SeededRng::new(7, "create");
        let mut c = SeededRng::new(7, "scale");
        let xs: Vec<u64> = (0..5).map(|_| a.below(3000)).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.below(3000)).collect();
        let zs: Vec<u64> = (0..5).map(|_| c.below(3000)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert!(xs.iter().all(|x| *x < 3000));
    }
}
