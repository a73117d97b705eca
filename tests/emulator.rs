//! The RESET emulator, spoken to over real Socket.IO by the sink's connection:
//! auth, strict checks, ack/errors shapes, re-sends, misbehaviour.

mod common;
use common::sample_emissions;
use reset_pipeline::config::Secret;
use reset_pipeline::emulator::{serve, EmulatorHandle, EmulatorOptions};
use reset_pipeline::sink::{Connection, ConnectionError, Reply};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn emulator(options: EmulatorOptions) -> EmulatorHandle {
    serve("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap()
}

async fn connect(
    handle: &EmulatorHandle,
    secret: &str,
) -> Result<(Connection, UnboundedReceiver<Reply>), ConnectionError> {
    let url = format!("http://{}", handle.addr);
    Connection::open(&url, "/v2", "demo", &Secret::new(secret), TIMEOUT, None).await
}

async fn reply(rx: &mut UnboundedReceiver<Reply>) -> Reply {
    tokio::time::timeout(TIMEOUT, rx.recv())
        .await
        .expect("RESET answers")
        .expect("connection open")
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> Value {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    let json = body.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(json).unwrap()
}

#[tokio::test]
async fn every_sample_emission_is_acknowledged_and_kept() {
    let handle = emulator(EmulatorOptions::default()).await;
    let (conn, mut rx) = connect(&handle, "demo").await.unwrap();
    let emissions = sample_emissions();
    let mut readings = 0;
    for (event, payload) in &emissions {
        conn.emit(event, payload).await.unwrap();
        let r = reply(&mut rx).await;
        let sent: Value = serde_json::from_str(payload).unwrap();
        assert!(matches!(r, Reply::Ack(_)), "{r:?} for {payload}");
        assert_eq!(r.message_id(), sent["message_id"].as_str());
        assert_eq!(r.code().as_deref(), Some("10200"));
        if event == "readings" {
            readings += sent["data"]["readings"].as_array().unwrap().len();
        }
    }
    let state = http_get(handle.addr, "/state").await;
    assert_eq!(state["readings"].as_array().unwrap().len(), readings);
    assert_eq!(state["monitors"].as_object().unwrap().len(), 5);
    assert_eq!(state["stats"]["acked"], emissions.len());
    // A re-send of the same bytes is acknowledged again and counted as identical.
    let (event, payload) = emissions.last().unwrap();
    conn.emit(event, payload).await.unwrap();
    assert!(matches!(reply(&mut rx).await, Reply::Ack(_)));
    let stats = handle.state.lock().unwrap().stats.clone();
    assert_eq!(
        (
            stats.identical_resends,
            stats.conflicting_resends,
            stats.changed_readings
        ),
        (1, 0, 0)
    );
    conn.close().await;
    handle.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_of_a_burst_is_answered() {
    // A client with many messages in flight: each gets its answer, none is
    // lost in the server's outgoing buffer.
    let handle = emulator(EmulatorOptions::default()).await;
    let (conn, mut rx) = connect(&handle, "demo").await.unwrap();
    let emissions = sample_emissions();
    for (event, payload) in emissions.iter().filter(|(e, _)| e == "monitors") {
        conn.emit(event, payload).await.unwrap();
        assert!(matches!(reply(&mut rx).await, Reply::Ack(_)));
    }
    let (_, readings) = emissions.iter().find(|(e, _)| e == "readings").unwrap();
    let burst = 2_000;
    for _ in 0..burst {
        conn.emit("readings", readings).await.unwrap();
    }
    let mut acks = 0;
    while acks < burst {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(r)) => assert!(matches!(r, Reply::Ack(_)), "{r:?}"),
            _ => break,
        }
        acks += 1;
    }
    let stats = handle.state.lock().unwrap().stats.clone();
    assert_eq!(stats.identical_resends, burst - 1, "{stats:?}");
    assert_eq!(acks, burst, "{stats:?}");
    assert_eq!(stats.answers_unsent, 0, "{stats:?}");
    conn.close().await;
    handle.stop();
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_10401() {
    let handle = emulator(EmulatorOptions::default()).await;
    match connect(&handle, "not-the-secret").await {
        Err(e @ ConnectionError::Unauthorized { .. }) => {
            let text = e.to_string();
            assert!(text.contains("10401"), "{text}");
            assert!(!text.contains("not-the-secret"), "{text}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("wrong credentials were accepted"),
    }
    assert_eq!(handle.state.lock().unwrap().stats.auth_failed, 1);
    handle.stop();
}

#[tokio::test]
async fn an_emulator_with_an_empty_secret_accepts_no_auth_without_one() {
    let handle = emulator(EmulatorOptions {
        client_secret: Secret::new(""),
        ..Default::default()
    })
    .await;
    match connect(&handle, "").await {
        Err(ConnectionError::Unauthorized { code, .. }) => assert_eq!(code, "10401"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an auth without a secret was accepted"),
    }
    assert_eq!(handle.state.lock().unwrap().stats.auth_ok, 0);
    handle.stop();
}

#[tokio::test]
async fn invalid_messages_get_10400_with_a_reason_and_the_id() {
    let handle = emulator(EmulatorOptions::default()).await;
    let (conn, mut rx) = connect(&handle, "demo").await.unwrap();
    let emissions = sample_emissions();
    let (_, readings) = emissions.iter().find(|(e, _)| e == "readings").unwrap();
    // Readings of a monitor that was never created.
    conn.emit("readings", readings).await.unwrap();
    let r = reply(&mut rx).await;
    assert!(matches!(r, Reply::Errors(_)), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("10400"));
    let sent: Value = serde_json::from_str(readings).unwrap();
    assert_eq!(r.message_id(), sent["message_id"].as_str());
    let Reply::Errors(body) = &r else {
        unreachable!()
    };
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("does not exist: create it first"),
        "{body}"
    );
    // A reading_time off the half-hour grid.
    let (_, create) = &emissions[0];
    conn.emit("monitors", create).await.unwrap();
    assert!(matches!(reply(&mut rx).await, Reply::Ack(_)));
    let mut bad = sent.clone();
    bad["message_id"] = "bad-1".into();
    bad["data"]["readings"][0]["reading_time"] = "2026-03-15T13:10:00.000+05:45".into();
    conn.emit("readings", &bad.to_string()).await.unwrap();
    let r = reply(&mut rx).await;
    assert_eq!(r.code().as_deref(), Some("10400"));
    assert_eq!(r.message_id(), Some("bad-1"));
    conn.close().await;
    handle.stop();
}

#[tokio::test]
async fn a_failing_emulator_answers_10500_and_stores_nothing() {
    let handle = emulator(EmulatorOptions {
        fail_rate: 1.0,
        ..Default::default()
    })
    .await;
    let (conn, mut rx) = connect(&handle, "demo").await.unwrap();
    let (event, payload) = &sample_emissions()[0];
    conn.emit(event, payload).await.unwrap();
    let r = reply(&mut rx).await;
    assert_eq!(r.code().as_deref(), Some("10500"));
    assert!(handle.state.lock().unwrap().monitors.is_empty());
    conn.close().await;
    handle.stop();
}

#[tokio::test]
async fn unauthenticated_messages_are_refused() {
    let handle = emulator(EmulatorOptions::default()).await;
    // A raw client that never authenticates.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    use futures_util::FutureExt;
    let client = rust_socketio::asynchronous::ClientBuilder::new(format!("http://{}", handle.addr))
        .namespace("/v2")
        .on("errors", move |p, _| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(p);
            }
            .boxed()
        })
        .connect()
        .await
        .unwrap();
    let (event, payload) = &sample_emissions()[0];
    let value: Value = serde_json::from_str(payload).unwrap();
    // The namespace may not be joined yet when connect returns: send until answered.
    let answer = loop {
        client
            .emit(
                event.as_str(),
                rust_socketio::Payload::Text(vec![value.clone()]),
            )
            .await
            .unwrap();
        if let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            break p;
        }
    };
    let rust_socketio::Payload::Text(v) = answer else {
        panic!("text payload")
    };
    assert_eq!(v[0]["code"], "10401");
    client.disconnect().await.unwrap();
    handle.stop();
}

/// What a raw client heard: each answer by event name, and whether the
/// server closed the connection.
#[derive(Debug)]
enum Heard {
    Answer(String, Value),
    Closed,
}

/// A raw Socket.IO client on `/v2` and what it hears.
async fn raw_client(
    handle: &EmulatorHandle,
) -> (
    rust_socketio::asynchronous::Client,
    UnboundedReceiver<Heard>,
) {
    use futures_util::FutureExt;
    use rust_socketio::{Event, Payload};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut builder =
        rust_socketio::asynchronous::ClientBuilder::new(format!("http://{}", handle.addr))
            .namespace("/v2");
    for event in ["auth", "ack", "errors"] {
        let tx = tx.clone();
        builder = builder.on(event, move |p, _| {
            let tx = tx.clone();
            async move {
                if let Payload::Text(v) = p {
                    let _ = tx.send(Heard::Answer(event.to_string(), v[0].clone()));
                }
            }
            .boxed()
        });
    }
    let closed = tx.clone();
    builder = builder.on(Event::Close, move |_, _| {
        let tx = closed.clone();
        async move {
            let _ = tx.send(Heard::Closed);
        }
        .boxed()
    });
    (builder.connect().await.unwrap(), rx)
}

/// Emits until the first answer (the namespace may not be joined yet when
/// `connect` returns), and returns it.
async fn emit_until_answered(
    client: &rust_socketio::asynchronous::Client,
    heard: &mut UnboundedReceiver<Heard>,
    event: &str,
    payload: rust_socketio::Payload,
) -> (String, Value) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        // Refused until the connection is open.
        if client.emit(event, payload.clone()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        match tokio::time::timeout(Duration::from_millis(300), heard.recv()).await {
            Ok(Some(Heard::Answer(name, body))) => return (name, body),
            Ok(other) => panic!("{event}: heard {other:?} instead of an answer"),
            Err(_) => {}
        }
    }
    panic!("{event} was never answered");
}

