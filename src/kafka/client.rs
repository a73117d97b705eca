//! librdkafka settings from the config, and topic creation.

use crate::config::KafkaConfig;
use crate::kafka::quiet::Quiet;
use crate::kafka::topic_presence::{check_topic, TopicCheck};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::ClientConfig;
use std::time::Duration;

/// The bootstrap servers and every pass-through property.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers);
    for (key, value) in &kafka.properties {
        c.set(key, value.expose());
    }
    c
}

/// Settings for a consumer of the input topics, which mostly reads a
/// backlog: `client_config` with no auto-commit, no end-of-partition events,
/// and unless the config sets them:
/// - a short `fetch.queue.backoff.ms`. librdkafka's default (1 s) stops
///   fetching a partition for a whole second whenever its local queue
///   passes `queued.min.messages`, which a consumer catching up does all
///   the time: measured here, it cut the live pipeline's throughput by a
///   factor of four.
/// - `topic.metadata.refresh.interval.ms` of 10 s (librdkafka's default:
///   5 minutes), so that an input topic created after the pipeline started
///   (or given more partitions) is read within seconds.
pub fn input_consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(kafka);
    c.set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (key, value) in [
        ("fetch.queue.backoff.ms", "10"),
        ("topic.metadata.refresh.interval.ms", "10000"),
    ] {
        if !kafka.properties.contains_key(key) {
            c.set(key, value);
        }
    }
    c
}

/// A topic the pipeline writes for itself.
#[derive(Debug, Clone, Copy)]
pub struct OwnTopic<'a> {
    pub name: &'a str,
    pub partitions: i32,
    /// Keyed records of which only the latest per key matters (progress).
    pub compacted: bool,
}

/// The replication factor to create a topic with: the one asked for, but no
/// more than the brokers there are (a one-broker test cluster included).
pub fn replication_factor(asked: i32, brokers: usize) -> i32 {
    asked.clamp(1, (brokers as i32).max(1))
}

/// The `topics` the broker does not know (or that have no partition), and
/// the number of brokers, found with one client; an error when the
/// cluster cannot be asked at all (a broker away).
fn missing_topics<'a>(
    kafka: &KafkaConfig,
    topics: &'a [OwnTopic<'a>],
) -> Result<(Vec<&'a OwnTopic<'a>>, usize), String> {
    use rdkafka::consumer::Consumer;
    let consumer = client_config(kafka)
        .create_with_context::<_, rdkafka::consumer::BaseConsumer<Quiet>>(Quiet)
        .map_err(|e| e.to_string())?;
    let brokers = consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map_err(|e| format!("cannot reach Kafka: {e}"))?
        .brokers()
        .len();
    let exists =
        |topic: &str| check_topic(&consumer, topic, Duration::from_secs(5)) == TopicCheck::Present;
    let missing = topics.iter().filter(|t| !exists(t.name)).collect();
    Ok((missing, brokers))
}

/// Creates topics that do not exist yet (best effort: a broker may refuse the
/// admin API, and the topics may have been made by the operator), each with
/// `kafka.progress_replication_factor` replicas or as many as there are
/// brokers, and compacted where asked. An error only when the cluster
/// cannot be asked which topics exist (a broker away): nothing is tried then.
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[OwnTopic<'_>]) -> Result<(), String> {
    let (missing, brokers) = missing_topics(kafka, topics)?;
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<Quiet> = match client_config(kafka).create_with_context(Quiet) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create an admin client");
            return Ok(());
        }
    };
    let replicas = replication_factor(kafka.progress_replication_factor, brokers);
    if replicas < kafka.progress_replication_factor {
        tracing::warn!(
            replicas,
            asked = kafka.progress_replication_factor,
            brokers,
            "fewer brokers than kafka.progress_replication_factor: the pipeline's own topics get fewer replicas"
        );
    }
    let new: Vec<NewTopic> = missing
        .iter()
        .map(|t| {
            let topic = NewTopic::new(t.name, t.partitions, TopicReplication::Fixed(replicas));
            if t.compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(5)))
        .request_timeout(Some(Duration::from_secs(5)));
    let created =
        tokio::time::timeout(Duration::from_secs(6), admin.create_topics(&new, &options)).await;
    let Ok(created) = created else {
        tracing::debug!("the broker did not answer the topic creation");
        return Ok(());
    };
    match created {
        Ok(results) => {
            for r in results {
                match r {
                    Ok(topic) => tracing::info!(%topic, replicas, "created topic"),
                    Err((topic, code)) => tracing::debug!(%topic, %code, "topic not created"),
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "the broker did not create topics"),
    }
    // rdkafka's admin client joins its polling thread when dropped, which
    // waits out that thread's 100 ms poll: not on the start-up's path.
    tokio::task::spawn_blocking(move || drop(admin));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::replication_factor;

    #[test]
    fn the_replication_factor_is_clamped_to_the_brokers_there_are() {
        assert_eq!(replication_factor(3, 1), 1);
        assert_eq!(replication_factor(3, 5), 3);
        assert_eq!(replication_factor(3, 0), 1);
        assert_eq!(replication_factor(0, 3), 1);
        assert_eq!(replication_factor(2, 2), 2);
    }
}
