//! Production faults on real broker processes, each test on both brokers:
//! a broker that stops answering (stopped with SIGSTOP) shows as a stalled
//! input, and reading resumes, exact, when it answers again; a monitor whose
//! every message RESET answers 10500 is dead-lettered while everything else
//! arrives and the partitions' progress reaches their ends; a flood of
//! undecodable records between good ones is dead-lettered whole; RESET
//! down while a backlog is read pauses the input without losing the group,
//! and SIGTERM in the outage drains in time and commits only what RESET
//! acknowledged; the broker down for 10 s mid-run (the mock's broker set
//! down, tansu killed and started again on its storage) is waited out,
//! logged now and then, and the end is exact; writes refused by the broker
//! for a while (mock only) hold everything back, and the end is exact; an
//! input topic created after the pipeline started is read without a
//! restart.

#[macro_use]
mod common;
use common::kafka::*;
use common::proxy::Proxy;
use reset_pipeline::config::InputFormat;
use reset_pipeline::emulator::EmulatorOptions;
use reset_pipeline::synthetic::fleet;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

on_both_brokers!(
    a_broker_that_stops_answering_is_reported_as_a_stall_and_reading_resumes,
    a_poison_monitor_is_dead_lettered_and_everything_else_arrives,
    a_flood_of_undecodable_records_is_dead_lettered_and_the_good_windows_are_exact,
    a_reset_outage_pauses_the_input_and_sigterm_drains_in_time,
    the_broker_down_mid_run_is_waited_out_and_the_end_is_exact,
    the_broker_down_at_start_is_waited_for_and_the_end_is_exact,
    random_10500s_end_exact_with_few_resends,
    random_10500s_and_dropped_connections_end_exact_with_few_resends,
    replicas_join_and_leave_while_messages_are_in_flight,
    an_input_topic_created_after_start_is_read_without_a_restart,
);

/// One `run` reads a backlog while RESET cannot be reached; two more join
/// and are given partitions with nothing of them acknowledged; RESET comes
/// back (answering after 20 ms, refusing 5% of messages), and once some of
/// the readings are in, the two leave again by SIGTERM, so partitions move
/// twice with messages unanswered. The end is exact, nothing is sent again
/// with other bytes, and the progress each partition ends with (its highest
/// owner's) is at its end. RESET holding every reading does not mean that:
/// windows a leaving replica had sent and not yet written progress for are
/// read and sent again, identical, by the survivor, which is stopped only
/// once it has written every partition's end.
async fn replicas_join_and_leave_while_messages_are_in_flight(kind: BrokerKind) {
    let Setup {
        broker,
        emulator,
        dir,
        registry,
    } = setup_with(
        kind,
        fleet(20),
        EmulatorOptions {
            fail_rate: 0.05,
            ack_delay: Duration::from_millis(20),
            seed: Some(5),
            ..Default::default()
        },
    )
    .await;
    let events = samples(&registry, 10, 120 * 24);
    let expected = expected_rows(&registry, &events);
    produce_to(&broker.bootstrap, events).await;
    let proxy = Proxy::start(emulator.addr).await;
    proxy.down();
    let config = write_config(dir.path(), &broker.bootstrap, proxy.addr, "");
    let log = dir.path().join("pipeline.log");
    let consumed = |p: &Pipeline| {
        p.metric("reset_pipeline_records_consumed_total{}")
            .is_some_and(|n| n > 0.0)
    };
    let first = Pipeline::start(&config, &log);
    assert!(
        wait_until(Duration::from_secs(120), || consumed(&first)).await,
        "the first replica read nothing"
    );
    let joined = [
        Pipeline::start(&config, &log),
        Pipeline::start(&config, &log),
    ];
    // Nothing is acknowledged yet: each newcomer that is given a partition
    // reads it from its start.
    assert!(
        wait_until(Duration::from_secs(180), || joined.iter().all(consumed)).await,
        "the newcomers read nothing"
    );
    proxy.up();
    let readings = || emulator.state.lock().unwrap().readings.len();
    assert!(
        wait_until(Duration::from_secs(120), || readings() > expected.len() / 4).await,
        "RESET got too little"
    );
    for p in joined {
        let status = p.terminate();
        assert!(status.success(), "{status:?}");
    }
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(240)).await;
    // RESET may hold every reading while a partition's last windows,
    // acknowledged to a replica that left before it could write their
    // progress, are being read and sent again by the survivor: it is
    // stopped once every partition's progress is at its end.
    let mut reader = progress_reader(&broker.bootstrap);
    let ends = partition_ends(&broker.bootstrap, "sensor-events", 3);
    let behind_when_received = progress_behind(&mut reader, &ends);
    let waited = std::time::Instant::now();
    assert_progress_reaches_the_ends(&mut reader, &ends, Duration::from_secs(120)).await;
    eprintln!(
        "{kind:?}: when RESET held every reading, progress behind (partition, offset, end): {behind_when_received:?}; at the ends {:.1?} later",
        waited.elapsed()
    );
    assert!(first.terminate().success());
    let state = emulator.state.lock().unwrap();
    assert_eq!(emulator_rows(&state), expected);
    let stats = state.stats.clone();
    assert_eq!(stats.conflicting_resends, 0, "{stats:?}");
    // No readings before their monitor's create (RESET answers those 10400).
    assert_eq!(stats.errors_10400, 0, "{stats:?}");
    let distinct = state.payloads.len() as f64;
    eprintln!(
        "{kind:?}: replicas joined and left; {distinct} messages, {} received, {:.3} re-sends per message ({stats:?})",
        stats.messages,
        (stats.messages as f64 - distinct) / distinct
    );
    drop(state);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.matches("partition assigned").count() >= 6,
        "partitions did not move:\n{log}"
    );
    // What a restart would read, after the survivor's drain: every
    // partition at its end, written by an owner after the first.
    assert_eq!(progress_behind(&mut reader, &ends), Vec::new());
    let latest = reader.latest(Duration::from_secs(60)).unwrap();
    for partition in 0..ends.len() as i32 {
        let stored = &latest[&("sensor-events".to_string(), partition)];
        assert!(stored.epoch >= 2, "partition {partition}: {stored:?}");
    }
}

