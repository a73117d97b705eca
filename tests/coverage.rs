//! `aggregate --coverage`: the completeness report across DST days in
//! Sydney, New York and Lord Howe and on Kathmandu's :45 offset, with gaps
//! made on purpose, against rows computed by hand.

mod common;
use chrono::{Duration, TimeZone};
use chrono_tz::Tz;
use common::{monitor_yaml, run_binary};

/// The local end times of every half-hour of a plain 48-window day, from
/// `first` (1 = 00:30) to 48 (shown as 24:00).
fn plain_day_times(first: usize) -> Vec<String> {
    (first..=48)
        .map(|k| format!("{:02}:{:02}", k / 2, (k % 2) * 30))
        .collect()
}

/// The window ends of the local day `y-m-d` in `zone`: every 30 minutes
/// from its midnight to the next, shown as local `HH:MM` with the offset.
fn window_ends(zone: &str, (y, m, d): (i32, u32, u32)) -> Vec<(i64, String)> {
    let tz: Tz = zone.parse().unwrap();
    let midnight = tz.with_ymd_and_hms(y, m, d, 0, 0, 0).single().unwrap();
    let next = (midnight.date_naive() + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let next = tz.from_local_datetime(&next).single().unwrap();
    let mut ends = Vec::new();
    let mut end = midnight + Duration::minutes(30);
    while end <= next {
        ends.push((end.timestamp_millis(), end.format("%H:%M%:z").to_string()));
        end += Duration::minutes(30);
    }
    ends
}

/// One event a window, five minutes before its end, for each window of
/// the day except those whose local `HH:MM±hh:mm` is in `gaps`.
fn events(id: &str, zone: &str, day: (i32, u32, u32), gaps: &[&str]) -> Vec<(i64, String)> {
    window_ends(zone, day)
        .into_iter()
        .filter(|(_, shown)| !gaps.contains(&shown.as_str()))
        .map(|(end, _)| {
            let at = end - 5 * 60 * 1000;
            let line = format!(
                r#"{{"connection_id":"{id}","event_time":{at},"measurements":[{{"parameter":"co2","value":500}}]}}"#
            );
            (at, line)
        })
        .collect()
}

#[test]
fn the_coverage_report_counts_each_local_days_windows_across_dst_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = String::from("monitors:\n");
    for (id, zone) in [
        ("SYD", "Australia/Sydney"),
        ("NYC", "America/New_York"),
        ("LHI_FALL", "Australia/Lord_Howe"),
        ("LHI_SPRING", "Australia/Lord_Howe"),
        ("KTM", "Asia/Kathmandu"),
    ] {
        registry.push_str(&monitor_yaml(id, "air", zone, "co2: ppm", &[]));
    }
    let mut all = Vec::new();
    // Sydney falls back at 03:00+11:00 to 02:00+10:00: 50 windows; both
    // windows ending at a local 02:30 and the one ending at noon are gaps.
    all.extend(events(
        "SYD",
        "Australia/Sydney",
        (2026, 4, 5),
        &["02:30+11:00", "02:30+10:00", "12:00+10:00"],
    ));
    // New York springs forward at 02:00 to 03:00: 46 windows.
    all.extend(events(
        "NYC",
        "America/New_York",
        (2026, 3, 8),
        &["03:00-04:00", "00:00-04:00"],
    ));
    // Lord Howe falls back half an hour at 02:00+11:00: 49 windows, a
    // local 01:30 twice.
    all.extend(events(
        "LHI_FALL",
        "Australia/Lord_Howe",
        (2026, 4, 5),
        &["01:30+11:00", "01:30+10:30"],
    ));
    // Lord Howe springs forward half an hour at 02:00+10:30: 47 windows.
    all.extend(events(
        "LHI_SPRING",
        "Australia/Lord_Howe",
        (2026, 10, 4),
        &["00:30+10:30"],
    ));
    // Kathmandu: a full day, a day without data, a day with its first window only.
    all.extend(events("KTM", "Asia/Kathmandu", (2026, 4, 5), &[]));
    let first_window_only: Vec<String> = plain_day_times(2)
        .iter()
        .map(|t| {
            let t = if t == "24:00" { "00:00" } else { t };
            format!("{t}+05:45")
        })
        .collect();
    let gaps: Vec<&str> = first_window_only.iter().map(String::as_str).collect();
    all.extend(events("KTM", "Asia/Kathmandu", (2026, 4, 7), &gaps));
    all.sort();
    let lines: Vec<&str> = all.iter().map(|(_, l)| l.as_str()).collect();

    let monitors = dir.path().join("monitors.yaml");
    let input = dir.path().join("events.jsonl");
    let out = dir.path().join("out.jsonl");
    let coverage = dir.path().join("coverage.csv");
    std::fs::write(&monitors, registry).unwrap();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let run = run_binary(&[
        "aggregate",
        "--monitors",
        monitors.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--coverage",
        coverage.to_str().unwrap(),
        "--now",
        "2026-11-30T00:00:00Z",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("0 rejected"), "{stderr}");

    let ktm_all = plain_day_times(1).join(";");
    let ktm_but_first = plain_day_times(2).join(";");
    let expected = [
        "connection_id,date,windows_expected,windows_with_data,missing".to_string(),
        "KTM,2026-04-05,48,48,".to_string(),
        format!("KTM,2026-04-06,48,0,{ktm_all}"),
        format!("KTM,2026-04-07,48,1,{ktm_but_first}"),
        "LHI_FALL,2026-04-05,49,47,01:30+11:00;01:30+10:30".to_string(),
        "LHI_SPRING,2026-10-04,47,46,00:30".to_string(),
        "NYC,2026-03-08,46,44,03:00;24:00".to_string(),
        "SYD,2026-04-05,50,47,02:30+11:00;02:30+10:00;12:00".to_string(),
    ];
    let report = std::fs::read_to_string(&coverage).unwrap();
    let rows: Vec<&str> = report.lines().collect();
    assert_eq!(rows, expected, "the report:\n{report}");
}

#[test]
fn the_coverage_report_may_not_overwrite_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, "").unwrap();
    let run = run_binary(&[
        "aggregate",
        "--monitors",
        "examples/monitors.yaml",
        "--input",
        input.to_str().unwrap(),
        "--coverage",
        "examples/monitors.yaml",
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("--coverage"), "{stderr}");
    assert!(
        std::fs::read_to_string("examples/monitors.yaml")
            .unwrap()
            .contains("GA_23682013"),
        "the registry is intact"
    );
}
