//! The `json` input form: the Avro schema's fields as a JSON object, with
//! `event_time` as RFC 3339 text or epoch milliseconds.

use super::DecodeError;
use crate::event::{format_utc_millis, Measurement, SampleValue, SensorEvent};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

#[derive(Deserialize)]
struct JsonEvent<'a> {
    #[serde(borrow)]
    connection_id: Cow<'a, str>,
    event_time: EventTime,
    #[serde(default, borrow)]
    channel_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    measurements: Vec<JsonMeasurement<'a>>,
    #[serde(default)]
    bin_emptied: bool,
}

#[derive(Deserialize)]
struct JsonMeasurement<'a> {
    #[serde(borrow)]
    parameter: Cow<'a, str>,
    #[serde(default = "null_value")]
    value: SampleValue,
    #[serde(default, borrow)]
    unit: Option<Cow<'a, str>>,
}

fn null_value() -> SampleValue {
    SampleValue::Null
}

/// Decodes one JSON event. A number too large for a double (`1e400`) is
/// a sample that is not finite, not a broken record: the text is read
/// again with such numbers marked, and the sample is rejected alone.
pub fn decode_json(bytes: &[u8]) -> Result<SensorEvent, DecodeError> {
    match decode_parsed(bytes) {
        Err(DecodeError::InvalidJson(why)) if why.starts_with("number out of range") => {
            decode_parsed(&mark_overflowing_numbers(bytes))
        }
        decoded => decoded,
    }
}

/// Stands in, as a JSON string, for a number too large for a double: as
/// decoded, and as written in the JSON text.
const OVERFLOW: &str = "\u{0}number beyond a double:";
const OVERFLOW_JSON: &str = "\\u0000number beyond a double:";

/// The JSON text with every number a double cannot hold written as a
/// string marked `OVERFLOW` (outside strings; the rest byte for byte).
fn mark_overflowing_numbers(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 32);
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            match b {
                b'\\' if i + 1 < bytes.len() => {
                    out.push(bytes[i + 1]);
                    i += 1;
                }
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                i += 1;
            }
            let token = &bytes[start..i];
            let overflows = std::str::from_utf8(token)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(f64::is_infinite);
            if overflows {
                out.push(b'"');
                out.extend_from_slice(OVERFLOW_JSON.as_bytes());
                out.extend_from_slice(token);
                out.push(b'"');
            } else {
                out.extend_from_slice(token);
            }
            continue;
        }
        in_string = b == b'"';
        out.push(b);
        i += 1;
    }
    out
}

fn decode_parsed(bytes: &[u8]) -> Result<SensorEvent, DecodeError> {
    let parsed: JsonEvent =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    Ok(SensorEvent {
        connection_id: parsed.connection_id.into_owned(),
        event_time: parsed.event_time.0,
        channel_id: parsed.channel_id.map(Cow::into_owned),
        measurements: parsed
            .measurements
            .into_iter()
            .map(|m| Measurement {
                parameter: m.parameter.into_owned(),
                value: m.value,
                unit: m.unit.map(Cow::into_owned),
            })
            .collect(),
        bin_emptied: parsed.bin_emptied,
    })
}

/// Encodes an event as one JSON line (without the newline); times as RFC 3339.
pub fn encode_json(event: &SensorEvent) -> String {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        connection_id: &'a str,
        event_time: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        channel_id: Option<&'a str>,
        measurements: &'a [Measurement],
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        bin_emptied: bool,
    }
    serde_json::to_string(&Out {
        connection_id: &event.connection_id,
        event_time: format_utc_millis(event.event_time),
        channel_id: event.channel_id.as_deref(),
        measurements: &event.measurements,
        bin_emptied: event.bin_emptied,
    })
    .expect("an event always serializes")
}

