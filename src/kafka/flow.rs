//! Backpressure on the input: whether the assigned partitions are read or
//! paused, from how many messages wait for RESET. Paused at the publisher's
//! limit, resumed once half of that is answered (a gap, so that a limit
//! reached again and again does not pause and resume on every message).
//! While paused, the consumer goes on polling: it stays in its group, and
//! the loop goes on serving ticks, commits, rebalances and SIGTERM.

/// What to do with the assigned partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowChange {
    Pause,
    Resume,
}

/// The input's flow state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    paused: bool,
    /// Pause at this many messages held.
    limit: usize,
}

impl Flow {
    pub fn new(limit: usize) -> Flow {
        Flow {
            paused: false,
            limit: limit.max(1),
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The change due now that `held` messages wait for answers, if any.
    pub fn held(&mut self, held: usize) -> Option<FlowChange> {
        if !self.paused && held >= self.limit {
            self.paused = true;
            Some(FlowChange::Pause)
        } else if self.paused && held <= self.limit / 2 {
            self.paused = false;
            Some(FlowChange::Resume)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_at_the_limit_and_resumes_at_half_of_it() {
        let mut flow = Flow::new(100);
        assert_eq!(flow.held(0), None);
        assert_eq!(flow.held(99), None);
        assert!(!flow.is_paused());
        assert_eq!(flow.held(100), Some(FlowChange::Pause));
        assert!(flow.is_paused());
        // Told once: still over, or going down, but not yet at half.
        assert_eq!(flow.held(250), None);
        assert_eq!(flow.held(51), None);
        assert!(flow.is_paused());
        assert_eq!(flow.held(50), Some(FlowChange::Resume));
        assert!(!flow.is_paused());
        assert_eq!(flow.held(60), None);
        assert_eq!(flow.held(100), Some(FlowChange::Pause));
    }

    #[test]
    fn a_limit_of_one_pauses_on_any_message_and_resumes_when_none_is_held() {
        let mut flow = Flow::new(0);
        assert_eq!(flow.held(1), Some(FlowChange::Pause));
        assert_eq!(flow.held(1), None);
        assert_eq!(flow.held(0), Some(FlowChange::Resume));
    }
}
