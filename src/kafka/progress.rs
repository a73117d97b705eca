//! The progress topic: one record per partition per commit, holding what a
//! restart needs (offset, watermark, acknowledged-through), written before the
//! offset is committed and read back, latest per partition, on assignment.
//! Compacted, keyed by partition and owner epoch.
//! Kept in a topic rather than in commit metadata because some
//! Kafka-compatible brokers drop commit metadata.

use super::quiet::Quiet;
use super::read::{own_topic_consumer, read_from, ReadError};
use super::WriteError;
use crate::offsets::Progress;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The progress record format written today. Version 1 (no `v`, no
/// `epoch`) still loads, with epoch 0.
pub const FORMAT: u32 = 2;

/// One partition's progress, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressRecord {
    #[serde(default = "format_1")]
    pub v: u32,
    pub topic: String,
    pub partition: i32,
    /// The writer's ownership of the partition: each new owner writes one
    /// more than the highest it read, so that a record of an earlier owner
    /// (revoked, its write late) is ignored when read after a later one's.
    #[serde(default)]
    pub epoch: u64,
    #[serde(flatten)]
    pub progress: Progress,
}

fn format_1() -> u32 {
    1
}

/// A partition's latest progress as read, and its owner's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub progress: Progress,
    pub epoch: u64,
}

/// What reading one more progress record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    Applied,
    /// Written by an owner older than one already read: ignored.
    Fenced,
    /// A format this version cannot read (a newer pipeline's): ignored.
    TooNew,
}

/// Takes a record read after those in `known`, in topic order.
pub fn fold(known: &mut HashMap<(String, i32), Stored>, record: ProgressRecord) -> Folded {
    if record.v > FORMAT {
        return Folded::TooNew;
    }
    let key = (record.topic, record.partition);
    if known.get(&key).is_some_and(|s| record.epoch < s.epoch) {
        return Folded::Fenced;
    }
    let stored = Stored {
        progress: record.progress,
        epoch: record.epoch,
    };
    known.insert(key, stored);
    Folded::Applied
}

/// The key of an owner's records: one key per partition *and epoch*. The
/// topic is compacted, which keeps the last record written under each key;
/// under one key per partition, an earlier owner's write landing after the
/// next owner's would be the one kept, and the epoch fencing would have
/// nothing left to fence it with.
fn key(topic: &str, partition: i32, epoch: u64) -> String {
    format!("{topic}/{partition}/{epoch}")
}

/// What a record of `epoch` makes of the topic, in order, key by key (a
/// `None` value deletes the key under compaction): its own value, then, for
/// an owner's first write, deletions of the keys it supersedes (the single
/// key per partition that earlier releases wrote, and the previous
/// owner's), so that the topic keeps about one record per partition. The
/// value goes first: a crash between the writes leaves a key too many,
/// never a partition without progress once compaction has run.
fn keyed(record: &ProgressRecord, first: bool) -> Vec<(String, Option<String>)> {
    let (topic, partition, epoch) = (&record.topic, record.partition, record.epoch);
    let value = serde_json::to_string(record).expect("progress serializes");
    let mut out = vec![(key(topic, partition, epoch), Some(value))];
    if first {
        out.push((format!("{topic}/{partition}"), None));
        if let Some(previous) = epoch.checked_sub(1) {
            out.push((key(topic, partition, previous), None));
        }
    }
    out
}

/// Writes progress records and waits until the broker has them.
#[derive(Clone)]
pub struct ProgressWriter {
    producer: FutureProducer<Quiet>,
    topic: String,
    /// The (topic, partition, epoch) of the owners this process wrote for,
    /// whose predecessors' keys are deleted.
    owners: Arc<Mutex<HashSet<(String, i32, u64)>>>,
}

impl ProgressWriter {
    pub fn new(config: &ClientConfig, topic: &str) -> rdkafka::error::KafkaResult<ProgressWriter> {
        let producer = config
            .clone()
            .set("acks", "all")
            .set("linger.ms", "0")
            .create_with_context(Quiet)?;
        Ok(ProgressWriter {
            producer,
            topic: topic.to_string(),
            owners: Default::default(),
        })
    }

