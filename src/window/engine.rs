//! The window engine of one input partition: pure, synchronous, no clock.
//!
//! `record` takes an event with its offset, `advance` returns the windows the
//! watermark has closed. The watermark is the largest event time seen minus
//! the allowed lateness; a sample whose window end is at or before the
//! watermark is late; an event whose time cannot be true (`plausible`) is
//! rejected before it can move the watermark. Everything here is a function
//! of the record sequence alone (each record with its reference time), which
//! is what makes `run`, `replay` and `aggregate` agree.

use super::aggregate::{Aggregator, BinRules, SlotValue};
use super::clock::{window_end, HALF_HOUR_MS};
use super::plausible::implausibility;
use super::shape::{Epoch, Epochs, Shape};
use crate::event::SensorEvent;
use crate::normalize::{normalize, Outcome};
use crate::registry::{Monitor, MonitorId, Registry};
use crate::reject::{Reject, RejectReason};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

/// Settings of the engine, from the config's `windowing` section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    pub allowed_lateness_ms: i64,
    /// How far an event time may be ahead of its record's reference time.
    pub max_future_skew_ms: i64,
    pub bin: BinRules,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            allowed_lateness_ms: 10 * 60 * 1000,
            max_future_skew_ms: 60 * 60 * 1000,
            bin: BinRules::default(),
        }
    }
}

impl From<&crate::config::WindowingConfig> for EngineSettings {
    fn from(w: &crate::config::WindowingConfig) -> Self {
        EngineSettings {
            allowed_lateness_ms: w.allowed_lateness.as_millis() as i64,
            max_future_skew_ms: w.max_future_skew.as_millis() as i64,
            bin: BinRules {
                min_fraction: w.bin_empty_min_fraction,
                min_kg: w.bin_empty_min_kg,
            },
        }
    }
}

/// Where to restart so that a window is rebuilt whole: the offset of the
/// first record that fed it, and the partition watermark just before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResumePoint {
    pub offset: u64,
    pub watermark_before: i64,
}

/// A window the watermark has closed, with its final values.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    pub monitor: MonitorId,
    /// The window's end, epoch milliseconds.
    pub end: i64,
    pub resume: ResumePoint,
    /// One value per slot: `monitor.reported` × channels, parameter-major.
    pub values: Vec<SlotValue>,
    /// The monitor's earlier shape the window was built on; `None`: the
    /// registry's.
    pub shape: Option<Shape>,
}

struct OpenWindow {
    end: i64,
    resume: ResumePoint,
    slots: Box<[Aggregator]>,
    shape: Option<Shape>,
}

/// The engine's state of one monitor. Every event reads and writes most of
/// it, and a fleet's monitors come in turn, so it is kept to one cache
/// line: times are `NEVER` rather than `None` (half the size), and the
/// rarely held earlier shapes are one pointer.
#[repr(align(64))]
struct MonitorWindows {
    /// The end of the window the last sample fell in, to skip the zone
    /// lookup; `NEVER`: none yet.
    cached_end: i64,
    /// The latest event time of a sample that went into a window, or `NEVER`.
    latest_taken: i64,
    /// The latest event time of an event routed to the monitor (taken,
    /// late or already acknowledged), or `NEVER`: where an earlier shape ends.
    latest_routed: i64,
    /// Earlier shapes, for samples up to their ends.
    epochs: Epochs,
    /// Open windows, by end.
    open: Vec<OpenWindow>,
}

/// A time a monitor has not had yet. Plausible event times are far above it.
const NEVER: i64 = i64::MIN;

/// `NEVER` as `None`.
fn ever(t: i64) -> Option<i64> {
    (t != NEVER).then_some(t)
}

impl Default for MonitorWindows {
    fn default() -> MonitorWindows {
        MonitorWindows {
            cached_end: NEVER,
            latest_taken: NEVER,
            latest_routed: NEVER,
            epochs: Epochs::default(),
            open: Vec::new(),
        }
    }
}

/// Counters of what the engine did with its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub samples_accepted: u64,
    pub samples_null: u64,
    pub samples_undeclared: u64,
    pub samples_already_acknowledged: u64,
    pub windows_opened: u64,
    pub windows_closed: u64,
}

