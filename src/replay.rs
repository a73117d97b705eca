//! `replay`: re-process a time range of the input topics with event-time
//! semantics, outside the live consumer group (no group, no commits). Each
//! partition is read from its beginning to the end it had when replay
//! started, through the same pure pipeline as `run`, and exactly the windows
//! lying wholly inside `[from, to]` are kept.

use crate::codec::Decoder;
use crate::config::Config;
use crate::kafka::input_consumer_config;
use crate::payload::Announcements;
use crate::pipeline::{with_announcements, Emission, PartitionPipeline};
use crate::registry::Registry;
use crate::window::{EngineSettings, HALF_HOUR_MS};
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads the range and returns the emissions for windows inside it.
pub fn replay(
    config: &Config,
    registry: Arc<Registry>,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Emission>> {
    let consumer: BaseConsumer = input_consumer_config(&config.kafka)
        .set("group.id", format!("{}.replay", config.kafka.group_id))
        .create()
        .context("cannot create the Kafka consumer")?;
    let timeout = Duration::from_secs(10);
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for topic in &config.kafka.topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("cannot read the partitions of {topic}"))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
                if high > low {
                    ends.insert((topic.clone(), p.id()), high);
                    assignment.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
                }
            }
        }
    }
    consumer.assign(&assignment)?;
    let settings = EngineSettings::from(&config.windowing);
    let mut parts: HashMap<(String, i32), PartitionPipeline> = HashMap::new();
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    let decoder = Decoder::new(config.input.format);
    let mut last_progress = Instant::now();
    let keep = move |end: i64| end - HALF_HOUR_MS >= from_ms && end <= to_ms;
    while !ends.is_empty() {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            if last_progress.elapsed() > Duration::from_secs(60) {
                anyhow::bail!(
                    "no records for 60 s while {} partitions were unfinished",
                    ends.len()
                );
            }
            continue;
        };
        let m = message.context("Kafka")?;
        last_progress = Instant::now();
        let key = (m.topic().to_string(), m.partition());
        let pipeline = parts.entry(key.clone()).or_insert_with(|| {
            PartitionPipeline::new(Arc::clone(&registry), settings, config.reset.push).keeping(keep)
        });
        batches.extend(pipeline.record_bytes(
            &decoder,
            m.offset() as u64,
            m.timestamp().to_millis(),
            m.payload().unwrap_or(&[]),
            &mut rejects,
        ));
        rejects.clear();
        if ends.get(&key).is_some_and(|&end| m.offset() + 1 >= end) {
            ends.remove(&key);
        }
    }
    let mut keys: Vec<_> = parts.keys().cloned().collect();
    keys.sort();
    for key in keys {
        batches.extend(parts.get_mut(&key).expect("known").finish());
    }
    Ok(with_announcements(
        &registry,
        &mut Announcements::default(),
        batches,
    ))
}
