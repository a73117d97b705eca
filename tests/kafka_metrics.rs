//! Operations on the live path: `/readyz` is not ready until RESET has
//! authenticated the pipeline, `/metrics` (parsed as Prometheus text)
//! moved by exactly what the run implies, and a real Prometheus scrapes it
//! and answers queries on its series.

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
            ("reset-pipeline.announcements", 1),
            ("sensor-events.dlq", 1),
        ],
    );
    let dir = TestDir::new("the pipeline's config, registry and log");
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
    edit_config(
        &config,
        &[("listen: 127.0.0.1:0", &format!("listen: {http}"))],
    );
    let pipeline = Pipeline::start(&config, &dir.path().join("pipeline.log"));
    assert!(
        wait_until(Duration::from_secs(30), || std::net::TcpStream::connect(
            &http
        )
        .is_ok())
        .await
    );
    assert_eq!(get(&http, "/healthz").await.0, 200);
    // Asked again and again for 3 s: never ready while RESET is not there.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        let (status, body) = get(&http, "/readyz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("reset_authenticated=false"), "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

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
    // The gauges, set every second, have caught up: nothing in flight, no
    // window open.
    let settled = || {
        http_get(&http, "/metrics").is_ok_and(|(_, text)| {
            let m = scrape(&text);
            m.get("reset_pipeline_in_flight_messages{}") == Some(&0.0)
                && m.get("reset_pipeline_open_windows{}") == Some(&0.0)
        })
    };
    assert!(wait_until(Duration::from_secs(30), settled).await);

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
    scraped_by_prometheus(&http, dir.path(), count as f64).await;
    assert!(pipeline.terminate().success());
}

/// Prometheus: `PROMETHEUS_BIN`, the cache `scripts/test.sh` unpacks it
/// into, or PATH.
fn prometheus_bin() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("PROMETHEUS_BIN") {
        return p.into();
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cached =
        std::path::Path::new(&home).join(".cache/reset-pipeline/prometheus/usr/bin/prometheus");
    if cached.exists() {
        return cached;
    }
    "prometheus".into()
}

