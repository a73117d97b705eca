//! Property tests of the core: windows tile time, reordering within the
//! allowed lateness changes nothing, backlogs split correctly, ids are honest.

mod common;
use common::*;
use proptest::prelude::*;
use reset_pipeline::batch::{split, Row, MAX_READINGS_PER_MESSAGE};
use reset_pipeline::config::PushMode;
use reset_pipeline::window::{reading_time, window_end, EngineSettings, ResumePoint, HALF_HOUR_MS};
use serde_json::Value;
use std::collections::BTreeMap;

const ZONES: &[&str] = &[
    "UTC",
    "Asia/Shanghai",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Australia/Eucla",
    "Pacific/Chatham",
    "Europe/London",
    "America/St_Johns",
    "Asia/Kolkata",
];

proptest! {
    #[test]
    fn every_instant_lands_in_exactly_one_window_that_holds_it(
        zone in proptest::sample::select(ZONES),
        // 1995 to 2095
        t in 788_918_400_000i64..3_944_592_000_000i64,
    ) {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let end = window_end(&tz, t);
        prop_assert!(end - HALF_HOUR_MS < t && t <= end);
        // The window's every instant maps to it, and its neighbours are other windows.
        prop_assert_eq!(window_end(&tz, end - HALF_HOUR_MS + 1), end);
        prop_assert_eq!(window_end(&tz, end), end);
        prop_assert_eq!(window_end(&tz, end - HALF_HOUR_MS), end - HALF_HOUR_MS);
        prop_assert_eq!(window_end(&tz, end + 1), end + HALF_HOUR_MS);
        let local = reading_time(&tz, end);
        prop_assert!(&local[14..23] == "00:00.000" || &local[14..23] == "30:00.000", "{}", local);
    }
}

/// A fleet of one monitor per module, and a few hours of their samples in time order.
fn fleet_and_events(
    seed_values: &[f64],
    step_ms: i64,
) -> (
    std::sync::Arc<reset_pipeline::registry::Registry>,
    Vec<(i64, String)>,
) {
    let reg = registry(&[
        monitor_yaml(
            "A",
            "air",
            "Asia/Kathmandu",
            "pm2p5: ug/m3, co2: ppm, temp: C, rh: '%RH'",
            &[],
        ),
        monitor_yaml(
            "W",
            "water",
            "America/New_York",
            "water_flow: L, water_temp: C",
            &["c1", "c2"],
        ),
        monitor_yaml(
            "E",
            "energy",
            "Australia/Lord_Howe",
            "power_consumption: kWh",
            &["c1"],
        ),
        monitor_yaml("B", "circularity", "UTC", "bin_weight: kg", &["g"]),
    ]);
    let start = ms("2026-04-04T12:00:00Z");
    let mut events = Vec::new();
    let mut counter = 100.0;
    for (i, v) in seed_values.iter().enumerate() {
        let t = start + i as i64 * step_ms;
        counter += v.abs();
        let evs = [
            event(
                "A",
                t,
                None,
                &[
                    ("pm2p5", Some(v.abs())),
                    ("co2", Some(600.0 + v)),
                    ("temp", Some(*v / 3.0)),
                    ("rh", Some(v.abs() % 100.0)),
                ],
            ),
            event(
                "W",
                t,
                Some(if i % 2 == 0 { "c1" } else { "c2" }),
                &[
                    ("water_flow", Some(counter)),
                    ("water_temp", Some(*v / 10.0)),
                ],
            ),
            event(
                "E",
                t + 7,
                Some("c1"),
                &[("power_consumption", Some(counter))],
            ),
            event(
                "B",
                t + 11,
                Some("g"),
                &[("bin_weight", Some((v.abs() * 7.0) % 40.0))],
            ),
        ];
        for e in evs {
            events.push((e.event_time, reset_pipeline::codec::encode_json(&e)));
        }
    }
    (reg, events)
}

/// Readings keyed by (monitor, reading_time).
fn rows(run: &Run) -> BTreeMap<(String, String), Value> {
    run.readings()
        .into_iter()
        .map(|r| {
            (
                (
                    r["connection_id"].as_str().unwrap().to_string(),
                    r["reading_time"].as_str().unwrap().to_string(),
                ),
                r,
            )
        })
        .collect()
}

