//! Bad input of every kind is a reject with a reason, and the good samples
//! around it still make their windows, with the same values as without it.

mod common;
use common::*;
use reset_pipeline::codec::{
    encode, encode_avro, encode_confluent, Decoder, WriterSchema, BUNDLED_SCHEMA,
};
use reset_pipeline::config::{InputFormat, PushMode};
use reset_pipeline::event::SensorEvent;
use reset_pipeline::pipeline::PartitionPipeline;
use reset_pipeline::reject::{Reject, RejectReason};
use reset_pipeline::window::EngineSettings;

fn fleet() -> std::sync::Arc<reset_pipeline::registry::Registry> {
    registry(&[
        monitor_yaml("A", "air", "UTC", "co2: ppm, rh: '%RH'", &[]),
        monitor_yaml("E", "energy", "UTC", "power_consumption: kWh", &["c1"]),
    ])
}

fn good_events() -> Vec<SensorEvent> {
    let t = ms("2026-06-01T10:00:00Z");
    (0..60)
        .flat_map(|i| {
            let at = t + i * 60_000;
            [
                event(
                    "A",
                    at,
                    None,
                    &[("co2", Some(400.0 + i as f64)), ("rh", Some(40.0))],
                ),
                event(
                    "E",
                    at,
                    Some("c1"),
                    &[("power_consumption", Some(100.0 + i as f64))],
                ),
            ]
        })
        .collect()
}

/// Feeds records through the decoder and the core, as the live path does.
fn feed(decoder: &Decoder, records: &[Vec<u8>]) -> (Vec<String>, Vec<Reject>) {
    let mut p =
        PartitionPipeline::new(fleet(), EngineSettings::default(), PushMode::Every30Minutes);
    let mut rejects = Vec::new();
    let mut payloads = Vec::new();
    for (offset, bytes) in records.iter().enumerate() {
        for b in p.record_bytes(decoder, offset as u64, Some(TEST_NOW), bytes, &mut rejects) {
            payloads.push(b.payload);
        }
    }
    payloads.extend(p.finish().into_iter().map(|b| b.payload));
    (payloads, rejects)
}

fn confluent_decoder() -> Decoder {
    let mut d = Decoder::new(InputFormat::AvroConfluent);
    d.avro_mut()
        .register(1, WriterSchema::parse(BUNDLED_SCHEMA).unwrap());
    d
}

/// Interleaves `bad` records among the good ones, one every few records.
fn with_bad(good: &[Vec<u8>], bad: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut bad = bad.iter();
    for (i, g) in good.iter().enumerate() {
        if i % 7 == 3 {
            if let Some(b) = bad.next() {
                out.push(b.clone());
            }
        }
        out.push(g.clone());
    }
    out.extend(bad.cloned());
    out
}

fn reasons(rejects: &[Reject]) -> Vec<RejectReason> {
    rejects.iter().map(|r| r.reason).collect()
}

#[test]
fn avro_faults_are_rejected_and_good_windows_are_unchanged() {
    let decoder = confluent_decoder();
    let good: Vec<Vec<u8>> = good_events()
        .iter()
        .map(|e| encode_confluent(1, e))
        .collect();
    let (expected, none) = feed(&decoder, &good);
    assert!(none.is_empty());
    // 10:00:00 ends a window of its own, then 10:30 and 11:00: three each.
    assert_eq!(expected.len(), 6);

    let t = ms("2026-06-01T10:10:00Z");
    let sample = encode_confluent(1, &event("A", t, None, &[("co2", Some(1.0))]));
    let mut wrong_magic = sample.clone();
    wrong_magic[0] = 1;
    let mut nan = event("A", t, None, &[("co2", Some(f64::NAN)), ("rh", Some(41.0))]);
    let bad = vec![
        sample[..sample.len() - 3].to_vec(),             // truncated
        wrong_magic,                                     // wrong magic byte
        encode_confluent(99, &event("A", t, None, &[])), // unknown schema id
        encode_confluent(1, &event("NOBODY", t, None, &[("co2", Some(1.0))])),
        encode_confluent(1, &event("E", t, None, &[("power_consumption", Some(1.0))])),
        encode_confluent(
            1,
            &event("E", t, Some("c9"), &[("power_consumption", Some(1.0))]),
        ),
        encode_confluent(1, &event("A", t, None, &[("rh", Some(140.0))])),
        Vec::new(),
    ];
    let (payloads, rejects) = feed(&decoder, &with_bad(&good, &bad));
    assert_eq!(
        reasons(&rejects),
        [
            RejectReason::Decode,
            RejectReason::Decode,
            RejectReason::Decode,
            RejectReason::UnknownMonitor,
            RejectReason::MissingChannel,
            RejectReason::UnknownChannel,
            RejectReason::Impossible,
            RejectReason::Decode,
        ]
    );
    let details: Vec<&str> = rejects.iter().map(|r| r.detail.as_str()).collect();
    assert!(
        details[0].starts_with("truncated Avro datum"),
        "{}",
        details[0]
    );
    assert_eq!(
        details[1],
        "not Confluent framing: first byte is 0x01, expected 0x00"
    );
    assert_eq!(details[2], "unknown schema id 99");
    assert_eq!(payloads, expected);

    // NaN: that one sample goes, the rest of its event stays.
    nan.event_time = ms("2026-06-01T11:10:00Z");
    let mut records = good.clone();
    records.push(encode_confluent(1, &nan));
    let (payloads, rejects) = feed(&decoder, &records);
    assert_eq!(reasons(&rejects), [RejectReason::NotFinite]);
    assert_eq!(rejects[0].parameter.as_deref(), Some("co2"));
    let last: serde_json::Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    assert_eq!(last["data"]["readings"][0]["rh"], 41.0);
    assert_eq!(last["data"]["readings"][0]["co2"], serde_json::Value::Null);
}

