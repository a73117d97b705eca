//! The publisher: sends messages to RESET and reports each one's fate.
//!
//! - At most `max_in_flight` messages await an answer. `publish` waits
//!   while `max_queued` are held (unanswered), so memory stays bounded while
//!   RESET is slow or down; `offer` never waits, and a caller that must not
//!   block (the live loop) watches `is_full` and stops reading instead.
//! - One message per monitor is in flight at a time, so a monitor's messages
//!   are acknowledged in the order they were published, retries included;
//!   monitors never wait for each other.
//! - Every message has a fate of its own. `10500` (or any code but 10200,
//!   10400 and 10401, in an `errors` or an `ack`): that message alone is
//!   sent again, byte for byte, on the same connection, after a jittered
//!   exponential backoff; its monitor's later messages wait for it. After
//!   `max_attempts` such answers, provided RESET accepted some other message
//!   since it began refusing this monitor's, the message is given up
//!   (`Fate::GaveUp`, for the dead-letter topic). While RESET accepts
//!   nothing, nothing is given up.
//! - An ack timeout: the message alone is sent again, unless the connection
//!   said nothing at all since it was sent; then the connection is taken
//!   for dead, as when it closes: unanswered messages go back to the front
//!   of their monitor's queue and a fresh, authenticated connection re-sends
//!   them after a backoff.
//! - `10400`: the message is reported rejected with RESET's reason, and the
//!   monitor's next message goes on.
//! - `10401`: re-authentication; while the credentials are refused nothing is
//!   published and the publisher is not ready.
//! - An answer without a usable message id settles nothing; it is logged
//!   once and counted (`Publisher::unmatched_answers`).

use super::code::ResetCode;
use super::connection::{Connection, ConnectionError, Reply};
use crate::config::Secret;
use crate::payload::EventName;
use crate::pipeline::Emission;
use rand::Rng;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    pub url: String,
    pub namespace: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub ack_timeout: Duration,
    pub max_in_flight: usize,
    /// Messages accepted from the caller but not yet answered, at most.
    pub max_queued: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// `10500` answers to one message (while RESET accepts others) before it is given up.
    pub max_attempts: u32,
    /// What RESET's certificate is checked against (`None`: the system's roots).
    pub tls: Option<native_tls::TlsConnector>,
}

