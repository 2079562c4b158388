//! The engine bench: taskrunner's scheduler core against its peers, **in the same run**, so that
//! every claim is a ratio measured side by side on the same machine state.
//!
//! Every workload runs all its peers in rounds that interleave them (round 1: every peer, round
//! 2: every peer, ...; the first peer rotates each round so no peer always runs first), after
//! one untimed warm-up per peer. Each peer's result is its median over rounds; the ratio is
//! taskrunner / peer, oriented so that **> 1 means taskrunner is better** (for latencies and
//! bytes: peer / taskrunner). Every workload checks its own correctness (counts, FIFO order per
//! strand, no early timer) and panics instead of reporting a number when something is wrong.
//!
//! | id | what | metric |
//! |---|---|---|
//! | A | 1M tiny tasks posted from one thread to a pool | tasks/s |
//! | B | 1000 sequences × 1000 tasks, posted round-robin | tasks/s |
//! | G | 1M tasks over S sequences, S = 1k, 10k, 100k, 1M | tasks/s |
//! | C | ping-pong between two strands, each round trip timed | p50, p99 |
//! | H | post a task with a result and block on it, one at a time | p50, mean |
//! | D | delayed posts: cost of posting; lateness of 1000 timers | ns/post; p50, p99 |
//! | E | bytes per queued task and per idle sequence (child process) | bytes |
//! | F | time to start a `UserBlocking` task behind a saturating backlog | p50, p99 |
//! | async | ping-pong between two async actors (`post_future` vs `tokio::spawn`) | mean, p50 |
//!
//! Environment: `BENCH_WORKERS` (default 2), `BENCH_ROUNDS` (default 5), `BENCH_ONLY=A,C,...`,
//! `BENCH_QUICK=1` (sizes ÷10 to ÷100: a smoke run, not a measurement), `BENCH_JSON` (default
//! `target/engine-bench/results.json`). `cargo bench` passes `--bench`; without it (`cargo test
//! --benches`, or the binary run by hand) or with `--test`, only a quick A runs and no JSON is
//! written; with `--list` nothing runs.
//!
//! Output: a table per metric on stdout, and JSON:
//! `{"machine": {nproc, workers, rounds, quick, date, loadavg_start, loadavg_end},
//! "workloads": [{id, group, name, metric, unit, higher_is_better, baseline, goal,
//! loadavg: [[1m, 5m, 15m] at start, [..] at end], peers: [{name, role, rounds, median, min, max,
//! ratio}], derived: [{name, value, goal, met}]}]}`. `role` is "baseline", "peer", or "variant"
//! (another taskrunner configuration, compared through `derived`). `scripts/perf_chart.py`
//! draws the ratios.
//!
//! E needs a counting global allocator, which is process-wide: the binary re-executes itself
//! with `ENGINE_BENCH_CHILD=memory`, and only that child process counts. In the parent the
//! allocator forwards to `System` after one relaxed load of a flag that is never written.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
// The counting allocator is the one place that needs `unsafe` (`GlobalAlloc` is an unsafe trait),
// as in benches/memory.rs; Cargo.toml denies rather than forbids `unsafe_code` for this reason.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    rayon_pool, tokio_runtime, DelayedExecutor, Executor, Floor, Gate, HeapTimerFloor, Latch,
    OnPool, RayonSpawn, RayonSpawnFifo, Strand, StrandExecutor, Taskrunner, TaskrunnerRunner,
    ThreadPoolCrate, TokioActors, TokioSleep, TokioSpawn, XorShift,
};
use parking_lot::Mutex;
use taskrunner::PostTask;
use taskrunner::{SequencedTaskRunner, TaskPriority, TaskTraits, ThreadPool};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

// ---- the counting allocator (workload E, child process only) ----------------------------------

/// Counts live requested bytes (`Layout::size`, without malloc's own overhead) while `COUNTING`
/// is set, and always defers to `System`.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);

