//! The input topics' consumer group, read on a thread of its own: newly
//! assigned partitions start where the progress topic says, and records go to
//! the live loop in batches, with the assignment changes in their place
//! between them. Taking records from librdkafka then costs the loop nothing,
//! and the thread takes them many at a time from a queue of its own
//! (`record_queue`), while the consumer's queue brings the rebalances.

use crate::kafka::progress::Stored;
use crate::kafka::record_queue::{RawRecord, RecordQueue, Taken};
use crate::kafka::ProgressReader;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;

/// What changed in the assignment, told by the rebalance callbacks.
#[derive(Debug)]
pub enum Assignment {
    /// Partitions now read, each from its stored progress (`None`: none stored).
    Assigned(Vec<(String, i32, Option<Stored>)>),
    Revoked(Vec<(String, i32)>),
    Failed(String),
}

/// Consecutive records of one partition, their payloads in one buffer.
#[derive(Debug, Default)]
pub struct RecordBatch {
    pub topic: String,
    pub partition: i32,
    offsets: Vec<i64>,
    /// Each record's Kafka timestamp (`None`: the broker has none).
    timestamps: Vec<Option<i64>>,
    /// Where each payload ends in `bytes`.
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl RecordBatch {
    /// An empty batch with room for `records` records of `bytes` in all.
    fn new(topic: &str, partition: i32, (records, bytes): (usize, usize)) -> RecordBatch {
        RecordBatch {
            topic: topic.to_string(),
            partition,
            offsets: Vec::with_capacity(records),
            timestamps: Vec::with_capacity(records),
            ends: Vec::with_capacity(records),
            bytes: Vec::with_capacity(bytes),
        }
    }

    fn push(&mut self, offset: i64, timestamp: Option<i64>, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.offsets.push(offset);
        self.timestamps.push(timestamp);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Each record's offset, timestamp and payload (empty for a null
    /// payload), in order.
    pub fn records(&self) -> impl Iterator<Item = (i64, Option<i64>, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.offsets
            .iter()
            .zip(&self.timestamps)
            .zip(starts.zip(&self.ends))
            .map(|((&offset, &timestamp), (start, &end))| {
                (offset, timestamp, &self.bytes[start..end])
            })
    }
}

/// What the reading thread hands the loop, in the order the consumer told it.
#[derive(Debug)]
pub enum Input {
    Assignment(Assignment),
    Records(RecordBatch),
}

/// The most records in one batch. Larger batches cost less per record
/// (fewer queue reads and hand-overs): end to end, a million records took
/// 0.83 to 0.88 CPU-seconds with 4,096 against 0.92 with 1,024; 16,384
/// gained nothing more.
const BATCH_RECORDS: usize = 4096;

/// Batches waiting for the loop before the reading thread waits too.
const BATCHES_QUEUED: usize = 8;

/// How long the reading thread waits for records when none are ready; the
/// consumer's queue (rebalances) is looked at in between.
const IDLE_WAIT_MS: i32 = 10;

/// The latest progress of every partition, by (topic, partition).
type Latest = HashMap<(String, i32), Stored>;

/// Reads the progress topic on a thread of its own, so that neither the
/// rebalance callback nor the reading thread ever waits for it. It reads
/// the whole topic once at start (while the group is being joined); each
/// later ask costs only what was written since. A broker that is down or
/// slow is waited for, with backoff, until it answers or the reader stops:
/// a partition cannot start without its progress, and starting it without
/// would send again what RESET has.
struct ProgressFollower {
    asks: std::sync::mpsc::Sender<std::sync::mpsc::SyncSender<Latest>>,
}

impl ProgressFollower {
    fn start(mut reader: ProgressReader, stop: Arc<AtomicBool>) -> ProgressFollower {
        let (asks, asked) = std::sync::mpsc::channel::<std::sync::mpsc::SyncSender<Latest>>();
        std::thread::Builder::new()
            .name("progress-reader".into())
            .spawn(move || {
                if read_until_stopped(&mut reader, &stop).is_none() {
                    return;
                }
                while let Ok(reply) = asked.recv() {
                    match read_until_stopped(&mut reader, &stop) {
                        Some(latest) => {
                            let _ = reply.send(latest);
                        }
                        None => return,
                    }
                }
            })
            .expect("a thread can be started");
        ProgressFollower { asks }
    }

    /// Asks for the progress written up to now; the answer comes once it is read.
    fn ask(&self) -> std::sync::mpsc::Receiver<Latest> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let _ = self.asks.send(reply);
        answer
    }
}

/// The progress topic read to its end, retried with backoff until it is
/// read (`None`: told to stop first).
fn read_until_stopped(reader: &mut ProgressReader, stop: &AtomicBool) -> Option<Latest> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match reader.latest(Duration::from_secs(30)) {
            Ok(latest) => return Some(latest.clone()),
            Err(e) => {
                if let Some(held_back) = crate::throttle::due("progress read") {
                    tracing::warn!(error = %e, held_back, "cannot read progress for the assigned partitions yet: trying again");
                }
            }
        }
        let until = std::time::Instant::now() + backoff;
        while std::time::Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Partitions the group gave this member, waiting for their progress.
struct PendingAssignment {
    partitions: TopicPartitionList,
    progress: std::sync::mpsc::Receiver<Latest>,
}

/// Asks for progress when the group assigns partitions and assigns them,
/// each from its progress, once it is read (librdkafka waits for that
/// assign call, and starts no other rebalance before it, while this
/// member keeps polling and heartbeating); keeps the assignment changes
/// until the reading thread passes them on.
pub struct GroupContext {
    progress: ProgressFollower,
    pending: Mutex<Vec<PendingAssignment>>,
    changes: Mutex<Vec<Assignment>>,
    /// Whether `changes` holds any: looked at after every poll, without the lock.
    changed: AtomicBool,
    /// Where assigned partitions' records are forwarded (gone once the
    /// reading thread has stopped).
    records: OnceLock<Weak<RecordQueue>>,
}

impl GroupContext {
    fn new(progress: ProgressReader, stop: &Arc<AtomicBool>) -> GroupContext {
        GroupContext {
            progress: ProgressFollower::start(progress, Arc::clone(stop)),
            pending: Mutex::new(Vec::new()),
            changes: Mutex::new(Vec::new()),
            changed: AtomicBool::new(false),
            records: OnceLock::new(),
        }
    }

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

