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