#[inline]
fn counted(bytes: i64) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(bytes, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so this
// allocator returns exactly what `System` returns and upholds `GlobalAlloc`'s contract as
// `System` does; the counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller guarantees `layout` has a non-zero size (GlobalAlloc::alloc).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            counted(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`: the caller guarantees a non-zero size.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            counted(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator (hence from `System`,
        // which did the actual allocation) with this same `layout`.
        unsafe { System.dealloc(ptr, layout) };
        counted(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` was allocated by this allocator (so by `System`)
        // with `layout`, and that `new_size` is non-zero and does not overflow when rounded
        // up to `layout.align()`; `System.realloc` has exactly that contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            counted(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The environment variable that makes this binary the memory child (workload E).
const CHILD_ENV: &str = "ENGINE_BENCH_CHILD";

// ---- configuration ------------------------------------------------------------------------------

type WorkloadFn = fn(&Config) -> Vec<WorkloadResult>;

/// Every workload, in running order.
const WORKLOADS: [(&str, WorkloadFn); 10] = [
    ("A", workload_a),
    ("A.runner", workload_a_runner),
    ("B", workload_b),
    ("G", workload_g),
    ("C", workload_c),
    ("H", workload_h),
    ("D", workload_d),
    ("E", workload_e),
    ("F", workload_f),
    ("async", workload_async),
];

#[derive(Debug)]
struct Config {
    workers: usize,
    rounds: usize,
    quick: bool,
    only: Vec<String>,
    /// Where the JSON goes; `None` in `--test` mode.
    json: Option<PathBuf>,
}

impl Config {
    fn from_env() -> Self {
        let only: Vec<String> = match std::env::var("BENCH_ONLY") {
            Ok(v) if !v.trim().is_empty() => v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            _ => WORKLOADS.iter().map(|(id, _)| (*id).to_owned()).collect(),
        };
        for id in &only {
            assert!(
                WORKLOADS.iter().any(|(w, _)| w.eq_ignore_ascii_case(id)),
                "BENCH_ONLY: unknown workload {id:?} (known: {})",
                WORKLOADS.map(|(w, _)| w).join(",")
            );
        }
        Config {
            workers: common::workers(),
            rounds: common::env_usize("BENCH_ROUNDS", 5),
            quick: std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"),
            only,
            json: Some(
                std::env::var_os("BENCH_JSON")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("target/engine-bench/results.json")),
            ),
        }
    }

    /// The smoke configuration of `--test`: quick A only, nothing written.
    fn smoke() -> Self {
        Config {
            workers: common::workers(),
            rounds: 2,
            quick: true,
            only: vec!["A".to_owned()],
            json: None,
        }
    }

    /// `full`, or `quick` under `BENCH_QUICK`.
    fn size(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }

    fn wants(&self, id: &str) -> bool {
        self.only.iter().any(|o| o.eq_ignore_ascii_case(id))
    }
}

// ---- results: model, tables, JSON --------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unit {
    PerSec,
    Nanos,
    Bytes,
}

/// One reported metric of a workload (a workload may report several from the same rounds).
#[derive(Clone, Debug)]
struct MetricSpec {
    id: String,
    name: String,
    metric: &'static str,
    unit: Unit,
    higher_is_better: bool,
    goal: String,
}

fn spec(
    id: impl Into<String>,
    name: impl Into<String>,
    metric: &'static str,
    unit: Unit,
    higher_is_better: bool,
    goal: &str,
) -> MetricSpec {
    MetricSpec {
        id: id.into(),
        name: name.into(),
        metric,
        unit,
        higher_is_better,
        goal: goal.to_owned(),
    }
}

/// "No explicit goal": the ratios speak for themselves.
const NO_GOAL: &str = "none stated (ratio > 1: taskrunner ahead)";

#[derive(Debug)]
struct PeerResult {
    name: String,
    rounds: Vec<f64>,
}

impl PeerResult {
    fn median(&self) -> f64 {
        let mut v = self.rounds.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    fn min(&self) -> f64 {
        self.rounds.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.rounds
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// A number derived from several results, with its goal (e.g. "sequenced within 1.5× of
/// one-off").
#[derive(Debug)]
struct Derived {
    name: String,
    value: f64,
    goal: String,
    met: Option<bool>,
}

type LoadAvg = Option<[f64; 3]>;

#[derive(Debug)]
struct WorkloadResult {
    spec: MetricSpec,
    /// The peer every ratio is relative to (a taskrunner entry).
    baseline: String,
    loadavg: [LoadAvg; 2],
    peers: Vec<PeerResult>,
    derived: Vec<Derived>,
}

impl WorkloadResult {
    fn peer(&self, name: &str) -> &PeerResult {
        self.peers
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{}: no peer {name}", self.spec.id))
    }

    /// "baseline" (the reference), "variant" (another taskrunner configuration, compared through
    /// `derived`), or "peer".
    fn role(&self, name: &str) -> &'static str {
        if name == self.baseline {
            "baseline"
        } else if name.starts_with("taskrunner") {
            "variant"
        } else {
            "peer"
        }
    }

    /// taskrunner / peer, oriented so that > 1 means the baseline is better; `None` when a
    /// median is not positive, or for bytes below one per item (no memory of its own: a ratio
    /// to it would only measure noise).
    fn ratio(&self, peer: &PeerResult) -> Option<f64> {
        let base = self.peer(&self.baseline).median();
        let other = peer.median();
        let least = if self.spec.unit == Unit::Bytes {
            1.0
        } else {
            0.0
        };
        if !(base > least && other > least) {
            return None;
        }
        Some(if self.spec.higher_is_better {
            base / other
        } else {
            other / base
        })
    }

    fn print(&self) {
        let s = &self.spec;
        println!(
            "\n{} — {} [{}; {}; ratio = taskrunner/peer, > 1: taskrunner better]",
            s.id,
            s.name,
            s.metric,
            if s.higher_is_better {
                "higher is better"
            } else {
                "lower is better"
            }
        );
        println!(
            "  {:<26} {:>12} {:>12} {:>12} {:>9}",
            "peer", "median", "min", "max", "ratio"
        );
        for p in &self.peers {
            let mark = if self.role(&p.name) == "variant" {
                "*"
            } else {
                ""
            };
            let ratio = if p.name == self.baseline {
                "base".to_owned()
            } else {
                self.ratio(p)
                    .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}{mark}"))
            };
            println!(
                "  {:<26} {:>12} {:>12} {:>12} {:>9}",
                p.name,
                fmt_value(p.median(), s.unit),
                fmt_value(p.min(), s.unit),
                fmt_value(p.max(), s.unit),
                ratio
            );
        }
        if self.peers.iter().any(|p| self.role(&p.name) == "variant") {
            println!(
                "  * another taskrunner configuration: ratio = {} vs it (see derived)",
                self.baseline
            );
        }
        for d in &self.derived {
            let met = match d.met {
                Some(true) => " (met)",
                Some(false) => " (NOT met)",
                None => "",
            };
            println!(
                "  derived: {} = {:.3}; goal: {}{met}",
                d.name, d.value, d.goal
            );
        }
        if let [Some(a), Some(b)] = self.loadavg {
            println!("  loadavg start {:.2} → end {:.2}", a[0], b[0]);
        }
    }
}

fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::PerSec if v >= 1e6 => format!("{:.2} M/s", v / 1e6),
        Unit::PerSec => format!("{:.1} k/s", v / 1e3),
        Unit::Nanos if v >= 1e6 => format!("{:.2} ms", v / 1e6),
        Unit::Nanos if v >= 1e4 => format!("{:.1} µs", v / 1e3),
        Unit::Nanos if v >= 1e3 => format!("{:.2} µs", v / 1e3),
        Unit::Nanos => format!("{v:.0} ns"),
        Unit::Bytes => format!("{v:.1} B"),
    }
}

/// `/proc/loadavg`'s three averages (None off Linux).
fn loadavg() -> LoadAvg {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The current UTC time as ISO 8601, without a date crate (days-to-civil, H. Hinnant).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A minimal JSON value (no serde among the dev-dependencies).
enum J {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    fn write(&self, out: &mut String, indent: usize) {
        let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n(' ', n));
        match self {
            J::Num(x) if x.is_finite() => write!(out, "{x}").expect("write to String"),
            J::Num(_) | J::Null => out.push_str("null"),
            J::Bool(b) => write!(out, "{b}").expect("write to String"),
            J::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => {
                            write!(out, "\\u{:04x}", c as u32).expect("write to String")
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            // Arrays of plain values on one line; of objects, one per line.
            J::Arr(v) if v.iter().all(|x| !matches!(x, J::Obj(_))) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    x.write(out, indent);
                }
                out.push(']');
            }
            J::Arr(v) => {
                out.push_str("[\n");
                for (i, x) in v.iter().enumerate() {
                    pad(out, indent + 2);
                    x.write(out, indent + 2);
                    out.push_str(if i + 1 < v.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push(']');
            }
            J::Obj(kv) => {
                out.push_str("{\n");
                for (i, (k, x)) in kv.iter().enumerate() {
                    pad(out, indent + 2);
                    write!(out, "\"{k}\": ").expect("write to String");
                    x.write(out, indent + 2);
                    out.push_str(if i + 1 < kv.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push('}');
            }
        }
    }
}

fn j_load(l: LoadAvg) -> J {
    l.map_or(J::Null, |a| J::Arr(a.iter().map(|x| J::Num(*x)).collect()))
}

fn j_opt(x: Option<f64>) -> J {
    x.map_or(J::Null, J::Num)
}

fn workload_json(w: &WorkloadResult) -> J {
    let s = &w.spec;
    let peers = w
        .peers
        .iter()
        .map(|p| {
            J::Obj(vec![
                ("name", J::Str(p.name.clone())),
                ("role", J::Str(w.role(&p.name).to_owned())),
                (
                    "rounds",
                    J::Arr(p.rounds.iter().map(|x| J::Num(*x)).collect()),
                ),
                ("median", J::Num(p.median())),
                ("min", J::Num(p.min())),
                ("max", J::Num(p.max())),
                (
                    "ratio",
                    if p.name == w.baseline {
                        J::Num(1.0)
                    } else {
                        j_opt(w.ratio(p))
                    },
                ),
            ])
        })
        .collect();
    let derived = w
        .derived
        .iter()
        .map(|d| {
            J::Obj(vec![
                ("name", J::Str(d.name.clone())),
                ("value", J::Num(d.value)),
                ("goal", J::Str(d.goal.clone())),
                ("met", d.met.map_or(J::Null, J::Bool)),
            ])
        })
        .collect();
    J::Obj(vec![
        ("id", J::Str(s.id.clone())),
        (
            "group",
            J::Str(s.id.split('.').next().unwrap_or("").to_owned()),
        ),
        ("name", J::Str(s.name.clone())),
        ("metric", J::Str(s.metric.to_owned())),
        (
            "unit",
            J::Str(
                match s.unit {
                    Unit::PerSec => "tasks/s",
                    Unit::Nanos => "ns",
                    Unit::Bytes => "bytes",
                }
                .to_owned(),
            ),
        ),
        ("higher_is_better", J::Bool(s.higher_is_better)),
        ("baseline", J::Str(w.baseline.clone())),
        ("goal", J::Str(s.goal.clone())),
        (
            "loadavg",
            J::Arr(w.loadavg.iter().map(|l| j_load(*l)).collect()),
        ),
        ("peers", J::Arr(peers)),
        ("derived", J::Arr(derived)),
    ])
}

fn write_json(cfg: &Config, path: &PathBuf, start: (String, LoadAvg), all: &[WorkloadResult]) {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let doc = J::Obj(vec![
        (
            "machine",
            J::Obj(vec![
                ("nproc", J::Num(nproc as f64)),
                ("workers", J::Num(cfg.workers as f64)),
                ("rounds", J::Num(cfg.rounds as f64)),
                ("quick", J::Bool(cfg.quick)),
                ("date", J::Str(start.0)),
                ("loadavg_start", j_load(start.1)),
                ("loadavg_end", j_load(loadavg())),
            ]),
        ),
        ("workloads", J::Arr(all.iter().map(workload_json).collect())),
    ]);
    let mut out = String::new();
    doc.write(&mut out, 0);
    out.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).expect("create the JSON directory");
    }
    std::fs::write(path, out).expect("write the JSON results");
    println!("\nresults written to {}", path.display());
}

// ---- the driver ------------------------------------------------------------------------------

/// Warm-up (untimed, smaller) or measured round.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pass {
    Warmup,
    Measure,
}

impl Pass {
    /// A tenth of `n` for the warm-up.
    fn scale(self, n: usize) -> usize {
        match self {
            Pass::Warmup => (n / 10).max(1),
            Pass::Measure => n,
        }
    }
}

/// One peer of a workload: runs one round and returns one value per metric of the workload.
struct Contender<'a> {
    name: &'static str,
    run: Box<dyn FnMut(Pass) -> Vec<f64> + 'a>,
}

fn contender<'a>(name: &'static str, run: impl FnMut(Pass) -> Vec<f64> + 'a) -> Contender<'a> {
    Contender {
        name,
        run: Box::new(run),
    }
}

/// Lets the previous peer's idle workers stop spinning and park before the next peer runs.
fn settle() {
    std::thread::sleep(Duration::from_millis(20));
}

/// Runs every contender once as a warm-up, then `cfg.rounds` interleaved rounds; returns one
/// result per metric, with the contenders in the given order.
fn measure(
    cfg: &Config,
    metrics: Vec<MetricSpec>,
    baseline: &str,
    mut contenders: Vec<Contender<'_>>,
) -> Vec<WorkloadResult> {
    let start = loadavg();
    eprintln!(
        "[engine] {} ({} peers × {} rounds)",
        metrics[0].id.split('.').next().unwrap_or_default(),
        contenders.len(),
        cfg.rounds
    );
    for c in &mut contenders {
        (c.run)(Pass::Warmup);
        settle();
    }
    let p = contenders.len();
    let mut values = vec![vec![Vec::with_capacity(cfg.rounds); metrics.len()]; p];
    for round in 0..cfg.rounds {
        for k in 0..p {
            let i = (round + k) % p;
            let v = (contenders[i].run)(Pass::Measure);
            assert_eq!(
                v.len(),
                metrics.len(),
                "{}: metric count",
                contenders[i].name
            );
            for (m, x) in v.into_iter().enumerate() {
                values[i][m].push(x);
            }
            settle();
        }
    }
    let end = loadavg();
    metrics
        .into_iter()
        .enumerate()
        .map(|(m, spec)| WorkloadResult {
            spec,
            baseline: baseline.to_owned(),
            loadavg: [start, end],
            peers: contenders
                .iter()
                .zip(&values)
                .map(|(c, v)| PeerResult {
                    name: c.name.to_owned(),
                    rounds: v[m].clone(),
                })
                .collect(),
            derived: Vec::new(),
        })
        .collect()
}

// ---- correctness helpers -----------------------------------------------------------------------

/// Records the first correctness violation seen by any task; the main thread panics on it after
/// the run (a panic inside a task would only be caught by the pool and hang the wait).
#[derive(Debug, Default)]
struct Checker {
    failed: AtomicBool,
    first: Mutex<Option<String>>,
}

impl Checker {
    fn leak() -> &'static Checker {
        Box::leak(Box::default())
    }

    #[cold]
    fn fail(&self, msg: String) {
        if !self.failed.swap(true, Ordering::AcqRel) {
            *self.first.lock() = Some(msg);
        }
    }

    fn assert_ok(&self, what: &str) {
        if self.failed.load(Ordering::Acquire) {
            let msg = self.first.lock().take().unwrap_or_default();
            panic!("{what}: correctness violation: {msg}");
        }
    }
}

/// One latency sample per slot, each written exactly once per run.
#[derive(Debug)]
struct Samples(Box<[AtomicU64]>);

const UNSET: u64 = u64::MAX;

impl Samples {
    fn leak(n: usize) -> &'static Samples {
        Box::leak(Box::new(Samples(
            (0..n).map(|_| AtomicU64::new(UNSET)).collect(),
        )))
    }

    fn reset(&self, n: usize) {
        for s in &self.0[..n] {
            s.store(UNSET, Ordering::Relaxed);
        }
    }

    #[inline]
    fn record(&self, i: usize, ns: u64, check: &Checker) {
        if self.0[i].swap(ns.min(UNSET - 1), Ordering::Relaxed) != UNSET {
            check.fail(format!("sample {i} recorded twice (a task ran twice)"));
        }
    }

    /// The first `n` samples, sorted; panics if one is missing.
    fn sorted(&self, n: usize, what: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self.0[..n]
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        if let Some(i) = v.iter().position(|&x| x == UNSET) {
            panic!("{what}: sample {i} of {n} never recorded (a task was lost)");
        }
        v.sort_unstable();
        v
    }
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[u64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

fn mean(v: &[u64]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

/// Nanoseconds since a fixed instant, so tasks can carry a timestamp in a `u64`.
fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

fn human_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

// ---- A: parallel throughput --------------------------------------------------------------------

/// Posts `n` tiny tasks (each counts a shared latch down) from this thread, waits for all of
/// them; the time covers posting and running. A task's capture is one pointer.
fn parallel_throughput<'a, E: Executor + 'a>(e: E, n: usize) -> Contender<'a> {
    let latch = Latch::leak();
    contender(e.name(), move |pass| {
        let n = pass.scale(n);
        latch.reset(n);
        let t0 = Instant::now();
        for _ in 0..n {
            e.post(move || latch.count_down());
        }
        latch.wait();
        let dt = t0.elapsed();
        assert_eq!(latch.remaining(), 0, "{}: a task ran twice", e.name());
        vec![n as f64 / dt.as_secs_f64()]
    })
}

/// A reference point for A, not a peer one would use: the channel floor with a 48-byte message
/// (the boxed closure plus 32 bytes), the size of a taskrunner ready-queue entry. The gap
/// between it and the plain floor is what queue traffic per task costs on this machine.
struct WideFloor {
    tx: Option<crossbeam_channel::Sender<WideMsg>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

type WideMsg = (Box<dyn FnOnce() + Send>, [u64; 4]);

impl WideFloor {
    fn new(workers: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<WideMsg>();
        let threads = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    while let Ok((f, pad)) = rx.recv() {
                        black_box(pad);
                        f();
                    }
                })
            })
            .collect();
        WideFloor {
            tx: Some(tx),
            threads,
        }
    }
}

impl Drop for WideFloor {
    fn drop(&mut self) {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Executor for WideFloor {
    fn name(&self) -> &'static str {
        "floor_channel_48B_msg"
    }

    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.tx
            .as_ref()
            .expect("running")
            .send((Box::new(f), [0; 4]))
            .expect("wide floor channel closed");
    }
}

fn workload_a(cfg: &Config) -> Vec<WorkloadResult> {
    let n = cfg.size(1_000_000, 20_000);
    let w = cfg.workers;
    measure(
        cfg,
        vec![spec(
            "A",
            format!("parallel throughput ({} tiny tasks)", human_count(n)),
            "tasks_per_s",
            Unit::PerSec,
            true,
            NO_GOAL,
        )],
        "taskrunner",
        vec![
            parallel_throughput(Taskrunner::new(w), n),
            parallel_throughput(Floor::new(w), n),
            parallel_throughput(WideFloor::new(w), n),
            parallel_throughput(RayonSpawn(rayon_pool(w)), n),
            parallel_throughput(RayonSpawnFifo(rayon_pool(w)), n),
            parallel_throughput(ThreadPoolCrate::new(w), n),
            parallel_throughput(TokioSpawn(tokio_runtime(w)), n),
        ],
    )
}

/// A through a parallel `TaskRunner` (its identity rides in each entry: a reference count and
/// a count of tasks in flight), and through a named one (one more allocation and the runner's
/// counters per task), against posting on the pool.
fn workload_a_runner(cfg: &Config) -> Vec<WorkloadResult> {
    let n = cfg.size(1_000_000, 20_000);
    let w = cfg.workers;
    measure(
        cfg,
        vec![spec(
            "A.runner",
            format!(
                "parallel throughput through a runner ({} tiny tasks)",
                human_count(n)
            ),
            "tasks_per_s",
            Unit::PerSec,
            true,
            NO_GOAL,
        )],
        "taskrunner",
        vec![
            parallel_throughput(Taskrunner::new(w), n),
            parallel_throughput(TaskrunnerRunner::new(w, false), n),
            parallel_throughput(TaskrunnerRunner::new(w, true), n),
        ],
    )
}

// ---- B and G: many sequences -------------------------------------------------------------------

/// Per-sequence state of B and G: one counter per sequence (4 bytes, so that 1M sequences stay
/// small), shared by every peer and round.
#[derive(Debug)]
struct SeqCtx {
    counters: Box<[AtomicU32]>,
    latch: &'static Latch,
    check: &'static Checker,
}

impl SeqCtx {
    fn leak(seqs: usize) -> &'static SeqCtx {
        Box::leak(Box::new(SeqCtx {
            counters: (0..seqs).map(|_| AtomicU32::new(0)).collect(),
            latch: Latch::leak(),
            check: Checker::leak(),
        }))
    }

    /// Task `t` of sequence `seq`: a non-atomic read-modify-write (relaxed load, then store),
    /// which only counts correctly if the sequence runs its tasks one at a time, in order.
    #[inline]
    fn step(&self, seq: u32, t: u32) {
        let c = &self.counters[seq as usize];
        let seen = c.load(Ordering::Relaxed);
        if seen != t {
            self.check.fail(format!(
                "sequence {seq}: task {t} ran after {seen} of its tasks (FIFO one at a time broken)"
            ));
        }
        c.store(seen + 1, Ordering::Relaxed);
        self.latch.count_down();
    }

    fn verify(&self, seqs: usize, per_seq: usize, who: &str) {
        self.check.assert_ok(who);
        assert_eq!(self.latch.remaining(), 0, "{who}: a task ran twice");
        for (i, c) in self.counters[..seqs].iter().enumerate() {
            let v = c.load(Ordering::Relaxed) as usize;
            assert_eq!(
                v, per_seq,
                "{who}: sequence {i} ran {v} tasks, not {per_seq}"
            );
        }
    }
}

/// Makes every worker thread exist before a clock starts (taskrunner starts its workers on
/// demand): `w` blocking tasks on `w` extra strands must all be running at once.
fn prime<E: StrandExecutor>(e: &E, w: usize) {
    let gate = Gate::new();
    let strands: Vec<E::S> = (0..w).map(|_| e.strand()).collect();
    for s in &strands {
        s.post(gate.blocker());
    }
    gate.wait_started(w);
    gate.open(w);
}

/// The shape of one B/G run: `seqs` strands × `per_seq` tasks on `workers` workers.
#[derive(Clone, Copy, Debug)]
struct SeqRun {
    workers: usize,
    seqs: usize,
    per_seq: usize,
    ctx: &'static SeqCtx,
}

/// `seqs` strands × `per_seq` tasks, posted round-robin (task t of every strand, then t + 1)
/// from this thread; the time covers posting and running, not creating the strands. Each round
/// builds a fresh executor and drops it (with its strands) afterwards, so that a million
/// strands of one peer never coexist with another peer's.
fn strand_throughput<'a, E: StrandExecutor + 'a>(
    make: impl Fn() -> E + 'a,
    run: SeqRun,
) -> Contender<'a> {
    let name = make().name();
    let SeqRun {
        workers,
        seqs,
        per_seq,
        ctx,
    } = run;
    contender(name, move |pass| {
        let seqs = pass.scale(seqs);
        let e = make();
        prime(&e, workers);
        let strands: Vec<E::S> = (0..seqs).map(|_| e.strand()).collect();
        for c in &ctx.counters[..seqs] {
            c.store(0, Ordering::Relaxed);
        }
        ctx.latch.reset(seqs * per_seq);
        let t0 = Instant::now();
        for t in 0..per_seq as u32 {
            for (i, s) in strands.iter().enumerate() {
                let i = i as u32;
                s.post(move || ctx.step(i, t));
            }
        }
        ctx.latch.wait();
        let dt = t0.elapsed();
        ctx.verify(seqs, per_seq, name);
        drop(strands);
        drop(e);
        vec![(seqs * per_seq) as f64 / dt.as_secs_f64()]
    })
}

/// The strand peers of B and G.
fn strand_peers<'a>(run: SeqRun) -> Vec<Contender<'a>> {
    let w = run.workers;
    vec![
        strand_throughput(move || Taskrunner::new(w), run),
        strand_throughput(move || Floor::new(w), run),
        strand_throughput(
            move || OnPool::new(RayonSpawn(rayon_pool(w)), "rayon_strand"),
            run,
        ),
        strand_throughput(
            move || OnPool::new(ThreadPoolCrate::new(w), "threadpool_strand"),
            run,
        ),
        strand_throughput(move || TokioActors(tokio_runtime(w)), run),
    ]
}

fn workload_b(cfg: &Config) -> Vec<WorkloadResult> {
    let seqs = cfg.size(1000, 100);
    let per_seq = cfg.size(1000, 100);
    let ctx = SeqCtx::leak(seqs);
    measure(
        cfg,
        vec![spec(
            "B",
            format!("sequences round-robin ({seqs} × {per_seq})"),
            "tasks_per_s",
            Unit::PerSec,
            true,
            NO_GOAL,
        )],
        "taskrunner_sequenced",
        strand_peers(SeqRun {
            workers: cfg.workers,
            seqs,
            per_seq,
            ctx,
        }),
    )
}

fn workload_g(cfg: &Config) -> Vec<WorkloadResult> {
    let total = cfg.size(1_000_000, 10_000);
    let counts: Vec<usize> = [1000, 100, 10, 1].iter().map(|d| total / d).collect();
    let ctx = SeqCtx::leak(total);
    let mut out = Vec::new();
    for &seqs in &counts {
        out.extend(measure(
            cfg,
            vec![spec(
                format!("G.S={}", human_count(seqs)),
                format!(
                    "many sequences, S={} × {} tasks",
                    human_count(seqs),
                    total / seqs
                ),
                "tasks_per_s",
                Unit::PerSec,
                true,
                "flat over S (see the derived ratio on the largest S)",
            )],
            "taskrunner_sequenced",
            strand_peers(SeqRun {
                workers: cfg.workers,
                seqs,
                per_seq: total / seqs,
                ctx,
            }),
        ));
    }
    let first = out[0].peer("taskrunner_sequenced").median();
    let last = out
        .last()
        .expect("G ran")
        .peer("taskrunner_sequenced")
        .median();
    let (lo, hi) = (human_count(counts[0]), human_count(total));
    out.last_mut().expect("G ran").derived.push(Derived {
        name: format!("taskrunner tasks/s at S={hi} / at S={lo}"),
        value: last / first,
        goal: "flat (1.0)".to_owned(),
        met: None,
    });
    out
}

// ---- C: ping-pong latency ----------------------------------------------------------------------

/// Two strands and the per-round-trip samples.
struct PingCtx<S> {
    a: S,
    b: S,
    samples: &'static Samples,
    latch: &'static Latch,
    check: &'static Checker,
}

/// Runs on A: timestamps, posts to B, whose task posts back to A; A's reply task records the
/// round trip and starts the next one.
fn ping<S: Strand>(ctx: &'static PingCtx<S>, i: usize, n: usize) {
    let t0 = Instant::now();
    ctx.b.post(move || {
        ctx.a.post(move || {
            ctx.samples
                .record(i, t0.elapsed().as_nanos() as u64, ctx.check);
            if i + 1 < n {
                ping(ctx, i + 1, n);
            } else {
                ctx.latch.count_down();
            }
        });
    });
}

/// One executor, two strands, `n` individually timed round trips per round. The strands are
/// leaked for the `'static` capture (no reference count touched per hop): taskrunner's, the
/// floor's and tokio's threads still stop when the executor drops; a rayon or threadpool pool
/// stays alive behind its leaked strands, its threads asleep.
fn ping_pong<'a, E: StrandExecutor + 'a>(e: E, n: usize) -> Contender<'a> {
    let name = e.name();
    let ctx: &'static PingCtx<E::S> = Box::leak(Box::new(PingCtx {
        a: e.strand(),
        b: e.strand(),
        samples: Samples::leak(n),
        latch: Latch::leak(),
        check: Checker::leak(),
    }));
    contender(name, move |pass| {
        let _owner = &e;
        let n = pass.scale(n);
        ctx.samples.reset(n);
        ctx.latch.reset(1);
        ctx.a.post(move || ping(ctx, 0, n));
        ctx.latch.wait();
        ctx.check.assert_ok(name);
        let v = ctx.samples.sorted(n, name);
        vec![pct(&v, 50.0), pct(&v, 99.0)]
    })
}

