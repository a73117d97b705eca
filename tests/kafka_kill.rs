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
    ("reset-pipeline.announcements", 1),
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
    let log_len = || std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
    let log_since = |from: usize| {
        let text = std::fs::read(&log).unwrap_or_default();
        String::from_utf8_lossy(&text[from.min(text.len())..]).into_owned()
    };
    let mut dice = rand::rngs::StdRng::seed_from_u64(kind as u64 + 1);
    // Starts (every one but the first) that resumed at least one partition
    // from progress a killed start had saved.
    let mut resumed_starts = 0;
    for i in 0..kills {
        let from = log_len();
        let p = Pipeline::start(&config_for_start(), &log);
        let assigned = wait_until(Duration::from_secs(120), || {
            log_since(from).contains("partition assigned")
        })
        .await;
        assert!(assigned, "start {i} was assigned no partition");
        // Kill while it works, at an instant set by what it has done: soon
        // after the assignment (starting, consuming), after some commits
        // (so that the next start resumes from saved progress), or after
        // some of RESET's answers (often between an answer and its commit).
        let when = match i % 3 {
            0 => KillAfter::Assignment(dice.random_range(50..2_500)),
            1 => KillAfter::Commits(dice.random_range(1..=3)),
            _ => KillAfter::Answers(dice.random_range(1..=300)),
        };
        let series = match when {
            KillAfter::Assignment(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                None
            }
            KillAfter::Commits(n) => Some(("reset_pipeline_commits_total{}", n)),
            KillAfter::Answers(n) => Some(("reset_pipeline_answers_total{code=10200}", n)),
        };
        if let Some((series, n)) = series {
            // Or everything is done already (graceful stops before it may
            // have finished the work): then there is nothing left to wait for.
            let reached = wait_until(Duration::from_secs(300), || {
                p.metric(series).is_some_and(|v| v >= n as f64)
                    || emulator.state.lock().unwrap().readings.len() >= expected.len()
            })
            .await;
            assert!(reached, "start {i}: {series} never reached {n} ({when:?})");
            tokio::time::sleep(Duration::from_millis(dice.random_range(0..500))).await;
        }
        match stop {
            Stop::Kill => p.kill(),
            Stop::Term => assert!(p.terminate().success()),
        }
        if log_since(from).contains("progress=Some") {
            resumed_starts += 1;
        }
    }
    let from = log_len();
    let last = Pipeline::start(&config_for_start(), &log);
    let state = Arc::clone(&emulator.state);
    let complete = wait_until(Duration::from_secs(900), || {
        state.lock().unwrap().readings.len() >= expected.len()
    })
    .await;
    if log_since(from).contains("progress=Some") {
        resumed_starts += 1;
    }
    // Everything sent is answered (re-sends included) before the stop.
    let settled = wait_until(Duration::from_secs(60), || {
        last.metric("reset_pipeline_in_flight_messages{}") == Some(0.0)
    })
    .await;
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
    assert!(settled, "messages still unanswered at the end");
    assert!(status.success(), "SIGTERM drains and exits 0: {status:?}");
    // Restarts resumed from progress written before a kill, not only from
    // the start: the kills after commits make sure some do.
    assert!(
        resumed_starts * 3 >= kills,
        "only {resumed_starts} of {kills} restarts resumed from stored progress"
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
        "{kind:?}: {count} records, {} readings exact after {kills} {stop:?} restarts ({resumed_starts} resumed from stored progress) in {:.0?}; {stats:?}",
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

/// When a start is stopped.
#[derive(Debug, Clone, Copy)]
enum KillAfter {
    /// This many milliseconds after its partitions are assigned.
    Assignment(u64),
    /// Once it has committed this many times.
    Commits(u64),
    /// Once RESET has acknowledged this many of its messages.
    Answers(u64),
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
