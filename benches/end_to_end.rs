//! End-to-end throughput: records/s from a local broker (tansu, a separate
//! process) through decode, windows and publishing to the local emulator,
//! measured in the same run as the raw consume rate of the same topic by a
//! bare rdkafka consumer. Run with `cargo bench --bench end_to_end`
//! (tansu with its in-memory storage, from `TANSU_BIN`,
//! `~/.cache/reset-pipeline/tansu/bin/tansu` where `scripts/test.sh` builds
//! it, or PATH;
//! `E2E_RECORDS` sets the size, default 1,000,000). It prints both rates,
//! their ratio, and when each reader took its first and last record.

use rdkafka::consumer::{BaseConsumer, Consumer};
use reset_pipeline::config::{Config, InputFormat, Secret};
use reset_pipeline::emulator::{serve, EmulatorOptions};
use reset_pipeline::http::Readiness;
use reset_pipeline::metrics::Metrics;
use reset_pipeline::synthetic::{fleet, SampleStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "sensor-events";

/// The test harness's brokers: tansu started and its topics created the same way.
#[allow(dead_code)]
#[path = "../tests/common/kafka.rs"]
mod kafka;

fn main() {
    let records: usize = std::env::var("E2E_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let broker = kafka::Broker::start(
        kafka::BrokerKind::TansuInMemory,
        &[(TOPIC, 3), ("reset-pipeline.progress", 1)],
    );
    let bootstrap = broker.bootstrap.clone();
    let monitors = 1_000;
    let registry = Arc::new(fleet(monitors));
    let mut config = Config::default();
    config.kafka.bootstrap_servers = bootstrap.clone();
    config.kafka.topics = vec![TOPIC.into()];
    config.input.format = InputFormat::Avro;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let events: Vec<_> = SampleStream::new(Arc::clone(&registry), 1_790_000_000_000, 10_000, 1)
        .take(records)
        .collect();
    runtime
        .block_on(reset_pipeline::produce::produce_events(
            &config, TOPIC, events,
        ))
        .unwrap();

    // The yardstick: a bare consumer reading every record of the topic.
    let bare: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "bare")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    bare.subscribe(&[TOPIC]).unwrap();
    let start = Instant::now();
    let mut read = 0;
    let mut bare_first = Duration::ZERO;
    while read < records {
        if let Some(Ok(_)) = bare.poll(Duration::from_millis(100)) {
            if read == 0 {
                bare_first = start.elapsed();
            }
            read += 1;
        }
    }
    let bare_total = start.elapsed();
    let bare_rate = records as f64 / bare_total.as_secs_f64();
    drop(bare);

    // The pipeline, from subscription to RESET's last answer.
    let (rate, phases) = runtime.block_on(async {
        let emulator = serve("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
            .await
            .unwrap();
        config.reset.url = format!("http://{}", emulator.addr);
        config.reset.client_id = "demo".into();
        config.reset.client_secret = Secret::new("demo");
        config
            .kafka
            .properties
            .insert("fetch.wait.max.ms".into(), Secret::new("10"));
        let metrics = Metrics::new();
        let consumed = metrics.records_consumed.clone();
        let start = Instant::now();
        let phases = Arc::new(std::sync::Mutex::new((Duration::ZERO, Duration::ZERO)));
        let marks = Arc::clone(&phases);
        let done = async move {
            while (consumed.get() as usize) < records {
                if consumed.get() > 0 && marks.lock().unwrap().0.is_zero() {
                    marks.lock().unwrap().0 = start.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            marks.lock().unwrap().1 = start.elapsed();
        };
        reset_pipeline::live::run(
            config,
            registry,
            metrics,
            Arc::new(Readiness::default()),
            done,
        )
        .await
        .unwrap();
        let total = start.elapsed();
        let (first, taken) = *phases.lock().unwrap();
        (
            records as f64 / total.as_secs_f64(),
            format!("first record {first:.2?}, last record {taken:.2?}, last answer {total:.2?}"),
        )
    });
    drop(broker);
    println!(
        "end_to_end: {records} records from tansu, 3 partitions, {monitors} monitors: bare consumer {bare_rate:.0} records/s, pipeline {rate:.0} records/s, ratio {:.2}",
        rate / bare_rate
    );
    println!(
        "end_to_end: bare consumer: first record {bare_first:.2?}, last {bare_total:.2?}; pipeline: {phases}"
    );
}
