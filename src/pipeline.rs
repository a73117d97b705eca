//! One partition's path through the pure core: engine → batcher → emissions,
//! with `monitors` messages owed before a monitor's readings. `aggregate`,
//! `replay` and `run` all drive this same code; they differ only in where
//! records and time come from.

use crate::batch::{Batch, Batcher};
use crate::codec::{DecodeError, Decoder};
use crate::config::PushMode;
use crate::event::{ReusedEvent, SensorEvent};
use crate::offsets::{OffsetTracker, Progress, Raise};
use crate::payload::{Announced, Announcements, EventName, KeptShape};
use crate::registry::{Monitor, MonitorId, Registry};
use crate::reject::Reject;
use crate::window::{ClosedWindow, Engine, EngineSettings, Epoch, Shape};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

/// One Socket.IO emission, exactly as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Emission {
    /// A `monitors` message: what the announcements store records of it,
    /// and its payload.
    Monitor {
        announced: Box<Announced>,
        payload: String,
    },
    Readings(Batch),
}

impl Emission {
    pub fn event(&self) -> EventName {
        match self {
            Emission::Monitor { .. } => EventName::Monitors,
            Emission::Readings(_) => EventName::Readings,
        }
    }

    /// The monitor the message is about.
    pub fn connection_id(&self) -> &str {
        match self {
            Emission::Monitor { announced, .. } => &announced.connection_id,
            Emission::Readings(b) => &b.connection_id,
        }
    }

    pub fn message_id(&self) -> &str {
        match self {
            Emission::Monitor { announced, .. } => &announced.message_id,
            Emission::Readings(b) => &b.message_id,
        }
    }

    pub fn payload(&self) -> &str {
        match self {
            Emission::Monitor { payload, .. } => payload,
            Emission::Readings(b) => &b.payload,
        }
    }

    /// What a `monitors` message announces, as the store records it sent;
    /// `None` for readings.
    pub fn announced(&self) -> Option<&Announced> {
        match self {
            Emission::Monitor { announced, .. } => Some(announced),
            Emission::Readings(_) => None,
        }
    }

    /// The message id and the payload, taken out.
    pub fn into_parts(self) -> (String, String) {
        match self {
            Emission::Monitor { announced, payload } => (announced.message_id, payload),
            Emission::Readings(b) => (b.message_id, b.payload),
        }
    }
}

/// The engine, batcher and offset tracker of one partition.
pub struct PartitionPipeline {
    engine: Engine,
    batcher: Batcher,
    tracker: OffsetTracker,
    /// Which closed windows (by end) are sent; all unless set (replay).
    keep: Option<Box<dyn Fn(i64) -> bool + Send>>,
    /// The event `record_bytes` decodes into.
    decoded: ReusedEvent,
    /// Idle raises of an earlier run after the resume offset: made again
    /// before the same records, so that the same samples are late.
    raises: VecDeque<Raise>,
}

impl PartitionPipeline {
    pub fn new(registry: Arc<Registry>, settings: EngineSettings, push: PushMode) -> Self {
        Self::resume(registry, settings, push, Progress::start(0))
    }

    /// A partition resuming where `progress` says.
    pub fn resume(
        registry: Arc<Registry>,
        settings: EngineSettings,
        push: PushMode,
        progress: Progress,
    ) -> Self {
        PartitionPipeline {
            engine: Engine::resume(
                registry,
                settings,
                progress.watermark,
                progress.acknowledged_through,
            ),
            batcher: Batcher::new(push),
            raises: progress.raises.iter().copied().collect(),
            tracker: OffsetTracker::new(progress),
            keep: None,
            decoded: ReusedEvent::default(),
        }
    }

    /// Sends only the windows whose end `keep` accepts (replay of a range).
    pub fn keeping(mut self, keep: impl Fn(i64) -> bool + Send + 'static) -> Self {
        self.keep = Some(Box::new(keep));
        self
    }

    /// Where a restart would resume now: commit this.
    pub fn progress(&self) -> Progress {
        let earliest_open = [self.engine.earliest_open(), self.batcher.earliest_pending()]
            .into_iter()
            .flatten()
            .min();
        self.tracker.progress(earliest_open)
    }

    /// RESET answered a message of this partition for good.
    pub fn message_answered(&mut self, message_id: &str) {
        self.tracker.message_answered(message_id);
    }