async fn random_10500s_end_exact_with_few_resends(kind: BrokerKind) {
    let per_message = resends_under_refusals(kind, 0).await;
    assert!(per_message <= 0.15, "{per_message:.3} re-sends per message");
}

async fn random_10500s_and_dropped_connections_end_exact_with_few_resends(kind: BrokerKind) {
    let per_message = resends_under_refusals(kind, 97).await;
    assert!(per_message <= 0.35, "{per_message:.3} re-sends per message");
}

/// Two days of 22 monitors (over 2,000 messages) against an emulator that
/// answers 10% of messages 10500 and, with `disconnect_every`, drops the
/// connection at every such message: the end is exact, nothing is sent
/// again with other bytes, and without dropped connections no accepted
/// message is sent again. Returns the re-sends per distinct message.
async fn resends_under_refusals(kind: BrokerKind, disconnect_every: u64) -> f64 {
    let Setup {
        broker,
        emulator,
        dir,
        registry,
    } = setup_with(
        kind,
        fleet(22),
        EmulatorOptions {
            fail_rate: 0.1,
            disconnect_every,
            seed: Some(97),
            ..Default::default()
        },
    )
    .await;
    // A sample every 5 minutes: the mock cluster keeps at most 5 MB of a
    // partition and drops the oldest records beyond.
    let events: Vec<_> = reset_pipeline::synthetic::SampleStream::new(
        std::sync::Arc::clone(&registry),
        START,
        300_000,
        9,
    )
    .take(registry.len() * 12 * 48)
    .collect();
    let expected = expected_rows(&registry, &events);
    produce_to(&broker.bootstrap, events).await;
    let config = write_config(dir.path(), &broker.bootstrap, emulator.addr, "");
    let pipeline = Pipeline::start(&config, &dir.path().join("pipeline.log"));
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(240)).await;
    assert!(pipeline.terminate().success());
    let state = emulator.state.lock().unwrap();
    assert_eq!(emulator_rows(&state), expected);
    let stats = state.stats.clone();
    assert_eq!(stats.conflicting_resends, 0, "{stats:?}");
    if disconnect_every == 0 {
        assert_eq!(stats.identical_resends, 0, "{stats:?}");
    }
    let distinct = state.payloads.len() as f64;
    assert!(distinct >= 2000.0, "{distinct} messages");
    let per_message = (stats.messages as f64 - distinct) / distinct;
    eprintln!(
        "{kind:?}, 10% 10500s, a dropped connection every {disconnect_every} messages: {distinct} messages, {} received, {per_message:.3} re-sends per message ({stats:?})",
        stats.messages
    );
    per_message
}

