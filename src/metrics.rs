//! Prometheus metrics, held in a `Metrics` handle that owns its registry
//! (nothing is registered globally). Labels stay bounded: reasons, codes,
//! events, topics and partitions (a revoked partition's series are
//! removed), never a connection_id.

use crate::reject::RejectReason;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub records_consumed: IntCounter,
    pub records_decoded: IntCounter,
    pub rejects: IntCounterVec,
    pub samples_ignored: IntCounter,
    pub windows_closed: IntCounter,
    pub readings_sent: IntCounter,
    pub messages_sent: IntCounterVec,
    pub answers: IntCounterVec,
    pub resends: IntCounter,
    pub publish_latency: Histogram,
    pub watermark_delay: IntGaugeVec,
    pub consumer_lag: IntGaugeVec,
    pub stalled_partitions: IntGauge,
    pub missing_input_topics: IntGauge,
    pub monitors_silent: IntGauge,
    pub day_windows_expected: IntGauge,
    pub day_windows_with_data: IntGauge,
    pub paused_partitions: IntGauge,
    pub waiting_for_reset_since: IntGauge,
    pub unmatched_answers: IntCounter,
    pub open_windows: IntGauge,
    pub in_flight: IntGauge,
    pub waiting_for_store: IntGauge,
    pub commits: IntCounter,
    pub progress_write_failures: IntCounter,
    pub schema_registry_failures: IntCounter,
    pub registry_records: IntCounterVec,
}

