//! The input topics' consumer group, read on a thread of its own: newly
//! assigned partitions start where the progress topic says, and records go to
//! the live loop in batches, with the assignment changes in their place
//! between them. Taking records from librdkafka then costs the loop nothing.

use crate::kafka::ProgressReader;
use crate::offsets::Progress;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;

/// What changed in the assignment, told by the rebalance callbacks.
#[derive(Debug)]
pub enum Assignment {
    /// Partitions now read, each from its stored progress (`None`: none stored).
    Assigned(Vec<(String, i32, Option<Progress>)>),
    Revoked(Vec<(String, i32)>),
    Failed(String),
}

/// Consecutive records of one partition, their payloads in one buffer.
#[derive(Debug, Default)]
pub struct RecordBatch {
    pub topic: String,
    pub partition: i32,
    offsets: Vec<i64>,
    /// Where each payload ends in `bytes`.
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl RecordBatch {
    fn new(topic: &str, partition: i32) -> RecordBatch {
        RecordBatch {
            topic: topic.to_string(),
            partition,
            ..RecordBatch::default()
        }
    }

    fn push(&mut self, offset: i64, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.offsets.push(offset);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Each record's offset and payload (empty for a null payload), in order.
    pub fn records(&self) -> impl Iterator<Item = (i64, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.offsets
            .iter()
            .zip(starts.zip(&self.ends))
            .map(|(&offset, (start, &end))| (offset, &self.bytes[start..end]))
    }
}

/// What the reading thread hands the loop, in the order the consumer told it.
#[derive(Debug)]
pub enum Input {
    Assignment(Assignment),
    Records(RecordBatch),
}

/// The most records in one batch.
const BATCH_RECORDS: usize = 1024;

/// Batches waiting for the loop before the reading thread waits too.
const BATCHES_QUEUED: usize = 8;

/// Reads progress for newly assigned partitions and starts them there; keeps
/// the assignment changes until the reading thread passes them on.
pub struct GroupContext {
    progress: Mutex<ProgressReader>,
    changes: Mutex<Vec<Assignment>>,
    /// Whether `changes` holds any: looked at after every poll, without the lock.
    changed: AtomicBool,
}

impl GroupContext {
    fn tell(&self, change: Assignment) {
        self.changes.lock().expect("changes lock").push(change);
        self.changed.store(true, Ordering::Release);
    }

    fn take_changes(&self) -> Vec<Assignment> {
        if !self.changed.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.changes.lock().expect("changes lock"))
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            self.tell(Assignment::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        let latest = self
            .progress
            .lock()
            .expect("progress lock")
            .latest(Duration::from_secs(30));
        let change = match latest {
            Err(e) => Assignment::Failed(format!("cannot read progress: {e}")),
            Ok(latest) => {
                // Start each partition where its progress says, not at the committed offset.
                let mut start = TopicPartitionList::new();
                let mut assigned = Vec::new();
                for e in tpl.elements() {
                    let key = (e.topic().to_string(), e.partition());
                    let progress = latest.get(&key).copied();
                    let offset =
                        progress.map_or(Offset::Invalid, |p| Offset::Offset(p.offset as i64));
                    let _ = start.add_partition_offset(e.topic(), e.partition(), offset);
                    assigned.push((key.0, key.1, progress));
                }
                match consumer.assign(&start) {
                    Ok(()) => Assignment::Assigned(assigned),
                    Err(e) => Assignment::Failed(format!("cannot assign: {e}")),
                }
            }
        };
        self.tell(change);
    }
}

/// The group's consumer and the thread that reads it.
pub struct GroupReader {
    consumer: Arc<BaseConsumer<GroupContext>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GroupReader {
    /// Subscribes to `topics` with `config` (group id included) and starts
    /// reading; the inputs come out of the returned receiver.
    pub fn start(
        config: &ClientConfig,
        progress: ProgressReader,
        topics: &[&str],
    ) -> Result<(GroupReader, mpsc::Receiver<Input>), rdkafka::error::KafkaError> {
        let context = GroupContext {
            progress: Mutex::new(progress),
            changes: Mutex::new(Vec::new()),
            changed: AtomicBool::new(false),
        };
        let consumer: BaseConsumer<GroupContext> = config.create_with_context(context)?;
        consumer.subscribe(topics)?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let (inputs, received) = mpsc::channel(BATCHES_QUEUED);
        let thread = {
            let consumer = Arc::clone(&consumer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("kafka-reader".into())
                .spawn(move || read(&consumer, &stop, &inputs))
                .expect("a thread can be started")
        };
        let reader = GroupReader {
            consumer,
            stop,
            thread: Some(thread),
        };
        Ok((reader, received))
    }

    /// The consumer, for commits and watermark queries.
    pub fn consumer(&self) -> &Arc<BaseConsumer<GroupContext>> {
        &self.consumer
    }

    /// Stops reading and waits for the thread (the receiver must be closed
    /// or read, or a full queue keeps the thread waiting).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reading thread: polls until told to stop or the loop is gone. A batch
/// is handed over when nothing more is ready, when it is full, when the next
/// record is another partition's, and before any assignment change.
fn read(consumer: &BaseConsumer<GroupContext>, stop: &AtomicBool, inputs: &mpsc::Sender<Input>) {
    let mut batch: Option<RecordBatch> = None;
    let hand_over = |batch: &mut Option<RecordBatch>| match batch.take() {
        Some(b) => inputs.blocking_send(Input::Records(b)).is_ok(),
        None => true,
    };
    while !stop.load(Ordering::Relaxed) {
        let wait = if batch.is_some() {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        let polled = consumer.poll(wait);
        // Changes told during this poll come before the record it returned.
        let changes = consumer.context().take_changes();
        if !changes.is_empty() {
            if !hand_over(&mut batch) {
                return;
            }
            for change in changes {
                if inputs.blocking_send(Input::Assignment(change)).is_err() {
                    return;
                }
            }
        }
        let message = match polled {
            None => {
                if !hand_over(&mut batch) {
                    return;
                }
                continue;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Kafka");
                continue;
            }
            Some(Ok(m)) => m,
        };
        let same_partition = batch
            .as_ref()
            .is_some_and(|b| b.partition == message.partition() && b.topic == message.topic());
        if !same_partition && !hand_over(&mut batch) {
            return;
        }
        let b = batch.get_or_insert_with(|| RecordBatch::new(message.topic(), message.partition()));
        b.push(message.offset(), message.payload().unwrap_or(&[]));
        if b.len() >= BATCH_RECORDS && !hand_over(&mut batch) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_each_record_with_its_offset() {
        let mut b = RecordBatch::new("t", 2);
        assert!(b.is_empty());
        b.push(7, b"abc");
        b.push(8, b"");
        b.push(9, b"de");
        let records: Vec<(i64, &[u8])> = b.records().collect();
        assert_eq!(
            records,
            vec![(7, &b"abc"[..]), (8, &b""[..]), (9, &b"de"[..])]
        );
        assert_eq!(b.len(), 3);
    }
}
