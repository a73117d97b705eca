//! Input topics the cluster does not have (a name mistyped in
//! `kafka.topics`, or the pipeline deployed before its producers): nothing
//! is read from them, and librdkafka says so once in its own words. The
//! cluster is asked off the loop every `LOOK_EVERY`; each topic that goes
//! missing or comes is told once, and the count is a gauge.

use super::quiet::Quiet;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the cluster is asked; as often as the input consumer looks at
/// the cluster's topics (`client::input_consumer_config`).
pub const LOOK_EVERY: Duration = Duration::from_secs(10);

/// How long one question may take before the answer counts as none.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the cluster says of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicCheck {
    /// It has the topic, with at least one partition.
    Present,
    /// It does not have it, or does not show it to these credentials: why.
    Absent(String),
    /// It could not be asked (a broker away): nothing is known.
    Unknown,
}

/// What the cluster says of `topic`.
pub fn check_topic<C: rdkafka::consumer::ConsumerContext>(
    client: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> TopicCheck {
    let Ok(metadata) = client.fetch_metadata(Some(topic), timeout) else {
        return TopicCheck::Unknown;
    };
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) => match t.error() {
            Some(code) => {
                TopicCheck::Absent(rdkafka::types::RDKafkaErrorCode::from(code).to_string())
            }
            None if t.partitions().is_empty() => TopicCheck::Absent("no partition".into()),
            None => TopicCheck::Present,
        },
        None => TopicCheck::Absent("not in the cluster's answer".into()),
    }
}

/// A topic that went missing, or came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    Missing { topic: String, why: String },
    Appeared { topic: String },
}

/// Which topics are missing, from the cluster's answers (no I/O).
#[derive(Debug, Default)]
pub struct TopicPresence {
    missing: BTreeSet<String>,
}

impl TopicPresence {
    /// Takes one round of answers; a topic that could not be asked keeps
    /// what was known of it.
    pub fn answered(&mut self, answers: Vec<(String, TopicCheck)>) -> Vec<PresenceChange> {
        let mut changes = Vec::new();
        for (topic, check) in answers {
            match check {
                TopicCheck::Present => {
                    if self.missing.remove(&topic) {
                        changes.push(PresenceChange::Appeared { topic });
                    }
                }
                TopicCheck::Absent(why) => {
                    if self.missing.insert(topic.clone()) {
                        changes.push(PresenceChange::Missing { topic, why });
                    }
                }
                TopicCheck::Unknown => {}
            }
        }
        changes
    }

    pub fn missing(&self) -> usize {
        self.missing.len()
    }
}

/// Asks the cluster about the input topics now and then, off the loop.
pub struct InputTopicWatch {
    /// The topics named (a `^` pattern names none, and is not asked).
    topics: Vec<String>,
    presence: TopicPresence,
    answer: Option<mpsc::Receiver<Vec<(String, TopicCheck)>>>,
    asked_at: Option<Instant>,
}

impl InputTopicWatch {
    pub fn new(topics: &[String]) -> InputTopicWatch {
        InputTopicWatch {
            topics: topics
                .iter()
                .filter(|t| !t.starts_with('^'))
                .cloned()
                .collect(),
            presence: TopicPresence::default(),
            answer: None,
            asked_at: None,
        }
    }

    /// Looked at on the loop's tick: takes the answer if it came, and asks
    /// again (on a blocking thread, with `client`) when `LOOK_EVERY` has
    /// passed since the last question. Returns what changed.
    pub fn tick(&mut self, client: &Arc<BaseConsumer<Quiet>>) -> Vec<PresenceChange> {
        let mut changes = Vec::new();
        if let Some(answer) = &self.answer {
            match answer.try_recv() {
                Ok(answers) => {
                    changes = self.presence.answered(answers);
                    self.answer = None;
                }
                Err(mpsc::TryRecvError::Empty) => return changes,
                Err(mpsc::TryRecvError::Disconnected) => self.answer = None,
            }
        }
        let due = self.asked_at.is_none_or(|at| at.elapsed() >= LOOK_EVERY);
        if due && !self.topics.is_empty() {
            let (tell, answer) = mpsc::channel();
            let client = Arc::clone(client);
            let topics = self.topics.clone();
            tokio::task::spawn_blocking(move || {
                let answers = topics
                    .into_iter()
                    .map(|t| {
                        let check = check_topic(&client, &t, ASK_TIMEOUT);
                        (t, check)
                    })
                    .collect();
                let _ = tell.send(answers);
            });
            self.answer = Some(answer);
            self.asked_at = Some(Instant::now());
        }
        changes
    }

    /// The input topics known to be missing.
    pub fn missing(&self) -> usize {
        self.presence.missing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absent(why: &str) -> TopicCheck {
        TopicCheck::Absent(why.into())
    }

    #[test]
    fn a_missing_topic_is_told_once_and_its_coming_once() {
        let mut p = TopicPresence::default();
        let round = |check: TopicCheck| vec![("a".to_string(), check)];
        assert_eq!(
            p.answered(round(absent("unknown topic"))),
            vec![PresenceChange::Missing {
                topic: "a".into(),
                why: "unknown topic".into()
            }]
        );
        assert_eq!(p.missing(), 1);
        assert_eq!(p.answered(round(absent("unknown topic"))), vec![]);
        assert_eq!(
            p.answered(round(TopicCheck::Present)),
            vec![PresenceChange::Appeared { topic: "a".into() }]
        );
        assert_eq!(p.missing(), 0);
        assert_eq!(p.answered(round(TopicCheck::Present)), vec![]);
    }

    #[test]
    fn a_topic_that_could_not_be_asked_keeps_what_was_known() {
        let mut p = TopicPresence::default();
        p.answered(vec![
            ("a".into(), absent("unknown topic")),
            ("b".into(), TopicCheck::Present),
        ]);
        let changes = p.answered(vec![
            ("a".into(), TopicCheck::Unknown),
            ("b".into(), TopicCheck::Unknown),
        ]);
        assert_eq!((changes, p.missing()), (vec![], 1));
    }

    #[test]
    fn topics_are_told_apart() {
        let mut p = TopicPresence::default();
        let changes = p.answered(vec![
            ("a".into(), absent("x")),
            ("b".into(), TopicCheck::Present),
            ("c".into(), absent("y")),
        ]);
        assert_eq!(changes.len(), 2);
        assert_eq!(p.missing(), 2);
        p.answered(vec![("c".into(), TopicCheck::Present)]);
        assert_eq!(p.missing(), 1);
    }

    #[test]
    fn a_pattern_is_not_asked_about() {
        let watch = InputTopicWatch::new(&["^sensor-.*".into(), "events".into()]);
        assert_eq!(watch.topics, vec!["events".to_string()]);
    }
}