    /// Whether partitions wait for their progress.
    fn awaiting_progress(&self) -> bool {
        !self.pending.lock().expect("pending lock").is_empty()
    }

    /// Assigns the pending partitions whose progress has been read
    /// (`wait`: waiting for it, as long as it takes).
    fn assign_ready(&self, consumer: &BaseConsumer<Self>, wait: bool) {
        let mut pending = self.pending.lock().expect("pending lock");
        let mut still = Vec::new();
        for p in pending.drain(..) {
            let answer = if wait {
                p.progress.recv().ok()
            } else {
                match p.progress.try_recv() {
                    Ok(latest) => Some(latest),
                    Err(std::sync::mpsc::TryRecvError::Empty) => {
                        still.push(p);
                        continue;
                    }
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
                }
            };
            let change = match answer {
                Some(latest) => self.assign(consumer, &p.partitions, &latest),
                None => Assignment::Failed("stopped before the progress could be read".into()),
            };
            self.tell(change);
        }
        *pending = still;
    }

    /// Answers librdkafka's wait for an assign call with no partitions
    /// (told to stop before their progress was read), so that the
    /// consumer can leave the group and close.
    fn give_up_pending(&self, consumer: &BaseConsumer<Self>) {
        if self
            .pending
            .lock()
            .expect("pending lock")
            .drain(..)
            .next()
            .is_some()
        {
            let none = TopicPartitionList::new();
            let _ = match consumer.rebalance_protocol() {
                RebalanceProtocol::Cooperative => consumer.incremental_assign(&none),
                _ => consumer.assign(&none),
            };
        }
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        super::quiet::log(level, fac, message);
    }

