//! Issue #14 part 6: the manifests upstream k0smotron publishes are admitted by our CRDs.
//!
//! Reads upstream's repository at pinned tags straight from a git directory (a bare clone is
//! enough): every `.yaml`/`.yml` file and every fenced ```` ```yaml ```` block of a Markdown file
//! under `docs/`, `config/samples/`, `templates/`, `e2e/` and `inttest/`. clusterctl's variables
//! (`${NAME}`, `${NAME:=default}`, `${NAME:-default}`) are substituted first, as clusterctl
//! would. Every document of a kind we serve, at any version, is sent to the harness's API server
//! as a server-side dry run (`POST ?dryRun=All&fieldValidation=Strict`, what `kubectl create`
//! and a first `kubectl apply` send) twice:
//!
//! - against **our** CRDs, v1beta1 converted by our webhook, run in this process as in
//!   `conversion_webhook.rs`;
//! - against **upstream's** CRDs of the same tag, installed next to ours under a renamed group
//!   (`<group>.<tag>.upstream.test`; nothing in a schema depends on the group's name) without
//!   conversion. Upstream's webhooks cannot run here; they only refuse more, so "upstream's CRDs
//!   admit it" is a superset of what upstream's whole stack admits.
//!
//! Each document ours refuse must be listed in [`REFUSED`] with its reason, and whether
//! upstream refuses it too; the test fails on a refused document that is not listed and on a
//! stale entry (the document is admitted now, is gone, or upstream's verdict differs). Each
//! document ours admit is then created for real, read back at v1beta2 into our typed structs
//! (what the controllers read) and at its own version, where it must still hold every field it
//! was written with, and deleted.
//!
//! The upstream repository comes from `K0SMOTRON_UPSTREAM_GIT` (a git directory, e.g.
//! `/work/.mirror/k0sproject+k0smotron/repo`), the tags from `K0SMOTRON_UPSTREAM_REF`
//! (comma-separated; [`PINNED_REFS`] when unset). Without `K0SMOTRON_UPSTREAM_GIT` the test
//! proves nothing and says so loudly on stderr. Run: `eval "$(test/harness/cluster up)"`, then
//! `K0SMOTRON_UPSTREAM_GIT=... cargo test -p controlplane-provider --test upstream_manifests --
//! --include-ignored --nocapture`. docs/migration.md has the last results.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use k0smotron_api::bootstrap::v1beta2 as bootstrap;
use k0smotron_api::controlplane::v1beta2 as controlplane;
use k0smotron_api::crds;
use k0smotron_api::k0smotron::v1beta2 as standalone;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use serde_json::Value;
use test_support::TestNamespace;
use webhook::{Webhook, restore_crds, wait_injected};

/// The tags checked when `K0SMOTRON_UPSTREAM_REF` is unset: upstream's newest release (v1beta2
/// stored, v1beta1 served) and the last release of the v1beta1-only line, whose docs are what
/// users of v1beta1 wrote their manifests from.
const PINNED_REFS: &[&str] = &["v2.1.0", "v1.10.9"];
const GIT_ENV: &str = "K0SMOTRON_UPSTREAM_GIT";
const REF_ENV: &str = "K0SMOTRON_UPSTREAM_REF";
/// Where upstream keeps manifests.
const ROOTS: &[&str] = &["docs/", "config/samples/", "templates/", "e2e/", "inttest/"];
/// The suffix of the renamed groups upstream's CRDs are installed under.
const UPSTREAM_GROUP_SUFFIX: &str = "upstream.test";

/// Who refuses a document that ours refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upstream {
    /// Upstream's own CRDs refuse it too (checked here).
    CrdRefuses,
    /// Upstream's CRDs admit it (checked here); its validating webhook refuses it (read from
    /// upstream's code, not run here).
    WebhookRefuses,
}

/// A document of upstream's that ours refuse, on purpose or because upstream refuses it too.
struct Refused {
    /// The tag.
    reference: &'static str,
    /// The file, with `@blockN` for the N-th (from 0) YAML block of a Markdown file.
    source: &'static str,
    /// The document's index in that file or block, from 0.
    document: usize,
    upstream: Upstream,
    reason: &'static str,
}

