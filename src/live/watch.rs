//! Once a second: idle partitions (their watermarks asked of the broker
//! off the loop), stalled input, and the gauges.

use super::{now_ms, Live, PartitionKey, WATERMARK_QUERY_TIMEOUT};
use crate::kafka::record_queue::cached_watermarks;
use crate::kafka::stall::StallChange;
use crate::kafka::topic_presence::PresenceChange;
use crate::registry::MonitorId;
use rdkafka::consumer::Consumer;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

impl Live {
    /// Asks the broker for the watermarks of partitions that have had nothing
    /// to read for `idle_timeout` or `stall_after`, one query per partition
    /// at a time. The queries run off the loop (on tansu one takes about half
    /// a second) and on a client of their own (`watermark_client`);
    /// `idle_watermarks` takes the answers.
    pub(super) fn ask_idle_watermarks(&mut self) {
        let quiet_enough = self
            .config
            .windowing
            .idle_timeout
            .min(self.config.kafka.stall_after);
        for (key, part) in &self.parts {
            // A partition catching up needs its high watermark at once.
            let catching_up = part.catch_up_to.is_none() && part.pipeline.catching_up();
            let quiet = part.last_record.elapsed() >= quiet_enough;
            if !(quiet || catching_up) || self.asking_watermarks.contains(key) {
                continue;
            }
            self.asking_watermarks.insert(key.clone());
            let client = Arc::clone(&self.watermark_client);
            let answers = self.watermarks.clone();
            let key = key.clone();
            tokio::task::spawn_blocking(move || {
                let watermarks = client
                    .fetch_watermarks(&key.0, key.1, WATERMARK_QUERY_TIMEOUT)
                    .ok();
                let _ = answers.send((key, watermarks));
            });
        }
    }

    /// Raises the watermark of an idle partition to now minus
    /// `allowed_lateness`, once its consumer has read everything up to the
    /// broker's high watermark: idle means nothing left to read, not a
    /// consumer that fell behind.
    pub(super) fn idle_watermarks(&mut self, key: PartitionKey, watermarks: Option<(i64, i64)>) {
        self.asking_watermarks.remove(&key);
        let idle_timeout = self.config.windowing.idle_timeout;
        let lateness = self.config.windowing.allowed_lateness.as_millis() as i64;
        // Revoked while the broker was asked.
        let Some(part) = self.parts.get_mut(&key) else {
            return;
        };
        tracing::debug!(topic = %key.0, partition = key.1, ?watermarks, next = ?part.next_offset, "idle check");
        part.stall.broker_answered(watermarks.is_some());
        let Some(watermarks) = watermarks else {
            return;
        };
        if part.pipeline.catching_up() && part.catch_up_to.is_none() {
            part.catch_up_to = Some(watermarks.1);
        }
        let ended = part.caught_up(part.next_offset.unwrap_or(watermarks.0));
        self.keep_shapes(ended);
        let part = self.parts.get_mut(&key).expect("looked up above");
        let lag = part.lag(watermarks);
        self.metrics.set_lag(&key.0, key.1, lag);
        // Caught up (everything up to the high watermark is read, or there
        // is nothing); a record read while the broker was asked ends the idleness.
        if lag > 0 || part.last_record.elapsed() < idle_timeout {
            return;
        }
        let before = part.pipeline.engine().stats().windows_closed;
        let batches = part.pipeline.advance_to(now_ms() - lateness);
        let closed = part.pipeline.engine().stats().windows_closed - before;
        self.metrics.windows_closed.inc_by(closed);
        self.publish(&key, batches);
    }

    /// Each partition's lag as the consumer last heard the high watermark (no
    /// request to the broker), and whether its input stalled.
    pub(super) fn watch_input(&mut self) {
        let stall_after = self.config.kafka.stall_after;
        for ((topic, partition), part) in &mut self.parts {
            let Some(watermarks) = cached_watermarks(&self.consumer, topic, *partition) else {
                continue;
            };
            let lag = part.lag(watermarks);
            self.metrics.set_lag(topic, *partition, lag);
            // A paused input is held back on purpose, not stalled.
            let quiet_for = if self.flow.is_paused() || !part.waiting.is_empty() {
                Duration::ZERO
            } else {
                part.last_record.elapsed().min(self.flowing_since.elapsed())
            };
            match part.stall.checked(quiet_for, stall_after, lag) {
                StallChange::Began => tracing::warn!(
                    %topic,
                    partition,
                    ?quiet_for,
                    lag,
                    "input stalled: nothing read from the partition while records wait on the broker, or it does not answer"
                ),
                StallChange::Ended => {
                    tracing::info!(%topic, partition, "the partition's input flows again")
                }
                StallChange::Unchanged => {}
            }
        }
    }

