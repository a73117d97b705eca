//! Dead letters: rejected samples, undecodable records and messages RESET
//! refused, as JSON with where they came from and why. Without a configured
//! topic they are logged and counted only.

use crate::reject::Reject;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::Serialize;
use std::time::Duration;

/// Where a rejected record was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    #[serde(flatten)]
    origin: &'a Origin,
    #[serde(flatten)]
    reject: &'a Reject,
}

pub struct DeadLetters {
    target: Option<(FutureProducer, String)>,
}

impl DeadLetters {
    pub fn new(
        config: &ClientConfig,
        topic: Option<&str>,
    ) -> rdkafka::error::KafkaResult<DeadLetters> {
        let target = match topic {
            Some(t) => Some((config.clone().set("acks", "all").create()?, t.to_string())),
            None => None,
        };
        Ok(DeadLetters { target })
    }

    /// Sends one dead letter and waits until the broker has it.
    pub async fn send(&self, origin: &Origin, reject: &Reject) -> Result<(), String> {
        let letter =
            serde_json::to_string(&DeadLetter { origin, reject }).expect("dead letter serializes");
        let Some((producer, topic)) = &self.target else {
            tracing::warn!(reason = %reject.reason, detail = %reject.detail, topic = %origin.topic, partition = origin.partition, offset = origin.offset, "rejected");
            return Ok(());
        };
        let key = reject.connection_id.clone().unwrap_or_default();
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&letter),
                Duration::from_secs(30),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e.to_string())
    }
}
