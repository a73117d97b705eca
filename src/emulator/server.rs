//! The emulator's server: socketioxide on axum. What it accepted is kept in
//! memory and shown as JSON at `GET /state`.

use super::rules::{check_monitors, check_readings, message_id, KnownMonitor};
use crate::config::Secret;
use axum::routing::get;
use axum::Json;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::SocketIo;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    pub client_id: String,
    pub client_secret: Secret,
    /// Fraction of messages answered with `10500` (and not stored).
    pub fail_rate: f64,
    /// Fraction of stored messages whose `ack` is never sent.
    pub drop_ack_rate: f64,
    /// Delay before each `ack`.
    pub ack_delay: Duration,
    /// Drop the connection at every N-th message (unprocessed); 0 never.
    pub disconnect_every: u64,
    /// Seed of the misbehaviour dice, for repeatable runs; random when absent.
    pub seed: Option<u64>,
    /// Every message of this connection_id is answered `10500` (and not stored).
    pub poison_connection_id: Option<String>,
    /// Serve TLS (only) with this certificate and key.
    pub tls: Option<super::TlsFiles>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            client_id: "demo".into(),
            client_secret: Secret::new("demo"),
            fail_rate: 0.0,
            drop_ack_rate: 0.0,
            ack_delay: Duration::ZERO,
            disconnect_every: 0,
            seed: None,
            poison_connection_id: None,
            tls: None,
        }
    }
}

/// Counters of what the emulator saw.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EmulatorStats {
    pub auth_ok: u64,
    pub auth_failed: u64,
    pub messages: u64,
    pub acked: u64,
    pub acks_dropped: u64,
    pub errors_10400: u64,
    pub errors_10401: u64,
    pub errors_10500: u64,
    pub disconnects: u64,
    /// A message id seen again with the same bytes.
    pub identical_resends: u64,
    /// A message id seen again with different bytes: must never happen.
    pub conflicting_resends: u64,
    /// A window received again with a different value: must never happen.
    pub changed_readings: u64,
    /// A window received again inside another message: must never happen.
    pub regrouped_readings: u64,
    /// An answer that could not be queued to its client: must never happen.
    pub answers_unsent: u64,
    /// A `create` for a monitor RESET holds, under a new message id.
    pub refused_creates: u64,
}

/// What the emulator holds.
#[derive(Debug)]
pub struct EmulatorState {
    pub monitors: HashMap<String, KnownMonitor>,
    /// Accepted rows by (connection_id, reading instant).
    pub readings: BTreeMap<(String, i64), Value>,
    /// The first payload accepted under each message id.
    pub payloads: HashMap<String, Value>,
    /// The message each accepted row came in.
    pub row_messages: HashMap<(String, i64), String>,
    /// Each monitor's accepted `monitors` messages, in order: (message_type, message_id).
    pub monitor_messages: BTreeMap<String, Vec<(String, String)>>,
    pub stats: EmulatorStats,
    /// A test's switch: every message is taken as usual, and its ack is
    /// lost on the way (RESET holds what the sender cannot know it holds).
    pub acks_lost: bool,
    dice: StdRng,
}

impl EmulatorState {
    fn new(seed: Option<u64>) -> EmulatorState {
        EmulatorState {
            monitors: HashMap::new(),
            readings: BTreeMap::new(),
            payloads: HashMap::new(),
            row_messages: HashMap::new(),
            monitor_messages: BTreeMap::new(),
            stats: EmulatorStats::default(),
            acks_lost: false,
            dice: seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64),
        }
    }

    /// The `/state` view: monitors, readings in order, counters.
    pub fn to_json(&self) -> Value {
        let monitors: BTreeMap<&String, &Value> =
            self.monitors.iter().map(|(k, m)| (k, &m.data)).collect();
        let readings: Vec<&Value> = self.readings.values().collect();
        json!({
            "monitors": monitors,
            "monitor_messages": self.monitor_messages,
            "readings": readings,
            "stats": self.stats,
        })
    }
}

/// A running emulator.
pub struct EmulatorHandle {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<EmulatorState>>,
    task: tokio::task::JoinHandle<()>,
}

