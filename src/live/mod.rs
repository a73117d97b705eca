//! `run`: the live pipeline. A consumer group reads the input topics on a
//! thread of its own (`kafka::group_reader`), which hands this loop batches
//! of records with the assignment changes in their place; each assigned
//! partition gets its own pure pipeline (engine, batcher, offset tracker),
//! resumed from the progress topic; messages go to the publisher;
//! RESET's answers flow back to the trackers; progress is written and then
//! offsets committed. The loop never waits for RESET or the broker: when too
//! many messages wait for answers the input is paused, not the loop. SIGTERM
//! drains: RESET's answers are awaited up to `reset.drain_timeout`, what was
//! acknowledged is committed, and the loop returns.

use crate::codec::Decoder;
use crate::config::{Config, InputFormat};
use crate::coverage::{Coverage, MessageWindows};
use crate::http::Readiness;
use crate::kafka::dead_letter::Letter;
use crate::kafka::flow::Flow;
use crate::kafka::group_reader::GroupContext;
use crate::kafka::monitor_topic::apply_records;
use crate::kafka::progress::ProgressRecord;
use crate::kafka::quiet::Quiet;
use crate::kafka::stall::StallWatch;
use crate::kafka::topic_presence::InputTopicWatch;
use crate::kafka::{
    client_config, ensure_topics, input_consumer_config, AnnouncementStore, DeadLetters,
    FollowedTopic, GroupReader, Input, OwnTopic, ProgressReader, ProgressWriter, RecordBatch,
};
use crate::metrics::Metrics;
use crate::offsets::Progress;
use crate::payload::{Announced, Announcements};
use crate::pipeline::PartitionPipeline;
use crate::registry::{MonitorId, Registry, RegistryChange};
use crate::reject::Reject;
use crate::schema_registry::SchemaRegistry;
use crate::sink::{FirstSend, Outgoing, Publisher, PublisherSettings, Status};
use crate::window::{EngineSettings, Epoch, Shape};
use anyhow::{anyhow, Context as _, Result};
use commit::CommitError;
use rdkafka::consumer::BaseConsumer;
use schemas::{SchemaAnswer, SchemaFetches};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store_gate::StoreGate;

mod commit;
mod input;
mod output;
mod schemas;
mod store_gate;
mod watch;

type PartitionKey = (String, i32);

/// A partition's low and high watermarks as the broker told them (`None`: no answer).
type Watermarks = (PartitionKey, Option<(i64, i64)>);

struct Partition {
    pipeline: PartitionPipeline,
    /// Whether its progress means anything yet (resumed, or a record read).
    started: bool,
    last_record: Instant,
    next_offset: Option<i64>,
    written: Option<Progress>,
    written_at: Instant,
    /// This owner's epoch, written in its progress records.
    epoch: u64,
    stall: StallWatch,
    /// Records read and not taken yet, in order: the first needs a writer
    /// schema the registry has not given yet.
    waiting: VecDeque<RecordBatch>,
    /// While shapes begun at assignment wait (`PartitionPipeline::
    /// catching_up`): the partition's high watermark, once the broker told
    /// it. Every record an earlier run may have read is below it.
    catch_up_to: Option<i64>,
}

impl Partition {
    /// Ends the shapes begun at assignment once every record below
    /// `catch_up_to` is taken (`next`: the offset of the next record to
    /// take): the epochs to keep.
    fn caught_up(&mut self, next: i64) -> Vec<(MonitorId, Epoch)> {
        let read = self.catch_up_to.is_some_and(|to| next >= to);
        if read && self.pipeline.catching_up() {
            self.pipeline.caught_up()
        } else {
            Vec::new()
        }
    }

    /// Records between the next offset to read and the high watermark.
    fn lag(&self, (low, high): (i64, i64)) -> i64 {
        self.next_offset
            .map_or(high - low, |next| (high - next).max(0))
    }
}

/// A progress write's outcome, with its records, and the dead letters the
/// broker did not take (the progress then waits for them).
type CommitDone = (Result<(), CommitError>, Vec<ProgressRecord>, Vec<Letter>);

/// A progress write under way beside the loop.
type Committing = std::pin::Pin<Box<dyn Future<Output = CommitDone> + Send>>;

/// Where a message handed to the publisher came from.
struct Owner {
    key: PartitionKey,
    sent: Instant,
    /// The windows of a readings message, covered once RESET acknowledges it.
    windows: Option<MessageWindows>,
}