fn workload_c(cfg: &Config) -> Vec<WorkloadResult> {
    let n = cfg.size(100_000, 2_000);
    let w = cfg.workers;
    let name = format!("ping-pong A→B→A ({} round trips)", human_count(n));
    measure(
        cfg,
        vec![
            spec(
                "C.p50",
                name.clone(),
                "rtt_p50_ns",
                Unit::Nanos,
                false,
                NO_GOAL,
            ),
            spec("C.p99", name, "rtt_p99_ns", Unit::Nanos, false, NO_GOAL),
        ],
        "taskrunner_sequenced",
        vec![
            ping_pong(Taskrunner::new(w), n),
            ping_pong(Floor::new(w), n),
            ping_pong(OnPool::new(RayonSpawn(rayon_pool(w)), "rayon_strand"), n),
            ping_pong(OnPool::new(ThreadPoolCrate::new(w), "threadpool_strand"), n),
            ping_pong(TokioActors(tokio_runtime(w)), n),
        ],
    )
}

// ---- H: post + join, one at a time -------------------------------------------------------------

/// "Run this function elsewhere and block until its result is here."
trait PostJoin {
    fn name(&self) -> &'static str;
    fn call(&self, x: u64) -> u64;
}

/// The posted work: cheap, but its result depends on the input (checked by the caller).
#[inline]
fn work(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 1
}

