//! Kafka around the pure core: client settings, the progress topic that
//! makes restarts exact, the announcements store that remembers what RESET
//! holds of each monitor, the dead-letter topic, and the monitor registry topic.

pub mod announcements;
pub mod client;
pub mod dead_letter;
pub mod flow;
pub mod followed;
pub mod group_reader;
pub mod monitor_topic;
pub mod progress;
pub mod quiet;
pub mod read;
pub mod record_queue;
pub mod stall;
pub mod topic_presence;
pub mod write_error;

pub use announcements::AnnouncementStore;
pub use client::{client_config, ensure_topics, input_consumer_config, OwnTopic};
pub use dead_letter::{DeadLetters, Origin};
pub use followed::{FollowedTopic, TopicRecord};
pub use group_reader::{Assignment, GroupReader, Input, RecordBatch};
pub use progress::{ProgressReader, ProgressWriter};
pub use write_error::WriteError;

/// What compaction leaves of a log of writes (key, value or deletion): the
/// last value written under each key, in the order of the offsets kept;
/// deleted keys are gone.
#[cfg(test)]
pub(crate) fn compacted(log: &[(String, Option<String>)]) -> Vec<(&str, &str)> {
    let last: std::collections::HashMap<&String, usize> =
        log.iter().enumerate().map(|(i, (k, _))| (k, i)).collect();
    log.iter()
        .enumerate()
        .filter(|(i, (k, _))| last[k] == *i)
        .filter_map(|(_, (k, v))| v.as_deref().map(|v| (k.as_str(), v)))
        .collect()
}