    /// Writes each record and waits for it before the next: one record per
    /// produce request (tansu 0.6.0 returned only the last record of a
    /// multi-record batch to readers of this topic).
    pub async fn write(&self, records: &[ProgressRecord]) -> Result<(), WriteError> {
        for r in records {
            let owner = (r.topic.clone(), r.partition, r.epoch);
            let first = !self.owners.lock().expect("not poisoned").contains(&owner);
            for (k, value) in keyed(r, first) {
                let mut record = FutureRecord::to(&self.topic).key(&k).partition(0);
                if let Some(value) = &value {
                    record = record.payload(value);
                }
                self.producer
                    .send(record, Duration::from_secs(10))
                    .await
                    .map_err(|(source, _)| WriteError {
                        topic: self.topic.clone(),
                        source,
                    })?;
            }
            self.owners.lock().expect("not poisoned").insert(owner);
        }
        Ok(())
    }
}

/// Follows the progress topic: the first read takes it whole, each later
/// one only what was written since, so that an assignment costs what was
/// written since the last one, not the topic's length.
pub struct ProgressReader {
    consumer: BaseConsumer<Quiet>,
    topic: String,
    known: HashMap<(String, i32), Stored>,
    /// Where the next read starts.
    next: i64,
    /// Records read so far, all reads together.
    read: u64,
}

impl ProgressReader {
    pub fn new(config: &ClientConfig, topic: &str) -> rdkafka::error::KafkaResult<ProgressReader> {
        // Unassigned between reads, so nothing is fetched in the background.
        let consumer = own_topic_consumer(config, Quiet, Duration::from_millis(10))?;
        Ok(ProgressReader {
            consumer,
            topic: topic.to_string(),
            known: HashMap::new(),
            next: 0,
            read: 0,
        })
    }

    /// Records read so far, all reads together.
    pub fn records_read(&self) -> u64 {
        self.read
    }