fn close_enough(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1e-300)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close_enough(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| close_enough(v, w)))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn shuffling_within_the_allowed_lateness_changes_no_window(
        values in proptest::collection::vec(-500.0f64..500.0, 20..200),
        jitter in proptest::collection::vec(0i64..600_000, 800),
        step_s in 20i64..90,
    ) {
        let (reg, events) = fleet_and_events(&values, step_s * 1000);
        let lateness = 600_000; // the default allowed_lateness, 10 minutes
        let in_order: Vec<String> = events.iter().map(|(_, l)| l.clone()).collect();
        // Arrival order by event time plus a delay under the lateness: never late.
        let mut shuffled: Vec<(i64, usize, String)> = events
            .iter()
            .enumerate()
            .map(|(i, (t, l))| (t + jitter[i % jitter.len()] % lateness, i, l.clone()))
            .collect();
        shuffled.sort();
        let shuffled: Vec<String> = shuffled.into_iter().map(|(_, _, l)| l).collect();
        let a = run_lines(reg.clone(), EngineSettings::default(), PushMode::Every30Minutes, &in_order);
        let b = run_lines(reg, EngineSettings::default(), PushMode::Every30Minutes, &shuffled);
        prop_assert!(a.rejects.is_empty() && b.rejects.is_empty(), "{:?} {:?}", a.rejects, b.rejects);
        let (ra, rb) = (rows(&a), rows(&b));
        prop_assert_eq!(ra.keys().collect::<Vec<_>>(), rb.keys().collect::<Vec<_>>());
        for (k, v) in &ra {
            prop_assert!(close_enough(v, &rb[k]), "{:?}: {} vs {}", k, v, rb[k]);
        }
    }

    #[test]
    fn any_backlog_splits_into_messages_of_at_most_48_in_time_order(n in 1usize..400) {
        let rows: Vec<Row> = (0..n)
            .map(|i| Row { end: i as i64 * HALF_HOUR_MS, day_end: 0, shape: None, resume: ResumePoint { offset: i as u64, watermark_before: 0 }, json: format!("{{\"n\":{i}}}") })
            .collect();
        let batches = split(0, "A", &rows);
        prop_assert_eq!(batches.len(), n.div_ceil(MAX_READINGS_PER_MESSAGE));
        let mut all = Vec::new();
        for b in &batches {
            prop_assert!(!b.ends.is_empty() && b.ends.len() <= MAX_READINGS_PER_MESSAGE);
            prop_assert!(b.ends.windows(2).all(|w| w[0] < w[1]));
            let payload: Value = serde_json::from_str(&b.payload).unwrap();
            prop_assert_eq!(payload["data"]["readings"].as_array().unwrap().len(), b.ends.len());
            prop_assert_eq!(payload["message_id"].as_str().unwrap(), b.message_id.as_str());
            all.extend(b.ends.iter().copied());
        }
        prop_assert_eq!(all, rows.iter().map(|r| r.end).collect::<Vec<_>>());
    }

    #[test]
    fn message_ids_are_equal_exactly_when_content_is(
        a in proptest::collection::vec((0i64..4, 0u8..3), 1..5),
        b in proptest::collection::vec((0i64..4, 0u8..3), 1..5),
        id_a in 0u8..2, id_b in 0u8..2,
    ) {
        let to_rows = |v: &[(i64, u8)]| -> Vec<Row> {
            let mut ends: Vec<(i64, u8)> = v.to_vec();
            ends.sort();
            ends.dedup_by_key(|e| e.0);
            ends.iter().map(|&(e, x)| Row { end: e * HALF_HOUR_MS, day_end: 0, shape: None, resume: ResumePoint { offset: 0, watermark_before: 0 }, json: format!("{{\"v\":{x}}}") }).collect()
        };
        let (ra, rb) = (to_rows(&a), to_rows(&b));
        let ca = ["A", "B"][id_a as usize];
        let cb = ["A", "B"][id_b as usize];
        let ba = &split(0, ca, &ra)[0];
        let bb = &split(0, cb, &rb)[0];
        let same_content = ra == rb && ca == cb;
        prop_assert_eq!(ba.message_id == bb.message_id, same_content);
        prop_assert_eq!(ba.payload == bb.payload, same_content);
    }
}
