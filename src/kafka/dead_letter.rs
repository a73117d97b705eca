//! Dead letters: rejected samples, undecodable records and messages RESET
//! refused, as JSON with where they came from and why. Without a configured
//! topic they are logged and counted only.
//!
//! Letters are produced without waiting for each one: a burst of bad
//! records costs no broker round trip per record. What was produced is
//! taken with `take_sent` and awaited before the progress that covers those
//! records is written; a letter the broker did not take is produced again
//! (`resend`), and that progress waits for it, so no reject is lost.
//! Nothing here waits: a letter the producer's queue has no room for is
//! kept as not taken, and the commit produces it again.

use super::quiet::Quiet;
use crate::reject::Reject;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde::Serialize;

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

/// A letter as produced: its key and JSON, kept until the broker has it.
#[derive(Debug)]
pub struct Letter {
    key: String,
    json: String,
}

/// Letters produced and not yet confirmed by the broker, and letters it
/// already refused.
#[derive(Default)]
pub struct SentLetters {
    pending: Vec<(Letter, DeliveryFuture)>,
    failed: Vec<Letter>,
}

impl SentLetters {
    /// Waits for the broker's answer to each; the letters it did not take.
    pub async fn confirmed(self) -> Vec<Letter> {
        let mut failed = self.failed;
        for (letter, delivery) in self.pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    tracing::warn!(error = %e, "a dead letter was not written: writing it again");
                    failed.push(letter);
                }
                Err(_) => failed.push(letter),
            }
        }
        failed
    }
}

pub struct DeadLetters {
    target: Option<(FutureProducer<Quiet>, String)>,
    sent: SentLetters,
}

impl DeadLetters {
    pub fn new(
        config: &ClientConfig,
        topic: Option<&str>,
    ) -> rdkafka::error::KafkaResult<DeadLetters> {
        let target = match topic {
            Some(t) => Some((
                config
                    .clone()
                    .set("acks", "all")
                    .create_with_context(Quiet)?,
                t.to_string(),
            )),
            None => None,
        };
        Ok(DeadLetters {
            target,
            sent: SentLetters::default(),
        })
    }

    /// Produces one dead letter without waiting for the broker (or logs it,
    /// without a topic).
    pub fn send(&mut self, origin: &Origin, reject: &Reject) -> Result<(), KafkaError> {
        if self.target.is_none() {
            tracing::warn!(reason = %reject.reason, detail = %reject.detail, topic = %origin.topic, partition = origin.partition, offset = origin.offset, "rejected");
            return Ok(());
        }
        let letter = Letter {
            key: reject.connection_id.clone().unwrap_or_default(),
            json: serde_json::to_string(&DeadLetter { origin, reject })
                .expect("dead letter serializes"),
        };
        self.produce(letter)
    }

    /// Produces again letters the broker did not take.
    pub fn resend(&mut self, letters: Vec<Letter>) -> Result<(), KafkaError> {
        for letter in letters {
            self.produce(letter)?;
        }
        Ok(())
    }

    /// Whether letters were produced that the broker has not confirmed yet
    /// (or that it refused, to be produced again).
    pub fn has_unconfirmed(&self) -> bool {
        !self.sent.pending.is_empty() || !self.sent.failed.is_empty()
    }

    /// What was produced since the last call, for the next commit to await.
    pub fn take_sent(&mut self) -> SentLetters {
        std::mem::take(&mut self.sent)
    }

    fn produce(&mut self, letter: Letter) -> Result<(), KafkaError> {
        let Some((producer, topic)) = &self.target else {
            return Ok(());
        };
        let record = FutureRecord::to(topic)
            .key(&letter.key)
            .payload(&letter.json);
        match producer.send_result(record) {
            Ok(delivery) => self.sent.pending.push((letter, delivery)),
            // The producer's queue is full (the broker is slow or gone):
            // the letter is produced again before the commit that covers it.
            Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                self.sent.failed.push(letter)
            }
            Err((e, _)) => return Err(e),
        }
        Ok(())
    }
}