struct EventTime(i64);

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 time or epoch milliseconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventTime, E> {
                Ok(EventTime(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventTime, E> {
                i64::try_from(v)
                    .map(EventTime)
                    .map_err(|_| E::custom(format!("event_time {v} is out of range")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventTime, E> {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| EventTime(t.timestamp_millis()))
                    .map_err(|e| E::custom(format!("event_time {v:?} is not RFC 3339: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for SampleValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SampleValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or null")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SampleValue, E> {
                Ok(SampleValue::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SampleValue, E> {
                Ok(SampleValue::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SampleValue, E> {
                Ok(SampleValue::Number(v as f64))
            }
            fn visit_unit<E: de::Error>(self) -> Result<SampleValue, E> {
                Ok(SampleValue::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<SampleValue, E> {
                Ok(SampleValue::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<SampleValue, E> {
                Ok(SampleValue::Invalid(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SampleValue, E> {
                if let Some(number) = v.strip_prefix(OVERFLOW) {
                    let sign = if number.starts_with('-') { -1.0 } else { 1.0 };
                    return Ok(SampleValue::Number(sign * f64::INFINITY));
                }
                Ok(SampleValue::Invalid(v.chars().take(64).collect()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<SampleValue, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(SampleValue::Invalid("an array".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<SampleValue, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(SampleValue::Invalid("an object".into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_numbers_beyond_a_double_outside_strings_are_marked() {
        let text = br#"{"a":"1e400 \" 2e999","b":1e400,"c":-1e309,"d":1.5e300,"e":[7,-0.5]}"#;
        let marked = String::from_utf8(mark_overflowing_numbers(text)).unwrap();
        assert_eq!(
            marked,
            r#"{"a":"1e400 \" 2e999","b":"\u0000number beyond a double:1e400","c":"\u0000number beyond a double:-1e309","d":1.5e300,"e":[7,-0.5]}"#
        );
    }

    use super::*;

    #[test]
    fn decodes_both_time_forms_and_keeps_bad_values_per_sample() {
        let line = br#"{"connection_id":"A","event_time":"2026-03-15T08:00:00+08:00","measurements":[{"parameter":"co2","value":450},{"parameter":"rh","value":"high"},{"parameter":"temp","value":null,"unit":"C"}]}"#;
        let e = decode_json(line).unwrap();
        assert_eq!(e.event_time, 1_773_532_800_000);
        assert_eq!(e.measurements[0].value, SampleValue::Number(450.0));
        assert_eq!(e.measurements[1].value, SampleValue::Invalid("high".into()));
        assert_eq!(e.measurements[2].value, SampleValue::Null);
        assert_eq!(e.measurements[2].unit.as_deref(), Some("C"));
        let e2 = decode_json(
            br#"{"connection_id":"A","event_time":1773532800000,"measurements":[],"channel_id":"c1","bin_emptied":true}"#,
        )
        .unwrap();
        assert_eq!(e2.event_time, e.event_time);
        assert_eq!(e2.channel_id.as_deref(), Some("c1"));
        assert!(e2.bin_emptied);
    }

    #[test]
    fn round_trips_through_encode() {
        let e = decode_json(br#"{"connection_id":"A","event_time":1773532800123,"channel_id":"c","measurements":[{"parameter":"bin_weight","value":2.5,"unit":"kg"}],"bin_emptied":true}"#).unwrap();
        assert_eq!(decode_json(encode_json(&e).as_bytes()).unwrap(), e);
    }

    #[test]
    fn malformed_events_say_why() {
        for (line, expect) in [
            (
                &br#"{"event_time":1,"measurements":[]}"#[..],
                "missing field `connection_id`",
            ),
            (
                br#"{"connection_id":"A","event_time":"yesterday","measurements":[]}"#,
                "not RFC 3339",
            ),
            (
                br#"{"connection_id":"A","event_time":1,"measurements":[{"value":1}]}"#,
                "missing field `parameter`",
            ),
            (br#"{"connection_id":"A""#, "EOF"),
            (b"\xff\xfe", "expected value"),
        ] {
            let e = decode_json(line).unwrap_err().to_string();
            assert!(e.contains(expect), "{e} should contain {expect}");
        }
    }
}