/// The value of a PromQL query's first sample, if any.
async fn query(prometheus: &str, promql: &str) -> Option<f64> {
    let url = format!("http://{prometheus}/api/v1/query");
    let answer: serde_json::Value = reqwest::Client::new()
        .get(url)
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

/// A real Prometheus scrapes the pipeline at `http` and gives back its
/// series: the records consumed, and every series name of the pipeline.
async fn scraped_by_prometheus(http: &str, dir: &std::path::Path, consumed: f64) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: reset-pipeline\n    static_configs: [{{targets: ['{http}']}}]\n"),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let mut prometheus = std::process::Command::new(prometheus_bin())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("Prometheus starts (scripts/test.sh unpacks it into the cache)");
    let mut got = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        got = query(&listen, "reset_pipeline_records_consumed_total").await;
        if got == Some(consumed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let names = query(
        &listen,
        r#"count(count by (__name__) ({__name__=~"reset_pipeline_.+"}))"#,
    )
    .await;
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    assert_eq!(got, Some(consumed), "Prometheus's answer; its log:\n{log}");
    assert!(
        names.is_some_and(|n| n >= 20.0),
        "{names:?} series names of the pipeline"
    );
    eprintln!(
        "Prometheus scraped {} reset_pipeline_* series names",
        names.unwrap_or(0.0)
    );
}

/// A fixed-offset zone in which it is now between noon and 1 pm, so that
/// "yesterday" cannot change while the test runs; and that zone's
/// yesterday midnight, as epoch milliseconds.
fn zone_at_noon(now_ms: i64) -> (String, i64) {
    let utc_hour = (now_ms / 3_600_000).rem_euclid(24);
    let offset = 12 - utc_hour; // -11 ..= 12 hours east of UTC
                                // The Etc zones' signs are inverted: Etc/GMT-5 is UTC+5.
    let zone = match offset {
        0 => "Etc/UTC".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    let local_now = now_ms + offset * 3_600_000;
    let local_midnight_today = local_now - local_now.rem_euclid(86_400_000);
    let yesterday = local_midnight_today - 86_400_000 - offset * 3_600_000;
    (zone, yesterday)
}

/// Events of one monitor, one every 10 minutes in `[from, to)`.
fn every_ten_minutes(id: &str, from: i64, to: i64) -> Vec<reset_pipeline::event::SensorEvent> {
    (0..)
        .map(|k| from + 5 * 60_000 + k * 600_000)
        .take_while(|t| *t < to)
        .map(|t| reset_pipeline::event::SensorEvent {
            connection_id: id.to_string(),
            event_time: t,
            channel_id: None,
            measurements: vec![reset_pipeline::event::Measurement {
                parameter: "co2".into(),
                value: reset_pipeline::event::SampleValue::Number(500.0),
                unit: None,
            }],
            bin_emptied: false,
        })
        .collect()
}

/// The completeness gauges on wall-clock data: monitor LIVE sends every
/// ten minutes from yesterday's local midnight until now; monitor GONE
/// sent through yesterday morning only (its first 24 windows) and has
/// been silent since. Then: one silent monitor, and of the 96 windows of
/// their yesterday, 48 + 24 with data.
async fn the_completeness_gauges_count_silent_monitors_and_yesterdays_windows(kind: BrokerKind) {
    completeness_gauges_settle(kind, EmulatorOptions::default(), (1.0, 96.0, 72.0)).await;
}

on_both_brokers!(the_completeness_gauges_count_silent_monitors_and_yesterdays_windows);

/// A window counts as covered once RESET acknowledged its reading, not
/// when the reading was formed: with RESET failing every message of GONE
/// (each given up, and dead-lettered), only LIVE's 48 windows of
/// yesterday are covered.
async fn windows_whose_readings_reset_refused_are_not_covered(kind: BrokerKind) {
    let options = EmulatorOptions {
        poison_connection_id: Some("GONE".into()),
        ..EmulatorOptions::default()
    };
    completeness_gauges_settle(kind, options, (1.0, 96.0, 48.0)).await;
}

on_both_brokers!(windows_whose_readings_reset_refused_are_not_covered);

/// Runs the pipeline on LIVE's and GONE's samples (above) against an
/// emulator with `options`: once every record is consumed and every
/// message answered, the gauges (silent, expected, covered), computed
/// every 10 s, are `expected` at their next computation.
async fn completeness_gauges_settle(
    kind: BrokerKind,
    options: EmulatorOptions,
    expected: (f64, f64, f64),
) {
    let broker = Broker::start(kind, TOPICS);
    let dir = TestDir::new("the pipeline's config, registry and log");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (zone, yesterday) = zone_at_noon(now);
    let mut monitors = String::from("monitors:\n");
    for id in ["LIVE", "GONE"] {
        monitors.push_str(&format!("  - {{connection_id: {id}, module: air, timezone: {zone}, monitor_brand: B, monitor_sku: S, monitor_serial_id: {id}, parameters: {{co2: ppm}}}}\n"));
    }
    std::fs::write(dir.path().join("monitors.yaml"), monitors).unwrap();
    let mut events = every_ten_minutes("LIVE", yesterday, now - 60_000);
    events.extend(every_ten_minutes(
        "GONE",
        yesterday,
        yesterday + 12 * 3_600_000,
    ));
    events.sort_by_key(|e| e.event_time);
    let records = events.len() as f64;
    produce_to(&broker.bootstrap, events).await;

    let emulator = serve(
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        options,
    )
    .await
    .unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let config = write_config(dir.path(), &broker.bootstrap, emulator.addr, "");
    // A message RESET keeps failing is given up after its third attempt.
    edit_config(
        &config,
        &[
            ("listen: 127.0.0.1:0", &format!("listen: {http}")),
            (
                "  ack_timeout: 3s\n",
                "  ack_timeout: 3s\n  max_attempts: 3\n",
            ),
        ],
    );
    let pipeline = Pipeline::start(&config, &dir.path().join("pipeline.log"));
    let gauges = || {
        http_get(&http, "/metrics").ok().map(|(_, text)| {
            let m = scrape(&text);
            let get = |k: &str| m.get(k).copied().unwrap_or(-1.0);
            (
                get("reset_pipeline_silent_monitors{}"),
                get("reset_pipeline_last_day_expected_windows{}"),
                get("reset_pipeline_last_day_covered_windows{}"),
            )
        })
    };
    // Every record consumed and every message answered: from then on the
    // gauges change only with the clock (not within this test's minutes).
    let all_answered = || {
        http_get(&http, "/metrics").ok().is_some_and(|(_, text)| {
            let m = scrape(&text);
            m.get("reset_pipeline_records_consumed_total{}") == Some(&records)
                && m.get("reset_pipeline_in_flight_messages{}") == Some(&0.0)
        })
    };
    assert!(
        wait_until(Duration::from_secs(90), all_answered).await,
        "not everything was consumed and answered; gauges {:?}",
        gauges()
    );
    let answered_at = std::time::Instant::now();
    let expected = Some(expected);
    let settled = wait_until(Duration::from_secs(90), || {
        answered_at.elapsed() > Duration::from_secs(11) && gauges() == expected
    })
    .await;
    assert!(
        settled,
        "(silent, expected, with data) = {:?}, not {expected:?}; zone {zone}",
        gauges()
    );
    assert!(pipeline.terminate().success());
}
