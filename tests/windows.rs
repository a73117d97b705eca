//! Window ends and `reading_time` strings on the local half-hour grid, across
//! DST changes in both directions and on :45 offsets.

mod common;
use common::ms;
use reset_pipeline::window::{reading_time, window_end, HALF_HOUR_MS};

/// (zone, sample instant in UTC, expected reading_time of its window)
const CASES: &[(&str, &str, &str)] = &[
    // UTC: the boundary belongs to the window it ends.
    (
        "UTC",
        "2026-03-15T10:30:00.000Z",
        "2026-03-15T10:30:00.000+00:00",
    ),
    (
        "UTC",
        "2026-03-15T10:30:00.001Z",
        "2026-03-15T11:00:00.000+00:00",
    ),
    (
        "UTC",
        "2026-03-15T10:00:00.000Z",
        "2026-03-15T10:00:00.000+00:00",
    ),
    (
        "UTC",
        "2026-03-15T10:29:59.999Z",
        "2026-03-15T10:30:00.000+00:00",
    ),
    (
        "UTC",
        "2026-12-31T23:59:59.999Z",
        "2027-01-01T00:00:00.000+00:00",
    ),
    // Asia/Shanghai, +08:00 all year.
    (
        "Asia/Shanghai",
        "2026-03-15T08:30:00.000Z",
        "2026-03-15T16:30:00.000+08:00",
    ),
    (
        "Asia/Shanghai",
        "2026-03-15T08:30:00.001Z",
        "2026-03-15T17:00:00.000+08:00",
    ),
    (
        "Asia/Shanghai",
        "2026-03-15T15:59:59.999Z",
        "2026-03-16T00:00:00.000+08:00",
    ),
    // America/New_York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z).
    (
        "America/New_York",
        "2026-03-08T06:30:00.000Z",
        "2026-03-08T01:30:00.000-05:00",
    ),
    (
        "America/New_York",
        "2026-03-08T06:30:00.001Z",
        "2026-03-08T03:00:00.000-04:00",
    ),
    (
        "America/New_York",
        "2026-03-08T06:59:59.999Z",
        "2026-03-08T03:00:00.000-04:00",
    ),
    (
        "America/New_York",
        "2026-03-08T07:00:00.000Z",
        "2026-03-08T03:00:00.000-04:00",
    ),
    (
        "America/New_York",
        "2026-03-08T07:00:00.001Z",
        "2026-03-08T03:30:00.000-04:00",
    ),
    // ...and falls back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:30 happens twice.
    (
        "America/New_York",
        "2026-11-01T05:30:00.000Z",
        "2026-11-01T01:30:00.000-04:00",
    ),
    (
        "America/New_York",
        "2026-11-01T05:59:59.999Z",
        "2026-11-01T01:00:00.000-05:00",
    ),
    (
        "America/New_York",
        "2026-11-01T06:00:00.000Z",
        "2026-11-01T01:00:00.000-05:00",
    ),
    (
        "America/New_York",
        "2026-11-01T06:00:00.001Z",
        "2026-11-01T01:30:00.000-05:00",
    ),
    (
        "America/New_York",
        "2026-11-01T06:30:00.000Z",
        "2026-11-01T01:30:00.000-05:00",
    ),
    // Australia/Lord_Howe: +11:00 -> +10:30 on 2026-04-05 02:00 local (04-04T15:00Z).
    (
        "Australia/Lord_Howe",
        "2026-04-04T14:30:00.000Z",
        "2026-04-05T01:30:00.000+11:00",
    ),
    (
        "Australia/Lord_Howe",
        "2026-04-04T14:59:59.999Z",
        "2026-04-05T01:30:00.000+10:30",
    ),
    (
        "Australia/Lord_Howe",
        "2026-04-04T15:00:00.000Z",
        "2026-04-05T01:30:00.000+10:30",
    ),
    (
        "Australia/Lord_Howe",
        "2026-04-04T15:00:00.001Z",
        "2026-04-05T02:00:00.000+10:30",
    ),
    // ...and +10:30 -> +11:00 on 2026-10-04 02:00 local (10-03T15:30Z).
    (
        "Australia/Lord_Howe",
        "2026-10-03T15:00:00.000Z",
        "2026-10-04T01:30:00.000+10:30",
    ),
    (
        "Australia/Lord_Howe",
        "2026-10-03T15:29:59.999Z",
        "2026-10-04T02:30:00.000+11:00",
    ),
    (
        "Australia/Lord_Howe",
        "2026-10-03T15:30:00.000Z",
        "2026-10-04T02:30:00.000+11:00",
    ),
    (
        "Australia/Lord_Howe",
        "2026-10-03T15:30:00.001Z",
        "2026-10-04T03:00:00.000+11:00",
    ),
    // Asia/Kathmandu, +05:45: local :00/:30 are UTC :15/:45.
    (
        "Asia/Kathmandu",
        "2026-03-15T07:00:00.000Z",
        "2026-03-15T13:00:00.000+05:45",
    ),
    (
        "Asia/Kathmandu",
        "2026-03-15T07:15:00.000Z",
        "2026-03-15T13:00:00.000+05:45",
    ),
    (
        "Asia/Kathmandu",
        "2026-03-15T07:15:00.001Z",
        "2026-03-15T13:30:00.000+05:45",
    ),
    (
        "Asia/Kathmandu",
        "2026-03-15T07:45:00.000Z",
        "2026-03-15T13:30:00.000+05:45",
    ),
    // Australia/Eucla, +08:45.
    (
        "Australia/Eucla",
        "2026-06-01T03:15:00.000Z",
        "2026-06-01T12:00:00.000+08:45",
    ),
    (
        "Australia/Eucla",
        "2026-06-01T03:15:00.001Z",
        "2026-06-01T12:30:00.000+08:45",
    ),
    (
        "Australia/Eucla",
        "2026-06-01T02:45:00.001Z",
        "2026-06-01T12:00:00.000+08:45",
    ),
    // Pacific/Chatham: +13:45 -> +12:45 on 2026-04-05 03:45 local (04-04T14:00Z).
    (
        "Pacific/Chatham",
        "2026-04-04T13:45:00.000Z",
        "2026-04-05T03:30:00.000+13:45",
    ),
    (
        "Pacific/Chatham",
        "2026-04-04T13:59:59.999Z",
        "2026-04-05T03:00:00.000+12:45",
    ),
    (
        "Pacific/Chatham",
        "2026-04-04T14:00:00.000Z",
        "2026-04-05T03:00:00.000+12:45",
    ),
    (
        "Pacific/Chatham",
        "2026-04-04T14:15:00.000Z",
        "2026-04-05T03:00:00.000+12:45",
    ),
    (
        "Pacific/Chatham",
        "2026-04-04T14:15:00.001Z",
        "2026-04-05T03:30:00.000+12:45",
    ),
    // ...and +12:45 -> +13:45 on 2026-09-27 02:45 local (09-26T14:00Z).
    (
        "Pacific/Chatham",
        "2026-09-26T13:45:00.000Z",
        "2026-09-27T02:30:00.000+12:45",
    ),
    (
        "Pacific/Chatham",
        "2026-09-26T13:59:59.999Z",
        "2026-09-27T04:00:00.000+13:45",
    ),
    (
        "Pacific/Chatham",
        "2026-09-26T14:00:00.000Z",
        "2026-09-27T04:00:00.000+13:45",
    ),
    (
        "Pacific/Chatham",
        "2026-09-26T14:15:00.000Z",
        "2026-09-27T04:00:00.000+13:45",
    ),
];

#[test]
fn window_ends_and_reading_times() {
    let mut failures = Vec::new();
    for &(zone, instant, expected) in CASES {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let t = ms(instant);
        let end = window_end(&tz, t);
        assert!(
            end - HALF_HOUR_MS < t && t <= end,
            "{zone} {instant}: window does not hold it"
        );
        let got = reading_time(&tz, end);
        if got != expected {
            failures.push(format!("{zone} {instant}: got {got}, expected {expected}"));
        }
        // The reading_time names the same instant as the window end.
        assert_eq!(ms(&got), end, "{zone} {instant}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn windows_across_a_transition_are_thirty_real_minutes_each() {
    for zone in [
        "America/New_York",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "Asia/Kathmandu",
    ] {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let mut end = window_end(&tz, ms("2026-04-03T00:00:00Z"));
        while end < ms("2026-11-03T00:00:00Z") {
            let next = window_end(&tz, end + 1);
            assert_eq!(
                next - end,
                HALF_HOUR_MS,
                "{zone} after {}",
                reading_time(&tz, end)
            );
            let local = reading_time(&tz, next);
            assert!(
                local[14..23] == *"00:00.000" || local[14..23] == *"30:00.000",
                "{zone}: {local}"
            );
            end = next;
        }
    }
}
