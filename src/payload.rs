//! The exact JSON RESET receives: `readings` rows from closed windows,
//! `monitors` create/modify messages, and deterministic message ids.

use crate::registry::{Monitor, MonitorRecord};
use crate::short_text::ShortText;
use crate::window::{reading_time, ClosedWindow, SlotValue};
use rustc_hash::FxHashMap;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The two Socket.IO events the pipeline emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventName {
    Monitors,
    Readings,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Monitors => "monitors",
            EventName::Readings => "readings",
        }
    }
}

/// One reading row (one window) as JSON, ready to be put in a message.
pub fn reading_json(monitor: &Monitor, window: &ClosedWindow) -> String {
    serde_json::to_string(&ReadingRow { monitor, window }).expect("a reading always serializes")
}

struct ReadingRow<'a> {
    monitor: &'a Monitor,
    window: &'a ClosedWindow,
}

impl Serialize for ReadingRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.monitor;
        let channels = m.channel_count();
        let mut map = s.serialize_map(Some(2 + m.reported.len()))?;
        map.serialize_entry("connection_id", m.connection_id())?;
        map.serialize_entry("reading_time", &reading_time(&m.tz, self.window.end))?;
        for (i, parameter) in m.reported.iter().enumerate() {
            let values = &self.window.values[i * channels..(i + 1) * channels];
            if m.module.has_channels() {
                map.serialize_entry(
                    parameter.name(),
                    &ChannelEntries {
                        ids: &m.channel_ids,
                        values,
                    },
                )?;
            } else {
                map.serialize_entry(parameter.name(), &single(&values[0]))?;
            }
        }
        map.end()
    }
}

fn single(v: &SlotValue) -> Option<f64> {
    match v {
        SlotValue::Single(v) => *v,
        SlotValue::Pieces(p) => p.iter().copied().reduce(f64::max),
    }
}

/// `[{"channel_id": ..., "reading": ...}, ...]`: one entry per channel, or one
/// per bin piece, in channel order and then time order.
struct ChannelEntries<'a> {
    ids: &'a [ShortText],
    values: &'a [SlotValue],
}

impl Serialize for ChannelEntries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Entry<'a> {
            channel_id: &'a str,
            reading: Option<f64>,
        }
        let mut seq = s.serialize_seq(None)?;
        for (id, value) in self.ids.iter().map(ShortText::as_str).zip(self.values) {
            match value {
                SlotValue::Pieces(pieces) if !pieces.is_empty() => {
                    for &p in pieces {
                        seq.serialize_element(&Entry {
                            channel_id: id,
                            reading: Some(p),
                        })?;
                    }
                }
                other => seq.serialize_element(&Entry {
                    channel_id: id,
                    reading: single(other),
                })?,
            }
        }
        seq.end()
    }
}

/// A short stable digest of text, as lowercase hex.
fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update((p.len() as u64).to_le_bytes());
        hasher.update(p.as_bytes());
    }
    let bytes = hasher.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes[..12]
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// A `readings` message id: the monitor, the first and last window ends and a
/// digest of the rows, so the same data always has the same id and different
/// data never shares one.
pub fn readings_message_id(
    connection_id: &str,
    first_end: i64,
    last_end: i64,
    rows: &str,
) -> String {
    format!(
        "rp_{connection_id}_{first_end}_{last_end}_{}",
        digest(&[connection_id, rows])
    )
}

/// The full `readings` payload for some rows of one monitor.
pub fn readings_payload(message_id: &str, connection_id: &str, rows: &[&str]) -> String {
    let mut out = String::with_capacity(64 + rows.iter().map(|r| r.len() + 1).sum::<usize>());
    out.push_str("{\"message_id\":");
    out.push_str(&serde_json::to_string(message_id).expect("string"));
    out.push_str(",\"data\":{\"connection_id\":");
    out.push_str(&serde_json::to_string(connection_id).expect("string"));
    out.push_str(",\"readings\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(row);
    }
    out.push_str("]}}");
    out
}

/// Whether a monitors message creates the monitor or modifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorAction {
    Create,
    Modify,
}

