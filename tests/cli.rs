//! The binary as a user runs it: one-line errors that name the file and
//! field, non-zero exits, no panics; the worked example of the README.

mod common;
use common::run_binary as bin;
use std::path::Path;
use std::process::{Command, Output};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `aggregate` over the sample fleet, writing to `out`.
fn aggregate_example(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "aggregate",
        "--monitors",
        "examples/monitors.yaml",
        "--input",
        "examples/events.jsonl",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    bin(&args)
}

#[test]
fn the_readme_example_aggregates_the_sample_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let rejects = dir.path().join("rejects.jsonl");
    let o = aggregate_example(&out, &["--rejects", rejects.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains("4 rejected (unknown_monitor: 1, not_a_number: 1, impossible: 1, late: 1)"),
        "{stderr}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let monitors = lines.iter().filter(|l| l["event"] == "monitors").count();
    assert_eq!(monitors, 5);
    // Each monitor is created before its first readings.
    let mut created = std::collections::HashSet::new();
    for l in &lines {
        let id = l["payload"]["data"]["connection_id"]
            .as_str()
            .unwrap()
            .to_string();
        if l["event"] == "monitors" {
            created.insert(id);
        } else {
            assert!(created.contains(&id), "readings before create for {id}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap().lines().count(),
        4
    );
    // The same input gives byte-identical output.
    let again = dir.path().join("again.jsonl");
    aggregate_example(&again, &[]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn validate_accepts_the_examples() {
    let o = bin(&["validate", "--monitors", "examples/monitors.yaml"]);
    assert!(o.status.success(), "{}", text(&o.stdout));
    assert_eq!(text(&o.stdout), "ok: 5 monitors\n");
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn validate_reports_every_problem_with_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", "monitors:\n  - {connection_id: A, module: air, timezone: Moon/Base, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {co2: ppb}}\n");
    let config = write(dir.path(), "c.yaml", "kafka: {bootstrap_servers: 'k:9092'}\ninput: {format: json}\nreset: {url: 'ftp://x', client_id: me}\nmonitors: {file: m.yaml}\nhttp: {listen: nowhere}\n");
    let o = Command::new(env!("CARGO_BIN_EXE_reset-pipeline"))
        .args(["validate", "--config", &config])
        .env_remove("RESET_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].ends_with("c.yaml: reset.url: \"ftp://x\" must start with http:// or https://"),
        "{out}"
    );
    assert!(lines[1].ends_with("c.yaml: reset.client_secret: is required (RESET_CLIENT_SECRET in the environment is preferred)"), "{out}");
    assert!(lines[2].contains("c.yaml: http.listen:"), "{out}");
    assert!(
        lines[3].contains("m.yaml: monitors[0].timezone: unknown time zone \"Moon/Base\""),
        "{out}"
    );
    assert!(
        lines[4].contains("m.yaml: monitors[0].parameters.co2: unit \"ppb\""),
        "{out}"
    );
    assert_eq!(text(&o.stderr), "error: 5 problem(s) found\n");
}

#[test]
fn bad_invocations_fail_in_one_line_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = write(dir.path(), "bad.yaml", "monitors: [unclosed\n");
    let bad_duration = write(
        dir.path(),
        "d.yaml",
        "windowing: {allowed_lateness: forever}\n",
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "aggregate",
                "--monitors",
                "nope.yaml",
                "--input",
                "examples/events.jsonl",
            ],
            "nope.yaml: cannot read",
        ),
        (
            vec![
                "aggregate",
                "--monitors",
                "examples/monitors.yaml",
                "--input",
                "missing.jsonl",
            ],
            "missing.jsonl: cannot open",
        ),
        (
            vec![
                "aggregate",
                "--monitors",
                &bad_yaml,
                "--input",
                "examples/events.jsonl",
            ],
            "bad.yaml",
        ),
        (
            vec![
                "aggregate",
                "--monitors",
                "examples/monitors.yaml",
                "--input",
                "examples/events.jsonl",
                "--config",
                &bad_duration,
            ],
            "windowing.allowed_lateness: invalid duration \"forever\"",
        ),
        (
            vec!["aggregate", "--frobnicate"],
            "unexpected argument '--frobnicate'",
        ),
    ];
    for (args, expect) in cases {
        let o = bin(&args);
        assert!(!o.status.success(), "{args:?}");
        let err = text(&o.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
    }
}

/// Copies the sample fleet's files into `dir`, for runs that must not touch the originals.
fn sample_copies(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (monitors, events) = (dir.join("monitors.yaml"), dir.join("events.jsonl"));
    std::fs::copy("examples/monitors.yaml", &monitors).unwrap();
    std::fs::copy("examples/events.jsonl", &events).unwrap();
    (monitors, events)
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let (monitors, events) = sample_copies(dir.path());
    let before = (
        std::fs::read(&monitors).unwrap(),
        std::fs::read(&events).unwrap(),
    );
    let hard_link = dir.path().join("link.jsonl");
    std::fs::hard_link(&events, &hard_link).unwrap();
    let other = dir.path().join("out.jsonl");
    let m = monitors.to_str().unwrap();
    let e = events.to_str().unwrap();
    let dotted = format!("{}/./events.jsonl", dir.path().display());
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("--output is --input", vec!["--output", e]),
        (
            "--output is --input by another name",
            vec!["--output", &dotted],
        ),
        (
            "--output is --input by a hard link",
            vec!["--output", hard_link.to_str().unwrap()],
        ),
        ("--rejects is --input", vec!["--rejects", e]),
        ("--output is --monitors", vec!["--output", m]),
        (
            "--output is --rejects",
            vec![
                "--output",
                other.to_str().unwrap(),
                "--rejects",
                other.to_str().unwrap(),
            ],
        ),
    ];
    for (case, extra) in cases {
        let mut args = vec!["aggregate", "--monitors", m, "--input", e];
        args.extend(extra);
        let o = bin(&args);
        let stderr = text(&o.stderr);
        assert!(!o.status.success(), "{case}: accepted");
        assert!(stderr.contains("same file"), "{case}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{case}: {stderr}");
        assert_eq!(
            (
                std::fs::read(&monitors).unwrap(),
                std::fs::read(&events).unwrap()
            ),
            before,
            "{case}: an input changed"
        );
        assert!(!other.exists(), "{case}: an output was written");
    }
}

#[test]
fn a_failed_run_leaves_no_half_written_output() {
    let dir = tempfile::tempdir().unwrap();
    let (monitors, _) = sample_copies(dir.path());
    let out = dir.path().join("out.jsonl");
    std::fs::write(&out, "what was there before\n").unwrap();
    // A folder as input: opened, then every read fails.
    let o = bin(&[
        "aggregate",
        "--monitors",
        monitors.to_str().unwrap(),
        "--input",
        dir.path().to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "what was there before\n"
    );
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["events.jsonl", "monitors.yaml", "out.jsonl"],
        "temporary files left"
    );
}

#[test]
fn a_failed_write_names_the_output_and_a_failed_read_the_input() {
    // A full disk: /dev/full takes the file open and refuses every write.
    let full = Path::new("/dev/full");
    if full.exists() {
        for (flag, o) in [
            ("--output", aggregate_example(full, &[])),
            (
                "--rejects",
                aggregate_example(Path::new("/dev/null"), &["--rejects", "/dev/full"]),
            ),
        ] {
            let stderr = text(&o.stderr);
            assert!(!o.status.success(), "{flag}: {stderr}");
            assert!(
                stderr.contains("/dev/full: cannot write") && !stderr.contains("events.jsonl"),
                "{flag}: {stderr}"
            );
        }
    }
    // A folder as input: opened, then every read fails.
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap().to_string();
    let o = aggregate_example(Path::new("/dev/null"), &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = bin(&[
        "aggregate",
        "--monitors",
        "examples/monitors.yaml",
        "--input",
        &folder,
        "--output",
        "/dev/null",
    ]);
    let stderr = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains(&format!("{folder}: cannot read")),
        "{stderr}"
    );
    // An output in a folder that does not exist: named as given, not by
    // the temporary file it is written to first.
    let missing = dir.path().join("no-such-folder").join("out.jsonl");
    let o = aggregate_example(&missing, &[]);
    let stderr = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.starts_with(&format!("error: {}: cannot create", missing.display())),
        "{stderr}"
    );
}

