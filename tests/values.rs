//! Each module's values, end to end through `aggregate`: the exact rows RESET gets.

mod common;
use common::*;
use reset_pipeline::event::{Measurement, SensorEvent};
use serde_json::json;

#[test]
fn air_means_with_nulls_and_missing_parameters() {
    let reg = registry(&[monitor_yaml(
        "A",
        "air",
        "Asia/Shanghai",
        "pm2p5: ug/m3, co2: ppm, temp: C, pm10: ug/m3",
        &[],
    )]);
    let t = ms("2026-03-15T08:05:00Z");
    let events = [
        event(
            "A",
            t,
            None,
            &[("pm2p5", Some(10.0)), ("co2", Some(400.0)), ("temp", None)],
        ),
        event(
            "A",
            t + 60_000,
            None,
            &[("pm2p5", Some(20.0)), ("co2", None)],
        ),
        event(
            "A",
            t + 120_000,
            None,
            &[
                ("pm2p5", Some(33.0)),
                ("co2", Some(500.0)),
                ("pm10", Some(50.0)),
            ],
        ),
    ];
    let run = run_events(reg, &events);
    assert_eq!(
        run.reading("A", "2026-03-15T16:30:00.000+08:00"),
        json!({
            "connection_id": "A",
            "reading_time": "2026-03-15T16:30:00.000+08:00",
            "pm2p5": 21.0,
            "tvoc": null,
            "co2": 450.0,
            "temp": null,
            "rh": null,
            "pm10": 50.0
        })
    );
    // The key order is RESET's: connection_id, reading_time, then the parameters.
    let text = run.emissions[1]["payload"].to_string();
    let pos = |k: &str| text.find(k).unwrap();
    assert!(pos("\"connection_id\":\"A\",\"reading_time\"") < pos("\"pm2p5\""));
    assert!(pos("\"pm2p5\"") < pos("\"tvoc\"") && pos("\"rh\"") < pos("\"pm10\""));
}

#[test]
fn counters_take_the_latest_sample_by_event_time_even_out_of_order() {
    let reg = registry(&[
        monitor_yaml(
            "W",
            "water",
            "Europe/Berlin",
            "water_flow: L, water_temp: C",
            &["c1", "c2"],
        ),
        monitor_yaml(
            "E",
            "energy",
            "America/New_York",
            "power_consumption: kWh",
            &["c1"],
        ),
    ]);
    let t = ms("2026-06-01T10:00:00Z");
    let m = |min: i64| t + min * 60_000;
    let events = [
        event(
            "W",
            m(20),
            Some("c1"),
            &[("water_flow", Some(1020.0)), ("water_temp", Some(10.0))],
        ),
        event(
            "W",
            m(5),
            Some("c1"),
            &[("water_flow", Some(1005.0)), ("water_temp", Some(14.0))],
        ),
        event("W", m(25), Some("c1"), &[("water_flow", Some(1025.0))]),
        event("W", m(10), Some("c1"), &[("water_flow", Some(1010.0))]),
        event("E", m(29), Some("c1"), &[("power_consumption", Some(77.5))]),
        event("E", m(2), Some("c1"), &[("power_consumption", Some(70.0))]),
    ];
    let run = run_events(reg, &events);
    assert_eq!(
        run.reading("W", "2026-06-01T12:30:00.000+02:00"),
        json!({
            "connection_id": "W",
            "reading_time": "2026-06-01T12:30:00.000+02:00",
            "water_flow": [{"channel_id": "c1", "reading": 1025.0}, {"channel_id": "c2", "reading": null}],
            "water_temp": [{"channel_id": "c1", "reading": 12.0}, {"channel_id": "c2", "reading": null}]
        })
    );
    assert_eq!(
        run.reading("E", "2026-06-01T06:30:00.000-04:00")["power_consumption"],
        json!([{"channel_id": "c1", "reading": 77.5}])
    );
}