    fn error(&self, e: rdkafka::error::KafkaError, reason: &str) {
        super::quiet::error(&e, reason);
    }
}

impl GroupContext {
    /// Assigns the partitions, each from its stored progress, its records
    /// forwarded to the record queue first, so that none reach the consumer's
    /// own queue.
    fn assign(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
        latest: &Latest,
    ) -> Assignment {
        // Start each partition where its progress says, not at the committed offset.
        let mut start = TopicPartitionList::new();
        let mut assigned = Vec::new();
        let records = self.records.get().and_then(Weak::upgrade);
        for e in tpl.elements() {
            // Records not forwarded still come, through the consumer's queue.
            if let Some(records) = &records {
                if !records.forward(e.topic(), e.partition()) {
                    tracing::warn!(
                        topic = e.topic(),
                        partition = e.partition(),
                        "records not forwarded to the record queue: read one at a time"
                    );
                }
            }
            let key = (e.topic().to_string(), e.partition());
            let progress = latest.get(&key).cloned();
            let offset = progress.as_ref().map_or(Offset::Invalid, |p| {
                Offset::Offset(p.progress.offset as i64)
            });
            let _ = start.add_partition_offset(e.topic(), e.partition(), offset);
            assigned.push((key.0, key.1, progress));
        }
        let done = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(&start),
            _ => consumer.assign(&start),
        };
        match done {
            Ok(()) => Assignment::Assigned(assigned),
            Err(e) => Assignment::Failed(format!("cannot assign: {e}")),
        }
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        // librdkafka starts no rebalance while it waits for an assign call;
        // should one come anyway, the partitions are assigned first, so that
        // they are given up as the loop knows them.
        self.assign_ready(consumer, true);
        let revoked = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        self.tell(Assignment::Revoked(revoked));
        let done = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "cannot give up the revoked partitions");
        }
    }
}

