//! librdkafka's errors and log lines, through `tracing`, each kind at most
//! once per `throttle::EVERY` across every client of the process: while a
//! broker is down, each client reports the same fault on every reconnect
//! attempt, and the log would say little else.

use crate::throttle::due;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// Logs an error that librdkafka reports (most are transient: it retries
/// by itself).
pub fn error(error: &KafkaError, reason: &str) {
    if let Some(held_back) = due(&format!("error {:?}", error.rdkafka_error_code())) {
        tracing::warn!(target: "librdkafka", %error, reason, held_back, "Kafka client");
    }
}

/// Logs a line of librdkafka's own.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    let Some(held_back) = due(&format!("log {level:?} {fac}")) else {
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
