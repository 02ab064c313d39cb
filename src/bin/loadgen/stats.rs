//! Measurement: latency samples and their percentiles, outcome counts, and what the processes
//! involved used (CPU from `/proc/<pid>/stat`, RSS from `/proc/<pid>/status`, load average).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Latency samples in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u32>);

impl Samples {
    /// Records one latency.
    pub fn push(&mut self, latency: Duration) {
        self.0
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    /// Adds another set.
    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The percentiles of the samples (sorted in place).
    pub fn summary(&mut self) -> Summary {
        self.0.sort_unstable();
        let at = |q: f64| -> f64 {
            if self.0.is_empty() {
                return f64::NAN;
            }
            // Nearest rank: the smallest sample with at least q of the samples at or below it.
            let rank = (q * self.0.len() as f64).ceil().max(1.0) as usize;
            f64::from(self.0[rank.min(self.0.len()) - 1]) / 1000.0
        };
        Summary {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2} ms",
            self.p50, self.p95, self.p99, self.max
        )
    }
}

/// Request outcomes: counts per HTTP status (0: no response), with one example body each.
#[derive(Debug, Default, Clone)]
pub struct Outcomes {
    /// Successful (2xx) answers.
    pub ok: u64,
    /// Everything else, by status.
    pub errors: BTreeMap<u16, (u64, String)>,
}

impl Outcomes {
    /// Records a 2xx.
    pub fn ok(&mut self) {
        self.ok += 1;
    }

    /// Records a failure with its status (0 when the request got no answer) and body.
    pub fn error(&mut self, status: u16, body: impl FnOnce() -> String) {
        let entry = self
            .errors
            .entry(status)
            .or_insert_with(|| (0, body().chars().take(300).collect()));
        entry.0 += 1;
    }

    /// Adds another set.
    pub fn merge(&mut self, other: Outcomes) {
        self.ok += other.ok;
        for (status, (count, example)) in other.errors {
            self.errors.entry(status).or_insert((0, example)).0 += count;
        }
    }

    /// Failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    /// One line per error status with its example body.
    pub fn describe_errors(&self) -> String {
        let mut out = String::new();
        for (status, (count, example)) in &self.errors {
            let label = if *status == 0 {
                "no response".to_owned()
            } else {
                format!("HTTP {status}")
            };
            let _ = writeln!(out, "    {count} × {label}: {example}");
        }
        out
    }
}

/// The CPU ticks (user + system, plus reaped children) and RSS of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStat {
    /// utime + stime + cutime + cstime, in clock ticks.
    pub ticks: u64,
    /// Its parent.
    pub ppid: u32,
}

/// `/proc/<pid>/stat`: CPU ticks and parent (`None` when the process is gone).
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3): ppid is field 4, utime..cstime fields 14..17.
    let num = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        ppid: u32::try_from(num(1)?).ok()?,
        ticks: num(11)? + num(12)? + num(13)? + num(14)?,
    })
}

/// CPU ticks of `pid` and every direct child of it (a postmaster and its backends).
pub fn tree_ticks(pid: u32) -> u64 {
    let mut total = proc_stat(pid).map_or(0, |s| s.ticks);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(stat) = proc_stat(child).filter(|s| s.ppid == pid) {
                total += stat.ticks;
            }
        }
    }
    total
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// KiB as MiB text.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// What the server, PostgreSQL and the load generator had used at one instant.
#[derive(Debug, Clone)]
pub struct Usage {
    at: Instant,
    server: Option<u64>,
    postgres: Option<u64>,
    own: u64,
    loadavg: String,
}

impl Usage {
    /// A snapshot now. `postmaster`: the PostgreSQL server whose backends to count.
    pub fn now(server: Option<u32>, postmaster: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            server: server.and_then(proc_stat).map(|s| s.ticks),
            postgres: postmaster.map(tree_ticks),
            own: proc_stat(std::process::id()).map_or(0, |s| s.ticks),
            loadavg: loadavg(),
        }
    }

    /// CPU use between `self` and `later`, as percentages of one core, and the load averages.
    pub fn report(&self, later: &Usage) -> String {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let hz = clock_ticks_per_second();
        let pct = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.0}%", b.saturating_sub(a) as f64 / hz / secs * 100.0),
            _ => "?".into(),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        format!(
            "CPU (% of one core, {cores} cores): server {}, postgres {}, loadgen {}\n  \
             load average: {} at start, {} at end",
            pct(self.server, later.server),
            pct(self.postgres, later.postgres),
            pct(Some(self.own), Some(later.own)),
            self.loadavg,
            later.loadavg
        )
    }
}
