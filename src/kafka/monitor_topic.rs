//! The monitor registry's compacted topic (a `FollowedTopic`): read whole
//! at start, then followed. Each record is keyed by `connection_id` and holds the fields of
//! one `monitors.yaml` entry as JSON (or YAML); a tombstone removes the
//! monitor. `Registry::apply` decides what a record does.

use super::followed::TopicRecord;
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistryChange};

/// Applies records to `registry` in order, logging and counting each
/// outcome; a refused record leaves the monitor as it was. Returns the
/// changes that added, changed, reshaped or removed a monitor.
pub fn apply_records(
    registry: &mut Registry,
    records: &[TopicRecord],
    metrics: &Metrics,
) -> Vec<RegistryChange> {
    let mut moved = Vec::new();
    for record in records {
        let outcome = registry.apply(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.location,
        );
        let name = match outcome {
            Ok(change) => {
                if !matches!(
                    change,
                    RegistryChange::Unchanged(_) | RegistryChange::NothingToRemove
                ) {
                    moved.push(change);
                    tracing::info!(
                        at = %record.location,
                        connection_id = record.key.as_deref().unwrap_or_default(),
                        change = change.name(),
                        "monitor registry"
                    );
                }
                change.name()
            }
            Err(problems) => {
                tracing::warn!(%problems, "monitor registry record refused");
                "refused"
            }
        };
        metrics.registry_records.with_label_values(&[name]).inc();
    }
    moved
}