/// Authenticates a raw client with the emulator's default credentials.
async fn raw_auth(
    client: &rust_socketio::asynchronous::Client,
    heard: &mut UnboundedReceiver<Heard>,
) {
    let auth = serde_json::json!({"client_id": "demo", "client_secret": EmulatorOptions::default().client_secret.expose()});
    let (name, body) = emit_until_answered(
        client,
        heard,
        "auth",
        rust_socketio::Payload::Text(vec![auth]),
    )
    .await;
    assert_eq!(
        (name.as_str(), &body["code"]),
        ("auth", &Value::from("10200"))
    );
}

#[tokio::test]
async fn a_failed_auth_is_answered_and_then_the_connection_is_closed() {
    let handle = emulator(EmulatorOptions::default()).await;
    let (client, mut heard) = raw_client(&handle).await;
    let wrong = serde_json::json!({"client_id": "demo", "client_secret": "wrong"});
    let (name, body) = emit_until_answered(
        &client,
        &mut heard,
        "auth",
        rust_socketio::Payload::Text(vec![wrong]),
    )
    .await;
    assert_eq!(
        (name.as_str(), &body["code"]),
        ("auth", &Value::from("10401"))
    );
    let next = tokio::time::timeout(TIMEOUT, heard.recv()).await;
    assert!(
        matches!(next, Ok(Some(Heard::Closed))),
        "the connection stays open after a failed auth: {next:?}"
    );
    handle.stop();
}