impl PostJoin for Taskrunner {
    fn name(&self) -> &'static str {
        "taskrunner"
    }

    fn call(&self, x: u64) -> u64 {
        self.pool
            .post_task_with_result(TaskTraits::default(), move || work(x))
            .unwrap_or_else(|_| panic!("taskrunner refused a post"))
            .join()
            .expect("the task ran")
    }
}

/// `SequencedTaskRunner::post_task_with_result(..).join()`.
struct TaskrunnerSequenced {
    seq: SequencedTaskRunner,
    _pool: Taskrunner,
}

impl PostJoin for TaskrunnerSequenced {
    fn name(&self) -> &'static str {
        "taskrunner_sequenced"
    }

    fn call(&self, x: u64) -> u64 {
        self.seq
            .post_task_with_result(move || work(x))
            .unwrap_or_else(|_| panic!("taskrunner refused a sequenced post"))
            .join()
            .expect("the task ran")
    }
}

/// A pool without result handles: post, then receive on a `bounded(1)` channel made per call.
struct ReplyChannel<E>(E, &'static str);

impl<E: Executor> PostJoin for ReplyChannel<E> {
    fn name(&self) -> &'static str {
        self.1
    }

    fn call(&self, x: u64) -> u64 {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.0.post(move || tx.send(work(x)).expect("caller waits"));
        rx.recv().expect("the task ran")
    }
}

