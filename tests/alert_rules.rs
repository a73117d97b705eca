//! The chart's alert rules speak of what the pipeline exports: every
//! `reset_pipeline_*` name in an expression is a series `/metrics` serves,
//! and every label an expression selects or groups by is a label of those
//! series or one Prometheus gives every scraped target (`namespace`, `pod`).
//! (promtool checks the rules and runs a case per alert: tests/helm.)

use reset_pipeline::metrics::Metrics;
use std::collections::{BTreeMap, BTreeSet};

const RULES: &str = include_str!("../helm/reset-pipeline/alerts/reset-pipeline.rules.yaml");
const TARGET_LABELS: [&str; 2] = ["namespace", "pod"];

/// Every series name `/metrics` serves, with its label names.
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let metrics = Metrics::new();
    // Per-partition series exist once a partition is assigned.
    metrics.set_lag("t", 0, 1);
    metrics.set_watermark_delay("t", 0, 1);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in metrics.render().lines().filter(|l| !l.starts_with('#')) {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_string()).or_default();
        if let Some(inside) = line[end..]
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
        {
            for pair in inside.0.split(',').filter(|p| !p.is_empty()) {
                labels.insert(pair.split('=').next().unwrap().to_string());
            }
        }
    }
    out
}

/// The identifiers of a PromQL expression, and the label names in its
/// `by (...)` lists and `{...}` selectors.
fn names_and_labels(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    let mut labels = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut in_by = false;
    let mut in_selector = false;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            in_string = c != '"';
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if in_by || in_selector {
                labels.insert(word);
            } else if word == "by" {
                in_by = true;
            } else {
                names.insert(word);
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => in_selector = true,
            '}' => in_selector = false,
            ')' if in_by => in_by = false,
            _ => {}
        }
        i += 1;
    }
    (names, labels)
}

#[test]
fn every_metric_and_label_of_the_alert_rules_is_exported() {
    let exported = exported();
    let rules: serde_yaml::Value = serde_yaml::from_str(RULES).unwrap();
    let mut checked = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = rule["alert"].as_str().unwrap();
            let (names, labels) = names_and_labels(rule["expr"].as_str().unwrap());
            let metrics: Vec<&String> = names
                .iter()
                .filter(|n| n.starts_with("reset_pipeline_"))
                .collect();
            assert!(
                !metrics.is_empty(),
                "{alert} uses no metric of the pipeline"
            );
            let mut known: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
            for name in &metrics {
                let Some(of_metric) = exported.get(*name) else {
                    panic!(
                        "{alert}: {name} is not exported; /metrics serves {:?}",
                        exported.keys()
                    );
                };
                known.extend(of_metric.iter().cloned());
            }
            for label in &labels {
                assert!(
                    known.contains(label),
                    "{alert}: label {label} is on none of {metrics:?} ({known:?})"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}

#[test]
fn the_expression_reader_finds_names_and_labels() {
    let (names, labels) = names_and_labels(
        r#"sum by (namespace, le) (rate(reset_pipeline_x_bucket{code="10400"}[5m])) > 0"#,
    );
    assert!(names.contains("reset_pipeline_x_bucket") && names.contains("rate"));
    assert_eq!(
        labels,
        BTreeSet::from(["namespace".into(), "le".into(), "code".into()])
    );
    let (names, _) = names_and_labels(r#"reset_pipeline_y{reason="not_a_metric_name"}"#);
    assert!(!names.contains("not_a_metric_name"));
}
