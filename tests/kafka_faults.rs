//! Production faults on real broker processes, each test on both brokers:
//! a broker that stops answering (stopped with SIGSTOP) shows as a stalled
//! input, and reading resumes, exact, when it answers again; a monitor whose
//! every message RESET answers 10500 is dead-lettered while everything else
//! arrives and the partitions' progress reaches their ends; a flood of
//! undecodable records between good ones is dead-lettered whole.

#[macro_use]
mod common;
use common::kafka::*;
use reset_pipeline::emulator::EmulatorOptions;
use reset_pipeline::synthetic::fleet;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

on_both_brokers!(
    a_broker_that_stops_answering_is_reported_as_a_stall_and_reading_resumes,
    a_poison_monitor_is_dead_lettered_and_everything_else_arrives,
    a_flood_of_undecodable_records_is_dead_lettered_and_the_good_windows_are_exact,
);

async fn a_broker_that_stops_answering_is_reported_as_a_stall_and_reading_resumes(
    kind: BrokerKind,
) {
    let Setup {
        broker,
        emulator,
        dir,
        registry,
    } = setup_with(kind, fleet(20), EmulatorOptions::default()).await;
    let events = samples(&registry, 3, 120 * 6);
    let expected = expected_rows(&registry, &events);
    produce_to(&broker.bootstrap, events).await;
    let config = write_config(dir.path(), &broker.bootstrap, emulator.addr, "");
    // A session longer than the stop, so that the group keeps the
    // partitions assigned while the broker is silent.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "  group_id: reset-pipeline\n",
            "  group_id: reset-pipeline\n  stall_after: 3s\n",
        )
        .replace(
            "session.timeout.ms: \"6000\"",
            "session.timeout.ms: \"45000\"",
        );
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("pipeline.log");
    let pipeline = Pipeline::start(&config, &log);
    let consumed = || {
        pipeline
            .metric("reset_pipeline_records_consumed_total{}")
            .unwrap_or(0.0)
    };
    let stalled = || pipeline.metric("reset_pipeline_stalled_partitions{}");
    assert!(
        wait_until(Duration::from_secs(120), || consumed() > 0.0).await,
        "nothing consumed"
    );
    assert_eq!(stalled(), Some(0.0), "{}", pipeline.figures());

    // The broker stops answering: the pipeline says so, by gauge and log.
    signal(broker.pid(), "STOP");
    let reported = wait_until(Duration::from_secs(60), || {
        stalled().is_some_and(|n| n >= 1.0)
    })
    .await;
    let stall_log = std::fs::read_to_string(&log).unwrap_or_default();
    signal(broker.pid(), "CONT");
    assert!(reported, "no stall reported; log:\n{stall_log}");
    assert!(stall_log.contains("input stalled"), "{stall_log}");

    // It answers again: everything arrives, and the stall is over.
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(180)).await;
    assert!(
        wait_until(Duration::from_secs(60), || stalled() == Some(0.0)).await,
        "the stall gauge never went back to 0"
    );
    assert!(pipeline.terminate().success());
    let log = std::fs::read_to_string(&log).unwrap();
    // Logged once per partition and stall, not at every look.
    let lines = log.matches("input stalled").count();
    assert!((1..=3).contains(&lines), "{lines} stall lines:\n{log}");
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
    let stats = emulator.state.lock().unwrap().stats.clone();
    assert_eq!(stats.conflicting_resends, 0, "{stats:?}");
}

