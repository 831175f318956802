//! Samples the provider's memory and CPU from `/proc` (the process and its descendants) every
//! 200 ms, so any `BENCH_PROVIDER_CMD` is measured the same way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on every Linux we run).
const TICKS: f64 = 100.0;

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub rss_kib: u64,
    pub cpu_s: f64,
}

#[derive(Default)]
struct Inner {
    last: Sample,
    peak_rss_kib: u64,
}

#[derive(Clone)]
pub struct Sampler {
    pid: u32,
    inner: Arc<Mutex<Inner>>,
}

fn read_one(pid: u32) -> Option<(u64, f64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state ppid ... utime (14th field) stime (15th).
    let ppid: u32 = f.get(1)?.parse().ok()?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Some((rss, (utime + stime) / TICKS, ppid))
}

/// The process and every descendant.
fn sample(root: u32) -> Option<Sample> {
    let (rss, cpu, _) = read_one(root)?;
    let mut total = Sample {
        rss_kib: rss,
        cpu_s: cpu,
    };
    let mut procs = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some((rss, cpu, ppid)) = read_one(pid)
            {
                procs.push((pid, ppid, rss, cpu));
            }
        }
    }
    let mut tree = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid, rss, cpu) in &procs {
            if tree.contains(ppid) && !tree.contains(pid) {
                tree.push(*pid);
                total.rss_kib += rss;
                total.cpu_s += cpu;
                grew = true;
            }
        }
    }
    Some(total)
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let s = Self {
            pid,
            inner: Arc::default(),
        };
        let bg = s.clone();
        tokio::spawn(async move {
            loop {
                bg.tick();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        s
    }

    fn tick(&self) {
        if let Some(now) = sample(self.pid) {
            let mut i = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            i.last = now;
            i.peak_rss_kib = i.peak_rss_kib.max(now.rss_kib);
        }
    }

    /// A fresh sample, and the peak RSS sampled since the last call (then reset).
    pub fn take(&self) -> (Sample, u64) {
        self.tick();
        let mut i = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let peak = i.peak_rss_kib;
        i.peak_rss_kib = i.last.rss_kib;
        (i.last, peak)
    }

    pub fn alive(&self) -> bool {
        std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// CPU seconds used so far by the harness's API server and etcd (each with its descendants),
/// read from the harness's pid files, and by the whole machine (`/proc/stat`: everything but
/// idle and iowait). Compared at the start and end of a phase, they say where the machine's CPU
/// went while the provider or the floor wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerCpu {
    pub api_server_s: f64,
    pub etcd_s: f64,
    pub machine_s: f64,
}

fn harness_pid(name: &str) -> Option<u32> {
    let dir = std::env::var_os("HARNESS_DIR")?;
    let path = std::path::Path::new(&dir)
        .join("run")
        .join(format!("{name}.pid"));
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn machine_busy_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<f64> = cpu
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = f.iter().take(8).sum::<f64>() - f.get(3)? - f.get(4)?;
    Some(busy / TICKS)
}

impl ServerCpu {
    /// Now, or `None` outside a harness (no `HARNESS_DIR` or no pid files).
    pub fn now() -> Option<Self> {
        let cpu_of = |name| harness_pid(name).and_then(sample).map(|s| s.cpu_s);
        Some(Self {
            api_server_s: cpu_of("kube-apiserver")?,
            etcd_s: cpu_of("etcd")?,
            machine_s: machine_busy_s()?,
        })
    }

    /// What was used from `self` to `later`, as JSON figures (with the machine's share of its
    /// `cores` over `wall_s`).
    pub fn since(&self, later: &Self, wall_s: f64, cores: f64) -> serde_json::Value {
        let round = |v: f64| (v * 10.0).round() / 10.0;
        let machine = later.machine_s - self.machine_s;
        serde_json::json!({
            "api_server_cpu_s": round(later.api_server_s - self.api_server_s),
            "etcd_cpu_s": round(later.etcd_s - self.etcd_s),
            "machine_cpu_s": round(machine),
            "machine_busy_pct": round(100.0 * machine / (wall_s * cores).max(f64::EPSILON)),
        })
    }
}