/// tokio: `spawn`, then `Handle::block_on` the `JoinHandle`.
struct TokioBlockOn(tokio::runtime::Runtime);

impl PostJoin for TokioBlockOn {
    fn name(&self) -> &'static str {
        "tokio_spawn+block_on"
    }

    fn call(&self, x: u64) -> u64 {
        let h = self.0.spawn(async move { work(x) });
        self.0.handle().block_on(h).expect("the task ran")
    }
}

/// `n` calls, each timed from before the post to having the value.
fn post_join<'a, P: PostJoin + 'a>(p: P, n: usize) -> Contender<'a> {
    let mut lat = Vec::with_capacity(n);
    contender(p.name(), move |pass| {
        lat.clear();
        for i in 0..pass.scale(n) as u64 {
            let t0 = Instant::now();
            let y = p.call(i);
            lat.push(t0.elapsed().as_nanos() as u64);
            assert_eq!(y, work(i), "{}: wrong result for call {i}", p.name());
        }
        let m = mean(&lat);
        lat.sort_unstable();
        vec![pct(&lat, 50.0), m]
    })
}

fn workload_h(cfg: &Config) -> Vec<WorkloadResult> {
    let n = cfg.size(100_000, 2_000);
    let w = cfg.workers;
    let seq_pool = Taskrunner::new(w);
    let seq = seq_pool
        .pool
        .create_sequenced_task_runner(TaskTraits::default());
    let name = format!("post + join, one at a time ({} calls)", human_count(n));
    let goal = "taskrunner_sequenced within 1.5× of taskrunner (one-off)";
    let mut out = measure(
        cfg,
        vec![
            spec(
                "H.p50",
                name.clone(),
                "latency_p50_ns",
                Unit::Nanos,
                false,
                goal,
            ),
            spec("H.mean", name, "latency_mean_ns", Unit::Nanos, false, goal),
        ],
        "taskrunner",
        vec![
            post_join(Taskrunner::new(w), n),
            post_join(
                TaskrunnerSequenced {
                    seq,
                    _pool: seq_pool,
                },
                n,
            ),
            post_join(
                ReplyChannel(RayonSpawn(rayon_pool(w)), "rayon_spawn+channel"),
                n,
            ),
            post_join(
                ReplyChannel(ThreadPoolCrate::new(w), "threadpool+channel"),
                n,
            ),
            post_join(ReplyChannel(Floor::new(w), "floor+channel"), n),
            post_join(TokioBlockOn(tokio_runtime(w)), n),
        ],
    );
    for r in &mut out {
        let v = r.peer("taskrunner_sequenced").median() / r.peer("taskrunner").median();
        r.derived.push(Derived {
            name: format!("taskrunner_sequenced / taskrunner ({})", r.spec.metric),
            value: v,
            goal: "<= 1.5".to_owned(),
            met: Some(v <= 1.5),
        });
    }
    out
}

// ---- D: delayed posts --------------------------------------------------------------------------

/// Shared state of D's tasks: the clock origin, the start of the posting loop, the samples.
struct DelayCtx {
    epoch: Instant,
    start_ns: AtomicU64,
    latch: &'static Latch,
    samples: &'static Samples,
    check: &'static Checker,
}

/// Fixed-seed delays, the same for every peer: uniform in `lo..=hi` microseconds.
fn delays(n: usize, lo_us: u64, hi_us: u64, seed: u64) -> Vec<Duration> {
    let mut rng = XorShift::new(seed);
    (0..n)
        .map(|_| Duration::from_micros(lo_us + rng.below_incl(hi_us - lo_us)))
        .collect()
}

