//! The input side of the loop: assignment changes, records decoded into
//! the partitions' pipelines, dead letters, and backpressure (the input
//! paused while too many messages wait for RESET, and a partition while its
//! next record waits for its writer schema).

use super::commit::progress_to_write;
use super::{Live, Partition, PartitionKey};
use crate::http::Readiness;
use crate::kafka::flow::FlowChange;
use crate::kafka::group_reader::GroupContext;
use crate::kafka::stall::{StallChange, StallWatch};
use crate::kafka::{Assignment, Origin, RecordBatch};
use crate::offsets::Progress;
use crate::pipeline::{EarlierShapes, PartitionPipeline};
use crate::reject::RejectReason;
use anyhow::{anyhow, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Pauses or resumes the partitions in librdkafka: the consumer goes on
/// polling, so it keeps its place in the group.
pub(super) fn set_flow(
    consumer: &BaseConsumer<GroupContext>,
    keys: &[&PartitionKey],
    change: FlowChange,
) {
    if keys.is_empty() {
        return;
    }
    let mut partitions = TopicPartitionList::new();
    for (topic, partition) in keys {
        partitions.add_partition(topic, *partition);
    }
    let done = match change {
        FlowChange::Pause => consumer.pause(&partitions),
        FlowChange::Resume => consumer.resume(&partitions),
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, ?change, "cannot change the input's flow");
    }
}

