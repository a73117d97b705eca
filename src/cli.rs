//! The command line: parsing and dispatch to the library. Every failure is a
//! one-line error naming the file and field, and a non-zero exit.

use crate::config::{Config, PushMode, Secret};
use crate::coverage::Coverage;
use crate::emulator::EmulatorOptions;
use crate::offline;
use crate::output_file::{check_distinct, OutputFile};
use crate::problem::Problems;
use crate::registry::Registry;
use crate::window::EngineSettings;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "reset-pipeline",
    version,
    about = "Sensor events from Kafka to RESET Cloud half-hour readings"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline: raw events (JSON lines) in, the exact RESET emissions out. No Kafka, no network.
    Aggregate(AggregateArgs),
    /// The live pipeline: Kafka → windows → RESET, until SIGTERM (then drains, commits, exits 0).
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Re-process a time range of the input topics outside the live group.
    Replay {
        #[arg(long)]
        config: PathBuf,
        /// Start of the range (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        from: i64,
        /// End of the range (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        to: i64,
        /// Write the emissions here as JSON lines instead of publishing them.
        #[arg(long)]
        dry_run: Option<PathBuf>,
        /// Where to write the completeness report (CSV) of the replayed range.
        #[arg(long)]
        coverage: Option<PathBuf>,
    },
    /// Encode raw events (JSON lines) in the configured format and send them to the input topic.
    Produce {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        input: PathBuf,
    },
    /// Everything on one machine: a mock Kafka, the RESET emulator and a synthetic fleet, through `run`.
    Demo {
        /// Monitors in the synthetic fleet.
        #[arg(long, default_value_t = 60, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=crate::demo::MOST_MONITOR_HOURS))]
        monitors: usize,
        /// Hours of samples (one per monitor every 30 s).
        #[arg(long, default_value_t = 6, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..=crate::demo::MOST_MONITOR_HOURS as i64))]
        hours: i64,
        /// Where /metrics, /healthz and /readyz are served meanwhile.
        #[arg(long, default_value = "127.0.0.1:9898")]
        listen: std::net::SocketAddr,
    },
    /// A librdkafka mock cluster for tests: prints `bootstrap ADDR`, runs until stdin closes.
    #[command(hide = true)]
    MockKafka {
        /// Topics to create, as NAME:PARTITIONS.
        #[arg(long = "topic")]
        topics: Vec<String>,
    },
    /// A RESET stand-in for local development: Socket.IO namespace /v2, strict checks, GET /state.
    Emulator {
        /// Address to listen on, e.g. 127.0.0.1:8069.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Accepted client id (else RESET_CLIENT_ID, else "demo").
        #[arg(long)]
        client_id: Option<String>,
        /// Accepted client secret (else RESET_CLIENT_SECRET, else "demo").
        #[arg(long)]
        client_secret: Option<String>,
        /// Fraction of messages answered with 10500.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = parse_fraction)]
        fail_rate: f64,
        /// Fraction of accepted messages whose ack is never sent.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = parse_fraction)]
        drop_ack_rate: f64,
        /// Delay before each ack (e.g. 200ms).
        #[arg(long, value_parser = crate::config::parse_duration, default_value = "0s")]
        ack_delay: std::time::Duration,
        /// Drop the connection at every N-th message (0: never).
        #[arg(long, default_value_t = 0)]
        disconnect_every: u64,
        /// Seed for the misbehaviour, to repeat a run exactly.
        #[arg(long)]
        seed: Option<u64>,
        /// Answer every message of this connection_id with 10500 (a poison monitor).
        #[arg(long)]
        poison_connection_id: Option<String>,
        /// Serve TLS only, with this certificate chain (PEM); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM, PKCS #8); needs --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Check a config (and the monitor registry it names), or just a registry.
    Validate {
        #[arg(
            long,
            required_unless_present = "monitors",
            conflicts_with = "monitors"
        )]
        config: Option<PathBuf>,
        #[arg(long)]
        monitors: Option<PathBuf>,
    },
}