impl PublisherSettings {
    pub fn new(url: &str, client_id: &str, client_secret: Secret) -> PublisherSettings {
        PublisherSettings {
            url: url.to_string(),
            namespace: "/v2".into(),
            client_id: client_id.to_string(),
            client_secret,
            ack_timeout: Duration::from_secs(30),
            max_in_flight: 16,
            max_queued: 1024,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            max_attempts: 10,
            tls: None,
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub event: EventName,
    pub message_id: String,
    /// The JSON payload, exactly as built by the core.
    pub payload: String,
    /// Messages with the same key (the connection_id) are sent one after another.
    pub key: String,
}

impl From<Emission> for Outgoing {
    /// A message of the core, as the publisher sends it: keyed by its monitor.
    fn from(emission: Emission) -> Outgoing {
        let event = emission.event();
        let key = emission.connection_id().to_string();
        let (message_id, payload) = emission.into_parts();
        Outgoing {
            event,
            message_id,
            payload,
            key,
        }
    }
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Acknowledged,
    /// RESET refused it for good (10400), with its reason.
    Rejected {
        code: ResetCode,
        reason: String,
    },
    /// RESET kept answering an error (10500) that may pass: given up after
    /// `max_attempts` while it accepted other messages.
    GaveUp {
        code: ResetCode,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub message_id: String,
    pub key: String,
    pub fate: Fate,
    /// Times it was sent again after an error answer or an ack timeout on a
    /// live connection (re-sends after a lost connection are not counted).
    pub resends: u32,
    /// The payload, when RESET refused the message (for the dead letter).
    pub refused_payload: Option<String>,
}

/// The publisher's connection state, for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Ready,
    /// RESET refuses the credentials: nothing is published.
    Unauthorized,
}

/// Counts the messages held, from `publish` until their answer; wakes a
/// waiting `publish` when one is answered.
#[derive(Clone, Default)]
struct HeldCount {
    count: Arc<AtomicUsize>,
    room: Arc<Notify>,
}

/// One held message's share of the count, given back on drop.
struct Held(HeldCount);

impl HeldCount {
    fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    fn take(&self) -> Held {
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

struct Pending {
    message: Outgoing,
    _held: Held,
    /// Error answers that may pass (10500) so far.
    refusals: u32,
    resends: u32,
}

/// A message waiting to be sent again; its monitor stays busy meanwhile.
struct Retry {
    due: Instant,
    pending: Pending,
}

enum Command {
    Publish(Vec<Pending>),
    /// Drop these messages if they still wait (their partition moved away).
    Cancel(HashSet<String>),
    /// Finish what is queued, then stop; answers when done.
    Drain(oneshot::Sender<()>),
}

/// The caller's handle.
pub struct Publisher {
    commands: mpsc::UnboundedSender<Command>,
    held: HeldCount,
    max_queued: usize,
    status: watch::Receiver<Status>,
    task: tokio::task::JoinHandle<()>,
    unmatched: Arc<AtomicU64>,
}

impl Publisher {
    /// Starts publishing; deliveries arrive on the returned receiver.
    pub fn start(settings: PublisherSettings) -> (Publisher, mpsc::UnboundedReceiver<Delivery>) {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (deliveries, deliveries_rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(Status::Connecting);
        let max_queued = settings.max_queued.max(1);
        let unmatched = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            settings,
            commands: commands_rx,
            deliveries,
            status: status_tx,
            queues: HashMap::new(),
            ready: VecDeque::new(),
            busy: HashSet::new(),
            in_flight: HashMap::new(),
            retries: Vec::new(),
            acks: 0,
            refused_since: HashMap::new(),
            last_reply: Instant::now(),
            unmatched: Arc::clone(&unmatched),
            failures: 0,
            drained: None,
            accepting: true,
        };
        let task = tokio::spawn(worker.run());
        let publisher = Publisher {
            commands,
            held: HeldCount::default(),
            max_queued,
            status,
            task,
            unmatched,
        };
        (publisher, deliveries_rx)
    }

    /// Queues a message, waiting while `max_queued` messages are unanswered.
    pub async fn publish(&self, message: Outgoing) {
        self.publish_all([message]).await;
    }

    /// Queues messages in order, waiting while `max_queued` messages are
    /// unanswered. They are handed to the worker together (one wake-up for
    /// a burst of closed windows), except that what is held is handed over
    /// before waiting for room.
    pub async fn publish_all(&self, messages: impl IntoIterator<Item = Outgoing>) {
        let mut held = Vec::new();
        for message in messages {
            if self.is_full() {
                self.hand_over(&mut held);
                self.room().await;
            }
            held.push(self.pending(message));
        }
        self.hand_over(&mut held);
    }

    /// Queues messages in order without waiting, even past `max_queued`:
    /// for a caller that watches `is_full` and holds back its input instead.
    pub fn offer_all(&self, messages: impl IntoIterator<Item = Outgoing>) {
        let mut held: Vec<Pending> = messages.into_iter().map(|m| self.pending(m)).collect();
        self.hand_over(&mut held);
    }

    /// Drops the `readings` messages with these ids that are not sent yet
    /// (queued, or waiting for a retry): their partition moved to another
    /// owner, which sends them itself. Nothing is delivered for them.
    pub fn cancel(&self, ids: HashSet<String>) {
        if !ids.is_empty() {
            let _ = self.commands.send(Command::Cancel(ids));
        }
    }

    /// Messages queued and not answered yet.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// Whether `max_queued` messages or more are unanswered.
    pub fn is_full(&self) -> bool {
        self.held() >= self.max_queued
    }

    /// The most messages held before `is_full`.
    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// Resolves when fewer than `max_queued` messages are held.
    async fn room(&self) {
        loop {
            let answered = self.held.room.notified();
            if !self.is_full() {
                return;
            }
            answered.await;
        }
    }

    fn pending(&self, message: Outgoing) -> Pending {
        Pending {
            message,
            _held: self.held.take(),
            refusals: 0,
            resends: 0,
        }
    }

    fn hand_over(&self, held: &mut Vec<Pending>) {
        if !held.is_empty() {
            let _ = self.commands.send(Command::Publish(std::mem::take(held)));
        }
    }

    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// Answers that named no message in flight (no usable id, or one that
    /// was already settled), so far.
    pub fn unmatched_answers(&self) -> u64 {
        self.unmatched.load(Ordering::Relaxed)
    }

    /// A receiver of status changes (for readiness probes).
    pub fn status_watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits until everything published so far is answered, or `timeout`;
    /// then stops. Returns whether everything was answered.
    pub async fn drain(self, timeout: Duration) -> bool {
        let (done_tx, done_rx) = oneshot::channel();
        let _ = self.commands.send(Command::Drain(done_tx));
        let finished = tokio::time::timeout(timeout, done_rx).await.is_ok();
        self.task.abort();
        finished
    }
}

struct InFlight {
    pending: Pending,
    sent: Instant,
    deadline: Instant,
}

struct Worker {
    settings: PublisherSettings,
    commands: mpsc::UnboundedReceiver<Command>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    status: watch::Sender<Status>,
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
    drained: Option<oneshot::Sender<()>>,
    accepting: bool,
}

impl Worker {
    async fn run(mut self) {
        loop {
            let (connection, mut replies) = match self.connect().await {
                Some(c) => c,
                None => return,
            };
            let trouble = self.serve(&connection, &mut replies).await;
            connection.close().await;
            match trouble {
                None => return,
                Some(reason) => {
                    self.failures += 1;
                    tracing::warn!(%reason, unanswered = self.in_flight.len(), "RESET connection dropped; re-sending on a fresh connection");
                    self.requeue_in_flight();
                    self.backoff().await;
                }
            }
        }
    }

    /// Connects and authenticates, retrying with backoff; `None` when asked to stop.
    async fn connect(&mut self) -> Option<(Connection, mpsc::UnboundedReceiver<Reply>)> {
        loop {
            if self.finished() {
                return None;
            }
            let s = &self.settings;
            let auth_timeout = s.ack_timeout.max(Duration::from_secs(1));
            match Connection::open(
                &s.url,
                &s.namespace,
                &s.client_id,
                &s.client_secret,
                auth_timeout,
                s.tls.as_ref(),
            )
            .await
            {
                Ok(c) => {
                    let _ = self.status.send(Status::Ready);
                    tracing::info!(url = %s.url, "authenticated at RESET");
                    return Some(c);
                }
                Err(e @ ConnectionError::Unauthorized { .. }) => {
                    let _ = self.status.send(Status::Unauthorized);
                    tracing::error!(error = %e, "RESET refuses the credentials: publishing stopped until they work");
                }
                Err(e) => {
                    let _ = self.status.send(Status::Connecting);
                    tracing::warn!(error = %e, "cannot reach RESET");
                }
            }
            self.failures += 1;
            self.backoff().await;
        }
    }

    /// Sends and collects answers until the connection is in trouble (`Some(reason)`)
    /// or everything is drained (`None`).
    async fn serve(
        &mut self,
        connection: &Connection,
        replies: &mut mpsc::UnboundedReceiver<Reply>,
    ) -> Option<String> {
        loop {
            if let Err(e) = self.dispatch(connection).await {
                return Some(e.to_string());
            }
            if self.finished() {
                return None;
            }
            let deadline = self.in_flight.values().map(|f| f.deadline).min();
            let retry_due = self.retries.iter().map(|r| r.due).min();
            tokio::select! {
                command = self.commands.recv(), if self.accepting => match command {
                    Some(Command::Publish(held)) => held.into_iter().for_each(|p| self.enqueue(p)),
                    Some(Command::Cancel(ids)) => self.cancel(&ids),
                    Some(Command::Drain(done)) => self.drained = Some(done),
                    None => self.accepting = false,
                },
                reply = replies.recv() => {
                    if let Some(trouble) = self.answer(reply.unwrap_or(Reply::Closed)) {
                        return Some(trouble);
                    }
                }
                _ = sleep_until(deadline) => {
                    if let Some(trouble) = self.timed_out() {
                        return Some(trouble);
                    }
                }
                _ = sleep_until(retry_due) => self.retry_due(),
            }
        }
    }

    fn finished(&mut self) -> bool {
        let idle = self.in_flight.is_empty() && self.queues.is_empty() && self.retries.is_empty();
        if idle && (self.drained.is_some() || !self.accepting) {
            if let Some(done) = self.drained.take() {
                let _ = done.send(());
            }
            return true;
        }
        false
    }

    fn enqueue(&mut self, pending: Pending) {
        let key = pending.message.key.clone();
        let queue = self.queues.entry(key.clone()).or_default();
        queue.push_back(pending);
        if queue.len() == 1 && !self.busy.contains(&key) {
            self.ready.push_back(key);
        }
    }

    async fn dispatch(&mut self, connection: &Connection) -> Result<(), ConnectionError> {
        while self.in_flight.len() < self.settings.max_in_flight {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let queue = self.queues.get_mut(&key).expect("ready keys have a queue");
            let pending = queue.pop_front().expect("ready keys have a message");
            if queue.is_empty() {
                self.queues.remove(&key);
            }
            let m = &pending.message;
            tracing::debug!(message_id = %m.message_id, event = m.event.as_str(), "publish");
            let sent = connection.emit(m.event.as_str(), &m.payload).await;
            self.busy.insert(key);
            let id = m.message_id.clone();
            let sent_at = Instant::now();
            let deadline = sent_at + self.settings.ack_timeout;
            self.in_flight.insert(
                id,
                InFlight {
                    pending,
                    sent: sent_at,
                    deadline,
                },
            );
            sent?;
        }
        Ok(())
    }

    /// Handles one reply; `Some(reason)` when the connection must be replaced.
    fn answer(&mut self, reply: Reply) -> Option<String> {
        if reply == Reply::Closed {
            return Some("connection closed".into());
        }
        self.last_reply = Instant::now();
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
                self.refused(id.as_deref(), code, reason);
                None
            }
        }
    }

    /// RESET answered an error that may pass (10500): the message is sent
    /// again later, alone, or given up.
    fn refused(&mut self, id: Option<&str>, code: ResetCode, reason: String) {
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
        if pending.refusals >= self.settings.max_attempts && accepted_others {
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
        let due = Instant::now() + self.backoff_for(pending.refusals);
        self.retries.push(Retry { due, pending });
    }

    /// Messages whose answer is overdue. When the connection said anything
    /// since one was sent, that one alone is sent again; when it said
    /// nothing at all, the connection is taken for dead.
    fn timed_out(&mut self) -> Option<String> {
        let now = Instant::now();
        let overdue: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in overdue {
            let flight = &self.in_flight[&id];
            if self.last_reply <= flight.sent {
                return Some(format!("no answer within {:?}", self.settings.ack_timeout));
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
    fn retry_due(&mut self) {
        let now = Instant::now();
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
    fn cancel(&mut self, ids: &HashSet<String>) {
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
    fn requeue_in_flight(&mut self) {
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
        let s = &self.settings;
        let exp = s.backoff_min.saturating_mul(1 << failures.min(16));
        let cap = exp.min(s.backoff_max);
        rand::rng().random_range(cap / 2..=cap)
    }

    async fn backoff(&self) {
        tokio::time::sleep(self.backoff_for(self.failures)).await;
    }
}

/// Sleeps until `at`, or for ever when there is no such instant.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
