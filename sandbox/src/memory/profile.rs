//! The memory profile of a run: what result.json and the demo summary report, and the sizing advice.
//!
//! Memory stays bounded however long the run: percentiles come from a log-linear histogram (at most 7,424
//! buckets, each at most 1/128 of its lower bound wide; a percentile is reported as its bucket's midpoint
//! clamped to the observed range, so it is within 0.4 % of the exact nearest-rank value), and the curve
//! keeps at most 512 points, merging neighbours pairwise by their maximum as the run grows (peaks survive
//! downsampling), then is cut to at most 64 points for the sparkline.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::guard::GuardAction;
use super::probe::{LimitSource, MemoryLimit};
use super::sampler::{ProcMem, Sample};

/// Points the recorder keeps for the curve before merging pairs.
pub const CURVE_KEEP: usize = 512;
/// Points in the profile's curve.
pub const CURVE_POINTS: usize = 64;
/// Headroom over the peak a recommended size must leave.
pub const HEADROOM: f64 = 0.25;

const MIB: u64 = 1 << 20;

/// The memory section of result.json. Sizes in bytes; `curve` is used bytes over the run, oldest first,
/// each point the maximum over `curve_step_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryProfile {
    pub limit_bytes: u64,
    pub limit_source: LimitSource,
    pub peak_bytes: u64,
    pub p50_bytes: u64,
    pub p90_bytes: u64,
    pub p95_bytes: u64,
    pub p99_bytes: u64,
    pub samples: u64,
    pub seconds_above_warn: f64,
    /// The largest processes at the peak sample, largest first.
    pub top_at_peak: Vec<ProcMem>,
    /// Kernel OOM kills seen: the larger of the cgroup counter's increase during the run and the kills
    /// recorded by the supervisor.
    pub oom_kills: u64,
    /// Processes the supervisor saw killed by the kernel's OOM killer.
    pub oom_killed: Vec<OomKillRecord>,
    pub actions: Vec<MemoryActionRecord>,
    pub recommendation: Option<Recommendation>,
    pub curve: Vec<u64>,
    pub curve_step_seconds: f64,
}

/// What the guard did, and when (seconds since sampling started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryActionRecord {
    pub at_seconds: f64,
    #[serde(flatten)]
    pub action: MemoryAction,
}

/// `{"kind": "warn" | "kill_tool" | "stop_agent", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MemoryAction {
    Warn {
        used_bytes: u64,
        limit_bytes: u64,
        percent: f64,
    },
    KillTool {
        pid: u32,
        name: String,
        rss_bytes: u64,
    },
    StopAgent {
        reason: String,
    },
}

/// A process of the agent's tree killed by the kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomKillRecord {
    pub at_seconds: f64,
    pub pid: u32,
    pub name: String,
}

/// The smallest Fargate size that leaves [`HEADROOM`] over the peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The task's vCPU, or the next larger size when no memory size of the task's vCPU fits.
    pub vcpu: f64,
    pub memory_mib: u64,
    /// `memory / peak - 1` (0.25 = 25 %), rounded to 3 decimals.
    pub headroom: f64,
}

/// Accumulates samples and actions into a [`MemoryProfile`].
#[derive(Debug, Clone)]
pub struct ProfileRecorder {
    limit: MemoryLimit,
    warn_bytes: u64,
    interval: Duration,
    samples: u64,
    min: u64,
    peak: u64,
    top_at_peak: Vec<ProcMem>,
    histogram: Histogram,
    above_warn: Duration,
    last_elapsed: Option<Duration>,
    oom_counter: Option<(u64, u64)>,
    oom_killed: Vec<OomKillRecord>,
    actions: Vec<MemoryActionRecord>,
    curve: Curve,
}

impl ProfileRecorder {
    /// `interval` is the sampling interval (`--memory-interval`).
    pub fn new(limit: MemoryLimit, warn_ratio: f64, interval: Duration) -> Self {
        let warn_bytes = (limit.bytes as f64 * warn_ratio) as u64;
        ProfileRecorder {
            limit,
            warn_bytes,
            interval,
            samples: 0,
            min: u64::MAX,
            peak: 0,
            top_at_peak: Vec::new(),
            histogram: Histogram::default(),
            above_warn: Duration::ZERO,
            last_elapsed: None,
            oom_counter: None,
            oom_killed: Vec::new(),
            actions: Vec::new(),
            curve: Curve::default(),
        }
    }

