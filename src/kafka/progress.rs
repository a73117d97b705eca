//! The progress topic: one record per partition per commit, holding what a
//! restart needs (offset, watermark, acknowledged-through), written before the
//! offset is committed and read back, latest per partition, on assignment.
//! Kept in a topic rather than in commit metadata because some
//! Kafka-compatible brokers drop commit metadata.

use super::read::{read_to_end, ReadError};
use crate::offsets::Progress;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// One partition's progress, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressRecord {
    pub topic: String,
    pub partition: i32,
    #[serde(flatten)]
    pub progress: Progress,
}

fn key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Writes progress records and waits until the broker has them.
#[derive(Clone)]
pub struct ProgressWriter {
    producer: FutureProducer,
    topic: String,
}

impl ProgressWriter {
    pub fn new(config: &ClientConfig, topic: &str) -> rdkafka::error::KafkaResult<ProgressWriter> {
        let producer = config
            .clone()
            .set("acks", "all")
            .set("linger.ms", "0")
            .create()?;
        Ok(ProgressWriter {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Writes each record and waits for it before the next: one record per
    /// produce request (tansu 0.6.0 returned only the last record of a
    /// multi-record batch to readers of this topic).
    pub async fn write(&self, records: &[ProgressRecord]) -> Result<(), String> {
        for r in records {
            let payload = serde_json::to_string(r).expect("progress serializes");
            let k = key(&r.topic, r.partition);
            self.producer
                .send(
                    FutureRecord::to(&self.topic)
                        .key(&k)
                        .payload(&payload)
                        .partition(0),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e.to_string())?;
        }
        Ok(())
    }
}

/// Reads the progress topic to its end.
pub struct ProgressReader {
    consumer: BaseConsumer,
    topic: String,
}

impl ProgressReader {
    pub fn new(config: &ClientConfig, topic: &str) -> rdkafka::error::KafkaResult<ProgressReader> {
        let consumer = config
            .clone()
            .set("group.id", "reset-pipeline-progress-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()?;
        Ok(ProgressReader {
            consumer,
            topic: topic.to_string(),
        })
    }

    /// The latest progress of every partition, by (topic, partition).
    pub fn latest(&self, timeout: Duration) -> Result<HashMap<(String, i32), Progress>, String> {
        let mut latest = HashMap::new();
        let read = read_to_end(&self.consumer, &self.topic, &[0], timeout, |m| {
            if let Some(Ok(r)) = m.payload().map(serde_json::from_slice::<ProgressRecord>) {
                latest.insert((r.topic, r.partition), r.progress);
            }
        });
        match read {
            Ok(()) => {}
            // No progress topic yet: nothing was ever committed through it.
            Err(ReadError::Missing(e)) => {
                tracing::debug!(error = %e, topic = %self.topic, "no progress to read");
            }
            Err(e) => return Err(e.to_string()),
        }
        self.consumer.unassign().map_err(|e| e.to_string())?;
        Ok(latest)
    }
}
