//! The announcements store: a compacted topic that holds, per monitor, the
//! last `monitors` message sent (recorded before it leaves) or acknowledged:
//! its description, version, action and message id, and the monitor's
//! earlier shapes (`payload::Announced`, as JSON). Read whole at start and
//! followed, so that a restarted pipeline, or a replica given a monitor's
//! partition, sends `modify` only for a description RESET may not hold, and
//! nothing for one it does. Keyed by monitor and version
//! (`connection_id/v3`), not by input partition: partition counts may
//! change. One write in flight at a time, so that the records of a monitor
//! land in the order written.

use super::followed::{FollowedTopic, TopicRecord};
use super::quiet::Quiet;
use super::read::ReadError;
use super::WriteError;
use crate::payload::Announced;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    keys: Arc<Mutex<StoreKeys>>,
}

/// The keys that hold a record in the store, per monitor, as read and as
/// written: which keys a new record supersedes.
///
/// Compaction keeps the last record written under each key. Were a
/// monitor's records all under one key, a replica's late write of an
/// earlier version (its answer arriving after the monitor's partition
/// moved on) would be the one record kept, and a restart would take RESET
/// to hold that earlier description. Under one key per version, the
/// latest version stays beside it, and the reader takes the latest. A
/// record is written first, then deletions of the monitor's other keys
/// whose versions are not higher (a crash between them leaves a key too
/// many, never a monitor without its latest record), so the topic keeps
/// about one record per monitor.
#[derive(Default)]
struct StoreKeys {
    /// Each live key's monitor and version.
    live: HashMap<String, (String, u64)>,
    /// Each monitor's live keys.
    of_monitor: HashMap<String, Vec<String>>,
}

impl StoreKeys {
    /// Takes note of records read from the store, and parses them.
    fn observe(&mut self, records: &[TopicRecord]) -> Vec<Announced> {
        let mut announced = Vec::new();
        for record in records {
            let Some(key) = &record.key else {
                announced.extend(parse(record));
                continue;
            };
            match parse(record) {
                Some(a) => {
                    self.insert(key, &a.connection_id, a.version);
                    announced.push(a);
                }
                None if record.value.is_none() => self.remove(key),
                None => {}
            }
        }
        announced
    }

    fn insert(&mut self, key: &str, monitor: &str, version: u64) {
        let entry = (monitor.to_string(), version);
        if self.live.insert(key.to_string(), entry).is_none() {
            let keys = self.of_monitor.entry(monitor.to_string()).or_default();
            keys.push(key.to_string());
        }
    }

    fn remove(&mut self, key: &str) {
        let Some((monitor, _)) = self.live.remove(key) else {
            return;
        };
        if let Some(keys) = self.of_monitor.get_mut(&monitor) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.of_monitor.remove(&monitor);
            }
        }
    }

    /// The writes that record `announced`: its record under its own key,
    /// then deletions of the monitor's keys it supersedes, taken out of
    /// the live keys at once so that they are deleted once.
    fn writes(&mut self, announced: Announced) -> Vec<(String, Option<String>)> {
        let key = format!("{}/v{}", announced.connection_id, announced.version);
        let (monitor, version) = (announced.connection_id.clone(), announced.version);
        let value = serde_json::to_string(&StoredAnnouncement { v: 3, announced })
            .expect("an announcement serializes");
        let superseded: Vec<String> = self
            .of_monitor
            .get(&monitor)
            .into_iter()
            .flatten()
            .filter(|k| **k != key && self.live[*k].1 <= version)
            .cloned()
            .collect();
        let mut writes = vec![(key.clone(), Some(value))];
        for old in superseded {
            self.remove(&old);
            writes.push((old, None));
        }
        self.insert(&key, &monitor, version);
        writes
    }
}

