//! The publisher: sends messages to RESET and reports each one's fate.
//!
//! - At most `max_in_flight` messages await an answer; `publish` waits for a
//!   permit when `max_queued` are already held, so memory stays bounded while
//!   RESET is slow or down.
//! - One message per monitor is in flight at a time, so a monitor's messages
//!   are acknowledged in the order they were published, retries included;
//!   monitors never wait for each other.
//! - `10500`, an ack timeout or a lost connection: the connection is dropped,
//!   unanswered messages go back to the front of their monitor's queue, and
//!   after an exponential backoff with jitter a fresh, authenticated
//!   connection re-sends them byte for byte.
//! - `10400`: the message is reported rejected with RESET's reason, and the
//!   monitor's next message goes on.
//! - `10401`: re-authentication; while the credentials are refused nothing is
//!   published and the publisher is not ready.

use super::connection::{Connection, ConnectionError, Reply};
use crate::config::Secret;
use rand::Rng;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
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
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// `monitors` or `readings`.
    pub event: &'static str,
    pub message_id: String,
    /// The JSON payload, exactly as built by the core.
    pub payload: String,
    /// Messages with the same key (the connection_id) are sent one after another.
    pub key: String,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Acknowledged,
    /// RESET refused it for good (10400), with its reason.
    Rejected {
        code: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub message_id: String,
    pub key: String,
    pub fate: Fate,
}

/// The publisher's connection state, for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Ready,
    /// RESET refuses the credentials: nothing is published.
    Unauthorized,
}

struct Pending {
    message: Outgoing,
    _permit: OwnedSemaphorePermit,
}

enum Command {
    Publish(Vec<Pending>),
    /// Finish what is queued, then stop; answers when done.
    Drain(oneshot::Sender<()>),
}

/// The caller's handle.
pub struct Publisher {
    commands: mpsc::UnboundedSender<Command>,
    permits: Arc<Semaphore>,
    status: watch::Receiver<Status>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Starts publishing; deliveries arrive on the returned receiver.
    pub fn start(settings: PublisherSettings) -> (Publisher, mpsc::UnboundedReceiver<Delivery>) {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (deliveries, deliveries_rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(Status::Connecting);
        let permits = Arc::new(Semaphore::new(settings.max_queued.max(1)));
        let worker = Worker {
            settings,
            commands: commands_rx,
            deliveries,
            status: status_tx,
            queues: HashMap::new(),
            ready: VecDeque::new(),
            busy: HashSet::new(),
            in_flight: HashMap::new(),
            failures: 0,
            drained: None,
            accepting: true,
        };
        let task = tokio::spawn(worker.run());
        let publisher = Publisher {
            commands,
            permits,
            status,
            task,
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
            let permit = match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    self.hand_over(&mut held);
                    Arc::clone(&self.permits)
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed")
                }
            };
            held.push(Pending {
                message,
                _permit: permit,
            });
        }
        self.hand_over(&mut held);
    }

    fn hand_over(&self, held: &mut Vec<Pending>) {
        if !held.is_empty() {
            let _ = self.commands.send(Command::Publish(std::mem::take(held)));
        }
    }

    pub fn status(&self) -> Status {
        *self.status.borrow()
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
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = self.commands.recv(), if self.accepting => match command {
                    Some(Command::Publish(held)) => held.into_iter().for_each(|p| self.enqueue(p)),
                    Some(Command::Drain(done)) => self.drained = Some(done),
                    None => self.accepting = false,
                },
                reply = replies.recv() => {
                    if let Some(trouble) = self.answer(reply.unwrap_or(Reply::Closed)) {
                        return Some(trouble);
                    }
                }
                _ = timeout => {
                    return Some(format!("no answer within {:?}", self.settings.ack_timeout));
                }
            }
        }
    }

    fn finished(&mut self) -> bool {
        let idle = self.in_flight.is_empty() && self.queues.is_empty();
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
            tracing::debug!(message_id = %m.message_id, event = m.event, "publish");
            let sent = connection.emit(m.event, &m.payload).await;
            self.busy.insert(key);
            let id = m.message_id.clone();
            let deadline = Instant::now() + self.settings.ack_timeout;
            self.in_flight.insert(id, InFlight { pending, deadline });
            sent?;
        }
        Ok(())
    }

    /// Handles one reply; `Some(reason)` when the connection must be replaced.
    fn answer(&mut self, reply: Reply) -> Option<String> {
        let code = reply.code().unwrap_or_default();
        let id = reply.message_id().map(str::to_string);
        match reply {
            Reply::Closed => Some("connection closed".into()),
            Reply::Auth(_) => None,
            Reply::Ack(_) => {
                self.settle(id.as_deref(), Fate::Acknowledged);
                self.failures = 0;
                None
            }
            Reply::Errors(body) if code == "10400" => {
                let reason = body
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                tracing::warn!(message_id = ?id, %reason, "RESET rejected a message (10400)");
                self.settle(id.as_deref(), Fate::Rejected { code, reason });
                None
            }
            Reply::Errors(_) if code == "10401" => {
                Some("RESET answered 10401: authenticating again".into())
            }
            Reply::Errors(_) => Some(format!(
                "RESET answered {code} for {}",
                id.unwrap_or_default()
            )),
        }
    }

    fn settle(&mut self, id: Option<&str>, fate: Fate) {
        // An answer for a message no longer in flight (a late duplicate) changes nothing.
        let Some(done) = id.and_then(|id| self.in_flight.remove(id)) else {
            return;
        };
        let message = done.pending.message;
        self.busy.remove(&message.key);
        if self.queues.contains_key(&message.key) {
            self.ready.push_back(message.key.clone());
        }
        let _ = self.deliveries.send(Delivery {
            message_id: message.message_id,
            key: message.key,
            fate,
        });
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
        self.busy.clear();
        self.ready = self.queues.keys().cloned().collect();
    }

    async fn backoff(&self) {
        let s = &self.settings;
        let exp = s.backoff_min.saturating_mul(1 << self.failures.min(16));
        let cap = exp.min(s.backoff_max);
        let wait = rand::rng().random_range(cap / 2..=cap);
        tokio::time::sleep(wait).await;
    }
}
