//! RESET's rules for `monitors` and `readings` messages, as strict as the
//! API v2.1 document: pure checks that return the reason a message is refused.

use super::vocabulary::{self, ModuleRule};
use chrono::{DateTime, FixedOffset, Timelike};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// What RESET knows of a created monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownMonitor {
    pub module: &'static ModuleRule,
    pub channels: Vec<String>,
    pub data: Value,
}

/// A `monitors` message that passed the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorChange {
    pub connection_id: String,
    pub monitor: KnownMonitor,
}

/// A `readings` message that passed the rules: its rows, with their instants.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedReadings {
    pub connection_id: String,
    pub rows: Vec<(i64, Value)>,
}

type Check<T> = Result<T, String>;

fn object<'a>(v: &'a Value, what: &str) -> Check<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("{what} must be an object"))
}

fn text<'a>(m: &'a Map<String, Value>, key: &str, what: &str) -> Check<&'a str> {
    match m.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(format!("{what}.{key} must be a non-empty string")),
        None => Err(format!("{what}.{key} is required")),
    }
}

/// The `message_id` of a message, for `ack` and `errors` replies.
pub fn message_id(payload: &Value) -> Option<String> {
    payload.get("message_id")?.as_str().map(str::to_string)
}

/// Checks a `monitors` message against the monitors created so far.
pub fn check_monitors(
    payload: &Value,
    known: &HashMap<String, KnownMonitor>,
) -> Check<MonitorChange> {
    let p = object(payload, "message")?;
    text(p, "message_id", "message")?;
    let data = object(p.get("data").ok_or("data is required")?, "data")?;
    let connection_id = text(data, "connection_id", "data")?.to_string();
    let module = match text(p, "message_type", "message")? {
        "create" => {
            if known.contains_key(&connection_id) {
                return Err(format!(
                    "monitor {connection_id:?} already exists: use modify"
                ));
            }
            let name = text(data, "module", "data")?;
            vocabulary::module(&name.to_lowercase()).ok_or_else(|| {
                format!("data.module {name:?} is not air, water, energy or circularity")
            })?
        }
        "modify" => {
            if data.contains_key("module") {
                return Err("data.module is not allowed in modify".into());
            }
            known
                .get(&connection_id)
                .ok_or_else(|| {
                    format!("monitor {connection_id:?} does not exist: create it first")
                })?
                .module
        }
        other => return Err(format!("message_type {other:?} is not create or modify")),
    };
    if let Some(label) = data.get("label") {
        if !label.is_string() {
            return Err("data.label must be a string".into());
        }
    }
    let meta = object(
        data.get("meta").ok_or("data.meta is required")?,
        "data.meta",
    )?;
    let detail = object(
        meta.get("monitor_detail")
            .ok_or("data.meta.monitor_detail is required")?,
        "data.meta.monitor_detail",
    )?;
    for key in ["monitor_brand", "monitor_sku", "monitor_serial_id"] {
        text(detail, key, "data.meta.monitor_detail")?;
    }
    if let Some(date) = detail.get("last_monitor_calibration_date") {
        let date = date
            .as_str()
            .ok_or("last_monitor_calibration_date must be a string")?;
        parse_iso(date).map_err(|e| format!("last_monitor_calibration_date: {e}"))?;
    }
    check_included_parameters(meta, module)?;
    let channels = check_channels(data, module)?;
    Ok(MonitorChange {
        connection_id,
        monitor: KnownMonitor {
            module,
            channels,
            data: Value::Object(data.clone()),
        },
    })
}

fn check_included_parameters(meta: &Map<String, Value>, module: &ModuleRule) -> Check<()> {
    let included = object(
        meta.get("included_parameters")
            .ok_or("data.meta.included_parameters is required")?,
        "data.meta.included_parameters",
    )?;
    let m = module.name;
    for (name, spec) in included {
        let parameter = module.parameter(name).ok_or_else(|| {
            format!("included_parameters.{name} is not a parameter of the {m} module")
        })?;
        let unit = spec
            .get("unit")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("included_parameters.{name}.unit is required"))?;
        if !parameter.units.contains(&unit) {
            return Err(format!(
                "included_parameters.{name}.unit {unit:?} is not available"
            ));
        }
    }
    for parameter in module.parameters.iter().filter(|p| p.required_in_monitor) {
        if !included.contains_key(parameter.name) {
            return Err(format!(
                "included_parameters.{} is required for {m}",
                parameter.name
            ));
        }
    }
    Ok(())
}