#[test]
fn monitors_concatenated_instead_of_sorted_get_a_warning_that_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let events = std::fs::read_to_string("examples/events.jsonl").unwrap();
    let (first, rest): (Vec<&str>, Vec<&str>) =
        events.lines().partition(|l| l.contains("\"GA_23682013\""));
    let input = dir.path().join("concatenated.jsonl");
    std::fs::write(&input, [first, rest].concat().join("\n")).unwrap();
    let o = bin(&[
        "aggregate",
        "--monitors",
        "examples/monitors.yaml",
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("out.jsonl").to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("event-time order"),
        "{stderr}"
    );
    // The sorted sample file: no warning.
    let o = aggregate_example(&dir.path().join("sorted.jsonl"), &[]);
    assert!(!text(&o.stderr).contains("warning:"), "{}", text(&o.stderr));
}

#[test]
fn unquoted_numbers_as_ids_are_refused_with_the_quoted_form_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "monitor_serial_id: 0x1F",
            "monitors[0].monitor_serial_id",
            "\"0x1F\"",
        ),
        (
            "monitor_serial_id: 1.50",
            "monitors[0].monitor_serial_id",
            "\"1.50\"",
        ),
    ];
    for (field, path, quoted) in cases {
        let yaml = format!("monitors:\n  - {{connection_id: A, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, {field}, parameters: {{co2: ppm}}}}\n");
        let file = dir.path().join("m.yaml");
        std::fs::write(&file, yaml).unwrap();
        let o = bin(&["validate", "--monitors", file.to_str().unwrap()]);
        let out = text(&o.stdout) + &text(&o.stderr);
        assert!(!o.status.success(), "{field}: accepted");
        assert!(out.contains(path) && out.contains(quoted), "{field}: {out}");
    }
    // A connection_id of 1e3 would no longer match its events' "1e3".
    let yaml = "monitors:\n  - connection_id: 1e3\n    module: energy\n    timezone: UTC\n    monitor_brand: B\n    monitor_sku: S\n    monitor_serial_id: X\n    parameters: {power_consumption: kWh}\n    channels:\n      - channel_id: 7\n";
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, yaml).unwrap();
    let o = bin(&["validate", "--monitors", file.to_str().unwrap()]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(
        out.contains("monitors[0].connection_id") && out.contains("\"1e3\""),
        "{out}"
    );
}