impl EmulatorHandle {
    pub fn stop(self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    options: Arc<EmulatorOptions>,
    state: Arc<Mutex<EmulatorState>>,
}

#[derive(Clone)]
struct Authenticated;

/// Answers a connection can have queued for sending, at most.
const ANSWER_BUFFER: usize = 65_536;

/// Sends an answer; one that cannot be queued is logged and counted.
fn send_answer(socket: &SocketRef, shared: &Shared, event: &str, body: &Value) {
    if let Err(e) = socket.emit(event, body) {
        tracing::warn!(error = %e, event, "an answer could not be sent");
        shared
            .state
            .lock()
            .expect("state lock")
            .stats
            .answers_unsent += 1;
    }
}

/// Starts the emulator on `listen` (port 0 for any free port).
pub async fn serve(
    listen: SocketAddr,
    options: EmulatorOptions,
) -> std::io::Result<EmulatorHandle> {
    let shared = Shared {
        state: Arc::new(Mutex::new(EmulatorState::new(options.seed))),
        options: Arc::new(options),
    };
    // socketioxide drops a packet when a connection's outgoing buffer is full
    // (128 by default): a client with many messages in flight lost answers.
    let (layer, io) = SocketIo::builder()
        .max_payload(16 << 20)
        .max_buffer_size(ANSWER_BUFFER)
        .build_layer();
    let on_connect = shared.clone();
    io.ns("/v2", move |socket: SocketRef| {
        let shared = on_connect.clone();
        async move { attach(socket, shared) }
    });
    let state_view = Arc::clone(&shared.state);
    let app = axum::Router::new()
        .route(
            "/state",
            get(move || {
                let state = Arc::clone(&state_view);
                async move { Json(state.lock().expect("state lock").to_json()) }
            }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = match &shared.options.tls {
        None => tokio::spawn(serve_on(listener, app)),
        Some(files) => tokio::spawn(serve_on(
            super::tls::TlsListener::new(listener, files)?,
            app,
        )),
    };
    Ok(EmulatorHandle {
        addr,
        state: shared.state,
        task,
    })
}

async fn serve_on<L>(listener: L, app: axum::Router)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "emulator server stopped");
    }
}

/// The first argument of an event, or why there is none to use: none at
/// all, a binary attachment, or JSON nested deeper than can be read. Every
/// event gets an answer either way, as RESET's would.
type Argument = Result<Value, String>;

fn argument(data: Result<Value, socketioxide::ParserError>) -> Argument {
    match data {
        Ok(Value::Null) => Err("the event carries no argument".into()),
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err("the event's argument is not a JSON object".into()),
        Err(e) => Err(format!("the event's argument cannot be read: {e}")),
    }
}

fn attach(socket: SocketRef, shared: Shared) {
    let auth = shared.clone();
    socket.on(
        "auth",
        move |socket: SocketRef, TryData(data): TryData<Value>| {
            let shared = auth.clone();
            async move { on_auth(&socket, &shared, &argument(data)) }
        },
    );
    for event in ["monitors", "readings"] {
        let shared = shared.clone();
        socket.on(
            event,
            move |socket: SocketRef, TryData(data): TryData<Value>| {
                let shared = shared.clone();
                async move { on_message(socket, shared, event, argument(data)).await }
            },
        );
    }
}

