//! `replay`: re-process a time range of the input topics with event-time
//! semantics, outside the live consumer group (no group, no commits). Each
//! partition is read from the offset of its first record stamped at or
//! after `from − allowed_lateness − START_MARGIN` (so that the watermark is
//! built as `run` built it) to the end it had when replay started, through
//! the same pure pipeline as `run`, and exactly the windows lying wholly
//! inside `[from, to]` are kept. Where the broker cannot say where that
//! time starts, the partition is read from its beginning.

use crate::codec::{confluent_schema_id, Decoder};
use crate::config::{Config, InputFormat};
use crate::kafka::input_consumer_config;
use crate::kafka::quiet::Quiet;
use crate::kafka::record_queue::{RawRecord, RecordQueue, Taken};
use crate::payload::Announcements;
use crate::pipeline::{with_announcements, EarlierShapes, Emission, PartitionPipeline};
use crate::progress_line::ProgressLine;
use crate::registry::Registry;
use crate::schema_registry::SchemaRegistry;
use crate::window::{EngineSettings, HALF_HOUR_MS};
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records stamped this long before `from − allowed_lateness` are read
/// too: a producer that wrote a sample late stamps its record later than
/// the sample, and the watermark before the range must be built whole.
pub const START_MARGIN_MS: i64 = 3_600_000;

/// The most records taken from the queue at once.
const TAKE_AT_ONCE: usize = 4096;

/// Where a partition's replay starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    At(i64),
    /// The broker's answer cannot be trusted: read everything, saying why.
    Beginning(String),
    /// No record at or after the time: nothing to replay here.
    Nothing,
}

/// Decides where a partition's replay starts from the broker's answer to
/// `offsets_for_times` (`None`: no offset, -1), the partition's low and
/// high watermarks, and the timestamp of its last record.
pub fn start_offset(
    answer: Option<i64>,
    (low, high): (i64, i64),
    last_stamp: Option<i64>,
    target_ms: i64,
) -> Start {
    if high <= low {
        return Start::Nothing;
    }
    match answer {
        Some(offset) if offset < high => Start::At(offset.max(low)),
        _ => match last_stamp {
            Some(stamp) if stamp < target_ms => Start::Nothing,
            Some(stamp) => Start::Beginning(format!(
                "the broker found no offset for the time, though the last record is stamped {}",
                crate::event::format_utc_millis(stamp)
            )),
            None => Start::Beginning(
                "the broker found no offset for the time, and the last record cannot be read"
                    .into(),
            ),
        },
    }
}

