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
use reset_pipeline::payload::Announcements;
use reset_pipeline::pipeline::{
    keep_shapes, with_announcements, EarlierShapes, Emission, PartitionPipeline,
};
use reset_pipeline::registry::{same_record_shape, Registry};
use reset_pipeline::window::EngineSettings;
use reset_pipeline::window::Shape;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn fleet() -> Arc<Registry> {
    registry(&[
        monitor_yaml("A", "air", "Asia/Kathmandu", "co2: ppm", &[]),
        monitor_yaml("B", "air", "America/New_York", "co2: ppm", &[]),
        monitor_yaml("E", "energy", "UTC", "power_consumption: kWh", &["c1"]),
    ])
}

/// The fleet after a shape change: A moved to another zone (its windows
/// end on other instants), E has a second channel.
fn reshaped_fleet() -> Arc<Registry> {
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

/// A run of the shape-change model below: what the announcements store
/// holds between runs (each monitor's last record), and every window
/// formed, by monitor and end, with its row.
struct ShapedRuns {
    events: Vec<SensorEvent>,
    push: PushMode,
    store: BTreeMap<String, reset_pipeline::payload::Announced>,
    /// Each window formed in any run: it must be the same row every time.
    rows: BTreeMap<(String, i64), String>,
}

/// One run of `ShapedRuns`: from `progress`, on `registry`, which changes to
/// `reshaped_fleet()` before the record at `reshape_at`; the records before
/// `read_before` are those an earlier run may have read.
struct ShapedRun {
    progress: Progress,
    registry: Arc<Registry>,
    reshape_at: Option<usize>,
    read_before: usize,
    crash_at: Option<usize>,
}

impl ShapedRuns {
    /// Runs to the crash; returns the windows of messages never
    /// acknowledged, and the progress a commit would have written.
    fn run(
        &mut self,
        run: ShapedRun,
        ack_order: &[usize],
    ) -> Result<(BTreeSet<(String, i64)>, Progress), TestCaseError> {
        let mut told = Announcements::default();
        for announced in self.store.values() {
            told.learn(announced);
        }
        let mut registry = run.registry;
        let mut p = PartitionPipeline::resume(
            Arc::clone(&registry),
            EngineSettings::default(),
            self.push,
            run.progress.clone(),
        );
        p.take_shapes(&EarlierShapes::of(&registry, &told));
        let mut unanswered: Vec<(String, Vec<(String, i64)>)> = Vec::new();
        let mut picks = ack_order.iter().cycle();
        let mut rejects = Vec::new();
        let from = run.progress.offset as usize;
        for offset in from..=self.events.len() {
            if offset >= run.read_before && p.catching_up() {
                let ended = p.caught_up();
                self.stored(keep_shapes(&registry, &mut told, ended));
            }
            if Some(offset) == run.reshape_at {
                let reshaped = reshaped_fleet();
                let mut ended = Vec::new();
                for (id, old) in registry.iter() {
                    if !same_record_shape(&old.record, &reshaped.get(id).record) {
                        ended.extend(p.reshape(id, Shape(Arc::new(old.clone()))).map(|e| (id, e)));
                    }
                }
                self.stored(keep_shapes(&registry, &mut told, ended));
                registry = reshaped;
                p.set_registry(Arc::clone(&registry));
            }
            if Some(offset) == run.crash_at {
                let lost = unanswered.into_iter().flat_map(|(_, rows)| rows).collect();
                return Ok((lost, p.progress()));
            }
            let batches = match self.events.get(offset) {
                Some(e) => p.record(offset as u64, e, Some(TEST_NOW), &mut rejects),
                None => p.finish(),
            };
            for emission in with_announcements(&registry, &mut told, batches) {
                let batch = match emission {
                    Emission::Monitor { announced, .. } => {
                        self.stored(vec![*announced]);
                        continue;
                    }
                    Emission::Readings(batch) => batch,
                };
                let rows = rows_of([&batch.payload]);
                for (key, row) in &rows {
                    let first = self.rows.entry(key.clone()).or_insert_with(|| row.clone());
                    prop_assert_eq!(&*first, row, "window {:?} formed twice, differently", key);
                }
                unanswered.push((batch.message_id, rows.into_keys().collect()));
            }
            if let Some(&pick) = picks.next() {
                if pick % 3 != 0 && !unanswered.is_empty() {
                    let (id, _) = unanswered.remove(pick % unanswered.len());
                    p.message_answered(&id);
                }
            }
        }
        Ok((BTreeSet::new(), p.progress()))
    }

    fn stored(&mut self, records: Vec<reset_pipeline::payload::Announced>) {
        for r in records {
            self.store.insert(r.connection_id.clone(), r);
        }
    }
}

/// Every reading row of some messages, by monitor and window end (epoch
/// milliseconds).
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
    fn a_shape_change_running_or_stopped_never_changes_a_window_that_may_have_been_sent(
        jitter in proptest::collection::vec(0i64..500_000, 400..900),
        crashes in (0.05f64..0.5, 0.0f64..0.3),
        reshape in 0.0f64..0.5,
        ack_order in proptest::collection::vec(0usize..1000, 1..50),
        daily in any::<bool>(),
    ) {
        let push = if daily { PushMode::Daily } else { PushMode::Every30Minutes };
        let events = events(&jitter);
        let at = |f: f64| ((events.len() as f64) * f).floor() as usize;
        let (crash1, crash2) = (at(crashes.0), at(crashes.0 + crashes.1));
        // The registry changes shape while the first run runs, or while it
        // is stopped after its crash.
        let reshape_at = at(reshape).min(crash1);
        let mut runs = ShapedRuns { events: events.clone(), push, store: BTreeMap::new(), rows: BTreeMap::new() };
        let (lost1, progress) = runs.run(ShapedRun { progress: Progress::start(0), registry: fleet(), reshape_at: Some(reshape_at), read_before: 0, crash_at: Some(crash1) }, &ack_order)?;
        let (lost2, progress) = runs.run(ShapedRun { progress, registry: reshaped_fleet(), reshape_at: None, read_before: crash1, crash_at: Some(crash2) }, &ack_order)?;
        let before_last = runs.rows.clone();
        runs.run(ShapedRun { progress, registry: reshaped_fleet(), reshape_at: None, read_before: crash2, crash_at: None }, &[1])?;
        // Nothing lost: every window of a message never acknowledged is
        // formed again (identical, checked as each was formed).
        let formed_later = |key: &(String, i64)| runs.rows.contains_key(key);
        for key in lost1.iter().chain(&lost2) {
            prop_assert!(formed_later(key), "window {:?} lost", key);
        }
        // Windows of samples read only after the last restart have the new shape.
        let read_before = events[..crash2].iter().map(|e| e.event_time).max().unwrap_or(i64::MIN);
        let mut new_rows = 0;
        for ((id, end), row) in &runs.rows {
            if *end <= read_before + 3_600_000 || before_last.contains_key(&(id.clone(), *end)) {
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
    held: Option<std::sync::Arc<reset_pipeline::registry::MonitorRecord>>,
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
