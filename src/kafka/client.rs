//! librdkafka settings from the config, and topic creation.

use crate::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
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
/// and a short `fetch.queue.backoff.ms` unless the config sets one.
/// librdkafka's default (1 s) stops fetching a partition for a whole second
/// whenever its local queue passes `queued.min.messages`, which a consumer
/// catching up does all the time: measured here, it cut the live pipeline's
/// throughput by a factor of four.
pub fn input_consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(kafka);
    c.set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    if !kafka.properties.contains_key("fetch.queue.backoff.ms") {
        c.set("fetch.queue.backoff.ms", "10");
    }
    c
}

/// The `topics` the broker does not know (or that have no partition), found
/// with one client. If the broker cannot be asked, all of them.
fn missing_topics<'a>(
    kafka: &KafkaConfig,
    topics: &'a [(&'a str, i32)],
) -> Vec<&'a (&'a str, i32)> {
    use rdkafka::consumer::Consumer;
    let Ok(consumer) = client_config(kafka).create::<rdkafka::consumer::BaseConsumer>() else {
        return topics.iter().collect();
    };
    let exists = |topic: &str| {
        consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .is_ok_and(|m| {
                m.topics()
                    .iter()
                    .any(|t| t.error().is_none() && !t.partitions().is_empty())
            })
    };
    topics.iter().filter(|(name, _)| !exists(name)).collect()
}

/// Creates topics that do not exist yet (best effort: a broker may refuse the
/// admin API, and the topics may have been made by the operator).
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[(&str, i32)]) {
    let missing = missing_topics(kafka, topics);
    if missing.is_empty() {
        return;
    }
    let admin: AdminClient<DefaultClientContext> = match client_config(kafka).create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create an admin client");
            return;
        }
    };
    let new: Vec<NewTopic> = missing
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(5)))
        .request_timeout(Some(Duration::from_secs(5)));
    let created =
        tokio::time::timeout(Duration::from_secs(6), admin.create_topics(&new, &options)).await;
    let Ok(created) = created else {
        tracing::debug!("the broker did not answer the topic creation");
        return;
    };
    match created {
        Ok(results) => {
            for r in results {
                match r {
                    Ok(topic) => tracing::info!(%topic, "created topic"),
                    Err((topic, code)) => tracing::debug!(%topic, %code, "topic not created"),
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "the broker did not create topics"),
    }
}