/// Every document of a kind we serve that ours refuse. Each is also in docs/deviations.md.
const REFUSED: &[Refused] = &[
    Refused {
        reference: "v2.1.0",
        source: "config/samples/capi/capi-controlplane-hetzner.yaml",
        document: 1,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.service.annotations` is no field of upstream's schema either: a stale sample",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/advanced/cloud-init.md@block1",
        document: 1,
        upstream: Upstream::CrdRefuses,
        reason: "`customUserDataRef` directly in the spec at v1beta2, where it lives in `provisioner`: a stale doc",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/capi-hetzner.md@block0",
        document: 1,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.service.annotations` is no field of upstream's schema either: a stale sample",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/capi-vsphere-tmpl-cp-in-pods.yaml",
        document: 4,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.k0sVersion` is no field of upstream's schema (the version is `spec.version`): a stale doc",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/ignition-support.md@block0",
        document: 5,
        upstream: Upstream::CrdRefuses,
        reason: "`ignition` directly in the spec at v1beta2, where it lives in `provisioner`: a stale doc",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/ingress-support.md@block0",
        document: 0,
        upstream: Upstream::WebhookRefuses,
        reason: "`spec.ingress` with k0s v1.34.0: upstream's validating webhook refuses it (ingress needs v1.34.1 or newer on the 1.34 line); ours is that rule as CEL in the CRD",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/ingress-support.md@block1",
        document: 0,
        upstream: Upstream::WebhookRefuses,
        reason: "`spec.ingress` with k0s v1.34.0: upstream's validating webhook refuses it (ingress needs v1.34.1 or newer on the 1.34 line); ours is that rule as CEL in the CRD",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/join-nodes.md@block0",
        document: 0,
        upstream: Upstream::CrdRefuses,
        reason: "v1beta1's `spec.clusterRef` at v1beta2, whose field is `spec.clusterName`: a stale doc",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/update/hcp-autopilot.md@block0",
        document: 0,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.k0sImage` is no field of upstream's schema (the image is `spec.image`): a stale doc",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/update/update-standalone.md@block0",
        document: 0,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.k0sImage` is no field of upstream's schema (the image is `spec.image`): a stale doc",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/update/update-standalone.md@block1",
        document: 0,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.k0sImage` is no field of upstream's schema (the image is `spec.image`): a stale doc",
    },
    Refused {
        reference: "v2.1.0",
        source: "docs/windows-workers.md@block1",
        document: 6,
        upstream: Upstream::CrdRefuses,
        reason: "v1beta2's `provisioner` at v1beta1, which has no such field",
    },
    Refused {
        reference: "v2.1.0",
        source: "e2e/data/infrastructure-docker/main/cluster-template-remote-hcp/hcp-with-external-cluster-patch.yaml",
        document: 0,
        upstream: Upstream::CrdRefuses,
        reason: "a kustomize patch at v1beta1 naming v1beta2's `remoteHostCluster`, which v1beta1 lacks",
    },
    Refused {
        reference: "v1.10.9",
        source: "docs/capi-vsphere-tmpl-cp-in-pods.yaml",
        document: 4,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.k0sVersion` is no field of upstream's schema (the version is `spec.version`): a stale doc",
    },
    Refused {
        reference: "v1.10.9",
        source: "docs/update/hcp-autopilot.md@block0",
        document: 0,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.k0sImage` is no field of upstream's schema (the image is `spec.image`): a stale doc",
    },
    Refused {
        reference: "v1.10.9",
        source: "docs/update/update-standalone.md@block0",
        document: 0,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.k0sImage` is no field of upstream's schema (the image is `spec.image`): a stale doc",
    },
    Refused {
        reference: "v1.10.9",
        source: "docs/update/update-standalone.md@block1",
        document: 0,
        upstream: Upstream::CrdRefuses,
        reason: "`spec.k0sImage` is no field of upstream's schema (the image is `spec.image`): a stale doc",
    },
];

/// A document (`source#index`) that names a kind of ours but is not YAML once substituted
/// (`…` ellipses and the like): nothing anyone can apply. (tag, document, why). Listed so
/// that the list goes stale, and fails, when upstream fixes it.
const NOT_YAML: &[(&str, &str, &str)] = &[
    (
        "v2.1.0",
        "docs/capi-remote.md@block4#1",
        "an excerpt ending in `… # other objects omitted for brevity`",
    ),
    (
        "v1.10.9",
        "docs/capi-remote.md@block4#1",
        "an excerpt ending in `… # other objects omitted for brevity`",
    ),
];

/// A kind we serve: its group, plural and served versions.
#[derive(Debug, Clone)]
struct Served {
    group: String,
    kind: String,
    plural: String,
    versions: BTreeSet<String>,
}

/// One document of upstream's, substituted and parsed.
#[derive(Debug, Clone)]
struct Document {
    reference: String,
    source: String,
    index: usize,
    object: Value,
}

impl Document {
    fn id(&self) -> String {
        format!("{} {}#{}", self.reference, self.source, self.index)
    }
    fn api_version(&self) -> (&str, &str) {
        let av = self.object["apiVersion"].as_str().unwrap_or_default();
        av.split_once('/').unwrap_or(("", av))
    }
    fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
}

/// `git` on the upstream directory; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("git {args:?}: not UTF-8: {e}"))
}

fn git_dir(dir: &Path) -> PathBuf {
    // A bare repository is its own git directory; a checkout has one in `.git`.
    let dotgit = dir.join(".git");
    if dotgit.exists() {
        dotgit
    } else {
        dir.to_owned()
    }
}

/// clusterctl's substitution: `${NAME}`, `${NAME:=default}`, `${NAME:-default}` (and the
/// forms without the colon). A variable without a default gets a value fit for its name.
fn substitute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = &after[..end];
        let name_len = expr
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(expr.len());
        let (name, op) = expr.split_at(name_len);
        let default = [":=", ":-", "=", "-"]
            .iter()
            .find_map(|p| op.strip_prefix(p));
        if name.is_empty() || (default.is_none() && !op.is_empty()) {
            // Not a variable of clusterctl's (a shell expression in a script): left alone.
            out.push_str("${");
            rest = after;
            continue;
        }
        out.push_str(&default.map_or_else(|| value_for(name), str::to_owned));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// What a user would set `name` to.
fn value_for(name: &str) -> String {
    let value = match name {
        "KUBERNETES_VERSION" | "KUBE_VERSION" | "VERSION" => "v1.34.1",
        n if n.contains("VERSION") => "v1.34.1+k0s.0",
        n if n.ends_with("_COUNT") || n.ends_with("REPLICAS") => "1",
        n if n.ends_with("_PORT") => "6443",
        n if n.ends_with("_IP") || n.ends_with("_HOST") || n.ends_with("_ADDRESS") => "192.0.2.10",
        "NAMESPACE" => "default",
        n => return format!("placeholder-{}", n.to_ascii_lowercase().replace('_', "-")),
    };
    value.to_owned()
}

/// The fenced YAML blocks of a Markdown text, each unindented by its lines' common
/// indentation (a block inside a list item), as a reader copies it.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                let info = trimmed.strip_prefix("```").map(str::trim);
                if let Some(info) = info
                    && (info.starts_with("yaml") || info.starts_with("yml"))
                {
                    open = Some(Vec::new());
                }
            }
            Some(lines) => {
                if trimmed.starts_with("```") {
                    blocks.push(dedent(lines));
                    open = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    blocks
}

fn dedent(lines: &[&str]) -> String {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in lines {
        out.push_str(line.get(indent..).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// The YAML documents of a text (split at `---` lines, so one broken document does not hide
/// the others), numbered from 0 as a YAML parser numbers them.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") || line.starts_with("---\t") {
            docs.push(String::new());
        } else {
            let last = docs.last_mut().unwrap();
            last.push_str(line);
            last.push('\n');
        }
    }
    // A text that starts with `---` has no document before it.
    if text.starts_with("---") {
        docs.remove(0);
    }
    docs
}

/// A YAML document as the API machinery reads it: a repeated key keeps its last value.
fn parse(text: &str) -> Result<Value, serde_saphyr::Error> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::LastWins;
    serde_saphyr::from_str_with_options(text, options)
}