/// `aggregate`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AggregateArgs {
    /// The monitor registry (monitors.yaml).
    #[arg(long)]
    pub monitors: PathBuf,
    /// Raw events, one JSON object a line ("-" for standard input).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write emissions, one JSON line each (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Where to write rejected samples as JSON lines (default: counted on stderr only).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// A config file whose `windowing` and `reset.push` settings apply.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where to write the completeness report (CSV): per monitor and
    /// local date, the half-hours with data and the missing ones.
    #[arg(long)]
    pub coverage: Option<PathBuf>,
    /// The time event times are judged against (RFC 3339): more than
    /// `windowing.max_future_skew` ahead of it is implausible. Give the
    /// same to a re-run for the same output (default: now).
    #[arg(long, value_parser = parse_time)]
    pub now: Option<i64>,
    /// Threads that decode the input ahead of the windows (default: one
    /// fewer than the machine's cores, at least one; 0 decodes on the
    /// windows' own thread; at most 256). The output is the same for any number.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=256))]
    pub decoders: Option<usize>,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Aggregate(args) => aggregate(&args),
        Command::Validate { config, monitors } => validate(config.as_deref(), monitors.as_deref()),
        Command::Run { config } => run_live(&config),
        Command::Replay {
            config,
            from,
            to,
            dry_run,
            coverage,
        } => replay(&config, from, to, dry_run.as_deref(), coverage.as_deref()),
        Command::Produce { config, input } => produce(&config, &input),
        Command::Demo {
            monitors,
            hours,
            listen,
        } => runtime()?.block_on(crate::demo::demo(crate::demo::DemoOptions {
            monitors,
            hours,
            listen,
        })),
        Command::MockKafka { topics } => mock_kafka(&topics),
        Command::Emulator {
            listen,
            client_id,
            client_secret,
            fail_rate,
            drop_ack_rate,
            ack_delay,
            disconnect_every,
            seed,
            poison_connection_id,
            tls_cert,
            tls_key,
        } => {
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let options = EmulatorOptions {
                client_id: client_id
                    .or_else(|| env("RESET_CLIENT_ID"))
                    .unwrap_or_else(|| "demo".into()),
                client_secret: Secret::new(
                    client_secret
                        .or_else(|| env("RESET_CLIENT_SECRET"))
                        .unwrap_or_else(|| "demo".into()),
                ),
                fail_rate,
                drop_ack_rate,
                ack_delay,
                disconnect_every,
                seed,
                poison_connection_id,
                tls: tls_files(tls_cert.as_deref(), tls_key.as_deref())?,
            };
            emulator(listen, options)
        }
    }
}

fn problems(p: Problems) -> anyhow::Error {
    anyhow::anyhow!("{p}")
}

