//! A Confluent-compatible schema registry stand-in, over real HTTP: schemas
//! registered under subjects get ids (the same schema, the same id), and
//! `GET /schemas/ids/{id}` serves them, 404 with error code 40403 for an id
//! it does not hold. It can be told to fail: every request answered 503, or
//! held without an answer (a registry that hangs), faults a real registry
//! cannot be asked to make.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Healthy,
    /// Every request answered 503.
    Unavailable,
    /// Every request held for a minute, then answered 503.
    Hanging,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    schemas: Vec<String>,
    requests: usize,
}

#[derive(Clone)]
pub struct RegistryStandIn {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

type Answer = (StatusCode, Json<Value>);

fn error(status: StatusCode, code: u32, message: &str) -> Answer {
    (
        status,
        Json(json!({"error_code": code, "message": message})),
    )
}

/// Counts the request and answers for the mode: `None` when healthy.
async fn fault(inner: &Arc<Mutex<Inner>>) -> Option<Answer> {
    let mode = {
        let mut inner = inner.lock().unwrap();
        inner.requests += 1;
        inner.mode
    };
    match mode {
        Mode::Healthy => None,
        Mode::Unavailable => Some(error(StatusCode::SERVICE_UNAVAILABLE, 50003, "unavailable")),
        Mode::Hanging => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Some(error(StatusCode::SERVICE_UNAVAILABLE, 50003, "late"))
        }
    }
}

async fn schema_by_id(State(inner): State<Arc<Mutex<Inner>>>, Path(id): Path<usize>) -> Answer {
    if let Some(answer) = fault(&inner).await {
        return answer;
    }
    let inner = inner.lock().unwrap();
    match id.checked_sub(1).and_then(|i| inner.schemas.get(i)) {
        Some(schema) => (StatusCode::OK, Json(json!({ "schema": schema }))),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

async fn register(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(_subject): Path<String>,
    Json(body): Json<Value>,
) -> Answer {
    if let Some(answer) = fault(&inner).await {
        return answer;
    }
    let Some(schema) = body["schema"].as_str() else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    };
    let mut inner = inner.lock().unwrap();
    (StatusCode::OK, Json(json!({ "id": inner.add(schema) })))
}

impl Inner {
    fn add(&mut self, schema: &str) -> usize {
        match self.schemas.iter().position(|s| s == schema) {
            Some(i) => i + 1,
            None => {
                self.schemas.push(schema.to_string());
                self.schemas.len()
            }
        }
    }
}

impl RegistryStandIn {
    pub async fn start() -> RegistryStandIn {
        let inner = Arc::new(Mutex::new(Inner {
            mode: Mode::Healthy,
            schemas: Vec::new(),
            requests: 0,
        }));
        let app = Router::new()
            .route("/schemas/ids/{id}", get(schema_by_id))
            .route("/subjects/{subject}/versions", post(register))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        RegistryStandIn { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Registers `schema` directly (as a producer would have) and returns its id.
    pub fn add(&self, schema: &str) -> u32 {
        self.inner.lock().unwrap().add(schema) as u32
    }

    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = mode;
    }

    /// Requests received so far, answered or not.
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests
    }
}