/// The engine of one partition.
pub struct Engine {
    registry: Arc<Registry>,
    settings: EngineSettings,
    windows: Windows,
}

/// Where one event's samples go.
struct Sample {
    id: MonitorId,
    channel: usize,
    offset: u64,
    watermark_before: i64,
}

/// The engine's state, apart from the registry it reads.
struct Windows {
    watermark: i64,
    /// Windows ending at or before this were acknowledged before a restart.
    acknowledged_through: i64,
    monitors: Vec<MonitorWindows>,
    closing: BinaryHeap<Reverse<(i64, MonitorId)>>,
    /// Monitors whose samples take a shape `Engine::begin_shape` gave them.
    begun: Vec<MonitorId>,
    open_windows: usize,
    stats: EngineStats,
}

impl Engine {
    pub fn new(registry: Arc<Registry>, settings: EngineSettings) -> Engine {
        Engine::resume(registry, settings, i64::MIN, i64::MIN)
    }

    /// An engine resuming a partition: the watermark it had before the first
    /// record it will see, and the end through which every window is known
    /// to be acknowledged (their samples are skipped, not re-sent).
    pub fn resume(
        registry: Arc<Registry>,
        settings: EngineSettings,
        watermark: i64,
        acknowledged_through: i64,
    ) -> Engine {
        Engine {
            registry,
            settings,
            windows: Windows {
                watermark,
                acknowledged_through,
                monitors: Vec::new(),
                closing: BinaryHeap::new(),
                begun: Vec::new(),
                open_windows: 0,
                stats: EngineStats::default(),
            },
        }
    }

    pub fn watermark(&self) -> i64 {
        self.windows.watermark
    }

    pub fn open_windows(&self) -> usize {
        self.windows.open_windows
    }