fn aggregate(args: &AggregateArgs) -> Result<()> {
    let (monitors, input) = (args.monitors.as_path(), args.input.as_path());
    let (output, rejects) = (args.output.as_deref(), args.rejects.as_deref());
    let (coverage, config) = (args.coverage.as_deref(), args.config.as_deref());
    let now_ms = args.now.unwrap_or_else(wall_clock_ms);
    let decoders = args.decoders.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.saturating_sub(1).max(1)
    });
    let mut inputs = vec![("--monitors", monitors), ("--input", input)];
    inputs.extend(config.map(|c| ("--config", c)));
    let mut outputs = Vec::new();
    outputs.extend(output.map(|p| ("--output", p)));
    outputs.extend(rejects.map(|p| ("--rejects", p)));
    outputs.extend(coverage.map(|p| ("--coverage", p)));
    check_distinct(&inputs, &outputs)?;
    let (settings, push) = match config {
        Some(path) => {
            let c = Config::load(path).map_err(problems)?;
            (EngineSettings::from(&c.windowing), c.reset.push)
        }
        None => (EngineSettings::default(), PushMode::default()),
    };
    let registry = Arc::new(Registry::load(monitors).map_err(problems)?);
    let (inner, size): (Box<dyn io::BufRead>, Option<u64>) = if input == Path::new("-") {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(input).with_context(|| format!("{}: cannot open", input.display()))?;
        let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 20, f)), size)
    };
    let mut reader = Counted {
        inner,
        name: input.display().to_string(),
        read: 0,
        progress: crate::progress_line::ProgressLine::new("aggregate", "bytes", size),
    };
    let mut out_file = match output {
        Some(path) => OutputFile::create(path)?,
        None => OutputFile::standard_output()?,
    };
    let mut rejects_file = rejects.map(OutputFile::create).transpose()?;
    let mut coverage_file = coverage.map(OutputFile::create).transpose()?;
    let mut counted = Coverage::default();
    let summary = offline::aggregate(
        registry,
        settings,
        push,
        now_ms,
        &mut reader,
        decoders,
        offline::Outputs {
            emissions: &mut out_file,
            rejects: rejects_file.as_mut().map(|w| w as &mut dyn Write),
            coverage: coverage_file.as_ref().map(|_| &mut counted),
        },
    )
    .context("aggregate failed")?;
    if let Some(file) = coverage_file.as_mut() {
        counted
            .write_csv(file)
            .context("cannot write the coverage report")?;
    }
    for file in std::iter::once(out_file)
        .chain(rejects_file)
        .chain(coverage_file)
    {
        file.finish()?;
    }
    reader.progress.finish();
    eprintln!("aggregate: {summary}");
    if let Some(warning) = summary.lateness_warning() {
        eprintln!("aggregate: warning: {warning}");
    }
    Ok(())
}

fn validate(config: Option<&Path>, monitors: Option<&Path>) -> Result<()> {
    let mut found = Problems::default();
    let mut monitor_count = None;
    let mut check_registry = |path: &Path, found: &mut Problems| match Registry::load(path) {
        Ok(r) => monitor_count = Some(r.len()),
        Err(p) => found.extend(p),
    };
    if let Some(path) = config {
        match Config::load(path) {
            Ok(c) => {
                let c = c.with_env_credentials(|k| std::env::var(k).ok());
                found.extend(c.validate(&path.display().to_string()));
                if let Some(file) = c.monitors_file() {
                    check_registry(&file, &mut found);
                }
            }
            Err(p) => found.extend(p),
        }
    }
    if let Some(path) = monitors {
        check_registry(path, &mut found);
    }
    if found.is_empty() {
        match monitor_count {
            Some(n) => println!("ok: {n} monitors"),
            None => println!("ok"),
        }
        Ok(())
    } else {
        for p in found.iter() {
            println!("{p}");
        }
        anyhow::bail!("{} problem(s) found", found.len())
    }
}

fn emulator(listen: std::net::SocketAddr, options: EmulatorOptions) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    runtime.block_on(async move {
        let handle = crate::emulator::serve(listen, options)
            .await
            .with_context(|| format!("{listen}: cannot listen"))?;
        let url = format!("{scheme}://{}", handle.addr);
        tracing::info!(%url, "RESET emulator on namespace /v2; GET /state shows what it accepted");
        shutdown_signal().await;
        let stats = handle.state.lock().expect("state lock").stats.clone();
        eprintln!(
            "emulator: {}",
            serde_json::to_string(&stats).unwrap_or_default()
        );
        handle.stop();
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// A reader that reports how much of its input was read.
struct Counted<R> {
    inner: R,
    /// The input's name, for its errors.
    name: String,
    read: u64,
    progress: crate::progress_line::ProgressLine,
}

impl<R: io::BufRead> io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .map_err(|e| crate::output_file::named(&self.name, "cannot read", e))?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: io::BufRead> io::BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let name = &self.name;
        self.inner
            .fill_buf()
            .map_err(|e| crate::output_file::named(name, "cannot read", e))
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        // The clock is looked at once a megabyte, not once a line.
        let before = self.read >> 20;
        self.read += n as u64;
        if self.read >> 20 != before {
            self.progress.update(self.read);
        }
    }
}

fn tls_files(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<crate::emulator::TlsFiles>> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()));
    Ok(Some(crate::emulator::TlsFiles {
        cert_pem: read(cert)?,
        key_pem: read(key)?,
    }))
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn parse_time(text: &str) -> std::result::Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}

