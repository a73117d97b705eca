//! A small compacted topic read whole at start, then followed: the monitor
//! registry's topic and the announcements store. No group: nothing is
//! committed, every start reads the topic from its beginning.

use super::quiet::Quiet;
use super::read::{own_topic_consumer, partitions_of, read_to_end, ReadError};
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::ClientConfig;
use std::time::Duration;

/// One record of a followed topic.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    pub key: Option<String>,
    pub value: Option<Vec<u8>>,
    /// `topic/partition@offset`, for problems.
    pub location: String,
}

impl TopicRecord {
    fn of(m: &BorrowedMessage<'_>) -> TopicRecord {
        TopicRecord {
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: m.payload().map(<[u8]>::to_vec),
            location: format!("{}/{}@{}", m.topic(), m.partition(), m.offset()),
        }
    }
}

/// A consumer positioned after the topic's records read so far.
pub struct FollowedTopic {
    consumer: BaseConsumer<Quiet>,
}

impl FollowedTopic {
    /// Reads every record the topic holds now; the topic must exist.
    pub fn open(
        config: &ClientConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<(FollowedTopic, Vec<TopicRecord>), ReadError> {
        // Stays assigned between reads: fetched twice a second at most.
        let consumer = own_topic_consumer(config, Quiet, Duration::from_millis(500))
            .map_err(|e| ReadError::Failed(format!("{topic}: {e}")))?;
        let partitions = partitions_of(&consumer, topic, timeout)?;
        let mut records = Vec::new();
        read_to_end(&consumer, topic, &partitions, timeout, |m| {
            records.push(TopicRecord::of(m))
        })?;
        Ok((FollowedTopic { consumer }, records))
    }

    /// Records that arrived since the last call, without waiting.
    pub fn poll_new(&self) -> Vec<TopicRecord> {
        let mut records = Vec::new();
        while let Some(polled) = self.consumer.poll(Duration::ZERO) {
            match polled {
                Ok(m) => records.push(TopicRecord::of(&m)),
                Err(e) => super::quiet::error(&e, "while following a topic"),
            }
        }
        records
    }
}
