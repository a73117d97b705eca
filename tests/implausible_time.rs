//! Devices with broken clocks: an event time in microseconds, in year 9999,
//! at the ends of i64, or before 2000 is rejected as `implausible_time` and
//! touches neither the watermark nor any window, so every good sample
//! around it is kept; judged against a reference time that keeps re-runs
//! deterministic (`aggregate --now`, the Kafka record's timestamp in `run`).

use std::path::Path;
use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reset-pipeline"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

/// `aggregate` of the sample fleet's events with `bad` lines inserted after
/// line 400; the output's lines and the rejects' reasons.
fn aggregate_with(dir: &Path, bad: &[&str], extra: &[&str]) -> (String, Vec<String>, String) {
    let events = std::fs::read_to_string("examples/events.jsonl").unwrap();
    let mut lines: Vec<&str> = events.lines().collect();
    for (i, b) in bad.iter().enumerate() {
        lines.insert(400 + i, b);
    }
    let input = dir.join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (out, rejects) = (dir.join("out.jsonl"), dir.join("rejects.jsonl"));
    let mut args = vec![
        "aggregate",
        "--monitors",
        "examples/monitors.yaml",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--rejects",
        rejects.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = bin(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    let reasons = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["reason"].as_str().unwrap().to_string()
        })
        .collect();
    (std::fs::read_to_string(&out).unwrap(), reasons, stderr)
}

fn count(reasons: &[String], reason: &str) -> usize {
    reasons.iter().filter(|r| *r == reason).count()
}

#[test]
fn an_event_time_in_microseconds_is_rejected_and_every_good_sample_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, clean_reasons, _) = aggregate_with(dir.path(), &[], &[]);
    let bad = r#"{"connection_id":"GA_23682013","event_time":1773558300000000,"measurements":[{"parameter":"co2","value":500}]}"#;
    let (out, reasons, _) = aggregate_with(dir.path(), &[bad], &[]);
    assert_eq!(count(&reasons, "implausible_time"), 1, "{reasons:?}");
    assert_eq!(count(&reasons, "late"), count(&clean_reasons, "late"));
    assert_eq!(out, clean, "the windows changed");
    assert!(!out.contains("+58171"));
}

#[test]
fn event_times_at_the_ends_of_i64_and_before_2000_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, _, _) = aggregate_with(dir.path(), &[], &[]);
    let bad = [
        r#"{"connection_id":"GA_23682013","event_time":9223372036854775807,"measurements":[{"parameter":"co2","value":500}]}"#,
        r#"{"connection_id":"GA_23682013","event_time":-9223372036854775808,"measurements":[{"parameter":"co2","value":500}]}"#,
        r#"{"connection_id":"GA_23682013","event_time":"9999-12-31T23:59:59Z","measurements":[{"parameter":"co2","value":500}]}"#,
        r#"{"connection_id":"GA_23682013","event_time":"1999-12-31T23:59:59Z","measurements":[{"parameter":"co2","value":500}]}"#,
        r#"{"connection_id":"GA_23682013","event_time":0,"measurements":[{"parameter":"co2","value":500}]}"#,
    ];
    let (out, reasons, _) = aggregate_with(dir.path(), &bad, &[]);
    assert_eq!(
        count(&reasons, "implausible_time"),
        bad.len(),
        "{reasons:?}"
    );
    assert_eq!(out, clean);
}

#[test]
fn the_reference_is_the_now_given_and_the_summary_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    // The sample events are from March 2026: with `--now` an hour after
    // the earliest of them, nearly all are in the future.
    let (_, reasons, stderr) = aggregate_with(dir.path(), &[], &["--now", "2026-03-15T08:00:00Z"]);
    assert!(count(&reasons, "implausible_time") > 100, "{reasons:?}");
    assert!(stderr.contains("now 2026-03-15T08:00:00.000Z"), "{stderr}");
    // The same `--now` twice: the same decisions.
    let (a, ra, _) = aggregate_with(dir.path(), &[], &["--now", "2026-03-15T08:00:00Z"]);
    let (b, rb, _) = aggregate_with(dir.path(), &[], &["--now", "2026-03-15T08:00:00Z"]);
    assert_eq!((a, ra), (b, rb));
}
