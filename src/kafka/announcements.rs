//! The announcements store: a compacted topic keyed by `connection_id` that
//! holds, per monitor, the last `monitors` message sent (recorded before it
//! leaves) or acknowledged: its description, version, action and message id,
//! and the monitor's earlier shapes (`payload::Announced`, as JSON). Read
//! whole at start and followed, so
//! that a restarted pipeline, or a replica given a monitor's partition,
//! sends `modify` only for a description RESET may not hold, and nothing
//! for one it does. Keyed by monitor, not by input partition: partition
//! counts may change. One write in flight at a time, so that the records of
//! a monitor land in the order written.

use super::followed::{FollowedTopic, TopicRecord};
use super::quiet::Quiet;
use super::WriteError;
use crate::payload::Announced;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::time::Duration;

/// The format of the store's records: `v` is 3. Version 2 had no `shapes`
/// (earlier shapes of the monitor); version 1 had none of `action`,
/// `acknowledged` and `held` either, and recorded acknowledged messages
/// only.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAnnouncement {
    v: u32,
    #[serde(flatten)]
    announced: Announced,
}

pub struct AnnouncementStore {
    follower: FollowedTopic,
    writer: AnnouncementWriter,
}

/// Writes to the store; cheap to clone into a task.
#[derive(Clone)]
pub struct AnnouncementWriter {
    producer: FutureProducer<Quiet>,
    topic: String,
}

impl AnnouncementStore {
    /// Reads what the store holds now; the topic must exist.
    pub fn open(
        config: &ClientConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<(AnnouncementStore, Vec<Announced>), String> {
        let (follower, records) = FollowedTopic::open(config, topic, timeout)?;
        let producer = config
            .clone()
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("max.in.flight.requests.per.connection", "1")
            .create_with_context(Quiet)
            .map_err(|e| e.to_string())?;
        let writer = AnnouncementWriter {
            producer,
            topic: topic.to_string(),
        };
        let store = AnnouncementStore { follower, writer };
        Ok((store, parse_all(&records)))
    }

    /// What others (or this process) wrote since the last call, without waiting.
    pub fn poll_new(&self) -> Vec<Announced> {
        parse_all(&self.follower.poll_new())
    }

    /// Writes an acknowledged message, beside the caller. A write the
    /// broker does not take costs at most one re-send after a restart, of
    /// the same message with the same id.
    pub fn write(&self, announced: Announced) {
        let write = self.writer.store(vec![announced]);
        tokio::spawn(async move {
            if let Err(e) = write.await {
                if let Some(held_back) = crate::throttle::due("announcement write") {
                    tracing::warn!(error = %e, held_back, "an acknowledged monitor description was not stored: a restart sends it again");
                }
            }
        });
    }

    pub fn writer(&self) -> AnnouncementWriter {
        self.writer.clone()
    }
}

impl AnnouncementWriter {
    /// Writes records; the future ends when the broker has them all.
    pub fn store(
        &self,
        records: Vec<Announced>,
    ) -> impl std::future::Future<Output = Result<(), WriteError>> + Send + 'static {
        let topic = self.topic.clone();
        let writes: Vec<_> = records
            .into_iter()
            .map(|announced| {
                let key = announced.connection_id.clone();
                let payload = serde_json::to_string(&StoredAnnouncement { v: 3, announced })
                    .expect("an announcement serializes");
                self.producer
                    .send_result(FutureRecord::to(&topic).key(&key).payload(&payload))
                    .map_err(|(e, _)| e)
            })
            .collect();
        async move {
            for write in writes {
                let delivered = match write {
                    Ok(delivery) => delivery.await.map_err(|_| KafkaError::Canceled),
                    Err(e) => Err(e),
                };
                match delivered {
                    Ok(Ok(_)) => {}
                    Ok(Err((source, _))) | Err(source) => {
                        return Err(WriteError {
                            topic: topic.clone(),
                            source,
                        })
                    }
                }
            }
            Ok(())
        }
    }

    /// Writes records, again and again until the broker takes them:
    /// `monitors` messages recorded as sent wait for it before they leave.
    /// The first attempt is queued at once, in the order of the caller's
    /// other writes to the store.
    pub fn store_until_taken(
        &self,
        records: Vec<Announced>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let first = self.store(records.clone());
        let writer = self.clone();
        async move {
            let mut attempt = first;
            let mut backoff = Duration::from_millis(200);
            while let Err(e) = attempt.await {
                if let Some(held_back) = crate::throttle::due("announcement write") {
                    tracing::warn!(error = %e, held_back, "monitors messages wait for the announcements store to record them");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                attempt = writer.store(records.clone());
            }
        }
    }
}

fn parse_all(records: &[TopicRecord]) -> Vec<Announced> {
    records.iter().filter_map(parse).collect()
}

/// One record of the store; a broken one is logged and skipped (its
/// monitor's description is then sent again, under the same id).
fn parse(record: &TopicRecord) -> Option<Announced> {
    let value = record.value.as_deref()?;
    match serde_json::from_slice::<StoredAnnouncement>(value) {
        Ok(stored) => Some(stored.announced),
        Err(e) => {
            tracing::warn!(at = %record.location, error = %e, "an announcements store record cannot be read: skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str) -> TopicRecord {
        TopicRecord {
            key: Some("A".into()),
            value: Some(value.as_bytes().to_vec()),
            location: "t/0@7".into(),
        }
    }

    #[test]
    fn records_read_back_as_written_and_broken_ones_are_skipped() {
        let yaml = "monitors:\n  - {connection_id: A, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {co2: ppm}}\n";
        let registry = crate::registry::Registry::parse(yaml, "m.yaml").unwrap();
        let announced = Announced {
            connection_id: "A".into(),
            version: 3,
            message_id: "rp_monitor_A_modify_v3_x".into(),
            record: registry.get(0).record.clone(),
            action: crate::payload::MonitorAction::Create,
            acknowledged: false,
            held: false,
            shapes: Vec::new(),
        };
        let json = serde_json::to_string(&StoredAnnouncement {
            v: 3,
            announced: announced.clone(),
        })
        .unwrap();
        assert!(
            json.starts_with("{\"v\":3,\"connection_id\":\"A\",\"version\":3"),
            "{json}"
        );
        assert!(
            json.ends_with(",\"action\":\"create\",\"acknowledged\":false,\"held\":false}"),
            "{json}"
        );
        // A record of the first format: an acknowledged modify.
        let first_format = json.replace("\"v\":2", "\"v\":1").replace(
            ",\"action\":\"create\",\"acknowledged\":false,\"held\":false",
            "",
        );
        let acknowledged_modify = Announced {
            action: crate::payload::MonitorAction::Modify,
            acknowledged: true,
            held: true,
            ..announced.clone()
        };
        let records = [
            record(&json),
            record(&first_format),
            record("{broken"),
            TopicRecord {
                value: None,
                ..record("")
            },
        ];
        assert_eq!(parse_all(&records), vec![announced, acknowledged_modify]);
    }
}