    pub fn record(&mut self, s: &Sample) {
        let used = s.used_bytes;
        self.samples += 1;
        self.min = self.min.min(used);
        if used > self.peak || self.samples == 1 {
            self.peak = used;
            self.top_at_peak = s.processes.clone();
        }
        self.histogram.add(used);
        if used >= self.warn_bytes {
            let step = match self.last_elapsed {
                Some(prev) => s.elapsed.saturating_sub(prev),
                None => self.interval,
            };
            self.above_warn += step;
        }
        self.last_elapsed = Some(s.elapsed);
        if let Some(now) = s.cgroup_oom_kills {
            let first = self.oom_counter.map_or(now, |(first, _)| first);
            self.oom_counter = Some((first, now));
        }
        self.curve.push(used);
    }

    /// Records a guard decision (`GuardAction::None` is ignored).
    pub fn record_action(&mut self, action: &GuardAction) {
        let action = match action {
            GuardAction::None => return,
            GuardAction::Warn {
                used,
                limit,
                percent,
            } => MemoryAction::Warn {
                used_bytes: *used,
                limit_bytes: *limit,
                percent: (percent * 10.0).round() / 10.0,
            },
            GuardAction::KillTool {
                pid,
                name,
                rss_bytes,
            } => MemoryAction::KillTool {
                pid: *pid,
                name: name.clone(),
                rss_bytes: *rss_bytes,
            },
            GuardAction::StopAgent { reason } => MemoryAction::StopAgent {
                reason: reason.clone(),
            },
        };
        self.actions.push(MemoryActionRecord {
            at_seconds: self.now_seconds(),
            action,
        });
    }

    /// Records a process of the agent's tree killed by the kernel's OOM killer.
    pub fn record_oom_kill(&mut self, pid: u32, name: String) {
        self.oom_killed.push(OomKillRecord {
            at_seconds: self.now_seconds(),
            pid,
            name,
        });
    }

    pub fn finish(&self, vcpu: f64) -> MemoryProfile {
        let pct = |p: f64| self.histogram.percentile(p, self.min, self.peak);
        let kernel_kills = self
            .oom_counter
            .map_or(0, |(first, last)| last.saturating_sub(first));
        let (curve, points_per_step) = self.curve.reduce(CURVE_POINTS);
        MemoryProfile {
            limit_bytes: self.limit.bytes,
            limit_source: self.limit.source,
            peak_bytes: self.peak,
            p50_bytes: pct(0.50),
            p90_bytes: pct(0.90),
            p95_bytes: pct(0.95),
            p99_bytes: pct(0.99),
            samples: self.samples,
            seconds_above_warn: round3(self.above_warn.as_secs_f64()),
            top_at_peak: self.top_at_peak.clone(),
            oom_kills: kernel_kills.max(self.oom_killed.len() as u64),
            oom_killed: self.oom_killed.clone(),
            actions: self.actions.clone(),
            recommendation: recommend(self.peak, vcpu),
            curve,
            curve_step_seconds: round3(self.interval.as_secs_f64() * points_per_step as f64),
        }
    }