/// What the live loop did, for the caller's summary.
#[derive(Debug, Default, Clone)]
pub struct LiveReport {
    pub records: u64,
    pub messages_answered: u64,
    pub commits: u64,
}

/// The running loop's state.
struct Live {
    config: Config,
    registry: Arc<Registry>,
    metrics: Metrics,
    consumer: Arc<BaseConsumer<GroupContext>>,
    watermark_client: Arc<BaseConsumer<Quiet>>,
    input_topics: InputTopicWatch,
    decoder: Decoder,
    schema_registry: Option<SchemaRegistry>,
    /// Schema ids being asked of the registry, or to be asked again.
    schema_fetches: SchemaFetches,
    schema_answers: tokio::sync::mpsc::UnboundedSender<SchemaAnswer>,
    dead_letters: DeadLetters,
    progress_writer: ProgressWriter,
    publisher: Publisher,
    parts: HashMap<PartitionKey, Partition>,
    /// Messages handed to the publisher and not answered yet, by id.
    owners: HashMap<String, Owner>,
    /// `monitors` messages awaiting RESET's answer: message id to the
    /// description it announces.
    monitor_messages: HashMap<String, Announced>,
    announcements: Announcements,
    announcement_store: AnnouncementStore,
    /// Messages waiting for the store to record `monitors` messages as sent.
    store_gate: StoreGate,
    /// Tickets of the store gate whose writes are done.
    announcements_stored: tokio::sync::mpsc::UnboundedSender<store_gate::Ticket>,
    /// The monitor registry topic, followed for changes.
    monitor_topic: Option<FollowedTopic>,
    rejects: Vec<Reject>,
    report: LiveReport,
    /// Idle partitions whose watermarks are being asked of the broker, off
    /// the loop: the answers come back through `watermarks`.
    asking_watermarks: HashSet<PartitionKey>,
    watermarks: tokio::sync::mpsc::UnboundedSender<Watermarks>,
    /// Whether the input is paused because too many messages wait for RESET.
    flow: Flow,
    /// When the input last began to flow (a stall is only counted from then).
    flowing_since: Instant,
    /// Since when messages wait and RESET acknowledged none (`None`: none waits).
    waiting_for_reset_since: Option<SystemTime>,
    /// The windows readings were sent for, by monitor and local day (the
    /// last few days), for the completeness gauges.
    coverage: Coverage,
    /// The first day `coverage` keeps (set when it last forgot older ones).
    coverage_kept_from: Option<chrono::NaiveDate>,
    /// When the completeness gauges were last set.
    completeness_at: Instant,
}

/// The registry `base` with `monitors.topic`, when configured, read to its
/// end on top of it; the topic is returned positioned for following.
pub fn with_monitor_topic(
    config: &Config,
    base: Arc<Registry>,
    metrics: &Metrics,
) -> Result<(Arc<Registry>, Option<FollowedTopic>)> {
    let Some(topic) = config.monitors.topic.as_deref() else {
        return Ok((base, None));
    };
    let (follower, records) = FollowedTopic::open(
        &client_config(&config.kafka),
        topic,
        Duration::from_secs(30),
    )
    .map_err(|e| anyhow!("cannot read the monitor topic: {e}"))?;
    let mut registry = Arc::unwrap_or_clone(base);
    apply_records(&mut registry, &records, metrics);
    tracing::info!(
        topic,
        records = records.len(),
        monitors = registry.len(),
        "monitor registry read"
    );
    Ok((Arc::new(registry), Some(follower)))
}

/// The announcements store, and what it says RESET holds.
pub fn open_announcements(
    client: &rdkafka::ClientConfig,
    topic: &str,
) -> Result<(AnnouncementStore, Announcements)> {
    let (store, stored) = AnnouncementStore::open(client, topic, Duration::from_secs(30))
        .map_err(|e| anyhow!("cannot read the announcements store: {e}"))?;
    Ok((store, learned(topic, &stored)))
}

/// What the announcements store says RESET holds, read without writing
/// to the store or creating it: nothing when it does not exist.
pub fn read_announcements(client: &rdkafka::ClientConfig, topic: &str) -> Result<Announcements> {
    let stored = AnnouncementStore::read_only(client, topic, Duration::from_secs(30))
        .map_err(|e| anyhow!("cannot read the announcements store: {e}"))?;
    match stored {
        Some(stored) => Ok(learned(topic, &stored)),
        None => {
            tracing::info!(
                topic,
                "no announcements store: as for a RESET that holds nothing"
            );
            Ok(Announcements::default())
        }
    }
}