    pub fn unanswered_messages(&self) -> usize {
        self.tracker.unanswered_messages()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Takes a changed registry for the windows and messages still to come.
    pub fn set_registry(&mut self, registry: Arc<Registry>) {
        self.engine.set_registry(registry);
    }

    /// Takes the monitors' earlier shapes (`EarlierShapes`): kept ones for
    /// their samples up to their ends, and begun ones for every sample
    /// until `caught_up`.
    pub fn take_shapes(&mut self, shapes: &EarlierShapes) {
        for (&id, (kept, begun)) in &shapes.0 {
            if !kept.is_empty() {
                self.engine.load_shapes(id, kept.clone());
            }
            if let Some(shape) = begun {
                self.engine.begin_shape(id, shape.clone());
            }
        }
    }

    /// Whether shapes begun wait for `caught_up`.
    pub fn catching_up(&self) -> bool {
        !self.engine.shapes_begun().is_empty()
    }

    /// Every record an earlier run may have read is read: the shapes begun
    /// end with each monitor's latest sample so far. The epochs to keep
    /// with the announcements.
    pub fn caught_up(&mut self) -> Vec<(MonitorId, Epoch)> {
        let begun = self.engine.shapes_begun().to_vec();
        begun
            .into_iter()
            .filter_map(|id| self.engine.end_shape(id).map(|e| (id, e)))
            .collect()
    }

    /// The registry changed the monitor's shape while running (`old` is
    /// the shape before): the epoch of `old` to keep, if the monitor had
    /// samples here. Call before `set_registry`.
    pub fn reshape(&mut self, id: MonitorId, old: Shape) -> Option<Epoch> {
        self.engine.reshape(id, old)
    }

    /// Takes one record, with its reference time (`Engine::record`), and
    /// returns the messages it made due.
    pub fn record(
        &mut self,
        offset: u64,
        event: &SensorEvent,
        reference: Option<i64>,
        rejects: &mut Vec<Reject>,
    ) -> Vec<Batch> {
        let mut batches = self.raises_before(offset);
        self.engine.record(offset, event, reference, rejects);
        self.tracker.record_read(offset, self.engine.watermark());
        let closed = self.engine.advance();
        let formed = self.batch(closed);
        if batches.is_empty() {
            formed
        } else {
            batches.extend(formed);
            batches
        }
    }

    /// The earlier run's idle raises due before the record at `offset`.
    fn raises_before(&mut self, offset: u64) -> Vec<Batch> {
        let mut batches = Vec::new();
        while let Some(raise) = self.raises.front().copied() {
            if raise.offset > offset {
                break;
            }
            self.raises.pop_front();
            batches.extend(self.advance_to(raise.watermark));
        }
        batches
    }

    /// Decodes one record's bytes and takes it; undecodable bytes become a reject.
    pub fn record_bytes(
        &mut self,
        decoder: &Decoder,
        offset: u64,
        reference: Option<i64>,
        bytes: &[u8],
        rejects: &mut Vec<Reject>,
    ) -> Vec<Batch> {
        // The last record's event is decoded over, its allocations reused.
        let mut event = std::mem::take(&mut self.decoded);
        let batches = match decoder.decode_into(bytes, &mut event) {
            Ok(()) => self.record(offset, &event.event, reference, rejects),
            Err(e) => self.record_undecodable(offset, &e, bytes, rejects),
        };
        self.decoded = event;
        batches
    }

    /// Takes a record that could not be decoded: a reject, and the offset read.
    pub fn record_undecodable(
        &mut self,
        offset: u64,
        error: &DecodeError,
        bytes: &[u8],
        rejects: &mut Vec<Reject>,
    ) -> Vec<Batch> {
        let batches = self.raises_before(offset);
        rejects.push(Reject::undecodable(error, bytes));
        self.tracker.record_read(offset, self.engine.watermark());
        batches
    }

    /// Raises the watermark of an idle partition.
    pub fn advance_to(&mut self, watermark: i64) -> Vec<Batch> {
        let closed = self.engine.advance_to(watermark);
        self.tracker.watermark_raised(self.engine.watermark());
        self.batch(closed)
    }

    /// End of input: closes every window and sends everything held.
    pub fn finish(&mut self) -> Vec<Batch> {
        let mut batches = Vec::new();
        let all: Result<(), std::convert::Infallible> =
            self.finish_in_parts(MonitorId::MAX, |_, part| {
                batches.extend(part);
                Ok(())
            });
        all.unwrap_or_else(|never| match never {});
        batches
    }

    /// `finish`, `monitors` monitors at a time: each part's messages are
    /// handed to `take` (with the pipeline, to answer them) before the next
    /// part is made, so that only one part's are held at once. The same
    /// messages in the same order as `finish`: messages go out by monitor,
    /// every monitor's closed windows first, then what is still held (days
    /// not ended, in daily push). Stops at `take`'s first error.
    pub fn finish_in_parts<E>(
        &mut self,
        monitors: MonitorId,
        mut take: impl FnMut(&mut Self, Vec<Batch>) -> Result<(), E>,
    ) -> Result<(), E> {
        let slots = self.engine.monitor_slots();
        let size = monitors.max(1);
        let parts: Vec<Range<MonitorId>> = (0..slots)
            .step_by(size as usize)
            .map(|first| first..first.saturating_add(size).min(slots))
            .collect();
        for ids in parts.iter().cloned() {
            let closed = self.engine.flush_monitors(ids);
            let batches = self.batch(closed);
            take(self, batches)?;
        }
        for ids in parts {
            let held = self.batcher.flush(self.engine.registry(), ids);
            self.track(&held);
            take(self, held)?;
        }
        Ok(())
    }

    fn batch(&mut self, mut closed: Vec<ClosedWindow>) -> Vec<Batch> {
        if let Some(keep) = &self.keep {
            closed.retain(|w| keep(w.end));
        }
        let step = self.engine.watermark();
        if !closed.is_empty() {
            self.tracker
                .windows_closed(step, closed.iter().map(|w| (w.monitor, w.end, w.resume)));
        } else if !self.batcher.day_ended(step) {
            return Vec::new();
        }
        let batches = self.batcher.push(self.engine.registry(), closed, step);
        self.track(&batches);
        batches
    }

    fn track(&mut self, batches: &[Batch]) {
        for b in batches {
            self.tracker
                .message_formed(&b.message_id, b.monitor, &b.ends);
        }
    }
}

/// Puts each monitor's owed `monitors` message before its readings (of
/// an earlier shape: `Announcements::announce_earlier`). Lazily, batch by
/// batch: a caller that writes each emission as it comes holds one
/// monitor's messages at a time, not a whole flush's.
pub fn with_announcements<'a>(
    registry: &'a Registry,
    announcements: &'a mut Announcements,
    batches: Vec<Batch>,
) -> impl Iterator<Item = Emission> + 'a {
    batches.into_iter().flat_map(move |batch| {
        let owed = match &batch.shape {
            Some(earlier) => announcements.announce_earlier(&earlier.0),
            None => announcements.announce(registry.get(batch.monitor)),
        };
        let monitor = owed.map(|(announced, payload)| Emission::Monitor {
            announced: Box::new(announced),
            payload,
        });
        monitor
            .into_iter()
            .chain(std::iter::once(Emission::Readings(batch)))
    })
}