#[test]
fn bare_avro_faults_are_rejected() {
    let decoder = Decoder::new(InputFormat::Avro);
    let good: Vec<Vec<u8>> = good_events().iter().map(encode_avro).collect();
    let (expected, _) = feed(&decoder, &good);
    let whole = encode_avro(&event("A", 5, None, &[("co2", Some(1.0))]));
    let bad = vec![
        whole[..4].to_vec(),
        vec![0xff; 30],
        b"{\"json\": true}".to_vec(),
    ];
    let (payloads, rejects) = feed(&decoder, &with_bad(&good, &bad));
    assert_eq!(reasons(&rejects), [RejectReason::Decode; 3]);
    assert_eq!(payloads, expected);
}

#[test]
fn json_lines_faults_including_a_10_mb_line() {
    let good: Vec<String> = good_events()
        .iter()
        .map(|e| String::from_utf8(encode(InputFormat::Json, 0, e)).unwrap())
        .collect();
    let clean = run_lines(
        fleet(),
        EngineSettings::default(),
        PushMode::Every30Minutes,
        &good,
    );
    let t = "2026-06-01T10:10:00Z";
    let huge = format!(
        "{{\"connection_id\":\"A\",\"event_time\":\"{t}\",\"measurements\":[{{\"parameter\":\"co2\",\"value\":1,\"unit\":\"{}\"}}]}}",
        "x".repeat(10 << 20)
    );
    let bad = [
        format!("{{\"connection_id\":\"A\",\"event_time\":\"{t}\",\"measurements\":[{{\"parameter\":\"co2\",\"value\":\"four hundred\"}}]}}"),
        huge,
        "not json at all".to_string(),
        format!("{{\"connection_id\":\"A\",\"event_time\":\"{t}\"}}"),
    ];
    let mut lines = good.clone();
    for (i, b) in bad.iter().enumerate() {
        lines.insert(10 + i * 5, b.clone());
    }
    let run = run_lines(
        fleet(),
        EngineSettings::default(),
        PushMode::Every30Minutes,
        &lines,
    );
    assert_eq!(
        run.reject_reasons(),
        ["not_a_number", "decode", "decode", "decode"]
    );
    assert_eq!(run.rejects[0]["line"], 11);
    assert_eq!(run.rejects[0]["value"], "four hundred");
    assert!(run.rejects[1]["detail"]
        .as_str()
        .unwrap()
        .contains("larger than the 1048576-byte limit"));
    assert!(run.rejects[1]["record"].as_str().unwrap().len() <= 256);
    assert!(run.rejects[3]["detail"]
        .as_str()
        .unwrap()
        .contains("missing field `measurements`"));
    assert_eq!(run.emissions, clean.emissions);
}

#[test]
fn a_number_too_large_for_a_double_rejects_its_sample_only() {
    let t = "2026-06-01T10:10:00Z";
    let line = |co2: &str| {
        format!("{{\"connection_id\":\"A\",\"event_time\":\"{t}\",\"measurements\":[{{\"parameter\":\"co2\",\"value\":{co2}}},{{\"parameter\":\"rh\",\"value\":41}}]}}")
    };
    let huge_integer = "9".repeat(400);
    let lines = [line("1e400"), line("-1e400"), line(&huge_integer)];
    let run = run_lines(
        fleet(),
        EngineSettings::default(),
        PushMode::Every30Minutes,
        &lines,
    );
    assert_eq!(run.reject_reasons(), ["not_finite"; 3]);
    assert!(
        run.rejects.iter().all(|r| r["parameter"] == "co2"),
        "{:?}",
        run.rejects
    );
    // Each event's rh is kept.
    assert_eq!(run.readings().len(), 1);
    assert_eq!(run.readings()[0]["rh"], 41.0);
    // A time that large is no time: the event is undecodable.
    let event_time = r#"{"connection_id":"A","event_time":1e400,"measurements":[]}"#.to_string();
    let run = run_lines(
        fleet(),
        EngineSettings::default(),
        PushMode::Every30Minutes,
        &[event_time],
    );
    assert_eq!(run.reject_reasons(), ["decode"]);
}
