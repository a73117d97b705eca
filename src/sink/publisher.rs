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
//!
//! Those decisions are the ledger's (`ledger.rs`, no I/O, no clock, unit
//! tested); the worker here connects, sends what the ledger gives it,
//! waits for answers, deadlines and retries, and passes the time in.

use super::code::ResetCode;
use super::connection::{Connection, ConnectionError, Reply};
use super::ledger::{HeldCount, Ledger, Pending};
use crate::config::Secret;
use crate::payload::EventName;
use crate::pipeline::Emission;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
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
    /// Told of each message the first time it is written to a connection.
    pub on_first_send: FirstSend,
}

/// What to do when a message is written to RESET's connection for the first
/// time (re-sends are not told): the caller's count of messages sent.
#[derive(Clone, Default)]
pub struct FirstSend(Option<Arc<Tell>>);

type Tell = dyn Fn(&Outgoing) + Send + Sync;

impl FirstSend {
    pub fn new(tell: impl Fn(&Outgoing) + Send + Sync + 'static) -> FirstSend {
        FirstSend(Some(Arc::new(tell)))
    }

    fn tell(&self, message: &Outgoing) {
        if let Some(tell) = &self.0 {
            tell(message)
        }
    }
}

impl std::fmt::Debug for FirstSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "FirstSend(told)"
        } else {
            "FirstSend(none)"
        })
    }
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
            on_first_send: FirstSend::default(),
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
    /// The readings it holds (none in a `monitors` message).
    pub readings: usize,
}

impl From<Emission> for Outgoing {
    /// A message of the core, as the publisher sends it: keyed by its monitor.
    fn from(emission: Emission) -> Outgoing {
        let event = emission.event();
        let key = emission.connection_id().to_string();
        let readings = match &emission {
            Emission::Readings(b) => b.ends.len(),
            Emission::Monitor { .. } => 0,
        };
        let (message_id, payload) = emission.into_parts();
        Outgoing {
            event,
            message_id,
            payload,
            key,
            readings,
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
        let ledger = Ledger::new(
            &settings,
            deliveries,
            Arc::clone(&unmatched),
            Instant::now(),
        );
        let worker = Worker {
            settings,
            commands: commands_rx,
            status: status_tx,
            ledger,
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
        Pending::new(message, self.held.take())
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

struct Worker {
    settings: PublisherSettings,
    commands: mpsc::UnboundedReceiver<Command>,
    status: watch::Sender<Status>,
    ledger: Ledger,
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
                    tracing::warn!(%reason, unanswered = self.ledger.in_flight(), "RESET connection dropped; re-sending on a fresh connection");
                    self.ledger.requeue_in_flight();
                    tokio::time::sleep(self.ledger.connection_failed()).await;
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
            tokio::time::sleep(self.ledger.connection_failed()).await;
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
            let deadline = self.ledger.next_deadline();
            let retry_due = self.ledger.next_retry();
            tokio::select! {
                command = self.commands.recv(), if self.accepting => match command {
                    Some(Command::Publish(held)) => held.into_iter().for_each(|p| self.ledger.enqueue(p)),
                    Some(Command::Cancel(ids)) => self.ledger.cancel(&ids),
                    Some(Command::Drain(done)) => self.drained = Some(done),
                    None => self.accepting = false,
                },
                reply = replies.recv() => {
                    let reply = reply.unwrap_or(Reply::Closed);
                    if let Some(trouble) = self.ledger.answer(reply, Instant::now()) {
                        return Some(trouble);
                    }
                }
                _ = sleep_until(deadline) => {
                    if let Some(trouble) = self.ledger.timed_out(Instant::now()) {
                        return Some(trouble);
                    }
                }
                _ = sleep_until(retry_due) => self.ledger.retry_due(Instant::now()),
            }
        }
    }

    fn finished(&mut self) -> bool {
        if self.ledger.is_idle() && (self.drained.is_some() || !self.accepting) {
            if let Some(done) = self.drained.take() {
                let _ = done.send(());
            }
            return true;
        }
        false
    }

    async fn dispatch(&mut self, connection: &Connection) -> Result<(), ConnectionError> {
        while let Some(m) = self.ledger.send_next(Instant::now()) {
            tracing::debug!(message_id = %m.message_id, event = m.event.as_str(), "publish");
            connection.emit(m.event.as_str(), &m.payload).await?;
            let id = m.message_id.clone();
            if let Some(first) = self.ledger.written(&id) {
                self.settings.on_first_send.tell(first);
            }
        }
        Ok(())
    }
}

/// Sleeps until `at`, or for ever when there is no such instant.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