/// (1) cost of posting `n_post` delayed tasks (0..50 ms), timed over the posting loop only,
/// then waits for all to run (none may run before the loop's start + its delay); (2) lateness
/// of `n_late` timers (1..max ms) posted at once: start − (post time + delay), none negative.
fn delayed<'a, D: DelayedExecutor + 'a>(
    d: D,
    n_post: usize,
    n_late: usize,
    max_late_ms: u64,
) -> Contender<'a> {
    let name = d.name();
    let ctx: &'static DelayCtx = Box::leak(Box::new(DelayCtx {
        epoch: Instant::now(),
        start_ns: AtomicU64::new(0),
        latch: Latch::leak(),
        samples: Samples::leak(n_late),
        check: Checker::leak(),
    }));
    let post_delays = delays(n_post, 0, 50_000, 0xD1);
    let late_delays = delays(n_late, 1_000, max_late_ms * 1000, 0xD2);
    contender(name, move |pass| {
        // (1) posting cost.
        let n = pass.scale(n_post);
        ctx.latch.reset(n);
        ctx.start_ns.store(now_ns(ctx.epoch), Ordering::Relaxed);
        let t0 = Instant::now();
        for &delay in &post_delays[..n] {
            d.post_delayed(delay, move || {
                let earliest = ctx.start_ns.load(Ordering::Relaxed) + delay.as_nanos() as u64;
                if now_ns(ctx.epoch) < earliest {
                    ctx.check.fail(format!("a {delay:?} task ran early"));
                }
                ctx.latch.count_down();
            });
        }
        let per_post = t0.elapsed().as_nanos() as f64 / n as f64;
        ctx.latch.wait();
        ctx.check.assert_ok(name);
        assert_eq!(ctx.latch.remaining(), 0, "{name}: a delayed task ran twice");

        // (2) lateness.
        let k = pass.scale(n_late);
        ctx.samples.reset(k);
        ctx.latch.reset(k);
        for (i, &delay) in late_delays[..k].iter().enumerate() {
            let due = now_ns(ctx.epoch) + delay.as_nanos() as u64;
            d.post_delayed(delay, move || {
                let now = now_ns(ctx.epoch);
                if now < due {
                    ctx.check
                        .fail(format!("timer {i} ({delay:?}) ran {} ns early", due - now));
                }
                ctx.samples.record(i, now.saturating_sub(due), ctx.check);
                ctx.latch.count_down();
            });
        }
        ctx.latch.wait();
        ctx.check.assert_ok(name);
        let v = ctx.samples.sorted(k, name);
        vec![per_post, pct(&v, 50.0), pct(&v, 99.0)]
    })
}

fn workload_d(cfg: &Config) -> Vec<WorkloadResult> {
    let n_post = cfg.size(100_000, 2_000);
    let n_late = cfg.size(1000, 100);
    let max_ms = cfg.size(200, 20) as u64;
    let w = cfg.workers;
    let late = format!("timer lateness ({n_late} timers, 1..{max_ms} ms, posted at once)");
    measure(
        cfg,
        vec![
            spec(
                "D.post",
                format!(
                    "delayed post cost ({} posts, 0..50 ms)",
                    human_count(n_post)
                ),
                "ns_per_post",
                Unit::Nanos,
                false,
                NO_GOAL,
            ),
            spec(
                "D.late_p50",
                late.clone(),
                "lateness_p50_ns",
                Unit::Nanos,
                false,
                NO_GOAL,
            ),
            spec(
                "D.late_p99",
                late,
                "lateness_p99_ns",
                Unit::Nanos,
                false,
                NO_GOAL,
            ),
        ],
        "taskrunner",
        vec![
            delayed(Taskrunner::new(w), n_post, n_late, max_ms),
            delayed(HeapTimerFloor::new(w), n_post, n_late, max_ms),
            delayed(TokioSleep(tokio_runtime(w)), n_post, n_late, max_ms),
        ],
    )
}

// ---- E: memory (child process) -----------------------------------------------------------------

/// Live heap bytes right now (a `SeqCst` load: every pool is quiescent while a window is open).
fn live() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

fn bytes_per(before: i64, after: i64, n: usize) -> f64 {
    (after - before) as f64 / n as f64
}

/// The queued closure: 16 bytes of capture, so every peer must box (or inline) 16 bytes.
fn payload(i: usize, latch: &'static Latch) -> impl FnOnce() + Send + 'static {
    let x = [i as u32; 2];
    move || {
        black_box(x);
        latch.count_down();
    }
}

fn payload_size() -> usize {
    std::mem::size_of_val(&payload(0, Latch::leak()))
}

/// Bytes per queued one-off task beyond the closure, while every worker is blocked: round 1
/// from empty queues (includes queue growth), round 2 into the drained, already grown queues.
fn queued_oneoff<E: Executor>(e: &E, w: usize, n: usize) -> [f64; 2] {
    let latch = Latch::leak();
    let mut out = [0.0; 2];
    for r in &mut out {
        let gate = Gate::new();
        for _ in 0..w {
            e.post(gate.blocker());
        }
        gate.wait_started(w);
        latch.reset(n);
        let before = live();
        for i in 0..n {
            e.post(payload(i, latch));
        }
        *r = bytes_per(before, live(), n) - payload_size() as f64;
        gate.open(w);
        latch.wait();
    }
    out
}

/// As `queued_oneoff`, into one strand whose first task blocks.
fn queued_sequenced<E: StrandExecutor>(e: &E, n: usize) -> [f64; 2] {
    let s = e.strand();
    let latch = Latch::leak();
    let mut out = [0.0; 2];
    for r in &mut out {
        let gate = Gate::new();
        s.post(gate.blocker());
        gate.wait_started(1);
        latch.reset(n);
        let before = live();
        for i in 0..n {
            s.post(payload(i, latch));
        }
        *r = bytes_per(before, live(), n) - payload_size() as f64;
        gate.open(1);
        latch.wait();
    }
    out
}

/// Heap bytes per idle strand: fresh, and after each ran one task (in batches of 64, so that
/// shared queues stay small and only per-strand memory is counted).
fn idle_strands<E: StrandExecutor>(e: &E, n: usize) -> [f64; 2] {
    let mut v: Vec<E::S> = Vec::with_capacity(n);
    let latch = Latch::leak();
    std::thread::sleep(Duration::from_millis(50));
    let before = live();
    v.extend((0..n).map(|_| e.strand()));
    std::thread::sleep(Duration::from_millis(50));
    let fresh = live();
    for batch in v.chunks(64) {
        latch.reset(batch.len());
        for s in batch {
            s.post(move || latch.count_down());
        }
        latch.wait();
    }
    std::thread::sleep(Duration::from_millis(50));
    let used = live();
    [bytes_per(before, fresh, n), bytes_per(before, used, n)]
}

/// The memory child: prints `MEM <metric id> <peer> <bytes>` lines on stdout.
fn memory_child(cfg: &Config) {
    COUNTING.store(true, Ordering::SeqCst);
    let n = cfg.size(1 << 14, 1 << 10);
    let w = cfg.workers;
    let emit = |id: &str, peer: &str, v: f64| println!("MEM\t{id}\t{peer}\t{v}");
    let oneoff: Vec<(&str, [f64; 2])> = vec![
        ("taskrunner", queued_oneoff(&Taskrunner::new(w), w, n)),
        ("floor_channel", queued_oneoff(&Floor::new(w), w, n)),
        (
            "rayon_spawn",
            queued_oneoff(&RayonSpawn(rayon_pool(w)), w, n),
        ),
        ("threadpool", queued_oneoff(&ThreadPoolCrate::new(w), w, n)),
        (
            "tokio_spawn",
            queued_oneoff(&TokioSpawn(tokio_runtime(w)), w, n),
        ),
    ];
    for (peer, [cold, steady]) in oneoff {
        emit("E.queued_oneoff", peer, cold);
        emit("E.queued_oneoff_steady", peer, steady);
    }
    let seq: Vec<(&str, [f64; 2], [f64; 2])> = vec![
        (
            "taskrunner_sequenced",
            queued_sequenced(&Taskrunner::new(w), n),
            idle_strands(&Taskrunner::new(w), n),
        ),
        (
            "floor_strand",
            queued_sequenced(&Floor::new(w), n),
            idle_strands(&Floor::new(w), n),
        ),
        (
            "tokio_mpsc_actor",
            queued_sequenced(&TokioActors(tokio_runtime(w)), n),
            idle_strands(&TokioActors(tokio_runtime(w)), n),
        ),
    ];
    for (peer, [cold, steady], [fresh, used]) in seq {
        emit("E.queued_seq", peer, cold);
        emit("E.queued_seq_steady", peer, steady);
        emit("E.idle_seq_fresh", peer, fresh);
        emit("E.idle_seq_used", peer, used);
    }
}

/// Runs the memory child and turns its lines into results (one round: counts, not timings).
fn workload_e(cfg: &Config) -> Vec<WorkloadResult> {
    eprintln!("[engine] E (memory, child process)");
    let start = loadavg();
    let exe = std::env::current_exe().expect("path of this bench binary");
    let out = std::process::Command::new(exe)
        .env(CHILD_ENV, "memory")
        .env("BENCH_QUICK", if cfg.quick { "1" } else { "0" })
        .env("BENCH_WORKERS", cfg.workers.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the memory child");
    assert!(out.status.success(), "memory child failed: {}", out.status);
    let end = loadavg();
    let text = String::from_utf8(out.stdout).expect("child output is UTF-8");
    let n = cfg.size(1 << 14, 1 << 10);
    let specs = [
        (
            "E.queued_oneoff",
            "bytes per queued one-off task beyond the closure (queues grow)",
            "taskrunner",
        ),
        (
            "E.queued_oneoff_steady",
            "bytes per queued one-off task beyond the closure (queues already grown)",
            "taskrunner",
        ),
        (
            "E.queued_seq",
            "bytes per queued sequenced task beyond the closure (queues grow)",
            "taskrunner_sequenced",
        ),
        (
            "E.queued_seq_steady",
            "bytes per queued sequenced task beyond the closure (queues already grown)",
            "taskrunner_sequenced",
        ),
        (
            "E.idle_seq_fresh",
            "bytes per idle sequence, fresh",
            "taskrunner_sequenced",
        ),
        (
            "E.idle_seq_used",
            "bytes per idle sequence, after one task",
            "taskrunner_sequenced",
        ),
    ];
    specs
        .iter()
        .map(|&(id, name, baseline)| {
            let peers = text
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    (f.len() == 4 && f[0] == "MEM" && f[1] == id).then(|| PeerResult {
                        name: f[2].to_owned(),
                        rounds: vec![f[3].parse().expect("a number from the child")],
                    })
                })
                .collect();
            WorkloadResult {
                spec: spec(
                    id,
                    format!("{name} (N = {n})"),
                    "bytes",
                    Unit::Bytes,
                    false,
                    NO_GOAL,
                ),
                baseline: baseline.to_owned(),
                loadavg: [start, end],
                peers,
                derived: Vec::new(),
            }
        })
        .collect()
}