impl Live {
    pub(super) fn assignment(&mut self, change: Assignment, readiness: &Readiness) -> Result<()> {
        match change {
            Assignment::Failed(why) => return Err(anyhow!("partition assignment failed: {why}")),
            Assignment::Revoked(revoked) => {
                let mut last = Vec::new();
                for key in revoked {
                    tracing::info!(topic = %key.0, partition = key.1, "partition revoked");
                    if let Some(part) = self.parts.remove(&key) {
                        last.extend(progress_to_write(&key, &part));
                    }
                    self.metrics.forget_partition(&key.0, key.1);
                }
                self.write_revoked(last);
                // Messages of revoked partitions not sent yet are left to
                // their new owners.
                let revoked_ids: HashSet<String> = self
                    .owners
                    .iter()
                    .filter(|(_, owner)| !self.parts.contains_key(&owner.key))
                    .map(|(id, _)| id.clone())
                    .collect();
                self.owners.retain(|id, _| !revoked_ids.contains(id));
                self.publisher.cancel(revoked_ids);
            }
            Assignment::Assigned(assigned) => {
                let new_keys: Vec<PartitionKey> =
                    assigned.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
                let shapes = EarlierShapes::of(&self.registry, &self.announcements);
                for (topic, partition, stored) in assigned {
                    let progress = stored
                        .as_ref()
                        .map(|s| self.plausible(&topic, partition, &s.progress));
                    // This owner's epoch, above every earlier owner's.
                    let epoch = stored.as_ref().map_or(1, |s| s.epoch + 1);
                    tracing::info!(%topic, partition, ?progress, epoch, "partition assigned");
                    let (started, next_offset) = (
                        progress.is_some(),
                        progress.as_ref().map(|p| p.offset as i64),
                    );
                    let mut pipeline = PartitionPipeline::resume(
                        Arc::clone(&self.registry),
                        self.settings(),
                        self.config.reset.push,
                        progress.unwrap_or(Progress::start(0)),
                    );
                    pipeline.take_shapes(&shapes);
                    if pipeline.catching_up() {
                        tracing::info!(%topic, partition, "monitors changed shape while the pipeline was stopped: their samples keep the shape RESET was told until the records an earlier run may have read are read again");
                    }
                    self.parts.insert(
                        (topic, partition),
                        Partition {
                            pipeline,
                            started,
                            last_record: Instant::now(),
                            next_offset,
                            // Written at the next tick with the new epoch,
                            // which fences the earlier owner's late writes.
                            written: None,
                            epoch,
                            written_at: Instant::now(),
                            stall: StallWatch::default(),
                            waiting: Default::default(),
                            catch_up_to: None,
                        },
                    );
                }
                // Newly assigned partitions follow the input's flow (a
                // partition assigned before may still be paused in librdkafka).
                let change = if self.flow.is_paused() {
                    FlowChange::Pause
                } else {
                    FlowChange::Resume
                };
                let keys: Vec<&PartitionKey> = new_keys.iter().collect();
                set_flow(&self.consumer, &keys, change);
                readiness.kafka_assigned.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// A partition's saved progress, without the times in it that cannot be
    /// true now (saved by a version that took a broken clock's event time).
    fn plausible(&self, topic: &str, partition: i32, saved: &Progress) -> Progress {
        let skew = self.settings().max_future_skew_ms;
        let (progress, changed) = saved.without_implausible_times(super::now_ms(), skew);
        if changed {
            tracing::warn!(
                topic,
                partition,
                ?saved,
                "the saved progress holds a time that cannot be true: it is forgotten, and the records from its offset set the watermark again"
            );
        }
        progress
    }

    /// Takes a batch of one partition's records, in order.
    pub(super) fn records(&mut self, batch: RecordBatch) -> Result<()> {
        let count = batch.len() as u64;
        self.metrics.records_consumed.inc_by(count);
        self.report.records += count;
        self.take(batch)
    }

    /// Runs a batch's records through their partition's pipeline, up to the
    /// first whose writer schema is not known yet: that batch and every
    /// later one of the partition wait, in order, for the registry's answer
    /// (`schemas`), and the partition is paused meanwhile.
    pub(super) fn take(&mut self, batch: RecordBatch) -> Result<()> {
        let key = (batch.topic.clone(), batch.partition);
        // Records of a partition revoked after they were read are dropped.
        // The partition is out of the map while its records are taken.
        let Some(mut part) = self.parts.remove(&key) else {
            return Ok(());
        };
        if !part.waiting.is_empty() {
            part.waiting.push_back(batch);
            self.parts.insert(key, part);
            return Ok(());
        }
        let before = part.pipeline.engine().stats().windows_closed;
        let mut decoded = 0;
        let mut schema_needed = None;
        for (offset, timestamp, payload) in batch.records() {
            // Read again after a pause or a seek, or taken before a wait: already taken.
            if part.next_offset.is_some_and(|next| offset < next) {
                continue;
            }
            if let Some(id) = self.schema_needed(payload) {
                schema_needed = Some(id);
                break;
            }
            let ended = part.caught_up(offset);
            self.keep_shapes(ended);
            let batches = part.pipeline.record_bytes(
                &self.decoder,
                offset as u64,
                timestamp,
                payload,
                &mut self.rejects,
            );
            part.next_offset = Some(offset + 1);
            if self
                .rejects
                .iter()
                .all(|r| r.reason != RejectReason::Decode)
            {
                decoded += 1;
            }
            if !self.rejects.is_empty() {
                let origin = Origin {
                    topic: key.0.clone(),
                    partition: key.1,
                    offset,
                };
                self.dead_letter(&origin)?;
            }
            if !batches.is_empty() {
                self.publish(&key, batches);
            }
        }
        if let Some(next) = part.next_offset {
            let ended = part.caught_up(next);
            self.keep_shapes(ended);
        }
        part.started = true;
        part.last_record = Instant::now();
        if part.stall.record_read() == StallChange::Ended {
            tracing::info!(topic = %key.0, partition = key.1, "the partition's input flows again");
        }
        let closed = part.pipeline.engine().stats().windows_closed - before;
        self.metrics.windows_closed.inc_by(closed);
        self.metrics.records_decoded.inc_by(decoded);
        if let Some(id) = schema_needed {
            part.waiting.push_back(batch);
            set_flow(&self.consumer, &[&key], FlowChange::Pause);
            self.ask_schema(id);
        }
        self.parts.insert(key, part);
        Ok(())
    }

    pub(super) fn dead_letter(&mut self, origin: &Origin) -> Result<()> {
        for reject in self.rejects.drain(..) {
            self.metrics
                .rejects
                .with_label_values(&[reject.reason.name()])
                .inc();
            self.dead_letters
                .send(origin, &reject)
                .map_err(|e| anyhow!("cannot write a dead letter: {e}"))?;
        }
        Ok(())
    }

    /// Pauses the input when the publisher holds its limit of unanswered
    /// messages, and resumes it when half of them are answered.
    pub(super) fn follow_flow(&mut self) {
        let change = match self
            .flow
            .held(self.publisher.held() + self.store_gate.len())
        {
            Some(change) => change,
            None => return,
        };
        // A partition waiting for a writer schema stays paused.
        let keys: Vec<&PartitionKey> = self
            .parts
            .iter()
            .filter(|(_, p)| change == FlowChange::Pause || p.waiting.is_empty())
            .map(|(key, _)| key)
            .collect();
        set_flow(&self.consumer, &keys, change);
        if change == FlowChange::Pause {
            tracing::info!(
                unanswered = self.publisher.held(),
                "input paused: waiting for RESET to answer"
            );
        } else {
            tracing::info!(unanswered = self.publisher.held(), "input resumed");
            self.flowing_since = Instant::now();
        }
    }
}
