//! The live path on real broker processes, each test on both brokers (tansu,
//! and librdkafka's mock cluster hosted by `reset-pipeline mock-kafka`):
//! replay, lateness and idleness, bad input, the registry topic; and the
//! rebalance, on the mock cluster only (see there).

#[macro_use]
mod common;
use common::kafka::*;
use common::{event, monitor_yaml, ms, rfc3339};
use reset_pipeline::codec::encode_avro;
use reset_pipeline::emulator::{serve, EmulatorOptions};
use reset_pipeline::event::SensorEvent;
use reset_pipeline::registry::Registry;
use reset_pipeline::synthetic::{fleet, SampleStream};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

on_both_brokers!(
    replay_of_a_sub_range_equals_the_live_readings_inside_it,
    late_samples_are_dead_lettered_and_idle_partitions_close_their_windows,
    bad_records_are_dead_lettered_with_origin_and_good_windows_all_sent,
    the_registry_topic_adds_monitors_and_changes_their_description_and_zone_while_running,
    a_description_changed_while_stopped_reaches_reset_as_modify,
    a_change_reset_took_unanswered_is_undone_when_the_registry_goes_back,
    a_zone_changed_while_stopped_changes_no_window_reset_may_hold,
);

async fn setup(kind: BrokerKind, registry: Registry) -> Setup {
    setup_with(kind, registry, EmulatorOptions::default()).await
}

impl Setup {
    fn config(&self, extra: &str) -> std::path::PathBuf {
        write_config(
            self.dir.path(),
            &self.broker.bootstrap,
            self.emulator.addr,
            extra,
        )
    }

    fn log(&self) -> std::path::PathBuf {
        self.dir.path().join("pipeline.log")
    }

    async fn produce(&self, events: Vec<SensorEvent>) {
        reset_pipeline::produce::produce_events(
            &config_for(&self.broker.bootstrap),
            "sensor-events",
            events,
        )
        .await
        .unwrap();
    }

    /// Monitor `id`'s accepted monitors messages at RESET: (verb, id).
    fn monitor_messages(&self, id: &str) -> Vec<(String, String)> {
        let state = self.emulator.state.lock().unwrap();
        state.monitor_messages.get(id).cloned().unwrap_or_default()
    }

