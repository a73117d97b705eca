//! Writer schemas asked of the schema registry off the loop. A partition
//! whose next record needs a schema not known yet waits for it: its
//! records are kept in order, the partition is paused in librdkafka, and
//! the loop goes on. A registry that is away or overloaded is asked again
//! with a backoff that doubles, up to 30 s; nothing is lost or skipped.

use super::input::set_flow;
use super::{Live, PartitionKey};
use crate::codec::WriterSchema;
use crate::kafka::flow::FlowChange;
use crate::schema_registry::RegistryError;
use anyhow::{anyhow, Result};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The registry's answer for a schema id.
pub(super) type SchemaAnswer = (u32, Result<WriterSchema, RegistryError>);

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    Asking { attempt: u32 },
    RetryAt { attempt: u32, at: Instant },
}

/// Which schema ids are being asked, and when those that failed are asked
/// again. Time is given, never read: the decisions are tested without a clock.
#[derive(Debug, Default)]
pub(super) struct SchemaFetches {
    fetches: HashMap<u32, Fetch>,
}

impl SchemaFetches {
    /// Whether `id` is to be asked now: it is neither being asked nor
    /// waiting for its next attempt.
    pub(super) fn start(&mut self, id: u32) -> bool {
        if self.fetches.contains_key(&id) {
            return false;
        }
        self.fetches.insert(id, Fetch::Asking { attempt: 1 });
        true
    }

    /// The registry answered for good: `id` is forgotten.
    pub(super) fn answered(&mut self, id: u32) {
        self.fetches.remove(&id);
    }

    /// The attempt failed: `id` is asked again after the returned backoff.
    pub(super) fn failed(&mut self, id: u32, now: Instant) -> Duration {
        let attempt = match self.fetches.get(&id) {
            Some(Fetch::Asking { attempt } | Fetch::RetryAt { attempt, .. }) => *attempt,
            None => 1,
        };
        let backoff = FIRST_RETRY
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(LONGEST_RETRY);
        self.fetches.insert(
            id,
            Fetch::RetryAt {
                attempt,
                at: now + backoff,
            },
        );
        backoff
    }

    /// The ids whose next attempt is due at `now`, marked as being asked.
    pub(super) fn due(&mut self, now: Instant) -> Vec<u32> {
        let mut due = Vec::new();
        for (id, fetch) in &mut self.fetches {
            if let Fetch::RetryAt { attempt, at } = *fetch {
                if at <= now {
                    *fetch = Fetch::Asking {
                        attempt: attempt + 1,
                    };
                    due.push(*id);
                }
            }
        }
        due
    }
}

impl Live {
    /// The schema id a record needs asked of the registry before it can be
    /// decoded; `None` when it is known, known to be unusable, or the
    /// input does not use a registry.
    pub(super) fn schema_needed(&self, payload: &[u8]) -> Option<u32> {
        self.schema_registry.as_ref()?;
        let id = crate::codec::confluent_schema_id(payload).ok()?;
        self.decoder.needs_schema(id).then_some(id)
    }

    /// Asks the registry for `id` beside the loop, unless it is asked already.
    pub(super) fn ask_schema(&mut self, id: u32) {
        if self.schema_fetches.start(id) {
            self.spawn_schema_fetch(id);
        }
    }

    fn spawn_schema_fetch(&self, id: u32) {
        let Some(registry) = self.schema_registry.clone() else {
            return;
        };
        let answers = self.schema_answers.clone();
        tokio::spawn(async move {
            let answer = registry.writer_schema(id).await;
            let _ = answers.send((id, answer));
        });
    }

    /// Asks again for the schemas whose backoff has passed.
    pub(super) fn retry_schemas(&mut self) {
        for id in self.schema_fetches.due(Instant::now()) {
            self.spawn_schema_fetch(id);
        }
    }

    /// The registry's answer: the schema is learnt (or known to be
    /// unusable, and its records are dead-lettered as undecodable) and the
    /// partitions waiting go on; a registry away is asked again later. A
    /// refused request (credentials, a wrong URL) ends the run.
    pub(super) fn schema_answered(&mut self, (id, answer): SchemaAnswer) -> Result<()> {
        match self.decoder.settle_schema(id, answer) {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                self.metrics.schema_registry_failures.inc();
                let retry_in = self.schema_fetches.failed(id, Instant::now());
                if let Some(held_back) = crate::throttle::due("schema registry") {
                    tracing::warn!(error = %e, id, ?retry_in, held_back, "cannot fetch a writer schema yet: its partitions wait");
                }
                return Ok(());
            }
            Err(e) => return Err(anyhow!(e).context("the schema registry is needed to decode")),
        }
        self.schema_fetches.answered(id);
        self.release_waiting()
    }

    /// Takes again the records that waited for a schema, partition by
    /// partition, and resumes each partition that no longer waits.
    fn release_waiting(&mut self) -> Result<()> {
        let waiting: Vec<PartitionKey> = self
            .parts
            .iter()
            .filter(|(_, p)| !p.waiting.is_empty())
            .map(|(key, _)| key.clone())
            .collect();
        for key in waiting {
            let Some(part) = self.parts.get_mut(&key) else {
                continue;
            };
            for batch in std::mem::take(&mut part.waiting) {
                self.take(batch)?;
            }
            let released = self.parts.get(&key).is_some_and(|p| p.waiting.is_empty());
            if released && !self.flow.is_paused() {
                set_flow(&self.consumer, &[&key], FlowChange::Resume);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_asked_once_at_a_time() {
        let mut f = SchemaFetches::default();
        assert!(f.start(7));
        assert!(!f.start(7), "asked already");
        f.answered(7);
        assert!(f.start(7), "asked again after an answer");
    }

    #[test]
    fn a_failed_id_waits_for_its_backoff_which_doubles_up_to_30_s() {
        let mut f = SchemaFetches::default();
        let t0 = Instant::now();
        assert!(f.start(7));
        let mut now = t0;
        let mut backoffs = Vec::new();
        for _ in 0..8 {
            let backoff = f.failed(7, now);
            backoffs.push(backoff.as_secs());
            assert!(!f.start(7), "waiting for its retry");
            assert!(f.due(now + backoff - Duration::from_millis(1)).is_empty());
            now += backoff;
            assert_eq!(f.due(now), vec![7]);
            assert!(f.due(now).is_empty(), "being asked");
        }
        assert_eq!(backoffs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn ids_retry_on_their_own_schedules() {
        let mut f = SchemaFetches::default();
        let t0 = Instant::now();
        f.start(1);
        f.start(2);
        f.failed(1, t0);
        f.failed(2, t0 + Duration::from_millis(500));
        assert_eq!(f.due(t0 + Duration::from_secs(1)), vec![1]);
        assert_eq!(f.due(t0 + Duration::from_millis(1500)), vec![2]);
    }
}
