//! Input stalls: a partition from which nothing was read for `stall_after`
//! while records wait on the broker (the consumer's last known high
//! watermark is past its position), or while the broker does not answer a
//! watermark query at all. From inside the consumer, a broker that holds
//! its fetches looks like a quiet topic; these two signs tell them apart.

use std::time::Duration;

/// Whether the stall state of a partition changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallChange {
    Began,
    Ended,
    Unchanged,
}

/// One partition's stall state.
#[derive(Debug, Default, Clone)]
pub struct StallWatch {
    stalled: bool,
    /// The last watermark query of the partition went unanswered.
    broker_silent: bool,
}

impl StallWatch {
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// The outcome of the last watermark query: answered or not.
    pub fn broker_answered(&mut self, answered: bool) {
        self.broker_silent = !answered;
    }

    /// Looked at regularly: nothing was read for `quiet_for`, and `lag`
    /// records wait as far as the consumer knows.
    pub fn checked(&mut self, quiet_for: Duration, stall_after: Duration, lag: i64) -> StallChange {
        let waiting = lag > 0 || self.broker_silent;
        self.set(quiet_for >= stall_after && waiting)
    }

    /// A record of the partition was read: the broker answers its fetches.
    pub fn record_read(&mut self) -> StallChange {
        self.broker_silent = false;
        self.set(false)
    }

    fn set(&mut self, stalled: bool) -> StallChange {
        let change = match (self.stalled, stalled) {
            (false, true) => StallChange::Began,
            (true, false) => StallChange::Ended,
            _ => StallChange::Unchanged,
        };
        self.stalled = stalled;
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(120);
    const LONG: Duration = Duration::from_secs(600);

    #[test]
    fn records_waiting_past_the_limit_begin_a_stall_once() {
        let mut w = StallWatch::default();
        assert_eq!(w.checked(AFTER, AFTER, 5), StallChange::Began);
        assert!(w.is_stalled());
        // Still stalled at the next look: no second report.
        assert_eq!(w.checked(LONG, AFTER, 5), StallChange::Unchanged);
        assert_eq!(w.record_read(), StallChange::Ended);
        assert!(!w.is_stalled());
        assert_eq!(w.record_read(), StallChange::Unchanged);
    }

    #[test]
    fn a_silent_broker_is_a_stall_until_it_answers_and_nothing_waits() {
        let mut w = StallWatch::default();
        // Caught up and the broker answers: a quiet topic.
        w.broker_answered(true);
        assert_eq!(w.checked(LONG, AFTER, 0), StallChange::Unchanged);
        w.broker_answered(false);
        assert_eq!(w.checked(LONG, AFTER, 0), StallChange::Began);
        assert_eq!(w.checked(LONG, AFTER, 0), StallChange::Unchanged);
        w.broker_answered(true);
        assert_eq!(w.checked(LONG, AFTER, 0), StallChange::Ended);
    }

    #[test]
    fn a_record_read_clears_the_broker_silence() {
        let mut w = StallWatch::default();
        w.broker_answered(false);
        assert_eq!(w.record_read(), StallChange::Unchanged);
        assert_eq!(w.checked(LONG, AFTER, 0), StallChange::Unchanged);
    }

    #[test]
    fn quiet_for_less_than_the_limit_is_no_stall() {
        let mut w = StallWatch::default();
        w.broker_answered(false);
        let almost = AFTER - Duration::from_millis(1);
        assert_eq!(w.checked(almost, AFTER, 1_000_000), StallChange::Unchanged);
        assert!(!w.is_stalled());
    }
}
