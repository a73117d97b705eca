//! Push modes: every window as it closes, or held per monitor for its local day.

mod common;
use common::*;
use reset_pipeline::codec::encode_json;
use reset_pipeline::config::PushMode;
use reset_pipeline::window::EngineSettings;

/// One sample in every half-hour from `from` for `hours`, as JSON lines.
fn half_hourly(id: &str, from: &str, hours: i64) -> Vec<String> {
    let start = ms(from);
    (0..hours * 2)
        .map(|i| {
            encode_json(&event(
                id,
                start + i * 1_800_000 + 60_000,
                None,
                &[("co2", Some(400.0 + i as f64))],
            ))
        })
        .collect()
}

fn message_times(run: &Run) -> Vec<(usize, String, String)> {
    run.emissions
        .iter()
        .filter(|e| e["event"] == "readings")
        .map(|e| {
            let rows = e["payload"]["data"]["readings"].as_array().unwrap();
            let t = |r: &serde_json::Value| r["reading_time"].as_str().unwrap().to_string();
            (rows.len(), t(&rows[0]), t(rows.last().unwrap()))
        })
        .collect()
}

#[test]
fn every_30_minutes_sends_each_window_as_it_closes() {
    let reg = registry(&[monitor_yaml("S", "air", "Asia/Shanghai", "co2: ppm", &[])]);
    let lines = half_hourly("S", "2026-03-14T16:00:00Z", 3);
    let run = run_lines(
        reg,
        EngineSettings::default(),
        PushMode::Every30Minutes,
        &lines,
    );
    let m = message_times(&run);
    // Each window closes when a sample 20 minutes past its end raises the
    // watermark; the last two are still open at the end of input and close together.
    let sizes: Vec<usize> = m.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(sizes, [1, 1, 1, 1, 2]);
    assert_eq!(m[0].1, "2026-03-15T00:30:00.000+08:00");
    assert_eq!(m[4].2, "2026-03-15T03:00:00.000+08:00");
}

#[test]
fn daily_holds_a_local_day_and_sends_it_when_the_day_ends() {
    let reg = registry(&[monitor_yaml("S", "air", "Asia/Shanghai", "co2: ppm", &[])]);
    // Local 2026-03-15 00:00 is 03-14T16:00Z; two and a half local days.
    let lines = half_hourly("S", "2026-03-14T16:00:00Z", 60);
    let run = run_lines(reg, EngineSettings::default(), PushMode::Daily, &lines);
    assert_eq!(
        message_times(&run),
        [
            (
                48,
                "2026-03-15T00:30:00.000+08:00".into(),
                "2026-03-16T00:00:00.000+08:00".into()
            ),
            (
                48,
                "2026-03-16T00:30:00.000+08:00".into(),
                "2026-03-17T00:00:00.000+08:00".into()
            ),
            // The rest is sent at the end of the input.
            (
                24,
                "2026-03-17T00:30:00.000+08:00".into(),
                "2026-03-17T12:00:00.000+08:00".into()
            ),
        ]
    );
}

#[test]
fn daily_splits_a_50_window_dst_day_at_48() {
    let reg = registry(&[monitor_yaml(
        "N",
        "air",
        "America/New_York",
        "co2: ppm",
        &[],
    )]);
    // 2026-11-01 in New York has 25 hours: local midnight is 04:00Z, the next 05:00Z.
    let lines = half_hourly("N", "2026-11-01T04:00:00Z", 26);
    let run = run_lines(reg, EngineSettings::default(), PushMode::Daily, &lines);
    assert_eq!(
        message_times(&run),
        [
            (
                48,
                "2026-11-01T00:30:00.000-04:00".into(),
                "2026-11-01T23:00:00.000-05:00".into()
            ),
            (
                2,
                "2026-11-01T23:30:00.000-05:00".into(),
                "2026-11-02T00:00:00.000-05:00".into()
            ),
            (
                2,
                "2026-11-02T00:30:00.000-05:00".into(),
                "2026-11-02T01:00:00.000-05:00".into()
            ),
        ]
    );
}

