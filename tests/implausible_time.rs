//! Devices with broken clocks: an event time in microseconds, in year 9999,
//! at the ends of i64, or before 2000 is rejected as `implausible_time` and
//! touches neither the watermark nor any window, so every good sample
//! around it is kept; judged against a reference time that keeps re-runs
//! deterministic (`aggregate --now`, the Kafka record's timestamp in `run`).

mod common;
use common::run_binary as bin;
use common::*;
use proptest::prelude::*;
use reset_pipeline::config::PushMode;
use reset_pipeline::event::SensorEvent;
use reset_pipeline::pipeline::PartitionPipeline;
use reset_pipeline::reject::RejectReason;
use reset_pipeline::window::plausible::EARLIEST_MS;
use reset_pipeline::window::EngineSettings;
use std::path::Path;

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
    // The sample events span 07:00 to 09:00 on 2026-03-15: with `--now` at
    // 07:30 and the default skew of 1 h, those after 08:30 are ahead of it.
    let (_, reasons, stderr) = aggregate_with(dir.path(), &[], &["--now", "2026-03-15T07:30:00Z"]);
    assert!(count(&reasons, "implausible_time") > 100, "{reasons:?}");
    assert!(stderr.contains("now 2026-03-15T07:30:00.000Z"), "{stderr}");
    // The same `--now` twice: the same decisions.
    let (a, ra, _) = aggregate_with(dir.path(), &[], &["--now", "2026-03-15T07:30:00Z"]);
    let (b, rb, _) = aggregate_with(dir.path(), &[], &["--now", "2026-03-15T07:30:00Z"]);
    assert_eq!((a, ra), (b, rb));
}

/// Every message (id and payload) the pure core forms from `events`, each
/// record's reference time `reference`; and the reasons of its rejects.
fn messages(events: &[SensorEvent], reference: i64) -> (Vec<(String, String)>, Vec<RejectReason>) {
    let fleet = registry(&[monitor_yaml(
        "A",
        "air",
        "Asia/Kathmandu",
        "co2: ppm, rh: '%RH'",
        &[],
    )]);
    let mut p = PartitionPipeline::new(fleet, EngineSettings::default(), PushMode::Every30Minutes);
    let mut rejects = Vec::new();
    let mut out = Vec::new();
    for (offset, e) in events.iter().enumerate() {
        for b in p.record(offset as u64, e, Some(reference), &mut rejects) {
            p.message_answered(&b.message_id);
            out.push((b.message_id, b.payload));
        }
    }
    out.extend(p.finish().into_iter().map(|b| (b.message_id, b.payload)));
    (out, rejects.into_iter().map(|r| r.reason).collect())
}

/// Six hours of one sample a minute, before `REFERENCE`.
fn good_stream() -> Vec<SensorEvent> {
    let start = ms("2026-06-01T00:00:00Z");
    (0..360)
        .map(|i| {
            event(
                "A",
                start + i * 60_000,
                None,
                &[("co2", Some(400.0 + i as f64)), ("rh", Some(40.0))],
            )
        })
        .collect()
}

/// The records' reference time: a day after the stream ends.
const REFERENCE: i64 = 1_780_358_400_000; // 2026-06-02T00:00:00Z

/// An implausible time: before 2000, or more than an hour ahead of `REFERENCE`.
fn implausible_time() -> impl Strategy<Value = i64> {
    prop_oneof![
        i64::MIN..EARLIEST_MS,
        (REFERENCE + 3_600_001)..=i64::MAX,
        Just(i64::MIN),
        Just(i64::MAX),
        Just(REFERENCE * 1000),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn implausible_events_anywhere_change_no_window_and_no_message_id(
        bad in proptest::collection::vec((0usize..=360, implausible_time()), 0..20),
    ) {
        let good = good_stream();
        let (clean, clean_rejects) = messages(&good, REFERENCE);
        prop_assert!(clean_rejects.is_empty());
        let mut events = good.clone();
        let mut bad = bad;
        // Inserted from the back, so that each position is one of the good stream's.
        bad.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        for (at, t) in &bad {
            events.insert(*at, event("A", *t, None, &[("co2", Some(9999.0))]));
        }
        let (with_bad, rejects) = messages(&events, REFERENCE);
        prop_assert_eq!(with_bad, clean);
        prop_assert_eq!(rejects.len(), bad.len());
        prop_assert!(rejects.iter().all(|r| *r == RejectReason::ImplausibleTime));
    }
}
