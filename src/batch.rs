//! The batcher: closed windows become `readings` messages, one monitor per
//! message, at most 48 rows in time order, with deterministic ids. Pure.

use crate::config::PushMode;
use crate::payload::{reading_json, readings_message_id, readings_payload};
use crate::registry::{MonitorId, Registry};
use crate::window::clock::is_local_midnight;
use crate::window::{ClosedWindow, ResumePoint};
use std::collections::BTreeMap;

/// RESET takes at most 48 readings (one day) per message.
pub const MAX_READINGS_PER_MESSAGE: usize = 48;

/// One closed window, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub end: i64,
    pub resume: ResumePoint,
    pub json: String,
}

/// One `readings` message, exactly as it will be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub monitor: MonitorId,
    pub connection_id: String,
    pub message_id: String,
    /// Window ends in the message, in time order.
    pub ends: Vec<i64>,
    /// Where each window in the message was first fed, for offset tracking.
    pub resumes: Vec<ResumePoint>,
    pub payload: String,
}

impl Batch {
    fn new(monitor: MonitorId, connection_id: &str, rows: &[Row]) -> Batch {
        let texts: Vec<&str> = rows.iter().map(|r| r.json.as_str()).collect();
        let first = rows.first().expect("a batch has rows").end;
        let last = rows.last().expect("a batch has rows").end;
        let message_id = readings_message_id(connection_id, first, last, &texts.join(","));
        let payload = readings_payload(&message_id, connection_id, &texts);
        Batch {
            monitor,
            connection_id: connection_id.to_string(),
            message_id,
            ends: rows.iter().map(|r| r.end).collect(),
            resumes: rows.iter().map(|r| r.resume).collect(),
            payload,
        }
    }
}

/// Splits one monitor's rows (already in time order) into messages of at most 48.
pub fn split(monitor: MonitorId, connection_id: &str, rows: &[Row]) -> Vec<Batch> {
    rows.chunks(MAX_READINGS_PER_MESSAGE)
        .map(|chunk| Batch::new(monitor, connection_id, chunk))
        .collect()
}

/// Holds closed windows per monitor until the push mode says to send them.
#[derive(Debug, Clone)]
pub struct Batcher {
    mode: PushMode,
    pending: BTreeMap<MonitorId, Vec<Row>>,
}

impl Batcher {
    pub fn new(mode: PushMode) -> Batcher {
        Batcher {
            mode,
            pending: BTreeMap::new(),
        }
    }

    /// The earliest resume point of a held row.
    pub fn earliest_pending(&self) -> Option<ResumePoint> {
        self.pending.values().flatten().map(|r| r.resume).min()
    }

    /// Takes windows closed together (one watermark step) and returns the
    /// messages now due, by monitor.
    pub fn push(&mut self, registry: &Registry, closed: Vec<ClosedWindow>) -> Vec<Batch> {
        let mut touched: BTreeMap<MonitorId, bool> = BTreeMap::new();
        for window in closed {
            let monitor = registry.get(window.monitor);
            let day_ends = is_local_midnight(&monitor.tz, window.end);
            let rows = self.pending.entry(window.monitor).or_default();
            let at = rows.partition_point(|r| r.end < window.end);
            rows.insert(
                at,
                Row {
                    end: window.end,
                    resume: window.resume,
                    json: reading_json(monitor, &window),
                },
            );
            *touched.entry(window.monitor).or_default() |= day_ends;
        }
        let mut out = Vec::new();
        for (id, day_ended) in touched {
            let rows = self.pending.get_mut(&id).expect("touched");
            let due = match self.mode {
                PushMode::Every30Minutes => rows.len(),
                PushMode::Daily if day_ended => rows.len(),
                PushMode::Daily => rows.len() - rows.len() % MAX_READINGS_PER_MESSAGE,
            };
            if due > 0 {
                let sent: Vec<Row> = rows.drain(..due).collect();
                out.extend(split(id, registry.get(id).connection_id(), &sent));
            }
            if rows.is_empty() {
                self.pending.remove(&id);
            }
        }
        out
    }

    /// Everything held, now (end of input).
    pub fn flush(&mut self, registry: &Registry) -> Vec<Batch> {
        let pending = std::mem::take(&mut self.pending);
        pending
            .into_iter()
            .flat_map(|(id, rows)| split(id, registry.get(id).connection_id(), &rows))
            .collect()
    }
}