    /// Monitor A was created and changed twice (label given, taken away),
    /// each message with an id of its own, and RESET holds it unlabelled;
    /// no re-send conflicted, no reading changed, no create was refused.
    fn assert_a_created_then_changed_twice(&self) {
        let sent = self.monitor_messages("A");
        let verbs: Vec<&str> = sent.iter().map(|(verb, _)| verb.as_str()).collect();
        assert_eq!(verbs, ["create", "modify", "modify"], "{sent:?}");
        let ids: std::collections::BTreeSet<&String> = sent.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), 3, "{sent:?}");
        let state = self.emulator.state.lock().unwrap();
        assert!(
            state.monitors["A"].data.get("label").is_none(),
            "RESET holds {:?}",
            state.monitors["A"].data
        );
        drop(state);
        self.assert_nothing_conflicting_changed_or_refused();
    }

    /// No re-send conflicted, no reading changed, no create was refused.
    fn assert_nothing_conflicting_changed_or_refused(&self) {
        let stats = &self.emulator.state.lock().unwrap().stats;
        assert_eq!(
            (
                stats.conflicting_resends,
                stats.changed_readings,
                stats.refused_creates
            ),
            (0, 0, 0),
            "{stats:?}"
        );
    }

    fn rows(&self) -> BTreeMap<(String, String), Value> {
        emulator_rows(&self.emulator.state.lock().unwrap())
    }

    async fn wait_for_rows(&self, n: usize) -> bool {
        let state = Arc::clone(&self.emulator.state);
        wait_until(Duration::from_secs(120), || {
            state.lock().unwrap().readings.len() >= n
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_takes_over_the_partitions_of_a_killed_replica() {
    // On the mock cluster only: tansu 0.6.0 never expires the group member of
    // a killed consumer, so the survivor is never given its partitions.
    let s = setup(BrokerKind::Mock, fleet(30)).await;
    let events: Vec<_> = SampleStream::new(Arc::clone(&s.registry), START, 30_000, 9)
        .take(30 * 120 * 12)
        .collect();
    let expected = expected_rows(&s.registry, &events);
    s.produce(events).await;
    let config = s.config("");
    let a = Pipeline::start(&config, &s.log());
    let b = Pipeline::start(&config, &s.log());
    // Both work for a while, then one dies.
    let state = Arc::clone(&s.emulator.state);
    wait_until(Duration::from_secs(60), || {
        state.lock().unwrap().readings.len() > expected.len() / 10
    })
    .await;
    a.kill();
    assert!(
        s.wait_for_rows(expected.len()).await,
        "{}",
        log_tail(&s.log())
    );
    // The survivor stops once it has read, sent and had acknowledged
    // everything, its re-sends of the killed replica's windows included.
    let ends = partition_ends(&s.broker.bootstrap, "sensor-events", 3);
    let mut reader = progress_reader(&s.broker.bootstrap);
    assert_progress_reaches_the_ends(&mut reader, &ends, Duration::from_secs(120)).await;
    assert!(b.terminate().success());
    let log = std::fs::read_to_string(s.log()).unwrap();
    assert!(
        log.matches("partition assigned").count() > 3,
        "the survivor was assigned more partitions"
    );
    assert_eq!(s.rows(), expected);
    let stats = s.emulator.state.lock().unwrap().stats.clone();
    assert_eq!(
        (
            stats.conflicting_resends,
            stats.changed_readings,
            stats.regrouped_readings
        ),
        (0, 0, 0),
        "{stats:?}"
    );
}

async fn replay_of_a_sub_range_equals_the_live_readings_inside_it(kind: BrokerKind) {
    let s = setup(kind, fleet(20)).await;
    let events: Vec<_> = SampleStream::new(Arc::clone(&s.registry), START, 30_000, 3)
        .take(20 * 120 * 8)
        .collect();
    let expected = expected_rows(&s.registry, &events);
    s.produce(events).await;
    let config = s.config("");
    let p = Pipeline::start(&config, &s.log());
    assert!(
        s.wait_for_rows(expected.len()).await,
        "{}",
        log_tail(&s.log())
    );
    assert!(p.terminate().success());
    let live = s.rows();
    let live_rows = live.clone();
    // A range that starts and ends off the half-hour grid: only whole windows inside count.
    let (from, to) = (
        START + 2 * 3_600_000 + 600_000,
        START + 5 * 3_600_000 + 60_000,
    );
    let out = s.dir.path().join("replay.jsonl");
    let coverage = s.dir.path().join("coverage.csv");
    let stderr = replay(
        &config,
        (from, to),
        &[
            "--dry-run",
            out.to_str().unwrap(),
            "--coverage",
            coverage.to_str().unwrap(),
        ],
    );
    // The brokers of the tests cannot look up an offset by time: tansu
    // answers 0 (the beginning), the mock cluster -1 although later records
    // are there, which replay takes as "read from the beginning".
    let fallback = match kind {
        BrokerKind::Tansu | BrokerKind::TansuInMemory => "offset=0",
        BrokerKind::Mock => "replay reads the partition from its beginning",
    };
    assert_eq!(stderr.matches(fallback).count(), 3, "{stderr}");
    let replayed = rows_of(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["event"] == "readings")
            .map(|e| e["payload"].clone()),
    );
    let inside: BTreeMap<_, _> = live
        .into_iter()
        .filter(|((_, time), _)| {
            let end = ms(time);
            end - 1_800_000 >= from && end <= to
        })
        .collect();
    assert!(!inside.is_empty());
    assert_eq!(replayed, inside);
    // The coverage report counts each replayed window once, by monitor.
    let report = std::fs::read_to_string(&coverage).unwrap();
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for row in report.lines().skip(1) {
        let fields: Vec<&str> = row.split(',').collect();
        *counted.entry(fields[0].to_string()).or_default() += fields[3].parse::<usize>().unwrap();
    }
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for (connection_id, _) in replayed.keys() {
        *expected.entry(connection_id.clone()).or_default() += 1;
    }
    assert_eq!(counted, expected, "{report}");

    // Published, with the store `run` kept: the readings again, identical,
    // and no monitors message (RESET acknowledged every description).
    let publish = |config: &std::path::Path| replay(config, (from, to), &[]);
    let monitor_messages = || {
        let state = s.emulator.state.lock().unwrap();
        state.monitor_messages.values().map(Vec::len).sum::<usize>()
    };
    let (told, before) = (
        monitor_messages(),
        s.emulator.state.lock().unwrap().stats.clone(),
    );
    let stderr = publish(&config);
    assert!(stderr.contains(" 0 rejected"), "{stderr}");
    let stats = s.emulator.state.lock().unwrap().stats.clone();
    eprintln!("{kind:?} replay published: {stats:?} (before: {before:?})");
    assert!(stats.messages > before.messages, "{stats:?}\n{stderr}");
    assert_eq!(monitor_messages(), told, "{stderr}");
    assert_eq!(s.rows(), live_rows);
    // With an empty store and new labels: RESET refuses each create (it
    // holds the monitor, described otherwise), and the new description
    // follows as modify.
    let relabelled: Vec<_> = s
        .registry
        .iter()
        .map(|(_, m)| {
            let mut record = (*m.record).clone();
            record.label = Some("moved".into());
            record
        })
        .collect();
    let relabelled = Registry::from_records(relabelled, "m.yaml").unwrap();
    write_monitors(&relabelled, &s.dir.path().join("monitors.yaml"));
    edit_config(
        &config,
        &[(
            "group_id: reset-pipeline\n",
            "group_id: reset-pipeline\n  announcements_topic: elsewhere.announcements\n",
        )],
    );
    let stderr = publish(&config);
    let monitors = s.registry.len();
    assert!(
        stderr.contains(&format!(" {monitors} rejected")),
        "{stderr}"
    );
    let state = s.emulator.state.lock().unwrap();
    assert_eq!(state.stats.refused_creates, monitors as u64, "{stderr}");
    for (id, sent) in &state.monitor_messages {
        let verbs: Vec<&str> = sent.iter().map(|(verb, _)| verb.as_str()).collect();
        assert_eq!(verbs, ["create", "modify"], "{id}: {stderr}");
    }
    assert_eq!(
        (
            state.stats.conflicting_resends,
            state.stats.changed_readings
        ),
        (0, 0)
    );
    drop(state);
    assert_eq!(s.rows(), live_rows);
}

/// Runs `replay` over `[from, to]` with `more` arguments; its stderr,
/// after asserting it succeeded.
fn replay(config: &std::path::Path, (from, to): (i64, i64), more: &[&str]) -> String {
    let o = std::process::Command::new(BIN)
        .args(["replay", "--config", config.to_str().unwrap()])
        .args(["--from", &rfc3339(from), "--to", &rfc3339(to)])
        .args(more)
        .env("RESET_CLIENT_SECRET", "demo")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{stderr}");
    stderr
}

fn one_monitor() -> Registry {
    Registry::parse(&one_monitor_yaml(""), "m.yaml").unwrap()
}

/// Monitor A (air: co2, rh), with `fields` added to its record.
fn one_monitor_yaml(fields: &str) -> String {
    let line = monitor_yaml("A", "air", "UTC", "co2: ppm, rh: '%RH'", &[]);
    format!(
        "monitors:\n{}",
        line.replace(
            "monitor_serial_id: A,",
            &format!("monitor_serial_id: A,{fields}")
        )
    )
}

fn co2_and_rh(from_minute: i64, to_minute: i64) -> Vec<SensorEvent> {
    (from_minute..to_minute)
        .map(|i| {
            event(
                "A",
                START + i * 60_000,
                None,
                &[("co2", Some(500.0 + i as f64)), ("rh", Some(40.0))],
            )
        })
        .collect()
}

async fn a_description_changed_while_stopped_reaches_reset_as_modify(kind: BrokerKind) {
    let s = setup(kind, one_monitor()).await;
    // Each start: the description as it is then, two more hours of samples.
    let mut hours = 0;
    let mut start_with = |label: &str| {
        std::fs::write(s.dir.path().join("monitors.yaml"), one_monitor_yaml(label)).unwrap();
        hours += 2;
        hours
    };
    let labels = ["", " label: Hall,", "", ""];
    for label in labels {
        let hours = start_with(label);
        s.produce(co2_and_rh((hours - 2) * 60, hours * 60)).await;
        // No idle raise (it would make the next start's samples late): the
        // last window waits for the next start's samples.
        let mut expected = expected_rows(&s.registry, &co2_and_rh(0, hours * 60));
        expected.pop_last();
        let config = s.config("");
        edit_config(&config, &[("idle_timeout: 2s", "idle_timeout: 1h")]);
        let p = Pipeline::start(&config, &s.log());
        assert!(
            s.wait_for_rows(expected.len()).await,
            "{}",
            log_tail(&s.log())
        );
        assert!(p.terminate().success());
        assert_eq!(s.rows(), expected);
    }
    // Created once; the label given (B) and taken away again (A) are two
    // changes with ids of their own; the last start, with nothing changed,
    // sent no monitors message at all.
    s.assert_a_created_then_changed_twice();
    // Nothing was refused, so nothing was dead-lettered.
    let letters = read_topic(&s.broker.bootstrap, "sensor-events.dlq");
    assert!(letters.is_empty(), "{letters:?}");
}

/// A changed description (B) reaches RESET, its ack is lost, the pipeline
/// is killed, and the registry goes back to A while it is down: RESET holds
/// B, so the restart must send A again, as a change of its own.
async fn a_change_reset_took_unanswered_is_undone_when_the_registry_goes_back(kind: BrokerKind) {
    let s = setup(kind, one_monitor()).await;
    let monitors = s.dir.path().join("monitors.yaml");
    let messages = || s.monitor_messages("A");
    let config = s.config("");
    // No idle raise: the last window waits for the next start's samples.
    edit_config(&config, &[("idle_timeout: 2s", "idle_timeout: 1h")]);
    // Start 1: A is created and acknowledged.
    std::fs::write(&monitors, one_monitor_yaml("")).unwrap();
    s.produce(co2_and_rh(0, 120)).await;
    let p = Pipeline::start(&config, &s.log());
    assert!(s.wait_for_rows(3).await, "{}", log_tail(&s.log()));
    assert!(p.terminate().success());
    // Start 2: B is taken by RESET, its ack never arrives; killed.
    std::fs::write(&monitors, one_monitor_yaml(" label: Hall,")).unwrap();
    s.emulator.state.lock().unwrap().acks_lost = true;
    s.produce(co2_and_rh(120, 240)).await;
    let p = Pipeline::start(&config, &s.log());
    assert!(
        wait_until(Duration::from_secs(60), || messages().len() == 2).await,
        "{:?}\n{}",
        messages(),
        log_tail(&s.log())
    );
    p.kill();
    // Start 3: the registry is back at A.
    std::fs::write(&monitors, one_monitor_yaml("")).unwrap();
    s.emulator.state.lock().unwrap().acks_lost = false;
    s.produce(co2_and_rh(240, 360)).await;
    let mut expected = expected_rows(&s.registry, &co2_and_rh(0, 360));
    expected.pop_last();
    let p = Pipeline::start(&config, &s.log());
    assert!(
        s.wait_for_rows(expected.len()).await,
        "{}",
        log_tail(&s.log())
    );
    let back_at_a = wait_until(Duration::from_secs(30), || messages().len() == 3).await;
    assert!(p.terminate().success());
    let sent = messages();
    assert!(back_at_a, "RESET was not told A again: {sent:?}");
    s.assert_a_created_then_changed_twice();
    assert_eq!(s.rows(), expected);
}

/// Monitor A's time zone changes while the pipeline is stopped, after RESET
/// took readings whose acks were lost: the restart sends those windows
/// again as they were (UTC), and only windows of later samples in the new
/// zone (Kathmandu, whose windows end at :15 and :45 UTC).
/// A replay of the whole range afterwards sends them as they were too.
async fn a_zone_changed_while_stopped_changes_no_window_reset_may_hold(kind: BrokerKind) {
    let s = setup(kind, one_monitor()).await;
    let monitors = s.dir.path().join("monitors.yaml");
    let config = s.config("");
    // No idle raise: the last window waits for the next start's samples.
    edit_config(&config, &[("idle_timeout: 2s", "idle_timeout: 1h")]);
    // Start 1: A (in UTC) is created, and its first window sent.
    std::fs::write(&monitors, one_monitor_yaml("")).unwrap();
    s.produce(co2_and_rh(0, 60)).await;
    let p = Pipeline::start(&config, &s.log());
    assert!(s.wait_for_rows(1).await, "{}", log_tail(&s.log()));
    assert!(p.terminate().success());
    // Start 2: three more hours; RESET takes the next window, its ack is
    // lost; killed.
    s.emulator.state.lock().unwrap().acks_lost = true;
    s.produce(co2_and_rh(60, 240)).await;
    let p = Pipeline::start(&config, &s.log());
    assert!(s.wait_for_rows(2).await, "{}", log_tail(&s.log()));
    p.kill();
    let before_kill = s.rows();
    // Start 3: A is in Kathmandu now. Once the records the killed run may
    // have read are read again, four more hours arrive.
    let kathmandu = one_monitor_yaml("").replace("timezone: UTC", "timezone: Asia/Kathmandu");
    std::fs::write(&monitors, &kathmandu).unwrap();
    s.emulator.state.lock().unwrap().acks_lost = false;
    let p = Pipeline::start(&config, &s.log());
    let log = || std::fs::read_to_string(s.log()).unwrap_or_default();
    let caught_up = "windows through this end keep its earlier shape";
    assert!(
        wait_until(Duration::from_secs(60), || log().contains(caught_up)).await,
        "{}",
        log_tail(&s.log())
    );
    s.produce(co2_and_rh(240, 480)).await;
    // The samples read before the kill end with minute 239: its window (and
    // the sample at minute 240, at its end) keeps UTC.
    let mut expected = expected_rows(&s.registry, &co2_and_rh(0, 241));
    let moved = Arc::new(Registry::parse(&kathmandu, "m.yaml").unwrap());
    let mut later = expected_rows(&moved, &co2_and_rh(241, 480));
    later.pop_last();
    expected.extend(later);
    let all_there = s.wait_for_rows(expected.len()).await;
    assert!(p.terminate().success());
    assert!(all_there, "{:#?}\n{}", s.rows().keys(), log_tail(&s.log()));
    let rows = s.rows();
    for (key, row) in &before_kill {
        assert_eq!(rows.get(key), Some(row), "a window RESET took changed");
    }
    assert_eq!(rows, expected);
    s.assert_nothing_conflicting_changed_or_refused();
    // A replay of the range, publishing, builds each window on the shape
    // `run` built it on (the UTC one kept in the announcements store, then
    // Kathmandu's): RESET is sent every window again as it holds it, and
    // no other. The window still open when `run` stopped (ending 495
    // minutes in) lies past the range.
    let (from, to) = (START, START + 470 * 60_000);
    // A dry run shows exactly what the publishing replay sends: every
    // message one RESET holds, byte for byte, and each window of the range
    // as RESET holds it.
    let dry = s.dir.path().join("dry.jsonl");
    let stderr = replay(&config, (from, to), &["--dry-run", dry.to_str().unwrap()]);
    let shown: Vec<Value> = std::fs::read_to_string(&dry)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    {
        let state = s.emulator.state.lock().unwrap();
        for line in &shown {
            let id = line["payload"]["message_id"].as_str().unwrap_or_default();
            assert_eq!(
                state.payloads.get(id),
                Some(&line["payload"]),
                "the dry run shows a message RESET does not hold\n{stderr}"
            );
        }
    }
    let inside: BTreeMap<_, _> = expected
        .iter()
        .filter(|((_, time), _)| ms(time) - 1_800_000 >= from && ms(time) <= to)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let dry_rows = rows_of(
        shown
            .iter()
            .filter(|e| e["event"] == "readings")
            .map(|e| e["payload"].clone()),
    );
    assert_eq!(dry_rows, inside, "{stderr}");
    let before = s.emulator.state.lock().unwrap().stats.clone();
    let stderr = replay(&config, (from, to), &[]);
    let stats = s.emulator.state.lock().unwrap().stats.clone();
    assert!(
        stats.identical_resends > before.identical_resends,
        "{stats:?}\n{stderr}"
    );
    assert_eq!(s.rows(), expected, "{stderr}");
    assert_eq!(stats.regrouped_readings, 0, "{stats:?}");
    s.assert_nothing_conflicting_changed_or_refused();
}

async fn late_samples_are_dead_lettered_and_idle_partitions_close_their_windows(kind: BrokerKind) {
    let s = setup(kind, one_monitor()).await;
    let t = START;
    let mut events: Vec<SensorEvent> = (0..90)
        .map(|i| {
            event(
                "A",
                t + i * 60_000,
                None,
                &[("co2", Some(400.0 + i as f64))],
            )
        })
        .collect();
    // 90 minutes in, a sample for the first window: later than the 10-minute lateness.
    events.push(event("A", t + 60_000, None, &[("co2", Some(9_999.0))]));
    let expected = expected_rows(&s.registry, &events[..90]);
    s.produce(events).await;
    let p = Pipeline::start(&s.config(""), &s.log());
    // The last window only closes when the idle partition's watermark is raised.
    assert!(
        s.wait_for_rows(expected.len()).await,
        "{}",
        log_tail(&s.log())
    );
    assert!(p.terminate().success());
    assert_eq!(s.rows(), expected, "the late sample changed nothing");
    let letters = read_topic(&s.broker.bootstrap, "sensor-events.dlq");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["reason"], "late");
    assert_eq!(letters[0]["topic"], "sensor-events");
    assert!(letters[0]["offset"].as_i64().unwrap() >= 90);
}

async fn bad_records_are_dead_lettered_with_origin_and_good_windows_all_sent(kind: BrokerKind) {
    let s = setup(kind, one_monitor()).await;
    let t = START;
    let good = co2_and_rh(0, 120);
    let expected = expected_rows(&s.registry, &good);
    // Two events from broken clocks amid the good ones: one in microseconds,
    // one two hours ahead of now, which only its record's timestamp (now,
    // stamped by the producer) tells apart from a good one. Taken, either
    // would raise the watermark past every later sample.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    s.produce(good[..60].to_vec()).await;
    for at in [t * 1000, now + 2 * 3_600_000] {
        let e = encode_avro(&event("A", at, None, &[("co2", Some(1.0))]));
        send(&s.broker.bootstrap, "sensor-events", "A", Some(&e)).await;
    }
    s.produce(good[60..].to_vec()).await;
    // Bad ones after the good ones, in the same partition as monitor A.
    let bad: Vec<Vec<u8>> = vec![
        b"\x00\x01garbage".to_vec(),
        encode_avro(&event("NOBODY", t + 7_200_000, None, &[("co2", Some(1.0))])),
        encode_avro(&event("A", t + 7_200_000, None, &[("rh", Some(150.0))])),
    ];
    for b in &bad {
        send(&s.broker.bootstrap, "sensor-events", "A", Some(b)).await;
    }
    let p = Pipeline::start(&s.config(""), &s.log());
    assert!(
        s.wait_for_rows(expected.len()).await,
        "{}",
        log_tail(&s.log())
    );
    // The progress that covers every record, the last dead letter's included.
    let bootstrap = s.broker.bootstrap.clone();
    let covered = || {
        read_topic(&bootstrap, "reset-pipeline.progress")
            .iter()
            .any(|p| p["offset"] == 125)
    };
    assert!(
        wait_until(Duration::from_secs(30), covered).await,
        "{}",
        log_tail(&s.log())
    );
    assert!(p.terminate().success());
    assert_eq!(s.rows(), expected);
    let letters = read_topic(&s.broker.bootstrap, "sensor-events.dlq");
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "implausible_time",
            "implausible_time",
            "decode",
            "unknown_monitor",
            "impossible"
        ],
        "{letters:?}"
    );
    let partition = letters[0]["partition"].as_i64().unwrap();
    let offsets: Vec<i64> = letters
        .iter()
        .map(|l| l["offset"].as_i64().unwrap())
        .collect();
    assert!(letters
        .iter()
        .all(|l| l["partition"].as_i64() == Some(partition) && l["topic"] == "sensor-events"));
    assert_eq!(
        offsets,
        [60, 61, 122, 123, 124],
        "each bad record's own offset, none skipped"
    );
}