/// Every text of manifests at `reference`: (source, text).
fn texts(dir: &Path, reference: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in git(dir, &["ls-tree", "-r", "--name-only", reference]).lines() {
        if !ROOTS.iter().any(|r| path.starts_with(r)) {
            continue;
        }
        let yaml = path.ends_with(".yaml") || path.ends_with(".yml");
        let markdown = path.ends_with(".md");
        if !yaml && !markdown {
            continue;
        }
        let text = git(dir, &["show", &format!("{reference}:{path}")]);
        if yaml {
            out.push((path.to_owned(), text));
        } else {
            for (i, block) in yaml_blocks(&text).into_iter().enumerate() {
                out.push((format!("{path}@block{i}"), block));
            }
        }
    }
    out
}

/// The path part of a source (`docs/x.md@block2` → `docs/x.md`).
fn file_of(source: &str) -> &str {
    source.split_once("@block").map_or(source, |(f, _)| f)
}

/// What [`extract`] found at one tag.
#[derive(Default)]
struct Extracted {
    /// Documents whose group is one of ours and whose kind we serve.
    ours: Vec<Document>,
    /// Documents of our groups whose kind we do not serve, by `kind group`.
    unserved: BTreeMap<String, usize>,
    /// All other documents (CAPI's, infrastructure providers', Kubernetes').
    others: usize,
    /// Documents (`source#index`) that are not YAML once substituted and name a kind of ours.
    not_yaml: Vec<(String, String)>,
}

