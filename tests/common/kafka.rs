//! Real brokers and real pipeline processes for the Kafka tests: tansu as a
//! separate process, librdkafka's mock cluster hosted by `reset-pipeline
//! mock-kafka` (so the pipeline can be killed while the broker lives on).

use reset_pipeline::config::{Config, InputFormat};
use reset_pipeline::event::SensorEvent;
use reset_pipeline::registry::{MonitorRecord, Registry};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_reset-pipeline");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Mock,
    /// tansu with SQLite storage, for the tests.
    Tansu,
    /// tansu with its in-memory storage, for the end-to-end benchmark: much
    /// faster than SQLite, and its offset faults (below) do not touch a read
    /// from the start of a topic.
    TansuInMemory,
}

pub struct Broker {
    pub bootstrap: String,
    child: Child,
    /// tansu's data, removed after the broker stops.
    _data: Option<tempfile::TempDir>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The tansu binary: `TANSU_BIN`, the cache `scripts/test.sh` installs into, or PATH.
pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cached = Path::new(&home).join(".cache/reset-pipeline/tansu/bin/tansu");
    if cached.exists() {
        return cached;
    }
    PathBuf::from("tansu")
}

/// Waits for a broker to listen; `output` is where it writes, shown if it does not.
fn wait_for_port(port: u16, output: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "broker on port {port} did not start: {}",
            std::fs::read_to_string(output).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Broker {
    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(kind: BrokerKind, topics: &[(&str, i32)]) -> Broker {
        match kind {
            BrokerKind::Mock => {
                let mut args = vec!["mock-kafka".to_string()];
                for (name, partitions) in topics {
                    args.push("--topic".into());
                    args.push(format!("{name}:{partitions}"));
                }
                let mut child = Command::new(BIN)
                    .args(&args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("mock-kafka starts");
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                let bootstrap = line
                    .trim()
                    .strip_prefix("bootstrap ")
                    .expect("bootstrap line")
                    .to_string();
                Broker {
                    bootstrap,
                    child,
                    _data: None,
                }
            }
            BrokerKind::Tansu | BrokerKind::TansuInMemory => {
                let bin = tansu_bin();
                let port = free_port();
                let url = format!("tcp://127.0.0.1:{port}");
                let output = std::env::temp_dir().join(format!("tansu-{port}.log"));
                // SQLite storage, in a directory of its own. tansu 0.6.0's
                // in-memory storage (`memory://`, dynostore) answers a fetch
                // at an offset inside a record batch with the next batch, and
                // ListOffsets with the last batch's base offset plus one.
                let data = tempfile::tempdir().unwrap();
                let storage = match kind {
                    BrokerKind::TansuInMemory => "memory://tansu/",
                    _ => "sqlite://tansu.db",
                };
                let child = Command::new(&bin)
                    .current_dir(data.path())
                    .args([
                        "broker",
                        "--listener-url",
                        &url,
                        "--advertised-listener-url",
                        &url,
                        "--storage-engine",
                        storage,
                    ])
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&output).unwrap())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!(
                            "{}: {e} (scripts/test.sh installs tansu; or set TANSU_BIN)",
                            bin.display()
                        )
                    });
                wait_for_port(port, &output);
                for (name, partitions) in topics {
                    let status = Command::new(&bin)
                        .args([
                            "topic",
                            "create",
                            name,
                            "--partitions",
                            &partitions.to_string(),
                            "--broker",
                            &url,
                        ])
                        .stdout(Stdio::null())
                        .status()
                        .unwrap();
                    assert!(status.success(), "tansu topic create {name}");
                }
                Broker {
                    bootstrap: format!("127.0.0.1:{port}"),
                    child,
                    _data: Some(data),
                }
            }
        }
    }
}

/// A `run` process.
pub struct Pipeline {
    child: Child,
}