fn learned(topic: &str, stored: &[crate::payload::Announced]) -> Announcements {
    let mut announcements = Announcements::default();
    for announced in stored {
        announcements.learn(announced);
    }
    tracing::info!(topic, monitors = stored.len(), "announcements store read");
    announcements
}

/// Publisher settings from the config; fails on a `reset.ca_file` that
/// cannot be read or holds no certificate.
pub fn publisher_settings(config: &Config) -> Result<PublisherSettings> {
    let r = &config.reset;
    let mut s = PublisherSettings::new(&r.url, &r.client_id, r.client_secret.clone());
    s.namespace = r.namespace.clone();
    s.ack_timeout = r.ack_timeout;
    s.max_in_flight = r.max_in_flight;
    s.max_queued = r.max_queued.max(r.max_in_flight);
    s.max_attempts = r.max_attempts;
    if let Some(ca_file) = config.reset_ca_file() {
        s.tls = Some(crate::sink::tls::connector(Some(&ca_file))?);
    }
    Ok(s)
}

/// Counts each message, and the readings in it, when it is first written
/// to RESET's connection (not when it is formed: during an outage nothing
/// is sent, however much waits).
fn count_first_sends(metrics: &Metrics) -> FirstSend {
    let (messages, readings) = (metrics.messages_sent.clone(), metrics.readings_sent.clone());
    FirstSend::new(move |m: &Outgoing| {
        messages.with_label_values(&[m.event.as_str()]).inc();
        readings.inc_by(m.readings as u64);
    })
}

