//! The offset tracker of one partition: which offset may be committed, and
//! the state a restart needs to resume there without changing anything sent.
//!
//! The argument, in three parts:
//! 1. `acknowledged_through` (F) is a watermark step such that every window
//!    the engine closed at or before it is answered by RESET (acknowledged,
//!    or refused for good), and no message holds windows on both sides of it.
//!    Windows ending at or before F are exactly those closed at steps ≤ F.
//! 2. The commit offset C is the smallest first-offset of any window ending
//!    after F (open, held, in flight or answered), or the next offset to read.
//!    So every window after F is rebuilt whole from records at C and later.
//! 3. The watermark W before record C is kept with C, and so are the idle
//!    raises of the watermark after C (the wall clock's part of the input:
//!    before which record, to what). Resuming at C with W, F and the raises,
//!    the engine sees the same records with the same watermark, so it
//!    makes the same late decisions, closes the same windows at the same
//!    steps and the batcher forms the same messages, byte for byte; windows
//!    ending at or before F are skipped, and since no message straddles F,
//!    no message is re-formed from a part of its windows.
//!
//! A crash at any instant restarts from the last (C, W, F) written, which is
//! always safe: later progress only moves forward.

use crate::registry::MonitorId;
use crate::window::ResumePoint;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// What a restart needs: where to read from and how to resume the engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// The offset to resume from (and to commit).
    pub offset: u64,
    /// The partition watermark just before the record at `offset`.
    pub watermark: i64,
    /// Every window ending at or before this is answered by RESET.
    pub acknowledged_through: i64,
    /// The watermark raises of an idle partition after `offset`, in order:
    /// the wall clock's part of the input, replayed at the same records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub raises: Vec<Raise>,
}

/// Before the record at `offset` was read, the partition was idle and its
/// watermark was raised to `watermark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Raise {
    pub offset: u64,
    pub watermark: i64,
}

impl Progress {
    /// The progress of a partition nothing was read from yet.
    pub fn start(offset: u64) -> Progress {
        Progress {
            offset,
            watermark: i64::MIN,
            acknowledged_through: i64::MIN,
            raises: Vec::new(),
        }
    }

    /// This progress with a watermark or acknowledgement that cannot be
    /// true at `now_ms` forgotten (`plausible::saved_time_implausible`), and
    /// whether one was: a time from a broken device clock that an earlier
    /// version took would otherwise hold the partition's windows shut for
    /// good. The offset stays: the records from it raise the watermark
    /// again, and windows already acknowledged are sent again byte-identical.
    pub fn without_implausible_times(
        &self,
        now_ms: i64,
        max_future_skew_ms: i64,
    ) -> (Progress, bool) {
        use crate::window::plausible::saved_time_implausible;
        let forget = |t: i64| {
            if saved_time_implausible(t, now_ms, max_future_skew_ms) {
                i64::MIN
            } else {
                t
            }
        };
        let sane = Progress {
            offset: self.offset,
            watermark: forget(self.watermark),
            acknowledged_through: forget(self.acknowledged_through),
            raises: self
                .raises
                .iter()
                .copied()
                .filter(|r| !saved_time_implausible(r.watermark, now_ms, max_future_skew_ms))
                .collect(),
        };
        let changed = sane != *self;
        (sane, changed)
    }
}

type WindowKey = (MonitorId, i64);

#[derive(Debug)]
struct WindowInfo {
    step: i64,
    resume: ResumePoint,
    answered: bool,
}

#[derive(Debug)]
struct MessageInfo {
    windows: Vec<WindowKey>,
    last_step: i64,
}

/// Closed windows of one watermark step.
#[derive(Debug, Default)]
struct Step {
    windows: Vec<WindowKey>,
    unanswered: usize,
}

/// Tracks one partition's records, closed windows and messages. Every
/// operation costs in proportion to what it touches, not to what is pending.
#[derive(Debug)]
pub struct OffsetTracker {
    next: ResumePoint,
    acknowledged_through: i64,
    /// Closed windows after F, by closing step.
    steps: BTreeMap<i64, Step>,
    /// Fx-hashed: the keys are the pipeline's own (windows of registry
    /// monitors, message ids made from them), never chosen by an input.
    windows: FxHashMap<WindowKey, WindowInfo>,
    messages: FxHashMap<String, MessageInfo>,
    /// Messages holding windows of more than one step (daily push): (first, last) step.
    spans: FxHashMap<String, (i64, i64)>,
    /// Idle raises of the watermark, by the offset of the record read next.
    raises: BTreeMap<u64, i64>,
}

/// Idle raises kept for a restart, at most: the oldest are let go (a
/// partition idle this often between records while RESET answers nothing).
const MAX_RAISES: usize = 256;

