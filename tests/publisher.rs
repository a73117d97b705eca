//! The publisher against the emulator: every message's fate, retries that
//! re-send the same bytes, order per monitor, bounded memory while RESET is down.

mod common;
use common::proxy::Proxy;
use common::sample_emissions;
use futures_util::FutureExt;
use reset_pipeline::config::Secret;
use reset_pipeline::emulator::{serve, EmulatorHandle, EmulatorOptions};
use reset_pipeline::payload::EventName;
use reset_pipeline::sink::{
    Delivery, Fate, Outgoing, Publisher, PublisherSettings, ResetCode, Status,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

async fn emulator_at(addr: SocketAddr, options: EmulatorOptions) -> EmulatorHandle {
    serve(addr, options).await.unwrap()
}

fn settings(addr: SocketAddr, secret: &str) -> PublisherSettings {
    let mut s = PublisherSettings::new(&format!("http://{addr}"), "demo", Secret::new(secret));
    s.ack_timeout = Duration::from_millis(500);
    s.backoff_min = Duration::from_millis(10);
    s.backoff_max = Duration::from_millis(200);
    s
}

fn outgoing((event, payload): &(String, String)) -> Outgoing {
    let v: Value = serde_json::from_str(payload).unwrap();
    Outgoing {
        event: if event == "monitors" {
            EventName::Monitors
        } else {
            EventName::Readings
        },
        message_id: v["message_id"].as_str().unwrap().to_string(),
        payload: payload.clone(),
        key: v["data"]["connection_id"].as_str().unwrap().to_string(),
        readings: v["data"]["readings"].as_array().map_or(0, Vec::len),
    }
}

/// Polls `done` until it holds or `timeout` passes.
async fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn collect(rx: &mut UnboundedReceiver<Delivery>, n: usize) -> Vec<Delivery> {
    let mut out = Vec::new();
    while out.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("deliveries keep coming")
            .unwrap();
        out.push(d);
    }
    out
}

/// Each monitor's deliveries came in the order its messages were published.
fn assert_in_publishing_order_per_monitor(messages: &[Outgoing], deliveries: &[Delivery]) {
    for key in messages.iter().map(|m| &m.key) {
        let sent: Vec<&str> = messages
            .iter()
            .filter(|m| &m.key == key)
            .map(|m| m.message_id.as_str())
            .collect();
        let got: Vec<&str> = deliveries
            .iter()
            .filter(|d| &d.key == key)
            .map(|d| d.message_id.as_str())
            .collect();
        assert_eq!(got, sent, "order of {key}");
    }
}