async fn the_broker_down_mid_run_is_waited_out_and_the_end_is_exact(kind: BrokerKind) {
    const OUTAGE: Duration = Duration::from_secs(10);
    let Setup {
        mut broker,
        emulator,
        dir,
        registry,
    } = setup_with(kind, fleet(20), EmulatorOptions::default()).await;
    let events = samples(&registry, 8, 120 * 24);
    let expected = expected_rows(&registry, &events);
    produce_to(&broker.bootstrap, events).await;
    let config = write_config(dir.path(), &broker.bootstrap, emulator.addr, "");
    let log = dir.path().join("pipeline.log");
    let mut pipeline = Pipeline::start(&config, &log);
    let consumed = || {
        pipeline
            .metric("reset_pipeline_records_consumed_total{}")
            .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(120), || consumed() > 0.0).await,
        "nothing consumed"
    );
    let before = std::fs::read_to_string(&log).unwrap().lines().count();
    broker.down();
    let down = std::time::Instant::now();
    while down.elapsed() < OUTAGE {
        assert!(pipeline.is_running(), "run ended with the broker down");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    broker.up();
    let outage_log: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .skip(before)
        .map(str::to_string)
        .collect();

    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(240)).await;
    assert!(pipeline.is_running());
    assert!(pipeline.terminate().success());
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
    let stats = emulator.state.lock().unwrap().stats.clone();
    assert_eq!(stats.conflicting_resends, 0, "{stats:?}");
    // The outage is told now and then, not at every poll: no line of the
    // pipeline's own repeats more than once per 10 s of outage (and one).
    let mut repeats: BTreeMap<String, usize> = BTreeMap::new();
    for line in &outage_log {
        if line.contains("WARN") || line.contains("ERROR") {
            *repeats.entry(without_numbers(line)).or_default() += 1;
        }
    }
    let allowed = (OUTAGE.as_secs() / 10 + 1) as usize;
    let noisy: Vec<_> = repeats.iter().filter(|(_, n)| **n > allowed).collect();
    assert!(
        noisy.is_empty(),
        "lines repeated during the outage: {noisy:#?}"
    );
    eprintln!("{kind:?}: {} log lines during the outage", outage_log.len());
}

/// `run` started while the broker is down (a pod scheduled before Kafka is
/// back) waits for it, saying so, instead of exiting, and exits 0 at once
/// when told to stop meanwhile; it authenticates at RESET while it waits;
/// once the broker is up, the end is exact.
async fn the_broker_down_at_start_is_waited_for_and_the_end_is_exact(kind: BrokerKind) {
    let Setup {
        mut broker,
        emulator,
        dir,
        registry,
    } = setup_with(kind, fleet(10), EmulatorOptions::default()).await;
    let events = samples(&registry, 9, 120 * 6);
    let expected = expected_rows(&registry, &events);
    produce_to(&broker.bootstrap, events).await;
    let config = write_config(dir.path(), &broker.bootstrap, emulator.addr, "");
    broker.down();
    // SIGTERM during the wait is served: the first pipeline exits 0 at once.
    let first_log = dir.path().join("first.log");
    let first = Pipeline::start(&config, &first_log);
    let waiting_in = |log: &std::path::Path| {
        std::fs::read_to_string(log).is_ok_and(|l| l.contains("waiting for Kafka"))
    };
    assert!(
        wait_until(Duration::from_secs(60), || waiting_in(&first_log)).await,
        "{}",
        log_tail(&first_log)
    );
    let status = first.terminate_within(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM during the start-up wait: {status:?}\n{}",
        log_tail(&first_log)
    );
    let auths = || emulator.state.lock().unwrap().stats.auth_ok;
    let auths_before = auths();
    let log = dir.path().join("pipeline.log");
    let mut pipeline = Pipeline::start(&config, &log);
    let told = wait_until(Duration::from_secs(60), || waiting_in(&log)).await;
    assert!(
        told && pipeline.is_running(),
        "run did not wait for the broker (running: {}):\n{}",
        pipeline.is_running(),
        log_tail(&log)
    );
    let authenticated = wait_until(Duration::from_secs(60), || auths() > auths_before).await;
    assert!(
        authenticated,
        "run did not authenticate at RESET while the broker was down ({} auths before it, {} now):\n{}",
        auths_before,
        auths(),
        log_tail(&log)
    );
    broker.up();
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(240)).await;
    assert!(pipeline.terminate().success());
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
}

