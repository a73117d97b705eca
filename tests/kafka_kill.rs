//! The kill test, on both brokers: a fleet's samples produced up front, the
//! pipeline killed with SIGKILL at random instants and restarted each time;
//! at the end RESET holds exactly what `aggregate` computes for the same
//! samples, nothing re-sent with other bytes or in another message.
//!
//! Size: `KILL_TEST_MONITORS` (default 200), `KILL_TEST_HOURS` (48, the mock
//! cluster), `KILL_TEST_TANSU_HOURS` (48), `KILL_TEST_KILLS` (20). The mock
//! cluster keeps about 5 MB of batches per partition and silently drops older
//! ones, but always keeps the last batch: two days fit there as one zstd batch
//! per partition, and the test checks that nothing was dropped before it
//! starts. tansu keeps its data in SQLite (`tests/common/kafka.rs`).
//!
//! tansu 0.6.0 never expires the group member of a killed consumer, which
//! keeps its partitions: there each start joins a group of its own, and
//! restarts resume from the progress topic, which all starts share.

mod common;
use common::kafka::*;
use rand::{Rng, SeedableRng};
use reset_pipeline::emulator::{serve, EmulatorOptions};
use reset_pipeline::synthetic::{fleet, SampleStream};
use std::sync::Arc;
use std::time::Duration;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const TOPICS: &[(&str, i32)] = &[
    ("sensor-events", 3),
    ("reset-pipeline.progress", 1),
    ("sensor-events.dlq", 1),
];

async fn restart_test(kind: BrokerKind, stop: Stop, monitors: usize, hours: i64, kills: usize) {
    let started = std::time::Instant::now();
    let broker = Broker::start(kind, TOPICS);
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(fleet(monitors));
    write_monitors(&registry, &dir.path().join("monitors.yaml"));
    // Samples that ended well before now, one per monitor every 30 s.
    let start = 1_790_000_000_000 - 1_790_000_000_000 % 1_800_000;
    let count = monitors * (hours as usize * 120);
    let events: Vec<_> = SampleStream::new(Arc::clone(&registry), start, 30_000, 5)
        .take(count)
        .collect();
    let expected = expected_rows(&registry, &events);
    if let BrokerKind::Mock = kind {
        produce_one_batch_per_partition(&broker.bootstrap, "sensor-events", &events);
        assert_nothing_dropped(&broker.bootstrap, count);
    } else {
        let producer = config_for(&broker.bootstrap);
        let sent = reset_pipeline::produce::produce_events(&producer, "sensor-events", events)
            .await
            .unwrap();
        assert_eq!(sent as usize, count);
    }

    let emulator = serve("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
        .await
        .unwrap();
    let properties = std::env::var("KILL_TEST_PROPERTIES").unwrap_or_default();
    let config = write_config_with(
        dir.path(),
        &broker.bootstrap,
        emulator.addr,
        &properties,
        "",
    );
    // tansu never expires the member of a killed consumer, which keeps its
    // partitions: there, each start joins a group of its own. Restarts read
    // the progress topic, not the group's commits, so the progress topic is
    // the one all starts share.
    let text = std::fs::read_to_string(&config).unwrap();
    let mut starts = 0;
    let mut config_for_start = || {
        starts += 1;
        if let BrokerKind::Tansu = kind {
            std::fs::write(
                &config,
                text.replace(
                    "group_id: reset-pipeline\n",
                    &format!(
                        "group_id: reset-pipeline-{starts}\n  progress_topic: reset-pipeline.progress\n"
                    ),
                ),
            )
            .unwrap();
        }
        config.clone()
    };
    let log = dir.path().join("pipeline.log");
    let mut dice = rand::rngs::StdRng::seed_from_u64(kind as u64 + 1);
    let assigned = |log: &std::path::Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("partition assigned")
            .count()
    };
    for _ in 0..kills {
        let before = assigned(&log);
        let p = Pipeline::start(&config_for_start(), &log);
        // Kill while it works: after its partitions are assigned, at a random instant
        // (consuming, publishing, or between an acknowledgement and a commit).
        wait_until(Duration::from_secs(60), || assigned(&log) > before).await;
        tokio::time::sleep(Duration::from_millis(dice.random_range(50..2_500))).await;
        match stop {
            Stop::Kill => p.kill(),
            Stop::Term => assert!(p.terminate().success()),
        }
    }
    let last = Pipeline::start(&config_for_start(), &log);
    let state = Arc::clone(&emulator.state);
    let complete = wait_until(Duration::from_secs(600), || {
        state.lock().unwrap().readings.len() >= expected.len()
    })
    .await;
    // Let anything still in flight land, then stop cleanly.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = last.terminate();
    // Kept for a look after a failure.
    let _ = std::fs::copy(
        &log,
        std::env::temp_dir().join(format!("reset-pipeline-{kind:?}-{stop:?}.log")),
    );
    let state = emulator.state.lock().unwrap();
    let got = emulator_rows(&state);
    let stats = state.stats.clone();
    drop(state);
    assert!(
        complete,
        "RESET holds {} of {} readings; log: {}",
        got.len(),
        expected.len(),
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(status.success(), "SIGTERM drains and exits 0: {status:?}");
    // Restarts resumed from progress written before a kill, not only from
    // the start. (Not every partition every time: a start killed early may
    // not have reached a partition's records yet.)
    let resumed = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("progress=Some")
        .count();
    assert!(
        resumed >= kills / 2,
        "only {resumed} partition assignments in {kills} restarts resumed from stored progress"
    );
    assert_eq!(got.len(), expected.len());
    let differing: Vec<_> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| (k, v.to_string(), got.get(k).map(|g| g.to_string())))
        .take(3)
        .collect();
    assert!(
        differing.is_empty(),
        "readings differ from aggregate: {differing:?}"
    );
    assert_eq!(stats.conflicting_resends, 0, "{stats:?}");
    assert_eq!(stats.changed_readings, 0, "{stats:?}");
    assert_eq!(stats.regrouped_readings, 0, "{stats:?}");
    eprintln!(
        "{kind:?}: {count} records, {} readings exact after {kills} {stop:?} restarts ({resumed} partition assignments resumed from stored progress) in {:.0?}; {stats:?}",
        got.len(),
        started.elapsed()
    );
}

/// Every produced record is still on the broker: each partition starts at offset 0.
fn assert_nothing_dropped(bootstrap: &str, count: usize) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "check")
        .create()
        .unwrap();
    let mut total = 0;
    for p in 0..3 {
        let (low, high) = c
            .fetch_watermarks("sensor-events", p, Duration::from_secs(10))
            .unwrap();
        assert_eq!(low, 0, "partition {p} dropped its first {low} records");
        total += high;
    }
    assert_eq!(total as usize, count);
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill,
    Term,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_test_on_the_mock_cluster() {
    let monitors = env_or("KILL_TEST_MONITORS", 200);
    let hours = env_or("KILL_TEST_HOURS", 48) as i64;
    let kills = env_or("KILL_TEST_KILLS", 20);
    restart_test(BrokerKind::Mock, Stop::Kill, monitors, hours, kills).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restarts_on_the_mock_cluster() {
    restart_test(BrokerKind::Mock, Stop::Term, 40, 12, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_test_on_tansu() {
    let monitors = env_or("KILL_TEST_MONITORS", 200);
    let hours = env_or("KILL_TEST_TANSU_HOURS", 48) as i64;
    let kills = env_or("KILL_TEST_KILLS", 20);
    restart_test(BrokerKind::Tansu, Stop::Kill, monitors, hours, kills).await;
}
