//! The publisher's book of messages: which wait, per monitor and in order;
//! which are in flight; which wait for a retry; and each one's fate as
//! answers and deadlines come. No I/O and no clock: the worker in
//! `publisher.rs` sends what `send_next` gives it and passes the time in.

use super::code::ResetCode;
use super::connection::Reply;
use super::publisher::{Delivery, Fate, Outgoing, PublisherSettings};
use crate::payload::EventName;
use rand::Rng;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// Counts the messages held, from `publish` until their answer; wakes a
/// waiting `publish` when one is answered.
#[derive(Clone, Default)]
pub(super) struct HeldCount {
    count: Arc<AtomicUsize>,
    pub(super) room: Arc<Notify>,
}

/// One held message's share of the count, given back on drop.
pub(super) struct Held(HeldCount);

impl HeldCount {
    pub(super) fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub(super) fn take(&self) -> Held {
        self.count.fetch_add(1, Ordering::AcqRel);
        Held(self.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.room.notify_waiters();
    }
}

/// A message and its history so far.
pub(super) struct Pending {
    message: Outgoing,
    _held: Held,
    /// Error answers that may pass (10500) so far.
    refusals: u32,
    resends: u32,
    /// Whether it was ever written to a connection.
    written: bool,
}

impl Pending {
    pub(super) fn new(message: Outgoing, held: Held) -> Pending {
        Pending {
            message,
            _held: held,
            refusals: 0,
            resends: 0,
            written: false,
        }
    }
}

/// A message waiting to be sent again; its monitor stays busy meanwhile.
struct Retry {
    due: Instant,
    pending: Pending,
}

/// A message sent and not answered yet.
struct InFlight {
    pending: Pending,
    sent: Instant,
    deadline: Instant,
}

/// The settings the ledger decides by.
struct Limits {
    ack_timeout: Duration,
    max_in_flight: usize,
    max_attempts: u32,
    backoff_min: Duration,
    backoff_max: Duration,
}

pub(super) struct Ledger {
    limits: Limits,
    deliveries: mpsc::UnboundedSender<Delivery>,
    /// Waiting messages, per key, in publishing order.
    queues: HashMap<String, VecDeque<Pending>>,
    /// Keys with a waiting message and nothing in flight.
    ready: VecDeque<String>,
    /// Keys with a message in flight.
    busy: HashSet<String>,
    in_flight: HashMap<String, InFlight>,
    /// Messages waiting to be sent again after an error answer.
    retries: Vec<Retry>,
    /// RESET's acknowledgements so far.
    acks: u64,
    /// Keys whose messages RESET has refused (10500) since it had
    /// acknowledged this many messages, with no answer of another kind to
    /// them since: more acknowledgements than that mean RESET accepts
    /// others, and the key's messages may be given up.
    refused_since: HashMap<String, u64>,
    /// When the connection last said anything.
    last_reply: Instant,
    unmatched: Arc<AtomicU64>,
    /// Consecutive connection failures, for the backoff.
    failures: u32,
}

impl Ledger {
    pub fn new(
        settings: &PublisherSettings,
        deliveries: mpsc::UnboundedSender<Delivery>,
        unmatched: Arc<AtomicU64>,
        now: Instant,
    ) -> Ledger {
        Ledger {
            limits: Limits {
                ack_timeout: settings.ack_timeout,
                max_in_flight: settings.max_in_flight,
                max_attempts: settings.max_attempts,
                backoff_min: settings.backoff_min,
                backoff_max: settings.backoff_max,
            },
            deliveries,
            queues: HashMap::new(),
            ready: VecDeque::new(),
            busy: HashSet::new(),
            in_flight: HashMap::new(),
            retries: Vec::new(),
            acks: 0,
            refused_since: HashMap::new(),
            last_reply: now,
            unmatched,
            failures: 0,
        }
    }

    /// Nothing waits, is in flight or waits for a retry.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty() && self.queues.is_empty() && self.retries.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When the first message in flight is overdue.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight.values().map(|f| f.deadline).min()
    }

