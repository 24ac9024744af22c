//! Latency percentiles and the median over rounds.

use std::time::Duration;

use serde::Serialize;

/// One round, or the median of several: throughput and latency percentiles.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub ops: u64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU time (user + system) of the system's processes, all nodes, per operation; 0 where
    /// not measured.
    pub cpu_us_per_op: f64,
    /// Operations sent again after an HTTP 503 (`load::RETRIES_ON_503`); the median of
    /// several rounds carries their sum.
    pub retried_503: u64,
}

/// The `q`-quantile (0..=1) of `sorted` by nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Summary {
    latencies.sort_unstable();
    Summary {
        ops: latencies.len() as u64,
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        p50_ms: ms(quantile(&latencies, 0.50)),
        p99_ms: ms(quantile(&latencies, 0.99)),
        cpu_us_per_op: 0.0,
        retried_503: 0,
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// Each figure is the median of that figure over the rounds.
pub fn median_of(rounds: &[Summary]) -> Summary {
    Summary {
        ops: rounds.first().map_or(0, |r| r.ops),
        ops_per_sec: median(rounds.iter().map(|r| r.ops_per_sec).collect()),
        p50_ms: median(rounds.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(rounds.iter().map(|r| r.p99_ms).collect()),
        cpu_us_per_op: median(rounds.iter().map(|r| r.cpu_us_per_op).collect()),
        retried_503: rounds.iter().map(|r| r.retried_503).sum(),
    }
}
