//! The small arithmetic the benchmarks share: wall-clock stamps, percentiles over samples in
//! milliseconds, and `BENCH_*` knobs from the environment.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, comparable across processes (the probes, the bench).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// The environment variable `name` as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (nearest rank) of `sorted`; NaN for no samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

pub fn median(values: &[f64]) -> f64 {
    percentile(&sorted(values), 0.5)
}

pub fn worst(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

/// Samples as whole milliseconds, comma-separated.
pub fn list_ms(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let samples = sorted(&[5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(samples, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(percentile(&samples, 0.0), 1.0);
        assert_eq!(percentile(&samples, 0.99), 5.0);
        assert_eq!(median(&[5.0, 1.0, 4.0, 2.0, 3.0]), 3.0);
        assert_eq!(worst(&[5.0, 1.0, 7.0]), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert_eq!(list_ms(&[1.4, 2.6]), "1, 3");
    }
}