const NS: &str = "reset_pipeline";

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c =
                IntCounter::with_opts(Opts::new(name, help).namespace(NS)).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help).namespace(NS), labels)
                .expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help).namespace(NS), labels)
                .expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help).namespace(NS)).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let publish_latency = Histogram::with_opts(
            HistogramOpts::new(
                "publish_latency_seconds",
                "From publishing a message to RESET's answer",
            )
            .namespace(NS)
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(publish_latency.clone()))
            .expect("unique metric");
        let m = Metrics {
            records_consumed: counter(
                "records_consumed_total",
                "Records read from the input topics",
            ),
            records_decoded: counter(
                "records_decoded_total",
                "Records decoded into sensor events",
            ),
            rejects: counter_vec(
                "rejects_total",
                "Rejected records and samples, by reason",
                &["reason"],
            ),
            samples_ignored: counter(
                "samples_ignored_total",
                "Samples of parameters the monitor does not declare",
            ),
            windows_closed: counter(
                "windows_closed_total",
                "Half-hour windows closed by the watermark",
            ),
            readings_sent: counter(
                "readings_sent_total",
                "Readings in messages written to RESET's connection (first sends: not while RESET is away)",
            ),
            messages_sent: counter_vec(
                "messages_sent_total",
                "Messages written to RESET's connection, by event (first sends: not while RESET is away)",
                &["event"],
            ),
            answers: counter_vec(
                "answers_total",
                "RESET's final answers to messages, by code",
                &["code"],
            ),
            resends: counter(
                "resends_total",
                "Messages sent to RESET again after an error answer or an ack timeout",
            ),
            publish_latency,
            watermark_delay: gauge_vec(
                "watermark_delay_seconds",
                "Wall clock minus the partition watermark",
                &["topic", "partition"],
            ),
            consumer_lag: gauge_vec(
                "consumer_lag_records",
                "High watermark minus the next offset to read",
                &["topic", "partition"],
            ),
            stalled_partitions: gauge(
                "stalled_partitions",
                "Partitions from which nothing was read for kafka.stall_after while the broker says records wait, or does not answer",
            ),
            missing_input_topics: gauge(
                "missing_input_topics",
                "Input topics (kafka.topics) the cluster does not have, or does not show these credentials: nothing is read from them. Asked every 10 s",
            ),
            monitors_silent: gauge(
                "silent_monitors",
                "Monitors of this replica's partitions with no accepted sample for windowing.silent_after, on the wall clock",
            ),
            day_windows_expected: gauge(
                "last_day_expected_windows",
                "Half-hour windows in the last complete local day of each monitor of this replica's partitions, summed",
            ),
            day_windows_with_data: gauge(
                "last_day_covered_windows",
                "Of last_day_expected_windows, those whose reading RESET acknowledged",
            ),
            paused_partitions: gauge(
                "paused_partitions",
                "Input partitions paused because the messages waiting for RESET reached reset.max_queued",
            ),
            waiting_for_reset_since: gauge(
                "waiting_for_reset_since_seconds",
                "Unix time of RESET's last acknowledgement (or of the first message sent after none waited) while messages wait for answers; 0 when none waits",
            ),
            unmatched_answers: counter(
                "unmatched_answers_total",
                "Answers of RESET that named no message in flight (no usable id, or one already settled)",
            ),
            open_windows: gauge("open_windows", "Windows open in the engines"),
            in_flight: gauge(
                "in_flight_messages",
                "Messages published and not yet answered",
            ),
            waiting_for_store: gauge(
                "waiting_for_store_messages",
                "Messages held until the announcements store records the monitors message before them",
            ),
            registry_records: counter_vec(
                "registry_records_total",
                "Records of the monitor registry topic, by what they did",
                &["outcome"],
            ),
            commits: counter(
                "commits_total",
                "Offset commits (each after its progress record)",
            ),
            progress_write_failures: counter(
                "progress_write_failures_total",
                "Progress writes the broker did not take (tried again at the next tick)",
            ),
            schema_registry_failures: counter(
                "schema_registry_failures_total",
                "Writer-schema requests the schema registry did not answer (asked again with backoff while the records wait)",
            ),
            registry,
        };
        for reason in RejectReason::ALL {
            m.rejects.with_label_values(&[reason.name()]);
        }
        for code in ["10200", "10400", "10500"] {
            m.answers.with_label_values(&[code]);
        }
        for outcome in ["added", "changed", "unchanged", "removed", "refused"] {
            m.registry_records.with_label_values(&[outcome]);
        }
        for event in ["monitors", "readings"] {
            m.messages_sent.with_label_values(&[event]);
        }
        m
    }

    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    pub fn set_watermark_delay(&self, topic: &str, partition: i32, seconds: i64) {
        self.watermark_delay
            .with_label_values(&[topic, &partition.to_string()])
            .set(seconds);
    }

    /// Removes a partition's series once it is no longer this replica's.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let labels = [topic, &partition.to_string()];
        let _ = self.consumer_lag.remove_label_values(&labels);
        let _ = self.watermark_delay.remove_label_values(&labels);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        String::from_utf8(out).expect("text exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every `reset_pipeline_*` name in `text`, histogram series reduced to their family.
    fn names_in(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut rest = text;
        while let Some(start) = rest.find("reset_pipeline_") {
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(family.to_string());
            rest = &tail[end..];
        }
        names
    }

    fn exported() -> BTreeSet<String> {
        let metrics = Metrics::new();
        metrics.publish_latency.observe(0.1);
        metrics.set_watermark_delay("t", 0, 1);
        metrics.set_lag("t", 0, 1);
        metrics
            .registry
            .gather()
            .iter()
            .map(|family| family.name().to_string())
            .collect()
    }

    #[test]
    fn the_dashboard_and_the_documented_alerts_use_only_exported_metrics() {
        let exported = exported();
        let root = env!("CARGO_MANIFEST_DIR");
        for file in [
            "helm/reset-pipeline/dashboards/reset-pipeline.json",
            "README.md",
        ] {
            let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
            let used = names_in(&text);
            assert!(used.len() >= 6, "{file} names only {used:?}");
            let unknown: Vec<_> = used.difference(&exported).collect();
            assert!(unknown.is_empty(), "{file} uses {unknown:?}");
        }
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for name in exported() {
            assert!(name.starts_with("reset_pipeline_"), "{name}");
            let counter_or_unit = [
                "_total",
                "_seconds",
                "_records",
                "_windows",
                "_messages",
                "_partitions",
                "_monitors",
                "_topics",
            ];
            assert!(
                counter_or_unit.iter().any(|s| name.ends_with(s)),
                "{name} names no unit"
            );
        }
    }

    #[test]
    fn two_topics_keep_their_own_series_and_a_forgotten_partition_leaves_none() {
        let m = Metrics::new();
        m.set_lag("a", 0, 5);
        m.set_lag("b", 0, 7);
        m.set_watermark_delay("a", 0, 60);
        let text = m.render();
        assert!(
            text.contains(r#"reset_pipeline_consumer_lag_records{partition="0",topic="a"} 5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"reset_pipeline_consumer_lag_records{partition="0",topic="b"} 7"#),
            "{text}"
        );
        m.forget_partition("a", 0);
        let text = m.render();
        assert!(!text.contains(r#"topic="a""#), "{text}");
        assert!(text.contains(r#"topic="b""#), "{text}");
    }
}
