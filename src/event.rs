//! A raw sensor event as decoded from Kafka or a JSON-lines file.

use serde::Serialize;

/// One device sample: several measurements taken at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SensorEvent {
    pub connection_id: String,
    /// Epoch milliseconds (UTC).
    pub event_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    pub measurements: Vec<Measurement>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bin_emptied: bool,
}

/// An event decoded over and over, its allocations reused. Measurements
/// beyond one event's count are set aside, strings and all, for a later
/// event with more: a fleet's monitors report different numbers of
/// parameters, and dropping and allocating them again for every record
/// cost about a sixth of the live loop's time.
#[derive(Debug, Default)]
pub struct ReusedEvent {
    pub event: SensorEvent,
    spare: Vec<Measurement>,
}

impl ReusedEvent {
    /// The event's `i`th measurement; at `i == len` one more, taken from
    /// those set aside. It holds whatever it held: the decoder sets every field.
    pub fn measurement(&mut self, i: usize) -> &mut Measurement {
        let measurements = &mut self.event.measurements;
        if i == measurements.len() {
            let reused = self.spare.pop();
            measurements.push(reused.unwrap_or_else(|| Measurement::new("", None, None)));
        }
        &mut measurements[i]
    }

    /// Keeps the first `count` measurements and sets the rest aside.
    pub fn keep(&mut self, count: usize) {
        let measurements = &mut self.event.measurements;
        while measurements.len() > count {
            self.spare.extend(measurements.pop());
        }
    }
}

impl From<SensorEvent> for ReusedEvent {
    fn from(event: SensorEvent) -> ReusedEvent {
        ReusedEvent {
            event,
            spare: Vec::new(),
        }
    }
}

/// One parameter's value in an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    pub parameter: String,
    pub value: SampleValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A measured value. `Invalid` keeps what a text input held where a number belongs,
/// so that one bad sample is rejected without losing the rest of its event.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    Null,
    Number(f64),
    Invalid(String),
}

impl Serialize for SampleValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SampleValue::Null => s.serialize_none(),
            SampleValue::Number(v) if v.is_finite() => s.serialize_f64(*v),
            SampleValue::Number(v) => s.serialize_str(&v.to_string()),
            SampleValue::Invalid(text) => s.serialize_str(text),
        }
    }
}

impl Measurement {
    pub fn new(parameter: &str, value: Option<f64>, unit: Option<&str>) -> Measurement {
        Measurement {
            parameter: parameter.to_string(),
            value: value.map_or(SampleValue::Null, SampleValue::Number),
            unit: unit.map(str::to_string),
        }
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC, for rejects and logs.
pub fn format_utc_millis(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}