fn extract(dir: &Path, reference: &str, served: &[Served]) -> Extracted {
    let groups: BTreeSet<&str> = served.iter().map(|s| s.group.as_str()).collect();
    let kinds: BTreeSet<&str> = served.iter().map(|s| s.kind.as_str()).collect();
    let mut found = Extracted::default();
    for (source, text) in texts(dir, reference) {
        for (index, text) in documents(&substitute(&text)).into_iter().enumerate() {
            let object = match parse(&text) {
                Ok(object) => object,
                Err(err) => {
                    let ours = text.lines().any(|l| {
                        l.trim()
                            .strip_prefix("kind:")
                            .is_some_and(|k| kinds.contains(k.trim()))
                    });
                    if ours {
                        let first = err
                            .to_string()
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        found.not_yaml.push((format!("{source}#{index}"), first));
                    }
                    continue;
                }
            };
            let doc = Document {
                reference: reference.to_owned(),
                source: source.clone(),
                index,
                object,
            };
            if !doc.object.is_object() {
                continue;
            }
            let (group, _) = doc.api_version();
            if !groups.contains(group) {
                found.others += 1;
            } else if served
                .iter()
                .any(|s| s.group == group && s.kind == doc.kind())
            {
                found.ours.push(doc);
            } else {
                *found
                    .unserved
                    .entry(format!("{} {group}", doc.kind()))
                    .or_default() += 1;
            }
        }
    }
    found
}

fn served_kinds() -> Vec<Served> {
    crds::all()
        .into_iter()
        .map(|crd| Served {
            group: crd.spec.group.clone(),
            kind: crd.spec.names.kind.clone(),
            plural: crd.spec.names.plural.clone(),
            versions: crd
                .spec
                .versions
                .iter()
                .filter(|v| v.served)
                .map(|v| v.name.clone())
                .collect(),
        })
        .collect()
}

/// The group upstream's CRDs of `reference` are installed under.
fn upstream_group(group: &str, reference: &str) -> String {
    format!(
        "{group}.{}.{UPSTREAM_GROUP_SUFFIX}",
        reference.replace(['.', '+', '_'], "-").to_ascii_lowercase()
    )
}

