//! End-to-end throughput: records/s from a local broker (tansu, a separate
//! process) through decode, windows and publishing to the local emulator,
//! measured in the same run as the raw consume rate of the same topic by a
//! bare rdkafka consumer. Run with `cargo bench --bench end_to_end`
//! (tansu with its in-memory storage, from `TANSU_BIN`,
//! `~/.cache/reset-pipeline/tansu/bin/tansu` where `scripts/test.sh` builds
//! it, or PATH). The topic is produced once; then the bare consumer and the
//! pipeline read all of it in turn, `E2E_RUNS` times (default 5), each time
//! in a group of its own. Each run prints both rates and their ratio, over
//! the whole time and from the first record taken, when each reader took
//! its first and last record, and the CPU time the bench process (readers,
//! pipeline, emulator) and the broker used; the summary gives the medians.
//! `E2E_RECORDS` sets the size (default 3,000,000: with a million, joining
//! the group was a quarter of a run and one run's ratio moved by up to ±0.1
//! on a 2-core machine), `E2E_IN_FLIGHT` the pipeline's `max_in_flight`
//! (default 16), `E2E_FORMAT=json` the records' format (`input.format`:
//! default `avro`).
use rdkafka::consumer::{BaseConsumer, Consumer};
use reset_pipeline::config::{Config, InputFormat, Secret};
use reset_pipeline::emulator::{serve, EmulatorOptions};
use reset_pipeline::http::Readiness;
use reset_pipeline::metrics::Metrics;
use reset_pipeline::synthetic::{fleet, SampleStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: reset_pipeline::Allocator = reset_pipeline::Allocator;

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

/// One reader's figures in one run.
struct Measured {
    /// Records over the whole time, from subscription to the end.
    rate: f64,
    /// Records over the time from the first record taken to the end: the
    /// rate once reading has started, without joining the group and finding
    /// the start offsets, which vary by tens of milliseconds from run to run.
    steady: f64,
    detail: String,
}

impl Measured {
    fn new(records: usize, first: Duration, end: Duration, detail: String) -> Measured {
        Measured {
            rate: records as f64 / end.as_secs_f64(),
            steady: records as f64 / (end - first).as_secs_f64(),
            detail,
        }
    }
}

/// The yardstick: a bare consumer in group `group` reading every record of the topic.
fn bare_consumer(bootstrap: &str, group: &str, records: usize, broker_pid: u32) -> Measured {
    let bare: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    bare.subscribe(&[TOPIC]).unwrap();
    let phase = Phase::start(broker_pid);
    let start = Instant::now();
    let mut read = 0;
    let mut first = Duration::ZERO;
    while read < records {
        if let Some(Ok(_)) = bare.poll(Duration::from_millis(100)) {
            if read == 0 {
                first = start.elapsed();
            }
            read += 1;
        }
    }
    let total = start.elapsed();
    let detail = format!(
        "first record {first:.2?}, last {total:.2?}; {}",
        phase.report()
    );
    Measured::new(records, first, total, detail)
}

/// The pipeline in group `config.kafka.group_id`, from subscription to
/// RESET's last answer.
fn pipeline(
    runtime: &tokio::runtime::Runtime,
    mut config: Config,
    registry: &Arc<reset_pipeline::registry::Registry>,
    records: usize,
    broker_pid: u32,
) -> Measured {
    let emulator = runtime
        .block_on(serve(
            "127.0.0.1:0".parse().unwrap(),
            EmulatorOptions::default(),
        ))
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
    let unanswered = metrics.in_flight.clone();
    // Marked by the shutdown future: the first and the last record taken,
    // RESET's answer to the last message sent, and the CPU used by then.
    // The pipeline's shutdown after that (leaving the group) is not timed,
    // like the bare consumer's.
    let marks = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let cpu = Arc::new(std::sync::Mutex::new(String::new()));
    let (marked, cpu_marked) = (Arc::clone(&marks), Arc::clone(&cpu));
    let phase = Phase::start(broker_pid);
    let start = Instant::now();
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
    runtime
        .block_on(reset_pipeline::live::run(
            config,
            Arc::clone(registry),
            metrics,
            Arc::new(Readiness::default()),
            done,
        ))
        .unwrap();
    emulator.stop();
    let marks = marks.lock().unwrap().clone();
    let [first, taken, answered] = marks[..] else {
        panic!("the pipeline stopped before its last answer: {marks:?}");
    };
    let cpu = cpu.lock().unwrap().clone();
    let detail = format!(
        "first record {first:.2?}, last record {taken:.2?}, last answer {answered:.2?}; {cpu}"
    );
    Measured::new(records, first, answered, detail)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let records = env_or("E2E_RECORDS", 3_000_000);
    let in_flight = env_or("E2E_IN_FLIGHT", Config::default().reset.max_in_flight);
    let runs = env_or("E2E_RUNS", 5).max(1);
    // Each run's pipeline is a group of its own, with its own progress topic,
    // so that every run reads the whole topic from its start.
    let groups: Vec<String> = (1..=runs).map(|i| format!("reset-pipeline-{i}")).collect();
    // The pipeline's own topics exist, as they do after its first start.
    let progress: Vec<String> = groups
        .iter()
        .flat_map(|g| [format!("{g}.progress"), format!("{g}.announcements")])
        .collect();
    let mut topics = vec![(TOPIC, 3)];
    topics.extend(progress.iter().map(|t| (t.as_str(), 1)));
    let broker = kafka::Broker::start(kafka::BrokerKind::TansuInMemory, &topics);
    let bootstrap = broker.bootstrap.clone();
    let monitors = 1_000;
    let registry = Arc::new(fleet(monitors));
    let mut config = Config::default();
    config.kafka.bootstrap_servers = bootstrap.clone();
    config.kafka.topics = vec![TOPIC.into()];
    let json = std::env::var("E2E_FORMAT").is_ok_and(|f| f == "json");
    config.input.format = if json {
        InputFormat::Json
    } else {
        InputFormat::Avro
    };
    config.reset.max_in_flight = in_flight;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let events: Vec<_> = SampleStream::new(Arc::clone(&registry), 1_790_000_000_000, 10_000, 1)
        .take(records)
        .collect();
    runtime
        .block_on(reset_pipeline::produce::produce_events(
            &config, TOPIC, events,
        ))
        .unwrap();

    // The two readers take turns, so that both meet the machine in the same state.
    let (mut bare_runs, mut pipeline_runs) = (Vec::new(), Vec::new());
    for (i, group) in groups.iter().enumerate() {
        let bare = bare_consumer(
            &bootstrap,
            &format!("bare-{}", i + 1),
            records,
            broker.pid(),
        );
        let mut run_config = config.clone();
        run_config.kafka.group_id = group.clone();
        let piped = pipeline(&runtime, run_config, &registry, records, broker.pid());
        println!(
            "end_to_end run {}/{runs}: bare consumer {:.0} records/s, pipeline {:.0} records/s, ratio {:.2}; from the first record: {:.0} and {:.0} records/s, ratio {:.2}\n  bare consumer: {}\n  pipeline: {}",
            i + 1,
            bare.rate,
            piped.rate,
            piped.rate / bare.rate,
            bare.steady,
            piped.steady,
            piped.steady / bare.steady,
            bare.detail,
            piped.detail
        );
        bare_runs.push(bare);
        pipeline_runs.push(piped);
    }
    drop(broker);
    let format = if json { "JSON" } else { "Avro" };
    println!("end_to_end: {records} {format} records from tansu, 3 partitions, {monitors} monitors, max_in_flight {in_flight}; medians of {runs} runs:");
    for (what, rate) in [
        (
            "from subscription",
            (|m: &Measured| m.rate) as fn(&Measured) -> f64,
        ),
        ("from the first record", |m: &Measured| m.steady),
    ] {
        let bare: Vec<f64> = bare_runs.iter().map(rate).collect();
        let piped: Vec<f64> = pipeline_runs.iter().map(rate).collect();
        let ratios: Vec<f64> = piped.iter().zip(&bare).map(|(p, b)| p / b).collect();
        let all: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "  {what}: bare consumer {:.0} records/s, pipeline {:.0} records/s, ratio {:.2} (each run: {})",
            median(&bare),
            median(&piped),
            median(&ratios),
            all.join(", ")
        );
    }
}
