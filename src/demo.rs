//! `demo`: the real `run` path end to end on one machine, with nothing to
//! install: librdkafka's mock cluster as Kafka, the built-in RESET emulator,
//! and a synthetic fleet whose recent hours of samples are produced first.
//! It stops when RESET holds every window, and checks the result against the
//! offline `aggregate` of the same samples.

use crate::config::{Config, InputFormat, Secret};
use crate::emulator::{serve, EmulatorOptions};
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::pipeline::PartitionPipeline;
use crate::registry::Registry;
use crate::synthetic::{fleet, SampleStream};
use crate::window::{EngineSettings, HALF_HOUR_MS};
use anyhow::{Context, Result};
use rdkafka::mocking::MockCluster;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct DemoOptions {
    pub monitors: usize,
    pub hours: i64,
    pub listen: SocketAddr,
}

const TOPIC: &str = "sensor-events";
const INTERVAL_MS: i64 = 30_000;

/// The rows the offline pipeline makes of these samples (as one partition):
/// (connection_id, reading_time) → row.
pub fn offline_rows(
    registry: &Arc<Registry>,
    events: &[crate::event::SensorEvent],
) -> BTreeMap<(String, String), Value> {
    let mut p = PartitionPipeline::new(
        Arc::clone(registry),
        EngineSettings::default(),
        Default::default(),
    );
    let mut rejects = Vec::new();
    let mut batches = Vec::new();
    // The events are from the past hours and their records are produced
    // now: no event is ahead of its record, and the fixed bounds alone judge.
    for (i, e) in events.iter().enumerate() {
        batches.extend(p.record(i as u64, e, None, &mut rejects));
    }
    batches.extend(p.finish());
    rows(
        batches
            .iter()
            .map(|b| serde_json::from_str::<Value>(&b.payload).expect("payload is JSON")),
    )
}

/// Every reading row of `readings` payloads, keyed by (connection_id, reading_time).
pub fn rows(payloads: impl IntoIterator<Item = Value>) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for p in payloads {
        for r in p["data"]["readings"].as_array().into_iter().flatten() {
            let key = (
                r["connection_id"].as_str().unwrap_or("").to_string(),
                r["reading_time"].as_str().unwrap_or("").to_string(),
            );
            out.insert(key, r.clone());
        }
    }
    out
}

/// librdkafka's mock cluster keeps about 5 MB per partition and drops older records.
const MOCK_SAFE_SAMPLES: usize = 120_000;

/// Samples a monitor makes in an hour (one every 30 s).
const SAMPLES_PER_HOUR: usize = 120;

/// Monitors times hours the mock cluster holds: a bound on each alone, on
/// the command line, so that their product cannot overflow.
pub const MOST_MONITOR_HOURS: u64 = (MOCK_SAFE_SAMPLES / SAMPLES_PER_HOUR) as u64;

pub async fn demo(options: DemoOptions) -> Result<()> {
    let samples = options
        .monitors
        .saturating_mul(options.hours.max(0) as usize)
        .saturating_mul(SAMPLES_PER_HOUR);
    anyhow::ensure!(
        samples <= MOCK_SAFE_SAMPLES,
        "--monitors {} --hours {} makes {samples} samples; the embedded mock Kafka holds about {MOCK_SAFE_SAMPLES} (3 partitions of 5 MB) and would drop the oldest",
        options.monitors,
        options.hours
    );
    let cluster = MockCluster::new(1).context("cannot start the mock Kafka cluster")?;
    cluster.create_topic(TOPIC, 3, 1)?;
    cluster.create_topic("reset-pipeline.progress", 1, 1)?;
    cluster.create_topic("reset-pipeline.announcements", 1, 1)?;
    cluster.create_topic("sensor-events.dlq", 1, 1)?;
    let registry = Arc::new(fleet(options.monitors));
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    // Recent hours that ended more than the allowed lateness ago, so that idle
    // partitions close every window.
    let start = now.div_euclid(HALF_HOUR_MS) * HALF_HOUR_MS - (options.hours + 1) * 3_600_000;
    let count = options.monitors * ((options.hours * 3_600_000 / INTERVAL_MS) as usize);
    let events: Vec<_> = SampleStream::new(Arc::clone(&registry), start, INTERVAL_MS, 42)
        .take(count)
        .collect();
    let expected = offline_rows(&registry, &events);

    let emulator = serve("127.0.0.1:0".parse()?, EmulatorOptions::default()).await?;
    let mut config = Config::default();
    config.kafka.bootstrap_servers = cluster.bootstrap_servers();
    config.kafka.topics = vec![TOPIC.into()];
    config.input.format = InputFormat::Avro;
    config.windowing.idle_timeout = Duration::from_secs(2);
    config.reset.url = format!("http://{}", emulator.addr);
    config.reset.client_id = "demo".into();
    config.reset.client_secret = Secret::new("demo");
    config.dead_letter.topic = Some("sensor-events.dlq".into());
    println!(
        "demo: {} monitors, {} samples over {} hours, produced to a mock Kafka ({TOPIC}, 3 partitions) at {}",
        options.monitors,
        events.len(),
        options.hours,
        config.kafka.bootstrap_servers
    );
    crate::produce::produce_events(&config, TOPIC, events).await?;

    let metrics = Metrics::new();
    let readiness = Arc::new(Readiness::default());
    let (http_addr, http) =
        crate::http::serve(options.listen, metrics.clone(), Arc::clone(&readiness))
            .await
            .with_context(|| format!("{}: cannot listen", options.listen))?;
    println!(
        "demo: RESET emulator at http://{}/state, metrics at http://{http_addr}/metrics",
        emulator.addr
    );
    let state = Arc::clone(&emulator.state);
    let want = expected.len();
    let started = Instant::now();
    let done = async move {
        loop {
            if state.lock().expect("state lock").readings.len() >= want
                || started.elapsed() > Duration::from_secs(300)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let report = crate::live::run(config, Arc::clone(&registry), metrics, readiness, done).await?;
    http.abort();

    let state = emulator.state.lock().expect("state lock");
    let received = rows(std::iter::once(
        serde_json::json!({"data": {"readings": state.readings.values().cloned().collect::<Vec<_>>()}}),
    ));
    let mut by_module: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, _) in received.keys() {
        if let Some(m) = registry.lookup(id) {
            *by_module.entry(registry.get(m).module.name()).or_default() += 1;
        }
    }
    println!(
        "demo: {} records consumed, {} messages answered, {} commits in {:.1} s",
        report.records,
        report.messages_answered,
        report.commits,
        started.elapsed().as_secs_f64()
    );
    println!(
        "demo: RESET received {} monitors and {} readings {:?}",
        state.monitors.len(),
        received.len(),
        by_module
    );
    if let Some(row) = received.values().next() {
        println!("demo: a reading as RESET holds it: {row}");
    }
    println!(
        "demo: RESET counters: {}",
        serde_json::to_string(&state.stats)?
    );
    let identical = received == expected;
    if let Some((key, want)) = expected.iter().find(|(k, v)| received.get(*k) != Some(*v)) {
        println!(
            "demo: first difference at {key:?}: expected {want}, RESET holds {:?}",
            received.get(key)
        );
    }
    println!(
        "demo: offline aggregate of the same samples: {} readings; identical to what RESET received: {}",
        expected.len(),
        if identical { "yes" } else { "NO" }
    );
    anyhow::ensure!(
        identical,
        "RESET's readings differ from the offline aggregate"
    );
    Ok(())
}
