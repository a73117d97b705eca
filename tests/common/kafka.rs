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
    kind: BrokerKind,
    child: Child,
    /// The broker's log (`broker.log`) and tansu's data: removed after the
    /// broker stops, kept (and named) when a test failed.
    dir: TestDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Stopped before its directory goes (the field drops after this).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test's own directory (a broker's log and data; a pipeline's config,
/// registry and log): removed when the test passes, kept and named when
/// it fails, since the logs in it are what tell why.
pub struct TestDir {
    /// What it holds, for the message that names a kept one.
    holds: &'static str,
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new(holds: &'static str) -> TestDir {
        TestDir {
            holds,
            dir: Some(tempfile::tempdir().expect("a temporary directory")),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("kept only when dropped").path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("{} kept: {}", self.holds, dir.keep().display());
            }
        }
    }
}

/// The broker's log file, in its directory.
const LOG: &str = "broker.log";

/// The log of a broker in `dir`, appended to (tansu restarted writes on).
fn broker_log(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LOG))
        .expect("the broker's log can be written")
}

/// The kind of every broker started, by bootstrap address: a config for a
/// broker takes settings that suit it.
static KINDS: std::sync::Mutex<BTreeMap<String, BrokerKind>> =
    std::sync::Mutex::new(BTreeMap::new());

/// The group session timeout for a broker's tests. On the mock, short, so
/// that a killed member's partitions move soon. On tansu, librdkafka's
/// default: tansu never expires a member anyway, serves its storage one
/// request at a time (a heartbeat waits behind a slow fetch on a loaded
/// machine), and tansu 0.6.0 panics in a heartbeat whose storage request
/// fails, which a connection dropped after a timed-out heartbeat can cause;
/// its later requests for the group then hang.
pub fn session_timeout_ms(bootstrap: &str) -> u32 {
    match KINDS.lock().unwrap().get(bootstrap) {
        Some(BrokerKind::Mock) | None => 6_000,
        Some(_) => 45_000,
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

    /// The broker goes away: the mock's broker is set down (its connections
    /// closed, new ones refused); tansu is killed.
    pub fn down(&mut self) {
        match self.kind {
            BrokerKind::Mock => self.tell_mock("down"),
            _ => {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    /// Back after `down`: tansu started again on the same port and storage.
    pub fn up(&mut self) {
        match self.kind {
            BrokerKind::Mock => {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("mock-kafka ended while its broker was down: {status}");
                }
                self.tell_mock("up")
            }
            kind => {
                let port: u16 = self.bootstrap.rsplit_once(':').unwrap().1.parse().unwrap();
                self.child = start_tansu(kind, port, self.dir.path());
            }
        }
    }

    /// The mock answers every produce request "not enough replicas" until
    /// `accept_writes` (tansu has no such fault).
    pub fn refuse_writes(&mut self) {
        assert_eq!(self.kind, BrokerKind::Mock, "only the mock refuses writes");
        self.tell_mock("refuse-writes");
    }

    pub fn accept_writes(&mut self) {
        self.tell_mock("accept-writes");
    }

    fn tell_mock(&mut self, command: &str) {
        use std::io::Write;
        let stdin = self
            .child
            .stdin
            .as_mut()
            .expect("mock-kafka reads commands");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// Creates a topic while the broker runs (the mock cluster answers no
    /// admin request; tansu's own command line does).
    pub fn create_topic(&mut self, name: &str, partitions: i32) {
        match self.kind {
            BrokerKind::Mock => self.tell_mock(&format!("create {name}:{partitions}")),
            _ => {
                let status = Command::new(tansu_bin())
                    .args(["topic", "create", "--broker"])
                    .arg(format!("tcp://{}", self.bootstrap))
                    .args(["--partitions", &partitions.to_string(), name])
                    .stdout(Stdio::null())
                    .status()
                    .expect("tansu runs");
                assert!(status.success(), "tansu topic create {name}: {status}");
            }
        }
    }

    pub fn start(kind: BrokerKind, topics: &[(&str, i32)]) -> Broker {
        let broker = Broker::start_process(kind, topics);
        KINDS.lock().unwrap().insert(broker.bootstrap.clone(), kind);
        broker
    }

    fn start_process(kind: BrokerKind, topics: &[(&str, i32)]) -> Broker {
        match kind {
            BrokerKind::Mock => {
                let dir = TestDir::new("the broker's log");
                let mut args = vec!["mock-kafka".to_string()];
                for (name, partitions) in topics {
                    args.push("--topic".into());
                    args.push(format!("{name}:{partitions}"));
                }
                let mut child = Command::new(BIN)
                    .args(&args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(broker_log(dir.path()))
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
                    kind,
                    child,
                    dir,
                }
            }
            BrokerKind::Tansu | BrokerKind::TansuInMemory => {
                let bin = tansu_bin();
                let port = free_port();
                let url = format!("tcp://127.0.0.1:{port}");
                let dir = TestDir::new("the broker's log and data");
                let child = start_tansu(kind, port, dir.path());
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
                    kind,
                    child,
                    dir,
                }
            }
        }
    }
}

/// Starts tansu on `port`, its data and log in `dir`, and waits until it listens.
fn start_tansu(kind: BrokerKind, port: u16, dir: &Path) -> Child {
    let bin = tansu_bin();
    let url = format!("tcp://127.0.0.1:{port}");
    let output = dir.join(LOG);
    // SQLite storage, in a directory of its own. tansu 0.6.0's in-memory
    // storage (`memory://`, dynostore) answers a fetch at an offset inside a
    // record batch with the next batch, and ListOffsets with the last
    // batch's base offset plus one.
    let storage = match kind {
        BrokerKind::TansuInMemory => "memory://tansu/",
        _ => "sqlite://tansu.db",
    };
    let child = Command::new(&bin)
        .current_dir(dir)
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
        .stderr(broker_log(dir))
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/test.sh installs tansu; or set TANSU_BIN)",
                bin.display()
            )
        });
    wait_for_port(port, &output);
    child
}

