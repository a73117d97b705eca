//! The announcements store: a compacted topic keyed by `connection_id` that
//! holds, per monitor, the description RESET last acknowledged, its version
//! and message id (`payload::Announced`, as JSON). Read whole at start and
//! followed, so that a restarted pipeline, or a replica given a monitor's
//! partition, sends `modify` only for a description RESET does not hold,
//! and nothing for one it does. Keyed by monitor, not by input partition:
//! partition counts may change.

use super::followed::{FollowedTopic, TopicRecord};
use super::quiet::Quiet;
use super::WriteError;
use crate::payload::Announced;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::time::Duration;

/// The format of the store's records: `v` is 1.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAnnouncement {
    v: u32,
    #[serde(flatten)]
    announced: Announced,
}

pub struct AnnouncementStore {
    follower: FollowedTopic,
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
            .create_with_context(Quiet)
            .map_err(|e| e.to_string())?;
        let store = AnnouncementStore {
            follower,
            producer,
            topic: topic.to_string(),
        };
        Ok((store, parse_all(&records)))
    }

    /// What others (or this process) wrote since the last call, without waiting.
    pub fn poll_new(&self) -> Vec<Announced> {
        parse_all(&self.follower.poll_new())
    }

    /// Writes an acknowledged description, beside the caller. A write the
    /// broker does not take costs at most one re-send after a restart, of
    /// the same message with the same id.
    pub fn write(&self, announced: Announced) {
        let write = self.store(announced);
        tokio::spawn(async move {
            if let Err(e) = write.await {
                if let Some(held_back) = crate::throttle::due("announcement write") {
                    tracing::warn!(error = %e, held_back, "an acknowledged monitor description was not stored: a restart sends it again");
                }
            }
        });
    }

    /// Writes an acknowledged description; the future ends when the broker has it.
    pub fn store(
        &self,
        announced: Announced,
    ) -> impl std::future::Future<Output = Result<(), WriteError>> + Send + 'static {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        async move {
            let key = announced.connection_id.clone();
            let payload = serde_json::to_string(&StoredAnnouncement { v: 1, announced })
                .expect("an announcement serializes");
            let record = FutureRecord::to(&topic).key(&key).payload(&payload);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|_| ())
                .map_err(|(source, _)| WriteError {
                    topic: topic.clone(),
                    source,
                })
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
        };
        let json = serde_json::to_string(&StoredAnnouncement {
            v: 1,
            announced: announced.clone(),
        })
        .unwrap();
        assert!(
            json.starts_with("{\"v\":1,\"connection_id\":\"A\",\"version\":3"),
            "{json}"
        );
        let records = [
            record(&json),
            record("{broken"),
            TopicRecord {
                value: None,
                ..record("")
            },
        ];
        assert_eq!(parse_all(&records), vec![announced]);
    }
}
