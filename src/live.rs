//! `run`: the live pipeline. A consumer group reads the input topics on a
//! thread of its own (`kafka::group_reader`), which hands this loop batches
//! of records with the assignment changes in their place; each assigned
//! partition gets its own pure pipeline (engine, batcher, offset tracker),
//! resumed from the progress topic; messages go to the publisher;
//! RESET's answers flow back to the trackers; progress is written and then
//! offsets committed. SIGTERM drains: what has closed is published and
//! answered, progress is committed, and the loop returns.

use crate::codec::Decoder;
use crate::config::{Config, InputFormat};
use crate::http::Readiness;
use crate::kafka::dead_letter::Letter;
use crate::kafka::flow::{Flow, FlowChange};
use crate::kafka::group_reader::GroupContext;
use crate::kafka::monitor_topic::apply_records;
use crate::kafka::progress::ProgressRecord;
use crate::kafka::quiet::Quiet;
use crate::kafka::record_queue::cached_watermarks;
use crate::kafka::stall::{StallChange, StallWatch};
use crate::kafka::{
    client_config, ensure_topics, input_consumer_config, Assignment, DeadLetters, GroupReader,
    Input, MonitorTopic, Origin, OwnTopic, ProgressReader, ProgressWriter, RecordBatch,
};
use crate::metrics::Metrics;
use crate::offsets::Progress;
use crate::payload::{monitors_payload, Announcements, MonitorAction};
use crate::pipeline::{with_announcements, Emission, PartitionPipeline};
use crate::registry::Registry;
use crate::reject::{Reject, RejectReason};
use crate::schema_registry::SchemaRegistry;
use crate::sink::{Delivery, Fate, Outgoing, Publisher, PublisherSettings, Status};
use crate::throttle::Throttle;
use crate::window::EngineSettings;
use anyhow::{anyhow, Context as _, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
}

impl Partition {
    /// Records between the next offset to read and the high watermark.
    fn lag(&self, (low, high): (i64, i64)) -> i64 {
        self.next_offset
            .map_or(high - low, |next| (high - next).max(0))
    }
}

/// A progress write's outcome, with its records, and the dead letters the
/// broker did not take (the progress then waits for them).
type CommitDone = (Result<(), String>, Vec<ProgressRecord>, Vec<Letter>);

/// A progress write under way beside the loop.
type Committing = std::pin::Pin<Box<dyn Future<Output = CommitDone> + Send>>;

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
    decoder: Decoder,
    schema_registry: Option<SchemaRegistry>,
    /// Schema ids the registry does not have or that cannot be read: asked once.
    unusable_schemas: std::collections::HashSet<u32>,
    dead_letters: DeadLetters,
    progress_writer: ProgressWriter,
    publisher: Publisher,
    parts: HashMap<PartitionKey, Partition>,
    owners: HashMap<String, (PartitionKey, Instant)>,
    /// `create` messages awaiting RESET's answer: message id to connection_id.
    creates: HashMap<String, String>,
    announcements: Announcements,
    /// The monitor registry topic, followed for changes.
    monitor_topic: Option<MonitorTopic>,
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
    /// Progress writes and offset commits that fail while the broker is
    /// down: logged now and then, not at every tick.
    write_faults: Throttle,
    commit_faults: Throttle,
}