#[test]
fn validate_reports_a_type_error_in_each_monitor_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = |id: &str, extra: &str| {
        format!("  - connection_id: {id}\n    module: air\n    timezone: UTC\n    monitor_brand: B\n    monitor_sku: S\n    monitor_serial_id: {id}\n    parameters: {{co2: ppm}}\n{extra}")
    };
    let yaml = [
        "monitors:\n".to_string(),
        monitor("A", "    label: [first, floor]\n"),
        monitor("GOOD", ""),
        "  - connection_id: B\n    module: air\n    timezone: UTC\n    monitor_brand: B\n    monitor_sku: S\n    monitor_serial_id: 0x1F\n    parameters: {co2: ppm}\n".to_string(),
        "  - connection_id: C\n    module: air\n    timezone: {zone: UTC}\n    monitor_brand: B\n    monitor_sku: S\n    monitor_serial_id: C\n    parameters: {co2: ppm}\n".to_string(),
        monitor("D", "    channels: yes\n"),
        "  - {connection_id: E, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: E, parameters: [co2]}\n".to_string(),
    ]
    .concat();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, yaml).unwrap();
    let o = bin(&["validate", "--monitors", file.to_str().unwrap()]);
    assert!(!o.status.success());
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    let expected = [
        "monitors[0].label",
        "monitors[2].monitor_serial_id",
        "monitors[3].timezone",
        "monitors[4].channels",
        "monitors[5].parameters",
    ];
    assert_eq!(lines.len(), expected.len(), "{out}");
    for (line, path) in lines.iter().zip(expected) {
        assert!(line.contains(&format!("m.yaml: {path}: ")), "{path}: {out}");
    }
    assert!(lines[1].contains("\"0x1F\""), "{out}");
    assert!(
        !out.contains("variant") && !out.contains("untagged"),
        "{out}"
    );
    assert_eq!(text(&o.stderr), "error: 5 problem(s) found\n");
}