/// Answers `auth`; a failed one closes the connection, as RESET's document
/// says (after the answer).
fn on_auth(socket: &SocketRef, shared: &Shared, data: &Argument) {
    let given = |k: &str| {
        data.as_ref()
            .ok()
            .and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    // Both must be given: an emulator started with an empty secret accepts
    // no `auth` without one.
    let ok = given("client_id") == shared.options.client_id
        && given("client_secret") == shared.options.client_secret.expose()
        && !shared.options.client_id.is_empty()
        && !given("client_secret").is_empty();
    let mut state = shared.state.lock().expect("state lock");
    let reply = if ok {
        state.stats.auth_ok += 1;
        socket.extensions.insert(Authenticated);
        json!({"code": "10200", "message": "Authentication succeeded.", "api_version": "v2"})
    } else {
        state.stats.auth_failed += 1;
        socket.extensions.remove::<Authenticated>();
        json!({"code": "10401", "message": "Authentication failed.", "api_version": "v2"})
    };
    drop(state);
    send_answer(socket, shared, "auth", &reply);
    if !ok {
        let _ = socket.clone().disconnect();
    }
}

/// What to answer a message with, decided under the state lock.
enum Answer {
    Ack,
    DropAck,
    Error(&'static str, String),
    Disconnect,
}

async fn on_message(socket: SocketRef, shared: Shared, event: &'static str, data: Argument) {
    let id = data.as_ref().ok().and_then(message_id).unwrap_or_default();
    let answer = decide(&socket, &shared, event, data, &id);
    match answer {
        Answer::Disconnect => {
            let _ = socket.disconnect();
        }
        Answer::DropAck => {}
        Answer::Error(code, message) => {
            let body = json!({"code": code, "message": message, "id": id});
            send_answer(&socket, &shared, "errors", &body);
        }
        Answer::Ack => {
            if !shared.options.ack_delay.is_zero() {
                tokio::time::sleep(shared.options.ack_delay).await;
            }
            // Both shapes occur at RESET: `message_id` (monitors) and `id` (readings).
            let ack = if event == "monitors" {
                json!({"code": "10200", "ack": true, "message_id": id, "api_version": "v2"})
            } else {
                json!({"code": "10200", "ack": true, "id": id})
            };
            send_answer(&socket, &shared, "ack", &ack);
        }
    }
}

fn decide(socket: &SocketRef, shared: &Shared, event: &str, data: Argument, id: &str) -> Answer {
    let options = &shared.options;
    let mut state = shared.state.lock().expect("state lock");
    let state = &mut *state;
    if socket.extensions.get::<Authenticated>().is_none() {
        state.stats.errors_10401 += 1;
        return Answer::Error("10401", "Unauthorized access: authenticate first.".into());
    }
    let data = match data {
        Ok(data) => data,
        Err(reason) => {
            state.stats.errors_10400 += 1;
            return Answer::Error("10400", reason);
        }
    };
    state.stats.messages += 1;
    if options.disconnect_every > 0
        && state
            .stats
            .messages
            .is_multiple_of(options.disconnect_every)
    {
        state.stats.disconnects += 1;
        return Answer::Disconnect;
    }
    let poisoned = options
        .poison_connection_id
        .as_deref()
        .is_some_and(|poison| data["data"]["connection_id"].as_str() == Some(poison));
    if poisoned || options.fail_rate > 0.0 && state.dice.random_bool(options.fail_rate.min(1.0)) {
        state.stats.errors_10500 += 1;
        return Answer::Error("10500", "Internal Server Error.".into());
    }
    // A message id seen before: its payload must be the same, byte for byte
    // (both as parsed and written again, so key order counts).
    match state.payloads.get(id) {
        Some(first) if serde_json::to_vec(first).ok() == serde_json::to_vec(&data).ok() => {
            // A re-send of an accepted message: acknowledge it again.
            state.stats.identical_resends += 1;
        }
        Some(_) => {
            state.stats.conflicting_resends += 1;
            state.stats.errors_10400 += 1;
            return Answer::Error(
                "10400",
                format!("message_id {id:?} was used for other content"),
            );
        }
        None => {
            let checked = if event == "monitors" {
                let verb = data["message_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let held = data["data"]["connection_id"]
                    .as_str()
                    .is_some_and(|c| state.monitors.contains_key(c));
                let checked = check_monitors(&data, &state.monitors).map(|change| {
                    state
                        .monitor_messages
                        .entry(change.connection_id.clone())
                        .or_default()
                        .push((verb.clone(), id.to_string()));
                    state.monitors.insert(change.connection_id, change.monitor);
                });
                if checked.is_err() && verb == "create" && held {
                    state.stats.refused_creates += 1;
                }
                checked
            } else {
                check_readings(&data, &state.monitors).map(|accepted| {
                    for (instant, row) in accepted.rows {
                        let key = (accepted.connection_id.clone(), instant);
                        if state.readings.get(&key).is_some_and(|old| *old != row) {
                            state.stats.changed_readings += 1;
                        }
                        if state
                            .row_messages
                            .get(&key)
                            .is_some_and(|first| first != id)
                        {
                            state.stats.regrouped_readings += 1;
                        }
                        state.row_messages.insert(key.clone(), id.to_string());
                        state.readings.insert(key, row);
                    }
                })
            };
            if let Err(reason) = checked {
                state.stats.errors_10400 += 1;
                return Answer::Error("10400", reason);
            }
            state.payloads.insert(id.to_string(), data);
        }
    }
    let lost = state.acks_lost
        || (options.drop_ack_rate > 0.0 && state.dice.random_bool(options.drop_ack_rate.min(1.0)));
    if lost {
        state.stats.acks_dropped += 1;
        return Answer::DropAck;
    }
    state.stats.acked += 1;
    Answer::Ack
}
