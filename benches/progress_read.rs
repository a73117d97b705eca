//! Assignment time against a long progress topic: `PROGRESS_RECORDS`
//! (default 1,000,000) stale progress records of 64 partitions in the
//! progress topic, then the reads a `run` makes: the first (at the first
//! assignment, the whole topic) and a later one (at a rebalance, only what
//! was written since: here 64 records). The broker is tansu with its
//! in-memory storage (as in `end_to_end`; librdkafka's mock cluster keeps
//! only 5 MB of a partition). Run with `cargo bench --bench progress_read`;
//! prints each read's time, the records it read, and what it found.
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use reset_pipeline::kafka::progress::{ProgressRecord, FORMAT};
use reset_pipeline::kafka::ProgressReader;
use reset_pipeline::offsets::Progress;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: reset_pipeline::Allocator = reset_pipeline::Allocator;

const TOPIC: &str = "reset-pipeline.progress";

/// The test harness's brokers: tansu started and its topics created the same way.
#[allow(dead_code)]
#[path = "../tests/common/kafka.rs"]
mod kafka;
const PARTITIONS: u64 = 64;

/// Writes `count` records, `linger_ms` apart at most. Tansu returns only
/// the last record of a multi-record batch to readers of this topic, so a
/// batched write reads back fewer records than were written (the first read
/// below counts what it got); the later write is one record per request.
fn produce(config: &ClientConfig, from: u64, count: u64, linger_ms: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = config
        .clone()
        .set("linger.ms", linger_ms)
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for i in from..from + count {
        let partition = (i % PARTITIONS) as i32;
        let record = ProgressRecord {
            v: FORMAT,
            topic: "sensor-events".into(),
            partition,
            epoch: 1,
            progress: Progress {
                offset: i,
                watermark: i as i64 * 1000,
                acknowledged_through: i as i64 * 1000,
                raises: Vec::new(),
            },
        };
        let payload = serde_json::to_string(&record).unwrap();
        let key = format!("sensor-events/{partition}");
        let mut next = BaseRecord::to(TOPIC)
            .key(&key)
            .payload(&payload)
            .partition(0);
        while let Err((_, back)) = producer.send(next) {
            next = back;
            std::thread::sleep(Duration::from_millis(1));
        }
        if linger_ms == "0" {
            producer.flush(Duration::from_secs(10)).expect("flushed");
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flushed");
}

fn main() {
    let records: u64 = std::env::var("PROGRESS_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let broker = kafka::Broker::start(kafka::BrokerKind::TansuInMemory, &[(TOPIC, 1)]);
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &broker.bootstrap);
    let started = Instant::now();
    produce(&config, 0, records, "20");
    eprintln!(
        "{records} progress records written in {:.1?}",
        started.elapsed()
    );

    let mut reader = ProgressReader::new(&config, TOPIC).expect("reader");
    let first = Instant::now();
    let found = reader.latest(Duration::from_secs(600)).expect("read").len();
    let first = first.elapsed();
    let read = reader.records_read();
    println!("first read (whole topic, {records} records): {first:.2?}, {read} records read, {found} partitions");

    produce(&config, records, PARTITIONS, "0");
    let later = Instant::now();
    let latest = reader.latest(Duration::from_secs(60)).expect("read");
    let later = later.elapsed();
    let newest = latest
        .values()
        .map(|s| s.progress.offset)
        .max()
        .unwrap_or(0);
    let read = reader.records_read() - read;
    println!(
        "later read ({PARTITIONS} records written since): {later:.2?}, {read} records read, newest offset {newest}"
    );
}