/// A `monitors.yaml` entry as a registry topic record (JSON).
fn registry_record(id: &str, label: &str) -> String {
    serde_json::json!({
        "connection_id": id, "module": "air", "timezone": "UTC", "label": label,
        "monitor_brand": "B", "monitor_sku": "S", "monitor_serial_id": id,
        "parameters": {"co2": "ppm"},
    })
    .to_string()
}

fn co2(id: &str, from_minute: i64, to_minute: i64) -> Vec<SensorEvent> {
    (from_minute..to_minute)
        .map(|i| {
            event(
                id,
                START + i * 60_000,
                None,
                &[("co2", Some(500.0 + i as f64))],
            )
        })
        .collect()
}

async fn the_registry_topic_adds_monitors_and_changes_their_description_and_zone_while_running(
    kind: BrokerKind,
) {
    let moved = |id, label| registry_record(id, label).replace("\"UTC\"", "\"Asia/Kathmandu\"");
    let mut topics = TOPICS.to_vec();
    topics.push(("monitor-registry", 1));
    let broker = Broker::start(kind, &topics);
    let emulator = serve("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
        .await
        .unwrap();
    let dir = TestDir::new("the pipeline's config, registry and log");
    let log = dir.path().join("pipeline.log");
    let bootstrap = broker.bootstrap.clone();
    send(
        &bootstrap,
        "monitor-registry",
        "A",
        Some(registry_record("A", "Lobby").as_bytes()),
    )
    .await;
    send(
        &bootstrap,
        "monitor-registry",
        "X",
        Some("{not a monitor".as_bytes()),
    )
    .await;
    // Only the topic: no monitors file.
    let config = write_config(dir.path(), &bootstrap, emulator.addr, "");
    edit_config(
        &config,
        &[("  file: monitors.yaml", "  topic: monitor-registry")],
    );
    let first = co2("A", 0, 60);
    reset_pipeline::produce::produce_events(
        &config_for(&bootstrap),
        "sensor-events",
        first.clone(),
    )
    .await
    .unwrap();
    let p = Pipeline::start(&config, &log);
    let state = Arc::clone(&emulator.state);
    let rows = |n| {
        let state = Arc::clone(&state);
        move || state.lock().unwrap().readings.len() >= n
    };
    assert!(
        wait_until(Duration::from_secs(120), rows(2)).await,
        "{}",
        log_tail(&log)
    );
    assert_eq!(state.lock().unwrap().monitors["A"].data["label"], "Lobby");

    // While it runs: A is described anew and moves to Kathmandu (whose
    // windows end at :15 and :45 UTC); B appears, and moves there at once
    // (both records most likely in one poll of the topic).
    send(
        &bootstrap,
        "monitor-registry",
        "A",
        Some(moved("A", "Atrium").as_bytes()),
    )
    .await;
    send(
        &bootstrap,
        "monitor-registry",
        "B",
        Some(registry_record("B", "Roof").as_bytes()),
    )
    .await;
    send(
        &bootstrap,
        "monitor-registry",
        "B",
        Some(moved("B", "Roof").as_bytes()),
    )
    .await;
    let logged = |needle: &'static str| {
        let log = log.clone();
        move || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(needle)
        }
    };
    assert!(
        wait_until(
            Duration::from_secs(30),
            logged("connection_id=\"B\" change=\"reshaped\"")
        )
        .await,
        "{}",
        log_tail(&log)
    );
    let mut second: Vec<SensorEvent> = co2("A", 60, 120)
        .into_iter()
        .chain(co2("B", 60, 120))
        .collect();
    second.sort_by_key(|e| e.event_time);
    reset_pipeline::produce::produce_events(
        &config_for(&bootstrap),
        "sensor-events",
        second.clone(),
    )
    .await
    .unwrap();
    let in_zone = |zone| {
        let yaml = format!(
            "monitors:\n{}{}",
            monitor_yaml("A", "air", zone, "co2: ppm", &[]),
            monitor_yaml("B", "air", "Asia/Kathmandu", "co2: ppm", &[])
        );
        Arc::new(Registry::parse(&yaml, "m.yaml").unwrap())
    };
    // A's windows through that of its latest sample read when the change
    // came (minute 59: the window ending at minute 60, whose end sample is
    // in the second part) keep UTC; later ones are in Kathmandu.
    let (early, late): (Vec<SensorEvent>, Vec<SensorEvent>) = first
        .into_iter()
        .chain(second)
        .partition(|e| e.connection_id == "B" || e.event_time <= START + 60 * 60_000);
    let mut expected = expected_rows(&in_zone("UTC"), &early);
    expected.extend(expected_rows(&in_zone("Asia/Kathmandu"), &late));
    assert_eq!(
        expected.len(),
        9,
        "A: three windows in UTC, three in Kathmandu; B: three in Kathmandu"
    );
    assert!(
        wait_until(Duration::from_secs(120), rows(expected.len())).await,
        "{}",
        log_tail(&log)
    );
    assert!(p.terminate().success());
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
    let state = emulator.state.lock().unwrap();
    assert_eq!(state.monitors["A"].data["label"], "Atrium");
    assert_eq!(state.monitors["B"].data["label"], "Roof");
    let modifies: Vec<&serde_json::Value> = state
        .payloads
        .values()
        .filter(|p| p["message_type"] == "modify")
        .collect();
    assert_eq!(modifies.len(), 1, "{modifies:?}");
    assert_eq!(modifies[0]["data"]["label"], "Atrium");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("monitor registry record refused"), "{text}");
    assert!(text.contains("change=\"reshaped\""), "{text}");
    assert_eq!(state.stats.conflicting_resends, 0);
}

/// Credentials cannot change while `replay` runs: once RESET refuses them,
/// a replay stops at once and says so, rather than waiting for ever with
/// nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_whose_credentials_reset_refuses_stops_at_once() {
    let s = setup(BrokerKind::Mock, one_monitor()).await;
    s.produce(co2_and_rh(0, 120)).await;
    let config = s.config("");
    let mut child = std::process::Command::new(BIN)
        .args(["replay", "--config", config.to_str().unwrap()])
        .args([
            "--from",
            &rfc3339(START),
            "--to",
            &rfc3339(START + 7_200_000),
        ])
        .env("RESET_CLIENT_SECRET", "not-the-secret")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let read = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let mut status = None;
    let ended = wait_until(Duration::from_secs(60), || {
        status = child.try_wait().unwrap();
        status.is_some()
    })
    .await;
    if !ended {
        child.kill().unwrap();
    }
    let stderr = read.join().unwrap();
    assert!(
        ended,
        "replay still running a minute after RESET refused it:\n{stderr}"
    );
    assert!(!status.unwrap().success(), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        error.contains("refuses the credentials") && error.contains("\"demo\""),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
    assert_eq!(s.emulator.state.lock().unwrap().stats.messages, 0);
}
