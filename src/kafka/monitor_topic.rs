//! The monitor registry's compacted topic: read whole at start, then
//! followed. Each record is keyed by `connection_id` and holds the fields of
//! one `monitors.yaml` entry as JSON (or YAML); a tombstone removes the
//! monitor. `Registry::apply` decides what a record does.

use super::quiet::Quiet;
use super::read::{partitions_of, read_to_end};
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistryChange};
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::ClientConfig;
use std::time::Duration;

/// One record of the monitor topic.
#[derive(Debug, Clone)]
pub struct MonitorTopicRecord {
    pub key: Option<String>,
    pub value: Option<Vec<u8>>,
    /// `topic/partition@offset`, for problems.
    pub location: String,
}

impl MonitorTopicRecord {
    fn of(m: &BorrowedMessage<'_>) -> MonitorTopicRecord {
        MonitorTopicRecord {
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: m.payload().map(<[u8]>::to_vec),
            location: format!("{}/{}@{}", m.topic(), m.partition(), m.offset()),
        }
    }
}

/// A consumer positioned after the monitor topic's records read so far.
pub struct MonitorTopic {
    consumer: BaseConsumer<Quiet>,
}

impl MonitorTopic {
    /// Reads every record the topic holds now; the topic must exist.
    pub fn open(
        config: &ClientConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<(MonitorTopic, Vec<MonitorTopicRecord>), String> {
        let consumer: BaseConsumer<Quiet> = config
            .clone()
            .set("group.id", "reset-pipeline-monitor-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create_with_context(Quiet)
            .map_err(|e| e.to_string())?;
        let partitions = partitions_of(&consumer, topic, timeout).map_err(|e| e.to_string())?;
        let mut records = Vec::new();
        read_to_end(&consumer, topic, &partitions, timeout, |m| {
            records.push(MonitorTopicRecord::of(m))
        })
        .map_err(|e| e.to_string())?;
        Ok((MonitorTopic { consumer }, records))
    }

    /// Records that arrived since the last call, without waiting.
    pub fn poll_new(&self) -> Vec<MonitorTopicRecord> {
        let mut records = Vec::new();
        while let Some(polled) = self.consumer.poll(Duration::ZERO) {
            match polled {
                Ok(m) => records.push(MonitorTopicRecord::of(&m)),
                Err(e) => tracing::warn!(error = %e, "monitor topic"),
            }
        }
        records
    }
}

/// Applies records to `registry` in order, logging and counting each
/// outcome; a refused record leaves the monitor as it was. Returns whether
/// any monitor was added, changed or removed.
pub fn apply_records(
    registry: &mut Registry,
    records: &[MonitorTopicRecord],
    metrics: &Metrics,
) -> bool {
    let mut moved = false;
    for record in records {
        let outcome = registry.apply(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.location,
        );
        let name = match outcome {
            Ok(change) => {
                if !matches!(
                    change,
                    RegistryChange::Unchanged(_) | RegistryChange::NothingToRemove
                ) {
                    moved = true;
                    tracing::info!(
                        at = %record.location,
                        connection_id = record.key.as_deref().unwrap_or_default(),
                        change = change.name(),
                        "monitor registry"
                    );
                }
                change.name()
            }
            Err(problems) => {
                tracing::warn!(%problems, "monitor registry record refused");
                "refused"
            }
        };
        metrics.registry_records.with_label_values(&[name]).inc();
    }
    moved
}