impl Pipeline {
    pub fn start(config: &Path, log: &Path) -> Pipeline {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RESET_CLIENT_SECRET", "demo")
            .env(
                "RUST_LOG",
                std::env::var("PIPELINE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run starts");
        Pipeline { child }
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the drain.
    pub fn terminate(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a registry file for `registry`.
pub fn write_monitors(registry: &Registry, path: &Path) {
    #[derive(serde::Serialize)]
    struct File<'a> {
        monitors: Vec<&'a MonitorRecord>,
    }
    let file = File {
        monitors: registry.iter().map(|(_, m)| &m.record).collect(),
    };
    std::fs::write(path, serde_yaml::to_string(&file).unwrap()).unwrap();
}

/// A config for a pipeline against `bootstrap` and the emulator at `reset`.
pub fn write_config(dir: &Path, bootstrap: &str, reset: SocketAddr, extra: &str) -> PathBuf {
    write_config_with(dir, bootstrap, reset, "", extra)
}

/// Like `write_config`, with more librdkafka properties (`key: value, ...`).
pub fn write_config_with(
    dir: &Path,
    bootstrap: &str,
    reset: SocketAddr,
    properties: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join("config.yaml");
    let yaml = format!(
        "kafka:\n  bootstrap_servers: \"{bootstrap}\"\n  group_id: reset-pipeline\n  topics: [sensor-events]\n  properties: {{session.timeout.ms: \"6000\", heartbeat.interval.ms: \"500\"{properties}}}\ninput:\n  format: avro\nwindowing:\n  idle_timeout: 2s\nreset:\n  url: http://{reset}\n  client_id: demo\n  ack_timeout: 3s\nmonitors:\n  file: monitors.yaml\ndead_letter:\n  topic: sensor-events.dlq\nhttp:\n  listen: 127.0.0.1:0\n{extra}"
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A config value for in-process Kafka calls.
pub fn config_for(bootstrap: &str) -> Config {
    let mut c = Config::default();
    c.kafka.bootstrap_servers = bootstrap.to_string();
    c.kafka.topics = vec!["sensor-events".into()];
    c.input.format = InputFormat::Avro;
    c
}

/// Rows keyed by (connection_id, reading_time), from `readings` payloads.
pub fn rows_of(payloads: impl IntoIterator<Item = Value>) -> BTreeMap<(String, String), Value> {
    reset_pipeline::demo::rows(payloads)
}

/// What the offline core makes of the same events (as one partition).
pub fn expected_rows(
    registry: &Arc<Registry>,
    events: &[SensorEvent],
) -> BTreeMap<(String, String), Value> {
    reset_pipeline::demo::offline_rows(registry, events)
}

/// The emulator's rows, keyed like `expected_rows`.
pub fn emulator_rows(
    state: &reset_pipeline::emulator::EmulatorState,
) -> BTreeMap<(String, String), Value> {
    rows_of([
        serde_json::json!({"data": {"readings": state.readings.values().cloned().collect::<Vec<_>>()}}),
    ])
}

/// Polls `done` until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done()
}

/// Reads every record of a topic (for dead letters), as JSON values.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Value> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(low))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < (high - low) as usize && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(serde_json::from_slice(m.payload().unwrap_or(b"null")).unwrap_or(Value::Null));
        }
    }
    out
}

/// Produces Avro `events` keyed by connection_id (as `produce` does), each
/// partition's share as a single zstd record batch: librdkafka's mock cluster
/// drops a partition's oldest batches past 5 MB, but keeps its last batch
/// whatever its size, so a long backlog fits there only as one batch. A
/// consumer that starts inside it gets the whole batch and skips to its
/// position, as with any Kafka broker.
pub fn produce_one_batch_per_partition(bootstrap: &str, topic: &str, events: &[SensorEvent]) {
    use rdkafka::producer::{BaseRecord, Producer};
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", "zstd")
        .set("linger.ms", "120000")
        .set("message.timeout.ms", "600000")
        .set("batch.num.messages", "1000000")
        .set("batch.size", "1000000000")
        .set("message.max.bytes", "1000000000")
        .set("queue.buffering.max.messages", "10000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .create()
        .unwrap();
    for event in events {
        let payload = reset_pipeline::codec::encode(InputFormat::Avro, 0, event);
        producer
            .send(
                BaseRecord::to(topic)
                    .key(&event.connection_id)
                    .payload(&payload),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    // flush sends at once, without waiting for linger.ms.
    producer.flush(Duration::from_secs(300)).unwrap();
}