/// A `run` process.
pub struct Pipeline {
    child: Child,
}

/// The operations listener of every pipeline process still running, by
/// process id: a failing wait prints their figures.
static RUNNING: std::sync::Mutex<BTreeMap<u32, String>> = std::sync::Mutex::new(BTreeMap::new());

/// The config a start uses: `config` itself when it names its operations
/// listener's port, else a copy beside it with a free port, so that the
/// test can read its metrics (and several starts of one config can run
/// together). Returns the path and the listener's address.
fn with_known_listener(config: &Path) -> (PathBuf, String) {
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let text = std::fs::read_to_string(config).unwrap();
    let any_port = "listen: 127.0.0.1:0\n";
    if text.contains(any_port) {
        let addr = format!("127.0.0.1:{}", free_port());
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let copy = config.with_file_name(format!("start-{n}.yaml"));
        std::fs::write(&copy, text.replace(any_port, &format!("listen: {addr}\n"))).unwrap();
        return (copy, addr);
    }
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("listen:"))
        .expect("the config has http.listen");
    let addr = line.split_once(':').unwrap().1.trim().to_string();
    (config.to_path_buf(), addr)
}

/// A plain HTTP GET on loopback: the status and the body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// Samples of a Prometheus text exposition by name and sorted labels
/// (`name{label=value,...}`; `name{}` without labels).
pub fn scrape(text: &str) -> BTreeMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    parsed
        .samples
        .into_iter()
        .filter_map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            Some((format!("{}{{{}}}", s.metric, labels.join(",")), value))
        })
        .collect()
}

