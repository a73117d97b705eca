//! Log lines for faults that repeat (a broker down, a write that keeps
//! failing): at most one per interval, saying how many were held back, so
//! that an outage is told once in a while instead of hundreds of times a
//! second.

use std::time::{Duration, Instant};

/// How often a repeating fault is logged.
pub const EVERY: Duration = Duration::from_secs(10);

/// One kind of repeating line.
#[derive(Debug, Clone)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(EVERY)
    }
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// Whether to log the fault that happened at `now`: `Some(n)` with the
    /// number of its occurrences held back since the last line, or `None`.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if !due {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_once_per_interval_with_the_count_held_back() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(10));
        assert_eq!(t.allow(t0), Some(0));
        for ms in 1..=205 {
            assert_eq!(t.allow(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(t.allow(t0 + Duration::from_secs(10)), Some(205));
        assert_eq!(t.allow(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(25)), Some(1));
    }
}