impl OffsetTracker {
    /// Starts where `progress` says.
    pub fn new(progress: Progress) -> OffsetTracker {
        OffsetTracker {
            next: ResumePoint {
                offset: progress.offset,
                watermark_before: progress.watermark,
            },
            acknowledged_through: progress.acknowledged_through,
            steps: BTreeMap::new(),
            windows: FxHashMap::default(),
            messages: FxHashMap::default(),
            spans: FxHashMap::default(),
            raises: progress
                .raises
                .iter()
                .map(|r| (r.offset, r.watermark))
                .collect(),
        }
    }

    /// A record at `offset` was taken; the watermark is now `watermark`.
    pub fn record_read(&mut self, offset: u64, watermark: i64) {
        self.next = ResumePoint {
            offset: offset + 1,
            watermark_before: watermark,
        };
    }

    /// The watermark moved without a record (an idle partition): kept, so
    /// that a restart raises it again before the same record.
    pub fn watermark_raised(&mut self, watermark: i64) {
        if watermark <= self.next.watermark_before {
            return;
        }
        self.next.watermark_before = watermark;
        self.raises.insert(self.next.offset, watermark);
        while self.raises.len() > MAX_RAISES {
            self.raises.pop_first();
        }
    }

    /// Windows closed together at watermark `step`.
    pub fn windows_closed(
        &mut self,
        step: i64,
        closed: impl IntoIterator<Item = (MonitorId, i64, ResumePoint)>,
    ) {
        let entry = self.steps.entry(step).or_default();
        for (monitor, end, resume) in closed {
            let key = (monitor, end);
            entry.windows.push(key);
            entry.unanswered += 1;
            self.windows.insert(
                key,
                WindowInfo {
                    step,
                    resume,
                    answered: false,
                },
            );
        }
    }

    /// A message holding these windows was formed.
    pub fn message_formed(&mut self, message_id: &str, monitor: MonitorId, ends: &[i64]) {
        let windows: Vec<WindowKey> = ends.iter().map(|&e| (monitor, e)).collect();
        let steps = windows
            .iter()
            .filter_map(|k| self.windows.get(k))
            .map(|w| w.step);
        let (first_step, last_step) =
            steps.fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
        if first_step < last_step {
            self.spans
                .insert(message_id.to_string(), (first_step, last_step));
        }
        self.messages
            .insert(message_id.to_string(), MessageInfo { windows, last_step });
    }

    /// RESET answered the message for good (acknowledged, or refused with 10400).
    pub fn message_answered(&mut self, message_id: &str) {
        let Some(message) = self.messages.get(message_id) else {
            return;
        };
        for key in &message.windows {
            if let Some(w) = self.windows.get_mut(key) {
                if !w.answered {
                    w.answered = true;
                    if let Some(step) = self.steps.get_mut(&w.step) {
                        step.unanswered -= 1;
                    }
                }
            }
        }
        if self
            .steps
            .first_key_value()
            .is_some_and(|(_, s)| s.unanswered == 0)
        {
            self.advance_acknowledged_through();
        }
    }

    fn advance_acknowledged_through(&mut self) {
        let mut through = self.acknowledged_through;
        for (&step, s) in &self.steps {
            if s.unanswered > 0 {
                break;
            }
            // A step inside a message's span is no place to cut; a later one may be.
            let straddled = self
                .spans
                .values()
                .any(|&(first, last)| first <= step && step < last);
            if !straddled {
                through = step;
            }
        }
        if through == self.acknowledged_through {
            return;
        }
        self.acknowledged_through = through;
        let later = self.steps.split_off(&(through.saturating_add(1)));
        for step in std::mem::replace(&mut self.steps, later).into_values() {
            for key in step.windows {
                self.windows.remove(&key);
            }
        }
        self.messages.retain(|_, m| m.last_step > through);
        self.spans.retain(|_, &mut (_, last)| last > through);
    }

    /// Where a restart would resume, given the earliest open window's resume point.
    pub fn progress(&self, earliest_open: Option<ResumePoint>) -> Progress {
        let earliest = self
            .windows
            .values()
            .map(|w| w.resume)
            .chain(earliest_open)
            .chain(std::iter::once(self.next))
            .min_by_key(|r| r.offset)
            .expect("next is always there");
        // Raises before the resume offset are in its watermark already.
        let raises = self
            .raises
            .range(earliest.offset + 1..)
            .map(|(&offset, &watermark)| Raise { offset, watermark })
            .collect();
        Progress {
            offset: earliest.offset,
            watermark: earliest.watermark_before,
            acknowledged_through: self.acknowledged_through,
            raises,
        }
    }