    /// The latest progress of every partition, by (topic, partition), read
    /// up to the topic's current end.
    pub fn latest(
        &mut self,
        timeout: Duration,
    ) -> Result<&HashMap<(String, i32), Stored>, ReadError> {
        let mut read = Vec::new();
        let ends = read_from(
            &self.consumer,
            &self.topic,
            &[(0, self.next)],
            timeout,
            |m| match m.payload().map(serde_json::from_slice::<ProgressRecord>) {
                Some(Ok(r)) => read.push(r),
                // A superseded owner's key, deleted.
                None => {}
                Some(Err(_)) => tracing::warn!(
                    offset = m.offset(),
                    "an unreadable progress record: ignored"
                ),
            },
        );
        let ends = match ends {
            Ok(ends) => ends,
            // No progress topic yet: nothing was ever committed through it.
            Err(ReadError::Missing(e)) => {
                tracing::debug!(error = %e, topic = %self.topic, "no progress to read");
                return Ok(&self.known);
            }
            Err(e) => return Err(e),
        };
        self.read += read.len() as u64;
        for record in read {
            let (topic, partition, epoch) = (record.topic.clone(), record.partition, record.epoch);
            match fold(&mut self.known, record) {
                Folded::Applied => {}
                Folded::Fenced => {
                    tracing::info!(%topic, partition, epoch, "progress of an earlier owner, written late: ignored")
                }
                Folded::TooNew => {
                    tracing::warn!(%topic, partition, "progress in a newer format than this version reads: ignored")
                }
            }
        }
        self.next = ends.get(&0).copied().unwrap_or(self.next);
        self.consumer
            .unassign()
            .map_err(|e| ReadError::Failed(format!("{}: {e}", self.topic)))?;
        Ok(&self.known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> ProgressRecord {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_version_1_record_loads_with_epoch_0() {
        let r = record(
            r#"{"topic":"t","partition":2,"offset":7,"watermark":5,"acknowledged_through":4}"#,
        );
        assert_eq!((r.v, r.epoch, r.progress.offset), (1, 0, 7));
        let written = serde_json::to_value(ProgressRecord {
            v: FORMAT,
            epoch: 3,
            ..r
        })
        .unwrap();
        assert_eq!(written["v"], 2);
        assert_eq!(written["epoch"], 3);
        assert_eq!(written["offset"], 7);
    }

    /// Partition 0 of topic `t` at `offset`, written by the owner of `epoch`.
    fn at(epoch: u64, offset: u64) -> ProgressRecord {
        record(&format!(
            r#"{{"v":2,"topic":"t","partition":0,"epoch":{epoch},"offset":{offset},"watermark":0,"acknowledged_through":0}}"#
        ))
    }

    #[test]
    fn a_later_owner_fences_an_earlier_ones_late_write() {
        let mut known = HashMap::new();
        assert_eq!(fold(&mut known, at(1, 10)), Folded::Applied);
        // The next owner resumes from offset 10 and writes epoch 2 at once.
        assert_eq!(fold(&mut known, at(2, 10)), Folded::Applied);
        // The first owner's write, late: ignored.
        assert_eq!(fold(&mut known, at(1, 30)), Folded::Fenced);
        assert_eq!(fold(&mut known, at(2, 20)), Folded::Applied);
        let key = ("t".to_string(), 0);
        assert_eq!((known[&key].epoch, known[&key].progress.offset), (2, 20));
        // Another partition has epochs of its own.
        let mut other = at(1, 5);
        other.partition = 1;
        assert_eq!(fold(&mut known, other), Folded::Applied);
    }

    fn compacted(log: &[(String, Option<String>)]) -> Vec<ProgressRecord> {
        let kept = crate::kafka::compacted(log);
        kept.into_iter().map(|(_, v)| record(v)).collect()
    }

    #[test]
    fn after_compaction_the_latest_owner_still_fences_an_earlier_ones_late_write() {
        let mut log = Vec::new();
        // A record of the one-key-per-partition releases, at epoch 1.
        log.push((
            "t/0".to_string(),
            Some(serde_json::to_string(&at(1, 5)).unwrap()),
        ));
        log.extend(keyed(&at(2, 10), true));
        log.extend(keyed(&at(2, 20), false));
        // The next owner, then its predecessor's write, late: the last
        // record written for the partition.
        log.extend(keyed(&at(3, 20), true));
        log.extend(keyed(&at(3, 25), false));
        log.extend(keyed(&at(2, 30), false));
        let kept = compacted(&log);
        // One record per owner at most: the superseded keys are deleted.
        let epochs: Vec<u64> = kept.iter().map(|r| r.epoch).collect();
        assert_eq!(epochs, [3, 2]);
        // A crash anywhere in the next owner's first write: compaction
        // still leaves the latest owner's progress.
        let first = keyed(&at(4, 25), true);
        for written in 0..=first.len() {
            let mut crashed = log.clone();
            crashed.extend_from_slice(&first[..written]);
            let mut known = HashMap::new();
            for r in compacted(&crashed) {
                fold(&mut known, r);
            }
            let latest = &known[&("t".to_string(), 0)];
            assert!(latest.epoch >= 3, "{written} writes: {latest:?}");
        }
        let mut known = HashMap::new();
        for r in kept {
            fold(&mut known, r);
        }
        let latest = &known[&("t".to_string(), 0)];
        assert_eq!((latest.epoch, latest.progress.offset), (3, 25));
    }

    #[test]
    fn a_newer_format_is_not_taken_for_one_this_version_reads() {
        let mut known = HashMap::new();
        let r = record(
            r#"{"v":3,"topic":"t","partition":0,"epoch":9,"offset":1,"watermark":0,"acknowledged_through":0,"more":1}"#,
        );
        assert_eq!(fold(&mut known, r), Folded::TooNew);
        assert!(known.is_empty());
    }
}