/// The `monitors` payload (create or modify) of the description at
/// `version`, and its message id.
pub fn monitors_payload(
    monitor: &Monitor,
    action: MonitorAction,
    version: u64,
) -> (String, String) {
    let data = serde_json::to_string(&MonitorData { monitor, action })
        .expect("a description always serializes");
    let verb = match action {
        MonitorAction::Create => "create",
        MonitorAction::Modify => "modify",
    };
    let connection_id = monitor.connection_id();
    let message_id = format!(
        "rp_monitor_{connection_id}_{verb}_v{version}_{}",
        digest(&[&data])
    );
    let payload = format!(
        "{{\"message_type\":\"{verb}\",\"message_id\":{},\"data\":{data}}}",
        serde_json::to_string(&message_id).expect("string")
    );
    (message_id, payload)
}

/// A `monitors` message's `data`, written straight from the monitor: its
/// label, id, module (on create), `meta` and channels (modules with them).
struct MonitorData<'a> {
    monitor: &'a Monitor,
    action: MonitorAction,
}

impl Serialize for MonitorData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.monitor;
        let r = &m.record;
        let mut map = s.serialize_map(None)?;
        if let Some(label) = &r.label {
            map.serialize_entry("label", label)?;
        }
        map.serialize_entry("connection_id", &r.connection_id)?;
        if self.action == MonitorAction::Create {
            map.serialize_entry("module", m.module.name())?;
        }
        map.serialize_entry("meta", &Meta(m))?;
        if m.module.has_channels() {
            map.serialize_entry("channels", &r.channels)?;
        }
        map.end()
    }
}

/// `{"monitor_detail": {...}, "included_parameters": {name: {"unit": ...}}}`.
struct Meta<'a>(&'a Monitor);

impl Serialize for Meta<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Detail<'a> {
            monitor_brand: &'a str,
            monitor_sku: &'a str,
            monitor_serial_id: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            last_monitor_calibration_date: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Included<'a> {
            unit: &'a str,
        }
        struct IncludedParameters<'a>(&'a [(crate::parameter::Parameter, crate::parameter::Unit)]);
        impl Serialize for IncludedParameters<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (p, u) in self.0 {
                    map.serialize_entry(p.name(), &Included { unit: u.name() })?;
                }
                map.end()
            }
        }
        let r = &self.0.record;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry(
            "monitor_detail",
            &Detail {
                monitor_brand: &r.monitor_brand,
                monitor_sku: &r.monitor_sku,
                monitor_serial_id: &r.monitor_serial_id,
                last_monitor_calibration_date: r.last_monitor_calibration_date.as_deref(),
            },
        )?;
        map.serialize_entry("included_parameters", &IncludedParameters(&self.0.declared))?;
        map.end()
    }
}

/// A `monitors` message as the announcements store keeps it, per monitor:
/// sent (its fate not known yet) or acknowledged by RESET. What a restarted
/// pipeline compares the registry with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announced {
    pub connection_id: String,
    /// The description's version: 1 for the first message, one more per change.
    pub version: u64,
    pub message_id: String,
    pub record: std::sync::Arc<MonitorRecord>,
    /// Records written before this field: acknowledged modifies (a
    /// create's action no longer matters once acknowledged).
    #[serde(default = "modify")]
    pub action: MonitorAction,
    /// `false` while only known to have been sent: RESET may hold it or not.
    #[serde(default = "yes")]
    pub acknowledged: bool,
    /// Whether RESET was known to hold the monitor when it was sent (an
    /// earlier message acknowledged, or a create refused).
    #[serde(default = "yes")]
    pub held: bool,
    /// The monitor's earlier shapes whose windows may not all be
    /// acknowledged yet, oldest first (`Announcements::keep_shape`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<KeptShape>,
}

/// An earlier shape of a monitor as the store keeps it: the description it
/// was read from, and the end of the last window built on it (epoch ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptShape {
    pub until: i64,
    pub record: std::sync::Arc<MonitorRecord>,
}

/// How many earlier shapes of a monitor the store keeps: the newest. An
/// older one matters only to a sample older than that many shape changes.
pub const KEPT_SHAPES: usize = 8;