fn check_channels(data: &Map<String, Value>, module: &ModuleRule) -> Check<Vec<String>> {
    let Some(channels) = data.get("channels") else {
        if module.channels {
            return Err(format!("data.channels is required for {}", module.name));
        }
        return Ok(Vec::new());
    };
    if !module.channels {
        return Err("data.channels must not be included for air".into());
    }
    let list = channels
        .as_array()
        .ok_or("data.channels must be an array")?;
    if list.is_empty() {
        return Err("data.channels needs at least one channel".into());
    }
    let mut ids = Vec::new();
    for c in list {
        let c = object(c, "channel")?;
        let id = text(c, "channel_id", "channel")?;
        if ids.iter().any(|i| i == id) {
            return Err(format!("channel_id {id:?} is not unique"));
        }
        if let Some(label) = c.get("channel_label") {
            if !label.is_string() {
                return Err("channel_label must be a string".into());
            }
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// `yyyy-mm-ddThh:mm:ss[.mmm]±hh:mm`, offset required.
fn parse_iso(s: &str) -> Check<DateTime<FixedOffset>> {
    if s.ends_with('Z') || s.ends_with('z') {
        return Err(format!("{s:?} must carry a ±hh:mm offset"));
    }
    DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{s:?} is not yyyy-mm-ddThh:mm:ss[.mmm]±hh:mm: {e}"))
}

/// A reading value: a number, or null / "" / "None" for no data.
fn check_value(v: &Value, what: &str) -> Check<()> {
    match v {
        Value::Number(_) | Value::Null => Ok(()),
        // "NaN" and "inf" parse as floats, but they are no reading.
        Value::String(s)
            if s.is_empty() || s == "None" || s.parse::<f64>().is_ok_and(f64::is_finite) =>
        {
            Ok(())
        }
        other => Err(format!("{what} {other} is not a number")),
    }
}

/// Checks a `readings` message against the monitors created so far.
pub fn check_readings(
    payload: &Value,
    known: &HashMap<String, KnownMonitor>,
) -> Check<AcceptedReadings> {
    let p = object(payload, "message")?;
    text(p, "message_id", "message")?;
    let data = object(p.get("data").ok_or("data is required")?, "data")?;
    let connection_id = text(data, "connection_id", "data")?;
    let monitor = known
        .get(connection_id)
        .ok_or_else(|| format!("monitor {connection_id:?} does not exist: create it first"))?;
    let readings = data
        .get("readings")
        .and_then(Value::as_array)
        .ok_or("data.readings must be an array")?;
    if readings.is_empty() || readings.len() > 48 {
        return Err(format!(
            "data.readings holds {} readings: 1 to 48 allowed",
            readings.len()
        ));
    }
    let mut rows = Vec::with_capacity(readings.len());
    let mut seen = HashSet::new();
    for (i, r) in readings.iter().enumerate() {
        let what = format!("readings[{i}]");
        let r = object(r, &what)?;
        if text(r, "connection_id", &what)? != connection_id {
            return Err(format!(
                "{what}.connection_id differs from data.connection_id"
            ));
        }
        let time = parse_iso(text(r, "reading_time", &what)?)
            .map_err(|e| format!("{what}.reading_time: {e}"))?;
        if !(time.minute() % 30 == 0 && time.second() == 0 && time.nanosecond() == 0) {
            return Err(format!(
                "{what}.reading_time {time} is not on a local :00 or :30"
            ));
        }
        let instant = time.timestamp_millis();
        if !seen.insert(instant) {
            return Err(format!("{what}.reading_time {time} appears twice"));
        }
        check_reading_values(r, monitor, &what)?;
        rows.push((instant, Value::Object(r.clone())));
    }
    Ok(AcceptedReadings {
        connection_id: connection_id.to_string(),
        rows,
    })
}

fn check_reading_values(r: &Map<String, Value>, monitor: &KnownMonitor, what: &str) -> Check<()> {
    let module = monitor.module;
    let m = module.name;
    for p in module.parameters.iter().filter(|p| p.required_in_reading) {
        if !r.contains_key(p.name) {
            return Err(format!("{what}.{} is required for {m}", p.name));
        }
    }
    for (key, value) in r {
        if key == "connection_id" || key == "reading_time" {
            continue;
        }
        let parameter = module
            .parameter(key)
            .ok_or_else(|| format!("{what}.{key} is not a parameter of the {m} module"))?;
        let field = format!("{what}.{}", parameter.name);
        if !module.channels {
            check_value(value, &field)?;
            continue;
        }
        let entries = value
            .as_array()
            .ok_or_else(|| format!("{field} must be an array"))?;
        for e in entries {
            let e = object(e, &field)?;
            let channel = text(e, "channel_id", &field)?;
            if !monitor.channels.iter().any(|c| c == channel) {
                return Err(format!(
                    "{field}: channel {channel:?} is not a channel of this monitor"
                ));
            }
            check_value(
                e.get("reading")
                    .ok_or_else(|| format!("{field}.reading is required"))?,
                &field,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create_air() -> Value {
        json!({"message_type": "create", "message_id": "m1", "data": {
            "connection_id": "A", "module": "air",
            "meta": {"monitor_detail": {"monitor_brand": "B", "monitor_sku": "S", "monitor_serial_id": "1"},
                     "included_parameters": {"pm2p5": {"unit": "ug/m3"}}}}})
    }

    fn known_air() -> HashMap<String, KnownMonitor> {
        let change = check_monitors(&create_air(), &HashMap::new()).unwrap();
        HashMap::from([(change.connection_id, change.monitor)])
    }

    fn reading(time: &str) -> Value {
        json!({"message_id": "r1", "data": {"connection_id": "A", "readings": [
            {"connection_id": "A", "reading_time": time, "pm2p5": 1, "tvoc": null, "co2": "", "temp": "None", "rh": "50"}]}})
    }

    #[test]
    fn the_documented_shapes_pass() {
        assert!(check_readings(&reading("2017-03-15T15:00:00.000+08:00"), &known_air()).is_ok());
        assert!(check_readings(&reading("2026-03-15T13:30:00+05:45"), &known_air()).is_ok());
    }

    #[test]
    fn each_broken_rule_is_named() {
        let k = known_air();
        let err = |p: Value| check_readings(&p, &k).unwrap_err();
        assert!(err(reading("2017-03-15T15:10:00.000+08:00")).contains("not on a local :00 or :30"));
        assert!(err(reading("2017-03-15T15:00:00.000Z")).contains("±hh:mm offset"));
        let mut p = reading("2017-03-15T15:00:00.000+08:00");
        p["data"]["readings"][0]
            .as_object_mut()
            .unwrap()
            .remove("rh");
        assert!(err(p).contains("readings[0].rh is required for air"));
        let mut p = reading("2017-03-15T15:00:00.000+08:00");
        p["data"]["connection_id"] = json!("B");
        assert!(err(p).contains("does not exist"));
        let mut p = reading("2017-03-15T15:00:00.000+08:00");
        let row = p["data"]["readings"][0].clone();
        p["data"]["readings"] = Value::Array(vec![row; 49]);
        assert!(err(p).contains("49 readings"));
        for not_a_value in ["lots", "NaN", "inf", "-inf", "infinity"] {
            let mut p = reading("2017-03-15T15:00:00.000+08:00");
            p["data"]["readings"][0]["co2"] = json!(not_a_value);
            assert!(err(p).contains("is not a number"), "{not_a_value}");
        }
        assert!(check_monitors(&create_air(), &k)
            .unwrap_err()
            .contains("already exists"));
        let mut c = create_air();
        c["data"]["channels"] = json!([{"channel_id": "c1"}]);
        assert!(check_monitors(&c, &HashMap::new())
            .unwrap_err()
            .contains("must not be included for air"));
    }
}
