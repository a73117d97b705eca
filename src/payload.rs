//! The exact JSON RESET receives: `readings` rows from closed windows,
//! `monitors` create/modify messages, and deterministic message ids.

use crate::registry::{Monitor, MonitorId, MonitorRecord};
use crate::window::{reading_time, ClosedWindow, SlotValue};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

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
    ids: &'a [String],
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
        for (id, value) in self.ids.iter().zip(self.values) {
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
    bytes[..12].iter().map(|b| format!("{b:02x}")).collect()
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorAction {
    Create,
    Modify,
}

/// The `monitors` payload (create or modify) and its message id.
pub fn monitors_payload(monitor: &Monitor, action: MonitorAction) -> (String, String) {
    let r = &monitor.record;
    let mut data = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        data.insert(k.to_string(), v);
    };
    use serde_json::{json, Value};
    if let Some(label) = &r.label {
        put("label", json!(label));
    }
    put("connection_id", json!(r.connection_id));
    if action == MonitorAction::Create {
        put("module", json!(monitor.module.name()));
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
    put(
        "meta",
        json!({ "monitor_detail": detail, "included_parameters": included }),
    );
    if monitor.module.has_channels() {
        put(
            "channels",
            serde_json::to_value(&r.channels).expect("channels"),
        );
    }
    let data = Value::Object(data).to_string();
    let verb = match action {
        MonitorAction::Create => "create",
        MonitorAction::Modify => "modify",
    };
    let message_id = format!("rp_monitor_{}_{verb}_{}", r.connection_id, digest(&[&data]));
    let payload = format!(
        "{{\"message_type\":\"{verb}\",\"message_id\":{},\"data\":{data}}}",
        serde_json::to_string(&message_id).expect("string")
    );
    (message_id, payload)
}

/// Remembers which monitor records RESET has been told about, to send
/// `create` before a monitor's first readings and `modify` when its record changes.
#[derive(Debug, Default, Clone)]
pub struct Announcements {
    told: HashMap<MonitorId, MonitorRecord>,
}

impl Announcements {
    /// The monitors message owed before this monitor's next readings, if any.
    pub fn owed(&self, id: MonitorId, monitor: &Monitor) -> Option<MonitorAction> {
        match self.told.get(&id) {
            None => Some(MonitorAction::Create),
            Some(told) if *told != monitor.record => Some(MonitorAction::Modify),
            Some(_) => None,
        }
    }

    /// Records that RESET now knows this monitor as it is.
    pub fn told(&mut self, id: MonitorId, monitor: &Monitor) {
        self.told.insert(id, monitor.record.clone());
    }
}

/// Formats one emission as `aggregate` writes it: `{"event": ..., "payload": ...}`.
pub fn emission_line(event: EventName, payload: &str) -> String {
    format!("{{\"event\":\"{}\",\"payload\":{payload}}}", event.as_str())
}