/// Earlier shapes of monitors, for partitions to take as they are assigned
/// (`PartitionPipeline::take_shapes`): by monitor, the shapes the
/// announcements keep, and the shape RESET was last told when the
/// registry's differs (a change while the pipeline was stopped).
#[derive(Default)]
pub struct EarlierShapes(HashMap<MonitorId, (Vec<Epoch>, Option<Shape>)>);

impl EarlierShapes {
    /// Descriptions that no longer make a monitor are left out, with a
    /// warning: their windows are rebuilt on the registry's shape.
    pub fn of(registry: &Registry, announcements: &Announcements) -> EarlierShapes {
        let shape = |record: &crate::registry::MonitorRecord| match Monitor::from_record(
            record.clone(),
            &"announcements store",
        ) {
            Ok(m) => Some(Shape(Arc::new(m))),
            Err(e) => {
                tracing::warn!(connection_id = %record.connection_id, error = %e, "an earlier shape kept in the announcements store is no longer valid");
                None
            }
        };
        let mut out = HashMap::new();
        for (id, monitor) in registry.iter() {
            let kept = announcements.shapes(monitor.connection_id());
            let last = announcements.last_record(monitor.connection_id());
            let changed = last.filter(|r| !crate::registry::same_record_shape(r, &monitor.record));
            if kept.is_empty() && changed.is_none() {
                continue;
            }
            let kept: Vec<Epoch> = kept
                .iter()
                .filter_map(|k| {
                    Some(Epoch {
                        until: k.until,
                        shape: shape(&k.record)?,
                    })
                })
                .collect();
            out.insert(id, (kept, changed.and_then(shape)));
        }
        EarlierShapes(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Keeps ended epochs with the announcements: the records for the store to
/// write before any message formed after them leaves.
pub fn keep_shapes(
    registry: &Registry,
    announcements: &mut Announcements,
    ended: Vec<(MonitorId, Epoch)>,
) -> Vec<Announced> {
    ended
        .into_iter()
        .filter_map(|(id, epoch)| {
            let kept = KeptShape {
                until: epoch.until,
                record: epoch.shape.0.record.clone(),
            };
            announcements.keep_shape(registry.get(id).connection_id(), kept)
        })
        .collect()
}
