//! Half-hours of a monitor's local clock: which window an instant belongs to,
//! and how its `reading_time` is written.
//!
//! A window is `(end - 30 min, end]` in real time, and `end` falls on a local
//! :00 or :30. Every zone's offsets in use are whole multiples of 15 minutes,
//! so the local half-hour grid is the UTC grid shifted by `offset mod 30 min`:
//! the same shift on both sides of a DST change (of 30 or 60 minutes), and
//! 15 minutes for zones on :45 offsets (Asia/Kathmandu, Australia/Eucla,
//! Pacific/Chatham).

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

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
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        None => end_ms.to_string(),
    }
}

/// Whether `end_ms` is a local midnight (the last window of a local day).
pub fn is_local_midnight(tz: &Tz, end_ms: i64) -> bool {
    let local = end_ms + offset_ms(tz, end_ms);
    local.rem_euclid(24 * 3600 * 1000) == 0
}
