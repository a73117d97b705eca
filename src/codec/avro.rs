//! Avro: the bare datum written with the bundled schema, and Confluent framing
//! (magic byte, 4-byte schema id, datum) with writer-schema resolution.
//!
//! Records written with the bundled schema take a direct decoder; any other
//! writer schema goes through `apache-avro`'s generic decoding and resolution
//! against the bundled reader schema, so compatible evolution just works.

use super::DecodeError;
use crate::event::{Measurement, ReusedEvent, SampleValue, SensorEvent};
use apache_avro::types::Value;
use apache_avro::Schema;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The schema of `schemas/sensor_event.avsc`, compiled in.
pub const BUNDLED_SCHEMA: &str = include_str!("../../schemas/sensor_event.avsc");

fn bundled() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(BUNDLED_SCHEMA).expect("bundled schema is valid"))
}

/// A writer schema known by its registry id.
#[derive(Debug, Clone)]
pub enum WriterSchema {
    /// Identical (in canonical form) to the bundled schema: direct decoding.
    Bundled,
    /// Another schema: generic decoding plus resolution.
    Other(Arc<Schema>),
}

impl WriterSchema {
    /// Parses a writer schema as a registry returns it.
    pub fn parse(text: &str) -> Result<WriterSchema, String> {
        let schema = Schema::parse_str(text).map_err(|e| e.to_string())?;
        if schema.canonical_form() == bundled().canonical_form() {
            Ok(WriterSchema::Bundled)
        } else {
            // Resolution against the reader schema is checked once, here.
            apache_avro::schema_compatibility::SchemaCompatibility::can_read(&schema, bundled())
                .map_err(|e| format!("writer schema cannot be read as SensorEvent: {e}"))?;
            Ok(WriterSchema::Other(Arc::new(schema)))
        }
    }
}

/// Decodes Avro records; knows the writer schemas registered so far.
#[derive(Debug, Clone, Default)]
pub struct AvroCodec {
    schemas: HashMap<u32, WriterSchema>,
}

impl AvroCodec {
    pub fn new() -> AvroCodec {
        AvroCodec::default()
    }

    pub fn register(&mut self, id: u32, schema: WriterSchema) {
        self.schemas.insert(id, schema);
    }

    pub fn knows(&self, id: u32) -> bool {
        self.schemas.contains_key(&id)
    }

    pub fn decode_bare_into(
        &self,
        bytes: &[u8],
        event: &mut ReusedEvent,
    ) -> Result<(), DecodeError> {
        if bytes.is_empty() {
            return Err(DecodeError::Empty);
        }
        decode_direct(bytes, event)
    }

    pub fn decode_confluent_into(
        &self,
        bytes: &[u8],
        event: &mut ReusedEvent,
    ) -> Result<(), DecodeError> {
        let id = confluent_schema_id(bytes)?;
        match self.schemas.get(&id) {
            None => Err(DecodeError::UnknownSchemaId(id)),
            Some(WriterSchema::Bundled) => decode_direct(&bytes[5..], event),
            Some(WriterSchema::Other(schema)) => {
                event.event = decode_generic(schema, &bytes[5..])?;
                Ok(())
            }
        }
    }
}

