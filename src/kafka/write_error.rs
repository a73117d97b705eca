//! A write to one of the pipeline's own topics (progress, announcements)
//! that the broker did not take, and whether writing again may help.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, thiserror::Error)]
#[error("cannot write to {topic}: {source}")]
pub struct WriteError {
    pub topic: String,
    #[source]
    pub source: KafkaError,
}

impl WriteError {
    /// Whether the same write may succeed later. A broker that is down,
    /// slow, electing a leader or short of replicas comes back; a topic this
    /// client may not write, or a record the broker will never take, does
    /// not (a configuration to fix).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self.source.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::MessageSizeTooLarge
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::InvalidRecord
                    | RDKafkaErrorCode::UnsupportedForMessageFormat
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: RDKafkaErrorCode) -> WriteError {
        WriteError {
            topic: "g.progress".into(),
            source: KafkaError::MessageProduction(code),
        }
    }

    #[test]
    fn a_broker_away_is_transient_and_a_refusal_is_not() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::RequestTimedOut,
        ] {
            assert!(failed(code).is_transient(), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::MessageSizeTooLarge,
        ] {
            assert!(!failed(code).is_transient(), "{code:?}");
        }
        let shown = failed(RDKafkaErrorCode::TopicAuthorizationFailed).to_string();
        assert!(shown.starts_with("cannot write to g.progress: "), "{shown}");
    }
}