/// A log line without its time stamp and figures, to count its kind.
fn without_numbers(line: &str) -> String {
    let text = line.split_once(' ').map_or(line, |(_, rest)| rest);
    text.chars().filter(|c| !c.is_ascii_digit()).collect()
}

async fn a_reset_outage_pauses_the_input_and_sigterm_drains_in_time(kind: BrokerKind) {
    const DRAIN: Duration = Duration::from_secs(5);
    const OUTAGE: Duration = Duration::from_secs(15);
    const MAX_QUEUED: usize = 40;
    let Setup {
        broker,
        emulator,
        dir,
        registry,
    } = setup_with(kind, fleet(20), EmulatorOptions::default()).await;
    // Two days: far more records than the loop holds while paused.
    let events = samples(&registry, 7, 120 * 48);
    let total = events.len() as f64;
    let expected = expected_rows(&registry, &events);
    produce_to(&broker.bootstrap, events).await;
    let proxy = Proxy::start(emulator.addr).await;
    // The group would expel a member that stops polling for longer than
    // `max.poll.interval.ms`; the outage lasts longer than that.
    let max_poll_ms = session_timeout_ms(&broker.bootstrap) + 2_000;
    let config = write_config_with(
        dir.path(),
        &broker.bootstrap,
        proxy.addr,
        &format!(", max.poll.interval.ms: \"{max_poll_ms}\""),
        "",
    );
    let queue = format!(
        "  ack_timeout: 3s\n  max_queued: {MAX_QUEUED}\n  drain_timeout: {}s\n",
        DRAIN.as_secs()
    );
    edit_config(&config, &[("  ack_timeout: 3s\n", &queue)]);
    let log = dir.path().join("pipeline.log");
    let pipeline = Pipeline::start(&config, &log);
    let acknowledged = || {
        pipeline
            .metric("reset_pipeline_answers_total{code=10200}")
            .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(120), || acknowledged() > 0.0).await,
        "nothing acknowledged"
    );

    // RESET goes away with most of the backlog unread: the input pauses at
    // the limit, the pod is not ready, the gauge says since when.
    proxy.down();
    let outage = std::time::Instant::now();
    let metric = |name: &str| pipeline.metric(name).unwrap_or(-1.0);
    assert!(
        wait_until(Duration::from_secs(60), || metric(
            "reset_pipeline_paused_partitions{}"
        ) > 0.0)
        .await,
        "the input never paused"
    );
    assert!(
        wait_until(Duration::from_secs(30), || http_get(
            &pipeline.http(),
            "/readyz"
        )
        .is_ok_and(|(status, _)| status == 503))
        .await,
        "still ready with RESET gone"
    );
    let since = || metric("reset_pipeline_waiting_for_reset_since_seconds{}");
    assert!(
        wait_until(Duration::from_secs(10), || since() > 0.0).await,
        "no gauge says since when RESET acknowledged nothing"
    );
    let since = since();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        since > 0.0 && since <= now,
        "waiting since {since}, now {now}"
    );
    // Paused: nothing more is read, records wait, and what is held stays
    // far below the backlog's messages, for longer than the poll interval.
    let consumed = || metric("reset_pipeline_records_consumed_total{}");
    // Records read before the pause took effect are taken first.
    let mut at_pause = -1.0;
    assert!(
        wait_until(Duration::from_secs(20), || {
            let (before, now) = (at_pause, consumed());
            at_pause = now;
            before == now
        })
        .await
    );
    tokio::time::sleep(OUTAGE.saturating_sub(outage.elapsed())).await;
    assert_eq!(consumed(), at_pause, "records read while paused");
    assert!(at_pause < total, "the whole backlog was read: {at_pause}");
    // The input paused at `max_queued` held and resumes at half of it:
    // answers that came in as RESET went away may leave fewer than the
    // limit, never as few as half while paused.
    let held = metric("reset_pipeline_in_flight_messages{}");
    assert!(
        held > (MAX_QUEUED / 2) as f64 && held < expected.len() as f64 / 2.0,
        "{held} messages held while paused, of {}",
        expected.len()
    );
    // Nothing is sent while RESET is away: of the messages counted as sent,
    // those without a final answer are at most the ones on the connection
    // when it went (`max_in_flight`, 16 by default), not all that wait.
    let (_, text) = http_get(&pipeline.http(), "/metrics").unwrap();
    let figures = scrape(&text);
    let total = |prefix: &str| -> f64 {
        let series = figures.iter().filter(|(name, _)| name.starts_with(prefix));
        series.map(|(_, value)| value).sum()
    };
    let sent = total("reset_pipeline_messages_sent_total{");
    let answered = total("reset_pipeline_answers_total{");
    assert!(
        sent - answered <= 16.0,
        "{sent} messages counted as sent, {answered} answered, {held} held, RESET away"
    );

    // SIGTERM in the outage: out in time, with exit 0.
    let status = pipeline
        .terminate_within(DRAIN + Duration::from_secs(5))
        .expect("the drain outlasted its deadline");
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("maximum poll interval"),
        "the consumer left its group during the outage:\n{text}"
    );
    assert!(
        !text.contains("partition revoked"),
        "partitions moved during the outage:\n{text}"
    );
    assert!(text.contains("input paused"), "{text}");

    // RESET back: a new start finishes the job, exactly.
    proxy.up();
    let pipeline = Pipeline::start(&config, &log);
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(180)).await;
    assert!(pipeline.terminate().success());
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
    let stats = emulator.state.lock().unwrap().stats.clone();
    assert_eq!(stats.conflicting_resends, 0, "{stats:?}");
}

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
    let session = format!(
        "session.timeout.ms: \"{}\"",
        session_timeout_ms(&broker.bootstrap)
    );
    edit_config(
        &config,
        &[
            (
                "  group_id: reset-pipeline\n",
                "  group_id: reset-pipeline\n  stall_after: 3s\n",
            ),
            (&session, "session.timeout.ms: \"45000\""),
        ],
    );
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
    edit_config(
        &config,
        &[(
            "  ack_timeout: 3s\n",
            "  ack_timeout: 3s\n  max_attempts: 3\n",
        )],
    );
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
    let ends = partition_ends(&broker.bootstrap, "sensor-events", 3);
    let behind = progress_behind(&mut progress_reader(&broker.bootstrap), &ends);
    assert_eq!(behind, Vec::new(), "(partition, offset, end) behind");
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

