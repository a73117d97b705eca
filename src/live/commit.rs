//! Progress: written beside the loop once a second (after the dead letters
//! it covers), then committed; revoked partitions' last progress at once.

use super::{CommitDone, Committing, Live, Partition, PartitionKey};
use crate::kafka::progress::ProgressRecord;
use crate::kafka::WriteError;
use crate::offsets::Progress;
use anyhow::{anyhow, Result};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Why a commit's progress was not written.
#[derive(Debug, thiserror::Error)]
pub(super) enum CommitError {
    #[error("{0} dead letters the progress covers are not written yet")]
    LettersUnconfirmed(usize),
    #[error(transparent)]
    Progress(#[from] WriteError),
}

impl CommitError {
    /// Whether the commit may succeed at a later tick.
    fn is_transient(&self) -> bool {
        match self {
            CommitError::LettersUnconfirmed(_) => true,
            CommitError::Progress(e) => e.is_transient(),
        }
    }
}

/// The partition's progress record, when its progress moved since it was
/// last written (a watermark raised further by idleness alone: now and
/// then, not every tick).
pub(super) fn progress_to_write(
    (topic, partition): &PartitionKey,
    part: &Partition,
) -> Option<ProgressRecord> {
    if !part.started {
        return None;
    }
    let progress = part.pipeline.progress();
    // An idle raise before a new record is written at once: a restart must
    // raise the watermark again there. A raise only moving the watermark
    // further (an idle partition, every tick) is written now and then.
    let raised_at = |p: &Progress| p.raises.iter().map(|r| r.offset).collect::<Vec<_>>();
    let moved = match &part.written {
        None => true,
        Some(w) => {
            (w.offset, w.acknowledged_through) != (progress.offset, progress.acknowledged_through)
                || raised_at(w) != raised_at(&progress)
                || (*w != progress && part.written_at.elapsed() >= Duration::from_secs(10))
        }
    };
    moved.then(|| ProgressRecord {
        v: crate::kafka::progress::FORMAT,
        epoch: part.epoch,
        topic: topic.clone(),
        partition: *partition,
        progress,
    })
}

impl Live {
    /// Starts writing the progress that moved; the returned future ends
    /// when the broker has it (or not), and `committed` then commits the
    /// same offsets. The write runs beside the loop, which goes on serving
    /// records, answers and ticks while the broker is slow or gone.
    pub(super) fn start_commit(&mut self) -> Option<Committing> {
        let records: Vec<ProgressRecord> = self
            .parts
            .iter()
            .filter_map(|(key, part)| progress_to_write(key, part))
            .collect();
        if records.is_empty() {
            return None;
        }
        let writer = self.progress_writer.clone();
        // The dead letters of the records this progress covers are on the
        // broker before it is written.
        let letters = self.dead_letters.take_sent();
        Some(Box::pin(async move {
            let refused = letters.confirmed().await;
            if !refused.is_empty() {
                let why = CommitError::LettersUnconfirmed(refused.len());
                return (Err(why), records, refused);
            }
            let written = writer.write(&records).await.map_err(CommitError::from);
            (written, records, Vec::new())
        }))
    }

    /// Writes at once what the revoked partitions had acknowledged since
    /// their last progress, so that their new owner, which reads it when
    /// the rebalance ends, sends again only what was unanswered. Left to
    /// the new owner when dead letters are still unconfirmed (the progress
    /// must not pass a record whose dead letter is not written). Written
    /// after the new owner read it, the record carries the old epoch and is
    /// ignored: nothing is lost either way.
    pub(super) fn write_revoked(&mut self, records: Vec<ProgressRecord>) {
        if records.is_empty() || self.dead_letters.has_unconfirmed() {
            return;
        }
        let writer = self.progress_writer.clone();
        tokio::spawn(async move {
            if let Err(e) = writer.write(&records).await {
                tracing::debug!(error = %e, "the progress of revoked partitions was not written");
            }
        });
    }

    /// The broker has the progress records of a commit (or refused them:
    /// they are written again at the next tick); the same offsets are
    /// committed to the group.
    pub(super) fn committed(
        &mut self,
        (written, records, refused_letters): CommitDone,
    ) -> Result<()> {
        if let Err(e) = written {
            self.metrics.progress_write_failures.inc();
            if !e.is_transient() {
                return Err(anyhow!(e).context("progress cannot be written"));
            }
            if let Some(held_back) = crate::throttle::due("progress write") {
                tracing::warn!(error = %e, held_back, "cannot write progress yet: trying again at every tick");
            }
            self.dead_letters
                .resend(refused_letters)
                .map_err(|e| anyhow!("cannot write a dead letter: {e}"))?;
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for r in &records {
            let offset = Offset::Offset(r.progress.offset as i64);
            if let Err(e) = offsets.add_partition_offset(&r.topic, r.partition, offset) {
                tracing::warn!(error = %e, "offset not committed");
            }
            if let Some(part) = self.parts.get_mut(&(r.topic.clone(), r.partition)) {
                part.written = Some(r.progress.clone());
                part.written_at = Instant::now();
            }
        }
        if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
            // The progress topic is what a restart reads; the commit is for lag tools.
            if let Some(held_back) = crate::throttle::due("offset commit") {
                tracing::warn!(error = %e, held_back, "offset commit failed");
            }
        }
        tracing::debug!(partitions = records.len(), "progress committed");
        self.metrics.commits.inc();
        self.report.commits += 1;
        Ok(())
    }
}