impl ConsumerContext for GroupContext {
    /// Replaces rdkafka's default, which would assign the partitions at
    /// their committed offsets before this context could start them at their
    /// progress (and so undo the forwarding to the record queue).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let pending = PendingAssignment {
                    partitions: tpl.clone(),
                    progress: self.progress.ask(),
                };
                self.pending.lock().expect("pending lock").push(pending);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            // The loop is told, as for a revocation, so that it stops
            // writing progress for partitions it may no longer own.
            other => {
                tracing::error!(error = ?other, "rebalance failed: giving up the assignment");
                match consumer.assignment() {
                    Ok(current) => self.revoke(consumer, &current),
                    Err(e) => {
                        self.tell(Assignment::Failed(format!(
                            "rebalance failed ({other:?}) and the assignment is unknown: {e}"
                        )));
                        let _ = consumer.unassign();
                    }
                }
            }
        }
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
        let stop = Arc::new(AtomicBool::new(false));
        let context = GroupContext::new(progress, &stop);
        let consumer: BaseConsumer<GroupContext> = config.create_with_context(context)?;
        let consumer = Arc::new(consumer);
        let records = Arc::new(RecordQueue::new(Arc::clone(&consumer)));
        let _ = consumer.context().records.set(Arc::downgrade(&records));
        consumer.subscribe(topics)?;
        let (inputs, received) = mpsc::channel(BATCHES_QUEUED);
        let thread = {
            let consumer = Arc::clone(&consumer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("kafka-reader".into())
                .spawn(move || {
                    read(&consumer, &records, &stop, inputs);
                    consumer.context().give_up_pending(&consumer);
                })
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

/// The batch being filled, handed to the loop when nothing more is ready,
/// when it is full, when the next record is another partition's, and before
/// any assignment change.
struct Handover {
    batch: Option<RecordBatch>,
    inputs: mpsc::Sender<Input>,
    /// The records and bytes of the last batch handed over (the bytes up
    /// to `ROOM_BYTES`): a new batch starts with that much room, rather
    /// than growing (and copying) its buffers record after record.
    last_size: (usize, usize),
}

impl Handover {
    fn new(inputs: mpsc::Sender<Input>) -> Handover {
        Handover {
            batch: None,
            inputs,
            last_size: (0, 0),
        }
    }

    /// False when the loop is gone.
    fn hand_over(&mut self) -> bool {
        match self.batch.take() {
            Some(b) => {
                self.last_size = (b.len(), b.bytes.len().min(ROOM_BYTES));
                self.inputs.blocking_send(Input::Records(b)).is_ok()
            }
            None => true,
        }
    }

    fn send(&mut self, change: Assignment) -> bool {
        self.hand_over() && self.inputs.blocking_send(Input::Assignment(change)).is_ok()
    }

    fn add(&mut self, r: &RawRecord) -> bool {
        let same_partition = self
            .batch
            .as_ref()
            .is_some_and(|b| b.partition == r.partition && b.topic == r.topic);
        if !same_partition && !self.hand_over() {
            return false;
        }
        let size = self.last_size;
        let b = self
            .batch
            .get_or_insert_with(|| RecordBatch::new(r.topic, r.partition, size));
        b.push(r.offset, r.timestamp, r.payload);
        b.len() < BATCH_RECORDS || self.hand_over()
    }
}

/// The most room a new batch starts with for its records' bytes.
const ROOM_BYTES: usize = 8 << 20;

/// How long the reading thread waits on the consumer's queue while no
/// partition is assigned (records cannot come, a rebalance can).
const UNASSIGNED_WAIT: Duration = Duration::from_millis(100);

/// The reading thread: until told to stop or the loop is gone, serves the
/// consumer's queue (rebalances, errors, and any record that reached it),
/// then takes what the record queue holds. With no partition assigned it
/// waits on the consumer's queue, so that the first assignment is taken
/// as soon as it comes.
fn read(
    consumer: &BaseConsumer<GroupContext>,
    records: &RecordQueue,
    stop: &AtomicBool,
    inputs: mpsc::Sender<Input>,
) {
    let mut out = Handover::new(inputs);
    let mut taken: Vec<Taken> = Vec::with_capacity(BATCH_RECORDS);
    let mut assigned = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let awaiting = consumer.context().awaiting_progress();
        let mut wait = if assigned == 0 && out.batch.is_none() && !awaiting {
            UNASSIGNED_WAIT
        } else if awaiting {
            Duration::from_millis(IDLE_WAIT_MS as u64)
        } else {
            Duration::ZERO
        };
        loop {
            let polled = consumer.poll(wait);
            wait = Duration::ZERO;
            consumer.context().assign_ready(consumer, false);
            // Changes told during this poll come before the record it returned.
            for change in consumer.context().take_changes() {
                match &change {
                    Assignment::Assigned(parts) => assigned += parts.len(),
                    Assignment::Revoked(parts) => assigned = assigned.saturating_sub(parts.len()),
                    Assignment::Failed(_) => {}
                }
                if !out.send(change) {
                    return;
                }
            }
            match polled {
                None => break,
                Some(Err(e)) => super::quiet::error(&e, "while reading"),
                Some(Ok(m)) => {
                    let raw = RawRecord {
                        topic: m.topic(),
                        partition: m.partition(),
                        offset: m.offset(),
                        timestamp: m.timestamp().to_millis(),
                        payload: m.payload().unwrap_or(&[]),
                    };
                    if !out.add(&raw) {
                        return;
                    }
                }
            }
        }
        let wait = if out.batch.is_some() || assigned == 0 {
            0
        } else {
            IDLE_WAIT_MS
        };
        if records.take(wait, BATCH_RECORDS, &mut taken) == 0 && !out.hand_over() {
            return;
        }
        for record in taken.drain(..) {
            match record.record() {
                Err(e) => super::quiet::error(&e, "while reading"),
                Ok(raw) => {
                    if !out.add(&raw) {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_each_record_with_its_offset() {
        let mut b = RecordBatch::new("t", 2, (0, 0));
        assert!(b.is_empty());
        b.push(7, Some(70), b"abc");
        b.push(8, None, b"");
        b.push(9, Some(90), b"de");
        let records: Vec<(i64, Option<i64>, &[u8])> = b.records().collect();
        assert_eq!(
            records,
            vec![
                (7, Some(70), &b"abc"[..]),
                (8, None, &b""[..]),
                (9, Some(90), &b"de"[..])
            ]
        );
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn a_failed_rebalance_revokes_the_whole_assignment_and_tells_the_loop() {
        // A real consumer, never connected: assignments are local state; the
        // error itself cannot be made by a broker on demand, so the callback
        // is called with it.
        let config = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("group.id", "g")
            .clone();
        let stop = Arc::new(AtomicBool::new(true));
        let context = GroupContext::new(ProgressReader::new(&config, "g.progress").unwrap(), &stop);
        let consumer: BaseConsumer<GroupContext> = config.create_with_context(context).unwrap();
        let mut owned = TopicPartitionList::new();
        owned.add_partition("t", 0);
        owned.add_partition("t", 1);
        consumer.assign(&owned).unwrap();
        consumer.context().rebalance(
            &consumer,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__FAIL,
            &mut TopicPartitionList::new(),
        );
        let changes = consumer.context().take_changes();
        let [Assignment::Revoked(revoked)] = &changes[..] else {
            panic!("expected one revocation, got {changes:?}");
        };
        let mut revoked = revoked.clone();
        revoked.sort();
        assert_eq!(revoked, vec![("t".to_string(), 0), ("t".to_string(), 1)]);
        assert_eq!(consumer.assignment().unwrap().count(), 0);
    }

    /// What the handover sent: "topic/partition from first offset: count"
    /// for each batch, "change" for each assignment change.
    fn sent(received: &mut mpsc::Receiver<Input>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(input) = received.try_recv() {
            out.push(match input {
                Input::Records(b) => {
                    let first = b.records().next().map_or(-1, |(o, _, _)| o);
                    format!("{}/{} from {first}: {}", b.topic, b.partition, b.len())
                }
                Input::Assignment(_) => "change".into(),
            });
        }
        out
    }

    fn raw<'a>(topic: &'a str, partition: i32, offset: i64, payload: &'a [u8]) -> RawRecord<'a> {
        RawRecord {
            topic,
            partition,
            offset,
            timestamp: None,
            payload,
        }
    }

    #[test]
    fn the_handover_splits_batches_by_partition_size_and_assignment_changes() {
        let (inputs, mut received) = mpsc::channel(BATCHES_QUEUED);
        let mut out = Handover::new(inputs);
        assert!(out.add(&raw("t", 0, 10, b"a")));
        assert!(out.add(&raw("t", 0, 11, b"b")));
        // Another partition: the batch so far is handed over first.
        assert!(out.add(&raw("t", 1, 5, b"c")));
        assert_eq!(sent(&mut received), vec!["t/0 from 10: 2"]);
        // An assignment change comes after the records read before it.
        assert!(out.send(Assignment::Revoked(vec![("t".into(), 0)])));
        assert_eq!(sent(&mut received), vec!["t/1 from 5: 1", "change"]);
        // A full batch is handed over as soon as it is full.
        for offset in 0..BATCH_RECORDS as i64 + 1 {
            assert!(out.add(&raw("u", 1, offset, b"x")));
        }
        assert_eq!(
            sent(&mut received),
            vec![format!("u/1 from 0: {BATCH_RECORDS}")]
        );
        assert!(out.hand_over());
        assert_eq!(
            sent(&mut received),
            vec![format!("u/1 from {BATCH_RECORDS}: 1")]
        );
        // Nothing left: handing over sends nothing.
        assert!(out.hand_over());
        assert!(sent(&mut received).is_empty());
        // The loop gone: a record is kept until it is handed over, and
        // handing it over then says so.
        drop(received);
        assert!(out.add(&raw("t", 2, 0, b"y")));
        assert!(!out.hand_over());
    }
}