/// Reads the range and returns the emissions for windows inside it, each
/// monitor's readings after the `monitors` message `announcements` says
/// RESET still needs. Windows are built on the shapes `run` built them on:
/// the earlier shapes `announcements` keep, as a partition assigned to
/// `run` takes them (a replay reads no further than `run` had read when
/// it began, as a restart catches up no further).
pub fn replay(
    config: &Config,
    registry: Arc<Registry>,
    from_ms: i64,
    to_ms: i64,
    mut announcements: Announcements,
) -> Result<Vec<Emission>> {
    let consumer: Arc<BaseConsumer<Quiet>> = Arc::new(
        input_consumer_config(&config.kafka)
            .set("group.id", format!("{}.replay", config.kafka.group_id))
            .create_with_context(Quiet)
            .context("cannot create the Kafka consumer")?,
    );
    let timeout = Duration::from_secs(10);
    let target = from_ms - config.windowing.allowed_lateness.as_millis() as i64 - START_MARGIN_MS;
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for topic in &config.kafka.topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("cannot read the partitions of {topic}"))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let watermarks = consumer.fetch_watermarks(topic, p.id(), timeout)?;
                let start = partition_start(&consumer, topic, p.id(), watermarks, target, timeout)?;
                let offset = match start {
                    Start::Nothing => continue,
                    Start::At(offset) => offset,
                    Start::Beginning(why) => {
                        tracing::info!(
                            topic,
                            partition = p.id(),
                            why,
                            "replay reads the partition from its beginning"
                        );
                        watermarks.0
                    }
                };
                tracing::info!(
                    topic,
                    partition = p.id(),
                    offset,
                    end = watermarks.1,
                    "replay reads the partition"
                );
                ends.insert((topic.clone(), p.id()), watermarks.1);
                assignment.add_partition_offset(topic, p.id(), Offset::Offset(offset))?;
            }
        }
    }
    // Each partition's records are taken many at a time from a queue of
    // replay's own, as the live group's reading thread takes them; any
    // that reach the consumer's queue first are taken from there. (A
    // partition forwarded before it was assigned, not yet the consumer's,
    // lost its records now and then on the mock cluster.)
    consumer.assign(&assignment)?;
    let records = RecordQueue::new(Arc::clone(&consumer));
    for e in assignment.elements() {
        if !records.forward(e.topic(), e.partition()) {
            anyhow::bail!("cannot read {}/{}", e.topic(), e.partition());
        }
    }
    let total: i64 = assignment
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(start) => {
                Some(ends.get(&(e.topic().to_string(), e.partition()))? - start)
            }
            _ => None,
        })
        .sum();
    let mut progress = ProgressLine::new("replay", "records", Some(total.max(0) as u64));
    let mut replayed = Replayed {
        settings: EngineSettings::from(&config.windowing),
        push: config.reset.push,
        shapes: EarlierShapes::of(&registry, &announcements),
        registry: Arc::clone(&registry),
        range: (from_ms, to_ms),
        schemas: Schemas::new(config)?,
        parts: HashMap::new(),
        batches: Vec::new(),
        ends,
        read: 0,
    };
    let mut last_progress = Instant::now();
    let mut taken: Vec<Taken> = Vec::with_capacity(TAKE_AT_ONCE);
    while !replayed.ends.is_empty() {
        // The consumer's own queue brings errors, logs, and any record read
        // before its partition was forwarded.
        match consumer.poll(Duration::ZERO) {
            Some(Err(e)) => tracing::warn!(error = %e, "while reading"),
            Some(Ok(m)) => {
                last_progress = Instant::now();
                replayed.take(RawRecord {
                    topic: m.topic(),
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis(),
                    payload: m.payload().unwrap_or(&[]),
                })?;
            }
            None => {}
        }
        if records.take(100, TAKE_AT_ONCE, &mut taken) == 0 {
            if last_progress.elapsed() > Duration::from_secs(60) {
                anyhow::bail!(
                    "no records for 60 s while partitions were unfinished: {}",
                    replayed.unfinished(&consumer)
                );
            }
            continue;
        }
        last_progress = Instant::now();
        for t in taken.drain(..) {
            replayed.take(t.record().context("Kafka")?)?;
        }
        progress.update(replayed.read);
    }
    let mut keys: Vec<_> = replayed.parts.keys().cloned().collect();
    keys.sort();
    let mut batches = replayed.batches;
    for key in keys {
        batches.extend(replayed.parts.get_mut(&key).expect("known").finish());
    }
    Ok(with_announcements(&registry, &mut announcements, batches).collect())
}

/// What a replay has read: a pipeline per partition, the batches of the
/// windows kept, and the partitions still to read to their end.
struct Replayed {
    settings: EngineSettings,
    push: crate::config::PushMode,
    registry: Arc<Registry>,
    /// The monitors' earlier shapes, for each partition's pipeline.
    shapes: EarlierShapes,
    /// `[from, to]`: the windows lying wholly inside are kept.
    range: (i64, i64),
    schemas: Schemas,
    parts: HashMap<(String, i32), PartitionPipeline>,
    batches: Vec<crate::batch::Batch>,
    /// Each unfinished partition's end offset.
    ends: HashMap<(String, i32), i64>,
    read: u64,
}

impl Replayed {
    fn take(&mut self, m: RawRecord<'_>) -> Result<()> {
        self.read += 1;
        let key = (m.topic.to_string(), m.partition);
        self.schemas.learn(m.payload)?;
        let pipeline = self.parts.entry(key.clone()).or_insert_with(|| {
            let (from, to) = self.range;
            let mut pipeline =
                PartitionPipeline::new(Arc::clone(&self.registry), self.settings, self.push)
                    .keeping(move |end| end - HALF_HOUR_MS >= from && end <= to);
            pipeline.take_shapes(&self.shapes);
            pipeline
        });
        let mut rejects = Vec::new();
        self.batches.extend(pipeline.record_bytes(
            &self.schemas.decoder,
            m.offset as u64,
            m.timestamp,
            m.payload,
            &mut rejects,
        ));
        if self.ends.get(&key).is_some_and(|&end| m.offset + 1 >= end) {
            self.ends.remove(&key);
        }
        Ok(())
    }

    /// The unfinished partitions, with their ends and the consumer's positions.
    fn unfinished(&self, consumer: &BaseConsumer<Quiet>) -> String {
        let positions = consumer.position().ok();
        let shown: Vec<String> = self
            .ends
            .iter()
            .map(|((topic, partition), end)| {
                let at = positions
                    .as_ref()
                    .and_then(|p| p.find_partition(topic, *partition))
                    .map(|e| e.offset());
                format!("{topic}/{partition} (end {end}, position {at:?})")
            })
            .collect();
        shown.join(", ")
    }
}

