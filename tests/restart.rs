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

/// The fleet after a shape change: A moved to another zone (its windows
/// end on other instants), E has a second channel.
fn reshaped_fleet() -> std::sync::Arc<reset_pipeline::registry::Registry> {
    registry(&[
        monitor_yaml("A", "air", "Asia/Kolkata", "co2: ppm", &[]),
        monitor_yaml("B", "air", "America/New_York", "co2: ppm", &[]),
        monitor_yaml(
            "E",
            "energy",
            "UTC",
            "power_consumption: kWh",
            &["c1", "c2"],
        ),
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
    /// The registry changed shape while the pipeline was stopped: the run
    /// starts with `reshaped_fleet()`; the records before this offset are
    /// those the run before it may have read.
    reshaped_while_stopped: Option<usize>,
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
    let registry = match faults.reshaped_while_stopped {
        Some(_) => reshaped_fleet(),
        None => fleet(),
    };
    let mut p = PartitionPipeline::resume(registry, EngineSettings::default(), push, progress);
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

/// Every reading row of the messages `sent` picks, by monitor and window
/// end (epoch milliseconds).
fn rows_of<'a>(messages: impl IntoIterator<Item = &'a String>) -> BTreeMap<(String, i64), String> {
    let mut rows = BTreeMap::new();
    for payload in messages {
        let message: serde_json::Value = serde_json::from_str(payload).expect("payload is JSON");
        for row in message["data"]["readings"].as_array().expect("readings") {
            let time = row["reading_time"].as_str().expect("reading_time");
            let key = (
                row["connection_id"].as_str().expect("id").to_string(),
                ms(time),
            );
            rows.insert(key, row.to_string());
        }
    }
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn a_shape_change_while_stopped_changes_no_window_that_may_have_been_sent(
        jitter in proptest::collection::vec(0i64..500_000, 400..900),
        crash in 0.05f64..0.8,
        ack_order in proptest::collection::vec(0usize..1000, 1..50),
        daily in any::<bool>(),
    ) {
        let push = if daily { PushMode::Daily } else { PushMode::Every30Minutes };
        let events = events(&jitter);
        let crash_at = ((events.len() as f64) * crash).floor() as usize;
        let (before, acked, progress) = run(&events, Progress::start(0), push, Some(crash_at), &ack_order);
        let restarted = Faults { reshaped_while_stopped: Some(crash_at), ..Faults::default() };
        let (after, _, _) = run_with(&events, progress, push, None, &[1], &restarted);
        let unanswered = rows_of(before.iter().filter(|(id, _)| !acked.contains(*id)).map(|(_, p)| p));
        let resent = rows_of(after.values());
        // Every window that may have reached RESET unanswered is sent
        // again, and byte for byte as before.
        for (key, row) in &unanswered {
            prop_assert_eq!(resent.get(key), Some(row), "window {:?} changed or lost", key);
        }
        // Windows of samples read only after the restart have the new shape.
        let read_before = events[..crash_at].iter().map(|e| e.event_time).max().unwrap_or(i64::MIN);
        let mut new_rows = 0;
        for ((id, end), row) in &resent {
            if *end <= read_before + 3_600_000 {
                continue;
            }
            new_rows += 1;
            match id.as_str() {
                "A" => prop_assert!(row.contains("+05:30\""), "A in its old zone: {}", row),
                "E" => prop_assert!(row.contains("\"c2\""), "E without its new channel: {}", row),
                _ => {}
            }
        }
        prop_assert!(new_rows > 0, "nothing after the restart to check the new shape on");
    }
}

/// One step of the description-change model below.
#[derive(Debug, Clone)]
enum Step {
    /// The registry now says description 0, 1 or 2.
    Change(usize),
    /// The monitor's next readings are formed: what is owed goes out.
    Form,
    /// RESET takes the first message on its way; its ack arrives or is lost
    /// (the publisher then sends it again).
    Deliver { ack_lost: bool },
    /// The pipeline dies: messages not yet delivered are gone, and the next
    /// run knows only what the store's last record says (compaction).
    Crash,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..3).prop_map(Step::Change),
        Just(Step::Form),
        any::<bool>().prop_map(|ack_lost| Step::Deliver { ack_lost }),
        Just(Step::Crash),
    ]
}

