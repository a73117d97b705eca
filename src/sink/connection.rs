//! One authenticated Socket.IO connection to RESET's `/v2` namespace.
//!
//! `connect()` can return before the namespace is joined, and an `auth`
//! emitted then is lost, so `auth` waits for RESET to confirm the namespace
//! (at most one retry interval) and is a request with a timeout, repeated
//! until RESET answers. (With rust_socketio 0.6's `reconnect(false)` the
//! namespace was never joined here, so the client keeps its default. When
//! the library reconnects by itself, after a transport drop, it joins the
//! namespace again without `auth`: that second join is reported as the
//! connection's end, and the publisher replaces it with a fresh
//! `Connection::open`, which authenticates before anything is sent.)

use crate::causes::with_causes;
use crate::config::Secret;
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// The TLS settings of connections given none, with the system's roots,
/// built once per process. Without them the Socket.IO client builds its
/// own for each connection, even for an `http://` URL, and each build
/// parses the system's CA bundle.
fn system_tls() -> Option<native_tls::TlsConnector> {
    static TLS: OnceLock<Option<native_tls::TlsConnector>> = OnceLock::new();
    TLS.get_or_init(|| super::tls::connector(None).ok()).clone()
}

/// What RESET said.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Auth(Value),
    Ack(Value),
    Errors(Value),
    /// The connection closed.
    Closed,
}

impl Reply {
    /// The message id an `ack` or `errors` refers to (`message_id` or `id`).
    pub fn message_id(&self) -> Option<&str> {
        let body = match self {
            Reply::Ack(v) | Reply::Errors(v) => v,
            _ => return None,
        };
        body.get("message_id")
            .or_else(|| body.get("id"))
            .and_then(Value::as_str)
    }

