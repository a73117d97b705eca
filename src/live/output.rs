//! The output side of the loop: closed windows handed to the publisher
//! without waiting, and RESET's answers taken back to their partitions.

use super::store_gate::{Admitted, Ticket};
use super::{Live, Owner, PartitionKey};
use crate::coverage::MessageWindows;
use crate::kafka::Origin;
use crate::payload::{Announced, EventName, MonitorAction};
use crate::pipeline::{keep_shapes, with_announcements, Emission};
use crate::registry::MonitorId;
use crate::reject::{Reject, RejectReason};
use crate::sink::{Delivery, Fate, Outgoing};
use crate::window::Epoch;
use anyhow::Result;
use std::time::{Instant, SystemTime};

impl Live {
    /// Hands the messages of closed windows to the publisher, without
    /// waiting: `follow_flow` pauses the input when too many wait.
    pub(super) fn publish(&mut self, key: &PartitionKey, batches: Vec<crate::batch::Batch>) {
        let mut messages = Vec::with_capacity(batches.len());
        let mut announcing = Vec::new();
        let emissions: Vec<Emission> =
            with_announcements(&self.registry, &mut self.announcements, batches).collect();
        for emission in emissions {
            if let Emission::Monitor { announced, .. } = &emission {
                announcing.push((**announced).clone());
            }
            let windows = MessageWindows::of(&self.registry, &emission);
            let message = Outgoing::from(emission);
            self.sending(key, &message, windows);
            messages.push(message);
        }
        self.hand_over(messages, announcing);
    }

    /// Messages leave through the store gate: `monitors` messages (and all
    /// formed after them) once the store records them as sent.
    fn hand_over(&mut self, messages: Vec<Outgoing>, announcing: Vec<Announced>) {
        for announced in &announcing {
            self.monitor_messages
                .insert(announced.message_id.clone(), announced.clone());
        }
        self.through_store(messages, announcing);
    }

    /// Messages leave once `records` are in the store, after everything
    /// held before them.
    fn through_store(&mut self, messages: Vec<Outgoing>, records: Vec<Announced>) {
        match self.store_gate.admit(messages, !records.is_empty()) {
            Admitted::Pass(messages) => self.offer(messages),
            Admitted::Held(None) => {}
            Admitted::Held(Some(ticket)) => {
                let write = self.announcement_store.writer().store_until_taken(records);
                let stored = self.announcements_stored.clone();
                tokio::spawn(async move {
                    write.await;
                    let _ = stored.send(ticket);
                });
            }
        }
    }

    /// Earlier shapes of monitors ended (`PartitionPipeline::caught_up`,
    /// `reshape`): kept with the announcements, and recorded in the store
    /// before any message formed after them leaves.
    pub(super) fn keep_shapes(&mut self, ended: Vec<(MonitorId, Epoch)>) {
        if ended.is_empty() {
            return;
        }
        for (id, epoch) in &ended {
            tracing::info!(
                connection_id = self.registry.get(*id).connection_id(),
                through = %crate::event::format_utc_millis(epoch.until),
                "the monitor's windows through this end keep its earlier shape; later ones take the registry's"
            );
        }
        let records = keep_shapes(&self.registry, &mut self.announcements, ended);
        if !records.is_empty() {
            self.through_store(Vec::new(), records);
        }
    }

    /// The store recorded a ticket's `monitors` messages as sent: what
    /// waited for it leaves, but readings of partitions revoked meanwhile,
    /// which are left to their new owners (as the publisher's cancel does).
    pub(super) fn announcements_stored(&mut self, ticket: Ticket) {
        let mut free = self.store_gate.stored(ticket);
        free.retain(|m| m.event == EventName::Monitors || self.owners.contains_key(&m.message_id));
        self.offer(free);
    }

    pub(super) fn offer(&mut self, messages: Vec<Outgoing>) {
        if !messages.is_empty() && self.waiting_for_reset_since.is_none() {
            self.waiting_for_reset_since = Some(SystemTime::now());
        }
        self.publisher.offer_all(messages);
        self.metrics.in_flight.set(self.publisher.held() as i64);
    }

