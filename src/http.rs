//! The operations listener: `/metrics`, `/healthz` (alive) and `/readyz`
//! (Kafka assignment received and RESET authenticated).

use crate::metrics::Metrics;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What readiness is made of.
#[derive(Debug, Default)]
pub struct Readiness {
    pub kafka_assigned: AtomicBool,
    pub reset_authenticated: AtomicBool,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.kafka_assigned.load(Ordering::Relaxed)
            && self.reset_authenticated.load(Ordering::Relaxed)
    }
}

/// Serves until the task is dropped; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    metrics: Metrics,
    readiness: Arc<Readiness>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = Arc::clone(&readiness);
                async move {
                    if readiness.ready() {
                        (StatusCode::OK, "ready\n".to_string())
                    } else {
                        let why = format!(
                            "not ready: kafka_assigned={} reset_authenticated={}\n",
                            readiness.kafka_assigned.load(Ordering::Relaxed),
                            readiness.reset_authenticated.load(Ordering::Relaxed)
                        );
                        (StatusCode::SERVICE_UNAVAILABLE, why)
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "operations listener stopped");
        }
    });
    Ok((addr, task))
}