// ---- F: priority under load --------------------------------------------------------------------

/// "Post background work" and "post urgent work".
trait PriorityExecutor {
    fn name(&self) -> &'static str;
    fn post_backlog<F: FnOnce() + Send + 'static>(&self, f: F);
    fn post_urgent<F: FnOnce() + Send + 'static>(&self, f: F);
}

/// taskrunner: the backlog is `BestEffort` on a pool whose best-effort cap is every worker
/// (`max_best_effort_workers(workers)`), so the backlog alone saturates the pool; the probe is
/// `UserBlocking`.
struct TaskrunnerPriority(ThreadPool);

impl TaskrunnerPriority {
    fn new(w: usize) -> Self {
        let pool = ThreadPool::builder()
            .max_workers(w)
            .max_best_effort_workers(w)
            .thread_name("bench-prio")
            .build()
            .expect("build taskrunner pool");
        assert_eq!(pool.max_best_effort_workers(), w);
        TaskrunnerPriority(pool)
    }
}

impl Drop for TaskrunnerPriority {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

impl PriorityExecutor for TaskrunnerPriority {
    fn name(&self) -> &'static str {
        "taskrunner"
    }

    fn post_backlog<F: FnOnce() + Send + 'static>(&self, f: F) {
        let traits = TaskTraits::new().priority(TaskPriority::BestEffort);
        if self.0.post_task(traits, f).is_err() {
            panic!("taskrunner refused a post");
        }
    }

    fn post_urgent<F: FnOnce() + Send + 'static>(&self, f: F) {
        let traits = TaskTraits::new().priority(TaskPriority::UserBlocking);
        if self.0.post_task(traits, f).is_err() {
            panic!("taskrunner refused a post");
        }
    }
}

/// A FIFO pool: the urgent task waits behind the whole backlog.
struct Fifo<E>(E);

impl<E: Executor> PriorityExecutor for Fifo<E> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn post_backlog<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.0.post(f);
    }

    fn post_urgent<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.0.post(f);
    }
}

struct PrioCtx {
    epoch: Instant,
    started: AtomicUsize,
    finished: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    samples: &'static Samples,
    probes: &'static Latch,
    check: &'static Checker,
}

const SPIN: Duration = Duration::from_micros(50);
/// Time between two probes: long enough that a probe does not queue behind the previous one
/// in a priority scheduler.
const PROBE_GAP: Duration = Duration::from_micros(250);

/// A backlog task: busy-spins 50 µs, tracking how many run at once.
fn spin_task(ctx: &'static PrioCtx) -> impl FnOnce() + Send + 'static {
    move || {
        ctx.started.fetch_add(1, Ordering::AcqRel);
        let now = ctx.running.fetch_add(1, Ordering::AcqRel) + 1;
        ctx.max_running.fetch_max(now, Ordering::AcqRel);
        let end = Instant::now() + SPIN;
        while Instant::now() < end {
            std::hint::spin_loop();
        }
        ctx.running.fetch_sub(1, Ordering::AcqRel);
        ctx.finished.fetch_add(1, Ordering::AcqRel);
    }
}

/// Waits (polling) until `cond` holds; a hang is a bug.
fn poll_until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "hung waiting for {what}"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Keeps `backlog` spinning tasks queued (both workers busy), posts `probes` urgent tasks
/// `PROBE_GAP` apart and measures, for each, post → start.
fn priority<'a, P: PriorityExecutor + 'a>(
    p: P,
    w: usize,
    backlog: usize,
    probes: usize,
) -> Contender<'a> {
    let name = p.name();
    let ctx: &'static PrioCtx = Box::leak(Box::new(PrioCtx {
        epoch: Instant::now(),
        started: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        max_running: AtomicUsize::new(0),
        samples: Samples::leak(probes),
        probes: Latch::leak(),
        check: Checker::leak(),
    }));
    contender(name, move |pass| {
        let probes = pass.scale(probes);
        for a in [&ctx.started, &ctx.finished, &ctx.max_running] {
            a.store(0, Ordering::Relaxed);
        }
        ctx.samples.reset(probes);
        ctx.probes.reset(probes);
        let mut posted: usize = 0;
        for _ in 0..backlog {
            p.post_backlog(spin_task(ctx));
            posted += 1;
        }
        poll_until("the backlog to occupy every worker", || {
            ctx.max_running.load(Ordering::Acquire) >= w
        });
        for i in 0..probes {
            // `started` may run ahead of `posted` by the task posted last.
            let queued = posted.saturating_sub(ctx.started.load(Ordering::Acquire));
            for _ in queued..backlog {
                p.post_backlog(spin_task(ctx));
                posted += 1;
            }
            let t_post = now_ns(ctx.epoch);
            p.post_urgent(move || {
                let waited = now_ns(ctx.epoch) - t_post;
                ctx.samples.record(i, waited, ctx.check);
                ctx.probes.count_down();
            });
            std::thread::sleep(PROBE_GAP);
        }
        ctx.probes.wait();
        poll_until("the backlog to drain", || {
            ctx.finished.load(Ordering::Acquire) == posted
        });
        ctx.check.assert_ok(name);
        let max = ctx.max_running.load(Ordering::Acquire);
        assert_eq!(
            max, w,
            "{name}: {max} backlog tasks ran at once on {w} workers"
        );
        let v = ctx.samples.sorted(probes, name);
        vec![pct(&v, 50.0), pct(&v, 99.0)]
    })
}

