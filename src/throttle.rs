//! Log lines for faults that repeat (a broker down, a write that keeps
//! failing): at most one per interval, saying how many were held back, so
//! that an outage is told once in a while instead of hundreds of times a
//! second. `due` keeps one throttle per kind of line for the whole process.

use std::collections::HashMap;
use std::sync::Mutex;
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

/// The throttles of every kind of line, shared by the whole process.
static SEEN: Mutex<Option<HashMap<String, Throttle>>> = Mutex::new(None);

/// Whether a line of this kind is due now: `Some(held back since the
/// last)`, or `None`.
pub fn due(kind: &str) -> Option<u64> {
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let throttles = seen.get_or_insert_with(HashMap::new);
    match throttles.get_mut(kind) {
        Some(throttle) => throttle.allow(Instant::now()),
        None => throttles
            .entry(kind.to_string())
            .or_default()
            .allow(Instant::now()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_of_line_is_due_once_until_the_interval_passes() {
        assert_eq!(due("test kind"), Some(0));
        assert_eq!(due("test kind"), None);
        assert_eq!(due("test kind"), None);
        assert_eq!(due("another test kind"), Some(0));
    }

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