    /// Each monitor that had a sample go into a window, with the latest
    /// such sample's event time.
    pub fn latest_samples(&self) -> impl Iterator<Item = (MonitorId, i64)> + '_ {
        self.windows
            .monitors
            .iter()
            .enumerate()
            .filter_map(|(id, m)| ever(m.latest_taken).map(|t| (id as MonitorId, t)))
    }

    pub fn stats(&self) -> &EngineStats {
        &self.windows.stats
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Replaces the registry (monitors added, described anew or removed);
    /// monitors keep their ids and their shape (`Registry::apply`).
    pub fn set_registry(&mut self, registry: Arc<Registry>) {
        self.registry = registry;
    }

    /// Earlier shapes of a monitor, as the announcements store kept them:
    /// its samples up to each one's end take it.
    pub fn load_shapes(&mut self, id: MonitorId, epochs: Vec<Epoch>) {
        self.windows.monitor_mut(id).epochs.load(epochs);
    }

    /// The monitor's samples take `shape` (what RESET was last told of it)
    /// instead of the registry's until `end_shape`: a restart reading again
    /// records that an earlier run may have read, with a registry whose
    /// shape of the monitor changed meanwhile.
    pub fn begin_shape(&mut self, id: MonitorId, shape: Shape) {
        let epochs = &mut self.windows.monitor_mut(id).epochs;
        if !epochs.is_open() {
            epochs.begin(shape);
            self.windows.begun.push(id);
        }
    }

    /// Ends the shape `begin_shape` gave the monitor: from the window after
    /// that of its latest sample read so far, samples take the registry's
    /// shape. The epoch, to be kept with the announcements, if it covers
    /// any sample.
    pub fn end_shape(&mut self, id: MonitorId) -> Option<Epoch> {
        self.windows.begun.retain(|&begun| begun != id);
        let m = self.windows.monitors.get_mut(id as usize)?;
        m.epochs.end(ever(m.latest_routed))
    }

    /// Monitors whose samples take a shape `begin_shape` gave them.
    pub fn shapes_begun(&self) -> &[MonitorId] {
        &self.windows.begun
    }

    /// The registry changed the monitor's shape while running: samples up
    /// to the window of its latest one read keep `old`, unless a shape
    /// begun is still open (it then ends later, on the new registry).
    pub fn reshape(&mut self, id: MonitorId, old: Shape) -> Option<Epoch> {
        let open = self
            .windows
            .monitors
            .get(id as usize)
            .is_some_and(|m| m.epochs.is_open());
        if open {
            return None;
        }
        // Windows open now were built on the old shape.
        if let Some(m) = self.windows.monitors.get_mut(id as usize) {
            for w in m.open.iter_mut().filter(|w| w.shape.is_none()) {
                w.shape = Some(old.clone());
            }
        }
        self.begin_shape(id, old);
        self.end_shape(id)
    }

    /// The earliest resume point among open windows.
    pub fn earliest_open(&self) -> Option<ResumePoint> {
        self.windows
            .monitors
            .iter()
            .flat_map(|m| m.open.iter().map(|w| w.resume))
            .min()
    }

    /// Takes one event read at `offset`, whose record's reference time
    /// (its Kafka timestamp, or `aggregate --now`) is `reference`. Rejected
    /// samples are appended to `rejects`; an event whose time cannot be true
    /// is rejected whole and touches neither the watermark nor any window.
    pub fn record(
        &mut self,
        offset: u64,
        event: &SensorEvent,
        reference: Option<i64>,
        rejects: &mut Vec<Reject>,
    ) {
        let w = &mut self.windows;
        w.stats.events += 1;
        let skew = self.settings.max_future_skew_ms;
        if let Some(why) = implausibility(event.event_time, reference, skew) {
            rejects.push(event_reject(event, RejectReason::ImplausibleTime, why));
            return;
        }
        let watermark_before = w.watermark;
        if let Some(id) = lookup(&self.registry, event, rejects) {
            let shape = w.shape_at(id, event.event_time);
            let monitor = shape.as_ref().map_or(self.registry.get(id), |s| &s.0);
            if let Some(channel) = channel(monitor, event, rejects) {
                let sample = Sample {
                    id,
                    channel,
                    offset,
                    watermark_before,
                };
                w.take_samples(monitor, shape.clone(), sample, event, rejects);
            }
        }
        let candidate = event
            .event_time
            .saturating_sub(self.settings.allowed_lateness_ms);
        if candidate > w.watermark {
            w.watermark = candidate;
        }
    }

    /// Closes every window the watermark has passed, in (end, monitor) order.
    pub fn advance(&mut self) -> Vec<ClosedWindow> {
        let mut closed = Vec::new();
        let through = self.windows.watermark;
        self.windows
            .close_through(through, &self.settings.bin, &mut closed);
        closed
    }

    /// Raises the watermark (an idle partition) and closes what it passes.
    pub fn advance_to(&mut self, watermark: i64) -> Vec<ClosedWindow> {
        self.windows.watermark = self.windows.watermark.max(watermark);
        self.advance()
    }

    /// Closes every open window (end of input). The watermark is left as it was.
    pub fn flush(&mut self) -> Vec<ClosedWindow> {
        self.flush_monitors(0..self.monitor_slots())
    }

    /// How many monitors the engine holds state for (some may have none):
    /// the end of the ids `flush_monitors` takes.
    pub fn monitor_slots(&self) -> MonitorId {
        self.windows.monitors.len() as MonitorId
    }

    /// Closes every open window of the monitors `ids` (end of input, some
    /// monitors at a time), in the order `flush` closes them.
    pub fn flush_monitors(&mut self, ids: std::ops::Range<MonitorId>) -> Vec<ClosedWindow> {
        let w = &mut self.windows;
        let end = ids.end.min(w.monitors.len() as MonitorId);
        let mut due: Vec<(i64, MonitorId)> = (ids.start..end)
            .flat_map(|id| {
                w.monitors[id as usize]
                    .open
                    .iter()
                    .map(move |o| (o.end, id))
            })
            .collect();
        due.sort_unstable();
        w.closing
            .retain(|Reverse((_, id))| !(ids.start..end).contains(id));
        let mut closed = Vec::with_capacity(due.len());
        for (end, id) in due {
            w.close(end, id, &self.settings.bin, &mut closed);
        }
        closed
    }
}

/// A reject of a whole event.
fn event_reject(event: &SensorEvent, reason: RejectReason, detail: String) -> Reject {
    let mut r = Reject::new(reason, detail);
    r.connection_id = Some(event.connection_id.clone());
    r.event_time = Some(event.event_time);
    r.channel_id = event.channel_id.clone();
    r
}