/// `kept` with `more`, by end, without repeats, the newest `KEPT_SHAPES`.
fn merged(kept: &mut Vec<KeptShape>, more: &[KeptShape]) {
    for shape in more {
        if !kept.contains(shape) {
            kept.push(shape.clone());
        }
    }
    kept.sort_by_key(|k| k.until);
    let extra = kept.len().saturating_sub(KEPT_SHAPES);
    kept.drain(..extra);
}

fn modify() -> MonitorAction {
    MonitorAction::Modify
}

fn yes() -> bool {
    true
}

impl Announced {
    /// The later of two records of one monitor: the higher version, and
    /// at the same version the one that knows more.
    fn supersedes(&self, other: &Announced) -> bool {
        (self.version, self.acknowledged, self.held)
            > (other.version, other.acknowledged, other.held)
    }

    /// Whether RESET is known to hold the monitor.
    fn holds(&self) -> bool {
        self.acknowledged || self.held
    }
}

/// Which description of each monitor RESET has been told, to send `create`
/// before a monitor's first readings and `modify` when its description
/// changes: the messages sent in this run (`told`; the publisher delivers
/// a monitor's messages in order), and what the announcements store says
/// (`learn`): messages acknowledged before, and messages sent whose answer
/// was never stored. Each description sent gets the next version, which is
/// in its message id: a change back to an earlier description is a new
/// message, and a re-send after a crash repeats the same id. A message
/// sent but never answered may or may not be what RESET holds: after a
/// restart it is sent again when the registry still says it, and followed
/// by a message of its own otherwise, a `create` unless RESET is known to
/// hold the monitor (if it does, it refuses the create and a `modify`
/// follows).
#[derive(Debug, Default, Clone)]
pub struct Announcements {
    /// Fx-hashed, as the keys are registry monitors' connection ids.
    told: FxHashMap<String, Announced>,
    known: FxHashMap<String, Announced>,
    /// Each monitor's earlier shapes, carried by every record written of it.
    shapes: FxHashMap<String, Vec<KeptShape>>,
}

impl Announcements {
    /// The latest message of the monitor, and whether this run sent it.
    pub(crate) fn latest(&self, connection_id: &str) -> Option<(&Announced, bool)> {
        let told = self.told.get(connection_id);
        let known = self.known.get(connection_id);
        match (told, known) {
            (Some(t), Some(k)) if k.version > t.version => Some((k, false)),
            (Some(t), _) => Some((t, true)),
            (None, k) => k.map(|k| (k, false)),
        }
    }

    /// The description of the monitor's latest message, if any.
    pub fn last_record(&self, connection_id: &str) -> Option<&MonitorRecord> {
        self.latest(connection_id).map(|(last, _)| &*last.record)
    }

    /// The monitor's earlier shapes, oldest first.
    pub fn shapes(&self, connection_id: &str) -> &[KeptShape] {
        self.shapes.get(connection_id).map_or(&[], Vec::as_slice)
    }

    /// Keeps an earlier shape of the monitor with its announcements. The
    /// latest record of the monitor, carrying it, for the store to write
    /// before any message formed after it leaves (none: nothing was told of
    /// the monitor yet; its first message will carry it).
    pub fn keep_shape(&mut self, connection_id: &str, shape: KeptShape) -> Option<Announced> {
        let kept = self.shapes.entry(connection_id.to_string()).or_default();
        merged(kept, std::slice::from_ref(&shape));
        let (last, _) = self.latest(connection_id)?;
        Some(self.with_shapes(last.clone()))
    }

    /// The monitors message owed before readings built on an earlier shape
    /// of the monitor: the earlier description itself when nothing was told
    /// of the monitor (or it was sent and never answered: the same message
    /// again), and nothing once a later description was told.
    pub fn announce_earlier(&mut self, monitor: &Monitor) -> Option<(Announced, String)> {
        match self.latest(monitor.connection_id()) {
            Some((last, _)) if last.record != monitor.record => None,
            _ => self.announce(monitor),
        }
    }

    /// `announced` carrying the monitor's earlier shapes as known now.
    fn with_shapes(&self, mut announced: Announced) -> Announced {
        announced.shapes = self.shapes(&announced.connection_id).to_vec();
        announced
    }