/// The broker refuses every write for a while (each produce request
/// answered "not enough replicas", as a cluster short of in-sync replicas
/// does): the announcements store cannot record the `monitors` messages,
/// so nothing reaches RESET (every reading waits behind its monitor's
/// description), and the progress cannot be written, so nothing is
/// committed; the loop still reads the whole input, undecodable records
/// among it, and serves its metrics. Once writes are taken again, the end
/// is exact and every undecodable record is dead-lettered. The records are JSON:
/// this is also the broker test of the JSON input. Only on the mock: tansu
/// cannot be told to refuse writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_refused_for_a_while_hold_everything_back_and_the_end_is_exact() {
    let Setup {
        mut broker,
        emulator,
        dir,
        registry,
    } = setup_with(BrokerKind::Mock, fleet(10), EmulatorOptions::default()).await;
    const UNDECODABLE: usize = 50;
    let events = samples(&registry, 11, 120 * 4);
    let expected = expected_rows(&registry, &events);
    let total = (events.len() + UNDECODABLE) as f64;
    let (before, after) = events.split_at(events.len() / 2);
    produce_as(&broker.bootstrap, InputFormat::Json, before.to_vec()).await;
    produce_raw(&broker.bootstrap, "sensor-events", UNDECODABLE);
    produce_as(&broker.bootstrap, InputFormat::Json, after.to_vec()).await;
    // Writes given up after 2 s: dead letters the broker never took are
    // produced again by the pipeline itself.
    let timeout = r#", message.timeout.ms: "2000""#;
    let config = write_config_with(dir.path(), &broker.bootstrap, emulator.addr, timeout, "");
    edit_config(&config, &[("format: avro", "format: json")]);
    broker.refuse_writes();
    let log = dir.path().join("pipeline.log");
    let mut pipeline = Pipeline::start(&config, &log);
    let metric = |pipeline: &Pipeline, name: &str| pipeline.metric(name).unwrap_or(0.0);
    let letter_refused = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("a dead letter was not written")
    };
    let held = wait_until(Duration::from_secs(120), || {
        metric(&pipeline, "reset_pipeline_records_consumed_total{}") >= total
            && metric(&pipeline, "reset_pipeline_waiting_for_store_messages{}") > 0.0
            && letter_refused()
    })
    .await;
    let messages = emulator.state.lock().unwrap().stats.messages;
    assert!(
        held,
        "consumed {} of {total}, {} messages waiting for the store, a dead letter refused: {}\n{}",
        metric(&pipeline, "reset_pipeline_records_consumed_total{}"),
        metric(&pipeline, "reset_pipeline_waiting_for_store_messages{}"),
        letter_refused(),
        log_tail(&log)
    );
    assert_eq!(
        messages, 0,
        "messages reached RESET before the store recorded their monitors"
    );
    assert_eq!(metric(&pipeline, "reset_pipeline_commits_total{}"), 0.0);
    assert!(pipeline.is_running());

    broker.accept_writes();
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(120)).await;
    assert!(
        wait_until(Duration::from_secs(60), || metric(
            &pipeline,
            "reset_pipeline_commits_total{}"
        ) > 0.0)
        .await,
        "nothing committed once writes were taken:\n{}",
        log_tail(&log)
    );
    assert!(pipeline.terminate().success());
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
    let stats = emulator.state.lock().unwrap().stats.clone();
    assert_eq!(stats.conflicting_resends, 0, "{stats:?}");
    // The dead letters read while writes were refused were written since,
    // those the producer gave up on among them (a letter may be written
    // twice, never lost).
    let letters = read_topic(&broker.bootstrap, "sensor-events.dlq");
    let undecodable: std::collections::HashSet<(i64, i64)> = letters
        .iter()
        .filter(|l| l["reason"] == "decode")
        .map(|l| {
            (
                l["partition"].as_i64().unwrap(),
                l["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(undecodable.len(), UNDECODABLE, "{} letters", letters.len());
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

/// The pipeline deployed before its input topic exists (the producers'
/// side not rolled out yet, or a name mistyped): it says so in its own
/// words, naming the topic, and counts it in a gauge an alert can watch.
/// Once the topic is created and written, its records are read without a
/// restart, well before librdkafka's default 5 minutes between looks at
/// the cluster's topics, and the gauge falls back to 0.
async fn an_input_topic_created_after_start_is_read_without_a_restart(kind: BrokerKind) {
    const LATER: &str = "sensor-events.later";
    let Setup {
        mut broker,
        emulator,
        dir,
        registry,
    } = setup_with(kind, fleet(5), EmulatorOptions::default()).await;
    let config = write_config(dir.path(), &broker.bootstrap, emulator.addr, "");
    edit_config(
        &config,
        &[("topics: [sensor-events]", &format!("topics: [{LATER}]"))],
    );
    let log = dir.path().join("pipeline.log");
    let pipeline = Pipeline::start(&config, &log);
    // Up, subscribed, and with nothing to read.
    let consumed = || pipeline.metric("reset_pipeline_records_consumed_total{}");
    assert!(
        wait_until(Duration::from_secs(60), || consumed() == Some(0.0)).await,
        "the pipeline never served its metrics:\n{}",
        log_tail(&log)
    );
    let missing = || pipeline.metric("reset_pipeline_missing_input_topics{}");
    let told_missing = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.contains("input topic is not on the cluster")
                    && l.contains(&format!("topic={LATER}"))
            })
    };
    assert!(
        wait_until(Duration::from_secs(30), || missing() == Some(1.0)
            && told_missing())
        .await,
        "the missing input topic was not told: gauge {:?}\n{}",
        missing(),
        log_tail(&log)
    );
    broker.create_topic(LATER, 3);
    let events = samples(&registry, 3, 120 * 2);
    let expected = expected_rows(&registry, &events);
    let mut producer = config_for(&broker.bootstrap);
    producer.kafka.topics = vec![LATER.into()];
    reset_pipeline::produce::produce_events(&producer, LATER, events.clone())
        .await
        .unwrap();
    let total = events.len() as f64;
    assert!(
        wait_until(Duration::from_secs(60), || consumed() == Some(total)).await,
        "{:?} of {total} records read a minute after the topic was made:\n{}",
        consumed(),
        log_tail(&log)
    );
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(120)).await;
    assert!(
        wait_until(Duration::from_secs(30), || missing() == Some(0.0)).await,
        "the gauge still counts the topic once it was read: {:?}\n{}",
        missing(),
        log_tail(&log)
    );
    assert!(pipeline.terminate().success());
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
}
