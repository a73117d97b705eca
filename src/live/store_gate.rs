//! Messages held until the announcements store records the `monitors`
//! messages among them as sent: a crash after one leaves must find it in
//! the store. Messages formed later wait behind them, so that everything
//! leaves in the order it was formed.

use crate::sink::Outgoing;
use std::collections::VecDeque;

/// A store write, named by the gate when it holds messages behind it.
pub type Ticket = u64;

#[derive(Default)]
pub struct StoreGate {
    held: VecDeque<Held>,
    next_ticket: Ticket,
}

struct Held {
    ticket: Ticket,
    messages: Vec<Outgoing>,
    /// Whether its store write is done (always, for messages that need none).
    stored: bool,
}

/// What becomes of messages handed to the gate.
#[derive(Debug, PartialEq)]
pub enum Admitted {
    /// Nothing is held: they may leave now.
    Pass(Vec<Outgoing>),
    /// Held; the store write to make and report back under this ticket, if
    /// they need one.
    Held(Option<Ticket>),
}

impl StoreGate {
    /// Takes messages formed now; `needs_store` when `monitors` messages
    /// among them must be recorded first.
    pub fn admit(&mut self, messages: Vec<Outgoing>, needs_store: bool) -> Admitted {
        if !needs_store && self.held.is_empty() {
            return Admitted::Pass(messages);
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.held.push_back(Held {
            ticket,
            messages,
            stored: !needs_store,
        });
        Admitted::Held(needs_store.then_some(ticket))
    }

    /// A store write is done: the messages now free to leave, in order.
    pub fn stored(&mut self, ticket: Ticket) -> Vec<Outgoing> {
        if let Some(held) = self.held.iter_mut().find(|h| h.ticket == ticket) {
            held.stored = true;
        }
        let mut free = Vec::new();
        while self.held.front().is_some_and(|h| h.stored) {
            free.extend(self.held.pop_front().expect("checked").messages);
        }
        free
    }

    /// How many messages are held.
    pub fn len(&self) -> usize {
        self.held.iter().map(|h| h.messages.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::EventName;

    fn message(id: &str) -> Outgoing {
        Outgoing {
            event: EventName::Readings,
            message_id: id.into(),
            payload: "{}".into(),
            key: "A".into(),
            readings: 1,
        }
    }

    fn ids(messages: &[Outgoing]) -> Vec<&str> {
        messages.iter().map(|m| m.message_id.as_str()).collect()
    }

    #[test]
    fn nothing_held_means_nothing_waits() {
        let mut gate = StoreGate::default();
        let Admitted::Pass(out) = gate.admit(vec![message("r1")], false) else {
            panic!("held");
        };
        assert_eq!(ids(&out), ["r1"]);
        assert_eq!(gate.len(), 0);
    }

    #[test]
    fn messages_leave_in_the_order_formed_whichever_write_ends_first() {
        let mut gate = StoreGate::default();
        let Admitted::Held(Some(first)) = gate.admit(vec![message("m1"), message("r1")], true)
        else {
            panic!("not held for the store");
        };
        // Nothing of its own to store, but formed after m1: it waits.
        assert_eq!(gate.admit(vec![message("r2")], false), Admitted::Held(None));
        let Admitted::Held(Some(third)) = gate.admit(vec![message("m3")], true) else {
            panic!("not held for the store");
        };
        assert_eq!(gate.len(), 4);
        assert!(gate.stored(third).is_empty(), "m3 may not overtake m1");
        assert_eq!(ids(&gate.stored(first)), ["m1", "r1", "r2", "m3"]);
        assert_eq!(gate.len(), 0);
        // Once empty, messages pass again.
        assert!(matches!(
            gate.admit(vec![message("r4")], false),
            Admitted::Pass(_)
        ));
    }
}
