//! Shared pieces of Accord's benchmarks: timing, percentiles, and the report table.

use std::time::{Duration, Instant};

/// Measures `f` once and returns operations per second for `ops` operations.
pub fn rate(ops: u64, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

/// A latency histogram in nanoseconds.
#[derive(Debug)]
pub struct Latency(hdrhistogram::Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        Self(
            hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("histogram bounds"),
        )
    }
    pub fn record(&mut self, d: Duration) {
        let _ = self.0.record(d.as_nanos().max(1) as u64);
    }
    pub fn since(&mut self, t: Instant) {
        self.record(t.elapsed());
    }
    pub fn p(&self, q: f64) -> Duration {
        Duration::from_nanos(self.0.value_at_quantile(q))
    }
    /// Adds another histogram's samples to this one.
    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }
    pub fn count(&self) -> u64 {
        self.0.len()
    }
}

/// One line of a benchmark report: a measured figure beside its baseline.
#[derive(Debug)]
pub struct Row {
    pub name: String,
    pub value: String,
    pub baseline: String,
    pub ratio: String,
    pub goal: String,
}

/// Prints rows as a Markdown table.
pub fn print_table(rows: &[Row]) {
    println!("| measurement | Accord | baseline (same run) | ratio | goal |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.name, r.value, r.baseline, r.ratio, r.goal
        );
    }
}

pub fn fmt_rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.1}k/s", r / 1000.0)
    } else {
        format!("{r:.0}/s")
    }
}

pub fn fmt_dur(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