/// The monitor an event is for, or a reject for the whole event.
fn lookup(
    registry: &Registry,
    event: &SensorEvent,
    rejects: &mut Vec<Reject>,
) -> Option<MonitorId> {
    let id = registry.lookup(&event.connection_id);
    if id.is_none() {
        rejects.push(event_reject(
            event,
            RejectReason::UnknownMonitor,
            format!("no monitor {:?} in the registry", event.connection_id),
        ));
    }
    id
}

/// The channel of `monitor` an event is for, or a reject for the whole event.
fn channel(monitor: &Monitor, event: &SensorEvent, rejects: &mut Vec<Reject>) -> Option<usize> {
    let whole = |reason, detail| event_reject(event, reason, detail);
    if !monitor.module.has_channels() {
        return Some(0);
    }
    match event.channel_id.as_deref() {
        None => {
            rejects.push(whole(
                RejectReason::MissingChannel,
                format!(
                    "{} monitor's event needs a channel_id",
                    monitor.module.with_article()
                ),
            ));
            None
        }
        Some(c) => match monitor.channel_index(c) {
            Some(ch) => Some(ch),
            None => {
                rejects.push(whole(
                    RejectReason::UnknownChannel,
                    format!("monitor {:?} has no channel {c:?}", event.connection_id),
                ));
                None
            }
        },
    }
}

impl Windows {
    fn monitor_mut(&mut self, id: MonitorId) -> &mut MonitorWindows {
        let idx = id as usize;
        if self.monitors.len() <= idx {
            self.monitors.resize_with(idx + 1, MonitorWindows::default);
        }
        &mut self.monitors[idx]
    }

    /// The earlier shape of the monitor a sample at `t` takes, if any.
    fn shape_at(&self, id: MonitorId, t: i64) -> Option<Shape> {
        let m = self.monitors.get(id as usize)?;
        if m.epochs.is_empty() {
            return None;
        }
        m.epochs.shape_at(t).cloned()
    }

    fn take_samples(
        &mut self,
        monitor: &Monitor,
        shape: Option<Shape>,
        sample: Sample,
        event: &SensorEvent,
        rejects: &mut Vec<Reject>,
    ) {
        let t = event.event_time;
        let idx = sample.id as usize;
        let m = self.monitor_mut(sample.id);
        m.latest_routed = m.latest_routed.max(t);
        // Shapes may differ in zone: the cached window is the registry's.
        let cached = ever(m.cached_end).filter(|_| m.epochs.is_empty());
        let end = match cached {
            Some(end) if t <= end && t > end - HALF_HOUR_MS => end,
            _ => {
                let end = window_end(&monitor.tz, t);
                m.cached_end = end;
                end
            }
        };
        let skip = end <= self.acknowledged_through;
        let late = end <= self.watermark;
        let mut window: Option<usize> = None;
        for m in &event.measurements {
            let (parameter, value) = match normalize(monitor, m) {
                Outcome::Accepted(p, v) => (p, Some(v)),
                Outcome::Null(p) => (p, None),
                Outcome::Undeclared => {
                    self.stats.samples_undeclared += 1;
                    continue;
                }
                Outcome::Rejected(reason, detail) => {
                    rejects.push(sample_reject(event, m, reason, detail));
                    continue;
                }
            };
            if skip {
                self.stats.samples_already_acknowledged += 1;
                continue;
            }
            if late {
                let detail = format!(
                    "window ending {} closed: watermark is {}",
                    crate::event::format_utc_millis(end),
                    crate::event::format_utc_millis(self.watermark)
                );
                rejects.push(sample_reject(event, m, RejectReason::Late, detail));
                continue;
            }
            let w = match window {
                Some(w) => w,
                None => *window.insert(self.open_window(monitor, &shape, &sample, end)),
            };
            match value {
                Some(v) => {
                    let slot = monitor
                        .slot(parameter, sample.channel)
                        .expect("declared => reported");
                    self.monitors[idx].open[w].slots[slot].add(t, v, event.bin_emptied);
                    self.stats.samples_accepted += 1;
                }
                None => self.stats.samples_null += 1,
            }
        }
        if window.is_some() {
            let latest = &mut self.monitors[idx].latest_taken;
            *latest = (*latest).max(t);
        }
    }

