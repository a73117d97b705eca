//! The batcher: closed windows become `readings` messages, one monitor per
//! message, at most 48 rows in time order, with deterministic ids. Pure.

use crate::config::PushMode;
use crate::payload::{reading_json, readings_message_id, readings_payload};
use crate::registry::{MonitorId, Registry};
use crate::window::clock::local_day_end;
use crate::window::{ClosedWindow, ResumePoint, Shape};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// RESET takes at most 48 readings (one day) per message.
pub const MAX_READINGS_PER_MESSAGE: usize = 48;

/// One closed window, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub end: i64,
    /// The end of the window's local day, in the zone it was built in
    /// (daily push; `i64::MAX` when rows are not held by day).
    pub day_end: i64,
    pub resume: ResumePoint,
    pub json: String,
    /// The monitor's earlier shape it was built on (`None`: the registry's).
    pub shape: Option<Shape>,
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
    /// The monitor's earlier shape its rows were built on (`None`: the
    /// registry's): a message holds rows of one shape.
    pub shape: Option<Shape>,
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
            shape: rows[0].shape.clone(),
        }
    }
}

/// Splits one monitor's rows (already in time order) into messages of at
/// most 48, each of one shape.
pub fn split(monitor: MonitorId, connection_id: &str, rows: &[Row]) -> Vec<Batch> {
    rows.chunk_by(|a, b| a.shape == b.shape)
        .flat_map(|same| same.chunks(MAX_READINGS_PER_MESSAGE))
        .map(|chunk| Batch::new(monitor, connection_id, chunk))
        .collect()
}

/// Holds closed windows per monitor until the push mode says to send them:
/// at once (`every_30_minutes`), or (`daily`) when the watermark reaches the
/// end of the local day of the monitor's first held window, whether or not
/// that day's last window had samples, and whenever 48 are held.
#[derive(Debug, Clone)]
pub struct Batcher {
    mode: PushMode,
    pending: BTreeMap<MonitorId, Vec<Row>>,
    /// Each monitor with held rows, by the end of its first held row's
    /// local day: the next day to send is the first entry.
    days: BTreeSet<(i64, MonitorId)>,
}

impl Batcher {
    pub fn new(mode: PushMode) -> Batcher {
        Batcher {
            mode,
            pending: BTreeMap::new(),
            days: BTreeSet::new(),
        }
    }

    /// The earliest resume point of a held row.
    pub fn earliest_pending(&self) -> Option<ResumePoint> {
        self.pending.values().flatten().map(|r| r.resume).min()
    }

    /// Takes the windows the watermark closed in one step (none, when only
    /// the watermark moved) and returns the messages now due, by monitor.
    pub fn push(
        &mut self,
        registry: &Registry,
        closed: Vec<ClosedWindow>,
        watermark: i64,
    ) -> Vec<Batch> {
        let mut touched = BTreeSet::new();
        for window in closed {
            let monitor = window
                .shape
                .as_ref()
                .map_or(registry.get(window.monitor), |s| &s.0);
            let row = Row {
                end: window.end,
                day_end: match self.mode {
                    PushMode::Daily => local_day_end(&monitor.tz, window.end),
                    PushMode::Every30Minutes => i64::MAX,
                },
                resume: window.resume,
                json: reading_json(monitor, &window),
                shape: window.shape,
            };
            self.forget_day(window.monitor);
            let rows = self.pending.entry(window.monitor).or_default();
            let at = rows.partition_point(|r| r.end < row.end);
            rows.insert(at, row);
            self.remember_day(window.monitor);
            touched.insert(window.monitor);
        }
        // Monitors whose first held day has ended, touched or not.
        while let Some(&(day_end, id)) = self.days.first() {
            if day_end > watermark {
                break;
            }
            self.days.pop_first();
            touched.insert(id);
        }
        let mut out = Vec::new();
        for id in touched {
            self.forget_day(id);
            let monitor = registry.get(id);
            let rows = self
                .pending
                .get_mut(&id)
                .expect("touched monitors hold rows");
            let due = match self.mode {
                PushMode::Every30Minutes => rows.len(),
                PushMode::Daily => {
                    let ended = rows.partition_point(|r| r.day_end <= watermark);
                    let rest = rows.len() - ended;
                    ended + rest - rest % MAX_READINGS_PER_MESSAGE
                }
            };
            if due > 0 {
                let sent: Vec<Row> = rows.drain(..due).collect();
                out.extend(split(id, monitor.connection_id(), &sent));
            }
            if rows.is_empty() {
                self.pending.remove(&id);
            } else {
                self.remember_day(id);
            }
        }
        out
    }

    /// Whether a held day has ended by `watermark` (cheap: one comparison).
    pub fn day_ended(&self, watermark: i64) -> bool {
        self.days
            .first()
            .is_some_and(|&(day_end, _)| day_end <= watermark)
    }

    /// The day of the monitor's first held row, as `days` has it.
    fn first_day(&self, id: MonitorId) -> Option<(i64, MonitorId)> {
        let first = self.pending.get(&id)?.first()?;
        Some((first.day_end, id))
    }

    /// Days are kept for daily push only.
    fn forget_day(&mut self, id: MonitorId) {
        if self.mode == PushMode::Daily {
            if let Some(day) = self.first_day(id) {
                self.days.remove(&day);
            }
        }
    }

    fn remember_day(&mut self, id: MonitorId) {
        if self.mode == PushMode::Daily {
            if let Some(day) = self.first_day(id) {
                self.days.insert(day);
            }
        }
    }

    /// Everything held of the monitors `ids`, now (end of input, some
    /// monitors at a time), by monitor.
    pub fn flush(&mut self, registry: &Registry, ids: Range<MonitorId>) -> Vec<Batch> {
        self.days.retain(|(_, id)| !ids.contains(id));
        let held: Vec<MonitorId> = self.pending.range(ids).map(|(&id, _)| id).collect();
        held.into_iter()
            .flat_map(|id| {
                let rows = self.pending.remove(&id).expect("listed just now");
                split(id, registry.get(id).connection_id(), &rows)
            })
            .collect()
    }
}