    /// The `code` field, as RESET sends it (a string, sometimes a number).
    pub fn code(&self) -> Option<String> {
        let body = match self {
            Reply::Auth(v) | Reply::Ack(v) | Reply::Errors(v) => v,
            Reply::Closed => return None,
        };
        match body.get("code")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// Why a connection could not be used. Never carries the secret.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("RESET did not answer auth within {0:?}")]
    AuthTimeout(Duration),
    #[error("RESET refused the credentials of client {client_id:?} (code {code})")]
    Unauthorized { client_id: String, code: String },
    #[error("cannot send: {0}")]
    Send(String),
}

/// An authenticated connection and the replies it receives.
pub struct Connection {
    client: Client,
}

impl Connection {
    /// Connects to `url` + `namespace` and authenticates; `tls` is what
    /// an `https://` URL's server is checked against (`None`: the system's
    /// roots). There is no fallback to plain text.
    pub async fn open(
        url: &str,
        namespace: &str,
        client_id: &str,
        client_secret: &Secret,
        auth_timeout: Duration,
        tls: Option<&native_tls::TlsConnector>,
    ) -> Result<(Connection, mpsc::UnboundedReceiver<Reply>), ConnectionError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let forward = |make: fn(Value) -> Reply, tx: mpsc::UnboundedSender<Reply>| {
            move |payload: Payload, _: Client| {
                let tx = tx.clone();
                async move {
                    if let Payload::Text(values) = payload {
                        for v in values {
                            let _ = tx.send(make(v));
                        }
                    }
                }
                .boxed()
            }
        };
        let closed = tx.clone();
        let rejoined = tx.clone();
        let joined_before = Arc::new(AtomicBool::new(false));
        // Told when RESET confirms the namespace: an `auth` emitted before
        // that is lost and only sent again after the retry interval.
        let joined = Arc::new(Notify::new());
        let on_joined = Arc::clone(&joined);
        let mut builder = ClientBuilder::new(url);
        if let Some(tls) = tls.cloned().or_else(system_tls) {
            builder = builder.tls_config(tls);
        }
        let client = builder
            .namespace(namespace)
            .on("auth", forward(Reply::Auth, tx.clone()))
            .on("ack", forward(Reply::Ack, tx.clone()))
            .on("errors", forward(Reply::Errors, tx))
            .on(Event::Connect, move |_: Payload, _: Client| {
                // The first join is this connection's; a later one is the
                // library's own reconnect, unauthenticated.
                if joined_before.swap(true, Ordering::Relaxed) {
                    let _ = rejoined.send(Reply::Closed);
                } else {
                    on_joined.notify_one();
                }
                async {}.boxed()
            })
            .on("close", move |_: Payload, _: Client| {
                let closed = closed.clone();
                async move {
                    let _ = closed.send(Reply::Closed);
                }
                .boxed()
            })
            .connect()
            .await
            // The client's own error says only "EngineIO Error" for a
            // certificate that cannot be verified: its causes say why.
            .map_err(|e| ConnectionError::Connect {
                url: url.to_string(),
                reason: with_causes(&e),
            })?;
        let connection = Connection { client };
        let auth = json!({ "client_id": client_id, "client_secret": client_secret.expose() });
        let deadline = tokio::time::Instant::now() + auth_timeout;
        let retry_every = Duration::from_millis(250).min(auth_timeout);
        // At most one retry interval: without the confirmation, `auth` is
        // sent and repeated as before.
        let _ = tokio::time::timeout(retry_every, joined.notified()).await;
        loop {
            // Until the namespace is joined, emitting fails: that is a retry, not an error.
            if let Err(e) = connection.emit_value("auth", auth.clone()).await {
                if tokio::time::Instant::now() >= deadline {
                    let _ = connection.client.disconnect().await;
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let wait = tokio::time::sleep(retry_every);
            tokio::pin!(wait);
            let answer = loop {
                tokio::select! {
                    reply = rx.recv() => match reply {
                        Some(r @ Reply::Auth(_)) => break Some(r),
                        Some(Reply::Closed) | None => {
                            return Err(ConnectionError::Connect { url: url.to_string(), reason: "closed during auth".into() })
                        }
                        Some(_) => continue,
                    },
                    _ = &mut wait => break None,
                }
            };
            match answer {
                Some(reply) if reply.code().as_deref() == Some("10200") => {
                    return Ok((connection, rx));
                }
                Some(reply) => {
                    let _ = connection.client.disconnect().await;
                    return Err(ConnectionError::Unauthorized {
                        client_id: client_id.to_string(),
                        code: reply.code().unwrap_or_default(),
                    });
                }
                None if tokio::time::Instant::now() >= deadline => {
                    let _ = connection.client.disconnect().await;
                    return Err(ConnectionError::AuthTimeout(auth_timeout));
                }
                None => continue,
            }
        }
    }

    async fn emit_value(&self, event: &str, value: Value) -> Result<(), ConnectionError> {
        self.send(event, Payload::Text(vec![value])).await
    }

    async fn send(&self, event: &str, payload: Payload) -> Result<(), ConnectionError> {
        self.client
            .emit(event, payload)
            .await
            .map_err(|e| ConnectionError::Send(e.to_string()))
    }

    /// Emits a payload that is already JSON text, exactly as built by the core.
    ///
    /// rust_socketio's `Payload::String` (deprecated in favour of `Text`)
    /// puts valid JSON text into the packet as it is, where `Text` would
    /// parse it into a `Value` and serialize it again: the bytes sent are the
    /// core's, and the publisher does a third of the work per message.
    pub async fn emit(&self, event: &str, payload: &str) -> Result<(), ConnectionError> {
        if serde_json::from_str::<serde::de::IgnoredAny>(payload).is_err() {
            return Err(ConnectionError::Send("payload is not JSON".into()));
        }
        #[allow(deprecated)]
        let payload = Payload::String(payload.to_string());
        self.send(event, payload).await
    }

    pub async fn close(self) {
        let _ = self.client.disconnect().await;
    }
}