    fn now_seconds(&self) -> f64 {
        round3(self.last_elapsed.unwrap_or_default().as_secs_f64())
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The task's vCPU first; when even its largest memory does not fit, the next larger vCPU sizes.
fn recommend(peak: u64, vcpu: f64) -> Option<Recommendation> {
    if peak == 0 {
        return None;
    }
    let larger = FARGATE_VCPU.iter().copied().filter(|v| *v > vcpu + 1e-9);
    std::iter::once(vcpu).chain(larger).find_map(|v| {
        fargate_memory_mib(peak, v).map(|mib| Recommendation {
            vcpu: v,
            memory_mib: mib,
            headroom: round3((mib * MIB) as f64 / peak as f64 - 1.0),
        })
    })
}

/// Fargate vCPU sizes.
const FARGATE_VCPU: [f64; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

/// Valid Fargate memory sizes (MiB) for a vCPU size, ascending; `None` for a vCPU Fargate does not offer.
pub fn fargate_memory_sizes(vcpu: f64) -> Option<Vec<u64>> {
    let gib = |from: u64, to: u64, step: u64| {
        (from..=to)
            .step_by(step as usize)
            .map(|g| g * 1024)
            .collect()
    };
    let is = |v: f64| (vcpu - v).abs() < 1e-9;
    if is(0.25) {
        Some(vec![512, 1024, 2048])
    } else if is(0.5) {
        Some(gib(1, 4, 1))
    } else if is(1.0) {
        Some(gib(2, 8, 1))
    } else if is(2.0) {
        Some(gib(4, 16, 1))
    } else if is(4.0) {
        Some(gib(8, 30, 1))
    } else if is(8.0) {
        Some(gib(16, 60, 4))
    } else if is(16.0) {
        Some(gib(32, 120, 8))
    } else {
        None
    }
}

/// The smallest valid Fargate memory size (MiB) for `vcpu` that is at least 1.25 x `peak_bytes`; `None`
/// when even the largest does not fit or `vcpu` is not a Fargate size.
pub fn fargate_memory_mib(peak_bytes: u64, vcpu: f64) -> Option<u64> {
    let need = (u128::from(peak_bytes) * 5).div_ceil(4);
    fargate_memory_sizes(vcpu)?
        .into_iter()
        .find(|mib| u128::from(*mib) * u128::from(MIB) >= need)
}

/// Draws `curve` with `▁▂▃▄▅▆▇█`, one character per point, heights relative to the curve's maximum
/// (zero is `▁`, the maximum `█`). Empty for an empty curve.
pub fn sparkline(curve: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = curve.iter().copied().max().unwrap_or(0);
    curve
        .iter()
        .map(|&v| {
            if max == 0 {
                return BARS[0];
            }
            let level = (u128::from(v) * 8).div_ceil(u128::from(max)).clamp(1, 8) - 1;
            BARS[level as usize]
        })
        .collect()
}

/// Log-linear histogram: values below 256 exactly, above in 128 sub-buckets per power of two.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: BTreeMap<u32, u64>,
    count: u64,
}

const SUB_BITS: u32 = 7;
const EXACT_BELOW: u64 = 1 << (SUB_BITS + 1);

impl Histogram {
    fn add(&mut self, v: u64) {
        *self.buckets.entry(bucket_of(v)).or_default() += 1;
        self.count += 1;
    }

    /// Nearest-rank percentile (`p` in 0..=1), as the bucket midpoint clamped to `[min, max]`.
    fn percentile(&self, p: f64, min: u64, max: u64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (&idx, &n) in &self.buckets {
            seen += n;
            if seen >= rank {
                let (lo, hi) = bucket_range(idx);
                let mid = (lo + (hi - 1)) / 2;
                return u64::try_from(mid).unwrap_or(u64::MAX).clamp(min, max);
            }
        }
        max
    }
}

fn bucket_of(v: u64) -> u32 {
    if v < EXACT_BELOW {
        return v as u32;
    }
    let e = 63 - v.leading_zeros();
    let sub = ((v >> (e - SUB_BITS)) as u32) & ((1 << SUB_BITS) - 1);
    EXACT_BELOW as u32 + (e - (SUB_BITS + 1)) * (1 << SUB_BITS) + sub
}

/// `[lo, hi)` of a bucket.
fn bucket_range(idx: u32) -> (u128, u128) {
    if u64::from(idx) < EXACT_BELOW {
        return (u128::from(idx), u128::from(idx) + 1);
    }
    let k = idx - EXACT_BELOW as u32;
    let e = k / (1 << SUB_BITS) + SUB_BITS + 1;
    let sub = u128::from(k % (1 << SUB_BITS));
    let shift = e - SUB_BITS;
    ((128 + sub) << shift, (129 + sub) << shift)
}

/// The downsampled curve: at most [`CURVE_KEEP`] points, each the max of `stride` consecutive samples.
#[derive(Debug, Clone)]
struct Curve {
    points: Vec<u64>,
    stride: u64,
    acc: u64,
    acc_n: u64,
}

impl Default for Curve {
    fn default() -> Curve {
        Curve {
            points: Vec::new(),
            stride: 1,
            acc: 0,
            acc_n: 0,
        }
    }
}

impl Curve {
    fn push(&mut self, v: u64) {
        self.acc = self.acc.max(v);
        self.acc_n += 1;
        if self.acc_n < self.stride {
            return;
        }
        self.points.push(self.acc);
        self.acc = 0;
        self.acc_n = 0;
        if self.points.len() >= CURVE_KEEP {
            self.points = self
                .points
                .chunks(2)
                .map(|c| c.iter().copied().max().unwrap_or(0))
                .collect();
            self.stride *= 2;
        }
    }

    /// At most `n` points (max-merged groups), and how many samples each point stands for.
    fn reduce(&self, n: usize) -> (Vec<u64>, u64) {
        let mut all = self.points.clone();
        if self.acc_n > 0 {
            all.push(self.acc);
        }
        let group = all.len().div_ceil(n).max(1);
        let curve = all
            .chunks(group)
            .map(|c| c.iter().copied().max().unwrap_or(0))
            .collect();
        (curve, self.stride * group as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn limit() -> MemoryLimit {
        MemoryLimit {
            bytes: 1000 * MIB,
            source: LimitSource::Flag,
            cgroup_dir: None,
        }
    }

    fn sample(secs: f64, used: u64) -> Sample {
        Sample {
            elapsed: Duration::from_secs_f64(secs),
            used_bytes: used,
            cgroup_oom_kills: None,
            processes: Vec::new(),
        }
    }

    /// Deterministic pseudo-random values (xorshift), no dependency needed.
    fn values(n: usize, seed: u64) -> Vec<u64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                100 * MIB + x % (3 * GIB)
            })
            .collect()
    }

    fn exact_percentile(sorted: &[u64], p: f64) -> u64 {
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn percentiles_within_documented_error() {
        for (n, seed) in [(1usize, 7u64), (10, 9), (1000, 11), (20_000, 13)] {
            let vals = values(n, seed);
            let mut rec = ProfileRecorder::new(limit(), 0.85, Duration::from_secs(1));
            for (i, v) in vals.iter().enumerate() {
                rec.record(&sample(i as f64, *v));
            }
            let p = rec.finish(4.0);
            let mut sorted = vals.clone();
            sorted.sort_unstable();
            assert_eq!(p.samples, n as u64);
            assert_eq!(p.peak_bytes, *sorted.last().unwrap());
            for (got, q) in [
                (p.p50_bytes, 0.5),
                (p.p90_bytes, 0.9),
                (p.p95_bytes, 0.95),
                (p.p99_bytes, 0.99),
            ] {
                let want = exact_percentile(&sorted, q);
                let err = (got as f64 - want as f64).abs() / want as f64;
                assert!(
                    err <= 1.0 / 256.0,
                    "n={n} p{q}: got {got} want {want} err {err}"
                );
            }
        }
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.add(v);
        }
        assert_eq!(h.percentile(0.5, 1, 100), 50);
        assert_eq!(h.percentile(0.99, 1, 100), 99);
        assert_eq!(h.percentile(1.0, 1, 100), 100);
    }

    #[test]
    fn bucket_ranges_contain_their_values() {
        for v in [
            0,
            1,
            255,
            256,
            257,
            1000,
            MIB + 12345,
            3 * GIB + 1,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let (lo, hi) = bucket_range(bucket_of(v));
            assert!(
                lo <= u128::from(v) && u128::from(v) < hi,
                "{v}: [{lo}, {hi})"
            );
            if v >= 256 {
                assert!((hi - lo) * 128 <= lo, "{v}: bucket too wide");
            }
        }
    }

    #[test]
    fn long_runs_stay_bounded_and_keep_the_peak() {
        let mut rec = ProfileRecorder::new(limit(), 0.85, Duration::from_secs(1));
        let n = 200_000u64;
        for i in 0..n {
            let used = if i == 123_457 {
                999 * MIB
            } else {
                200 * MIB + (i % 1000) * MIB / 10
            };
            rec.record(&sample(i as f64, used));
        }
        assert!(
            rec.curve.points.len() < CURVE_KEEP,
            "{}",
            rec.curve.points.len()
        );
        assert!(rec.histogram.buckets.len() <= 256 + 56 * 128);
        let p = rec.finish(4.0);
        assert!(
            p.curve.len() <= CURVE_POINTS && p.curve.len() >= CURVE_POINTS / 2,
            "{}",
            p.curve.len()
        );
        assert_eq!(p.curve.iter().copied().max(), Some(999 * MIB));
        assert_eq!(p.peak_bytes, 999 * MIB);
        // The points together span the run.
        let span = p.curve_step_seconds * p.curve.len() as f64;
        assert!(span >= n as f64 && span < 2.0 * n as f64, "{span}");
    }

    #[test]
    fn short_runs_keep_every_sample_in_the_curve() {
        let mut rec = ProfileRecorder::new(limit(), 0.85, Duration::from_millis(500));
        for (i, v) in [5, 9, 7].iter().enumerate() {
            rec.record(&sample(i as f64 * 0.5, v * MIB));
        }
        let p = rec.finish(4.0);
        assert_eq!(p.curve, vec![5 * MIB, 9 * MIB, 7 * MIB]);
        assert_eq!(p.curve_step_seconds, 0.5);
    }

    #[test]
    fn seconds_above_warn_top_at_peak_and_oom_counts() {
        let mut rec = ProfileRecorder::new(limit(), 0.85, Duration::from_secs(1));
        let top = vec![ProcMem {
            pid: 7,
            name: "node".into(),
            rss_bytes: 900 * MIB,
            is_agent: false,
            is_supervisor: false,
        }];
        // 850 MiB is the warning level; samples at 3, 4, 5 (and the partial step to 5.5) are above.
        let used = [100, 200, 300, 860, 950, 900, 900, 100];
        let times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.5, 6.5];
        for (i, (&u, &t)) in used.iter().zip(&times).enumerate() {
            let mut s = sample(t, u * MIB);
            s.cgroup_oom_kills = Some(if i < 5 { 2 } else { 4 });
            if u == 950 {
                s.processes = top.clone();
            }
            rec.record(&s);
        }
        rec.record_oom_kill(7, "node".into());
        let p = rec.finish(4.0);
        assert_eq!(p.seconds_above_warn, 3.5);
        assert_eq!(p.top_at_peak, top);
        assert_eq!(p.peak_bytes, 950 * MIB);
        // Counter rose by 2; one kill recorded by the supervisor: the larger wins.
        assert_eq!(p.oom_kills, 2);
        assert_eq!(p.oom_killed.len(), 1);
        assert_eq!(p.oom_killed[0].at_seconds, 6.5);
    }