impl AnnouncementStore {
    /// Reads what the store holds now; the topic must exist. An error
    /// names the topic.
    pub fn open(
        config: &ClientConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<(AnnouncementStore, Vec<Announced>), String> {
        let (follower, records) =
            FollowedTopic::open(config, topic, timeout).map_err(|e| e.to_string())?;
        let producer = config
            .clone()
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("max.in.flight.requests.per.connection", "1")
            .create_with_context(Quiet)
            .map_err(|e| format!("{topic}: cannot create its producer: {e}"))?;
        let mut keys = StoreKeys::default();
        let announced = keys.observe(&records);
        let writer = AnnouncementWriter {
            producer,
            topic: topic.to_string(),
            keys: Arc::new(Mutex::new(keys)),
        };
        let store = AnnouncementStore { follower, writer };
        Ok((store, announced))
    }

    /// Reads what the store holds now and writes nothing (`replay
    /// --dry-run`); `None` when the store does not exist (no monitors
    /// message was ever sent through it).
    pub fn read_only(
        config: &ClientConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<Option<Vec<Announced>>, String> {
        match FollowedTopic::open(config, topic, timeout) {
            Ok((_, records)) => Ok(Some(StoreKeys::default().observe(&records))),
            Err(ReadError::Missing(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// What others (or this process) wrote since the last call, without waiting.
    pub fn poll_new(&self) -> Vec<Announced> {
        let records = self.follower.poll_new();
        self.writer.keys().observe(&records)
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
    fn keys(&self) -> std::sync::MutexGuard<'_, StoreKeys> {
        self.keys.lock().expect("not poisoned")
    }

    /// Writes records; the future ends when the broker has them all.
    pub fn store(
        &self,
        records: Vec<Announced>,
    ) -> impl std::future::Future<Output = Result<(), WriteError>> + Send + 'static {
        let topic = self.topic.clone();
        let keyed: Vec<_> = {
            let mut keys = self.keys();
            records.into_iter().flat_map(|a| keys.writes(a)).collect()
        };
        let writes: Vec<_> = keyed
            .iter()
            .map(|(key, value)| {
                let mut record = FutureRecord::to(&topic).key(key);
                if let Some(value) = value {
                    record = record.payload(value);
                }
                self.producer.send_result(record).map_err(|(e, _)| e)
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

    use crate::payload::Announcements;

    fn announced(version: u64, acknowledged: bool) -> Announced {
        let yaml = "monitors:\n  - {connection_id: A, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {co2: ppm}}\n";
        let registry = crate::registry::Registry::parse(yaml, "m.yaml").unwrap();
        Announced {
            connection_id: "A".into(),
            version,
            message_id: format!("rp_monitor_A_modify_v{version}_x"),
            record: registry.get(0).record.clone(),
            action: crate::payload::MonitorAction::Create,
            acknowledged,
            held: false,
            shapes: Vec::new(),
        }
    }

    #[test]
    fn records_read_back_as_written_and_broken_ones_are_skipped() {
        let announced = announced(3, false);
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
        let read = StoreKeys::default().observe(&records);
        assert_eq!(read, vec![announced, acknowledged_modify]);
    }

    type Log = Vec<(String, Option<String>)>;

    /// A replica that reads the log whole, as at start.
    fn replica(log: &Log) -> StoreKeys {
        let mut keys = StoreKeys::default();
        keys.observe(&as_records(
            log.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
        ));
        keys
    }

    fn as_records<'a>(log: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> Vec<TopicRecord> {
        log.map(|(k, v)| TopicRecord {
            key: Some(k.to_string()),
            value: v.map(|v| v.as_bytes().to_vec()),
            location: "t/0@1".into(),
        })
        .collect()
    }

    /// The version RESET holds of monitor A, and whether it is known to be
    /// acknowledged, by what a restart reads of the compacted log.
    fn read_after_compaction(log: &Log) -> (u64, bool) {
        let kept = crate::kafka::compacted(log);
        let records = as_records(kept.iter().map(|(k, v)| (*k, Some(*v))));
        let mut announcements = Announcements::default();
        for a in StoreKeys::default().observe(&records) {
            announcements.learn(&a);
        }
        let (latest, _) = announcements.latest("A").expect("A is known");
        (latest.version, latest.acknowledged)
    }

    #[test]
    fn after_compaction_a_late_write_of_an_earlier_version_hides_no_later_one() {
        // A record of the one-key-per-monitor releases.
        let mut log: Log = vec![(
            "A".into(),
            Some(
                serde_json::to_string(&StoredAnnouncement {
                    v: 3,
                    announced: announced(1, true),
                })
                .unwrap(),
            ),
        )];
        // The first replica sends version 2; the monitor's partition moves.
        let mut first = replica(&log);
        log.extend(first.writes(announced(2, false)));
        // The second re-sends it, has it acknowledged, then sends and has
        // acknowledged version 3.
        let mut second = replica(&log);
        let second_writes = [announced(2, true), announced(3, false), announced(3, true)];
        for a in second_writes.clone() {
            log.extend(second.writes(a));
        }
        // The first replica's answer to version 2 arrives late: the last
        // record written for the monitor.
        log.extend(first.writes(announced(2, true)));
        assert_eq!(read_after_compaction(&log), (3, true));
        // About one record per monitor: the late one beside the latest.
        assert_eq!(crate::kafka::compacted(&log).len(), 2, "{log:?}");

        // A crash at any point of the second replica's writes: a restart
        // still reads at least what was known before them.
        let mut before = log[..2].to_vec();
        let mut second = replica(&before);
        let mut known = read_after_compaction(&before);
        for a in second_writes {
            let writes = second.writes(a.clone());
            for written in 0..=writes.len() {
                let mut crashed = before.clone();
                crashed.extend_from_slice(&writes[..written]);
                let read = read_after_compaction(&crashed);
                assert!(read >= known, "{written} writes of {a:?}: {read:?}");
            }
            before.extend(writes);
            known = (a.version, a.acknowledged);
        }
    }
}
