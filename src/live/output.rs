//! The output side of the loop: closed windows handed to the publisher
//! without waiting, and RESET's answers taken back to their partitions.

use super::{Live, PartitionKey};
use crate::kafka::Origin;
use crate::payload::EventName;
use crate::payload::{monitors_payload, MonitorAction};
use crate::pipeline::{with_announcements, Emission};
use crate::reject::{Reject, RejectReason};
use crate::sink::{Delivery, Fate, Outgoing};
use anyhow::Result;
use std::time::{Instant, SystemTime};

impl Live {
    /// Hands the messages of closed windows to the publisher, without
    /// waiting: `follow_flow` pauses the input when too many wait.
    pub(super) fn publish(&mut self, key: &PartitionKey, batches: Vec<crate::batch::Batch>) {
        let mut messages = Vec::with_capacity(batches.len());
        for emission in with_announcements(&self.registry, &mut self.announcements, batches) {
            match &emission {
                Emission::Monitor {
                    message_id,
                    connection_id,
                    action: MonitorAction::Create,
                    ..
                } => {
                    self.creates
                        .insert(message_id.clone(), connection_id.clone());
                }
                Emission::Monitor { .. } => {}
                Emission::Readings(b) => {
                    self.metrics.readings_sent.inc_by(b.ends.len() as u64);
                }
            }
            let message = Outgoing::from(emission);
            self.sending(key, &message);
            messages.push(message);
        }
        self.offer(messages);
    }

    pub(super) fn send(&mut self, key: &PartitionKey, message: Outgoing) {
        self.sending(key, &message);
        self.offer(vec![message]);
    }

    pub(super) fn offer(&mut self, messages: Vec<Outgoing>) {
        if !messages.is_empty() && self.waiting_for_reset_since.is_none() {
            self.waiting_for_reset_since = Some(SystemTime::now());
        }
        self.publisher.offer_all(messages);
        self.metrics.in_flight.set(self.publisher.held() as i64);
    }

    /// Counts a message and remembers its partition, for its answer.
    pub(super) fn sending(&mut self, key: &PartitionKey, message: &Outgoing) {
        self.metrics
            .messages_sent
            .with_label_values(&[message.event.as_str()])
            .inc();
        self.owners
            .insert(message.message_id.clone(), (key.clone(), Instant::now()));
    }

    /// RESET refused to create a monitor. After a restart the pipeline cannot
    /// know what RESET already holds, so it creates every monitor again; a
    /// monitor whose description changed since RESET created it gets a new
    /// message id, and RESET refuses it (the monitor exists). Its current
    /// description is then sent as `modify`. A refused `modify` is not
    /// followed by anything.
    pub(super) fn modify_after_refused_create(&mut self, key: &PartitionKey, connection_id: &str) {
        let Some(id) = self.registry.lookup(connection_id) else {
            return;
        };
        let (message_id, payload) = monitors_payload(self.registry.get(id), MonitorAction::Modify);
        tracing::info!(
            connection_id,
            "RESET refused to create the monitor: sending its description as modify"
        );
        let message = Outgoing {
            event: EventName::Monitors,
            message_id,
            payload,
            key: connection_id.to_string(),
        };
        self.send(key, message);
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
        let Some((key, sent)) = self.owners.remove(&d.message_id) else {
            return Ok(());
        };
        self.metrics
            .publish_latency
            .observe(sent.elapsed().as_secs_f64());
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
        let refused_create = self
            .creates
            .remove(&d.message_id)
            .filter(|_| matches!(d.fate, Fate::Rejected { .. }));
        if let Some(connection_id) = refused_create {
            self.modify_after_refused_create(&key, &connection_id);
        }
        if let Some(part) = self.parts.get_mut(&key) {
            part.pipeline.message_answered(&d.message_id);
        }
        Ok(())
    }
}