/// Where a partition's replay starts: the broker asked for the offset of
/// `target_ms`, and, when it has none, for its last record's timestamp.
fn partition_start(
    consumer: &BaseConsumer<Quiet>,
    topic: &str,
    partition: i32,
    watermarks: (i64, i64),
    target_ms: i64,
    timeout: Duration,
) -> Result<Start> {
    let mut query = TopicPartitionList::new();
    query.add_partition_offset(topic, partition, Offset::Offset(target_ms))?;
    let found = consumer
        .offsets_for_times(query, timeout)
        .with_context(|| format!("cannot look up the offset of a time in {topic}/{partition}"))?;
    let answer = found
        .find_partition(topic, partition)
        .and_then(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o),
            _ => None,
        });
    let last_stamp = if answer.is_none() && watermarks.1 > watermarks.0 {
        last_record_stamp(consumer, topic, partition, watermarks.1 - 1, timeout)
    } else {
        None
    };
    Ok(start_offset(answer, watermarks, last_stamp, target_ms))
}

/// The timestamp of the record at `offset`, read with a consumer of its own.
fn last_record_stamp(
    consumer: &BaseConsumer<Quiet>,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> Option<i64> {
    let mut at = TopicPartitionList::new();
    at.add_partition_offset(topic, partition, Offset::Offset(offset))
        .ok()?;
    consumer.assign(&at).ok()?;
    let deadline = Instant::now() + timeout;
    let stamp = loop {
        if Instant::now() >= deadline {
            break None;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.offset() >= offset => break m.timestamp().to_millis(),
            _ => continue,
        }
    };
    let _ = consumer.unassign();
    stamp
}

/// The decoder, and the Confluent writer schemas it learns from the
/// schema registry as records need them.
struct Schemas {
    decoder: Decoder,
    registry: Option<(SchemaRegistry, tokio::runtime::Runtime)>,
}

/// How long `replay` waits for a schema registry that is away.
const REGISTRY_PATIENCE: Duration = Duration::from_secs(120);

impl Schemas {
    fn new(config: &Config) -> Result<Schemas> {
        let registry = match (
            config.input.format,
            config.input.schema_registry_url.as_deref(),
        ) {
            (InputFormat::AvroConfluent, Some(url)) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot start the schema registry client")?;
                Some((SchemaRegistry::new(url), runtime))
            }
            _ => None,
        };
        Ok(Schemas {
            decoder: Decoder::new(config.input.format),
            registry,
        })
    }

    /// Learns the writer schema `payload` needs, asking again with backoff
    /// while the registry is away (up to two minutes).
    fn learn(&mut self, payload: &[u8]) -> Result<()> {
        let Some((registry, runtime)) = &self.registry else {
            return Ok(());
        };
        let Ok(id) = confluent_schema_id(payload) else {
            return Ok(());
        };
        if !self.decoder.needs_schema(id) {
            return Ok(());
        }
        let deadline = Instant::now() + REGISTRY_PATIENCE;
        let mut backoff = Duration::from_millis(500);
        loop {
            let answer = runtime.block_on(registry.writer_schema(id));
            match self.decoder.settle_schema(id, answer) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    tracing::warn!(error = %e, id, ?backoff, "cannot fetch a writer schema yet: asking again");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    return Err(
                        anyhow::anyhow!(e).context("the schema registry is needed to decode")
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_780_000_000_000;

    #[test]
    fn the_brokers_offset_is_taken_when_it_lies_in_the_partition() {
        assert_eq!(start_offset(Some(500), (0, 1000), None, T), Start::At(500));
        // Below what retention kept: from the first record kept.
        assert_eq!(start_offset(Some(3), (100, 1000), None, T), Start::At(100));
        // A broker that answers 0 for every time (tansu): from the beginning.
        assert_eq!(start_offset(Some(0), (0, 1000), None, T), Start::At(0));
    }

    #[test]
    fn no_offset_means_nothing_to_replay_only_when_the_last_record_is_older() {
        assert_eq!(
            start_offset(None, (0, 1000), Some(T - 1), T),
            Start::Nothing
        );
        // The mock cluster answers -1 though later records are there.
        assert!(matches!(
            start_offset(None, (0, 1000), Some(T + 60_000), T),
            Start::Beginning(_)
        ));
        assert!(matches!(
            start_offset(Some(1000), (0, 1000), Some(T), T),
            Start::Beginning(_)
        ));
        assert!(matches!(
            start_offset(None, (0, 1000), None, T),
            Start::Beginning(_)
        ));
    }

    #[test]
    fn an_empty_partition_has_nothing_to_replay() {
        assert_eq!(start_offset(Some(0), (7, 7), None, T), Start::Nothing);
        assert_eq!(start_offset(None, (0, 0), None, T), Start::Nothing);
    }
}