    /// Whether RESET is known to hold the monitor.
    fn holds(&self, connection_id: &str) -> bool {
        let told = self.told.get(connection_id);
        let known = self.known.get(connection_id);
        told.is_some_and(Announced::holds) || known.is_some_and(Announced::holds)
    }

    /// The monitors message owed before this monitor's next readings, with
    /// its version, if any.
    pub fn owed(&self, monitor: &Monitor) -> Option<(MonitorAction, u64)> {
        let id = monitor.connection_id();
        let Some((last, this_run)) = self.latest(id) else {
            return Some((MonitorAction::Create, 1));
        };
        let same = last.record == monitor.record;
        if this_run || last.acknowledged {
            return (!same).then_some((MonitorAction::Modify, last.version + 1));
        }
        // Sent by an earlier run, never answered.
        let action = if self.holds(id) {
            MonitorAction::Modify
        } else {
            MonitorAction::Create
        };
        if same && action == last.action {
            Some((action, last.version))
        } else {
            Some((action, last.version + 1))
        }
    }

    /// The monitors message owed before this monitor's next readings, as
    /// the store records it sent, and its payload; counted as told.
    pub fn announce(&mut self, monitor: &Monitor) -> Option<(Announced, String)> {
        let (action, version) = self.owed(monitor)?;
        let held = self.holds(monitor.connection_id());
        Some(self.tell(monitor, action, version, held))
    }

    fn tell(
        &mut self,
        monitor: &Monitor,
        action: MonitorAction,
        version: u64,
        held: bool,
    ) -> (Announced, String) {
        let (message_id, payload) = monitors_payload(monitor, action, version);
        let announced = self.with_shapes(Announced {
            connection_id: monitor.connection_id().to_string(),
            version,
            message_id,
            record: monitor.record.clone(),
            action,
            acknowledged: false,
            held,
            shapes: Vec::new(),
        });
        self.told
            .insert(announced.connection_id.clone(), announced.clone());
        (announced, payload)
    }

    /// What the store says of a monitor, written by this run or an earlier
    /// one; an older record than one known is old news.
    pub fn learn(&mut self, announced: &Announced) {
        if !announced.shapes.is_empty() {
            let id = announced.connection_id.clone();
            merged(self.shapes.entry(id).or_default(), &announced.shapes);
        }
        let newer = self
            .known
            .get(&announced.connection_id)
            .is_none_or(|known| announced.supersedes(known));
        if newer {
            self.known
                .insert(announced.connection_id.clone(), announced.clone());
        }
    }

    /// RESET acknowledged a monitors message: learnt, and the record the
    /// store is to keep, if any. A message of this run sent since is the
    /// monitor's latest: its record is kept instead, now that RESET is
    /// known to hold the monitor (once).
    pub fn acknowledged(&mut self, announced: &Announced) -> Option<Announced> {
        self.learn(announced);
        let id = &announced.connection_id;
        if let Some(later) = self
            .told
            .get_mut(id)
            .filter(|t| t.version > announced.version)
        {
            let stored = (!later.held).then(|| {
                later.held = true;
                later.clone()
            });
            return stored.map(|a| self.with_shapes(a));
        }
        let later_known = self.known[id].version > announced.version;
        (!later_known).then(|| self.with_shapes(announced.clone()))
    }

    /// RESET refused to create the monitor: it holds it although nothing
    /// said so. Its description is sent as `modify`, at the next version.
    pub fn refused_create(&mut self, monitor: &Monitor) -> (Announced, String) {
        let version = self
            .latest(monitor.connection_id())
            .map_or(0, |(last, _)| last.version)
            + 1;
        self.tell(monitor, MonitorAction::Modify, version, true)
    }
}

