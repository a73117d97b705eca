//! The common form of a JSON event, read straight into a reused event
//! without serde. Anything out of the ordinary (escapes, unknown or repeated
//! keys, a value that is not a plain number or null, a number a double may
//! round differently) is left to serde's decoder, so both decide every
//! input alike and this one only has to be right where it answers.

#[cfg(test)]
use crate::event::SensorEvent;
use crate::event::{Measurement, ReusedEvent, SampleValue};
use crate::short_eq::same_short;

/// Reads `bytes` into `reused` when they are an event in the common form,
/// reusing the event's allocations. `None`: not in the common form (or not
/// an event at all), and the event holds nothing meaningful.
pub(super) fn decode_common(bytes: &[u8], reused: &mut ReusedEvent) -> Option<()> {
    // Text that is not UTF-8 is not JSON either: serde's decoder says why.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scanner::new(text);
    let seen = s.object(&EVENT_KEYS, |s, key| {
        match key {
            CONNECTION_ID => set_string(&mut reused.event.connection_id, s.string()?),
            EVENT_TIME => reused.event.event_time = s.event_time()?,
            CHANNEL_ID => s.optional_string(&mut reused.event.channel_id)?,
            MEASUREMENTS => s.measurements(reused)?,
            _ => reused.event.bin_emptied = s.boolean()?,
        }
        Some(())
    })?;
    let event = &mut reused.event;
    s.end()?;
    (seen.has(CONNECTION_ID) && seen.has(EVENT_TIME) && seen.has(MEASUREMENTS)).then_some(())?;
    if !seen.has(CHANNEL_ID) {
        event.channel_id = None;
    }
    if !seen.has(BIN_EMPTIED) {
        event.bin_emptied = false;
    }
    Some(())
}

/// An event's keys, by their index in `EVENT_KEYS`.
const EVENT_KEYS: [&[u8]; 5] = [
    b"connection_id",
    b"event_time",
    b"channel_id",
    b"measurements",
    b"bin_emptied",
];
const CONNECTION_ID: usize = 0;
const EVENT_TIME: usize = 1;
const CHANNEL_ID: usize = 2;
const MEASUREMENTS: usize = 3;
const BIN_EMPTIED: usize = 4;

/// A measurement's keys, by their index in `MEASUREMENT_KEYS`.
const MEASUREMENT_KEYS: [&[u8]; 3] = [b"parameter", b"value", b"unit"];
const PARAMETER: usize = 0;
const VALUE: usize = 1;
const UNIT: usize = 2;

/// The keys of one object read so far, by index.
#[derive(Default)]
struct Seen(u8);

impl Seen {
    /// Marks `key` read; `None` when it was already (serde refuses that).
    fn once(&mut self, key: usize) -> Option<()> {
        let bit = 1 << key;
        (self.0 & bit == 0).then(|| self.0 |= bit)
    }

    fn has(&self, key: usize) -> bool {
        self.0 & (1 << key) != 0
    }
}

fn set_string(to: &mut String, text: &str) {
    to.clear();
    to.push_str(text);
}