/// A monitor that falls silent in the evening, in a partition whose
/// watermark goes on past its local midnight (another monitor keeps
/// sending, or the partition is idle): its day is sent at that midnight.
fn silent_evening(push: PushMode) -> Vec<(String, Vec<String>)> {
    use reset_pipeline::pipeline::PartitionPipeline;
    let reg = registry(&[
        monitor_yaml("S", "air", "Asia/Shanghai", "co2: ppm", &[]),
        monitor_yaml("L", "air", "Europe/London", "co2: ppm", &[]),
    ]);
    let mut p = PartitionPipeline::new(reg, EngineSettings::default(), push);
    let mut rejects = Vec::new();
    let mut sent = Vec::new();
    let mut take = |batches: Vec<reset_pipeline::batch::Batch>| {
        for b in batches {
            let v: serde_json::Value = serde_json::from_str(&b.payload).unwrap();
            let times = v["data"]["readings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["reading_time"].as_str().unwrap().to_string())
                .collect();
            sent.push((b.connection_id.clone(), times));
        }
    };
    // S (UTC+8): 2026-03-15 08:00 to 20:00 local; L (UTC) keeps going to
    // 2026-03-15 23:59 UTC, past S's midnight (16:00 UTC).
    let from = ms("2026-03-15T00:00:00Z");
    for minute in (0..24 * 60).step_by(5) {
        let t = from + 60_000 + minute * 60_000;
        let mut batches = Vec::new();
        if minute < 12 * 60 {
            let e = event("S", t, None, &[("co2", Some(400.0))]);
            batches.extend(p.record(minute as u64, &e, Some(TEST_NOW), &mut rejects));
        }
        let e = event("L", t, None, &[("co2", Some(500.0))]);
        batches.extend(p.record(minute as u64, &e, Some(TEST_NOW), &mut rejects));
        for b in &batches {
            p.message_answered(&b.message_id);
        }
        take(batches);
    }
    // Then the partition is idle: the watermark is raised past L's midnight too.
    take(p.advance_to(ms("2026-03-16T01:00:00Z")));
    assert!(rejects.is_empty(), "{rejects:?}");
    sent
}

#[test]
fn daily_sends_a_silent_monitors_day_when_the_watermark_passes_its_midnight() {
    let sent = silent_evening(PushMode::Daily);
    let of = |id: &str| -> Vec<&Vec<String>> {
        sent.iter()
            .filter(|(c, _)| c == id)
            .map(|(_, t)| t)
            .collect()
    };
    // S's day: one message, its 24 windows (08:30 to 20:00 local).
    let s = of("S");
    assert_eq!(s.len(), 1, "{sent:?}");
    assert_eq!(s[0].len(), 24);
    assert_eq!(s[0][0], "2026-03-15T08:30:00.000+08:00");
    assert_eq!(s[0][23], "2026-03-15T20:00:00.000+08:00");
    // L's whole day, once the idle partition's watermark passed its midnight.
    let l = of("L");
    assert_eq!(l.len(), 1, "{sent:?}");
    assert_eq!(l[0].len(), 48);
    assert_eq!(l[0][47], "2026-03-16T00:00:00.000+00:00");
    // The same windows as every_30_minutes sends.
    let every: usize = silent_evening(PushMode::Every30Minutes)
        .iter()
        .map(|(_, t)| t.len())
        .sum();
    assert_eq!(every, 72);
}

/// Five monitors in five zones, each sending every 7 to 13 minutes for
/// 40 hours, the last hour's samples up to 9 minutes late: at the end of
/// input each holds windows still open (two, for some) and, in daily
/// push, a local day not ended. The pipeline, fed, each message answered.
fn fed_fleet(push: PushMode) -> reset_pipeline::pipeline::PartitionPipeline {
    use reset_pipeline::pipeline::PartitionPipeline;
    let zones = [
        "Asia/Shanghai",
        "Europe/London",
        "America/New_York",
        "UTC",
        "Asia/Kolkata",
    ];
    let reg = registry(
        &zones
            .iter()
            .enumerate()
            .map(|(i, tz)| monitor_yaml(&format!("M{i}"), "air", tz, "co2: ppm", &[]))
            .collect::<Vec<_>>(),
    );
    let mut p = PartitionPipeline::new(reg, EngineSettings::default(), push);
    let mut rejects = Vec::new();
    let from = ms("2026-03-15T00:00:00Z");
    let mut times: Vec<(i64, usize)> = (0..zones.len())
        .flat_map(|m| {
            let step = (7 + 2 * m as i64) * 60_000;
            (0..40 * 3_600_000 / step).map(move |i| (from + i * step + m as i64 * 1_000, m))
        })
        .collect();
    times.sort();
    let last_hour = from + 39 * 3_600_000;
    for (n, &(t, m)) in times.iter().enumerate() {
        let late = if t > last_hour {
            (n as i64 % 10) * 60_000
        } else {
            0
        };
        let e = event(
            &format!("M{m}"),
            t - late,
            None,
            &[("co2", Some(400.0 + n as f64))],
        );
        for b in p.record(n as u64, &e, Some(TEST_NOW), &mut rejects) {
            p.message_answered(&b.message_id);
        }
    }
    assert!(
        p.engine().open_windows() > zones.len(),
        "some monitors hold two windows"
    );
    p
}

#[test]
fn finishing_a_few_monitors_at_a_time_sends_what_finishing_at_once_sends() {
    for push in [PushMode::Every30Minutes, PushMode::Daily] {
        let sent = |batches: Vec<reset_pipeline::batch::Batch>| -> Vec<(String, String)> {
            batches
                .into_iter()
                .map(|b| (b.message_id, b.payload))
                .collect()
        };
        let at_once = sent(fed_fleet(push).finish());
        assert!(at_once.len() >= 5, "{push:?}: every monitor sends");
        for part in 1..=3 {
            let mut in_parts = Vec::new();
            let done: Result<(), ()> = fed_fleet(push).finish_in_parts(part, |_, batches| {
                in_parts.extend(sent(batches));
                Ok(())
            });
            assert_eq!(done, Ok(()));
            assert_eq!(in_parts, at_once, "{push:?}, {part} monitors at a time");
        }
    }
}
