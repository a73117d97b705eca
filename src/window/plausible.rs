//! Whether an event time can be true. Device clocks are wrong all the time
//! (an RTC unset after a battery change, firmware that sends seconds or
//! microseconds): one such time taken as the partition's latest would raise
//! the watermark past every real sample. An event time is implausible
//! before 2000-01-01, from 2100-01-01 on, or more than `max_future_skew`
//! ahead of its record's reference time (its Kafka timestamp, or
//! `aggregate --now`), which keeps a re-run's decisions the same.

/// 2000-01-01T00:00:00Z.
pub const EARLIEST_MS: i64 = 946_684_800_000;
/// 2100-01-01T00:00:00Z: later times are implausible whatever the reference.
pub const LATEST_MS: i64 = 4_102_444_800_000;

/// Why `event_time` cannot be true, or `None` when it can. `reference` is
/// `None` for a record without a timestamp: the fixed bounds apply alone.
pub fn implausibility(
    event_time: i64,
    reference: Option<i64>,
    max_future_skew_ms: i64,
) -> Option<String> {
    use crate::event::format_utc_millis as utc;
    if event_time < EARLIEST_MS {
        return Some(format!(
            "event time {} is before 2000-01-01",
            utc(event_time)
        ));
    }
    if event_time >= LATEST_MS {
        return Some(format!("event time {} is after 2099", utc(event_time)));
    }
    let reference = reference?;
    let ahead = event_time.saturating_sub(reference);
    (ahead > max_future_skew_ms).then(|| {
        format!(
            "event time {} is {} s ahead of its record's time {} (at most {} s allowed)",
            utc(event_time),
            ahead / 1000,
            utc(reference),
            max_future_skew_ms / 1000
        )
    })
}

/// Whether a time saved from an earlier run (a watermark, the end of the
/// last acknowledged window) is implausible at `now_ms`: ahead of it by more
/// than the skew an event time may have.
pub fn saved_time_implausible(saved: i64, now_ms: i64, max_future_skew_ms: i64) -> bool {
    saved != i64::MIN && (saved >= LATEST_MS || saved.saturating_sub(now_ms) > max_future_skew_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// 2026-03-15T07:05:00Z.
    const NOW: i64 = 1_773_558_300_000;

    #[test]
    fn times_within_the_skew_of_the_reference_are_plausible() {
        assert_eq!(implausibility(NOW, Some(NOW), HOUR), None);
        assert_eq!(implausibility(NOW + HOUR, Some(NOW), HOUR), None);
        assert_eq!(implausibility(NOW - 365 * 24 * HOUR, Some(NOW), HOUR), None);
        assert_eq!(implausibility(EARLIEST_MS, Some(NOW), HOUR), None);
    }

    #[test]
    fn broken_clocks_are_implausible() {
        for t in [
            NOW + HOUR + 1,
            NOW * 1000, // microseconds
            i64::MAX,
            i64::MIN,
            0,
            NOW / 1000, // seconds
            EARLIEST_MS - 1,
        ] {
            assert!(implausibility(t, Some(NOW), HOUR).is_some(), "{t}");
        }
        let why = implausibility(NOW + 2 * HOUR, Some(NOW), HOUR).unwrap();
        assert_eq!(
            why,
            "event time 2026-03-15T09:05:00.000Z is 7200 s ahead of its record's time 2026-03-15T07:05:00.000Z (at most 3600 s allowed)"
        );
    }

    #[test]
    fn without_a_reference_only_the_fixed_bounds_apply() {
        assert_eq!(implausibility(NOW + 10 * HOUR, None, HOUR), None);
        assert!(implausibility(NOW * 1000, None, HOUR).is_some());
        assert!(implausibility(LATEST_MS, None, HOUR).is_some());
        // The reference itself at an end of i64: no overflow.
        assert!(implausibility(i64::MAX - 1, Some(i64::MIN), HOUR).is_some());
        assert_eq!(implausibility(NOW, Some(i64::MAX), HOUR), None);
    }

    #[test]
    fn saved_times_ahead_of_now_are_implausible() {
        assert!(
            !saved_time_implausible(i64::MIN, NOW, HOUR),
            "nothing saved"
        );
        assert!(!saved_time_implausible(NOW - HOUR, NOW, HOUR));
        assert!(!saved_time_implausible(NOW + HOUR, NOW, HOUR));
        assert!(saved_time_implausible(NOW + HOUR + 1, NOW, HOUR));
        assert!(saved_time_implausible(NOW * 1000, NOW, HOUR));
    }
}