/// What a running pipeline says of itself: records consumed, lag per
/// partition, stalled partitions, readings sent, RESET's answers, messages
/// in flight and commits.
pub fn figures(addr: &str) -> String {
    let text = match http_get(addr, "/metrics") {
        Ok((200, text)) => text,
        Ok((status, _)) => return format!("{addr}: /metrics answered {status}"),
        Err(e) => return format!("{addr}: /metrics unreachable: {e}"),
    };
    let wanted = [
        "records_consumed_total",
        "consumer_lag_records",
        "stalled_partitions",
        "readings_sent_total",
        "answers_total",
        "in_flight_messages",
        "commits_total",
    ];
    scrape(&text)
        .into_iter()
        .filter(|(k, _)| wanted.iter().any(|w| k.contains(w)))
        .map(|(k, v)| format!("{}={v}", k.trim_start_matches("reset_pipeline_")))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Pipeline {
    pub fn start(config: &Path, log: &Path) -> Pipeline {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let (config, addr) = with_known_listener(config);
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
        RUNNING.lock().unwrap().insert(child.id(), addr);
        Pipeline { child }
    }

    /// The address of its operations listener (`/metrics`, `/readyz`).
    pub fn http(&self) -> String {
        RUNNING.lock().unwrap()[&self.child.id()].clone()
    }

    /// Its figures now (see `figures`).
    pub fn figures(&self) -> String {
        figures(&self.http())
    }

    /// A counter or gauge of its `/metrics` (`name{labels}` as `scrape` keys it);
    /// `None` while it does not answer.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = http_get(&self.http(), "/metrics").ok()?;
        scrape(&text).get(series).copied()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        RUNNING.lock().unwrap().remove(&self.child.id());
    }

    /// SIGTERM, then waits up to `deadline` for the drain; `None` (and a
    /// SIGKILL) when it did not end in time.
    pub fn terminate_within(mut self, deadline: Duration) -> Option<ExitStatus> {
        signal(self.child.id(), "TERM");
        let until = Instant::now() + deadline;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= until {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        RUNNING.lock().unwrap().remove(&self.child.id());
        status
    }

    /// SIGTERM, then waits for the drain.
    pub fn terminate(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        RUNNING.lock().unwrap().remove(&self.child.id());
        status
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut running) = RUNNING.lock() {
            running.remove(&self.child.id());
        }
    }
}

/// Sends a signal (`STOP`, `CONT`, ...) to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Writes a registry file for `registry`.
pub fn write_monitors(registry: &Registry, path: &Path) {
    #[derive(serde::Serialize)]
    struct File<'a> {
        monitors: Vec<&'a MonitorRecord>,
    }
    let file = File {
        monitors: registry.iter().map(|(_, m)| &*m.record).collect(),
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
        "kafka:\n  bootstrap_servers: \"{bootstrap}\"\n  group_id: reset-pipeline\n  topics: [sensor-events]\n  properties: {{session.timeout.ms: \"{session}\", heartbeat.interval.ms: \"500\"{properties}}}\ninput:\n  format: avro\nwindowing:\n  idle_timeout: 2s\nreset:\n  url: http://{reset}\n  client_id: demo\n  ack_timeout: 3s\nmonitors:\n  file: monitors.yaml\ndead_letter:\n  topic: sensor-events.dlq\nhttp:\n  listen: 127.0.0.1:0\n{extra}",
        session = session_timeout_ms(bootstrap)
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The last 15 lines of a pipeline's log, to show when a wait runs out.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Replaces each `(from, to)` in the config file at `path`; each `from`
/// must be there (a test must not run on a config it did not mean).
pub fn edit_config(path: &Path, edits: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "{from:?} is not in the config:\n{text}"
        );
        text = text.replace(from, to);
    }
    std::fs::write(path, text).unwrap();
}

/// The topics of most Kafka tests: the input, the progress, the dead letters.
pub const TOPICS: &[(&str, i32)] = &[
    ("sensor-events", 3),
    ("reset-pipeline.progress", 1),
    ("reset-pipeline.announcements", 1),
    // An announcements store that stays empty (the mock creates no topic).
    ("elsewhere.announcements", 1),
    ("sensor-events.dlq", 1),
];