    /// The index (in the monitor's open list) of the window ending `end`, opened if needed.
    fn open_window(
        &mut self,
        monitor: &Monitor,
        shape: &Option<Shape>,
        sample: &Sample,
        end: i64,
    ) -> usize {
        let open = &mut self.monitors[sample.id as usize].open;
        match open.binary_search_by_key(&end, |w| w.end) {
            Ok(i) => i,
            Err(i) => {
                let slots = (0..monitor.slot_count())
                    .map(|s| {
                        let parameter = monitor.reported[s / monitor.channel_count()];
                        Aggregator::new(parameter.aggregation())
                    })
                    .collect();
                if open.capacity() == 0 {
                    open.reserve_exact(1);
                }
                let resume = ResumePoint {
                    offset: sample.offset,
                    watermark_before: sample.watermark_before,
                };
                let shape = shape.clone();
                open.insert(
                    i,
                    OpenWindow {
                        end,
                        resume,
                        slots,
                        shape,
                    },
                );
                self.closing.push(Reverse((end, sample.id)));
                self.open_windows += 1;
                self.stats.windows_opened += 1;
                i
            }
        }
    }

    fn close_through(&mut self, through: i64, bin: &BinRules, closed: &mut Vec<ClosedWindow>) {
        while let Some(&Reverse((end, id))) = self.closing.peek() {
            if end > through {
                break;
            }
            self.closing.pop();
            self.close(end, id, bin, closed);
        }
    }

    /// Closes the monitor's open window ending at `end` (no longer queued).
    fn close(&mut self, end: i64, id: MonitorId, bin: &BinRules, closed: &mut Vec<ClosedWindow>) {
        let open = &mut self.monitors[id as usize].open;
        let i = open
            .binary_search_by_key(&end, |w| w.end)
            .expect("every queued window is open");
        let window = open.remove(i);
        self.open_windows -= 1;
        self.stats.windows_closed += 1;
        closed.push(ClosedWindow {
            monitor: id,
            end,
            resume: window.resume,
            values: window
                .slots
                .into_vec()
                .into_iter()
                .map(|a| a.finish(bin))
                .collect(),
            shape: window.shape,
        });
    }
}