/// Upstream's CRDs of the kinds we serve at `reference`, renamed into their own groups and
/// installed; the CRDs.
async fn install_upstream_crds(
    client: &Client,
    dir: &Path,
    reference: &str,
    served: &[Served],
    scratch: &Path,
) -> Vec<String> {
    let mut names = Vec::new();
    for path in git(dir, &["ls-tree", "-r", "--name-only", reference]).lines() {
        if !(path.contains("/crd/bases/") && path.ends_with(".yaml")) {
            continue;
        }
        let text = git(dir, &["show", &format!("{reference}:{path}")]);
        let mut crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("upstream CRD {reference}:{path}: {e}"));
        let group = crd.spec.group.clone();
        let kind = crd.spec.names.kind.clone();
        if !served.iter().any(|s| s.group == group && s.kind == kind) {
            continue;
        }
        let renamed = upstream_group(&group, reference);
        let name = format!("{}.{renamed}", crd.spec.names.plural);
        crd.spec.group = renamed;
        crd.spec.conversion = None;
        crd.metadata = kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        };
        crd.status = None;
        let file = scratch.join(format!("{name}.yaml"));
        std::fs::write(&file, serde_json::to_vec(&crd).unwrap()).unwrap();
        test_support::apply_crd_file(client, &file)
            .await
            .unwrap_or_else(|e| panic!("installing upstream's {reference}:{path}: {e:?}"));
        names.push(name);
    }
    names
}

/// POSTs `object` to `group/version/plural` in `ns` with strict field validation; `dry` for a
/// server-side dry run. The API server's refusal as text.
async fn post(
    client: &Client,
    ns: &str,
    (group, version, plural): (&str, &str, &str),
    object: &Value,
    dry: bool,
) -> Result<Value, String> {
    let url = format!("/apis/{group}/{version}/namespaces/{ns}/{plural}");
    let params = PostParams {
        dry_run: dry,
        ..PostParams::default()
    };
    let body = serde_json::to_vec(object).unwrap();
    let build = || {
        let mut request = kube::core::Request::new(&url)
            .create(&params, body.clone())
            .unwrap();
        let uri = request.uri().to_string();
        let sep = if uri.contains('?') { '&' } else { '?' };
        *request.uri_mut() = format!("{uri}{sep}fieldValidation=Strict").parse().unwrap();
        request
    };
    // The API server serves a just-injected CA bundle (or a just-created CRD) a moment later;
    // an error that is not a refusal of the object is retried.
    let mut attempts = 0;
    loop {
        match client.request::<Value>(build()).await {
            Ok(value) => return Ok(value),
            Err(kube::Error::Api(status))
                if (status.code >= 500 || status.code == 404) && attempts < 20 =>
            {
                attempts += 1;
                eprintln!(
                    "{group}/{version} {plural}: retrying after {}",
                    status.message
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(kube::Error::Api(status)) => return Err(status.message.replace('\n', " ")),
            Err(err) => return Err(err.to_string()),
        }
    }
}

/// The object to send: in the test namespace, named if it has no name.
fn prepared(doc: &Document, ns: &str, n: usize) -> Value {
    let mut object = doc.object.clone();
    if !object["metadata"].is_object() {
        object["metadata"] = Value::Object(serde_json::Map::new());
    }
    let metadata = object["metadata"].as_object_mut().unwrap();
    metadata.insert("namespace".to_owned(), Value::String(ns.to_owned()));
    if !metadata.get("name").is_some_and(Value::is_string) {
        metadata.remove("generateName");
        metadata.insert("name".to_owned(), Value::String(format!("doc-{n}")));
    }
    object
}

/// Where `actual` lacks a field of `expected` or has another value: objects compared key by
/// key, everything else exactly.
fn missing(actual: &Value, expected: &Value, path: &str, out: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, value) in expected {
                let inner = format!("{path}.{key}");
                match actual.get(key) {
                    Some(found) => missing(found, value, &inner, out),
                    // Written as null: absent is the same.
                    None if value.is_null() => {}
                    None => out.push(format!("{inner} missing")),
                }
            }
        }
        (a, e) if a == e => {}
        // A null written where the schema defaults the field, or an empty object for a null.
        (_, Value::Null) => {}
        (a, e) => out.push(format!("{path}: {e} became {a}")),
    }
}

