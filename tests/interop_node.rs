//! Interoperability with the reference Socket.IO server (node's `socket.io`
//! v4, installed from npm by this test when missing): the publisher
//! authenticates, and every message arrives intact and is acknowledged.

mod common;
use common::sample_emissions;
use reset_pipeline::config::Secret;
use reset_pipeline::sink::{Fate, Outgoing, Publisher, PublisherSettings};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn node_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node"))
}

fn ensure_socket_io() {
    if node_dir().join("node_modules/socket.io").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund"])
        .current_dir(node_dir())
        .status()
        .expect("npm runs");
    assert!(status.success(), "npm install of socket.io failed");
}

#[tokio::test]
async fn the_reference_socket_io_server_receives_and_acknowledges_everything() {
    ensure_socket_io();
    let mut server = Command::new("node")
        .arg("reset_server.js")
        .current_dir(node_dir())
        .env("RESET_CLIENT_ID", "interop")
        .env("RESET_CLIENT_SECRET", "interop-secret")
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port: u16 = first
        .strip_prefix("listening ")
        .expect("server starts")
        .parse()
        .unwrap();
    let received = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());

    let mut settings = PublisherSettings::new(
        &format!("http://127.0.0.1:{port}"),
        "interop",
        Secret::new("interop-secret"),
    );
    settings.ack_timeout = Duration::from_secs(5);
    let (publisher, mut rx) = Publisher::start(settings);
    let emissions = sample_emissions();
    for (event, payload) in &emissions {
        let v: Value = serde_json::from_str(payload).unwrap();
        publisher
            .publish(Outgoing {
                event: if event == "monitors" {
                    reset_pipeline::payload::EventName::Monitors
                } else {
                    reset_pipeline::payload::EventName::Readings
                },
                message_id: v["message_id"].as_str().unwrap().into(),
                payload: payload.clone(),
                key: v["data"]["connection_id"].as_str().unwrap().into(),
                readings: v["data"]["readings"].as_array().map_or(0, Vec::len),
            })
            .await;
    }
    for _ in &emissions {
        let d = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.fate, Fate::Acknowledged, "{}", d.message_id);
    }
    assert!(publisher.drain(Duration::from_secs(5)).await);
    server.kill().unwrap();
    server.wait().unwrap();
    let received = received.join().unwrap();
    assert_eq!(received.len(), emissions.len());
    // Monitors go concurrently; each one's messages arrive in order, intact.
    let parsed: Vec<Value> = received
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let per_monitor = |messages: &[Value]| {
        let mut by: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for m in messages {
            let id = m["payload"]["data"]["connection_id"]
                .as_str()
                .unwrap()
                .to_string();
            by.entry(id).or_default().push(m.clone());
        }
        by
    };
    let sent: Vec<Value> = emissions
        .iter()
        .map(|(event, payload)| serde_json::json!({"event": event, "payload": serde_json::from_str::<Value>(payload).unwrap()}))
        .collect();
    // JavaScript prints 14.0 as 14: compare numbers as numbers.
    let (got, want) = (
        per_monitor(&numbers_as_f64(parsed)),
        per_monitor(&numbers_as_f64(sent)),
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (monitor, messages) in &want {
        assert!(
            got[monitor] == *messages,
            "{monitor}: the server got other messages than were sent"
        );
    }
}

fn numbers_as_f64(values: Vec<Value>) -> Vec<Value> {
    fn walk(v: Value) -> Value {
        match v {
            Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
            Value::Array(a) => Value::Array(a.into_iter().map(walk).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, walk(v))).collect()),
            other => other,
        }
    }
    values.into_iter().map(walk).collect()
}