/// How long a watermark query may take. Generous: it runs off the loop,
/// and a slow broker's answer is better than none.
const WATERMARK_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The client that asks idle partitions' watermarks, apart from the group's
/// consumer: librdkafka drops a connection on which a request timed out, and
/// the group's fetches must not go down with a watermark query that a busy
/// broker answered late. It keeps its own connection up after a timeout too
/// (`socket.max.fails` 0; a late answer is then ignored), because a broker
/// may still be serving the request: tansu 0.6.0 broke its storage for
/// every later request when a connection closed under one.
fn watermark_client(
    client: &rdkafka::ClientConfig,
) -> rdkafka::error::KafkaResult<BaseConsumer<Quiet>> {
    client
        .clone()
        .set("socket.max.fails", "0")
        .create_with_context(Quiet)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What `run` reads before it joins the group.
type OwnState = (
    Arc<Registry>,
    Option<FollowedTopic>,
    AnnouncementStore,
    Announcements,
);

/// One attempt at the pipeline's own topics: created where missing, then
/// the monitor registry topic and the announcements store read to their
/// ends (on a blocking thread: the reads wait for the broker).
async fn read_own_topics(
    config: &Config,
    registry: &Arc<Registry>,
    metrics: &Metrics,
    client: &rdkafka::ClientConfig,
    topics: &[OwnTopic<'_>],
) -> Result<OwnState> {
    ensure_topics(&config.kafka, topics)
        .await
        .map_err(|e| anyhow!(e))?;
    let (config, registry, metrics) = (config.clone(), Arc::clone(registry), metrics.clone());
    let client = client.clone();
    tokio::task::spawn_blocking(move || {
        let (registry, monitor_topic) = with_monitor_topic(&config, registry, &metrics)?;
        let topic = config.kafka.announcements_topic();
        let (store, announcements) = open_announcements(&client, &topic)?;
        Ok((registry, monitor_topic, store, announcements))
    })
    .await
    .context("the start-up reads stopped")?
}

/// Runs until `shutdown` resolves, then drains.
pub async fn run(
    config: Config,
    registry: Arc<Registry>,
    metrics: Metrics,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()>,
) -> Result<LiveReport> {
    let kafka = &config.kafka;
    let client = client_config(kafka);
    let progress_topic = kafka.progress_topic();
    let announcements_topic = kafka.announcements_topic();
    let mut topics = vec![
        OwnTopic {
            name: &progress_topic,
            partitions: 1,
            compacted: true,
        },
        OwnTopic {
            name: &announcements_topic,
            partitions: 1,
            compacted: true,
        },
    ];
    if let Some(dlq) = config.dead_letter.topic.as_deref() {
        topics.push(OwnTopic {
            name: dlq,
            partitions: 1,
            compacted: false,
        });
    }
    tokio::pin!(shutdown);
    // RESET is connected to (TLS settings built, authenticated) while the
    // broker is read, rather than while the first records wait for the CPU.
    let mut settings = publisher_settings(&config)?;
    settings.on_first_send = count_first_sends(&metrics);
    let (publisher, mut deliveries) = Publisher::start(settings);
    watch_readiness(&publisher, Arc::clone(&readiness));
    // A broker that is away at start (a pod scheduled before Kafka is
    // back) is waited for, as one that goes away later is.
    let mut backoff = Duration::from_millis(500);
    let own_state = loop {
        let attempt = read_own_topics(&config, &registry, &metrics, &client, &topics);
        let read = tokio::select! {
            read = attempt => read,
            _ = &mut shutdown => break None,
        };
        match read {
            Ok(state) => break Some(state),
            Err(e) => {
                if let Some(held_back) = crate::throttle::due("start-up read") {
                    tracing::warn!(error = %format!("{e:#}"), held_back, "waiting for Kafka: the pipeline's own topics cannot be read yet");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = &mut shutdown => break None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    };
    let Some((registry, monitor_topic, announcement_store, announcements)) = own_state else {
        publisher.drain(Duration::ZERO).await;
        return Ok(LiveReport::default());
    };
    let topic_names: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    let (reader, mut inputs) = GroupReader::start(
        input_consumer_config(kafka)
            .set("group.id", &kafka.group_id)
            .set("auto.offset.reset", "earliest"),
        ProgressReader::new(&client, &progress_topic).context("progress reader")?,
        &topic_names,
    )
    .context("cannot read the input topics")?;
    let publisher_limit = publisher.max_queued();
    let (watermarks, mut watermark_answers) = tokio::sync::mpsc::unbounded_channel();
    let (schema_answers, mut schema_arrivals) = tokio::sync::mpsc::unbounded_channel();
    let (announcements_stored, mut stored_tickets) = tokio::sync::mpsc::unbounded_channel();
    let schema_registry = match (
        config.input.format,
        config.input.schema_registry_url.as_deref(),
    ) {
        (InputFormat::AvroConfluent, Some(url)) => Some(SchemaRegistry::new(url)),
        _ => None,
    };
    let mut live = Live {
        decoder: Decoder::new(config.input.format),
        schema_registry,
        schema_fetches: SchemaFetches::default(),
        schema_answers,
        dead_letters: DeadLetters::new(&client, config.dead_letter.topic.as_deref())
            .context("dead-letter producer")?,
        progress_writer: ProgressWriter::new(&client, &progress_topic)
            .context("progress producer")?,
        consumer: Arc::clone(reader.consumer()),
        watermark_client: Arc::new(watermark_client(&client).context("watermark client")?),
        input_topics: InputTopicWatch::new(&config.kafka.topics),
        publisher,
        parts: HashMap::new(),
        owners: HashMap::new(),
        monitor_messages: HashMap::new(),
        store_gate: StoreGate::default(),
        announcements_stored,
        announcements,
        announcement_store,
        monitor_topic,
        rejects: Vec::new(),
        report: LiveReport::default(),
        asking_watermarks: HashSet::new(),
        watermarks,
        flow: Flow::new(publisher_limit),
        flowing_since: Instant::now(),
        waiting_for_reset_since: None,
        coverage: Coverage::default(),
        coverage_kept_from: None,
        completeness_at: Instant::now()
            .checked_sub(Duration::from_secs(10))
            .unwrap_or_else(Instant::now),
        config,
        registry,
        metrics,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut committing: Option<Committing> = None;
    let outcome = loop {
        // RESET's answers come first: they only ever arrive for messages
        // sent, so they cannot keep the other arms waiting for long. The tick
        // comes before the records: during a backlog, records are always
        // ready, and progress must still be committed every second. Nothing
        // in an arm waits on the broker for long (watermarks are asked off
        // the loop), or the arms after it would starve.
        let turn = tokio::select! {
            biased;
            _ = &mut shutdown => break Ok(()),
            Some(d) = deliveries.recv() => live.answered(d),
            Some((key, w)) = watermark_answers.recv() => {
                live.idle_watermarks(key, w);
                Ok(())
            }
            Some(answer) = schema_arrivals.recv() => live.schema_answered(answer),
            Some(ticket) = stored_tickets.recv() => {
                live.announcements_stored(ticket);
                Ok(())
            }
            done = async { committing.as_mut().expect("guarded").await }, if committing.is_some() => {
                committing = None;
                live.committed(done)
            }
            _ = tick.tick() => {
                live.tick(&mut committing);
                Ok(())
            }
            input = inputs.recv() => match input {
                Some(Input::Assignment(change)) => live.assignment(change, &readiness),
                Some(Input::Records(batch)) => live.records(batch),
                None => Err(anyhow!("the Kafka reading thread stopped")),
            },
        };
        if let Err(e) = turn {
            break Err(e);
        }
        live.follow_flow();
    };
    // Records still queued are left unread: progress does not count them.
    inputs.close();
    let reader_stopped = tokio::task::spawn_blocking(move || reader.stop());
    outcome?;
    let unanswered = live.publisher.held();
    tracing::info!(
        unanswered,
        drain_timeout = ?live.config.reset.drain_timeout,
        "draining: waiting for RESET to answer what was sent"
    );
    let deadline = Instant::now() + live.config.reset.drain_timeout;
    while live
        .parts
        .values()
        .any(|p| p.pipeline.unanswered_messages() > 0)
        && Instant::now() < deadline
    {
        tokio::select! {
            Some(d) = deliveries.recv() => live.answered(d)?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let unanswered: usize = live
        .parts
        .values()
        .map(|p| p.pipeline.unanswered_messages())
        .sum();
    if unanswered > 0 {
        tracing::warn!(
            unanswered,
            "drain timeout: the records of unanswered messages are read again at the next start"
        );
    }
    // The last progress: after the write under way, if any, what moved
    // since. A broker that takes none of it in time leaves the progress
    // written before, from which a restart is exact too.
    const LAST_WRITE: Duration = Duration::from_secs(15);
    if let Some(c) = committing.take() {
        if let Ok(done) = tokio::time::timeout(LAST_WRITE, c).await {
            live.committed(done)?;
        }
    }
    if let Some(c) = live.start_commit() {
        let (written, records, _) = tokio::time::timeout(LAST_WRITE, c)
            .await
            .map_err(|_| anyhow!("the broker did not take the last progress in {LAST_WRITE:?}"))?;
        written.map_err(|e| anyhow!("cannot write the last progress: {e}"))?;
        live.committed((Ok(()), records, Vec::new()))?;
    }
    let report = live.report.clone();
    live.publisher.drain(Duration::from_secs(1)).await;
    let _ = reader_stopped.await;
    Ok(report)
}

fn watch_readiness(publisher: &Publisher, readiness: Arc<Readiness>) {
    let mut status = publisher.status_watch();
    tokio::spawn(async move {
        loop {
            let ready = *status.borrow() == Status::Ready;
            readiness
                .reset_authenticated
                .store(ready, Ordering::Relaxed);
            if status.changed().await.is_err() {
                readiness
                    .reset_authenticated
                    .store(false, Ordering::Relaxed);
                return;
            }
        }
    });
}

impl Live {
    fn settings(&self) -> EngineSettings {
        EngineSettings::from(&self.config.windowing)
    }

    /// Applies new monitor records; every partition takes the new registry.
    fn follow_monitor_topic(&mut self) {
        let Some(topic) = &self.monitor_topic else {
            return;
        };
        let records = topic.poll_new();
        if records.is_empty() {
            return;
        }
        let mut registry = (*self.registry).clone();
        let changes = apply_records(&mut registry, &records, &self.metrics);
        if changes.is_empty() {
            return;
        }
        // Windows built on a monitor's old shape keep it (a monitor added
        // by these same records has none).
        let known = self.registry.len() as MonitorId;
        let reshaped: BTreeSet<MonitorId> = changes
            .iter()
            .filter_map(|c| match c {
                RegistryChange::Reshaped(id) if *id < known => Some(*id),
                _ => None,
            })
            .collect();
        let mut ended = Vec::new();
        for id in reshaped {
            let old = Shape(Arc::new(self.registry.get(id).clone()));
            for part in self.parts.values_mut() {
                ended.extend(part.pipeline.reshape(id, old.clone()).map(|e| (id, e)));
            }
        }
        self.registry = Arc::new(registry);
        for part in self.parts.values_mut() {
            part.pipeline.set_registry(Arc::clone(&self.registry));
        }
        self.keep_shapes(ended);
    }

    /// Once a second: monitor changes, descriptions other replicas told
    /// RESET, schemas to ask again, idle partitions, gauges; then the
    /// progress that moved, unless a write is still under way.
    fn tick(&mut self, committing: &mut Option<Committing>) {
        self.follow_monitor_topic();
        for announced in self.announcement_store.poll_new() {
            self.announcements.learn(&announced);
        }
        self.retry_schemas();
        self.ask_idle_watermarks();
        self.watch_input_topics();
        self.update_gauges();
        if committing.is_none() {
            *committing = self.start_commit();
        }
    }
}
