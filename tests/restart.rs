//! The restart argument of `offsets`, checked on the pure core: crash at a
//! random point with random acknowledgements outstanding, resume from the
//! progress a commit would have written, and compare with an uncrashed run;
//! also with RESET away for a stretch (nothing answered) and a poison
//! monitor whose every message is given up (dead-lettered: settled, not
//! acknowledged).

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
    run_with(
        events,
        progress,
        push,
        crash_at,
        ack_order,
        &Faults::default(),
    )
}

/// RESET's misbehaviour in a run: no answer at all while the record read
/// is in `outage`; every message of `poison` answered by giving it up.
/// And the wall clock's: before each record of `raises` (from `fresh_from`
/// on: records read again after a restart come too fast for it), the
/// partition was idle and its watermark was raised that far past the
/// latest event time read so far.
#[derive(Default, Clone)]
struct Faults {
    outage: std::ops::Range<usize>,
    poison: Option<&'static str>,
    raises: BTreeMap<usize, i64>,
    fresh_from: usize,
}

fn run_with(
    events: &[SensorEvent],
    progress: Progress,
    push: PushMode,
    crash_at: Option<usize>,
    ack_order: &[usize],
    faults: &Faults,
) -> (BTreeMap<String, String>, BTreeSet<String>, Progress) {
    let from = progress.offset as usize;
    let mut p = PartitionPipeline::resume(fleet(), EngineSettings::default(), push, progress);
    let mut formed = BTreeMap::new();
    let mut unanswered: Vec<String> = Vec::new();
    let mut acked = BTreeSet::new();
    let mut rejects = Vec::new();
    let mut picks = ack_order.iter().cycle();
    let mut latest = events[..from]
        .iter()
        .map(|e| e.event_time)
        .max()
        .unwrap_or(i64::MIN);
    for (offset, e) in events.iter().enumerate().skip(from) {
        if Some(offset) == crash_at {
            return (formed, acked, p.progress());
        }
        let mut batches = Vec::new();
        if let Some(ahead) = faults
            .raises
            .get(&offset)
            .filter(|_| offset >= faults.fresh_from)
        {
            batches.extend(p.advance_to(latest.saturating_add(*ahead)));
        }
        latest = latest.max(e.event_time);
        batches.extend(p.record(offset as u64, e, Some(TEST_NOW), &mut rejects));
        for b in batches {
            formed.insert(b.message_id.clone(), b.payload.clone());
            if faults.poison == Some(b.connection_id.as_str()) {
                // Given up after its attempts: settled, never acknowledged.
                if !faults.outage.contains(&offset) {
                    p.message_answered(&b.message_id);
                    continue;
                }
            }
            unanswered.push(b.message_id);
        }
        // Sometimes answer one outstanding message, any of them.
        if let Some(&pick) = picks.next() {
            if pick % 3 != 0 && !unanswered.is_empty() && !faults.outage.contains(&offset) {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn outages_and_a_poison_monitor_hold_back_nothing_else_and_lose_nothing(
        jitter in proptest::collection::vec(0i64..500_000, 400..900),
        crash in 0.0f64..1.0,
        outage_at in 0.0f64..1.0,
        outage_len in 0usize..300,
        ack_order in proptest::collection::vec(1usize..1000, 1..50),
    ) {
        let push = PushMode::Every30Minutes;
        let events = events(&jitter);
        let start = ((events.len() as f64) * outage_at).floor() as usize;
        let faults = Faults { outage: start..start + outage_len, poison: Some("B"), ..Faults::default() };
        let (clean, _, _) = run(&events, Progress::start(0), push, None, &[1]);
        let crash_at = ((events.len() as f64) * crash).floor() as usize;
        let (before, acked, progress) =
            run_with(&events, Progress::start(0), push, Some(crash_at), &ack_order, &faults);
        prop_assert!(progress.offset as usize <= crash_at);
        let (after, _, _) = run_with(&events, progress, push, None, &[1], &faults);
        for (id, payload) in before.iter().chain(&after) {
            prop_assert_eq!(clean.get(id), Some(payload), "a message differs");
        }
        // Nothing lost: acknowledged before the crash, or sent after it,
        // or the poison monitor's (dead-lettered).
        for id in clean.keys() {
            let poisoned = id.starts_with("rp_B_");
            prop_assert!(acked.contains(id) || after.contains_key(id) || poisoned, "lost {}", id);
        }
        // The poison monitor never holds the others back: with everything
        // else answered, progress moves past its messages.
        let (_, _, end) = run_with(&events, Progress::start(0), push, None, &[1], &Faults { outage: 0..0, poison: Some("B"), ..Faults::default() });
        let (_, _, reference) = run(&events, Progress::start(0), push, None, &[1]);
        prop_assert_eq!(end, reference);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn idle_raises_before_a_crash_decide_the_same_way_after_it(
        jitter in proptest::collection::vec(0i64..500_000, 400..900),
        crash in 0.0f64..1.0,
        raises in proptest::collection::btree_map(0usize..1800, 0i64..1_800_000, 1..12),
        ack_order in proptest::collection::vec(0usize..1000, 1..50),
        daily in any::<bool>(),
    ) {
        let push = if daily { PushMode::Daily } else { PushMode::Every30Minutes };
        let events = events(&jitter);
        let faults = Faults { raises, ..Faults::default() };
        let (clean, _, _) = run_with(&events, Progress::start(0), push, None, &[1], &faults);
        let crash_at = ((events.len() as f64) * crash).floor() as usize;
        let (before, acked, progress) =
            run_with(&events, Progress::start(0), push, Some(crash_at), &ack_order, &faults);
        let restarted = Faults { fresh_from: crash_at, ..faults };
        let (after, _, _) = run_with(&events, progress, push, None, &[1], &restarted);
        for (id, payload) in before.iter().chain(&after) {
            prop_assert_eq!(clean.get(id), Some(payload), "a message differs");
        }
        for id in clean.keys() {
            prop_assert!(acked.contains(id) || after.contains_key(id), "lost {}", id);
        }
    }
}
