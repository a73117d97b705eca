//! A librdkafka queue of a reader's own (the live group's reading thread,
//! `replay`), which every assigned partition's records are forwarded to, so that they can be taken many at a
//! time (`rd_kafka_consume_batch_queue`) instead of one event per poll.
//! rdkafka's safe API has no batch read, nor a way to see the watermarks
//! the consumer last heard of (`cached_watermarks`); this module holds the
//! only unsafe code of the crate, and each block says why it is sound.

use crate::kafka::group_reader::GroupContext;
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::sync::Arc;

/// The queue, and the consumer it belongs to: librdkafka's queue must be
/// destroyed before the consumer's handle, which holding the consumer here
/// guarantees.
pub struct RecordQueue<C: ConsumerContext + 'static = GroupContext> {
    queue: NonNull<rd::rd_kafka_queue_t>,
    consumer: Arc<BaseConsumer<C>>,
}

// SAFETY: librdkafka queues are thread-safe (every operation takes the
// queue's lock); the pointer is only used through librdkafka's functions.
unsafe impl<C: ConsumerContext> Send for RecordQueue<C> {}
unsafe impl<C: ConsumerContext> Sync for RecordQueue<C> {}

/// One record taken from the queue; it is given back to librdkafka on drop.
pub struct Taken(NonNull<rd::rd_kafka_message_t>);

impl Taken {
    fn message(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: librdkafka handed the message over and it lives until
        // `rd_kafka_message_destroy`, which only `drop` calls.
        unsafe { self.0.as_ref() }
    }

    /// The record as read, or the error librdkafka put in its place.
    pub fn record(&self) -> Result<RawRecord<'_>, KafkaError> {
        let m = self.message();
        if m.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(KafkaError::MessageConsumption(RDKafkaErrorCode::from(
                m.err,
            )));
        }
        // SAFETY: a consumed message without error has its topic handle set,
        // and the topic's name lives as long as the handle, which the
        // message keeps.
        let topic = unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(m.rkt)) }
            .to_str()
            .unwrap_or("");
        let payload = if m.payload.is_null() {
            &[][..]
        } else {
            // SAFETY: `payload` points to `len` bytes owned by the message.
            unsafe { std::slice::from_raw_parts(m.payload as *const u8, m.len) }
        };
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: the message is valid (see `message`), and `kind` is a
        // place for librdkafka to write the timestamp's type.
        let timestamp = unsafe { rd::rd_kafka_message_timestamp(self.0.as_ptr(), &mut kind) };
        Ok(RawRecord {
            topic,
            partition: m.partition,
            offset: m.offset,
            timestamp: (timestamp >= 0).then_some(timestamp),
            payload,
        })
    }
}

/// A record as librdkafka handed it over, borrowed from it.
pub struct RawRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Its Kafka timestamp, epoch milliseconds (`None`: the broker has none).
    pub timestamp: Option<i64>,
    /// Empty when null.
    pub payload: &'a [u8],
}

impl Drop for Taken {
    fn drop(&mut self) {
        // SAFETY: the message came from `rd_kafka_consume_batch_queue` and is
        // destroyed once, here.
        unsafe { rd::rd_kafka_message_destroy(self.0.as_ptr()) }
    }
}

impl<C: ConsumerContext> RecordQueue<C> {
    pub fn new(consumer: Arc<BaseConsumer<C>>) -> RecordQueue<C> {
        // SAFETY: the consumer's handle is valid while `consumer` is held.
        let queue = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        RecordQueue {
            queue: NonNull::new(queue).expect("librdkafka creates a queue"),
            consumer,
        }
    }

    /// Sends the partition's records here from now on. Called before the
    /// partition is assigned, so that none of its records reach the
    /// consumer's own queue; librdkafka stops the forwarding when the
    /// partition is revoked. False when librdkafka does not know the topic.
    pub fn forward(&self, topic: &str, partition: i32) -> bool {
        let Ok(topic) = CString::new(topic) else {
            return false;
        };
        // SAFETY: the handle is valid (`self.consumer`); the partition queue
        // returned is a new reference, destroyed right after forwarding,
        // which librdkafka keeps on the partition itself.
        unsafe {
            let rk = self.consumer.client().native_ptr();
            let source = rd::rd_kafka_queue_get_partition(rk, topic.as_ptr(), partition);
            if source.is_null() {
                return false;
            }
            rd::rd_kafka_queue_forward(source, self.queue.as_ptr());
            rd::rd_kafka_queue_destroy(source);
        }
        true
    }

    /// Takes up to `max` records into `out`, waiting at most `timeout_ms`
    /// for the first; returns how many were taken.
    pub fn take(&self, timeout_ms: i32, max: usize, out: &mut Vec<Taken>) -> usize {
        let mut pointers: Vec<*mut rd::rd_kafka_message_t> = Vec::with_capacity(max);
        // SAFETY: `pointers` has room for `max` pointers, and librdkafka
        // writes at most that many; the count it returns is how many it wrote.
        let n = unsafe {
            let n = rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout_ms,
                pointers.as_mut_ptr(),
                max,
            );
            let n = n.max(0) as usize;
            pointers.set_len(n);
            n
        };
        out.extend(pointers.into_iter().filter_map(NonNull::new).map(Taken));
        n
    }
}

impl<C: ConsumerContext> Drop for RecordQueue<C> {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_queue_new` and destroyed once, here,
        // before `self.consumer` (and so possibly the handle) is dropped.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// The low and high watermarks of a partition as the consumer last heard
/// them from the broker (the high one comes with every fetch answer): no
/// request is made, so this answers at once even when the broker does not.
/// `None` until the broker has told them.
pub fn cached_watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the handle is valid while `consumer` is borrowed, `topic` is a
    // NUL-terminated string that outlives the call, and librdkafka only
    // writes the two offsets it is given.
    let err = unsafe {
        rd::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some((low, high))
}
