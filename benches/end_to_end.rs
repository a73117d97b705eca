//! End-to-end throughput: records/s from a local broker (tansu, a separate
//! process) through decode, windows and publishing to the local emulator,
//! measured in the same run as the raw consume rate of the same topic by a
//! bare rdkafka consumer. Run with `cargo bench --bench end_to_end`
//! (tansu with its in-memory storage, from `TANSU_BIN`,
//! `~/.cache/reset-pipeline/tansu/bin/tansu` where `scripts/test.sh` builds
//! it, or PATH;
//! `E2E_RECORDS` sets the size, default 1,000,000). It prints both rates,
//! their ratio, when each reader took its first and last record, and the CPU
//! time the bench process (readers, pipeline, emulator) and the broker used
//! in each phase.

use rdkafka::consumer::{BaseConsumer, Consumer};
use reset_pipeline::config::{Config, InputFormat, Secret};
use reset_pipeline::emulator::{serve, EmulatorOptions};
use reset_pipeline::http::Readiness;
use reset_pipeline::metrics::Metrics;
use reset_pipeline::synthetic::{fleet, SampleStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "sensor-events";

/// CPU seconds a process has used so far, all its threads (`/proc/<pid>/stat`
/// utime + stime, in Linux's fixed 100 ticks per second); 0 without /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which may hold spaces, start at field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / 100.0
}

/// CPU time from a start: the calling thread's (the bare consumer's poll
/// loop, or the pipeline's loop, which `block_on` runs on this thread), the
/// rest of this process's (librdkafka's threads, the runtime's workers with
/// the publisher and the emulator), and the broker's.
struct Phase {
    broker: String,
    at: [f64; 3],
    wall: Instant,
}

impl Phase {
    fn cpu(broker: &str) -> [f64; 3] {
        let own = cpu_seconds("thread-self");
        [own, cpu_seconds("self") - own, cpu_seconds(broker)]
    }

    fn start(broker: u32) -> Phase {
        let broker = broker.to_string();
        let at = Phase::cpu(&broker);
        Phase {
            broker,
            at,
            wall: Instant::now(),
        }
    }

    fn report(&self) -> String {
        let now = Phase::cpu(&self.broker);
        let [thread, rest, broker] = [0, 1, 2].map(|i| now[i] - self.at[i]);
        format!(
            "CPU {thread:.2} s on this thread + {rest:.2} s other threads + {broker:.2} s broker in {:.2} s",
            self.wall.elapsed().as_secs_f64()
        )
    }
}

/// The test harness's brokers: tansu started and its topics created the same way.
#[allow(dead_code)]
#[path = "../tests/common/kafka.rs"]
mod kafka;

fn main() {
    let records: usize = std::env::var("E2E_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let in_flight: usize = std::env::var("E2E_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Config::default().reset.max_in_flight);
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
    let bare_phase = Phase::start(broker.pid());
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
    let bare_cpu = bare_phase.report();
    drop(bare);

    // The pipeline, from subscription to RESET's last answer.
    let broker_pid = broker.pid();
    let (rate, phases) = runtime.block_on(async {
        let emulator = serve("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
            .await
            .unwrap();
        config.reset.url = format!("http://{}", emulator.addr);
        config.reset.client_id = "demo".into();
        config.reset.client_secret = Secret::new("demo");
        config.reset.max_in_flight = in_flight;
        config
            .kafka
            .properties
            .insert("fetch.wait.max.ms".into(), Secret::new("10"));
        let metrics = Metrics::new();
        let consumed = metrics.records_consumed.clone();
        let unanswered = metrics.in_flight.clone();
        let phase = Phase::start(broker_pid);
        let start = Instant::now();
        // Marked by the shutdown future: the first and the last record taken,
        // RESET's answer to the last message sent, and the CPU used by then.
        // The pipeline's shutdown after that (leaving the group) is not timed,
        // like the bare consumer's.
        let marks = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
        let cpu = Arc::new(std::sync::Mutex::new(String::new()));
        let (marked, cpu_marked) = (Arc::clone(&marks), Arc::clone(&cpu));
        let done = async move {
            // Looked at every 2 ms: each look wakes the loop's thread.
            let pause = || tokio::time::sleep(Duration::from_millis(2));
            while consumed.get() == 0 {
                pause().await;
            }
            marked.lock().unwrap().push(start.elapsed());
            while (consumed.get() as usize) < records {
                pause().await;
            }
            marked.lock().unwrap().push(start.elapsed());
            while unanswered.get() > 0 {
                pause().await;
            }
            marked.lock().unwrap().push(start.elapsed());
            *cpu_marked.lock().unwrap() = phase.report();
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
        let marks = marks.lock().unwrap().clone();
        let [first, taken, answered] = marks[..] else {
            panic!("the pipeline stopped before its last answer: {marks:?}");
        };
        let cpu = cpu.lock().unwrap().clone();
        (
            records as f64 / answered.as_secs_f64(),
            format!(
                "first record {first:.2?}, last record {taken:.2?}, last answer {answered:.2?}; {cpu}"
            ),
        )
    });
    drop(broker);
    println!(
        "end_to_end: {records} records from tansu, 3 partitions, {monitors} monitors, max_in_flight {in_flight}: bare consumer {bare_rate:.0} records/s, pipeline {rate:.0} records/s, ratio {:.2}",
        rate / bare_rate
    );
    println!(
        "end_to_end: bare consumer: first record {bare_first:.2?}, last {bare_total:.2?}; {bare_cpu}\nend_to_end: pipeline: {phases}"
    );
}