/// Creates `object` (admitted by the dry run) for real, reads it back at v1beta2 into our typed
/// structs and at its own version, and deletes it. What went wrong, if anything.
async fn read_back(
    client: &Client,
    ns: &str,
    served: &Served,
    version: &str,
    object: &Value,
) -> Vec<String> {
    let mut problems = Vec::new();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let coords = (served.group.as_str(), version, served.plural.as_str());
    if let Err(err) = post(client, ns, coords, object, false).await {
        return vec![format!("admitted by the dry run, refused on create: {err}")];
    }
    let api = |version: &str| -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(&served.group, version, &served.kind);
        Api::namespaced_with(
            client.clone(),
            ns,
            &ApiResource::from_gvk_with_plural(&gvk, &served.plural),
        )
    };
    match api("v1beta2").get(&name).await {
        Ok(stored) => {
            let stored = serde_json::to_value(&stored).unwrap();
            let typed = match served.kind.as_str() {
                "K0smotronControlPlane" => {
                    serde_json::from_value::<controlplane::K0smotronControlPlane>(stored).err()
                }
                "K0smotronControlPlaneTemplate" => {
                    serde_json::from_value::<controlplane::K0smotronControlPlaneTemplate>(stored)
                        .err()
                }
                "K0sWorkerConfig" => {
                    serde_json::from_value::<bootstrap::K0sWorkerConfig>(stored).err()
                }
                "K0sWorkerConfigTemplate" => {
                    serde_json::from_value::<bootstrap::K0sWorkerConfigTemplate>(stored).err()
                }
                "Cluster" => serde_json::from_value::<standalone::Cluster>(stored).err(),
                "JoinTokenRequest" => {
                    serde_json::from_value::<standalone::JoinTokenRequest>(stored).err()
                }
                other => panic!("no typed read-back for {other}: add it"),
            };
            if let Some(err) = typed {
                problems.push(format!("read at v1beta2, not our {}: {err}", served.kind));
            }
        }
        Err(err) => problems.push(format!("read at v1beta2: {err}")),
    }
    let other = if version == "v1beta2" {
        "v1beta1"
    } else {
        "v1beta2"
    };
    if served.versions.contains(other)
        && let Err(err) = api(other).get(&name).await
    {
        problems.push(format!("read at {other}: {err}"));
    }
    match api(version).get(&name).await {
        Ok(back) => {
            let back = serde_json::to_value(&back).unwrap();
            let mut lost = Vec::new();
            for field in ["spec", "metadata"] {
                let mut expected = object[field].clone();
                if field == "metadata" {
                    expected = serde_json::json!({
                        "labels": expected["labels"], "annotations": expected["annotations"]
                    });
                }
                missing(&back[field], &expected, field, &mut lost);
            }
            if !lost.is_empty() {
                problems.push(format!("read back at {version}: {}", lost.join("; ")));
            }
        }
        Err(err) => problems.push(format!("read back at {version}: {err}")),
    }
    if let Err(err) = api("v1beta2").delete(&name, &DeleteParams::default()).await {
        problems.push(format!("delete: {err}"));
    }
    problems
}