    /// Remembers a message's partition and windows, for its answer.
    pub(super) fn sending(
        &mut self,
        key: &PartitionKey,
        message: &Outgoing,
        windows: Option<MessageWindows>,
    ) {
        let owner = Owner {
            key: key.clone(),
            sent: Instant::now(),
            windows,
        };
        self.owners.insert(message.message_id.clone(), owner);
    }

    /// RESET refused to create a monitor: it holds it, though the
    /// announcements store did not say so (a store lost, or the monitor
    /// created by other means). Its current description is sent as
    /// `modify`. A refused `modify` is not followed by anything.
    pub(super) fn modify_after_refused_create(&mut self, key: &PartitionKey, connection_id: &str) {
        let Some(id) = self.registry.lookup(connection_id) else {
            return;
        };
        let (announced, payload) = self.announcements.refused_create(self.registry.get(id));
        tracing::info!(
            connection_id,
            "RESET refused to create the monitor: sending its description as modify"
        );
        let message = Outgoing::from(Emission::Monitor {
            announced: Box::new(announced.clone()),
            payload,
        });
        self.sending(key, &message, None);
        self.hand_over(vec![message], vec![announced]);
    }

    /// A monitors message answered: an acknowledged description is learnt
    /// and stored (unless a later one was sent since), even when its
    /// partition has moved on (`key` is `None`); a refused create is
    /// followed by a modify while the partition is ours.
    fn monitor_answered(&mut self, key: Option<&PartitionKey>, d: &Delivery) {
        let Some(mut announced) = self.monitor_messages.remove(&d.message_id) else {
            return;
        };
        match (&d.fate, key) {
            (Fate::Acknowledged, _) => {
                announced.acknowledged = true;
                if let Some(record) = self.announcements.acknowledged(&announced) {
                    self.announcement_store.write(record);
                }
            }
            (Fate::Rejected { .. }, Some(key)) if announced.action == MonitorAction::Create => {
                self.modify_after_refused_create(key, &announced.connection_id);
            }
            _ => {}
        }
    }

    pub(super) fn answered(&mut self, d: Delivery) -> Result<()> {
        self.report.messages_answered += 1;
        self.metrics.in_flight.set(self.publisher.held() as i64);
        let code = match &d.fate {
            Fate::Acknowledged => "10200",
            Fate::Rejected { code, .. } | Fate::GaveUp { code, .. } => code.as_str(),
        };
        self.metrics.answers.with_label_values(&[code]).inc();
        if d.fate == Fate::Acknowledged {
            self.waiting_for_reset_since = Some(SystemTime::now());
        }
        self.metrics.resends.inc_by(u64::from(d.resends));
        // A message sent twice (its partition re-assigned while it was in
        // flight) has one owner: the second answer is counted, and that is all.
        let Some(Owner { key, sent, windows }) = self.owners.remove(&d.message_id) else {
            self.monitor_answered(None, &d);
            return Ok(());
        };
        self.metrics
            .publish_latency
            .observe(sent.elapsed().as_secs_f64());
        if let (Fate::Acknowledged, Some(windows)) = (&d.fate, &windows) {
            self.coverage.add_windows(windows);
        }
        let refused = match &d.fate {
            Fate::Acknowledged => None,
            Fate::Rejected { reason, .. } => Some((RejectReason::RejectedByReset, reason)),
            Fate::GaveUp { reason, .. } => Some((RejectReason::Reset10500, reason)),
        };
        if let Some((why, reason)) = refused {
            let mut reject = Reject::new(why, format!("message {}: {reason}", d.message_id));
            reject.connection_id = Some(d.key.clone());
            reject.message_id = Some(d.message_id.clone());
            reject.message = d
                .refused_payload
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok());
            self.rejects.push(reject);
            let origin = Origin {
                topic: key.0.clone(),
                partition: key.1,
                offset: -1,
            };
            self.dead_letter(&origin)?;
        }
        self.monitor_answered(Some(&key), &d);
        if let Some(part) = self.parts.get_mut(&key) {
            part.pipeline.message_answered(&d.message_id);
        }
        Ok(())
    }
}
