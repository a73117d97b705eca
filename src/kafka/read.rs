//! Reading a topic from its beginning to its current end, for the small
//! topics the pipeline keeps its own state in (progress, monitor registry).

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A consumer for one of the pipeline's own topics, read by assignment
/// (the group id is never joined): no commits, no end-of-partition events,
/// a short `fetch.queue.backoff.ms` (librdkafka's 1 s default pauses
/// fetching once per `queued.min.messages` records), and `fetch_wait` as
/// `fetch.wait.max.ms`, whatever the input's settings. Tansu holds every
/// fetch for that long, even with records to return: a topic read in
/// bursts and then unassigned (progress) wants it short (the first read of
/// 1,000,000 progress records took 7.1 s with 500 ms, 0.9 s with 10 ms); a
/// topic that stays assigned between reads is fetched in the background
/// and wants it long, or an idle topic is asked a hundred times a second.
pub fn own_topic_consumer<C: ConsumerContext>(
    config: &ClientConfig,
    context: C,
    fetch_wait: Duration,
) -> Result<BaseConsumer<C>, KafkaError> {
    config
        .clone()
        .set("group.id", "reset-pipeline-state-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", fetch_wait.as_millis().to_string())
        .set("fetch.queue.backoff.ms", "10")
        .create_with_context(context)
}

/// Why a topic could not be read to its end; its text names the topic.
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
    take: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ReadError> {
    let from: Vec<(i32, i64)> = partitions.iter().map(|&p| (p, 0)).collect();
    read_from(consumer, topic, &from, timeout, take).map(|_| ())
}

/// Like `read_to_end`, each partition from the given offset (or its low
/// watermark, if that is later: compaction or retention removed the rest).
/// Returns each partition's end, where the next read may start.
pub fn read_from<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    from: &[(i32, i64)],
    timeout: Duration,
    mut take: impl FnMut(&BorrowedMessage<'_>),
) -> Result<HashMap<i32, i64>, ReadError> {
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    let mut unread = HashMap::new();
    for &(partition, offset) in from {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| classify(format!("{topic}/{partition}"), e))?;
        let start = offset.max(low);
        ends.insert(partition, high.max(start));
        if high > start {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(start))
                .map_err(|e| ReadError::Failed(format!("{topic}/{partition}: {e}")))?;
            unread.insert(partition, high);
        }
    }
    if unread.is_empty() {
        return Ok(ends);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| ReadError::Failed(format!("{topic}: {e}")))?;
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    while !unread.is_empty() {
        if Instant::now() > deadline {
            return Err(ReadError::Failed(format!(
                "reading {topic} to its end timed out ({} partitions unfinished; last error: {})",
                unread.len(),
                last_error.as_deref().unwrap_or("none")
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                take(&m);
                if unread
                    .get(&m.partition())
                    .is_some_and(|&end| m.offset() + 1 >= end)
                {
                    unread.remove(&m.partition());
                }
            }
            // A broker down or a connection lost, reported on the way (or
            // left from before: a client's errors wait until it is polled).
            // librdkafka reconnects by itself; the deadline bounds the wait.
            Some(Err(e)) => {
                last_error = Some(e.to_string());
            }
            None => {}
        }
    }
    Ok(ends)
}

/// Only a broker that says it has no such topic or partition makes it
/// missing; a timeout or a broker that is down is a failure, to retry.
fn classify(what: String, e: KafkaError) -> ReadError {
    let missing = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopic
        )
    );
    if missing {
        ReadError::Missing(format!("{what}: {e}"))
    } else {
        ReadError::Failed(format!("{what}: {e}"))
    }
}