fn workload_f(cfg: &Config) -> Vec<WorkloadResult> {
    let backlog = cfg.size(2000, 200);
    let probes = cfg.size(200, 50);
    let w = cfg.workers;
    let name = format!(
        "priority under load: UserBlocking start delay, {backlog} queued 50 µs tasks ahead"
    );
    let mut out = measure(
        cfg,
        vec![
            spec(
                "F.p50",
                name.clone(),
                "start_delay_p50_ns",
                Unit::Nanos,
                false,
                "taskrunner p50 <= 20 µs (its backlog is BestEffort with max_best_effort_workers = workers; the probe UserBlocking)",
            ),
            spec(
                "F.p99",
                name,
                "start_delay_p99_ns",
                Unit::Nanos,
                false,
                NO_GOAL,
            ),
        ],
        "taskrunner",
        vec![
            priority(TaskrunnerPriority::new(w), w, backlog, probes),
            priority(Fifo(RayonSpawn(rayon_pool(w))), w, backlog, probes),
            priority(Fifo(TokioSpawn(tokio_runtime(w))), w, backlog, probes),
            priority(Fifo(ThreadPoolCrate::new(w)), w, backlog, probes),
            priority(Fifo(Floor::new(w)), w, backlog, probes),
        ],
    );
    let p50 = out[0].peer("taskrunner").median();
    out[0].derived.push(Derived {
        name: "taskrunner p50 start delay (µs)".to_owned(),
        value: p50 / 1e3,
        goal: "<= 20".to_owned(),
        met: Some(p50 <= 20_000.0),
    });
    out
}

// ---- async ping-pong ---------------------------------------------------------------------------

/// A run for actor A: `n` round trips, each timed into `samples`.
struct AsyncRun {
    n: usize,
    samples: &'static Samples,
    done: &'static Latch,
    check: &'static Checker,
}

/// Actor B: echoes every message back to A.
async fn echo(mut from_a: UnboundedReceiver<usize>, to_a: UnboundedSender<usize>) {
    while let Some(v) = from_a.recv().await {
        if to_a.send(v).is_err() {
            break;
        }
    }
}

/// Actor A: for each run, `n` times: timestamp, send to B, await the echo, record.
async fn pinger(
    mut runs: UnboundedReceiver<AsyncRun>,
    to_b: UnboundedSender<usize>,
    mut from_b: UnboundedReceiver<usize>,
) {
    while let Some(run) = runs.recv().await {
        for i in 0..run.n {
            let t0 = Instant::now();
            to_b.send(i).expect("B is alive");
            let back = from_b.recv().await.expect("B is alive");
            let rtt = t0.elapsed().as_nanos() as u64;
            if back != i {
                run.check.fail(format!("sent {i}, got {back} back"));
            }
            run.samples.record(i, rtt, run.check);
        }
        run.done.count_down();
    }
}

type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Starts A and B with `spawn(is_a, future)`; `owner` (the pool or runtime) is dropped after
/// the run channel, so that the actors end first.
fn async_pair<'a, O: 'a>(
    name: &'static str,
    owner: O,
    spawn: impl Fn(&O, bool, BoxFuture),
    n: usize,
) -> Contender<'a> {
    let (to_b, from_a) = unbounded_channel();
    let (to_a, from_b) = unbounded_channel();
    let (runs, runs_rx) = unbounded_channel::<AsyncRun>();
    spawn(&owner, false, Box::pin(echo(from_a, to_a)));
    spawn(&owner, true, Box::pin(pinger(runs_rx, to_b, from_b)));
    let (samples, done, check) = (Samples::leak(n), Latch::leak(), Checker::leak());
    struct Pair<O> {
        runs: UnboundedSender<AsyncRun>,
        _owner: O,
    }
    let pair = Pair {
        runs,
        _owner: owner,
    };
    contender(name, move |pass| {
        // Borrow the whole pair, so that the closure owns the owner too (not only `runs`).
        let pair = &pair;
        let n = pass.scale(n);
        samples.reset(n);
        done.reset(1);
        let run = AsyncRun {
            n,
            samples,
            done,
            check,
        };
        if pair.runs.send(run).is_err() {
            panic!("{name}: actor A is gone");
        }
        done.wait();
        check.assert_ok(name);
        let v = samples.sorted(n, name);
        vec![mean(&v), pct(&v, 50.0)]
    })
}

fn workload_async(cfg: &Config) -> Vec<WorkloadResult> {
    let n = cfg.size(100_000, 2_000);
    let w = cfg.workers;
    let tr = Taskrunner::new(w);
    let seqs = [
        tr.pool.create_sequenced_task_runner(TaskTraits::default()),
        tr.pool.create_sequenced_task_runner(TaskTraits::default()),
    ];
    let name = format!(
        "async actors ping-pong over tokio mpsc ({} round trips)",
        human_count(n)
    );
    measure(
        cfg,
        vec![
            spec(
                "async.mean",
                name.clone(),
                "rtt_mean_ns",
                Unit::Nanos,
                false,
                NO_GOAL,
            ),
            spec("async.p50", name, "rtt_p50_ns", Unit::Nanos, false, NO_GOAL),
        ],
        "taskrunner_post_future",
        vec![
            async_pair(
                "taskrunner_post_future",
                (seqs, tr),
                |(seqs, _), is_a, fut| {
                    // The handle is dropped: the actor ends when its channel closes.
                    drop(
                        seqs[usize::from(is_a)]
                            .post_future(fut)
                            .expect("post the actor"),
                    );
                },
                n,
            ),
            async_pair(
                "tokio_spawn",
                tokio_runtime(w),
                |rt, _, fut| drop(rt.spawn(fut)),
                n,
            ),
        ],
    )
}

// ---- main --------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if std::env::var(CHILD_ENV).as_deref() == Ok("memory") {
        memory_child(&Config::from_env());
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing, and `--test` is the
    // explicit smoke request: without `--bench`, or with `--test`, only the smoke run (the
    // convention criterion's benches follow too).
    let smoke = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let cfg = if smoke {
        Config::smoke()
    } else {
        Config::from_env()
    };
    let start = (utc_now(), loadavg());
    println!(
        "engine bench: {} workers, {} rounds{}, nproc {}, loadavg {}",
        cfg.workers,
        cfg.rounds,
        match (smoke, cfg.quick) {
            (true, _) => ", SMOKE (--test or no --bench: quick A only, no JSON)",
            (false, true) => ", QUICK (smoke sizes: not a measurement)",
            (false, false) => "",
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        start.1.map_or_else(
            || "n/a".to_owned(),
            |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
        )
    );
    let t0 = Instant::now();
    let mut all = Vec::new();
    for (id, f) in WORKLOADS {
        if cfg.wants(id) {
            let results = f(&cfg);
            for r in &results {
                r.print();
            }
            all.extend(results);
        }
    }
    println!("\ntotal time {:.1} s", t0.elapsed().as_secs_f64());
    if let Some(path) = &cfg.json {
        write_json(&cfg, path, start, &all);
    }
}