/// A broker with `TOPICS`, an emulator, and a registry written to
/// `monitors.yaml` in a folder of its own.
pub struct Setup {
    pub broker: Broker,
    pub emulator: reset_pipeline::emulator::EmulatorHandle,
    pub dir: TestDir,
    pub registry: Arc<Registry>,
}

pub async fn setup_with(
    kind: BrokerKind,
    registry: Registry,
    options: reset_pipeline::emulator::EmulatorOptions,
) -> Setup {
    let broker = Broker::start(kind, TOPICS);
    let emulator = reset_pipeline::emulator::serve("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let dir = TestDir::new("the pipeline's config, registry and log");
    write_monitors(&registry, &dir.path().join("monitors.yaml"));
    Setup {
        broker,
        emulator,
        dir,
        registry: Arc::new(registry),
    }
}

/// A half-hour boundary in September 2026: sample times well before now.
pub const START: i64 = 1_790_000_000_000 - 1_790_000_000_000 % 1_800_000;

/// `samples_per_monitor` samples of every monitor of `registry`, one every
/// 30 s from `START`, their values drawn with `seed`.
pub fn samples(
    registry: &Arc<Registry>,
    seed: u64,
    samples_per_monitor: usize,
) -> Vec<SensorEvent> {
    reset_pipeline::synthetic::SampleStream::new(Arc::clone(registry), START, 30_000, seed)
        .take(registry.len() * samples_per_monitor)
        .collect()
}

/// Produces events to `sensor-events` in Avro, keyed by connection_id, as `produce` does.
pub async fn produce_to(bootstrap: &str, events: Vec<SensorEvent>) {
    produce_as(bootstrap, InputFormat::Avro, events).await
}

/// Like `produce_to`, in another format.
pub async fn produce_as(bootstrap: &str, format: InputFormat, events: Vec<SensorEvent>) {
    let mut config = config_for(bootstrap);
    config.input.format = format;
    reset_pipeline::produce::produce_events(&config, "sensor-events", events)
        .await
        .unwrap();
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

/// Polls `done` until it holds or `timeout` passes. When it does not hold,
/// prints what every running pipeline says of itself, so that a stall is
/// told apart from a wrong result at a glance.
pub async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if done() {
        return true;
    }
    let running: Vec<(u32, String)> = RUNNING
        .lock()
        .unwrap()
        .iter()
        .map(|(pid, addr)| (*pid, addr.clone()))
        .collect();
    eprintln!("waited {timeout:?} in vain; the running pipelines say:");
    for (pid, addr) in running {
        eprintln!("  pid {pid}: {}", figures(&addr));
    }
    false
}

/// The high watermark of each of a topic's first `partitions` partitions.
pub fn partition_ends(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect()
}

/// A reader of the pipeline's progress topic on `bootstrap`.
pub fn progress_reader(bootstrap: &str) -> reset_pipeline::kafka::ProgressReader {
    let client = reset_pipeline::kafka::client_config(&config_for(bootstrap).kafka);
    reset_pipeline::kafka::ProgressReader::new(&client, "reset-pipeline.progress").unwrap()
}

/// The partitions of `sensor-events` whose latest progress is not at their
/// end (`ends`, by partition): (partition, the offset read (`None`: no
/// progress yet), end).
pub fn progress_behind(
    reader: &mut reset_pipeline::kafka::ProgressReader,
    ends: &[i64],
) -> Vec<(i32, Option<u64>, i64)> {
    let latest = reader.latest(Duration::from_secs(10)).unwrap();
    (0..ends.len() as i32)
        .map(|p| {
            let stored = latest.get(&("sensor-events".to_string(), p));
            (p, stored.map(|s| s.progress.offset), ends[p as usize])
        })
        .filter(|(_, offset, end)| *offset != Some(*end as u64))
        .collect()
}

/// Waits until the progress topic holds every partition of
/// `sensor-events` at its end: a pipeline read everything produced, sent
/// its windows and had them acknowledged. Fails naming those behind.
pub async fn assert_progress_reaches_the_ends(
    reader: &mut reset_pipeline::kafka::ProgressReader,
    ends: &[i64],
    timeout: Duration,
) {
    let mut behind = Vec::new();
    let at_ends = wait_until(timeout, || {
        behind = progress_behind(reader, ends);
        behind.is_empty()
    })
    .await;
    assert!(
        at_ends,
        "progress behind the ends {ends:?} (partition, offset, end): {behind:?}"
    );
}

/// Waits until the emulator holds `n` readings; fails saying how many it holds.
pub async fn assert_reset_receives(
    emulator: &reset_pipeline::emulator::EmulatorHandle,
    n: usize,
    timeout: Duration,
) {
    let state = Arc::clone(&emulator.state);
    let received = wait_until(timeout, || state.lock().unwrap().readings.len() >= n).await;
    let holds = state.lock().unwrap().readings.len();
    assert!(received, "RESET holds {holds} of {n} readings");
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
/// drops a partition's oldest batches past 5 MB (it keeps the last one
/// whatever its size, but a share of some 200,000 records arrived there cut
/// in two). A consumer that starts inside a batch gets the whole batch and
/// skips to its position, as with any Kafka broker.
///
/// The records are encoded first and then queued at once, within
/// `linger.ms` (10 s) of the first, so that no batch goes out before all
/// are queued; then librdkafka's flush sends each partition's whole batch
/// at once, without waiting for the linger to run out.
pub fn produce_one_batch_per_partition(bootstrap: &str, topic: &str, events: &[SensorEvent]) {
    use rdkafka::producer::BaseRecord;
    let linger = Duration::from_secs(10);
    let payloads: Vec<Vec<u8>> = events
        .iter()
        .map(|e| reset_pipeline::codec::encode(InputFormat::Avro, 0, e))
        .collect();
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", "zstd")
        .set("linger.ms", linger.as_millis().to_string())
        .set("message.timeout.ms", "600000")
        .set("batch.num.messages", "1000000")
        .set("batch.size", "1000000000")
        .set("message.max.bytes", "1000000000")
        .set("queue.buffering.max.messages", "10000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .create()
        .unwrap();
    let queued = Instant::now();
    for (event, payload) in events.iter().zip(&payloads) {
        producer
            .send(
                BaseRecord::to(topic)
                    .key(&event.connection_id)
                    .payload(payload),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    assert!(
        queued.elapsed() < linger / 2,
        "queueing {} records took {:?}: a batch may have been cut",
        events.len(),
        queued.elapsed()
    );
    flush_now(&producer, Duration::from_secs(300));
}

/// Sends what `producer` holds and waits for every delivery. rdkafka's
/// `flush` asks librdkafka's with no wait and polls in between, so the
/// linger runs out first (10 s a part); librdkafka sends at once only
/// while its flush is waiting: here it is given 100 ms a time.
fn flush_now(producer: &rdkafka::producer::BaseProducer, timeout: Duration) {
    use rdkafka::producer::Producer;
    use rdkafka::types::RDKafkaRespErr;
    let deadline = Instant::now() + timeout;
    loop {
        // SAFETY: the pointer is the producer's own live handle, and
        // rd_kafka_flush may be called from any thread.
        let err = unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), 100) };
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR => return,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__TIMED_OUT => {}
            other => panic!("flush failed: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "{} records still undelivered after {timeout:?}",
            producer.in_flight_count()
        );
        producer.poll(Duration::from_millis(10));
    }
}

/// One record, awaited until the broker has it; `None` is a tombstone.
pub async fn send(bootstrap: &str, topic: &str, key: &str, value: Option<&[u8]>) {
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let record = rdkafka::producer::FutureRecord::to(topic).key(key);
    let record = match value {
        Some(v) => record.payload(v),
        None => record,
    };
    producer
        .send(record, Duration::from_secs(10))
        .await
        .unwrap();
}