/// Publishes the sample fleet and checks every message was acknowledged
/// exactly once, in publishing order per monitor, and RESET holds exactly
/// the readings of a clean run.
async fn publish_all_and_check(
    options: EmulatorOptions,
) -> reset_pipeline::emulator::EmulatorStats {
    let handle = emulator_at("127.0.0.1:0".parse().unwrap(), options).await;
    let (publisher, mut rx) = Publisher::start(settings(handle.addr, "demo"));
    let messages: Vec<Outgoing> = sample_emissions().iter().map(outgoing).collect();
    for m in &messages {
        publisher.publish(m.clone()).await;
    }
    let deliveries = collect(&mut rx, messages.len()).await;
    assert!(
        deliveries.iter().all(|d| d.fate == Fate::Acknowledged),
        "{deliveries:?}"
    );
    let mut ids: Vec<&str> = deliveries.iter().map(|d| d.message_id.as_str()).collect();
    assert_in_publishing_order_per_monitor(&messages, &deliveries);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), messages.len(), "each message acknowledged once");
    assert!(publisher.drain(Duration::from_secs(5)).await);
    let state = handle.state.lock().unwrap();
    let readings: usize = messages
        .iter()
        .filter(|m| m.event == EventName::Readings)
        .map(|m| {
            serde_json::from_str::<Value>(&m.payload).unwrap()["data"]["readings"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(state.readings.len(), readings);
    assert_eq!(state.stats.conflicting_resends, 0);
    assert_eq!(state.stats.changed_readings, 0);
    let stats = state.stats.clone();
    drop(state);
    handle.stop();
    stats
}

#[tokio::test]
async fn every_module_is_published_and_acknowledged() {
    let stats = publish_all_and_check(EmulatorOptions::default()).await;
    assert_eq!(stats.auth_ok, 1);
    assert_eq!(stats.identical_resends, 0);
}

#[tokio::test]
async fn messages_answered_10500_are_resent_alone_on_the_same_connection() {
    let stats = publish_all_and_check(EmulatorOptions {
        fail_rate: 0.2,
        seed: Some(7),
        ..Default::default()
    })
    .await;
    assert!(stats.errors_10500 > 0, "{stats:?}");
    assert_eq!(stats.auth_ok, 1, "one connection throughout: {stats:?}");
    assert_eq!(
        stats.identical_resends, 0,
        "no accepted message was sent again: {stats:?}"
    );
}

/// An emulator that answers every message of `poison` with 10500, and a
/// publisher to it that gives a message up after 2 such answers.
async fn start_with_poison(
    poison: &str,
) -> (EmulatorHandle, Publisher, UnboundedReceiver<Delivery>) {
    let handle = emulator_at(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            poison_connection_id: Some(poison.into()),
            ..Default::default()
        },
    )
    .await;
    let mut s = settings(handle.addr, "demo");
    s.max_attempts = 2;
    let (publisher, rx) = Publisher::start(s);
    (handle, publisher, rx)
}

#[tokio::test]
async fn a_poison_monitor_is_given_up_while_the_others_are_acknowledged_without_resends() {
    let messages: Vec<Outgoing> = sample_emissions().iter().map(outgoing).collect();
    let poison = messages[0].key.clone();
    let (handle, publisher, mut rx) = start_with_poison(&poison).await;
    publisher.publish_all(messages.clone()).await;
    let deliveries = collect(&mut rx, messages.len()).await;
    for d in &deliveries {
        if d.key == poison {
            assert!(
                matches!(&d.fate, Fate::GaveUp { code, .. } if *code == ResetCode::ServerError),
                "{d:?}"
            );
            assert!(d.resends >= 1, "{d:?}");
        } else {
            assert_eq!(d.fate, Fate::Acknowledged, "{d:?}");
            assert_eq!(d.resends, 0, "{d:?}");
        }
    }
    assert_in_publishing_order_per_monitor(&messages, &deliveries);
    let stats = handle.state.lock().unwrap().stats.clone();
    assert_eq!(stats.auth_ok, 1, "{stats:?}");
    assert_eq!(stats.identical_resends, 0, "{stats:?}");
    handle.stop();
}

#[tokio::test]
async fn nothing_is_given_up_while_reset_accepts_nothing() {
    let messages: Vec<Outgoing> = sample_emissions().iter().map(outgoing).collect();
    let poison = messages[0].key.clone();
    let (poisoned, others): (Vec<Outgoing>, Vec<Outgoing>) =
        messages.into_iter().partition(|m| m.key == poison);
    let (handle, publisher, mut rx) = start_with_poison(&poison).await;
    // Only the poison monitor: RESET accepts nothing, so however often it
    // refuses, nothing is given up.
    publisher.publish_all(poisoned.clone()).await;
    let refused = || handle.state.lock().unwrap().stats.errors_10500;
    assert!(
        wait_for(Duration::from_secs(30), || refused() >= 6).await,
        "refused {}",
        refused()
    );
    assert!(
        rx.try_recv().is_err(),
        "given up while RESET accepted nothing"
    );
    // Another monitor is accepted: then the poison message is given up.
    publisher.publish_all(others.clone()).await;
    let deliveries = collect(&mut rx, poisoned.len() + others.len()).await;
    let given_up = deliveries
        .iter()
        .filter(|d| matches!(d.fate, Fate::GaveUp { .. }))
        .count();
    assert_eq!(given_up, poisoned.len(), "{deliveries:?}");
    handle.stop();
}

#[tokio::test]
async fn a_connection_dropped_every_7_messages_loses_nothing() {
    let stats = publish_all_and_check(EmulatorOptions {
        disconnect_every: 7,
        ..Default::default()
    })
    .await;
    assert!(stats.disconnects >= 3, "{stats:?}");
}

#[tokio::test]
async fn dropped_acks_time_out_and_are_resent_with_the_same_id() {
    let stats = publish_all_and_check(EmulatorOptions {
        drop_ack_rate: 0.15,
        seed: Some(7),
        ..Default::default()
    })
    .await;
    assert!(stats.acks_dropped > 0, "{stats:?}");
    assert!(stats.identical_resends >= stats.acks_dropped, "{stats:?}");
}

#[tokio::test]
async fn a_10400_is_reported_and_does_not_block_the_monitor() {
    let handle = emulator_at("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default()).await;
    let (publisher, mut rx) = Publisher::start(settings(handle.addr, "demo"));
    let messages: Vec<Outgoing> = sample_emissions().iter().map(outgoing).collect();
    // The first readings of a monitor without its create: refused.
    let orphan = messages
        .iter()
        .position(|m| m.event == EventName::Readings)
        .unwrap();
    let mut order = vec![messages[orphan].clone()];
    order.extend(messages.iter().cloned());
    for m in &order {
        publisher.publish(m.clone()).await;
    }
    let deliveries = collect(&mut rx, order.len()).await;
    match &deliveries[0].fate {
        Fate::Rejected { code, reason } => {
            assert_eq!(*code, ResetCode::BadRequest);
            assert!(reason.contains("create it first"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(deliveries[1..].iter().all(|d| d.fate == Fate::Acknowledged));
    handle.stop();
}

#[tokio::test]
async fn refused_credentials_stop_publishing_and_leave_it_unready() {
    let handle = emulator_at("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default()).await;
    let (publisher, mut rx) = Publisher::start(settings(handle.addr, "wrong-secret"));
    publisher.publish(outgoing(&sample_emissions()[0])).await;
    let mut status = publisher.status_watch();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| *s == Status::Unauthorized),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "nothing is delivered"
    );
    assert!(handle.state.lock().unwrap().monitors.is_empty());
    assert!(!publisher.drain(Duration::from_millis(100)).await);
    handle.stop();
}

#[tokio::test]
async fn a_burst_larger_than_the_queue_is_handed_over_in_parts_and_all_acknowledged_in_order() {
    let handle = emulator_at("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default()).await;
    let mut s = settings(handle.addr, "demo");
    s.max_queued = 3;
    s.max_in_flight = 2;
    let (publisher, mut rx) = Publisher::start(s);
    let messages: Vec<Outgoing> = sample_emissions().iter().map(outgoing).collect();
    assert!(messages.len() > 3);
    publisher.publish_all(messages.clone()).await;
    let deliveries = collect(&mut rx, messages.len()).await;
    assert!(deliveries.iter().all(|d| d.fate == Fate::Acknowledged));
    assert_in_publishing_order_per_monitor(&messages, &deliveries);
    assert!(publisher.drain(Duration::from_secs(5)).await);
    let stats = handle.state.lock().unwrap().stats.clone();
    assert_eq!(stats.acked as usize, messages.len());
    assert_eq!(stats.conflicting_resends, 0);
    handle.stop();
}

#[tokio::test]
async fn while_reset_is_down_memory_is_bounded_and_all_is_sent_when_it_is_back() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut s = settings(addr, "demo");
    s.max_queued = 8;
    let (publisher, mut rx) = Publisher::start(s);
    let messages: Vec<Outgoing> = sample_emissions().iter().map(outgoing).collect();
    assert!(messages.len() > 8);
    let (first, rest) = messages.split_at(8);
    // RESET cannot be reached: the first 8 are taken at once, and then
    // publishing waits (its future does not complete when polled) with
    // 8 held.
    for m in first {
        assert!(
            publisher.publish(m.clone()).now_or_never().is_some(),
            "publish waited with {} held",
            publisher.held()
        );
    }
    let mut publishing_rest = std::pin::pin!(publisher.publish_all(rest.to_vec()));
    assert!(
        futures_util::poll!(publishing_rest.as_mut()).is_pending(),
        "publish waits once 8 are unanswered"
    );
    assert_eq!(publisher.held(), 8);
    assert_ne!(publisher.status(), Status::Ready);
    let handle = emulator_at(addr, EmulatorOptions::default()).await;
    let (_, deliveries) = tokio::join!(publishing_rest, collect(&mut rx, messages.len()));
    assert!(deliveries.iter().all(|d| d.fate == Fate::Acknowledged));
    assert_eq!(handle.state.lock().unwrap().stats.conflicting_resends, 0);
    handle.stop();
}

#[tokio::test]
async fn after_a_transport_cut_the_client_authenticates_again_before_sending() {
    let handle = emulator_at("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default()).await;
    let proxy = Proxy::start(handle.addr).await;
    let (publisher, mut rx) = Publisher::start(settings(proxy.addr, "demo"));
    let messages: Vec<Outgoing> = sample_emissions().iter().map(outgoing).collect();
    let (first, rest) = messages.split_at(messages.len() / 2);
    publisher.publish_all(first.to_vec()).await;
    collect(&mut rx, first.len()).await;
    // The TCP connection goes; no Socket.IO disconnect is ever sent. With
    // nothing to send, the Socket.IO client reconnects by itself (about a
    // second later); the publisher must authenticate that connection, or a
    // fresh one, before anything is sent on it.
    let before = proxy.accepted();
    proxy.cut();
    let authenticated_again = wait_for(Duration::from_secs(20), || {
        proxy.accepted() > before && handle.state.lock().unwrap().stats.auth_ok >= 2
    })
    .await;
    let stats = handle.state.lock().unwrap().stats.clone();
    assert!(
        authenticated_again,
        "no auth after the reconnect ({} connections): {stats:?}",
        proxy.accepted()
    );
    publisher.publish_all(rest.to_vec()).await;
    let deliveries = collect(&mut rx, rest.len()).await;
    assert!(deliveries.iter().all(|d| d.fate == Fate::Acknowledged));
    let stats = handle.state.lock().unwrap().stats.clone();
    assert_eq!(
        stats.errors_10401, 0,
        "nothing sent unauthenticated: {stats:?}"
    );
    assert_eq!(stats.conflicting_resends, 0, "{stats:?}");
    handle.stop();
}

#[tokio::test]
async fn cancelled_readings_that_wait_are_never_sent_and_the_rest_are() {
    let handle = emulator_at(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            ack_delay: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await;
    let mut s = settings(handle.addr, "demo");
    s.max_in_flight = 1;
    s.ack_timeout = Duration::from_secs(5);
    let (publisher, mut rx) = Publisher::start(s);
    let messages: Vec<Outgoing> = sample_emissions().iter().map(outgoing).collect();
    // One goes out at once (one in flight); the others wait behind it.
    publisher.publish_all(messages.clone()).await;
    let asked: std::collections::HashSet<String> =
        messages[1..].iter().map(|m| m.message_id.clone()).collect();
    publisher.cancel(asked);
    // The first, in flight, and every monitors message (a monitor counts as
    // announced once handed over) are sent; the readings that wait are not.
    let mut expected: Vec<String> = messages
        .iter()
        .enumerate()
        .filter(|(i, m)| *i == 0 || m.event == EventName::Monitors)
        .map(|(_, m)| m.message_id.clone())
        .collect();
    assert!(expected.len() < messages.len(), "no readings to cancel");
    let mut delivered: Vec<String> = collect(&mut rx, expected.len())
        .await
        .into_iter()
        .inspect(|d| assert_eq!(d.fate, Fate::Acknowledged))
        .map(|d| d.message_id)
        .collect();
    assert!(
        publisher.drain(Duration::from_secs(5)).await,
        "something still held"
    );
    assert!(
        rx.recv().await.is_none(),
        "a cancelled message was delivered"
    );
    delivered.sort();
    expected.sort();
    assert_eq!(delivered, expected);
    let stats = handle.state.lock().unwrap().stats.clone();
    assert_eq!(stats.messages as usize, expected.len(), "{stats:?}");
    handle.stop();
}