#[test]
fn validate_reports_a_type_error_in_each_config_section() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.yaml",
        "kafka: {bootstrap_servers: 'k:9092', topics: sensor-events}\ninput: {format: json}\nwindowing: {allowed_lateness: 5}\nreset: {url: 'http://x', client_id: me, client_secret: s, max_attempts: many}\nmonitors: {file: m.yaml}\n",
    );
    write(dir.path(), "m.yaml", "monitors: []\n");
    let o = bin(&["validate", "--config", &config]);
    assert!(!o.status.success());
    let out = text(&o.stdout);
    for path in [
        "kafka.topics",
        "windowing.allowed_lateness",
        "reset.max_attempts",
    ] {
        assert!(out.contains(&format!("c.yaml: {path}: ")), "{path}: {out}");
    }
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn validate_reports_every_type_error_of_one_monitor_and_one_section() {
    let dir = tempfile::tempdir().unwrap();
    let monitors = write(
        dir.path(),
        "m.yaml",
        "monitors:\n  - connection_id: 7\n    module: air\n    timezone: {zone: UTC}\n    monitor_brand: [B]\n    monitor_sku: S\n    monitor_serial_id: X\n    parameters:\n      co2: [ppm]\n    label: Hall\n  - connection_id: GOOD\n    module: air\n    timezone: UTC\n    monitor_brand: B\n    monitor_sku: S\n    monitor_serial_id: G\n    parameters: {co2: ppm}\n",
    );
    let o = bin(&["validate", "--monitors", &monitors]);
    assert!(!o.status.success());
    let out = text(&o.stdout);
    let expected = [
        ("monitors[0].connection_id", "line 2"),
        ("monitors[0].timezone", "line 4"),
        ("monitors[0].monitor_brand", "line 5"),
        ("monitors[0].parameters", "line 9"),
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{out}");
    for (line, (path, at)) in lines.iter().zip(expected) {
        assert!(line.contains(&format!("m.yaml: {path}")), "{path}: {out}");
        assert!(
            path == "monitors[0].connection_id" || line.contains(at),
            "{at}: {out}"
        );
    }
    assert!(!out.contains("missing field"), "{out}");
    assert_eq!(text(&o.stderr), "error: 4 problem(s) found\n");

    let config = write(
        dir.path(),
        "c.yaml",
        "kafka: {bootstrap_servers: 'k:9092', topics: [sensor-events]}\ninput: {format: json}\nwindowing:\n  allowed_lateness: 5\n  idle_timeout: soon\nreset: {url: 'http://x', client_id: me, client_secret: s}\nmonitors: {file: m.yaml}\n",
    );
    write(dir.path(), "m.yaml", "monitors: []\n");
    let o = bin(&["validate", "--config", &config]);
    let out = text(&o.stdout);
    for path in ["windowing.allowed_lateness", "windowing.idle_timeout"] {
        assert!(out.contains(&format!("c.yaml: {path}: ")), "{path}: {out}");
    }
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn validate_words_a_wrong_kind_of_value_in_yaml_terms_not_rust_types() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", "monitors:\n  - 5\n");
    let config = write(
        dir.path(),
        "c.yaml",
        "kafka: 1\ninput: {format: [json]}\nwindowing: {allowed_lateness: [5]}\nreset: {url: 'http://x', client_id: me, client_secret: s, max_in_flight: -1}\nmonitors: {file: m.yaml}\nhttp: hello\ndead_letter: {topic: sensor-events.dlq, partitions: x}\n",
    );
    let o = bin(&["validate", "--config", &config]);
    assert!(!o.status.success());
    let out = text(&o.stdout);
    let expected = [
        "c.yaml: kafka: expected a mapping (key: value), found the number 1",
        "c.yaml: input.format: expected a single word, found a list",
        "c.yaml: windowing.allowed_lateness: expected text, found a list",
        "c.yaml: reset.max_in_flight: expected a whole number (0 or more), found the number -1",
        "c.yaml: http: expected a mapping (key: value), found the text \"hello\"",
    ];
    for line in expected {
        assert!(out.contains(line), "{line}\n{out}");
    }
    for rust in ["struct", "usize", "YAML tag", "variant", "Config"] {
        assert!(!out.contains(rust), "{rust}: {out}");
    }
    let monitors = dir.path().join("m.yaml");
    let o = bin(&["validate", "--monitors", monitors.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert!(
        out.contains("m.yaml: monitors[0]: expected a mapping (key: value), found the number 5"),
        "{out}"
    );
}

#[test]
fn a_file_that_is_not_a_yaml_mapping_is_one_problem_not_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..30)
        .map(|i| format!("user{i}:x:{i}:{i}:someone:/home/user{i}:/bin/sh\n"))
        .collect();
    let config = write(dir.path(), "c.yaml", &lines);
    let o = bin(&["validate", "--config", &config]);
    assert!(!o.status.success());
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "{config}: expected a mapping (key: value), found text (not shown: is it the right file?)"
        )),
        "{out}"
    );
    assert_eq!(text(&o.stderr), "error: 1 problem(s) found\n");
    // A file given by mistake may be a key or a secret: none of it is shown.
    let key = write(
        dir.path(),
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
    );
    let o = bin(&["validate", "--config", &key]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(!o.status.success(), "{out}");
    assert!(!out.contains("BEGIN") && !out.contains("MIIE"), "{out}");
}