/// A fraction, 0 to 1 (the emulator's rates).
fn parse_fraction(text: &str) -> std::result::Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between 0 and 1, not {text}"))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

/// A config ready to run: parsed, credentials from the environment, validated.
fn load_runnable(path: &Path) -> Result<(Config, Arc<Registry>)> {
    let config = Config::load(path)
        .map_err(problems)?
        .with_env_credentials(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let found = config.validate(&path.display().to_string());
    if !found.is_empty() {
        return Err(problems(found));
    }
    // The file, if any; `monitors.topic` is read on top of it when the pipeline starts.
    let registry = match config.monitors_file() {
        Some(file) => Registry::load(&file).map_err(problems)?,
        None => Registry::default(),
    };
    Ok((config, Arc::new(registry)))
}

fn run_live(path: &Path) -> Result<()> {
    let (config, registry) = load_runnable(path)?;
    let runtime = runtime()?;
    let outcome = runtime.block_on(async move {
        let metrics = crate::metrics::Metrics::new();
        let readiness = Arc::new(crate::http::Readiness::default());
        let listen: std::net::SocketAddr = config.http.listen.parse().context("http.listen")?;
        let (addr, http) = crate::http::serve(listen, metrics.clone(), Arc::clone(&readiness))
            .await
            .with_context(|| format!("{listen}: cannot listen"))?;
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
        let report =
            crate::live::run(config, registry, metrics, readiness, shutdown_signal()).await?;
        http.abort();
        tracing::info!(
            records = report.records,
            answered = report.messages_answered,
            commits = report.commits,
            "stopped"
        );
        Ok(())
    });
    // A read still waiting for a broker that is away (SIGTERM during the
    // start-up wait) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    outcome
}

fn replay(
    path: &Path,
    from: i64,
    to: i64,
    dry_run: Option<&Path>,
    coverage: Option<&Path>,
) -> Result<()> {
    anyhow::ensure!(from < to, "--from must be before --to");
    let (config, registry) = load_runnable(path)?;
    {
        let monitors = config.monitors_file();
        let mut inputs = vec![("--config", path)];
        inputs.extend(monitors.as_deref().map(|m| ("monitors.file", m)));
        let mut outputs = Vec::new();
        outputs.extend(dry_run.map(|p| ("--dry-run", p)));
        outputs.extend(coverage.map(|p| ("--coverage", p)));
        check_distinct(&inputs, &outputs)?;
    }
    let (registry, _) = crate::live::with_monitor_topic(&config, registry, &Default::default())?;
    // Publishing, replay reads and updates the announcements store as `run`
    // does. A dry run reads it (when it exists) and writes nothing: it shows
    // what a publishing replay would send now.
    let topic = config.kafka.announcements_topic();
    let client = crate::kafka::client_config(&config.kafka);
    let (store, announcements) = match dry_run {
        Some(_) => (None, crate::live::read_announcements(&client, &topic)?),
        None => {
            let own = [crate::kafka::OwnTopic {
                name: &topic,
                partitions: 1,
                compacted: true,
            }];
            if let Err(e) = runtime()?.block_on(crate::kafka::ensure_topics(&config.kafka, &own)) {
                tracing::warn!(error = %e, "the announcements store topic was not checked");
            }
            let (store, announcements) = open_announcements_soon(&client, &topic)?;
            (Some(store), announcements)
        }
    };
    let emissions = crate::replay::replay(&config, Arc::clone(&registry), from, to, announcements)?;
    let readings: usize = emissions
        .iter()
        .map(|e| match e {
            crate::pipeline::Emission::Readings(b) => b.ends.len(),
            _ => 0,
        })
        .sum();
    if let Some(path) = coverage {
        let mut counted = Coverage::default();
        for e in &emissions {
            counted.add_emission(&registry, e);
        }
        let mut w = OutputFile::create(path)?;
        counted
            .write_csv(&mut w)
            .context("cannot write the coverage report")?;
        w.finish()?;
    }
    if let Some(out) = dry_run {
        let mut w = OutputFile::create(out)?;
        for e in &emissions {
            crate::payload::write_emission_line(&mut w, e.event(), e.payload())?;
        }
        w.finish()?;
        eprintln!(
            "replay: {readings} readings in {} emissions written to {}",
            emissions.len(),
            out.display()
        );
        return Ok(());
    }
    let writer = store.as_ref().map(|s| s.writer());
    let published = runtime()?.block_on(crate::replay_publish::publish(
        &config, &registry, &emissions, writer,
    ))?;
    eprintln!(
        "replay: {readings} readings in {} messages published, {} rejected",
        published.messages, published.rejected
    );
    Ok(())
}

/// The announcements store, read as soon as the broker knows it: a topic
/// just created reaches the broker's metadata a moment later.
fn open_announcements_soon(
    client: &rdkafka::ClientConfig,
    topic: &str,
) -> Result<(
    crate::kafka::AnnouncementStore,
    crate::payload::Announcements,
)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        match crate::live::open_announcements(client, topic) {
            Err(e) if std::time::Instant::now() + wait < deadline => {
                tracing::debug!(error = %format!("{e:#}"), "the announcements store is not readable yet");
                std::thread::sleep(wait);
                wait *= 2;
            }
            read => return read,
        }
    }
}

