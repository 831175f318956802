//! Reads the kube-apiserver audit log (`HARNESS_AUDIT_LOG=1`) as it grows and counts the requests
//! of one user (the provider's client certificate CN) by verb and resource.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::Value;

pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

pub struct Audit {
    path: PathBuf,
    user: String,
    offset: u64,
    partial: Vec<u8>,
    seen: HashSet<String>,
    /// Requests since the last `take`, "verb resource[/subresource]" → count.
    counts: BTreeMap<String, u64>,
    /// When the reader last saw a write by the user.
    pub last_write: Option<Instant>,
}

impl Audit {
    /// Starts at the end of the log: only requests from now on count.
    pub fn open(path: PathBuf, user: String) -> anyhow::Result<Self> {
        let offset = std::fs::metadata(&path)
            .with_context(|| {
                format!(
                    "audit log {} (was the harness up with HARNESS_AUDIT_LOG=1?)",
                    path.display()
                )
            })?
            .len();
        Ok(Self {
            path,
            user,
            offset,
            partial: Vec::new(),
            seen: HashSet::new(),
            counts: BTreeMap::new(),
            last_write: None,
        })
    }

    /// Reads what was appended since the last call.
    pub fn poll(&mut self) -> anyhow::Result<()> {
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last_nl) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        let rest = self.partial.split_off(last_nl + 1);
        let lines = std::mem::replace(&mut self.partial, rest);
        let now = Instant::now();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(ev) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            if ev.pointer("/user/username").and_then(Value::as_str) != Some(self.user.as_str()) {
                continue;
            }
            // A watch is logged when it starts and when it ends; count each request once.
            let id = ev
                .get("auditID")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !self.seen.insert(id) {
                continue;
            }
            let verb = ev.get("verb").and_then(Value::as_str).unwrap_or("?");
            let resource = match (
                ev.pointer("/objectRef/resource").and_then(Value::as_str),
                ev.pointer("/objectRef/subresource").and_then(Value::as_str),
            ) {
                (Some(r), Some(sub)) => format!("{r}/{sub}"),
                (Some(r), None) => r.to_string(),
                _ => ev
                    .get("requestURI")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
            };
            if WRITE_VERBS.contains(&verb) {
                self.last_write = Some(now);
            }
            *self.counts.entry(format!("{verb} {resource}")).or_default() += 1;
        }
        Ok(())
    }

    /// The counts since the last `take` (after a final `poll`).
    pub fn take(&mut self) -> anyhow::Result<BTreeMap<String, u64>> {
        self.poll()?;
        Ok(std::mem::take(&mut self.counts))
    }
}

pub fn writes(counts: &BTreeMap<String, u64>) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| WRITE_VERBS.iter().any(|v| k.split(' ').next() == Some(*v)))
        .map(|(_, n)| n)
        .sum()
}