#[test]
fn validate_reports_every_type_error_of_a_section_written_as_a_flow_mapping() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", "monitors: []\n");
    let config = write(
        dir.path(),
        "c.yaml",
        "kafka: {bootstrap_servers: 'k:9092', topics: [sensor-events]}\ninput: {format: json}\nreset: {url: 'http://x', client_id: me, client_secret: s, max_in_flight: -1,\n        max_attempts: many, push: [daily], ack_timeout: {s: 30}}\nmonitors: {file: m.yaml}\n",
    );
    let o = bin(&["validate", "--config", &config]);
    assert!(!o.status.success());
    let out = text(&o.stdout);
    let expected = [
        ("reset.max_in_flight", "line 3 column 74"),
        ("reset.max_attempts", "line 4 column 23"),
        ("reset.push", "line 4 column 35"),
        ("reset.ack_timeout", "line 4 column 57"),
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{out}");
    for (line, (path, at)) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(&format!("{config}: {path}: ")),
            "{path}: {out}"
        );
        assert!(line.ends_with(at), "{at}: {out}");
    }
}

#[test]
fn validate_places_a_bad_duration_at_its_field_in_either_style_and_goes_on() {
    // A duration's own check speaks after the parser has left the value:
    // its problem must still point at its field, not at the section's first
    // line, and in a flow mapping the fields after it must still be read.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", "monitors: []\n");
    let block = "kafka: {bootstrap_servers: 'k:9092', group_id: g, topics: [sensor-events]}\ninput: {format: json}\nreset:\n  url: 'http://x'\n  client_id: me\n  client_secret: s\n  ack_timeout: 5 parsecs\n  max_in_flight: -1\nwindowing:\n  allowed_lateness: forever\n  max_future_skew: 2 lightyears\nmonitors: {file: m.yaml}\n";
    let flow = "kafka: {bootstrap_servers: 'k:9092', group_id: g, topics: [sensor-events]}\ninput: {format: json}\nreset: {url: 'http://x', client_id: me, client_secret: s, ack_timeout: 5 parsecs, max_in_flight: -1}\nwindowing: {allowed_lateness: forever, max_future_skew: 2 lightyears}\nmonitors: {file: m.yaml}\n";
    let expected = [
        ("reset.ack_timeout", "5 parsecs", "unknown unit \"parsecs\""),
        ("reset.max_in_flight", "-1", "expected a whole number"),
        (
            "windowing.allowed_lateness",
            "forever",
            "expected a number and a unit",
        ),
        (
            "windowing.max_future_skew",
            "2 lightyears",
            "unknown unit \"lightyears\"",
        ),
    ];
    for (name, yaml) in [("block.yaml", block), ("flow.yaml", flow)] {
        let config = write(dir.path(), name, yaml);
        let o = bin(&["validate", "--config", &config]);
        assert!(!o.status.success());
        let out = text(&o.stdout);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{name}:\n{out}");
        for (line, (path, value, words)) in lines.iter().zip(expected) {
            // Where the value is written: 1-based line and column.
            let (row, column) = yaml
                .lines()
                .enumerate()
                .find_map(|(i, l)| l.find(&format!(": {value}")).map(|c| (i + 1, c + 3)))
                .unwrap();
            assert!(
                line.starts_with(&format!("{config}: {path}: ")),
                "{path}: {out}"
            );
            assert!(line.contains(words), "{path}: {words}: {out}");
            assert!(
                line.ends_with(&format!("at line {row} column {column}")),
                "{path} at line {row} column {column}: {out}"
            );
        }
    }
}