/// The registry `base` with `monitors.topic`, when configured, read to its
/// end on top of it; the topic is returned positioned for following.
pub fn with_monitor_topic(
    config: &Config,
    base: Arc<Registry>,
    metrics: &Metrics,
) -> Result<(Arc<Registry>, Option<MonitorTopic>)> {
    let Some(topic) = config.monitors.topic.as_deref() else {
        return Ok((base, None));
    };
    let (follower, records) = MonitorTopic::open(
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

/// Publisher settings from the config.
pub fn publisher_settings(config: &Config) -> PublisherSettings {
    let r = &config.reset;
    let mut s = PublisherSettings::new(&r.url, &r.client_id, r.client_secret.clone());
    s.namespace = r.namespace.clone();
    s.ack_timeout = r.ack_timeout;
    s.max_in_flight = r.max_in_flight;
    s.max_queued = r.max_queued.max(r.max_in_flight);
    s.max_attempts = r.max_attempts;
    s
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
    let mut topics = vec![OwnTopic {
        name: &progress_topic,
        partitions: 1,
        compacted: true,
    }];
    if let Some(dlq) = config.dead_letter.topic.as_deref() {
        topics.push(OwnTopic {
            name: dlq,
            partitions: 1,
            compacted: false,
        });
    }
    ensure_topics(kafka, &topics).await;
    let (registry, monitor_topic) = with_monitor_topic(&config, registry, &metrics)?;
    let topic_names: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    let (reader, mut inputs) = GroupReader::start(
        input_consumer_config(kafka)
            .set("group.id", &kafka.group_id)
            .set("auto.offset.reset", "earliest"),
        ProgressReader::new(&client, &progress_topic).context("progress reader")?,
        &topic_names,
    )
    .context("cannot read the input topics")?;
    let (publisher, mut deliveries) = Publisher::start(publisher_settings(&config));
    let publisher_limit = publisher.max_queued();
    let (watermarks, mut watermark_answers) = tokio::sync::mpsc::unbounded_channel();
    watch_readiness(&publisher, Arc::clone(&readiness));
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
        unusable_schemas: Default::default(),
        dead_letters: DeadLetters::new(&client, config.dead_letter.topic.as_deref())
            .context("dead-letter producer")?,
        progress_writer: ProgressWriter::new(&client, &progress_topic)
            .context("progress producer")?,
        consumer: Arc::clone(reader.consumer()),
        watermark_client: Arc::new(watermark_client(&client).context("watermark client")?),
        publisher,
        parts: HashMap::new(),
        owners: HashMap::new(),
        creates: HashMap::new(),
        announcements: Announcements::default(),
        monitor_topic,
        rejects: Vec::new(),
        report: LiveReport::default(),
        asking_watermarks: HashSet::new(),
        watermarks,
        flow: Flow::new(publisher_limit),
        flowing_since: Instant::now(),
        waiting_for_reset_since: None,
        write_faults: Throttle::default(),
        commit_faults: Throttle::default(),
        config,
        registry,
        metrics,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
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
                Some(Input::Records(batch)) => live.records(&batch).await,
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

/// The partition's progress record, when its progress moved since it was
/// last written (a watermark raised by idleness alone: now and then, not
/// every tick).
fn progress_to_write(
    (topic, partition): &PartitionKey,
    part: &Partition,
) -> Option<ProgressRecord> {
    if !part.started {
        return None;
    }
    let progress = part.pipeline.progress();
    let moved = match part.written {
        None => true,
        Some(w) => {
            (w.offset, w.acknowledged_through) != (progress.offset, progress.acknowledged_through)
                || (w != progress && part.written_at.elapsed() >= Duration::from_secs(10))
        }
    };
    moved.then(|| ProgressRecord {
        v: crate::kafka::progress::FORMAT,
        epoch: part.epoch,
        topic: topic.clone(),
        partition: *partition,
        progress,
    })
}

/// Pauses or resumes the partitions in librdkafka: the consumer goes on
/// polling, so it keeps its place in the group.
fn set_flow(consumer: &BaseConsumer<GroupContext>, keys: &[&PartitionKey], change: FlowChange) {
    if keys.is_empty() {
        return;
    }
    let mut partitions = TopicPartitionList::new();
    for (topic, partition) in keys {
        partitions.add_partition(topic, *partition);
    }
    let done = match change {
        FlowChange::Pause => consumer.pause(&partitions),
        FlowChange::Resume => consumer.resume(&partitions),
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, ?change, "cannot change the input's flow");
    }
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
        if apply_records(&mut registry, &records, &self.metrics) {
            self.registry = Arc::new(registry);
            for part in self.parts.values_mut() {
                part.pipeline.set_registry(Arc::clone(&self.registry));
            }
        }
    }

    /// Once a second: monitor changes, idle partitions, gauges; then the
    /// progress that moved, unless a write is still under way.
    fn tick(&mut self, committing: &mut Option<Committing>) {
        self.follow_monitor_topic();
        self.ask_idle_watermarks();
        self.update_gauges();
        if committing.is_none() {
            *committing = self.start_commit();
        }
    }

    fn assignment(&mut self, change: Assignment, readiness: &Readiness) -> Result<()> {
        match change {
            Assignment::Failed(why) => return Err(anyhow!("partition assignment failed: {why}")),
            Assignment::Revoked(revoked) => {
                let mut last = Vec::new();
                for key in revoked {
                    tracing::info!(topic = %key.0, partition = key.1, "partition revoked");
                    if let Some(part) = self.parts.remove(&key) {
                        last.extend(progress_to_write(&key, &part));
                    }
                    self.metrics.forget_partition(&key.0, key.1);
                }
                self.write_revoked(last);
                // Messages of revoked partitions not sent yet are left to
                // their new owners.
                let revoked_ids: HashSet<String> = self
                    .owners
                    .iter()
                    .filter(|(_, (key, _))| !self.parts.contains_key(key))
                    .map(|(id, _)| id.clone())
                    .collect();
                self.owners.retain(|id, _| !revoked_ids.contains(id));
                self.publisher.cancel(revoked_ids);
            }
            Assignment::Assigned(assigned) => {
                let new_keys: Vec<PartitionKey> =
                    assigned.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
                for (topic, partition, stored) in assigned {
                    let progress = stored.map(|s| s.progress);
                    // This owner's epoch, above every earlier owner's.
                    let epoch = stored.map_or(1, |s| s.epoch + 1);
                    tracing::info!(%topic, partition, ?progress, epoch, "partition assigned");
                    let pipeline = PartitionPipeline::resume(
                        Arc::clone(&self.registry),
                        self.settings(),
                        self.config.reset.push,
                        progress.unwrap_or(Progress::start(0)),
                    );
                    self.parts.insert(
                        (topic, partition),
                        Partition {
                            pipeline,
                            started: progress.is_some(),
                            last_record: Instant::now(),
                            next_offset: progress.map(|p| p.offset as i64),
                            // Written at the next tick with the new epoch,
                            // which fences the earlier owner's late writes.
                            written: None,
                            epoch,
                            written_at: Instant::now(),
                            stall: StallWatch::default(),
                        },
                    );
                }
                // Newly assigned partitions follow the input's flow (a
                // partition assigned before may still be paused in librdkafka).
                let change = if self.flow.is_paused() {
                    FlowChange::Pause
                } else {
                    FlowChange::Resume
                };
                let keys: Vec<&PartitionKey> = new_keys.iter().collect();
                set_flow(&self.consumer, &keys, change);
                readiness.kafka_assigned.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Takes a batch of one partition's records, in order.
    async fn records(&mut self, batch: &RecordBatch) -> Result<()> {
        let count = batch.len() as u64;
        self.metrics.records_consumed.inc_by(count);
        self.report.records += count;
        let key = (batch.topic.clone(), batch.partition);
        // Records of a partition revoked after they were read are dropped.
        // The partition is out of the map while its records are taken.
        let Some(mut part) = self.parts.remove(&key) else {
            return Ok(());
        };
        let before = part.pipeline.engine().stats().windows_closed;
        let mut decoded = 0;
        for (offset, payload) in batch.records() {
            // Read again after a pause or a seek: already taken.
            if part.next_offset.is_some_and(|next| offset < next) {
                continue;
            }
            self.learn_schema(payload).await?;
            let batches = part.pipeline.record_bytes(
                &self.decoder,
                offset as u64,
                payload,
                &mut self.rejects,
            );
            part.next_offset = Some(offset + 1);
            if self
                .rejects
                .iter()
                .all(|r| r.reason != RejectReason::Decode)
            {
                decoded += 1;
            }
            if !self.rejects.is_empty() {
                let origin = Origin {
                    topic: key.0.clone(),
                    partition: key.1,
                    offset,
                };
                self.dead_letter(&origin)?;
            }
            if !batches.is_empty() {
                self.publish(&key, batches);
            }
        }
        part.started = true;
        part.last_record = Instant::now();
        if part.stall.record_read() == StallChange::Ended {
            tracing::info!(topic = %key.0, partition = key.1, "the partition's input flows again");
        }
        let closed = part.pipeline.engine().stats().windows_closed - before;
        self.metrics.windows_closed.inc_by(closed);
        self.parts.insert(key, part);
        self.metrics.records_decoded.inc_by(decoded);
        Ok(())
    }

    /// Fetches a Confluent writer schema the decoder has not seen yet.
    async fn learn_schema(&mut self, payload: &[u8]) -> Result<()> {
        let Some(registry) = &self.schema_registry else {
            return Ok(());
        };
        let Ok(id) = crate::codec::confluent_schema_id(payload) else {
            return Ok(());
        };
        if self.decoder.avro_mut().knows(id) || self.unusable_schemas.contains(&id) {
            return Ok(());
        }
        match registry.writer_schema(id).await {
            Ok(schema) => self.decoder.avro_mut().register(id, schema),
            // An id the registry does not have: its records are rejected as undecodable.
            Err(crate::schema_registry::RegistryError::Unknown(_)) => {
                self.unusable_schemas.insert(id);
            }
            Err(e @ crate::schema_registry::RegistryError::Unusable { .. }) => {
                self.unusable_schemas.insert(id);
                tracing::warn!(error = %e, "records of this schema will be rejected");
            }
            Err(e) => return Err(anyhow!(e)).context("the schema registry is needed to decode"),
        }
        Ok(())
    }

    fn dead_letter(&mut self, origin: &Origin) -> Result<()> {
        for reject in self.rejects.drain(..) {
            self.metrics
                .rejects
                .with_label_values(&[reject.reason.name()])
                .inc();
            self.dead_letters
                .send(origin, &reject)
                .map_err(|e| anyhow!("cannot write a dead letter: {e}"))?;
        }
        Ok(())
    }

    /// Hands the messages of closed windows to the publisher, without
    /// waiting: `follow_flow` pauses the input when too many wait.
    fn publish(&mut self, key: &PartitionKey, batches: Vec<crate::batch::Batch>) {
        let mut messages = Vec::with_capacity(batches.len());
        for emission in with_announcements(&self.registry, &mut self.announcements, batches) {
            let (event, connection_id) = match &emission {
                Emission::Monitor { payload, .. } => {
                    let v: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
                    let connection_id = v["data"]["connection_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    if v["message_type"] == "create" {
                        self.creates
                            .insert(emission.message_id().to_string(), connection_id.clone());
                    }
                    ("monitors", connection_id)
                }
                Emission::Readings(b) => {
                    self.metrics.readings_sent.inc_by(b.ends.len() as u64);
                    ("readings", b.connection_id.clone())
                }
            };
            let (message_id, payload) = emission.into_parts();
            let message = Outgoing {
                event,
                message_id,
                payload,
                key: connection_id,
            };
            self.sending(key, &message);
            messages.push(message);
        }
        self.offer(messages);
    }

    fn send(&mut self, key: &PartitionKey, message: Outgoing) {
        self.sending(key, &message);
        self.offer(vec![message]);
    }

    fn offer(&mut self, messages: Vec<Outgoing>) {
        if !messages.is_empty() && self.waiting_for_reset_since.is_none() {
            self.waiting_for_reset_since = Some(SystemTime::now());
        }
        self.publisher.offer_all(messages);
    }

    /// Pauses the input when the publisher holds its limit of unanswered
    /// messages, and resumes it when half of them are answered.
    fn follow_flow(&mut self) {
        let change = match self.flow.held(self.publisher.held()) {
            Some(change) => change,
            None => return,
        };
        let keys: Vec<&PartitionKey> = self.parts.keys().collect();
        set_flow(&self.consumer, &keys, change);
        if change == FlowChange::Pause {
            tracing::info!(
                unanswered = self.publisher.held(),
                "input paused: waiting for RESET to answer"
            );
        } else {
            tracing::info!(unanswered = self.publisher.held(), "input resumed");
            self.flowing_since = Instant::now();
        }
    }

    /// Counts a message and remembers its partition, for its answer.
    fn sending(&mut self, key: &PartitionKey, message: &Outgoing) {
        self.metrics
            .messages_sent
            .with_label_values(&[message.event])
            .inc();
        self.owners
            .insert(message.message_id.clone(), (key.clone(), Instant::now()));
    }

    /// RESET refused to create a monitor. After a restart the pipeline cannot
    /// know what RESET already holds, so it creates every monitor again; a
    /// monitor whose description changed since RESET created it gets a new
    /// message id, and RESET refuses it (the monitor exists). Its current
    /// description is then sent as `modify`. A refused `modify` is not
    /// followed by anything.
    fn modify_after_refused_create(&mut self, key: &PartitionKey, connection_id: &str) {
        let Some(id) = self.registry.lookup(connection_id) else {
            return;
        };
        let (message_id, payload) = monitors_payload(self.registry.get(id), MonitorAction::Modify);
        tracing::info!(
            connection_id,
            "RESET refused to create the monitor: sending its description as modify"
        );
        let message = Outgoing {
            event: "monitors",
            message_id,
            payload,
            key: connection_id.to_string(),
        };
        self.send(key, message);
    }

    fn answered(&mut self, d: Delivery) -> Result<()> {
        self.report.messages_answered += 1;
        let code = match &d.fate {
            Fate::Acknowledged => "10200",
            Fate::Rejected { code, .. } | Fate::GaveUp { code, .. } => code,
        };
        self.metrics.answers.with_label_values(&[code]).inc();
        if d.fate == Fate::Acknowledged {
            self.waiting_for_reset_since = Some(SystemTime::now());
        }
        self.metrics.resends.inc_by(u64::from(d.resends));
        // A message sent twice (its partition re-assigned while it was in
        // flight) has one owner: the second answer is counted, and that is all.
        let Some((key, sent)) = self.owners.remove(&d.message_id) else {
            return Ok(());
        };
        self.metrics
            .publish_latency
            .observe(sent.elapsed().as_secs_f64());
        let refused = match &d.fate {
            Fate::Acknowledged => None,
            Fate::Rejected { reason, .. } => Some((RejectReason::RejectedByReset, reason)),
            Fate::GaveUp { reason, .. } => Some((RejectReason::Reset10500, reason)),
        };
        if let Some((why, reason)) = refused {
            let mut reject = Reject::new(why, format!("message {}: {reason}", d.message_id));
            reject.connection_id = Some(d.key.clone());
            reject.message_id = Some(d.message_id.clone());
            reject.message = d
                .refused_payload
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok());
            self.rejects.push(reject);
            let origin = Origin {
                topic: key.0.clone(),
                partition: key.1,
                offset: -1,
            };
            self.dead_letter(&origin)?;
        }
        let refused_create = self
            .creates
            .remove(&d.message_id)
            .filter(|_| matches!(d.fate, Fate::Rejected { .. }));
        if let Some(connection_id) = refused_create {
            self.modify_after_refused_create(&key, &connection_id);
        }
        if let Some(part) = self.parts.get_mut(&key) {
            part.pipeline.message_answered(&d.message_id);
        }
        Ok(())
    }

    /// Asks the broker for the watermarks of partitions that have had nothing
    /// to read for `idle_timeout` or `stall_after`, one query per partition
    /// at a time. The queries run off the loop (on tansu one takes about half
    /// a second) and on a client of their own (`watermark_client`);
    /// `idle_watermarks` takes the answers.
    fn ask_idle_watermarks(&mut self) {
        let quiet_enough = self
            .config
            .windowing
            .idle_timeout
            .min(self.config.kafka.stall_after);
        for (key, part) in &self.parts {
            if part.last_record.elapsed() < quiet_enough || self.asking_watermarks.contains(key) {
                continue;
            }
            self.asking_watermarks.insert(key.clone());
            let client = Arc::clone(&self.watermark_client);
            let answers = self.watermarks.clone();
            let key = key.clone();
            tokio::task::spawn_blocking(move || {
                let watermarks = client
                    .fetch_watermarks(&key.0, key.1, WATERMARK_QUERY_TIMEOUT)
                    .ok();
                let _ = answers.send((key, watermarks));
            });
        }
    }

    /// Raises the watermark of an idle partition to now minus
    /// `allowed_lateness`, once its consumer has read everything up to the
    /// broker's high watermark: idle means nothing left to read, not a
    /// consumer that fell behind.
    fn idle_watermarks(&mut self, key: PartitionKey, watermarks: Option<(i64, i64)>) {
        self.asking_watermarks.remove(&key);
        let idle_timeout = self.config.windowing.idle_timeout;
        let lateness = self.config.windowing.allowed_lateness.as_millis() as i64;
        // Revoked while the broker was asked.
        let Some(part) = self.parts.get_mut(&key) else {
            return;
        };
        tracing::debug!(topic = %key.0, partition = key.1, ?watermarks, next = ?part.next_offset, "idle check");
        part.stall.broker_answered(watermarks.is_some());
        let Some(watermarks) = watermarks else {
            return;
        };
        let lag = part.lag(watermarks);
        self.metrics.set_lag(&key.0, key.1, lag);
        // Caught up (everything up to the high watermark is read, or there
        // is nothing); a record read while the broker was asked ends the idleness.
        if lag > 0 || part.last_record.elapsed() < idle_timeout {
            return;
        }
        let before = part.pipeline.engine().stats().windows_closed;
        let batches = part.pipeline.advance_to(now_ms() - lateness);
        let closed = part.pipeline.engine().stats().windows_closed - before;
        self.metrics.windows_closed.inc_by(closed);
        self.publish(&key, batches);
    }

    /// Starts writing the progress that moved; the returned future ends
    /// when the broker has it (or not), and `committed` then commits the
    /// same offsets. The write runs beside the loop, which goes on serving
    /// records, answers and ticks while the broker is slow or gone.
    fn start_commit(&mut self) -> Option<Committing> {
        let records: Vec<ProgressRecord> = self
            .parts
            .iter()
            .filter_map(|(key, part)| progress_to_write(key, part))
            .collect();
        if records.is_empty() {
            return None;
        }
        let writer = self.progress_writer.clone();
        // The dead letters of the records this progress covers are on the
        // broker before it is written.
        let letters = self.dead_letters.take_sent();
        Some(Box::pin(async move {
            let refused = letters.confirmed().await;
            if !refused.is_empty() {
                let why = format!("{} dead letters not written yet", refused.len());
                return (Err(why), records, refused);
            }
            let written = writer.write(&records).await;
            (written, records, Vec::new())
        }))
    }

    /// Writes at once what the revoked partitions had acknowledged since
    /// their last progress, so that their new owner, which reads it when
    /// the rebalance ends, sends again only what was unanswered. Left to
    /// the new owner when dead letters are still unconfirmed (the progress
    /// must not pass a record whose dead letter is not written). Written
    /// after the new owner read it, the record carries the old epoch and is
    /// ignored: nothing is lost either way.
    fn write_revoked(&mut self, records: Vec<ProgressRecord>) {
        if records.is_empty() || self.dead_letters.has_unconfirmed() {
            return;
        }
        let writer = self.progress_writer.clone();
        tokio::spawn(async move {
            if let Err(e) = writer.write(&records).await {
                tracing::debug!(error = %e, "the progress of revoked partitions was not written");
            }
        });
    }

    /// The broker has the progress records of a commit (or refused them:
    /// they are written again at the next tick); the same offsets are
    /// committed to the group.
    fn committed(&mut self, (written, records, refused_letters): CommitDone) -> Result<()> {
        if let Err(e) = written {
            self.metrics.progress_write_failures.inc();
            if let Some(held_back) = self.write_faults.allow(Instant::now()) {
                tracing::warn!(error = %e, held_back, "cannot write progress yet: trying again at every tick");
            }
            self.dead_letters
                .resend(refused_letters)
                .map_err(|e| anyhow!("cannot write a dead letter: {e}"))?;
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for r in &records {
            let offset = Offset::Offset(r.progress.offset as i64);
            if let Err(e) = offsets.add_partition_offset(&r.topic, r.partition, offset) {
                tracing::warn!(error = %e, "offset not committed");
            }
            if let Some(part) = self.parts.get_mut(&(r.topic.clone(), r.partition)) {
                part.written = Some(r.progress);
                part.written_at = Instant::now();
            }
        }
        if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
            // The progress topic is what a restart reads; the commit is for lag tools.
            if let Some(held_back) = self.commit_faults.allow(Instant::now()) {
                tracing::warn!(error = %e, held_back, "offset commit failed");
            }
        }
        tracing::debug!(partitions = records.len(), "progress committed");
        self.metrics.commits.inc();
        self.report.commits += 1;
        Ok(())
    }

    /// Each partition's lag as the consumer last heard the high watermark (no
    /// request to the broker), and whether its input stalled.
    fn watch_input(&mut self) {
        let stall_after = self.config.kafka.stall_after;
        for ((topic, partition), part) in &mut self.parts {
            let Some(watermarks) = cached_watermarks(&self.consumer, topic, *partition) else {
                continue;
            };
            let lag = part.lag(watermarks);
            self.metrics.set_lag(topic, *partition, lag);
            // A paused input is held back on purpose, not stalled.
            let quiet_for = if self.flow.is_paused() {
                Duration::ZERO
            } else {
                part.last_record.elapsed().min(self.flowing_since.elapsed())
            };
            match part.stall.checked(quiet_for, stall_after, lag) {
                StallChange::Began => tracing::warn!(
                    %topic,
                    partition,
                    ?quiet_for,
                    lag,
                    "input stalled: nothing read from the partition while records wait on the broker, or it does not answer"
                ),
                StallChange::Ended => {
                    tracing::info!(%topic, partition, "the partition's input flows again")
                }
                StallChange::Unchanged => {}
            }
        }
    }

    fn update_gauges(&mut self) {
        self.watch_input();
        let now = now_ms();
        let mut open = 0;
        for ((topic, partition), part) in &self.parts {
            open += part.pipeline.engine().open_windows();
            let watermark = part.pipeline.engine().watermark();
            if watermark > i64::MIN {
                self.metrics
                    .set_watermark_delay(topic, *partition, (now - watermark) / 1000);
            }
        }
        let unmatched = self.publisher.unmatched_answers();
        self.metrics
            .unmatched_answers
            .inc_by(unmatched.saturating_sub(self.metrics.unmatched_answers.get()));
        self.metrics.open_windows.set(open as i64);
        self.metrics.in_flight.set(self.publisher.held() as i64);
        let stalled = self.parts.values().filter(|p| p.stall.is_stalled()).count();
        self.metrics.stalled_partitions.set(stalled as i64);
        let paused = if self.flow.is_paused() {
            self.parts.len()
        } else {
            0
        };
        self.metrics.paused_partitions.set(paused as i64);
        if self.publisher.held() == 0 {
            self.waiting_for_reset_since = None;
        }
        let since = self
            .waiting_for_reset_since
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        self.metrics.waiting_for_reset_since.set(since);
    }
}