async fn a_poison_monitor_is_dead_lettered_and_everything_else_arrives(kind: BrokerKind) {
    let poison = fleet(20)
        .iter()
        .next()
        .unwrap()
        .1
        .record
        .connection_id
        .clone();
    let Setup {
        broker,
        emulator,
        dir,
        registry,
    } = setup_with(
        kind,
        fleet(20),
        EmulatorOptions {
            poison_connection_id: Some(poison.clone()),
            ..Default::default()
        },
    )
    .await;
    let events = samples(&registry, 5, 120 * 6);
    let (poisoned, expected): (BTreeMap<_, _>, BTreeMap<_, _>) = expected_rows(&registry, &events)
        .into_iter()
        .partition(|((id, _), _)| *id == poison);
    assert!(!poisoned.is_empty());
    produce_to(&broker.bootstrap, events).await;
    let config = write_config(dir.path(), &broker.bootstrap, emulator.addr, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  ack_timeout: 3s\n",
        "  ack_timeout: 3s\n  max_attempts: 3\n",
    );
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("pipeline.log");
    let pipeline = Pipeline::start(&config, &log);
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(180)).await;
    // Every message is settled, the poison monitor's given up.
    assert!(
        wait_until(Duration::from_secs(120), || {
            pipeline.metric("reset_pipeline_in_flight_messages{}") == Some(0.0)
                && pipeline.metric("reset_pipeline_answers_total{code=10500}") > Some(0.0)
        })
        .await,
        "messages still unsettled"
    );
    assert!(pipeline.terminate().success());
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
    let stats = emulator.state.lock().unwrap().stats.clone();
    assert_eq!(stats.auth_ok, 1, "no connection was dropped: {stats:?}");
    assert_eq!(
        stats.identical_resends, 0,
        "no accepted message sent again: {stats:?}"
    );

    // The poison monitor's messages are dead letters, with their payloads:
    // together they hold exactly its readings.
    let letters: Vec<Value> = read_topic(&broker.bootstrap, "sensor-events.dlq")
        .into_iter()
        .filter(|l| l["reason"] == "reset_10500")
        .collect();
    assert!(!letters.is_empty());
    assert!(letters
        .iter()
        .all(|l| l["connection_id"] == poison.as_str()));
    let dead_rows = rows_of(letters.iter().map(|l| l["message"].clone()));
    assert_eq!(dead_rows, poisoned);

    // Progress reached the end of every partition: the refusals held
    // nothing back.
    let progress = read_topic(&broker.bootstrap, "reset-pipeline.progress");
    let ends = partition_ends(&broker.bootstrap, "sensor-events", 3);
    for (partition, end) in ends.iter().enumerate() {
        let last = progress
            .iter()
            .rev()
            .find(|p| p["partition"] == partition as i64)
            .unwrap_or_else(|| panic!("no progress for partition {partition}"));
        assert_eq!(last["offset"], *end, "partition {partition}: {last}");
    }
}

async fn a_flood_of_undecodable_records_is_dead_lettered_and_the_good_windows_are_exact(
    kind: BrokerKind,
) {
    const FLOOD: usize = 10_000;
    let Setup {
        broker,
        emulator,
        dir,
        registry,
    } = setup_with(kind, fleet(20), EmulatorOptions::default()).await;
    let events = samples(&registry, 6, 120 * 4);
    let expected = expected_rows(&registry, &events);
    let (before, after) = events.split_at(events.len() / 2);
    produce_to(&broker.bootstrap, before.to_vec()).await;
    produce_raw(&broker.bootstrap, "sensor-events", FLOOD);
    produce_to(&broker.bootstrap, after.to_vec()).await;
    let total = (events.len() + FLOOD) as f64;
    let config = write_config(dir.path(), &broker.bootstrap, emulator.addr, "");
    let pipeline = Pipeline::start(&config, &dir.path().join("pipeline.log"));
    let consumed = || {
        pipeline
            .metric("reset_pipeline_records_consumed_total{}")
            .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(120), || consumed() > 0.0).await,
        "nothing consumed"
    );
    let first = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(180), || consumed() >= total).await,
        "consumed {} of {total}",
        consumed()
    );
    let took = first.elapsed();
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(120)).await;
    assert!(pipeline.terminate().success());
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
    let decode = read_topic(&broker.bootstrap, "sensor-events.dlq")
        .iter()
        .filter(|l| l["reason"] == "decode")
        .count();
    assert_eq!(decode, FLOOD);
    eprintln!(
        "{kind:?}: {total} records ({FLOOD} undecodable) consumed in {took:.1?} after the first, {:.0} records/s",
        total / took.as_secs_f64()
    );
}

/// Produces `count` records that are no event in any format, one key.
fn produce_raw(bootstrap: &str, topic: &str, count: usize) {
    use rdkafka::producer::{BaseRecord, Producer};
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..count {
        let payload = format!("\u{0}\u{1}garbage {i}");
        loop {
            match producer.send(BaseRecord::to(topic).key("flood").payload(&payload)) {
                Ok(()) => break,
                Err(_) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}
