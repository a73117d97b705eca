//! Half-hours of a monitor's local clock: which window an instant belongs to,
//! and how its `reading_time` is written.
//!
//! A window is `(end - 30 min, end]` in real time, and `end` falls on a local
//! :00 or :30. Every zone's offsets in use are whole multiples of 15 minutes,
//! so the local half-hour grid is the UTC grid shifted by `offset mod 30 min`:
//! the same shift on both sides of a DST change (of 30 or 60 minutes), and
//! 15 minutes for zones on :45 offsets (Asia/Kathmandu, Australia/Eucla,
//! Pacific/Chatham).

use chrono::format::{Item, StrftimeItems};
use chrono::{Offset, TimeZone};
use chrono_tz::Tz;
use std::sync::OnceLock;

/// Thirty minutes in milliseconds.
pub const HALF_HOUR_MS: i64 = 30 * 60 * 1000;

/// The UTC offset in effect at `ms`, in milliseconds.
pub fn offset_ms(tz: &Tz, ms: i64) -> i64 {
    let utc = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()) * 1000
}

/// The end of the window holding the instant `ms` (epoch milliseconds).
pub fn window_end(tz: &Tz, ms: i64) -> i64 {
    let phase = offset_ms(tz, ms).rem_euclid(HALF_HOUR_MS);
    align_up(ms, phase)
}

/// The smallest `e >= ms` with `e ≡ phase (mod 30 min)`.
fn align_up(ms: i64, phase: i64) -> i64 {
    let k = (ms - phase - 1).div_euclid(HALF_HOUR_MS) + 1;
    phase + k * HALF_HOUR_MS
}

/// `reading_time`: the window end in the monitor's zone with that instant's
/// offset, to the millisecond, e.g. `2026-03-15T16:30:00.000+08:00`.
pub fn reading_time(tz: &Tz, end_ms: i64) -> String {
    match tz.timestamp_millis_opt(end_ms).single() {
        Some(t) => t
            .format_with_items(reading_time_format().iter())
            .to_string(),
        None => end_ms.to_string(),
    }
}

/// `reading_time`'s format, parsed once rather than for every window.
fn reading_time_format() -> &'static [Item<'static>] {
    static FORMAT: OnceLock<Vec<Item<'static>>> = OnceLock::new();
    FORMAT.get_or_init(|| StrftimeItems::new("%Y-%m-%dT%H:%M:%S%.3f%:z").collect())
}

/// The end of the local day that the window ending `end_ms` belongs to:
/// the first local midnight at or after it (a 23- or 25-hour day ends at
/// its own midnight). Where a zone skips midnight, the first instant after.
pub fn local_day_end(tz: &Tz, end_ms: i64) -> i64 {
    let Some(utc) = chrono::DateTime::from_timestamp_millis(end_ms) else {
        return end_ms;
    };
    let local = utc.with_timezone(tz).naive_local();
    let date = if local.time() == chrono::NaiveTime::MIN {
        Some(local.date())
    } else {
        local.date().succ_opt()
    };
    date.and_then(|d| local_midnight(tz, d))
        .map_or(end_ms, |t| t.max(end_ms))
}

/// The instant the local day `date` starts: its midnight, or, in a zone
/// that skips midnight (a DST change at 00:00), the end of the gap.
pub fn local_midnight(tz: &Tz, date: chrono::NaiveDate) -> Option<i64> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    (0..=4)
        .map(|half_hours| midnight + chrono::Duration::minutes(30 * half_hours))
        .find_map(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.timestamp_millis())
}

/// Whether `end_ms` is a local midnight (the last window of a local day).
pub fn is_local_midnight(tz: &Tz, end_ms: i64) -> bool {
    let local = end_ms + offset_ms(tz, end_ms);
    local.rem_euclid(24 * 3600 * 1000) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn a_local_day_ends_at_its_own_midnight() {
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let london: Tz = "Europe/London".parse().unwrap();
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let cases = [
            (
                &shanghai,
                "2026-03-15T20:00:00+08:00",
                "2026-03-16T00:00:00+08:00",
            ),
            (
                &shanghai,
                "2026-03-16T00:00:00+08:00",
                "2026-03-16T00:00:00+08:00",
            ),
            (
                &shanghai,
                "2026-03-16T00:30:00+08:00",
                "2026-03-17T00:00:00+08:00",
            ),
            // A 23-hour day and a 25-hour day.
            (
                &london,
                "2026-03-29T12:00:00+01:00",
                "2026-03-30T00:00:00+01:00",
            ),
            (
                &london,
                "2026-10-25T12:00:00+00:00",
                "2026-10-26T00:00:00+00:00",
            ),
            // Midnight skipped: the day starts at 01:00 -03.
            (
                &santiago,
                "2026-09-05T12:00:00-04:00",
                "2026-09-06T01:00:00-03:00",
            ),
        ];
        for (tz, end, day_end) in cases {
            assert_eq!(local_day_end(tz, at(end)), at(day_end), "{tz} {end}");
        }
    }
}
