//! The restart argument of `offsets`, checked on the pure core: crash at a
//! random point with random acknowledgements outstanding, resume from the
//! progress a commit would have written, and compare with an uncrashed run.

mod common;
use common::*;
use proptest::prelude::*;
use reset_pipeline::config::PushMode;
use reset_pipeline::event::SensorEvent;
use reset_pipeline::offsets::Progress;
use reset_pipeline::pipeline::PartitionPipeline;
use reset_pipeline::window::EngineSettings;
use std::collections::{BTreeMap, BTreeSet};

fn fleet() -> std::sync::Arc<reset_pipeline::registry::Registry> {
    registry(&[
        monitor_yaml("A", "air", "Asia/Kathmandu", "co2: ppm", &[]),
        monitor_yaml("B", "air", "America/New_York", "co2: ppm", &[]),
        monitor_yaml("E", "energy", "UTC", "power_consumption: kWh", &["c1"]),
    ])
}

fn events(jitter: &[i64]) -> Vec<SensorEvent> {
    let start = ms("2026-11-01T04:00:00Z");
    let mut out: Vec<(i64, SensorEvent)> = Vec::new();
    for i in 0..jitter.len() as i64 {
        let t = start + i * 170_000;
        let arrival = t + jitter[i as usize];
        out.push((
            arrival,
            event(
                ["A", "B"][(i % 2) as usize],
                t,
                None,
                &[("co2", Some(400.0 + (i % 13) as f64))],
            ),
        ));
        out.push((
            arrival + 1,
            event(
                "E",
                t + 3,
                Some("c1"),
                &[("power_consumption", Some(10.0 + i as f64))],
            ),
        ));
    }
    out.sort_by_key(|(a, _)| *a);
    out.into_iter().map(|(_, e)| e).collect()
}

/// Runs `events[from..]` from `progress`; acknowledges messages in the order
/// `ack_order` picks, until `crash_at` records are read. Returns every message
/// formed (id → payload), those acknowledged, and the progress at the crash.
fn run(
    events: &[SensorEvent],
    progress: Progress,
    push: PushMode,
    crash_at: Option<usize>,
    ack_order: &[usize],
) -> (BTreeMap<String, String>, BTreeSet<String>, Progress) {
    let mut p = PartitionPipeline::resume(fleet(), EngineSettings::default(), push, progress);
    let mut formed = BTreeMap::new();
    let mut unanswered: Vec<String> = Vec::new();
    let mut acked = BTreeSet::new();
    let mut rejects = Vec::new();
    let mut picks = ack_order.iter().cycle();
    for (offset, e) in events.iter().enumerate().skip(progress.offset as usize) {
        if Some(offset) == crash_at {
            return (formed, acked, p.progress());
        }
        for b in p.record(offset as u64, e, &mut rejects) {
            formed.insert(b.message_id.clone(), b.payload.clone());
            unanswered.push(b.message_id);
        }
        // Sometimes answer one outstanding message, any of them.
        if let Some(&pick) = picks.next() {
            if pick % 3 != 0 && !unanswered.is_empty() {
                let id = unanswered.remove(pick % unanswered.len());
                p.message_answered(&id);
                acked.insert(id);
            }
        }
    }
    for b in p.finish() {
        formed.insert(b.message_id.clone(), b.payload.clone());
    }
    (formed, acked, p.progress())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn a_crash_anywhere_loses_nothing_and_resends_only_identical_bytes(
        jitter in proptest::collection::vec(0i64..500_000, 400..900),
        crash in 0.0f64..1.0,
        ack_order in proptest::collection::vec(0usize..1000, 1..50),
        daily in any::<bool>(),
    ) {
        let push = if daily { PushMode::Daily } else { PushMode::Every30Minutes };
        let events = events(&jitter);
        let (clean, _, _) = run(&events, Progress::start(0), push, None, &[1]);
        let crash_at = ((events.len() as f64) * crash).floor() as usize;
        let (before, acked, progress) = run(&events, Progress::start(0), push, Some(crash_at), &ack_order);
        prop_assert!(progress.offset as usize <= crash_at);
        let (after, _, _) = run(&events, progress, push, None, &[1]);
        // Everything re-sent after the restart is byte-identical to the uncrashed run.
        for (id, payload) in &after {
            prop_assert_eq!(clean.get(id), Some(payload), "re-sent message differs");
        }
        for (id, payload) in &before {
            prop_assert_eq!(clean.get(id), Some(payload));
        }
        // Nothing is lost: every message of the clean run was acknowledged before the crash or sent after.
        for id in clean.keys() {
            prop_assert!(acked.contains(id) || after.contains_key(id), "lost {}", id);
        }
    }
}