fn produce(path: &Path, input: &Path) -> Result<()> {
    let config = Config::load(path).map_err(problems)?;
    anyhow::ensure!(
        !config.kafka.bootstrap_servers.is_empty(),
        "{}: kafka.bootstrap_servers: is required",
        path.display()
    );
    let file = File::open(input).with_context(|| format!("{}: cannot open", input.display()))?;
    let (events, skipped) =
        crate::produce::read_events(&mut BufReader::new(file), &input.display().to_string())?;
    let topic = config
        .kafka
        .topics
        .first()
        .cloned()
        .context("kafka.topics is empty")?;
    let sent = runtime()?.block_on(crate::produce::produce_events(&config, &topic, events))?;
    eprintln!("produce: {sent} events sent to {topic}, {skipped} lines skipped");
    Ok(())
}

fn mock_kafka(topics: &[String]) -> Result<()> {
    use rdkafka::types::RDKafkaApiKey;
    let cluster = rdkafka::mocking::MockCluster::new(1).context("cannot start the mock cluster")?;
    // NAME:PARTITIONS (one partition when not said).
    let create = |topic: &str| -> Result<()> {
        let (name, partitions) = topic.rsplit_once(':').unwrap_or((topic, "1"));
        let partitions: i32 = partitions
            .parse()
            .with_context(|| format!("topic {topic}: partitions must be a number"))?;
        Ok(cluster.create_topic(name, partitions, 1)?)
    };
    for t in topics {
        create(t)?;
    }
    println!("bootstrap {}", cluster.bootstrap_servers());
    // Runs until standard input closes (the test that started it ends or
    // kills it); the lines `down` and `up` take its broker down (every
    // connection closed, new ones refused) and back up; `refuse-writes`
    // answers every produce request "not enough replicas" (as a cluster
    // short of in-sync replicas does; librdkafka retries it) until
    // `accept-writes`; `create NAME:PARTITIONS` creates a topic.
    for line in io::stdin().lines() {
        let line = line?;
        if let Some(topic) = line.trim().strip_prefix("create ") {
            create(topic)?;
            continue;
        }
        let done = match line.trim() {
            "down" => cluster.broker_down(1),
            "up" => cluster.broker_up(1),
            "refuse-writes" => {
                let refusal = rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
                cluster.request_errors(RDKafkaApiKey::Produce, &vec![refusal; 1_000_000]);
                Ok(())
            }
            "accept-writes" => {
                cluster.clear_request_errors(RDKafkaApiKey::Produce);
                Ok(())
            }
            other => {
                eprintln!("mock-kafka: unknown command {other:?}");
                Ok(())
            }
        };
        done.context("mock-kafka")?;
    }
    Ok(())
}
