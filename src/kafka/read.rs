//! Reading a topic from its beginning to its current end, for the small
//! topics the pipeline keeps its own state in (progress, monitor registry).

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::BorrowedMessage;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Why a topic could not be read to its end.
#[derive(Debug)]
pub enum ReadError {
    /// The broker does not have the topic (or the partition).
    Missing(String),
    Failed(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Missing(e) | ReadError::Failed(e) => f.write_str(e),
        }
    }
}

/// The partition ids of `topic`.
pub fn partitions_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, ReadError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| ReadError::Failed(format!("{topic}: {e}")))?;
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
        .unwrap_or_default();
    if found.is_empty() {
        return Err(ReadError::Missing(format!("{topic}: no such topic")));
    }
    Ok(found)
}

/// Assigns `partitions` of `topic` from their low watermark and hands every
/// message below each one's current high watermark to `take`. The consumer
/// stays assigned, positioned after what it read.
pub fn read_to_end<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
    mut take: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ReadError> {
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for &partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| ReadError::Missing(format!("{topic}/{partition}: {e}")))?;
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(low))
            .map_err(|e| ReadError::Failed(e.to_string()))?;
        if high > low {
            ends.insert(partition, high);
        }
    }
    consumer
        .assign(&assignment)
        .map_err(|e| ReadError::Failed(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(ReadError::Failed(format!(
                "reading {topic} to its end timed out ({} partitions unfinished)",
                ends.len()
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                take(&m);
                if ends
                    .get(&m.partition())
                    .is_some_and(|&end| m.offset() + 1 >= end)
                {
                    ends.remove(&m.partition());
                }
            }
            Some(Err(e)) => return Err(ReadError::Failed(e.to_string())),
            None => {}
        }
    }
    Ok(())
}