fn sample_reject(
    event: &SensorEvent,
    m: &crate::event::Measurement,
    reason: RejectReason,
    detail: String,
) -> Reject {
    let mut r = Reject::new(reason, detail);
    r.connection_id = Some(event.connection_id.clone());
    r.event_time = Some(event.event_time);
    r.channel_id = event.channel_id.clone();
    r.parameter = Some(m.parameter.clone());
    r.value = Some(m.value.clone());
    r.unit = m.unit.clone();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Measurement;
    use crate::registry::Registry;

    const T0: i64 = 1_780_000_200_000; // 2026-05-28T20:30:00Z, a window end in UTC

    #[test]
    fn a_monitors_state_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<MonitorWindows>(), 64);
    }

    fn engine(watermark: i64, acknowledged_through: i64) -> Engine {
        let yaml = "monitors:\n  - {connection_id: A, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {co2: ppm}}\n";
        let registry = Arc::new(Registry::parse(yaml, "m.yaml").unwrap());
        Engine::resume(
            registry,
            EngineSettings::default(),
            watermark,
            acknowledged_through,
        )
    }

    fn co2(t: i64, v: f64) -> SensorEvent {
        SensorEvent {
            connection_id: "A".into(),
            event_time: t,
            channel_id: None,
            measurements: vec![Measurement::new("co2", Some(v), None)],
            bin_emptied: false,
        }
    }

    #[test]
    fn a_resumed_engine_skips_acknowledged_windows_without_calling_them_late() {
        let mut e = engine(T0 - 60_000, T0);
        let mut rejects = Vec::new();
        e.record(7, &co2(T0 - 1_000, 400.0), None, &mut rejects); // window ending T0: acknowledged
        e.record(8, &co2(T0 + 1_000, 500.0), None, &mut rejects); // next window
        assert!(rejects.is_empty());
        assert_eq!(e.stats().samples_already_acknowledged, 1);
        let closed = e.flush();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].end, T0 + HALF_HOUR_MS);
        // Air reports pm2p5, tvoc, co2, temp, rh: only co2 had samples.
        let none = SlotValue::Single(None);
        let co2 = SlotValue::Single(Some(500.0));
        assert_eq!(
            closed[0].values,
            [none.clone(), none.clone(), co2, none.clone(), none]
        );
        // The window remembers where to restart to rebuild it whole.
        assert_eq!(
            closed[0].resume,
            ResumePoint {
                offset: 8,
                watermark_before: T0 - 60_000
            }
        );
    }

    fn energy(channels: &str) -> Arc<Registry> {
        let yaml = format!("monitors:\n  - {{connection_id: E, module: energy, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {{power_consumption: kWh}}, channels: [{channels}]}}\n");
        Arc::new(Registry::parse(&yaml, "m.yaml").unwrap())
    }

    fn power(t: i64, v: f64) -> SensorEvent {
        SensorEvent {
            connection_id: "E".into(),
            event_time: t,
            channel_id: Some("c1".into()),
            measurements: vec![Measurement::new("power_consumption", Some(v), None)],
            bin_emptied: false,
        }
    }

    #[test]
    fn a_shape_change_applies_from_the_window_after_that_of_the_latest_sample() {
        let old = energy("{channel_id: c1}");
        let mut e = Engine::new(Arc::clone(&old), EngineSettings::default());
        let mut rejects = Vec::new();
        e.record(1, &power(T0 - 20 * 60_000, 1.0), None, &mut rejects);
        let epoch = e.reshape(0, Shape(Arc::new(old.get(0).clone()))).unwrap();
        assert_eq!(epoch.until, T0, "the end of the latest sample's window");
        e.set_registry(energy("{channel_id: c1}, {channel_id: c2}"));
        // Later in the same window: the old shape still; in the next: the new.
        e.record(2, &power(T0 - 10 * 60_000, 2.0), None, &mut rejects);
        e.record(3, &power(T0 + 1, 3.0), None, &mut rejects);
        assert!(rejects.is_empty());
        let closed = e.flush();
        assert_eq!(closed.len(), 2);
        assert_eq!((closed[0].end, closed[0].values.len()), (T0, 1));
        assert_eq!(closed[0].shape, Some(epoch.shape));
        assert_eq!(
            (closed[1].end, closed[1].values.len()),
            (T0 + HALF_HOUR_MS, 2)
        );
        assert_eq!(closed[1].shape, None);
    }

    #[test]
    fn a_shape_begun_takes_every_sample_until_it_ends() {
        let old = energy("{channel_id: c1}");
        let mut e = Engine::new(
            energy("{channel_id: c1}, {channel_id: c2}"),
            EngineSettings::default(),
        );
        e.begin_shape(0, Shape(Arc::new(old.get(0).clone())));
        assert_eq!(e.shapes_begun(), [0]);
        let mut rejects = Vec::new();
        e.record(1, &power(T0 + 5 * HALF_HOUR_MS, 1.0), None, &mut rejects);
        // A runtime change while it is open leaves it open.
        assert_eq!(e.reshape(0, Shape(Arc::new(old.get(0).clone()))), None);
        let epoch = e.end_shape(0).unwrap();
        assert_eq!(epoch.until, T0 + 5 * HALF_HOUR_MS);
        assert!(e.shapes_begun().is_empty());
        e.record(2, &power(T0 + 6 * HALF_HOUR_MS, 2.0), None, &mut rejects);
        let shapes: Vec<usize> = e.flush().iter().map(|w| w.values.len()).collect();
        assert_eq!(shapes, [1, 2]);
    }

    #[test]
    fn an_idle_partition_closes_its_windows_when_the_watermark_is_raised() {
        let mut e = engine(i64::MIN, i64::MIN);
        let mut rejects = Vec::new();
        e.record(1, &co2(T0 - 1_000, 400.0), None, &mut rejects);
        assert!(e.advance().is_empty(), "lateness keeps it open");
        assert_eq!(e.earliest_open().map(|r| r.offset), Some(1));
        assert!(e.advance_to(T0 - 1).is_empty());
        let closed = e.advance_to(T0);
        assert_eq!(closed.len(), 1);
        assert_eq!(e.open_windows(), 0);
        // A sample for it now is late.
        e.record(2, &co2(T0 - 2_000, 1.0), None, &mut rejects);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].reason, RejectReason::Late);
    }
}