/// Powers of ten a double holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The largest significand taken: its digits and every one below it are
/// exact in a double, so one multiplication or division by an exact power
/// of ten rounds correctly, as any correct parser does.
const MAX_SIGNIFICAND: u64 = 999_999_999_999_999;

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Scanner<'a> {
        Scanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// Space, then `open`, then a first key must follow (an empty object
    /// lacks required keys, and serde says which).
    fn open(&mut self, open: u8) -> Option<()> {
        self.skip_space();
        (self.next()? == open).then_some(())
    }

    /// Space, then `close` (true) or a comma (false).
    fn close_or_next(&mut self, close: u8) -> Option<bool> {
        self.skip_space();
        match self.next()? {
            b',' => Some(false),
            b if b == close => Some(true),
            _ => None,
        }
    }

    /// Only space is left.
    fn end(&mut self) -> Option<()> {
        self.skip_space();
        (self.at == self.bytes.len()).then_some(())
    }

    /// Space, one of `keys` as a string without escapes, and the colon
    /// after it: the key's index. `None` for any other key. Inlined into
    /// each caller, whose keys are constants: every comparison is then
    /// specialised to its key's length.
    #[inline(always)]
    fn key<const N: usize>(&mut self, keys: &[&[u8]; N]) -> Option<usize> {
        self.skip_space();
        let rest = &self.bytes[self.at..];
        let quoted = |key: &[u8]| {
            rest.len() > key.len() + 1
                && rest[0] == b'"'
                && rest[key.len() + 1] == b'"'
                && same_short(&rest[1..=key.len()], key)
        };
        let index = keys.iter().position(|key| quoted(key))?;
        self.at += keys[index].len() + 2;
        self.skip_space();
        (self.next()? == b':').then_some(index)
    }

    /// Space, then a string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.skip_space();
        (self.peek()? == b'"').then_some(())?;
        let start = self.at + 1;
        let length = self.bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = start + length;
        (self.bytes[end] == b'"').then_some(())?;
        self.at = end + 1;
        // Both ends are at a quote, so on character boundaries.
        self.text.get(start..end)
    }

    /// Whether the literal `word` comes next (after space); consumed if so.
    fn literal(&mut self, word: &[u8]) -> bool {
        self.skip_space();
        let found = self.bytes[self.at..].starts_with(word);
        if found {
            self.at += word.len();
        }
        found
    }

    fn optional_string(&mut self, to: &mut Option<String>) -> Option<()> {
        if self.literal(b"null") {
            *to = None;
        } else {
            set_string(to.get_or_insert_with(String::new), self.string()?);
        }
        Some(())
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.literal(b"true") {
            Some(true)
        } else if self.literal(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// Epoch milliseconds as an integer, or RFC 3339 text (read as serde's
    /// decoder reads it).
    fn event_time(&mut self) -> Option<i64> {
        self.skip_space();
        if self.peek()? == b'"' {
            let text = self.string()?;
            return utc_millis(text.as_bytes()).or_else(|| {
                let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
                Some(time.timestamp_millis())
            });
        }
        let number = self.number()?;
        let negative_zero = number.negative && number.significand == 0;
        if number.exponent != 0 || number.fractional || negative_zero {
            return None;
        }
        let magnitude = i64::try_from(number.significand).ok()?;
        Some(if number.negative {
            -magnitude
        } else {
            magnitude
        })
    }

    /// A number, or null.
    fn value(&mut self) -> Option<SampleValue> {
        if self.literal(b"null") {
            return Some(SampleValue::Null);
        }
        let number = self.number()?;
        let magnitude = number.significand as f64;
        let magnitude = if number.exponent >= 0 {
            magnitude * POW10[number.exponent as usize]
        } else {
            magnitude / POW10[number.exponent.unsigned_abs() as usize]
        };
        Some(SampleValue::Number(if number.negative {
            -magnitude
        } else {
            magnitude
        }))
    }

    /// A JSON number (after space) whose significand is at most
    /// `MAX_SIGNIFICAND` and whose power of ten is within ±22.
    fn number(&mut self) -> Option<Number> {
        self.skip_space();
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let mut significand = 0u64;
        let mut digit = |s: &mut Self| -> Option<bool> {
            match s.peek() {
                Some(b @ b'0'..=b'9') => {
                    if significand > MAX_SIGNIFICAND / 10 {
                        return None;
                    }
                    significand = significand * 10 + u64::from(b - b'0');
                    s.at += 1;
                    Some(true)
                }
                _ => Some(false),
            }
        };
        // Integer part: one zero, or digits not starting with zero.
        if self.peek()? == b'0' {
            self.at += 1;
            if matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
        } else if !digit(self)? {
            return None;
        } else {
            while digit(self)? {}
        }
        let mut exponent = 0i32;
        let mut fractional = self.peek() == Some(b'.');
        if fractional {
            self.at += 1;
            if !digit(self)? {
                return None;
            }
            exponent -= 1;
            while digit(self)? {
                exponent -= 1;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            fractional = true;
            let negative_exponent = match self.peek()? {
                b'-' => {
                    self.at += 1;
                    true
                }
                b'+' => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let mut written = 0i32;
            let mut digits = 0;
            while let Some(b @ b'0'..=b'9') = self.peek() {
                written = written * 10 + i32::from(b - b'0');
                digits += 1;
                self.at += 1;
                if digits > 3 {
                    return None;
                }
            }
            if digits == 0 {
                return None;
            }
            exponent += if negative_exponent { -written } else { written };
        }
        (-22..=22).contains(&exponent).then_some(Number {
            negative,
            significand,
            exponent,
            fractional,
        })
    }

    /// An object (after space) of some of `keys`, each at most once:
    /// `value` reads the value of each key met, by its index. The keys
    /// seen; `None` for any other key, a repeated one, or a value `value`
    /// leaves to serde.
    #[inline(always)]
    fn object<const N: usize>(
        &mut self,
        keys: &[&[u8]; N],
        mut value: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<Seen> {
        let mut seen = Seen::default();
        self.open(b'{')?;
        loop {
            let key = self.key(keys)?;
            seen.once(key)?;
            value(self, key)?;
            if self.close_or_next(b'}')? {
                return Some(seen);
            }
        }
    }

    /// The measurements, each reused from the event's where it has one.
    fn measurements(&mut self, to: &mut ReusedEvent) -> Option<()> {
        self.open(b'[')?;
        self.skip_space();
        if self.peek()? == b']' {
            self.at += 1;
            to.keep(0);
            return Some(());
        }
        let mut count = 0;
        loop {
            self.measurement(to.measurement(count))?;
            count += 1;
            if self.close_or_next(b']')? {
                break;
            }
        }
        to.keep(count);
        Some(())
    }

    fn measurement(&mut self, to: &mut Measurement) -> Option<()> {
        let seen = self.object(&MEASUREMENT_KEYS, |s, key| {
            match key {
                PARAMETER => set_string(&mut to.parameter, s.string()?),
                VALUE => to.value = s.value()?,
                _ => s.optional_string(&mut to.unit)?,
            }
            Some(())
        })?;
        seen.has(PARAMETER).then_some(())?;
        if !seen.has(VALUE) {
            to.value = SampleValue::Null;
        }
        if !seen.has(UNIT) {
            to.unit = None;
        }
        Some(())
    }
}

/// Epoch milliseconds of a time in the form `produce` writes,
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, of a date that exists and a second
/// below 60; `None` for any other text (chrono's RFC 3339 parser then
/// reads it, and answers alike where this does).
fn utc_millis(text: &[u8]) -> Option<i64> {
    let digits = |at: usize, count: usize| -> Option<i64> {
        let part = text.get(at..at + count)?;
        part.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let at = |i: usize, b: u8| text.get(i) == Some(&b);
    let shape = at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':');
    if !shape || text.last() != Some(&b'Z') {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let millis = match &text[19..text.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(20, fraction.len())?;
            let taken = fraction.len().min(3);
            digits(20, taken)? * 10i64.pow(3 - taken as u32)
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = (1..=12).contains(&month)
        && (1..=month_days[month as usize - 1]).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return None;
    }
    // Days from 1970-01-01 to the date (proleptic Gregorian, from March).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// A number's parts: `±significand × 10^exponent`; `fractional` when it
/// was written with a fraction or an exponent (serde reads it as a double).
struct Number {
    negative: bool,
    significand: u64,
    exponent: i32,
    fractional: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json::decode_json;

    /// The common path's event, or `None` where it defers to serde.
    fn common(text: &str) -> Option<SensorEvent> {
        let mut event = ReusedEvent::default();
        decode_common(text.as_bytes(), &mut event).map(|()| event.event)
    }

    /// Same event as serde's, bit for bit (Debug shows `-0.0`).
    fn assert_same(text: &str) {
        let serde = decode_json(text.as_bytes()).map(|e| format!("{e:?}"));
        let common = common(text).map(|e| format!("{e:?}"));
        assert_eq!(common.map(Ok), Some(serde), "{text}");
    }

    #[test]
    fn the_forms_producers_write_take_the_common_path_and_decode_as_serde_does() {
        for text in [
            r#"{"connection_id":"GA_00000001","event_time":1773532800001,"measurements":[{"parameter":"pm2p5","value":5},{"parameter":"temp","value":18.0},{"parameter":"rh","value":30}]}"#,
            r#"{"connection_id":"A","event_time":"2026-03-15T08:00:00.123+08:00","channel_id":"c1","measurements":[{"parameter":"bin_weight","value":2.5,"unit":"kg"}],"bin_emptied":true}"#,
            r#" { "measurements" : [ ] , "event_time" : -5 , "connection_id" : "é" , "channel_id" : null , "bin_emptied" : false } "#,
            r#"{"connection_id":"A","event_time":0,"measurements":[{"parameter":"x","value":-0.0},{"parameter":"x","value":null,"unit":null},{"parameter":"x"},{"value":1.5e3,"parameter":"x"},{"parameter":"x","value":123456789012345e-22},{"parameter":"x","value":0.1E+1}]}"#,
        ] {
            assert!(common(text).is_some(), "{text} should take the common path");
            assert_same(text);
        }
    }

    #[test]
    fn anything_out_of_the_ordinary_is_left_to_serde() {
        for text in [
            r#"{"connection_id":"A\u0042","event_time":1,"measurements":[]}"#,
            r#"{"connection_id":"A","event_time":1,"measurements":[],"extra":1}"#,
            r#"{"connection_id":"A","connection_id":"B","event_time":1,"measurements":[]}"#,
            r#"{"connection_id":"A","event_time":1,"measurements":[{"parameter":"x","value":"high"}]}"#,
            r#"{"connection_id":"A","event_time":1,"measurements":[{"parameter":"x","value":1e400}]}"#,
            r#"{"connection_id":"A","event_time":1,"measurements":[{"parameter":"x","value":1234567890123456}]}"#,
            r#"{"connection_id":"A","event_time":1,"measurements":[{"parameter":"x","value":1e23}]}"#,
            r#"{"connection_id":"A","event_time":1,"measurements":[{"parameter":"x","value":01}]}"#,
            r#"{"connection_id":"A","event_time":1.5,"measurements":[]}"#,
            r#"{"connection_id":"A","event_time":-0,"measurements":[]}"#,
            r#"{"connection_id":"A","event_time":"yesterday","measurements":[]}"#,
            r#"{"connection_id":"A","event_time":1,"measurements":[]} x"#,
            r#"{"connection_id":"A","measurements":[]}"#,
            r#"{"connection_id":"A","event_time":1,"measurements":[{"value":1}]}"#,
            r#"{}"#,
            "",
        ] {
            assert!(common(text).is_none(), "{text} should be left to serde");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_left_to_serde_wherever_they_are() {
        let good = br#"{"connection_id":"GA_1","event_time":1,"measurements":[{"parameter":"co2","value":1,"unit":"ppm"}]}"#;
        assert!(decode_common(good, &mut ReusedEvent::default()).is_some());
        for at in 0..good.len() {
            for byte in [0x80, 0xC3, 0xFF] {
                let mut bad = good.to_vec();
                bad[at] = byte;
                assert!(
                    decode_common(&bad, &mut ReusedEvent::default()).is_none(),
                    "byte {byte:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn times_in_produces_form_are_read_without_chrono() {
        for (text, expect) in [
            ("2026-03-15T00:00:00.000Z", "2026-03-15T00:00:00Z"),
            ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
            ("2024-02-29T12:30:05.5Z", "2024-02-29T12:30:05.500Z"),
            ("0001-01-01T00:00:00.123456789Z", "0001-01-01T00:00:00.123Z"),
        ] {
            let chrono = chrono::DateTime::parse_from_rfc3339(expect).unwrap();
            assert_eq!(
                utc_millis(text.as_bytes()),
                Some(chrono.timestamp_millis()),
                "{text}"
            );
        }
        for text in [
            "2023-02-29T00:00:00Z",
            "2026-03-15T24:00:00Z",
            "2026-03-15T23:59:60Z",
            "2026-03-15T00:00:00+08:00",
            "2026-03-15 00:00:00Z",
            "2026-03-15T00:00:00.Z",
        ] {
            assert_eq!(utc_millis(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn a_reused_event_keeps_nothing_of_the_last_one() {
        let mut event = ReusedEvent::default();
        let full = r#"{"connection_id":"LONGER","event_time":9,"channel_id":"c","bin_emptied":true,"measurements":[{"parameter":"a","value":1,"unit":"kg"},{"parameter":"b","value":2}]}"#;
        let bare = r#"{"connection_id":"A","event_time":1,"measurements":[{"parameter":"c"}]}"#;
        let two = r#"{"connection_id":"A","event_time":1,"measurements":[{"parameter":"c"},{"parameter":"d","value":3}]}"#;
        decode_common(full.as_bytes(), &mut event).unwrap();
        decode_common(bare.as_bytes(), &mut event).unwrap();
        assert_eq!(event.event, decode_json(bare.as_bytes()).unwrap());
        // The second measurement, set aside by the bare event, taken again.
        decode_common(two.as_bytes(), &mut event).unwrap();
        assert_eq!(event.event, decode_json(two.as_bytes()).unwrap());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Number texts of every grammar form, valid or not.
        fn number_text() -> impl Strategy<Value = String> {
            (
                prop::option::of(Just("-")),
                prop_oneof![
                    3 => Just("0".to_string()),
                    8 => "[1-9][0-9]{0,14}",
                    1 => "[1-9][0-9]{15,18}",
                    1 => "0[0-9]",
                ],
                prop::option::of(prop_oneof![8 => "\\.[0-9]{1,8}", 1 => Just(".".to_string())]),
                prop::option::weighted(
                    0.25,
                    prop_oneof![8 => "[eE][+-]?[0-9]{1,2}", 1 => "[eE][+-]?[0-9]{0,4}"],
                ),
            )
                .prop_map(|(sign, int, frac, exp)| {
                    format!(
                        "{}{int}{}{}",
                        sign.unwrap_or(""),
                        frac.unwrap_or_default(),
                        exp.unwrap_or_default()
                    )
                })
        }

        fn value_text() -> impl Strategy<Value = String> {
            prop_oneof![
                8 => number_text(),
                1 => Just("null".to_string()),
                1 => Just("\"x\"".to_string()),
                1 => Just("true".to_string()),
            ]
        }

        fn space() -> impl Strategy<Value = &'static str> {
            prop_oneof![8 => Just(""), 1 => Just(" "), 1 => Just("\n\t ")]
        }

        fn measurement_text() -> impl Strategy<Value = String> {
            (
                prop::option::weighted(0.95, "[a-z_0-9]{1,6}"),
                prop::option::weighted(0.9, value_text()),
                prop::option::of(prop_oneof![Just("null".to_string()), "\"[a-z/%]{0,4}\""]),
                space(),
            )
                .prop_map(|(parameter, value, unit, sp)| {
                    object(vec![
                        parameter.map(|p| format!("\"parameter\"{sp}:{sp}\"{p}\"")),
                        value.map(|v| format!("\"value\":{sp}{v}")),
                        unit.map(|u| format!("\"unit\":{u}")),
                    ])
                })
        }

        /// A JSON object of the fields given.
        fn object(fields: Vec<Option<String>>) -> String {
            let fields: Vec<String> = fields.into_iter().flatten().collect();
            format!("{{{}}}", fields.join(","))
        }

        fn event_text() -> impl Strategy<Value = String> {
            (
                prop::option::weighted(
                    0.95,
                    prop_oneof![9 => "[A-Za-z0-9_é]{0,8}", 1 => "[A-Z\\\\]{0,3}"],
                ),
                prop::option::weighted(
                    0.95,
                    prop_oneof![
                        6 => "-?[1-9][0-9]{0,12}",
                        2 => number_text(),
                        1 => Just("\"2026-03-15T08:00:00+08:00\"".to_string()),
                        1 => Just("\"2026-03-15 08:00\"".to_string()),
                    ],
                ),
                prop::option::of(prop_oneof![Just("null".to_string()), "\"[a-z0-9]{0,3}\""]),
                prop::option::weighted(0.95, prop::collection::vec(measurement_text(), 0..4)),
                prop::option::of(prop_oneof![
                    Just("true"),
                    Just("false"),
                    Just("null"),
                    Just("1")
                ]),
                space(),
                any::<bool>(),
                prop_oneof![8 => Just(""), 1 => Just(" "), 1 => Just("x")],
            )
                .prop_map(
                    |(id, time, channel, measurements, bin, sp, reversed, tail)| {
                        let mut fields = vec![
                            id.map(|id| format!("\"connection_id\":{sp}\"{id}\"")),
                            time.map(|t| format!("\"event_time\":{t}")),
                            channel.map(|c| format!("{sp}\"channel_id\":{c}")),
                            measurements.map(|m| format!("\"measurements\":[{}]", m.join(","))),
                            bin.map(|b| format!("\"bin_emptied\":{b}{sp}")),
                        ];
                        if reversed {
                            fields.reverse();
                        }
                        format!("{}{tail}", object(fields))
                    },
                )
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 4096,
                rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_1503),
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// Wherever the common path answers, serde's decoder gives the
            /// same event, bit for bit.
            #[test]
            fn the_common_path_decodes_every_input_as_serde_does(text in event_text()) {
                if let Some(event) = common(&text) {
                    let serde = decode_json(text.as_bytes()).map(|e| format!("{e:?}"));
                    prop_assert_eq!(Ok(format!("{event:?}")), serde, "{}", text);
                }
            }

            /// Wherever the reader of `produce`'s time form answers, chrono's
            /// RFC 3339 parser gives the same milliseconds.
            #[test]
            fn times_read_as_chrono_reads_them(
                year in prop_oneof![4 => "[0-9]{4}", 1 => "(1900|2000|2100|2024|2023|1970|0000)"],
                date in prop_oneof![
                    3 => "-(0[0-9]|1[0-3])-([0-2][0-9]|3[0-2])",
                    1 => "-02-(28|29)",
                    1 => "-12-31",
                ],
                separator in prop_oneof![8 => Just("T"), 1 => Just("t"), 1 => Just(" ")],
                time in "([01][0-9]|2[0-4]):[0-6][0-9]:[0-6][0-9]",
                fraction in prop::option::of("\\.[0-9]{0,10}"),
                zone in prop_oneof![8 => Just("Z"), 1 => Just("z"), 1 => Just("+00:00")],
            ) {
                let fraction = fraction.unwrap_or_default();
                let text = format!("{year}{date}{separator}{time}{fraction}{zone}");
                if let Some(ms) = utc_millis(text.as_bytes()) {
                    let chrono = chrono::DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_millis());
                    prop_assert_eq!(Ok(ms), chrono.map_err(|e| e.to_string()), "{}", text);
                }
            }

            /// Every finite number in range that a correct parser rounds to
            /// one double is read to that double.
            #[test]
            fn numbers_round_as_a_correct_parser_rounds(text in number_text()) {
                let mut s = Scanner::new(&text);
                if let Some(SampleValue::Number(v)) = s.value().filter(|_| s.at == text.len()) {
                    let exact: f64 = text.parse().unwrap();
                    prop_assert_eq!(v.to_bits(), exact.to_bits(), "{}", text);
                }
            }
        }
    }
}