    /// When the first retry is due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.iter().map(|r| r.due).min()
    }

    /// The next message to send, taken as in flight from `now`: the first
    /// ready monitor's first message, while fewer than `max_in_flight` are.
    pub fn send_next(&mut self, now: Instant) -> Option<&Outgoing> {
        if self.in_flight.len() >= self.limits.max_in_flight {
            return None;
        }
        let key = self.ready.pop_front()?;
        let queue = self.queues.get_mut(&key).expect("ready keys have a queue");
        let pending = queue.pop_front().expect("ready keys have a message");
        if queue.is_empty() {
            self.queues.remove(&key);
        }
        self.busy.insert(key);
        let id = pending.message.message_id.clone();
        let flight = InFlight {
            pending,
            sent: now,
            deadline: now + self.limits.ack_timeout,
        };
        Some(
            &self
                .in_flight
                .entry(id)
                .insert_entry(flight)
                .into_mut()
                .pending
                .message,
        )
    }

    /// The in-flight message `id` was written to the connection: the
    /// message, the first time.
    pub fn written(&mut self, id: &str) -> Option<&Outgoing> {
        let pending = &mut self.in_flight.get_mut(id)?.pending;
        (!std::mem::replace(&mut pending.written, true)).then_some(&pending.message)
    }

    /// The connection failed (again): how long to wait before the next.
    pub fn connection_failed(&mut self) -> Duration {
        self.failures += 1;
        self.backoff_for(self.failures)
    }

    pub fn enqueue(&mut self, pending: Pending) {
        let key = pending.message.key.clone();
        let queue = self.queues.entry(key.clone()).or_default();
        queue.push_back(pending);
        if queue.len() == 1 && !self.busy.contains(&key) {
            self.ready.push_back(key);
        }
    }

    /// Handles one reply; `Some(reason)` when the connection must be replaced.
    pub fn answer(&mut self, reply: Reply, now: Instant) -> Option<String> {
        if reply == Reply::Closed {
            return Some("connection closed".into());
        }
        self.last_reply = now;
        let code = ResetCode::parse(reply.code().as_deref());
        let id = reply.message_id().map(str::to_string);
        let body = match reply {
            Reply::Auth(_) | Reply::Closed => return None,
            // An `ack` without a code is an acknowledgement.
            Reply::Ack(_) if code == ResetCode::Accepted => {
                self.acks += 1;
                self.failures = 0;
                self.settle(id.as_deref(), Fate::Acknowledged);
                return None;
            }
            Reply::Ack(body) | Reply::Errors(body) => body,
        };
        let reason = body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match code {
            ResetCode::Unauthorized => Some("RESET answered 10401: authenticating again".into()),
            ResetCode::BadRequest => {
                tracing::warn!(message_id = ?id, %reason, "RESET rejected a message (10400)");
                self.settle(id.as_deref(), Fate::Rejected { code, reason });
                None
            }
            _ => {
                self.refused(id.as_deref(), code, reason, now);
                None
            }
        }
    }

    /// RESET answered an error that may pass (10500): the message is sent
    /// again later, alone, or given up.
    fn refused(&mut self, id: Option<&str>, code: ResetCode, reason: String, now: Instant) {
        let Some(flight) = id.and_then(|id| self.in_flight.remove(id)) else {
            self.unmatched_answer(id, code.as_str());
            return;
        };
        let mut pending = flight.pending;
        pending.refusals += 1;
        let since = *self
            .refused_since
            .entry(pending.message.key.clone())
            .or_insert(self.acks);
        let accepted_others = self.acks > since;
        if pending.refusals >= self.limits.max_attempts && accepted_others {
            tracing::warn!(
                message_id = %pending.message.message_id,
                %code,
                %reason,
                attempts = pending.refusals,
                "RESET keeps refusing a message while it accepts others: giving it up"
            );
            self.deliver(pending, Fate::GaveUp { code, reason });
            return;
        }
        tracing::debug!(message_id = %pending.message.message_id, %code, refusals = pending.refusals, "sending again later");
        let due = now + self.backoff_for(pending.refusals);
        self.retries.push(Retry { due, pending });
    }

    /// Messages whose answer is overdue. When the connection said anything
    /// since one was sent, that one alone is sent again; when it said
    /// nothing at all, the connection is taken for dead.
    pub fn timed_out(&mut self, now: Instant) -> Option<String> {
        let overdue: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in overdue {
            let flight = &self.in_flight[&id];
            if self.last_reply <= flight.sent {
                return Some(format!("no answer within {:?}", self.limits.ack_timeout));
            }
            let flight = self.in_flight.remove(&id).expect("overdue is in flight");
            tracing::debug!(message_id = %id, "no answer in time: sending again");
            self.retries.push(Retry {
                due: now,
                pending: flight.pending,
            });
        }
        None
    }

    /// Retries that are due go to the front of their monitor's queue.
    pub fn retry_due(&mut self, now: Instant) {
        let (due, waiting): (Vec<Retry>, Vec<Retry>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| r.due <= now);
        self.retries = waiting;
        for retry in due {
            let mut pending = retry.pending;
            pending.resends += 1;
            let key = pending.message.key.clone();
            self.queues
                .entry(key.clone())
                .or_default()
                .push_front(pending);
            self.busy.remove(&key);
            self.ready.push_front(key);
        }
    }

    fn unmatched_answer(&mut self, id: Option<&str>, code: &str) {
        if self.unmatched.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(message_id = ?id, code, "an answer of RESET names no message in flight (logged once; counted)");
        }
    }

    fn settle(&mut self, id: Option<&str>, fate: Fate) {
        // An answer for a message no longer in flight (a late duplicate) changes nothing.
        let Some(done) = id.and_then(|id| self.in_flight.remove(id)) else {
            self.unmatched_answer(id, "");
            return;
        };
        self.deliver(done.pending, fate);
    }

    /// Reports a message's fate; its monitor's next message may go.
    fn deliver(&mut self, pending: Pending, fate: Fate) {
        // No longer held once its fate is told: `Publisher::held` counts it
        // out before the delivery reaches the caller.
        let Pending {
            message,
            resends,
            _held: held,
            ..
        } = pending;
        drop(held);
        if !matches!(fate, Fate::GaveUp { .. }) {
            self.refused_since.remove(&message.key);
        }
        self.busy.remove(&message.key);
        if self.queues.contains_key(&message.key) {
            self.ready.push_back(message.key.clone());
        }
        let refused_payload = (fate != Fate::Acknowledged).then_some(message.payload);
        let _ = self.deliveries.send(Delivery {
            message_id: message.message_id,
            key: message.key,
            fate,
            resends,
            refused_payload,
        });
    }

    /// Drops the `readings` messages with these ids that wait, queued or
    /// for a retry; those in flight are answered as usual. No delivery is
    /// reported. `monitors` messages are sent all the same: the caller
    /// counts a monitor as announced once it handed its message over, and
    /// its later readings must not reach RESET before it.
    pub fn cancel(&mut self, ids: &HashSet<String>) {
        let cancelled =
            |m: &Outgoing| m.event == EventName::Readings && ids.contains(&m.message_id);
        for queue in self.queues.values_mut() {
            queue.retain(|p| !cancelled(&p.message));
        }
        self.queues.retain(|_, q| !q.is_empty());
        let (cancelled, waiting): (Vec<Retry>, Vec<Retry>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| cancelled(&r.pending.message));
        self.retries = waiting;
        for retry in cancelled {
            self.busy.remove(&retry.pending.message.key);
        }
        self.rebuild_ready();
    }

    /// Unanswered messages go back to the front of their key's queue.
    pub fn requeue_in_flight(&mut self) {
        for (_, flight) in self.in_flight.drain() {
            let key = flight.pending.message.key.clone();
            self.queues
                .entry(key)
                .or_default()
                .push_front(flight.pending);
        }
        // Monitors whose message waits for a retry stay busy: their later
        // messages must not overtake it.
        self.busy = self
            .retries
            .iter()
            .map(|r| r.pending.message.key.clone())
            .collect();
        self.rebuild_ready();
    }

    /// Every key with a waiting message and nothing in flight or waiting
    /// for a retry is ready.
    fn rebuild_ready(&mut self) {
        self.ready = self
            .queues
            .keys()
            .filter(|k| !self.busy.contains(*k))
            .cloned()
            .collect();
    }

    /// An exponential backoff with jitter: between half and all of
    /// `backoff_min` × 2^`failures`, at most `backoff_max`.
    fn backoff_for(&self, failures: u32) -> Duration {
        let s = &self.limits;
        let exp = s.backoff_min.saturating_mul(1 << failures.min(16));
        let cap = exp.min(s.backoff_max);
        rand::rng().random_range(cap / 2..=cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use serde_json::json;

    const TIMEOUT: Duration = Duration::from_secs(30);

    struct Book {
        ledger: Ledger,
        deliveries: mpsc::UnboundedReceiver<Delivery>,
        held: HeldCount,
        unmatched: Arc<AtomicU64>,
        now: Instant,
    }

    fn book(max_in_flight: usize, max_attempts: u32) -> Book {
        let mut settings = PublisherSettings::new("http://reset", "id", Secret::new("s"));
        settings.ack_timeout = TIMEOUT;
        settings.max_in_flight = max_in_flight;
        settings.max_attempts = max_attempts;
        settings.backoff_min = Duration::from_millis(100);
        settings.backoff_max = Duration::from_secs(10);
        let (tx, deliveries) = mpsc::unbounded_channel();
        let unmatched = Arc::new(AtomicU64::new(0));
        let now = Instant::now();
        Book {
            ledger: Ledger::new(&settings, tx, Arc::clone(&unmatched), now),
            deliveries,
            held: HeldCount::default(),
            unmatched,
            now,
        }
    }

    fn message(key: &str, id: &str) -> Outgoing {
        Outgoing {
            event: EventName::Readings,
            message_id: id.into(),
            payload: format!("{{\"message_id\":\"{id}\"}}"),
            key: key.into(),
            readings: 1,
        }
    }

    fn ack(id: &str) -> Reply {
        Reply::Ack(json!({"code": "10200", "message_id": id}))
    }

    fn error(code: &str, id: &str) -> Reply {
        Reply::Errors(json!({"code": code, "message_id": id, "message": "try later"}))
    }

    impl Book {
        fn publish(&mut self, key: &str, id: &str) {
            let pending = Pending::new(message(key, id), self.held.take());
            self.ledger.enqueue(pending);
        }

        /// The ids sent now, as many as may be.
        fn send(&mut self) -> Vec<String> {
            let mut sent = Vec::new();
            while let Some(m) = self.ledger.send_next(self.now) {
                sent.push(m.message_id.clone());
            }
            sent
        }

        fn answer(&mut self, reply: Reply) -> Option<String> {
            self.ledger.answer(reply, self.now)
        }

        /// Moves the clock to the first retry and takes the retries due.
        fn until_retry(&mut self) {
            self.now = self.ledger.next_retry().expect("a retry waits");
            self.ledger.retry_due(self.now);
        }

        fn delivered(&mut self) -> Vec<(String, Fate)> {
            std::iter::from_fn(|| self.deliveries.try_recv().ok())
                .map(|d| (d.message_id, d.fate))
                .collect()
        }
    }

    #[test]
    fn a_message_is_first_written_once_whatever_sends_it_again() {
        let mut b = book(16, 3);
        b.publish("A", "a1");
        assert_eq!(b.send(), ["a1"]);
        // Taken but not written (the connection failed under it): not yet.
        b.ledger.requeue_in_flight();
        assert_eq!(b.send(), ["a1"]);
        let first = b.ledger.written("a1").map(|m| m.message_id.clone());
        assert_eq!(first.as_deref(), Some("a1"));
        assert!(b.ledger.written("a1").is_none(), "written before");
        // Sent again on a new connection, and after an error answer.
        b.ledger.requeue_in_flight();
        assert_eq!(b.send(), ["a1"]);
        assert!(b.ledger.written("a1").is_none());
        assert_eq!(b.answer(error("10500", "a1")), None);
        b.until_retry();
        assert_eq!(b.send(), ["a1"]);
        assert!(b.ledger.written("a1").is_none());
        assert!(b.ledger.written("unknown").is_none());
    }

    #[test]
    fn a_message_reset_keeps_refusing_is_given_up_only_while_it_accepts_others() {
        let mut b = book(16, 3);
        b.publish("poison", "p1");
        b.publish("poison", "p2");
        b.publish("good", "g1");
        assert_eq!(b.send(), ["p1", "g1"]);
        assert_eq!(b.answer(error("10500", "p1")), None);
        assert_eq!(b.answer(ack("g1")), None, "RESET accepts another message");
        for attempt in 2..=3 {
            assert!(
                b.send().is_empty(),
                "p1 waits for its backoff, p2 behind it"
            );
            b.until_retry();
            assert_eq!(b.send(), ["p1"], "attempt {attempt}: p1 alone again");
            assert_eq!(b.answer(error("10500", "p1")), None);
        }
        let delivered = b.delivered();
        assert_eq!(delivered[0], ("g1".to_string(), Fate::Acknowledged));
        assert!(
            matches!(&delivered[1], (id, Fate::GaveUp { code, .. }) if id == "p1" && *code == "10500"),
            "{delivered:?}"
        );
        assert_eq!(b.send(), ["p2"], "the monitor's next message goes on");
        assert_eq!(b.held.get(), 1, "only p2 is still held");
    }

    #[test]
    fn while_reset_accepts_nothing_nothing_is_given_up() {
        let mut b = book(16, 3);
        b.publish("a", "a1");
        b.publish("b", "b1");
        assert_eq!(b.send(), ["a1", "b1"]);
        for _ in 0..10 {
            b.answer(error("10500", "a1"));
            b.answer(error("10500", "b1"));
            while b.ledger.next_retry().is_some() {
                b.until_retry();
            }
            let mut sent = b.send();
            sent.sort();
            assert_eq!(sent, ["a1", "b1"]);
        }
        assert!(
            b.delivered().is_empty(),
            "given up while nothing was accepted"
        );
        // Once RESET accepts one of them, the other may be given up.
        b.answer(ack("b1"));
        b.answer(error("10500", "a1"));
        assert!(
            matches!(&b.delivered()[..], [(_, Fate::Acknowledged), (id, Fate::GaveUp { .. })] if id == "a1")
        );
    }

    #[test]
    fn an_ack_carrying_an_error_code_is_that_error_and_a_10400_is_rejected_for_good() {
        let mut b = book(16, 10);
        b.publish("a", "a1");
        b.publish("a", "a2");
        b.publish("b", "b1");
        b.send();
        b.answer(Reply::Ack(json!({"code": "10500", "message_id": "a1"})));
        assert_eq!(b.answer(error("10400", "b1")), None);
        let delivered = b.delivered();
        assert!(
            matches!(&delivered[..], [(id, Fate::Rejected { reason, .. })] if id == "b1" && reason == "try later"),
            "{delivered:?}"
        );
        b.until_retry();
        assert_eq!(b.send(), ["a1"], "a1 is sent again before a2");
        b.answer(ack("a1"));
        assert_eq!(b.send(), ["a2"]);
    }

    #[test]
    fn an_overdue_answer_resends_that_message_alone_unless_the_connection_went_silent() {
        let mut b = book(16, 10);
        b.publish("a", "a1");
        b.publish("b", "b1");
        b.send();
        b.now += Duration::from_secs(1);
        b.answer(ack("b1"));
        b.now += TIMEOUT;
        assert_eq!(
            b.ledger.timed_out(b.now),
            None,
            "the connection answered since a1 left"
        );
        b.ledger.retry_due(b.now);
        assert_eq!(b.send(), ["a1"]);
        // Nothing heard at all since a1 was sent again: the connection is dead.
        b.now += TIMEOUT;
        assert!(b.ledger.timed_out(b.now).is_some());
        b.ledger.requeue_in_flight();
        assert_eq!(b.send(), ["a1"], "re-sent on the next connection");
    }

    #[test]
    fn unanswered_messages_go_first_on_the_next_connection_and_no_monitor_overtakes_a_retry() {
        let mut b = book(2, 10);
        for id in ["a1", "a2", "b1", "c1"] {
            b.publish(&id[..1], id);
        }
        assert_eq!(
            b.send(),
            ["a1", "b1"],
            "two in flight at most, one per monitor"
        );
        b.answer(error("10500", "b1"));
        assert_eq!(b.send(), ["c1"]);
        assert_eq!(b.answer(Reply::Closed), Some("connection closed".into()));
        b.ledger.requeue_in_flight();
        let mut sent = b.send();
        sent.sort();
        assert_eq!(sent, ["a1", "c1"], "b1 waits for its retry, a2 behind a1");
        b.answer(ack("a1"));
        b.answer(ack("c1"));
        assert_eq!(b.send(), ["a2"]);
        b.until_retry();
        assert_eq!(b.send(), ["b1"]);
    }

    #[test]
    fn answers_naming_no_message_in_flight_settle_nothing_and_are_counted() {
        let mut b = book(16, 10);
        b.publish("a", "a1");
        b.send();
        b.answer(Reply::Ack(json!({"code": "10200"})));
        b.answer(ack("zzz"));
        b.answer(error("10500", "zzz"));
        assert_eq!(b.unmatched.load(Ordering::Relaxed), 3);
        assert!(b.delivered().is_empty());
        b.answer(ack("a1"));
        b.answer(ack("a1"));
        assert_eq!(b.delivered().len(), 1, "a late duplicate changes nothing");
        assert_eq!(b.unmatched.load(Ordering::Relaxed), 4);
        assert!(b.ledger.is_idle());
    }

    #[test]
    fn cancelled_readings_are_dropped_unsent_and_monitor_messages_still_go() {
        let mut b = book(16, 10);
        b.publish("a", "a1");
        b.publish("a", "a2");
        let mut announce = message("a", "m3");
        announce.event = EventName::Monitors;
        b.ledger.enqueue(Pending::new(announce, b.held.take()));
        b.publish("b", "b1");
        assert_eq!(b.send(), ["a1", "b1"]);
        b.answer(error("10500", "b1"));
        let ids = ["a1", "a2", "m3", "b1"].map(String::from).into();
        b.ledger.cancel(&ids);
        b.answer(ack("a1"));
        assert_eq!(b.send(), ["m3"], "a2 and b1's retry are dropped, m3 goes");
        assert!(b.ledger.next_retry().is_none());
        assert_eq!(b.held.get(), 1);
    }

    #[test]
    fn connection_backoff_grows_within_its_jitter_and_an_ack_resets_it() {
        let mut b = book(16, 10);
        let waits: Vec<Duration> = (0..12).map(|_| b.ledger.connection_failed()).collect();
        for (failures, wait) in (1u32..).zip(&waits) {
            let cap =
                (Duration::from_millis(100) * 2u32.pow(failures)).min(Duration::from_secs(10));
            assert!(
                *wait >= cap / 2 && *wait <= cap,
                "failure {failures}: {wait:?}"
            );
        }
        b.publish("a", "a1");
        b.send();
        b.answer(ack("a1"));
        assert!(b.ledger.connection_failed() <= Duration::from_millis(200));
    }
}