#[test]
fn a_reader_that_stops_early_ends_aggregate_quietly_as_for_cat() {
    // Two weeks of one monitor, a sample a minute: some 670 messages, more
    // than a pipe holds, so that `aggregate` is still writing when the
    // reader goes.
    let dir = tempfile::tempdir().unwrap();
    let start = 1_773_558_000_000i64; // 2026-03-15T07:00:00Z
    let events: String = (0..20_160)
        .map(|i| {
            format!(
                "{{\"connection_id\":\"GA_23682013\",\"event_time\":{},\"measurements\":[{{\"parameter\":\"co2\",\"value\":{}}}]}}\n",
                start + i * 60_000,
                400 + i % 50
            )
        })
        .collect();
    let input = write(dir.path(), "events.jsonl", &events);
    let rejects = dir.path().join("rejects.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_reset-pipeline"))
        .args([
            "aggregate",
            "--monitors",
            "examples/monitors.yaml",
            "--input",
            &input,
        ])
        .args(["--now", "2026-04-01T00:00:00Z", "--rejects"])
        .arg(&rejects)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.starts_with("{\"event\":\"monitors\""), "{first}");
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(141), "{stderr}");
    assert!(
        !stderr.contains("error") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    // The run did not finish: no rejects file, no temporary one left.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("events.jsonl")]);
}