/// The schema id of a Confluent-framed record.
pub fn confluent_schema_id(bytes: &[u8]) -> Result<u32, DecodeError> {
    match bytes {
        [] => Err(DecodeError::Empty),
        [0, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        [0, ..] => Err(DecodeError::Truncated("Confluent header")),
        [magic, ..] => Err(DecodeError::BadMagic(*magic)),
    }
}

fn decode_generic(schema: &Schema, mut bytes: &[u8]) -> Result<SensorEvent, DecodeError> {
    let value = apache_avro::from_avro_datum(schema, &mut bytes, Some(bundled()))
        .map_err(|e| DecodeError::InvalidAvro(e.to_string()))?;
    if !bytes.is_empty() {
        return Err(DecodeError::TrailingBytes(bytes.len()));
    }
    event_from_value(value).ok_or_else(|| DecodeError::InvalidAvro("unexpected shape".into()))
}

fn event_from_value(value: Value) -> Option<SensorEvent> {
    let Value::Record(fields) = value else {
        return None;
    };
    let mut event = SensorEvent::default();
    for (name, value) in fields {
        match (name.as_str(), unwrap_union(value)) {
            ("connection_id", Value::String(s)) => event.connection_id = s,
            ("event_time", Value::TimestampMillis(t) | Value::Long(t)) => event.event_time = t,
            ("channel_id", Value::String(s)) => event.channel_id = Some(s),
            ("channel_id", Value::Null) => {}
            ("bin_emptied", Value::Boolean(b)) => event.bin_emptied = b,
            ("measurements", Value::Array(items)) => {
                for item in items {
                    event.measurements.push(measurement_from_value(item)?);
                }
            }
            _ => return None,
        }
    }
    Some(event)
}

fn measurement_from_value(value: Value) -> Option<Measurement> {
    let Value::Record(fields) = value else {
        return None;
    };
    let mut m = Measurement {
        parameter: String::new(),
        value: SampleValue::Null,
        unit: None,
    };
    for (name, value) in fields {
        match (name.as_str(), unwrap_union(value)) {
            ("parameter", Value::String(s)) => m.parameter = s,
            ("value", Value::Double(v)) => m.value = SampleValue::Number(v),
            ("value", Value::Null) => {}
            ("unit", Value::String(s)) => m.unit = Some(s),
            ("unit", Value::Null) => {}
            _ => return None,
        }
    }
    Some(m)
}

fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

/// Direct decoding of a datum written with the bundled schema, into
/// `reused`: its strings and measurements are reused, not allocated again.
fn decode_direct(bytes: &[u8], reused: &mut ReusedEvent) -> Result<(), DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let event = &mut reused.event;
    r.string_into("connection_id", &mut event.connection_id)?;
    event.event_time = r.long("event_time")?;
    match r.union_index("channel_id", 2)? {
        0 => event.channel_id = None,
        _ => r.string_into("channel_id", event.channel_id.get_or_insert_default())?,
    }
    let mut taken = 0;
    loop {
        let mut count = r.long("measurements block")?;
        if count == 0 {
            break;
        }
        if count < 0 {
            count = count.checked_neg().ok_or(DecodeError::InvalidAvro(
                "measurements block count overflows".into(),
            ))?;
            r.long("measurements block size")?;
        }
        // Each measurement takes at least 3 bytes: never trust a count beyond the data.
        if count as usize > r.remaining() / 3 + 1 {
            return Err(DecodeError::Truncated("measurements"));
        }
        for _ in 0..count {
            let m = reused.measurement(taken);
            taken += 1;
            r.string_into("parameter", &mut m.parameter)?;
            m.value = match r.union_index("value", 2)? {
                0 => SampleValue::Null,
                _ => SampleValue::Number(r.double("value")?),
            };
            match r.union_index("unit", 2)? {
                0 => m.unit = None,
                _ => r.string_into("unit", m.unit.get_or_insert_default())?,
            }
        }
    }
    reused.keep(taken);
    reused.event.bin_emptied = r.boolean("bin_emptied")?;
    if r.remaining() > 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn long(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        // Most longs here (union branches, lengths, counts) fit in one byte.
        if let Some(&byte) = self.bytes.get(self.pos) {
            if byte & 0x80 == 0 {
                self.pos += 1;
                return Ok(i64::from(byte >> 1) ^ -i64::from(byte & 1));
            }
        }
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or(DecodeError::Truncated(what))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(DecodeError::InvalidAvro(format!(
            "{what}: varint longer than 10 bytes"
        )))
    }

    fn union_index(&mut self, what: &'static str, branches: i64) -> Result<i64, DecodeError> {
        let index = self.long(what)?;
        if (0..branches).contains(&index) {
            Ok(index)
        } else {
            Err(DecodeError::InvalidAvro(format!(
                "{what}: union branch {index} does not exist"
            )))
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated(what));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    /// Reads a string into `out`, replacing what it held. Parameter names
    /// and units repeat from one event to the next: when `out` already holds
    /// the same bytes, they are valid UTF-8 and nothing is copied.
    fn string_into(&mut self, what: &'static str, out: &mut String) -> Result<(), DecodeError> {
        let len = self.long(what)?;
        let len = usize::try_from(len)
            .map_err(|_| DecodeError::InvalidAvro(format!("{what}: negative length {len}")))?;
        let bytes = self.take(len, what)?;
        if crate::short_eq::same_bytes(out.as_bytes(), bytes) {
            return Ok(());
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::InvalidAvro(format!("{what}: not UTF-8")))?;
        out.clear();
        out.push_str(text);
        Ok(())
    }

    fn double(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        let bytes = self.take(8, what)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn boolean(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.take(1, what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::InvalidAvro(format!(
                "{what}: boolean byte {b}"
            ))),
        }
    }
}

fn event_to_value(event: &SensorEvent) -> Value {
    let optional_string = |s: &Option<String>| match s {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
    };
    let measurements = event
        .measurements
        .iter()
        .map(|m| {
            let value = match m.value {
                SampleValue::Number(v) => Value::Union(1, Box::new(Value::Double(v))),
                _ => Value::Union(0, Box::new(Value::Null)),
            };
            Value::Record(vec![
                ("parameter".into(), Value::String(m.parameter.clone())),
                ("value".into(), value),
                ("unit".into(), optional_string(&m.unit)),
            ])
        })
        .collect();
    Value::Record(vec![
        (
            "connection_id".into(),
            Value::String(event.connection_id.clone()),
        ),
        (
            "event_time".into(),
            Value::TimestampMillis(event.event_time),
        ),
        ("channel_id".into(), optional_string(&event.channel_id)),
        ("measurements".into(), Value::Array(measurements)),
        ("bin_emptied".into(), Value::Boolean(event.bin_emptied)),
    ])
}

/// Encodes the bare datum with the bundled schema (a text value in an event is written as null).
pub fn encode_avro(event: &SensorEvent) -> Vec<u8> {
    apache_avro::to_avro_datum(bundled(), event_to_value(event))
        .expect("an event always matches the bundled schema")
}

/// Encodes with Confluent framing under `schema_id`.
pub fn encode_confluent(schema_id: u32, event: &SensorEvent) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(&encode_avro(event));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(bytes: &[u8]) -> Result<SensorEvent, DecodeError> {
        let mut event = ReusedEvent::default();
        decode_direct(bytes, &mut event).map(|()| event.event)
    }

    fn confluent(codec: &AvroCodec, bytes: &[u8]) -> Result<SensorEvent, DecodeError> {
        let mut event = ReusedEvent::default();
        codec
            .decode_confluent_into(bytes, &mut event)
            .map(|()| event.event)
    }

    fn sample() -> SensorEvent {
        SensorEvent {
            connection_id: "GA_1".into(),
            event_time: 1_773_532_800_123,
            channel_id: Some("c01".into()),
            measurements: vec![
                Measurement::new("pm2p5", Some(12.5), Some("ug/m3")),
                Measurement::new("rh", None, None),
            ],
            bin_emptied: true,
        }
    }

    #[test]
    fn direct_decoding_matches_the_reference_encoder() {
        let bytes = encode_avro(&sample());
        assert_eq!(direct(&bytes).unwrap(), sample());
        let generic = decode_generic(bundled(), &bytes).unwrap();
        assert_eq!(generic, sample());
    }

    #[test]
    fn an_event_decoded_into_a_used_one_is_exactly_the_new_event() {
        let others = [
            SensorEvent {
                connection_id: "a much longer connection id".into(),
                event_time: -3,
                channel_id: None,
                measurements: vec![
                    Measurement::new("co2", Some(1.0), None),
                    Measurement::new("tvoc", None, Some("ppb")),
                    Measurement::new("pm10", Some(2.0), Some("ug/m3")),
                ],
                bin_emptied: false,
            },
            SensorEvent::default(),
            sample(),
        ];
        for before in &others {
            for after in [sample(), others[0].clone(), SensorEvent::default()] {
                let mut event = ReusedEvent::from(before.clone());
                decode_direct(&encode_avro(&after), &mut event).unwrap();
                assert_eq!(event.event, after, "decoded over {before:?}");
                // Again, over measurements set aside by an event with fewer.
                decode_direct(&encode_avro(&SensorEvent::default()), &mut event).unwrap();
                decode_direct(&encode_avro(&after), &mut event).unwrap();
                assert_eq!(event.event, after, "decoded over {before:?} and none");
            }
        }
    }

    #[test]
    fn longs_of_every_length_read_as_the_reference_encoder_wrote_them() {
        let mut values: Vec<i64> = (-300..300).collect();
        for shift in 0..63 {
            let v = 1i64 << shift;
            values.extend([v - 1, v, v + 1, -v - 1, -v, -v + 1]);
        }
        values.extend([i64::MIN, i64::MAX]);
        for v in values {
            let bytes = apache_avro::to_avro_datum(&Schema::Long, Value::Long(v)).unwrap();
            let mut r = Reader {
                bytes: &bytes,
                pos: 0,
            };
            assert_eq!(r.long("v").unwrap(), v);
            assert_eq!(r.remaining(), 0, "{v} takes {} bytes", bytes.len());
        }
    }

    #[test]
    fn confluent_framing_needs_a_known_schema_id() {
        let mut codec = AvroCodec::new();
        let framed = encode_confluent(7, &sample());
        assert_eq!(
            confluent(&codec, &framed),
            Err(DecodeError::UnknownSchemaId(7))
        );
        codec.register(7, WriterSchema::parse(BUNDLED_SCHEMA).unwrap());
        assert_eq!(confluent(&codec, &framed).unwrap(), sample());
        let mut bad = framed.clone();
        bad[0] = 0x42;
        assert_eq!(confluent(&codec, &bad), Err(DecodeError::BadMagic(0x42)));
        assert_eq!(
            confluent(&codec, &framed[..3]),
            Err(DecodeError::Truncated("Confluent header"))
        );
    }

    #[test]
    fn an_evolved_writer_schema_is_resolved() {
        // A newer writer: an extra field and fields in another order.
        let writer = r#"{"type":"record","name":"SensorEvent","namespace":"build.reset.pipeline","fields":[
            {"name":"firmware","type":"string"},
            {"name":"connection_id","type":"string"},
            {"name":"event_time","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"measurements","type":{"type":"array","items":{"type":"record","name":"Measurement","fields":[
                {"name":"parameter","type":"string"},
                {"name":"value","type":["null","double"],"default":null}]}}}]}"#;
        let ws = WriterSchema::parse(writer).unwrap();
        let WriterSchema::Other(schema) = &ws else {
            panic!("expected a schema other than the bundled one")
        };
        let value = Value::Record(vec![
            ("firmware".into(), Value::String("1.2".into())),
            ("connection_id".into(), Value::String("W".into())),
            ("event_time".into(), Value::TimestampMillis(5)),
            (
                "measurements".into(),
                Value::Array(vec![Value::Record(vec![
                    ("parameter".into(), Value::String("co2".into())),
                    (
                        "value".into(),
                        Value::Union(1, Box::new(Value::Double(400.0))),
                    ),
                ])]),
            ),
        ]);
        let datum = apache_avro::to_avro_datum(schema, value).unwrap();
        let mut framed = vec![0, 0, 0, 0, 9];
        framed.extend(datum);
        let mut codec = AvroCodec::new();
        codec.register(9, ws);
        let e = confluent(&codec, &framed).unwrap();
        assert_eq!(e.connection_id, "W");
        assert_eq!(e.event_time, 5);
        assert_eq!(e.channel_id, None);
        assert!(!e.bin_emptied);
        assert_eq!(
            e.measurements,
            vec![Measurement::new("co2", Some(400.0), None)]
        );
    }

    #[test]
    fn an_incompatible_writer_schema_is_refused() {
        let writer = r#"{"type":"record","name":"SensorEvent","namespace":"build.reset.pipeline","fields":[{"name":"connection_id","type":"long"}]}"#;
        assert!(WriterSchema::parse(writer).is_err());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode_avro(&sample());
        for cut in 0..bytes.len() {
            assert!(direct(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(direct(&longer), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn a_huge_array_count_is_refused_before_allocating() {
        // connection_id "" , event_time 0, channel null, array count 2^40.
        let mut bytes = vec![0, 0, 0];
        let mut n: u64 = (1u64 << 40) << 1;
        while n >= 0x80 {
            bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        bytes.push(n as u8);
        assert_eq!(direct(&bytes), Err(DecodeError::Truncated("measurements")));
    }
}
