//! The kill test, on both brokers and in both push modes: a fleet's samples
//! produced in three parts, the pipeline killed with SIGKILL at random
//! instants and restarted each time, and the registry topic changing two
//! descriptions on the way (one mid-run, one A→B→A across kills); at the end
//! RESET holds exactly what `aggregate` computes for the same samples,
//! nothing re-sent with other bytes or in another message, every description
//! change arrived in order with an id of its own, and no `create` refused
//! (the emulator refuses one for a monitor it holds).
//!
//! Size: `KILL_TEST_MONITORS` (default 200; on the mock
//! `KILL_TEST_MOCK_MONITORS`, 40), `KILL_TEST_HOURS` (48, the mock cluster),
//! `KILL_TEST_TANSU_HOURS` (48), `KILL_TEST_KILLS` (20). Each monitor
//! samples every 30 s, but every 60 s in the daily variant on tansu: there
//! a start killed after a commit re-reads up to a day of samples, and
//! tansu's SQLite storage, not the pipeline, bounds how fast (about 12,000
//! records a second), so the slower samples halve each re-read while the
//! fleet, its time zones and midnights, and the kills stay. The mock cluster
//! keeps about 5 MB of batches per partition and silently drops older ones:
//! each part goes there as one zstd batch per partition, the fleet is small
//! enough for all three to fit, and the test checks that nothing was
//! dropped. tansu keeps its data in SQLite (`tests/common/kafka.rs`).
//!
//! The samples come in three parts, split at the A→B→A monitor's local
//! midnights (plus two hours), so that in `daily` mode each of its
//! descriptions has a day of its own to go out with; until the last start
//! the pipeline does not raise idle watermarks (that would make the next
//! part late), the last start does.
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

/// Six input partitions: on the mock, a partition's three parts together
/// stay under its 5 MB with 40 monitors.
const PARTITIONS: i32 = 6;

const TOPICS: &[(&str, i32)] = &[
    ("sensor-events", PARTITIONS),
    ("reset-pipeline.progress", 1),
    ("reset-pipeline.announcements", 1),
    ("sensor-events.dlq", 1),
    ("monitor-registry", 1),
];

/// What a run of the kill test varies.
#[derive(Debug, Clone, Copy)]
struct Variant {
    kind: BrokerKind,
    stop: Stop,
    push: Push,
    monitors: usize,
    hours: i64,
    /// How often each monitor samples.
    sample_every_ms: i64,
    kills: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Push {
    Every30Minutes,
    Daily,
}

/// The registry changes made on the way, and where the samples are cut.
struct Story {
    /// Changed once, mid-run, after its `create` arrived.
    changed: String,
    /// Described A, then B (written while stopped), then A again.
    flipped: String,
    /// Where the second and third parts of the samples begin.
    cuts: [i64; 2],
}

const CHANGED_LABEL: &str = "Lobby, moved to the 3rd floor";
const FLIPPED_LABEL: &str = "Meeting room B";

impl Story {
    /// The A→B→A monitor is the first one whose first local midnight is 3
    /// to 8 hours after `start`, the changed one the first whose first
    /// midnight comes before that. In `daily` mode the samples are cut two
    /// hours after the A→B→A monitor's first and second local midnights (a
    /// day for B to go out with); every 30 minutes, 3 and 6 hours in. The
    /// mock cluster keeps the first two parts whole only while they are
    /// small (about 5 MB per partition), so they are short where they can be.
    fn new(registry: &reset_pipeline::registry::Registry, start: i64, push: Push) -> Story {
        let hour = 3_600_000;
        let first_midnight = |id: u32| local_midnight_after(registry.get(id).tz, start);
        let flipped = (1..registry.len() as u32)
            .find(|&id| (start + 3 * hour..=start + 8 * hour).contains(&first_midnight(id)))
            .expect("a monitor with a midnight 3 to 8 hours in");
        let changed = (0..registry.len() as u32)
            .find(|&id| id != flipped && first_midnight(id) <= first_midnight(flipped))
            .expect("a monitor whose first local midnight comes first");
        let cuts = match push {
            Push::Daily => {
                let first = first_midnight(flipped);
                let second = local_midnight_after(registry.get(flipped).tz, first + hour);
                [first + 2 * hour, second + 2 * hour]
            }
            Push::Every30Minutes => [start + 3 * hour, start + 6 * hour],
        };
        Story {
            changed: registry.get(changed).connection_id().to_string(),
            flipped: registry.get(flipped).connection_id().to_string(),
            cuts,
        }
    }