    #[test]
    fn supervisor_recorded_kills_count_without_a_cgroup_counter() {
        let mut rec = ProfileRecorder::new(limit(), 0.85, Duration::from_secs(1));
        rec.record(&sample(0.0, MIB));
        rec.record_oom_kill(9, "claude".into());
        assert_eq!(rec.finish(4.0).oom_kills, 1);
    }

    #[test]
    fn actions_are_recorded_with_time_and_serialize_tagged() {
        let mut rec = ProfileRecorder::new(limit(), 0.85, Duration::from_secs(1));
        rec.record(&sample(12.25, 960 * MIB));
        rec.record_action(&GuardAction::None);
        rec.record_action(&GuardAction::Warn {
            used: 900 * MIB,
            limit: 1000 * MIB,
            percent: 90.04,
        });
        rec.record_action(&GuardAction::KillTool {
            pid: 42,
            name: "node".into(),
            rss_bytes: 600 * MIB,
        });
        rec.record_action(&GuardAction::StopAgent {
            reason: "the agent itself".into(),
        });
        let p = rec.finish(1.0);
        assert_eq!(p.actions.len(), 3);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json["actions"][1],
            serde_json::json!({"at_seconds": 12.25, "kind": "kill_tool", "pid": 42, "name": "node",
                "rss_bytes": 600 * MIB})
        );
        assert_eq!(json["actions"][0]["kind"], "warn");
        assert_eq!(json["actions"][0]["percent"], 90.0);
        assert_eq!(json["actions"][2]["kind"], "stop_agent");
        assert_eq!(json["limit_source"], "flag");
        let back: MemoryProfile = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn empty_profile_has_no_recommendation() {
        let p = ProfileRecorder::new(limit(), 0.85, Duration::from_secs(1)).finish(4.0);
        assert_eq!((p.samples, p.peak_bytes, p.p99_bytes), (0, 0, 0));
        assert!(p.curve.is_empty());
        assert_eq!(p.recommendation, None);
    }