fn bin_event(t: i64, kg: f64, emptied: bool) -> SensorEvent {
    SensorEvent {
        connection_id: "B".into(),
        event_time: t,
        channel_id: Some("g".into()),
        measurements: vec![Measurement::new("bin_weight", Some(kg), None)],
        bin_emptied: emptied,
    }
}

fn bin_readings(samples: &[(f64, bool)]) -> serde_json::Value {
    let reg = registry(&[monitor_yaml(
        "B",
        "circularity",
        "UTC",
        "bin_weight: kg",
        &["g"],
    )]);
    let t = ms("2026-06-01T10:00:00Z");
    let events: Vec<SensorEvent> = samples
        .iter()
        .enumerate()
        .map(|(i, &(kg, e))| bin_event(t + 60_000 * (i as i64 + 1), kg, e))
        .collect();
    let run = run_events(reg, &events);
    run.reading("B", "2026-06-01T10:30:00.000+00:00")["bin_weight"].clone()
}

fn entries(values: &[f64]) -> serde_json::Value {
    values
        .iter()
        .map(|v| json!({"channel_id": "g", "reading": v}))
        .collect()
}

#[test]
fn bin_weight_without_emptying_is_the_window_max() {
    assert_eq!(
        bin_readings(&[(2.0, false), (5.5, false), (5.0, false)]),
        entries(&[5.5])
    );
}

#[test]
fn bin_weight_with_one_flagged_emptying() {
    assert_eq!(
        bin_readings(&[(2.0, false), (6.0, true), (0.2, false), (3.0, false)]),
        entries(&[6.0, 3.0])
    );
}

#[test]
fn bin_weight_with_one_inferred_emptying() {
    assert_eq!(
        bin_readings(&[(2.0, false), (6.0, false), (0.4, false), (3.0, false)]),
        entries(&[6.0, 3.0])
    );
}

#[test]
fn bin_weight_with_two_emptyings_in_one_window() {
    let samples = [
        (4.0, false),
        (9.0, true),
        (0.5, false),
        (8.0, false),
        (1.0, false),
        (2.0, false),
    ];
    assert_eq!(bin_readings(&samples), entries(&[9.0, 8.0, 2.0]));
}

#[test]
fn bin_weight_that_ends_lighter_than_before() {
    assert_eq!(
        bin_readings(&[(12.0, false), (15.0, false), (1.0, false), (1.5, false)]),
        entries(&[15.0, 1.5])
    );
}

#[test]
fn a_window_with_only_rejected_samples_is_not_sent() {
    let reg = registry(&[monitor_yaml("A", "air", "UTC", "co2: ppm", &[])]);
    let t = ms("2026-06-01T10:00:00Z");
    let run = run_events(
        reg,
        &[
            event("A", t, None, &[("co2", Some(-5.0))]),
            event("A", t + 3_600_000, None, &[("co2", Some(400.0))]),
        ],
    );
    let times: Vec<_> = run
        .readings()
        .iter()
        .map(|r| r["reading_time"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(times, ["2026-06-01T11:00:00.000+00:00"]);
    assert_eq!(run.reject_reasons(), ["impossible"]);
}

#[test]
fn monitors_create_comes_before_the_first_readings_only() {
    let reg = registry(&[monitor_yaml("A", "air", "UTC", "co2: ppm", &[])]);
    let t = ms("2026-06-01T10:00:00Z");
    let events: Vec<_> = (0..4)
        .map(|i| event("A", t + i * 1_800_000, None, &[("co2", Some(400.0))]))
        .collect();
    let run = run_events(reg, &events);
    let kinds: Vec<&str> = run
        .emissions
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["monitors", "readings", "readings", "readings", "readings"]
    );
    let create = &run.emissions[0]["payload"];
    assert_eq!(create["message_type"], "create");
    assert_eq!(create["data"]["module"], "air");
    assert_eq!(
        create["data"]["meta"]["included_parameters"],
        json!({"co2": {"unit": "ppm"}})
    );
    assert!(create["data"].get("channels").is_none());
}
