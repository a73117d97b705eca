//! librdkafka's errors and log lines, through `tracing`, each kind at most
//! once per `throttle::EVERY` across every client of the process: while a
//! broker is down, each client reports the same fault on every reconnect
//! attempt, and the log would say little else.

use crate::throttle::Throttle;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The throttles of every kind of line, shared by all clients.
static SEEN: Mutex<Option<HashMap<String, Throttle>>> = Mutex::new(None);

/// Whether a line of this kind is due: `Some(held back since the last)`.
pub fn due(kind: String) -> Option<u64> {
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.get_or_insert_with(HashMap::new)
        .entry(kind)
        .or_default()
        .allow(Instant::now())
}

/// Logs an error that librdkafka reports (most are transient: it retries
/// by itself).
pub fn error(error: &KafkaError, reason: &str) {
    if let Some(held_back) = due(format!("error {:?}", error.rdkafka_error_code())) {
        tracing::warn!(target: "librdkafka", %error, reason, held_back, "Kafka client");
    }
}

/// Logs a line of librdkafka's own.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    let Some(held_back) = due(format!("log {level:?} {fac}")) else {
        return;
    };
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", fac, held_back, "{message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", fac, held_back, "{message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", fac, held_back, "{message}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", fac, held_back, "{message}")
        }
    }
}

/// The context of the pipeline's Kafka clients but the group's consumer
/// (which has its own, `GroupContext`, logging the same way).
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }

    fn error(&self, e: KafkaError, reason: &str) {
        error(&e, reason);
    }
}

impl ConsumerContext for Quiet {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_of_line_is_due_once_until_the_interval_passes() {
        let kind = "test kind".to_string();
        assert_eq!(due(kind.clone()), Some(0));
        assert_eq!(due(kind.clone()), None);
        assert_eq!(due(kind), None);
        assert_eq!(due("another kind".into()), Some(0));
    }
}