/// Writes to stderr past libtest's capture: a skipped run must be seen.
fn loud(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test harness (test/harness/cluster up) and K0SMOTRON_UPSTREAM_GIT"]
async fn upstream_manifests_are_admitted_at_v1beta1_and_v1beta2() {
    let Some(dir) = std::env::var_os(GIT_ENV) else {
        loud(&format!(
            "\n{bar}\nSKIPPED upstream_manifests: {GIT_ENV} is unset, so NOTHING was checked.\n\
             Point it at a git directory of github.com/k0sproject/k0smotron (a bare clone is\n\
             enough; test/run-all.sh sets it when /work/.mirror/k0sproject+k0smotron/repo exists).\n{bar}\n\n",
            bar = "!".repeat(78)
        ));
        return;
    };
    let dir = git_dir(Path::new(&dir));
    let refs: Vec<String> = std::env::var(REF_ENV).map_or_else(
        |_| PINNED_REFS.iter().map(|r| (*r).to_owned()).collect(),
        |v| {
            v.split(',')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect()
        },
    );
    let served = served_kinds();

    let ns = TestNamespace::create("upstream").await.unwrap();
    let client = ns.client();
    test_support::apply_crd_dir(
        &client,
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/crd/bases"),
    )
    .await
    .unwrap();
    let webhook = Webhook::start(&client, ns.name()).await;
    wait_injected(&client, ns.name()).await;
    let scratch = std::env::temp_dir().join(test_support::unique_name("upstream-crds"));
    std::fs::create_dir_all(&scratch).unwrap();

    let mut failures: Vec<String> = Vec::new();
    // Per document (printed through libtest's capture: seen on failure and with --nocapture),
    // and per tag (always seen).
    let mut report = String::new();
    let mut summary = String::new();
    let mut upstream_crds = Vec::new();
    let mut seen: BTreeSet<(String, String, usize)> = BTreeSet::new();
    let mut n = 0;
    let mut read_back_count = 0;
    for reference in &refs {
        let commit = git(&dir, &["rev-parse", &format!("{reference}^{{commit}}")]);
        let found = extract(&dir, reference, &served);
        upstream_crds
            .extend(install_upstream_crds(&client, &dir, reference, &served, &scratch).await);
        let files: BTreeSet<String> = git(&dir, &["ls-tree", "-r", "--name-only", reference])
            .lines()
            .map(str::to_owned)
            .collect();

        let (mut admitted, mut listed, mut upstream_refused, mut lenient) = (0, 0, 0, 0);
        let mut by_version: BTreeMap<String, usize> = BTreeMap::new();
        for doc in &found.ours {
            n += 1;
            let (group, version) = doc.api_version();
            let kind = served
                .iter()
                .find(|s| s.group == group && s.kind == doc.kind())
                .unwrap();
            *by_version.entry(version.to_owned()).or_default() += 1;
            let object = prepared(doc, ns.name(), n);
            let ours = post(
                &client,
                ns.name(),
                (group, version, &kind.plural),
                &object,
                true,
            )
            .await;
            let mut renamed = object.clone();
            let upstream_group = upstream_group(group, reference);
            renamed["apiVersion"] = Value::String(format!("{upstream_group}/{version}"));
            let upstream = post(
                &client,
                ns.name(),
                (&upstream_group, version, &kind.plural),
                &renamed,
                true,
            )
            .await;
            let entry = REFUSED.iter().find(|r| {
                r.reference == reference && r.source == doc.source && r.document == doc.index
            });
            if entry.is_some() {
                seen.insert((reference.clone(), doc.source.clone(), doc.index));
            }
            let verdict = |r: &Result<Value, String>| match r {
                Ok(_) => "admitted".to_owned(),
                Err(e) => format!("refused: {}", e.chars().take(300).collect::<String>()),
            };
            writeln!(
                report,
                "{} {} {version}\n    ours: {}\n    upstream's CRDs: {}",
                doc.id(),
                doc.kind(),
                verdict(&ours),
                verdict(&upstream)
            )
            .unwrap();
            if upstream.is_err() {
                upstream_refused += 1;
            }
            match (&ours, entry) {
                (Ok(_), None) => {
                    admitted += 1;
                    read_back_count += 1;
                    if upstream.is_err() {
                        lenient += 1;
                    }
                    for problem in read_back(&client, ns.name(), kind, version, &object).await {
                        failures.push(format!("{}: {problem}", doc.id()));
                    }
                }
                (Ok(_), Some(_)) => failures.push(format!(
                    "{}: listed in REFUSED but admitted now: remove the entry (and its line in \
                     docs/deviations.md)",
                    doc.id()
                )),
                (Err(err), None) => failures.push(format!(
                    "{}: {} {version} refused by ours ({}; upstream's CRDs: {}): fix our CRDs, or \
                     list it in REFUSED with its reason",
                    doc.id(),
                    doc.kind(),
                    err,
                    verdict(&upstream)
                )),
                (Err(_), Some(entry)) => {
                    listed += 1;
                    writeln!(report, "    listed: {:?}: {}", entry.upstream, entry.reason).unwrap();
                    let upstream_refuses = upstream.is_err();
                    if upstream_refuses != (entry.upstream == Upstream::CrdRefuses) {
                        failures.push(format!(
                            "{}: listed as {:?}, but upstream's CRDs {}",
                            doc.id(),
                            entry.upstream,
                            verdict(&upstream)
                        ));
                    }
                }
            }
        }
        for entry in REFUSED.iter().filter(|r| r.reference == reference) {
            if !files.contains(file_of(entry.source)) {
                failures.push(format!(
                    "REFUSED entry {} {}#{}: no such file at {reference} any more",
                    entry.reference, entry.source, entry.document
                ));
            } else if !seen.contains(&(reference.clone(), entry.source.to_owned(), entry.document))
            {
                failures.push(format!(
                    "REFUSED entry {} {}#{}: no such document of a kind we serve",
                    entry.reference, entry.source, entry.document
                ));
            }
        }
        for (source, err) in &found.not_yaml {
            if !NOT_YAML
                .iter()
                .any(|(r, s, _)| r == reference && s == source)
            {
                failures.push(format!(
                    "{reference} {source}: mentions a kind of ours but is not YAML ({err}): \
                     list it in NOT_YAML with why"
                ));
            }
            writeln!(report, "{reference} {source}: not YAML: {err}").unwrap();
        }
        for (r, source, _) in NOT_YAML.iter().filter(|(r, _, _)| r == reference) {
            if !found.not_yaml.iter().any(|(s, _)| s == source) {
                failures.push(format!(
                    "NOT_YAML entry {r} {source}: parses now, or is gone"
                ));
            }
        }
        let unserved: Vec<String> = found
            .unserved
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        writeln!(
            summary,
            "{reference} ({}): {} documents of kinds we serve ({}); ours admit {admitted}, \
             refuse {listed} listed in REFUSED; upstream's CRDs refuse {upstream_refused}, \
             {lenient} of which ours admit; {} not YAML; out of scope: {} of our groups' kinds \
             we do not serve ({}), {} of other groups",
            commit.trim(),
            found.ours.len(),
            by_version
                .iter()
                .map(|(v, c)| format!("{c} at {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            found.not_yaml.len(),
            found.unserved.values().sum::<usize>(),
            unserved.join(", "),
            found.others,
        )
        .unwrap();
    }

    webhook.stop().await;
    restore_crds(&client).await;
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in upstream_crds {
        let _ = crd_api.delete(&name, &DeleteParams::default()).await;
    }
    let _ = std::fs::remove_dir_all(&scratch);

    println!("upstream manifests from {}:\n{report}", dir.display());
    loud(&format!(
        "\nupstream manifests from {}:\n{summary}{read_back_count} admitted documents created, \
         read back at v1beta2 into our types and at their own version, deleted\n",
        dir.display()
    ));
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn clusterctl_variables_are_substituted_with_defaults_or_values_of_their_shape() {
    assert_eq!(
        substitute("name: ${CLUSTER_NAME}\nreplicas: ${CONTROL_PLANE_MACHINE_COUNT}"),
        "name: placeholder-cluster-name\nreplicas: 1"
    );
    assert_eq!(
        substitute("cidr: ${POD_CIDR:=[\"192.168.0.0/16\"]} user: ${USER:-root} ${A=b}"),
        "cidr: [\"192.168.0.0/16\"] user: root b"
    );
    assert_eq!(
        substitute("version: ${KUBERNETES_VERSION}+k0s.0 k0s: ${K0S_VERSION}"),
        "version: v1.34.1+k0s.0 k0s: v1.34.1+k0s.0"
    );
    // Shell expressions and unterminated ones are left alone.
    assert_eq!(substitute("${x#y} ${A:?e} ${B"), "${x#y} ${A:?e} ${B");
}

#[test]
fn yaml_blocks_are_found_in_lists_and_dedented() {
    let markdown = "text\n```yaml\na: 1\n```\n\n1. step\n\n   ```yml\n    ---\n    b:\n      c: 2\n   ```\n```bash\nd: 3\n```\n";
    assert_eq!(yaml_blocks(markdown), vec!["a: 1\n", "---\nb:\n  c: 2\n"]);
}

#[test]
fn documents_are_numbered_as_a_yaml_parser_numbers_them() {
    assert_eq!(documents("a: 1\n---\nb: 2\n"), vec!["a: 1\n", "b: 2\n"]);
    assert_eq!(
        documents("---\na: 1\n--- # x\nb: 2\n"),
        vec!["a: 1\n", "b: 2\n"]
    );
    assert_eq!(
        parse("a: 1\na: 2\n").unwrap(),
        serde_json::json!({"a": 2}),
        "a repeated key keeps its last value"
    );
}