/// RESET as its document has it: one description per monitor, a `create`
/// refused when it holds the monitor, a `modify` when it does not.
#[derive(Default)]
struct ResetModel {
    held: Option<reset_pipeline::registry::MonitorRecord>,
    /// Every message id taken, with its payload.
    taken: BTreeMap<String, String>,
    /// The ids of the messages that changed what it holds, in order.
    changes: Vec<String>,
}

/// A running pipeline's side: what it told, and what is on its way.
struct Announcing {
    told: reset_pipeline::payload::Announcements,
    on_the_way: std::collections::VecDeque<(reset_pipeline::payload::Announced, String)>,
}

impl Announcing {
    /// A restart: the store's last record is all it knows.
    fn restart(store: &[reset_pipeline::payload::Announced]) -> Announcing {
        let mut told = reset_pipeline::payload::Announcements::default();
        if let Some(last) = store.last() {
            told.learn(last);
        }
        Announcing {
            told,
            on_the_way: Default::default(),
        }
    }

    /// Sends what is owed, recorded in the store as sent before it leaves.
    fn form(
        &mut self,
        store: &mut Vec<reset_pipeline::payload::Announced>,
        monitor: &reset_pipeline::registry::Monitor,
    ) {
        if let Some(message) = self.told.announce(monitor) {
            store.push(message.0.clone());
            self.on_the_way.push_back(message);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn description_changes_across_crashes_reach_reset_in_order_under_ids_of_their_own(
        steps in proptest::collection::vec(step(), 1..60),
        last in 0usize..3,
    ) {
        use reset_pipeline::payload::MonitorAction;
        let descriptions: Vec<reset_pipeline::registry::Monitor> = ["", " label: Hall,", " label: Lab,"]
            .iter()
            .map(|label| {
                let line = monitor_yaml("A", "air", "UTC", "co2: ppm", &[])
                    .replace("monitor_serial_id: A,", &format!("monitor_serial_id: A,{label}"));
                registry(&[line]).get(0).clone()
            })
            .collect();
        let mut reset = ResetModel::default();
        let mut store = Vec::new();
        let mut run = Announcing::restart(&store);
        let mut current = 0;
        let settling = std::iter::repeat_n([Step::Form, Step::Deliver { ack_lost: false }], 8).flatten();
        let steps = steps.into_iter().chain([Step::Change(last)]).chain(settling);
        for step in steps {
            match step {
                Step::Change(d) => current = d,
                Step::Form => run.form(&mut store, &descriptions[current]),
                Step::Crash => run = Announcing::restart(&store),
                Step::Deliver { ack_lost } => {
                    let Some((mut announced, payload)) = run.on_the_way.pop_front() else { continue };
                    let id = announced.message_id.clone();
                    if let Some(earlier) = reset.taken.get(&id) {
                        prop_assert_eq!(earlier, &payload, "a re-send under the same id differs");
                    } else {
                        match (announced.action, reset.held.is_some()) {
                            (MonitorAction::Create, true) => {
                                // Refused: the pipeline follows with a modify.
                                let modify = run.told.refused_create(&descriptions[current]);
                                store.push(modify.0.clone());
                                run.on_the_way.push_back(modify);
                                continue;
                            }
                            (MonitorAction::Modify, false) => {
                                prop_assert!(false, "a modify for a monitor RESET does not hold: {}", id);
                            }
                            _ => {}
                        }
                        reset.taken.insert(id.clone(), payload.clone());
                        if reset.held.as_ref() != Some(&announced.record) {
                            prop_assert!(!reset.changes.contains(&id), "{} changed RESET twice", id);
                            reset.changes.push(id.clone());
                            reset.held = Some(announced.record.clone());
                        }
                    }
                    if ack_lost {
                        run.on_the_way.push_front((announced, payload));
                    } else {
                        announced.acknowledged = true;
                        store.extend(run.told.acknowledged(&announced));
                    }
                }
            }
        }
        prop_assert!(run.on_the_way.is_empty());
        prop_assert_eq!(reset.held.as_ref(), Some(&descriptions[last].record), "RESET holds another description");
        // A restart now sends nothing.
        prop_assert_eq!(Announcing::restart(&store).told.owed(&descriptions[last]), None);
    }
}
