//! Helpers shared by the integration tests: fleets, events, and running the
//! offline pipeline to parsed emissions.
#![allow(dead_code)]

/// Two tests from one body `async fn $name(kind: BrokerKind)`:
/// `$name::on_the_mock_cluster` and `$name::on_tansu`.
#[allow(unused_macros)]
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_the_mock_cluster() {
                super::$name(super::BrokerKind::Mock).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_tansu() {
                super::$name(super::BrokerKind::Tansu).await
            }
        }
    )*};
}

use reset_pipeline::config::PushMode;
use reset_pipeline::event::{Measurement, SensorEvent};
use reset_pipeline::offline::{aggregate, Outputs, Summary};
use reset_pipeline::registry::Registry;
use reset_pipeline::window::EngineSettings;
use serde_json::Value;
use std::sync::Arc;

/// The project's binary run with `args` in the project's folder, to its end.
pub fn run_binary(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_reset-pipeline"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

/// One monitor line of a registry, in YAML flow style.
pub fn monitor_yaml(id: &str, module: &str, tz: &str, params: &str, channels: &[&str]) -> String {
    let channels = if channels.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = channels
            .iter()
            .map(|c| format!("{{channel_id: {c}}}"))
            .collect();
        format!(", channels: [{}]", list.join(", "))
    };
    format!(
        "  - {{connection_id: {id}, module: {module}, timezone: {tz}, monitor_brand: B, monitor_sku: S, monitor_serial_id: {id}, parameters: {{{params}}}{channels}}}\n"
    )
}

pub fn registry(monitor_lines: &[String]) -> Arc<Registry> {
    let yaml = format!("monitors:\n{}", monitor_lines.concat());
    Arc::new(Registry::parse(&yaml, "test.yaml").expect("test registry is valid"))
}

/// Epoch milliseconds of an RFC 3339 time.
pub fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("valid time")
        .timestamp_millis()
}

/// The RFC 3339 time (UTC) of epoch milliseconds, as `replay` takes it.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time chrono holds")
        .to_rfc3339()
}

pub fn event(
    id: &str,
    t: i64,
    channel: Option<&str>,
    values: &[(&str, Option<f64>)],
) -> SensorEvent {
    SensorEvent {
        connection_id: id.into(),
        event_time: t,
        channel_id: channel.map(str::to_string),
        measurements: values
            .iter()
            .map(|(p, v)| Measurement::new(p, *v, None))
            .collect(),
        bin_emptied: false,
    }
}

/// The result of an offline run: emissions and rejects, parsed.
pub struct Run {
    pub emissions: Vec<Value>,
    pub rejects: Vec<Value>,
    pub summary: Summary,
}

impl Run {
    /// Every reading row sent, in order.
    pub fn readings(&self) -> Vec<Value> {
        self.emissions
            .iter()
            .filter(|e| e["event"] == "readings")
            .flat_map(|e| e["payload"]["data"]["readings"].as_array().unwrap().clone())
            .collect()
    }

    /// The reading row of one monitor at one reading_time.
    pub fn reading(&self, id: &str, reading_time: &str) -> Value {
        self.readings()
            .into_iter()
            .find(|r| r["connection_id"] == id && r["reading_time"] == reading_time)
            .unwrap_or_else(|| {
                panic!(
                    "no reading for {id} at {reading_time}: {:#?}",
                    self.readings()
                )
            })
    }

    pub fn reject_reasons(&self) -> Vec<String> {
        self.rejects
            .iter()
            .map(|r| r["reason"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The reference time of the in-process `aggregate` runs: after every
/// event of the tests, so that none is ahead of it.
pub const TEST_NOW: i64 = 1_893_456_000_000; // 2030-01-01T00:00:00Z

/// Runs JSON lines through `aggregate`.
pub fn run_lines(
    registry: Arc<Registry>,
    settings: EngineSettings,
    push: PushMode,
    lines: &[String],
) -> Run {
    let input = lines.join("\n");
    let mut out = Vec::new();
    let mut rejects = Vec::new();
    let summary = aggregate(
        registry,
        settings,
        push,
        TEST_NOW,
        &mut input.as_bytes(),
        1,
        Outputs {
            emissions: &mut out,
            rejects: Some(&mut rejects),
            coverage: None,
        },
    )
    .expect("in-memory io");
    let parse = |bytes: &[u8]| -> Vec<Value> {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    };
    Run {
        emissions: parse(&out),
        rejects: parse(&rejects),
        summary,
    }
}

/// Runs events through `aggregate` with default settings.
pub fn run_events(registry: Arc<Registry>, events: &[SensorEvent]) -> Run {
    let lines: Vec<String> = events
        .iter()
        .map(reset_pipeline::codec::encode_json)
        .collect();
    run_lines(
        registry,
        EngineSettings::default(),
        PushMode::Every30Minutes,
        &lines,
    )
}

/// The sample fleet's emissions as `aggregate` writes them: (event, payload).
pub fn sample_emissions() -> Vec<(String, String)> {
    let registry = Arc::new(Registry::load("examples/monitors.yaml".as_ref()).unwrap());
    let input = std::fs::read("examples/events.jsonl").unwrap();
    let mut out = Vec::new();
    aggregate(
        registry,
        EngineSettings::default(),
        PushMode::default(),
        TEST_NOW,
        &mut input.as_slice(),
        0,
        Outputs::emissions(&mut out),
    )
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["event"].as_str().unwrap().to_string(),
                v["payload"].to_string(),
            )
        })
        .collect()
}

pub mod kafka;
pub mod proxy;
pub mod schema_registry;
