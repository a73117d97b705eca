//! `replay`'s publishing: the replayed emissions go to RESET as `run`
//! sends them. Monitors messages are recorded in the announcements store
//! as sent before they leave and as acknowledged after; a `create` RESET
//! refuses because it holds the monitor is followed by its `modify`; every
//! answer is awaited. RESET refusing the credentials stops it at once:
//! they cannot change while it runs. RESET away is waited out, as `run`
//! waits.

use crate::config::Config;
use crate::kafka::announcements::AnnouncementWriter;
use crate::payload::{Announced, Announcements, MonitorAction};
use crate::pipeline::Emission;
use crate::registry::Registry;
use crate::sink::{Fate, Outgoing, Publisher, Status};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::time::Duration;

/// What became of a replay's messages.
#[derive(Debug, Default, PartialEq)]
pub struct Published {
    pub messages: usize,
    pub rejected: usize,
}

/// Publishes `emissions` (and the `modify` of each refused create), with
/// the store when there is one.
pub async fn publish(
    config: &Config,
    registry: &Registry,
    emissions: &[Emission],
    store: Option<AnnouncementWriter>,
) -> Result<Published> {
    let announcing: HashMap<String, Announced> = emissions
        .iter()
        .filter_map(Emission::announced)
        .map(|a| (a.message_id.clone(), a.clone()))
        .collect();
    if let Some(store) = &store {
        let sent = announcing.values().cloned().collect();
        store
            .store(sent)
            .await
            .context("cannot record the monitors messages in the announcements store")?;
    }
    let (publisher, deliveries) = Publisher::start(crate::live::publisher_settings(config)?);
    let mut status = publisher.status_watch();
    // Both futures below run on this task, one at a time.
    let answered = std::cell::Cell::new(0);
    // Only a refusal stops the replay: a status channel that closed (the
    // publisher's task ended) says nothing of the credentials.
    let refused = async {
        if status
            .wait_for(|s| *s == Status::Unauthorized)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        done = send_and_wait(registry, emissions, &store, announcing, &publisher, deliveries, &answered) => {
            publisher.drain(Duration::from_secs(5)).await;
            done
        }
        _ = refused => anyhow::bail!(
            "RESET refuses the credentials of client {:?}: replay stopped with {} of {} messages answered (a later replay sends the rest, and again, identical, what was sent)",
            config.reset.client_id,
            answered.get(),
            emissions.len()
        ),
    }
}

/// Publishes `emissions` and waits for every answer, sending the `modify`
/// of each refused create; counts the answers in `answered`.
async fn send_and_wait(
    registry: &Registry,
    emissions: &[Emission],
    store: &Option<AnnouncementWriter>,
    mut announcing: HashMap<String, Announced>,
    publisher: &Publisher,
    mut deliveries: tokio::sync::mpsc::UnboundedReceiver<crate::sink::Delivery>,
    answered: &std::cell::Cell<usize>,
) -> Result<Published> {
    for e in emissions {
        publisher.publish(Outgoing::from(e.clone())).await;
    }
    let mut done = Published::default();
    let mut waiting = emissions.len();
    let mut followed = Announcements::default();
    while waiting > 0 {
        let d = deliveries.recv().await.context("publisher stopped")?;
        waiting -= 1;
        done.messages += 1;
        answered.set(done.messages);
        let announced = announcing.remove(&d.message_id);
        let (code, reason) = match &d.fate {
            Fate::Acknowledged => {
                if let (Some(store), Some(mut announced)) = (&store, announced) {
                    announced.acknowledged = true;
                    if let Err(e) = store.store(vec![announced]).await {
                        eprintln!(
                            "replay: an acknowledged monitor description was not stored: {e}"
                        );
                    }
                }
                continue;
            }
            Fate::Rejected { code, reason } | Fate::GaveUp { code, reason } => (code, reason),
        };
        done.rejected += 1;
        eprintln!(
            "replay: {} refused by RESET ({code}): {reason}",
            d.message_id
        );
        let refused_create = matches!(d.fate, Fate::Rejected { .. })
            && announced
                .as_ref()
                .is_some_and(|a| a.action == MonitorAction::Create);
        let monitor = announced
            .filter(|_| refused_create)
            .and_then(|a| registry.lookup(&a.connection_id).map(|id| (a, id)));
        if let Some((create, id)) = monitor {
            // RESET holds the monitor though the store did not say so.
            followed.learn(&create);
            let (modify, payload) = followed.refused_create(registry.get(id));
            eprintln!(
                "replay: RESET holds {}: its description follows as modify",
                create.connection_id
            );
            if let Some(store) = &store {
                store
                    .store(vec![modify.clone()])
                    .await
                    .context("cannot record a monitors message in the announcements store")?;
            }
            announcing.insert(modify.message_id.clone(), modify.clone());
            let message = Emission::Monitor {
                announced: Box::new(modify),
                payload,
            };
            publisher.publish(Outgoing::from(message)).await;
            waiting += 1;
        }
    }
    Ok(done)
}
