//! Operations on the live path: `/readyz` is not ready until RESET has
//! authenticated the pipeline, and `/metrics` (parsed as Prometheus text)
//! moved by exactly what the run implies.

#[macro_use]
mod common;
use common::kafka::*;
use reset_pipeline::emulator::{serve, EmulatorOptions};
use reset_pipeline::synthetic::fleet;
use std::sync::Arc;
use std::time::Duration;

async fn get(addr: &str, path: &str) -> (u16, String) {
    http_get(addr, path).unwrap_or_default()
}

on_both_brokers!(readiness_follows_authentication_and_counters_match_the_run);

async fn readiness_follows_authentication_and_counters_match_the_run(kind: BrokerKind) {
    let broker = Broker::start(
        kind,
        &[
            ("sensor-events", 3),
            ("reset-pipeline.progress", 1),
            ("sensor-events.dlq", 1),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(fleet(20));
    write_monitors(&registry, &dir.path().join("monitors.yaml"));
    let events = samples(&registry, 4, 120 * 3);
    let count = events.len();
    let expected = expected_rows(&registry, &events);
    produce_to(&broker.bootstrap, events).await;

    // RESET is not there yet: the pipeline is alive but not ready.
    let reset_port = free_port();
    let http = format!("127.0.0.1:{}", free_port());
    let config = write_config(
        dir.path(),
        &broker.bootstrap,
        format!("127.0.0.1:{reset_port}").parse().unwrap(),
        "",
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("listen: 127.0.0.1:0", &format!("listen: {http}"));
    std::fs::write(&config, text).unwrap();
    let pipeline = Pipeline::start(&config, &dir.path().join("pipeline.log"));
    assert!(
        wait_until(Duration::from_secs(30), || std::net::TcpStream::connect(
            &http
        )
        .is_ok())
        .await
    );
    assert_eq!(get(&http, "/healthz").await.0, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = get(&http, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("reset_authenticated=false"), "{body}");

    let emulator = serve(
        format!("127.0.0.1:{reset_port}").parse().unwrap(),
        EmulatorOptions::default(),
    )
    .await
    .unwrap();
    let mut ready = false;
    for _ in 0..150 {
        if get(&http, "/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "ready once RESET authenticated the pipeline");
    let state = Arc::clone(&emulator.state);
    assert!(
        wait_until(Duration::from_secs(120), || state
            .lock()
            .unwrap()
            .readings
            .len()
            >= expected.len())
        .await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (_, text) = get(&http, "/metrics").await;
    let m = scrape(&text);
    let value = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
    let messages = emulator.state.lock().unwrap().stats.acked as f64;
    assert_eq!(
        value("reset_pipeline_records_consumed_total{}"),
        count as f64
    );
    assert_eq!(
        value("reset_pipeline_records_decoded_total{}"),
        count as f64
    );
    assert_eq!(
        value("reset_pipeline_windows_closed_total{}"),
        expected.len() as f64
    );
    assert_eq!(
        value("reset_pipeline_readings_sent_total{}"),
        expected.len() as f64
    );
    assert_eq!(value("reset_pipeline_answers_total{code=10200}"), messages);
    assert_eq!(value("reset_pipeline_in_flight_messages{}"), 0.0);
    assert_eq!(value("reset_pipeline_open_windows{}"), 0.0);
    assert_eq!(value("reset_pipeline_rejects_total{reason=late}"), 0.0);
    assert!(!text.contains("connection_id"), "no connection_id labels");
    assert!(pipeline.terminate().success());
}