    #[test]
    fn recommendation_uses_task_vcpu_then_larger() {
        let mut rec = ProfileRecorder::new(limit(), 0.85, Duration::from_secs(1));
        rec.record(&sample(0.0, 10 * GIB));
        let r = rec.finish(4.0).recommendation.unwrap();
        assert_eq!((r.vcpu, r.memory_mib), (4.0, 13 * 1024));
        assert_eq!(r.headroom, 0.3);
        // 0.25 vCPU tops out at 2 GiB; 3 GiB x 1.25 needs 3.75 GiB -> 0.5 vCPU with 4 GiB.
        let mut rec = ProfileRecorder::new(limit(), 0.85, Duration::from_secs(1));
        rec.record(&sample(0.0, 3 * GIB));
        let r = rec.finish(0.25).recommendation.unwrap();
        assert_eq!((r.vcpu, r.memory_mib), (0.5, 4096));
    }

    #[test]
    fn fargate_sizes_respect_headroom_and_table() {
        // Exactly 25 % headroom fits; one byte more does not.
        let peak = 1024 * MIB * 4 / 5;
        assert_eq!(fargate_memory_mib(peak, 0.25), Some(1024));
        assert_eq!(fargate_memory_mib(peak + 1, 0.25), Some(2048));
        assert_eq!(fargate_memory_mib(1, 0.25), Some(512));
        assert_eq!(fargate_memory_mib(2 * GIB, 0.25), None);
        assert_eq!(fargate_memory_mib(1, 0.5), Some(1024));
        assert_eq!(fargate_memory_mib(3 * GIB, 0.5), Some(4096));
        assert_eq!(fargate_memory_mib(1, 1.0), Some(2048));
        assert_eq!(fargate_memory_mib(5 * GIB, 1.0), Some(7 * 1024));
        assert_eq!(fargate_memory_mib(1, 2.0), Some(4096));
        assert_eq!(fargate_memory_mib(12 * GIB, 2.0), Some(15 * 1024));
        assert_eq!(fargate_memory_mib(1, 4.0), Some(8192));
        assert_eq!(fargate_memory_mib(24 * GIB, 4.0), Some(30 * 1024));
        assert_eq!(fargate_memory_mib(24 * GIB + 1, 4.0), None);
        // 8 vCPU in 4 GiB steps from 16; 16 vCPU in 8 GiB steps from 32.
        assert_eq!(fargate_memory_mib(17 * GIB, 8.0), Some(24 * 1024));
        assert_eq!(fargate_memory_mib(1, 8.0), Some(16 * 1024));
        assert_eq!(fargate_memory_mib(1, 16.0), Some(32 * 1024));
        assert_eq!(fargate_memory_mib(33 * GIB, 16.0), Some(48 * 1024));
        assert_eq!(fargate_memory_mib(96 * GIB, 16.0), Some(120 * 1024));
        assert_eq!(fargate_memory_mib(96 * GIB + 1, 16.0), None);
        // Not a Fargate vCPU size.
        assert_eq!(fargate_memory_mib(1, 3.0), None);
        assert_eq!(fargate_memory_sizes(8.0).unwrap().len(), 12);
        assert_eq!(fargate_memory_sizes(4.0).unwrap().len(), 23);
    }

    #[test]
    fn sparkline_levels() {
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[0, 0]), "▁▁");
        assert_eq!(sparkline(&[0, 1, 50, 100]), "▁▁▄█");
        assert_eq!(sparkline(&[7, 7, 7]), "███");
        let ramp: Vec<u64> = (1..=8).collect();
        assert_eq!(sparkline(&ramp), "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline(&[u64::MAX, u64::MAX / 2]), "█▄");
    }
}