    /// The three parts of `events` (in event-time order).
    fn parts(
        &self,
        events: &[reset_pipeline::event::SensorEvent],
    ) -> [Vec<reset_pipeline::event::SensorEvent>; 3] {
        let part = |from: i64, to: i64| {
            events
                .iter()
                .filter(|e| (from..to).contains(&e.event_time))
                .cloned()
                .collect()
        };
        [
            part(i64::MIN, self.cuts[0]),
            part(self.cuts[0], self.cuts[1]),
            part(self.cuts[1], i64::MAX),
        ]
    }
}

/// The first local midnight of `tz` after `t` (epoch ms).
fn local_midnight_after(tz: chrono_tz::Tz, t: i64) -> i64 {
    reset_pipeline::window::clock::local_day_end(&tz, t + 1)
}

/// Writes one registry-topic record: the description of `connection_id`
/// in `registry`, with `label` instead of its own.
async fn describe(
    bootstrap: &str,
    registry: &reset_pipeline::registry::Registry,
    connection_id: &str,
    label: Option<&str>,
) {
    let mut record = (*registry.get(registry.lookup(connection_id).unwrap()).record).clone();
    record.label = label.map(str::to_string);
    let value = serde_json::to_string(&record).unwrap();
    send(
        bootstrap,
        "monitor-registry",
        connection_id,
        Some(value.as_bytes()),
    )
    .await;
}

/// Produces one part of the samples; on the mock as one batch per
/// partition, checking that the mock kept everything produced so far.
async fn produce_part(
    kind: BrokerKind,
    bootstrap: &str,
    events: Vec<reset_pipeline::event::SensorEvent>,
    total: usize,
) {
    if let BrokerKind::Mock = kind {
        let t = std::time::Instant::now();
        produce_one_batch_per_partition(bootstrap, "sensor-events", &events);
        let produced = t.elapsed();
        assert_nothing_dropped(bootstrap, total);
        eprintln!(
            "{} records produced in {produced:.1?}, checked in {:.1?}",
            events.len(),
            t.elapsed() - produced
        );
    } else {
        let count = events.len();
        let sent = reset_pipeline::produce::produce_events(
            &config_for(bootstrap),
            "sensor-events",
            events,
        )
        .await
        .unwrap();
        assert_eq!(sent as usize, count);
    }
}

async fn restart_test(v: Variant) {
    let Variant {
        kind,
        stop,
        push,
        monitors,
        hours,
        sample_every_ms,
        kills,
    } = v;
    let started = std::time::Instant::now();
    let broker = Broker::start(kind, TOPICS);
    let dir = TestDir::new("the pipeline's config, registry and log");
    let registry = Arc::new(fleet(monitors));
    write_monitors(&registry, &dir.path().join("monitors.yaml"));
    // Samples that ended well before now, one per monitor every `sample_every_ms`.
    let start = 1_790_000_000_000 - 1_790_000_000_000 % 1_800_000;
    let count = monitors * (hours * 3_600_000 / sample_every_ms) as usize;
    let events: Vec<_> = SampleStream::new(Arc::clone(&registry), start, sample_every_ms, 5)
        .take(count)
        .collect();
    let expected = expected_rows(&registry, &events);
    let story = Story::new(&registry, start, push);
    let [first, second, third] = story.parts(&events);
    let mut produced = first.len();
    produce_part(kind, &broker.bootstrap, first, produced).await;
    let mut parts = [second, third].into_iter();

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
    let push_mode = match push {
        Push::Every30Minutes => "every_30_minutes",
        Push::Daily => "daily",
    };
    edit_config(
        &config,
        &[
            (
                "  client_id: demo\n",
                &format!("  client_id: demo\n  push: {push_mode}\n"),
            ),
            (
                "  file: monitors.yaml\n",
                "  file: monitors.yaml\n  topic: monitor-registry\n",
            ),
        ],
    );
    // On the mock, each start after a SIGKILL waits for the killed member's
    // session to expire before it is given partitions: a session half as
    // long as other tests' (heartbeats every 500 ms still leave it six).
    if kind == BrokerKind::Mock {
        let session = session_timeout_ms(&broker.bootstrap);
        edit_config(
            &config,
            &[(
                &format!("session.timeout.ms: \"{session}\""),
                &format!("session.timeout.ms: \"{}\"", session / 2),
            )],
        );
    }
    // tansu never expires the member of a killed consumer, which keeps its
    // partitions: there, each start joins a group of its own. Restarts read
    // the progress topic, not the group's commits, so the progress topic is
    // the one all starts share.
    // Until the last start no idle raise: it would make the next part late.
    let text = std::fs::read_to_string(&config).unwrap();
    let mut starts = 0;
    let mut config_for_start = |last: bool| {
        starts += 1;
        let mut text = text.clone();
        if !last {
            text = text.replace("idle_timeout: 2s", "idle_timeout: 1h");
        }
        if let BrokerKind::Tansu = kind {
            text = text.replace(
                "group_id: reset-pipeline\n",
                &format!(
                    "group_id: reset-pipeline-{starts}\n  progress_topic: reset-pipeline.progress\n  announcements_topic: reset-pipeline.announcements\n"
                ),
            );
        }
        std::fs::write(&config, text).unwrap();
        config.clone()
    };
    let monitor_messages = |id: &str| {
        emulator
            .state
            .lock()
            .unwrap()
            .monitor_messages
            .get(id)
            .map_or(0, Vec::len)
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
        let p = Pipeline::start(&config_for_start(false), &log);
        let assigned = wait_until(Duration::from_secs(120), || {
            log_since(from).contains("partition assigned")
        })
        .await;
        assert!(
            assigned,
            "start {i} was assigned no partition; its log:\n{}",
            log_since(from)
        );
        // The story, at fixed starts: a description changed while running,
        // once its create arrived; the A→B→A monitor's B written while
        // stopped once its create arrived, A once B arrived, each with the
        // next part of the samples (in `daily` mode, a day to go out with).
        let (story_monitor, arrived) = match i {
            1 => (&story.changed, 1),
            2 => (&story.flipped, 1),
            5 => (&story.flipped, 2),
            _ => (&story.changed, 0),
        };
        let story_from = std::time::Instant::now();
        let told = wait_until(Duration::from_secs(300), || {
            monitor_messages(story_monitor) >= arrived
        })
        .await;
        assert!(
            told,
            "start {i}: {story_monitor} was not told RESET {arrived} times"
        );
        if i == 1 {
            describe(
                &broker.bootstrap,
                &registry,
                &story.changed,
                Some(CHANGED_LABEL),
            )
            .await;
        }
        // Kill while it works, at an instant set by what it has done: soon
        // after the assignment (starting, consuming), after some commits
        // (so that the next start resumes from saved progress), or after
        // some of RESET's answers (often between an answer and its commit).
        // In `daily` mode a day's flush is a burst of messages: counting
        // the messages RESET received lands some kills inside one.
        let when = match i % 3 {
            0 => KillAfter::Assignment(dice.random_range(50..2_500)),
            1 => KillAfter::Commits(dice.random_range(1..=3)),
            _ if push == Push::Daily => KillAfter::Messages(dice.random_range(1..=monitors as u64)),
            _ => KillAfter::Answers(dice.random_range(1..=300)),
        };
        let messages_before = emulator.state.lock().unwrap().stats.messages;
        let kill_from = std::time::Instant::now();
        let series = match when {
            KillAfter::Assignment(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                None
            }
            KillAfter::Commits(n) => Some(("reset_pipeline_commits_total{}", n)),
            KillAfter::Answers(n) => Some(("reset_pipeline_answers_total{code=10200}", n)),
            KillAfter::Messages(n) => {
                // Looked at every 2 ms, so that the kill lands inside a burst.
                let deadline = std::time::Instant::now() + Duration::from_secs(300);
                let mut looks = 0u64;
                loop {
                    if emulator.state.lock().unwrap().stats.messages >= messages_before + n {
                        break;
                    }
                    looks += 1;
                    if looks.is_multiple_of(100) && caught_up(&p) {
                        break;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "start {i}: RESET never got {n} more messages: {}",
                        p.figures()
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                None
            }
        };
        if let Some((series, n)) = series {
            // Or everything produced so far is done (graceful stops before
            // it may have finished the work): nothing left to wait for.
            let reached = wait_until(Duration::from_secs(300), || {
                p.metric(series).is_some_and(|v| v >= n as f64) || caught_up(&p)
            })
            .await;
            assert!(reached, "start {i}: {series} never reached {n} ({when:?})");
            tokio::time::sleep(Duration::from_millis(dice.random_range(0..500))).await;
        }
        eprintln!(
            "start {i}: story wait {:.1?}, then {when:?} after {:.1?}",
            kill_from - story_from,
            kill_from.elapsed()
        );
        match stop {
            Stop::Kill => p.kill(),
            Stop::Term => assert!(p.terminate().success()),
        }
        if log_since(from).contains("progress=Some") {
            resumed_starts += 1;
        }
        // While stopped: the A→B→A monitor's next description, with the next part.
        let label = match i {
            2 => Some(FLIPPED_LABEL),
            5 => None,
            _ => continue,
        };
        let t = std::time::Instant::now();
        describe(&broker.bootstrap, &registry, &story.flipped, label).await;
        let described = t.elapsed();
        let part = parts.next().unwrap();
        produced += part.len();
        produce_part(kind, &broker.bootstrap, part, produced).await;
        eprintln!(
            "described in {described:.1?}, part produced in {:.1?}",
            t.elapsed()
        );
    }
    assert_eq!(
        produced, count,
        "every part is produced before the last start"
    );
    let from = log_len();
    let last = Pipeline::start(&config_for_start(true), &log);
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
    assert_eq!(stats.refused_creates, 0, "{stats:?}");
    // Every description change arrived, in order, each with an id of its own.
    let state = emulator.state.lock().unwrap();
    let told = |id: &str| {
        let sent = state.monitor_messages.get(id).cloned().unwrap_or_default();
        let verbs: Vec<String> = sent.iter().map(|(verb, _)| verb.clone()).collect();
        let ids: std::collections::BTreeSet<&String> = sent.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), sent.len(), "{id}: an id used twice: {sent:?}");
        verbs
    };
    assert_eq!(told(&story.changed), ["create", "modify"]);
    assert_eq!(told(&story.flipped), ["create", "modify", "modify"]);
    assert_eq!(state.monitors[&story.changed].data["label"], CHANGED_LABEL);
    assert_eq!(
        state.monitors[&story.flipped].data.get("label"),
        registry
            .get(registry.lookup(&story.flipped).unwrap())
            .record
            .label
            .as_ref()
            .map(|l| serde_json::json!(l))
            .as_ref(),
        "the A→B→A monitor ends described as A"
    );
    // Every other monitor was created once and never modified.
    let others = state
        .monitor_messages
        .iter()
        .filter(|(id, sent)| **id != story.changed && **id != story.flipped && sent.len() != 1)
        .count();
    assert_eq!(others, 0, "monitors told RESET more than once");
    drop(state);
    eprintln!(
        "{kind:?} {push:?}: {count} records, {} readings exact after {kills} {stop:?} restarts ({resumed_starts} resumed from stored progress) in {:.0?}; {stats:?}",
        got.len(),
        started.elapsed()
    );
}

/// Whether a start has read every record produced so far and has nothing
/// waiting for RESET's answer.
fn caught_up(p: &Pipeline) -> bool {
    let lag_zero = (0..PARTITIONS).all(|partition| {
        p.metric(&format!(
            "reset_pipeline_consumer_lag_records{{partition={partition},topic=sensor-events}}"
        )) == Some(0.0)
    });
    lag_zero && p.metric("reset_pipeline_in_flight_messages{}") == Some(0.0)
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
    for p in 0..PARTITIONS {
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
    /// Once RESET has received this many more messages (acknowledged or not).
    Messages(u64),
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill,
    Term,
}

fn full_size(kind: BrokerKind, push: Push) -> Variant {
    let hours = match kind {
        BrokerKind::Mock => "KILL_TEST_HOURS",
        _ => "KILL_TEST_TANSU_HOURS",
    };
    Variant {
        kind,
        stop: Stop::Kill,
        push,
        monitors: env_or("KILL_TEST_MONITORS", 200),
        hours: env_or(hours, 48) as i64,
        sample_every_ms: 30_000,
        kills: env_or("KILL_TEST_KILLS", 20),
    }
}

/// The mock cluster keeps a partition's parts whole only while they stay
/// under about 5 MB together (a large last part arrived there cut in two
/// batches, and the first was dropped): a fleet of 40 monitors.
fn mock_size(push: Push) -> Variant {
    Variant {
        monitors: env_or("KILL_TEST_MOCK_MONITORS", 40),
        ..full_size(BrokerKind::Mock, push)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_test_on_the_mock_cluster() {
    restart_test(mock_size(Push::Every30Minutes)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_kill_test_on_the_mock_cluster() {
    restart_test(mock_size(Push::Daily)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restarts_on_the_mock_cluster() {
    restart_test(Variant {
        kind: BrokerKind::Mock,
        stop: Stop::Term,
        push: Push::Every30Minutes,
        monitors: 40,
        hours: 48,
        sample_every_ms: 30_000,
        kills: 7,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_test_on_tansu() {
    restart_test(full_size(BrokerKind::Tansu, Push::Every30Minutes)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_kill_test_on_tansu() {
    restart_test(Variant {
        sample_every_ms: 60_000,
        ..full_size(BrokerKind::Tansu, Push::Daily)
    })
    .await;
}