#[test]
fn an_input_that_starts_with_a_byte_order_mark_aggregates_as_without_it() {
    // Windows tools (PowerShell's Out-File, Excel's "UTF-8" CSV) start a
    // file with one; the first event must not be lost to it.
    let dir = tempfile::tempdir().unwrap();
    let events = std::fs::read("examples/events.jsonl").unwrap();
    let marked = dir.path().join("events.jsonl");
    std::fs::write(&marked, [&b"\xef\xbb\xbf"[..], &events].concat()).unwrap();
    let run = |input: &str| {
        let o = bin(&[
            "aggregate",
            "--monitors",
            "examples/monitors.yaml",
            "--input",
            input,
            "--now",
            "2026-06-01T00:00:00Z",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        (text(&o.stdout), text(&o.stderr))
    };
    let (plain, plain_summary) = run("examples/events.jsonl");
    let (with_mark, summary) = run(marked.to_str().unwrap());
    assert_eq!(with_mark, plain);
    assert_eq!(summary, plain_summary);
}

#[test]
fn validate_refuses_a_topic_given_two_roles() {
    // A dead-letter topic that is also an input reads its own dead letters
    // back, each a new dead letter, without end. A role's topic the file
    // does not set is named as the default it is.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", "monitors: []\n");
    let config = write(
        dir.path(),
        "c.yaml",
        "kafka: {bootstrap_servers: 'k:9092', group_id: g, topics: [sensor-events, more, more]}\ninput: {format: json}\nreset: {url: 'http://x', client_id: me, client_secret: s}\nmonitors: {file: m.yaml, topic: g.progress}\ndead_letter: {topic: sensor-events}\n",
    );
    let o = bin(&["validate", "--config", &config]);
    assert!(!o.status.success());
    let out = text(&o.stdout);
    let expected = [
        "c.yaml: kafka.topics[2]: \"more\" is also kafka.topics[1]",
        "c.yaml: dead_letter.topic: \"sensor-events\" is also kafka.topics[0]",
        "c.yaml: monitors.topic: \"g.progress\" is also kafka.progress_topic (not set: its default, kafka.group_id + \".progress\")",
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{out}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(line.contains(start), "{start}\n{out}");
    }
    assert_eq!(text(&o.stderr), "error: 3 problem(s) found\n");
}

#[test]
fn a_demo_of_no_monitors_or_of_more_than_a_machine_holds_is_a_usage_error() {
    // A fleet so large that its sample count overflows: it must be refused
    // at once, not wrap round to a small count and build the fleet.
    for (args, bound) in [
        (["--monitors", "0"], "--monitors"),
        (["--hours", "0"], "--hours"),
        (["--hours", "-3"], "--hours"),
        (["--monitors", "153722867280912931"], "--monitors"),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_reset-pipeline"));
        let mut child = command
            .arg("demo")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("demo {args:?} still running after 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(bound), "{args:?}: {stderr}");
    }
}

#[test]
fn too_many_decoding_threads_is_a_usage_error_not_a_crash() {
    let o = bin(&[
        "aggregate",
        "--monitors",
        "examples/monitors.yaml",
        "--input",
        "examples/events.jsonl",
        "--decoders",
        "100000",
    ]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--decoders") && stderr.contains("256"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `produce` of the example events with the config `yaml`: how it ended,
/// and its standard error.
fn produce_examples(yaml: &str) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.yaml", yaml);
    let o = bin(&[
        "produce",
        "--config",
        &config,
        "--input",
        "examples/events.jsonl",
    ]);
    let stderr = text(&o.stderr);
    (o, stderr)
}

/// A port nothing listens on (one the system just gave and took back):
/// every connection to it is refused at once.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn produce_with_the_broker_away_fails_in_a_few_lines_not_a_flood() {
    // A port nothing listens on: every connection is refused at once, and
    // librdkafka reports it on each reconnect, several times a second.
    let port = refused_port();
    let (o, stderr) = produce_examples(&format!("kafka: {{bootstrap_servers: '127.0.0.1:{port}', topics: [sensor-events], properties: {{message.timeout.ms: '3000'}}}}\ninput: {{format: json}}\n"));
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("send failed"), "{stderr}");
    assert_eq!(
        stderr.matches("Message timed out").count(),
        1,
        "said once: {stderr}"
    );
    assert!(
        stderr.lines().count() <= 8,
        "each kind of fault once, not on every reconnect:\n{stderr}"
    );
}

#[test]
fn replay_with_the_broker_away_fails_naming_what_it_could_not_read_once() {
    let port = refused_port();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", "monitors: []\n");
    let config = write(
        dir.path(),
        "c.yaml",
        &format!("kafka: {{bootstrap_servers: '127.0.0.1:{port}', group_id: g, topics: [sensor-events]}}\ninput: {{format: json}}\nreset: {{url: 'http://127.0.0.1:1', client_id: me, client_secret: s}}\nmonitors: {{file: m.yaml}}\n"),
    );
    let dry = dir.path().join("dry.jsonl");
    let o = bin(&[
        "replay",
        "--config",
        &config,
        "--from",
        "2026-03-15T00:00:00Z",
        "--to",
        "2026-03-16T00:00:00Z",
        "--dry-run",
        dry.to_str().unwrap(),
    ]);
    let stderr = text(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(error.contains("announcements store"), "{error}");
    assert_eq!(error.matches("g.announcements").count(), 1, "{error}");
}

#[test]
fn produce_refuses_a_config_it_cannot_use_before_it_tries_the_broker() {
    // Avro with Confluent framing and no schema registry: the config is
    // wrong whatever the broker says, so the broker is not tried.
    let (o, stderr) = produce_examples(&format!(
        "kafka: {{bootstrap_servers: '127.0.0.1:{}', topics: [sensor-events]}}\ninput: {{format: avro-confluent}}\n",
        refused_port()
    ));
    assert!(!o.status.success(), "{stderr}");
    assert_eq!(
        stderr,
        "error: input.schema_registry_url is required for avro-confluent\n"
    );
}

#[test]
fn an_emulator_rate_outside_zero_to_one_is_a_usage_error() {
    for (flag, value) in [
        ("--fail-rate", "2"),
        ("--drop-ack-rate", "-0.5"),
        ("--fail-rate", "NaN"),
    ] {
        let o = bin(&["emulator", "--listen", "127.0.0.1:0", flag, value]);
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("between 0 and 1"),
            "{flag} {value}: {stderr}"
        );
    }
}