    /// Messages formed and not yet answered.
    pub fn unanswered_messages(&self) -> usize {
        self.messages
            .values()
            .filter(|m| {
                m.windows
                    .iter()
                    .any(|k| self.windows.get(k).is_some_and(|w| !w.answered))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn saved_times_from_a_broken_clock_are_forgotten_and_the_offset_kept() {
        let now = 1_780_358_400_000;
        let hour = 3_600_000;
        let sane = Progress {
            offset: 42,
            watermark: now - hour,
            acknowledged_through: now - 2 * hour,
            raises: Vec::new(),
        };
        assert_eq!(
            sane.without_implausible_times(now, hour),
            (sane.clone(), false)
        );
        let broken = Progress {
            watermark: now * 1000,
            ..sane
        };
        let (fixed, changed) = broken.without_implausible_times(now, hour);
        assert!(changed);
        assert_eq!(
            fixed,
            Progress {
                offset: 42,
                watermark: i64::MIN,
                acknowledged_through: now - 2 * hour,
                raises: Vec::new()
            }
        );
        let both = Progress {
            offset: 7,
            watermark: i64::MAX,
            acknowledged_through: i64::MAX - 1,
            raises: Vec::new(),
        };
        assert_eq!(
            both.without_implausible_times(now, hour).0,
            Progress::start(7)
        );
    }

    use super::*;

    fn rp(offset: u64, watermark_before: i64) -> ResumePoint {
        ResumePoint {
            offset,
            watermark_before,
        }
    }

    #[test]
    fn commits_stop_at_the_first_window_not_yet_acknowledged() {
        let mut t = OffsetTracker::new(Progress::start(0));
        for o in 0..10 {
            t.record_read(o, 100 + o as i64);
        }
        t.windows_closed(105, [(1, 100, rp(0, i64::MIN)), (2, 100, rp(2, 101))]);
        t.message_formed("a", 1, &[100]);
        t.message_formed("b", 2, &[100]);
        // An open window fed from offset 6 on.
        let open = Some(rp(6, 105));
        assert_eq!(
            t.progress(open),
            Progress {
                offset: 0,
                watermark: i64::MIN,
                acknowledged_through: i64::MIN,
                raises: Vec::new()
            }
        );
        t.message_answered("b");
        assert_eq!(t.progress(open).offset, 0, "a is not answered yet");
        t.message_answered("a");
        assert_eq!(
            t.progress(open),
            Progress {
                offset: 6,
                watermark: 105,
                acknowledged_through: 105,
                raises: Vec::new()
            }
        );
        assert_eq!(
            t.progress(None),
            Progress {
                offset: 10,
                watermark: 109,
                acknowledged_through: 105,
                raises: Vec::new()
            }
        );
    }

    #[test]
    fn an_acknowledged_window_after_an_unanswered_one_still_holds_the_commit_back() {
        let mut t = OffsetTracker::new(Progress::start(0));
        t.record_read(9, 300);
        t.windows_closed(200, [(1, 200, rp(0, 0))]);
        t.windows_closed(250, [(2, 250, rp(3, 40))]);
        t.message_formed("first", 1, &[200]);
        t.message_formed("second", 2, &[250]);
        t.message_answered("second");
        // F cannot pass 200, and the window closed at 250 must be rebuilt whole.
        assert_eq!(
            t.progress(None),
            Progress {
                offset: 0,
                watermark: 0,
                acknowledged_through: i64::MIN,
                raises: Vec::new()
            }
        );
        t.message_answered("first");
        assert_eq!(
            t.progress(None),
            Progress {
                offset: 10,
                watermark: 300,
                acknowledged_through: 250,
                raises: Vec::new()
            }
        );
    }

    #[test]
    fn no_message_straddles_acknowledged_through() {
        let mut t = OffsetTracker::new(Progress::start(0));
        t.record_read(20, 1000);
        t.windows_closed(100, [(1, 100, rp(0, 0)), (2, 100, rp(1, 0))]);
        t.windows_closed(200, [(1, 200, rp(5, 90)), (2, 200, rp(6, 90))]);
        // Monitor 1's windows went out together (daily mode); monitor 2's one by one.
        t.message_formed("m1", 1, &[100, 200]);
        t.message_formed("m2a", 2, &[100]);
        t.message_formed("m2b", 2, &[200]);
        t.message_answered("m2a");
        t.message_answered("m2b");
        assert_eq!(t.progress(None).acknowledged_through, i64::MIN);
        t.message_answered("m1");
        assert_eq!(t.progress(None).acknowledged_through, 200);
        assert_eq!(t.unanswered_messages(), 0);
    }
}