#[tokio::test]
async fn an_auth_without_an_argument_is_refused_and_closed() {
    let handle = emulator(EmulatorOptions::default()).await;
    let (client, mut heard) = raw_client(&handle).await;
    let (name, body) = emit_until_answered(
        &client,
        &mut heard,
        "auth",
        rust_socketio::Payload::Text(vec![]),
    )
    .await;
    assert_eq!(
        (name.as_str(), &body["code"]),
        ("auth", &Value::from("10401"))
    );
    assert!(matches!(
        tokio::time::timeout(TIMEOUT, heard.recv()).await,
        Ok(Some(Heard::Closed))
    ));
    assert_eq!(handle.state.lock().unwrap().stats.auth_failed, 1);
    handle.stop();
}

#[tokio::test]
async fn readings_without_a_usable_argument_are_answered_10400() {
    let handle = emulator(EmulatorOptions::default()).await;
    let (client, mut heard) = raw_client(&handle).await;
    raw_auth(&client, &mut heard).await;
    let mut deep = Value::from(1);
    for _ in 0..200 {
        deep = serde_json::json!({ "a": deep });
    }
    let odd = [
        ("no argument", rust_socketio::Payload::Text(vec![])),
        (
            "a binary attachment",
            rust_socketio::Payload::from(vec![0u8, 1, 2]),
        ),
        ("200 levels deep", rust_socketio::Payload::Text(vec![deep])),
    ];
    for (what, payload) in odd {
        client.emit("readings", payload).await.unwrap();
        let answer = tokio::time::timeout(TIMEOUT, heard.recv()).await;
        let Ok(Some(Heard::Answer(name, body))) = answer else {
            panic!("{what}: no answer, {answer:?}");
        };
        assert_eq!(name, "errors", "{what}: {body}");
        assert_eq!(body["code"], "10400", "{what}: {body}");
    }
    assert!(handle.state.lock().unwrap().readings.is_empty());
    client.disconnect().await.unwrap();
    handle.stop();
}