    /// Input topics the cluster does not have, told when they go missing
    /// and when they come (`topic_presence`).
    pub(super) fn watch_input_topics(&mut self) {
        for change in self.input_topics.tick(&self.watermark_client) {
            match change {
                PresenceChange::Missing { topic, why } => tracing::warn!(
                    %topic,
                    %why,
                    "input topic is not on the cluster: nothing is read from it until it is created (asked again every 10 s)"
                ),
                PresenceChange::Appeared { topic } => tracing::info!(
                    %topic,
                    "input topic is on the cluster now: it is read once the group assigns its partitions"
                ),
            }
        }
        self.metrics
            .missing_input_topics
            .set(self.input_topics.missing() as i64);
    }

    pub(super) fn update_gauges(&mut self) {
        self.watch_input();
        let now = now_ms();
        let mut open = 0;
        for ((topic, partition), part) in &self.parts {
            open += part.pipeline.engine().open_windows();
            let watermark = part.pipeline.engine().watermark();
            if watermark > i64::MIN {
                self.metrics
                    .set_watermark_delay(topic, *partition, (now - watermark) / 1000);
            }
        }
        let unmatched = self.publisher.unmatched_answers();
        self.metrics
            .unmatched_answers
            .inc_by(unmatched.saturating_sub(self.metrics.unmatched_answers.get()));
        self.metrics.open_windows.set(open as i64);
        self.metrics.in_flight.set(self.publisher.held() as i64);
        self.metrics
            .waiting_for_store
            .set(self.store_gate.len() as i64);
        let stalled = self.parts.values().filter(|p| p.stall.is_stalled()).count();
        self.metrics.stalled_partitions.set(stalled as i64);
        let paused = if self.flow.is_paused() {
            self.parts.len()
        } else {
            self.parts
                .values()
                .filter(|p| !p.waiting.is_empty())
                .count()
        };
        self.metrics.paused_partitions.set(paused as i64);
        if self.publisher.held() == 0 {
            self.waiting_for_reset_since = None;
        }
        let since = self
            .waiting_for_reset_since
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        self.metrics.waiting_for_reset_since.set(since);
        // Every 10 s: silence is counted in hours, days in windows.
        if self.completeness_at.elapsed() >= Duration::from_secs(10) {
            self.completeness_at = Instant::now();
            self.update_completeness(now);
        }
    }

    /// The completeness gauges, over the monitors that had a sample go into
    /// a window in this replica's partitions (a revoked partition's
    /// monitors leave with it).
    fn update_completeness(&mut self, now: i64) {
        let mut latest: HashMap<MonitorId, i64> = HashMap::new();
        for part in self.parts.values() {
            for (id, t) in part.pipeline.engine().latest_samples() {
                let l = latest.entry(id).or_insert(t);
                *l = (*l).max(t);
            }
        }
        let silent_after = self.config.windowing.silent_after.as_millis() as i64;
        let c = self
            .coverage
            .completeness(&self.registry, &latest, now, silent_after);
        self.metrics.monitors_silent.set(c.silent as i64);
        self.metrics
            .day_windows_expected
            .set(c.windows_expected as i64);
        self.metrics
            .day_windows_with_data
            .set(c.windows_with_data as i64);
        // Days more than two before today (in any zone) are not looked at again.
        if let Some(today) = chrono::DateTime::from_timestamp_millis(now) {
            let oldest = today.date_naive() - chrono::Duration::days(3);
            if self.coverage_kept_from != Some(oldest) {
                self.coverage.forget_before(oldest);
                self.coverage_kept_from = Some(oldest);
            }
        }
    }
}