/// Writes one emission as a line, as `aggregate` and a replay dry run do: `{"event": ..., "payload": ...}`.
pub fn write_emission_line(
    out: &mut dyn std::io::Write,
    event: EventName,
    payload: &str,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{{\"event\":\"{}\",\"payload\":{payload}}}",
        event.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn monitor(label: &str) -> Monitor {
        monitor_in("UTC", label)
    }

    fn monitor_in(zone: &str, label: &str) -> Monitor {
        let yaml = format!("monitors:\n  - {{connection_id: A, module: air, timezone: {zone},{label} monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {{co2: ppm}}}}\n");
        Registry::parse(&yaml, "m.yaml").unwrap().get(0).clone()
    }

    /// Tells RESET what is owed for `m` and returns the message id.
    fn announce(a: &mut Announcements, m: &Monitor) -> Option<String> {
        a.announce(m).map(|(announced, _)| announced.message_id)
    }

    /// The store's record of a message.
    fn stored(
        m: &Monitor,
        action: MonitorAction,
        version: u64,
        acknowledged: bool,
        held: bool,
    ) -> Announced {
        Announced {
            connection_id: "A".into(),
            version,
            message_id: monitors_payload(m, action, version).0,
            record: m.record.clone(),
            action,
            acknowledged,
            held,
            shapes: Vec::new(),
        }
    }

    fn acknowledged(m: &Monitor, version: u64) -> Announced {
        let action = if version == 1 {
            MonitorAction::Create
        } else {
            MonitorAction::Modify
        };
        stored(m, action, version, true, version > 1)
    }

    /// `monitors_payload` as it was first written, through a tree of JSON
    /// values: the bytes the direct writer must reproduce.
    fn monitors_payload_through_values(
        monitor: &Monitor,
        action: MonitorAction,
        version: u64,
    ) -> (String, String) {
        use serde_json::{json, Value};
        let r = &monitor.record;
        let mut data = serde_json::Map::new();
        if let Some(label) = &r.label {
            data.insert("label".into(), json!(label));
        }
        data.insert("connection_id".into(), json!(r.connection_id));
        if action == MonitorAction::Create {
            data.insert("module".into(), json!(monitor.module.name()));
        }
        let mut detail = serde_json::Map::new();
        detail.insert("monitor_brand".into(), json!(r.monitor_brand));
        detail.insert("monitor_sku".into(), json!(r.monitor_sku));
        detail.insert("monitor_serial_id".into(), json!(r.monitor_serial_id));
        if let Some(date) = &r.last_monitor_calibration_date {
            detail.insert("last_monitor_calibration_date".into(), json!(date));
        }
        let included: serde_json::Map<String, Value> = monitor
            .declared
            .iter()
            .map(|(p, u)| (p.name().to_string(), json!({ "unit": u.name() })))
            .collect();
        data.insert(
            "meta".into(),
            json!({ "monitor_detail": detail, "included_parameters": included }),
        );
        if monitor.module.has_channels() {
            data.insert(
                "channels".into(),
                serde_json::to_value(&r.channels).unwrap(),
            );
        }
        let data = Value::Object(data).to_string();
        let verb = serde_json::to_value(action).unwrap();
        let verb = verb.as_str().unwrap();
        let mut hasher = Sha256::new();
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(data.as_bytes());
        let hex: String = hasher.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let message_id = format!("rp_monitor_{}_{verb}_v{version}_{hex}", r.connection_id);
        let payload = json!({ "message_type": verb, "message_id": message_id, "data": "DATA" })
            .to_string()
            .replace("\"DATA\"", &data);
        (message_id, payload)
    }

    #[test]
    fn monitors_payloads_are_the_bytes_the_tree_of_values_made() {
        let examples = Registry::parse(
            include_str!("../examples/monitors.yaml"),
            "examples/monitors.yaml",
        )
        .unwrap();
        let odd = "a \"quoted\" \\ label\n\u{7}, \u{e9}t\u{e9} \u{1F600} </script>";
        let mut checked = 0;
        for (_, example) in examples.iter() {
            for variant in 0..4 {
                let mut record = (*example.record).clone();
                if variant & 1 == 1 {
                    record.label = record.label.map_or(Some(odd.into()), |_| None);
                    record.monitor_brand = odd.into();
                    for c in &mut record.channels {
                        c.channel_label = Some(odd.into());
                    }
                }
                if variant & 2 == 2 {
                    record.last_monitor_calibration_date =
                        match record.last_monitor_calibration_date {
                            Some(_) => None,
                            None => Some("2024-02-29T12:00:00.000+05:45".into()),
                        };
                }
                let monitor = Monitor::from_record(record, &"test").unwrap();
                for action in [MonitorAction::Create, MonitorAction::Modify] {
                    for version in [1, 2, 17] {
                        assert_eq!(
                            monitors_payload(&monitor, action, version),
                            monitors_payload_through_values(&monitor, action, version),
                            "{action:?} v{version} of {:?}",
                            monitor.record
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 5 * 4 * 2 * 3);
    }

    fn kept(until: i64, m: &Monitor) -> KeptShape {
        KeptShape {
            until,
            record: m.record.clone(),
        }
    }

    #[test]
    fn earlier_shapes_ride_in_every_record_written_and_outlive_a_restart() {
        let (utc, kathmandu) = (monitor(""), monitor_in("Asia/Kathmandu", ""));
        let mut a = Announcements::default();
        let (create, _) = a.announce(&utc).unwrap();
        // Kept while the create is on its way: the store rewrites its record.
        let rewritten = a.keep_shape("A", kept(10, &utc)).unwrap();
        assert_eq!(rewritten.message_id, create.message_id);
        assert_eq!(rewritten.shapes, [kept(10, &utc)]);
        // Its acknowledgement, written later, still carries the shape.
        let mut answered = create.clone();
        answered.acknowledged = true;
        let written = a.acknowledged(&answered).unwrap();
        assert_eq!(written.shapes, [kept(10, &utc)]);
        // So does the next description's message, and a restart learns it.
        let (modify, _) = a.announce(&kathmandu).unwrap();
        assert_eq!(modify.shapes, [kept(10, &utc)]);
        let mut restarted = Announcements::default();
        restarted.learn(&modify);
        assert_eq!(restarted.shapes("A"), [kept(10, &utc)]);
        assert_eq!(restarted.last_record("A"), Some(&*kathmandu.record));
        // The newest KEPT_SHAPES are kept.
        for until in 11..30 {
            restarted.keep_shape("A", kept(until, &utc));
        }
        let untils: Vec<i64> = restarted.shapes("A").iter().map(|k| k.until).collect();
        assert_eq!(untils, (30 - KEPT_SHAPES as i64..30).collect::<Vec<_>>());
    }

    #[test]
    fn readings_of_an_earlier_shape_follow_its_own_description_or_nothing() {
        let (utc, kathmandu) = (monitor(""), monitor_in("Asia/Kathmandu", ""));
        // Nothing told yet: the earlier description is created.
        let mut a = Announcements::default();
        let (create, _) = a.announce_earlier(&utc).unwrap();
        assert_eq!(
            (create.action, &create.record),
            (MonitorAction::Create, &utc.record)
        );
        assert_eq!(a.announce_earlier(&utc), None, "told once");
        // A later description told: nothing goes back.
        a.announce(&kathmandu).unwrap();
        assert_eq!(a.announce_earlier(&utc), None);
        // Sent by an earlier run and never answered: the same message again.
        let mut restarted = Announcements::default();
        restarted.learn(&stored(&utc, MonitorAction::Create, 1, false, false));
        let again = restarted.announce_earlier(&utc).unwrap().0;
        assert_eq!(again.message_id, create.message_id);
    }

    #[test]
    fn a_change_back_to_an_earlier_description_is_a_message_of_its_own() {
        let (a, b) = (monitor(""), monitor(" label: Hall,"));
        let mut told = Announcements::default();
        let ids: Vec<String> = [&a, &b, &a]
            .into_iter()
            .map(|m| announce(&mut told, m).unwrap())
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(ids[0].starts_with("rp_monitor_A_create_v1_"), "{ids:?}");
        assert!(ids[1].starts_with("rp_monitor_A_modify_v2_"), "{ids:?}");
        assert!(ids[2].starts_with("rp_monitor_A_modify_v3_"), "{ids:?}");
        assert_ne!(ids[0], ids[2]);
        assert_eq!(announce(&mut told, &a), None, "nothing new");
    }

    #[test]
    fn after_a_restart_only_what_reset_does_not_hold_is_sent() {
        let (a, b) = (monitor(""), monitor(" label: Hall,"));
        // The store says RESET acknowledged A at version 1.
        let mut restarted = Announcements::default();
        restarted.learn(&acknowledged(&a, 1));
        assert_eq!(
            announce(&mut restarted.clone(), &a),
            None,
            "no create again"
        );
        // B was sent before the crash, its ack not stored: the same id again.
        let mut before_crash = Announcements::default();
        before_crash.learn(&acknowledged(&a, 1));
        let sent = announce(&mut before_crash, &b).unwrap();
        assert_eq!(announce(&mut restarted, &b).unwrap(), sent);
        // A lower version learnt later (an old record of the store) changes nothing.
        let mut a2 = Announcements::default();
        a2.learn(&acknowledged(&b, 2));
        a2.learn(&acknowledged(&a, 1));
        assert_eq!(a2.owed(&b), None);
    }

    #[test]
    fn a_refused_create_is_followed_by_a_modify_of_the_next_version() {
        let a = monitor("");
        let mut told = Announcements::default();
        announce(&mut told, &a).unwrap();
        let (modify, _) = told.refused_create(&a);
        assert_eq!(
            (modify.action, modify.version, modify.held),
            (MonitorAction::Modify, 2, true)
        );
        assert_eq!(told.owed(&a), None);
    }

    #[test]
    fn a_description_sent_and_never_answered_is_sent_again_or_followed_by_a_change() {
        let (a, b) = (monitor(""), monitor(" label: Hall,"));
        let (create, modify) = (MonitorAction::Create, MonitorAction::Modify);
        // The store: A acknowledged at 1, then B sent at 2, its answer never
        // stored. Compaction may leave only the last record.
        let mut restarted = Announcements::default();
        restarted.learn(&stored(&b, modify, 2, false, true));
        // The registry still says B: the same message again, once.
        let mut still_b = restarted.clone();
        assert_eq!(
            announce(&mut still_b, &b),
            Some(stored(&b, modify, 2, false, true).message_id)
        );
        assert_eq!(still_b.owed(&b), None);
        // The registry went back to A: RESET may hold B, so A is a change.
        assert_eq!(restarted.owed(&a), Some((modify, 3)));
        // An older record read after it changes nothing.
        restarted.learn(&acknowledged(&a, 1));
        assert_eq!(restarted.owed(&a), Some((modify, 3)));
        // A create never answered stays a create (refused if RESET holds it).
        let mut created = Announcements::default();
        created.learn(&stored(&a, create, 1, false, false));
        assert_eq!(created.owed(&a), Some((create, 1)));
        assert_eq!(created.owed(&b), Some((create, 2)));
        // Its acknowledgement, stored after the sent record, settles it.
        created.learn(&stored(&a, create, 1, true, false));
        created.learn(&stored(&a, create, 1, false, false));
        assert_eq!(created.owed(&a), None);
        // A modify sent right after a create nobody answered: RESET may
        // hold neither, so the next message after a restart is a create.
        let mut unsure = Announcements::default();
        unsure.learn(&stored(&b, modify, 2, false, false));
        assert_eq!(unsure.owed(&b), Some((create, 3)));
        assert_eq!(unsure.owed(&a), Some((create, 3)));
    }

    #[test]
    fn an_acknowledgement_overtaken_by_a_later_change_marks_that_change_held() {
        let (a, b) = (monitor(""), monitor(" label: Hall,"));
        let mut told = Announcements::default();
        let (first, _) = told.announce(&a).unwrap();
        let (second, _) = told.announce(&b).unwrap();
        assert!(!second.held, "the create was not answered yet");
        // A's answer arrives after B was sent: the store keeps B's record,
        // now known to be held, once.
        let ack = Announced {
            acknowledged: true,
            ..first
        };
        let kept = told.acknowledged(&ack).unwrap();
        assert_eq!(
            (kept.version, kept.acknowledged, kept.held),
            (2, false, true)
        );
        assert_eq!(told.acknowledged(&ack), None);
        let ack = Announced {
            acknowledged: true,
            ..second
        };
        assert_eq!(told.acknowledged(&ack), Some(ack.clone()));
        assert_eq!(told.owed(&b), None);
    }
}
