//! The common form of one registry entry, read without serde_yaml: a block
//! mapping of the record's scalar fields and a flow mapping of parameters,
//! every value plain text or quoted without escapes, in ASCII. Anything
//! else (channels, comments, escapes, numbers, null, nested blocks, an
//! unknown or repeated field) is left to serde_yaml, which decides it as
//! before, so this reader only has to be right where it answers; a property
//! test holds it to serde_yaml's record wherever it does.

use super::{module_word, zone_word, MonitorRecord, Parameters};

/// The record of `entry` (one `- field: value` block as the YAML cutter
/// gives it) when it is in the common form; `None` otherwise.
pub(super) fn common_entry(entry: &str) -> Option<MonitorRecord> {
    if !entry.is_ascii() || entry.contains(['#', '\t', '\r']) {
        return None;
    }
    let mut lines = entry.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next()?;
    let dash = first.find('-')?;
    first[..dash].bytes().all(|b| b == b' ').then_some(())?;
    let indent = dash + 2;
    let mut fields = Fields::default();
    fields.line(first[dash..].strip_prefix("- ")?)?;
    for line in lines {
        let (space, rest) = line.split_at(line.len() - line.trim_start().len());
        (space.len() == indent).then_some(())?;
        fields.line(rest)?;
    }
    fields.record()
}

/// The fields read so far.
#[derive(Default)]
struct Fields {
    connection_id: Option<String>,
    module: Option<String>,
    timezone: Option<String>,
    label: Option<String>,
    monitor_brand: Option<String>,
    monitor_sku: Option<String>,
    monitor_serial_id: Option<String>,
    last_monitor_calibration_date: Option<String>,
    parameters: Option<Parameters>,
}

impl Fields {
    /// One `field: value` line, its indentation taken off.
    fn line(&mut self, line: &str) -> Option<()> {
        let (key, value) = line.split_once(':')?;
        let value = value.strip_prefix(' ')?.trim();
        let slot = match key {
            "connection_id" => &mut self.connection_id,
            "module" => &mut self.module,
            "timezone" => &mut self.timezone,
            "label" => &mut self.label,
            "monitor_brand" => &mut self.monitor_brand,
            "monitor_sku" => &mut self.monitor_sku,
            "monitor_serial_id" => &mut self.monitor_serial_id,
            "last_monitor_calibration_date" => &mut self.last_monitor_calibration_date,
            "parameters" => {
                self.parameters.is_none().then_some(())?;
                self.parameters = Some(flow_mapping(value)?);
                return Some(());
            }
            _ => return None,
        };
        slot.is_none().then_some(())?;
        *slot = Some(block_scalar(value)?.to_string());
        Some(())
    }

    /// The record, when every required field was read.
    fn record(self) -> Option<MonitorRecord> {
        Some(MonitorRecord {
            connection_id: self.connection_id?,
            module: module_word(self.module?),
            timezone: zone_word(self.timezone?),
            label: self.label,
            monitor_brand: self.monitor_brand?,
            monitor_sku: self.monitor_sku?,
            monitor_serial_id: self.monitor_serial_id?,
            last_monitor_calibration_date: self.last_monitor_calibration_date,
            parameters: self.parameters.unwrap_or_default(),
            channels: Vec::new(),
        })
    }
}

/// A whole value in block context: quoted text, or plain text that YAML
/// can only read as text.
fn block_scalar(value: &str) -> Option<&str> {
    match quoted(value) {
        Some((text, "")) => Some(text),
        Some(_) => None,
        None => plain_text(value, b"()/+-. _"),
    }
}

/// `"text"` or `'text'` at the start of `value`, without escapes (nor a
/// quote of the other kind: `'` is written `''` inside single quotes),
/// and what follows it, spaces skipped.
fn quoted(value: &str) -> Option<(&str, &str)> {
    let quote = value
        .as_bytes()
        .first()
        .copied()
        .filter(|q| *q == b'"' || *q == b'\'')?;
    let body = &value[1..];
    let end = body.find(char::from(quote))?;
    let text = &body[..end];
    text.bytes()
        .all(|b| b >= 0x20 && b != b'\\' && b != b'"' && b != b'\'')
        .then_some(())?;
    Some((text, body[end + 1..].trim_start()))
}

/// `value` when it is plain text YAML reads as a string: a letter first
/// (so not a number, `.inf`, an indicator or an alias), then letters,
/// digits and `others`, and not a word YAML reads as null or a boolean.
fn plain_text<'a>(value: &'a str, others: &[u8]) -> Option<&'a str> {
    let b = value.as_bytes();
    b.first()?.is_ascii_alphabetic().then_some(())?;
    b.iter()
        .all(|c| c.is_ascii_alphanumeric() || others.contains(c))
        .then_some(())?;
    const WORDS: [&str; 12] = [
        "null", "true", "false", "y", "n", "yes", "no", "on", "off", "inf", "nan", "infinity",
    ];
    (!WORDS.iter().any(|w| w.eq_ignore_ascii_case(value))).then_some(value)
}

/// `{name: unit, ...}` on one line, as the parameters (a name written
/// twice keeps its last unit, as serde_yaml reads it).
fn flow_mapping(value: &str) -> Option<Parameters> {
    let mut rest = value.strip_prefix('{')?.trim_start();
    let mut entries: Vec<(&str, &str)> = Vec::with_capacity(8);
    if let Some(after) = rest.strip_prefix('}') {
        return after.is_empty().then(Parameters::default);
    }
    loop {
        let (key, after) = flow_scalar(rest)?;
        let after = after.strip_prefix(':')?;
        after.starts_with(' ').then_some(())?;
        let (unit, after) = flow_scalar(after.trim_start())?;
        entries.push((key, unit));
        match after.as_bytes().first()? {
            b',' => rest = after[1..].trim_start(),
            b'}' if after.len() == 1 => break,
            _ => return None,
        }
    }
    Some(entries.into_iter().collect())
}

/// A key or value inside a flow mapping, and what follows it, spaces
/// skipped: quoted, or plain up to the `:`, `,` or `}` after it.
fn flow_scalar(text: &str) -> Option<(&str, &str)> {
    if let Some(found) = quoted(text) {
        return Some(found);
    }
    let end = text.find([':', ',', '}'])?;
    let plain = text[..end].trim_end();
    Some((plain_text(plain, b"/_ ")?, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// serde_yaml's record of `entry`, as the registry reads an entry alone.
    fn through_serde(entry: &str) -> Option<MonitorRecord> {
        let file: super::super::RegistryFile =
            serde_yaml::from_str(&format!("monitors:\n{entry}")).ok()?;
        let [record]: [MonitorRecord; 1] = file.monitors.try_into().ok()?;
        Some(record)
    }

    const FLEET_ENTRY: &str = "  - connection_id: GA_00000007\n    module: air\n    timezone: Asia/Shanghai\n    label: Floor 7\n    monitor_brand: GIGA\n    monitor_sku: AirM3\n    monitor_serial_id: GA_00000007\n    last_monitor_calibration_date: \"2022-08-01T00:00:00+08:00\"\n    parameters: {pm2p5: ug/m3, tvoc: ppb, co2: ppm, temp: C, rh: \"%RH\"}\n";

    #[test]
    fn the_generated_fleets_entries_are_read_without_serde_as_serde_reads_them() {
        let fast = common_entry(FLEET_ENTRY).expect("the common form");
        assert_eq!(Some(fast), through_serde(FLEET_ENTRY));
        let examples = include_str!("../../examples/monitors.yaml");
        let air = "  - connection_id: KTM_AIR_1\n    module: air\n    timezone: Asia/Kathmandu\n    monitor_brand: GIGA\n    monitor_sku: AirM3\n    monitor_serial_id: KTM_AIR_1\n    parameters: {pm2p5: ug/m3, co2: ppm, temp: C}\n";
        assert!(examples.contains(air));
        assert_eq!(common_entry(air), through_serde(air));
        assert!(common_entry(air).is_some());
    }

    #[test]
    fn what_yaml_reads_otherwise_is_left_to_serde() {
        for changed in [
            "monitor_serial_id: 0x1F",
            "monitor_serial_id: 1e3",
            "monitor_serial_id: \"a\\tb\"",
            "monitor_serial_id: null",
            "monitor_serial_id: Yes",
            "monitor_serial_id: .inf",
            "monitor_serial_id: &a GA",
            "monitor_serial_id: GA # a comment",
            "monitor_serial_id: 'it''s'",
            "monitor_serial_id: caf\u{e9}",
            "monitor_serial_id:\n      GA",
            "monitor_serial_ids: GA",
            "connection_id: GA_00000008",
        ] {
            let entry = FLEET_ENTRY.replace("monitor_serial_id: GA_00000007", changed);
            assert_ne!(entry, FLEET_ENTRY);
            assert_eq!(common_entry(&entry), None, "{changed}");
        }
        let block = FLEET_ENTRY.replace(
            "parameters: {pm2p5: ug/m3, tvoc: ppb, co2: ppm, temp: C, rh: \"%RH\"}",
            "parameters:\n      co2: ppm",
        );
        assert_eq!(common_entry(&block), None);
        assert!(through_serde(&block).is_some());
    }

    /// Scalars of every kind YAML has, plain or quoted, valid or not.
    fn scalar() -> impl Strategy<Value = String> {
        let text = prop::sample::select(vec![
            "GA_1",
            "Floor 3",
            "3rd Floor",
            "0x1F",
            "1e3",
            "1.50",
            "7",
            "-1",
            "null",
            "Null",
            "~",
            "true",
            "False",
            "yes",
            "No",
            "on",
            "inf",
            ".inf",
            ".nan",
            "a: b",
            "a:b",
            "a #b",
            "a#b",
            "-x",
            "- x",
            "x-",
            "%RH",
            "ug/m3",
            "@x",
            "`x",
            "&x",
            "*x",
            "!x",
            "|",
            ">",
            "[x]",
            "{x}",
            "x, y",
            "x,y",
            "a  b",
            "",
            " ",
            "'",
            "\"",
            "a'b",
            "a\"b",
            "a\\b",
            "Asia/Shanghai",
            "air",
            "water",
            "UTC",
            "co2",
            "ppm",
            "2022-08-01",
            "2022-08-01T00:00:00Z",
            "caf\u{e9}",
            "x\u{85}y",
            "A(1)",
            "a.b",
            "a+b",
        ]);
        (text, 0..5u8).prop_map(|(t, how)| match how {
            0 | 1 => t.to_string(),
            2 => format!("\"{t}\""),
            3 => format!("'{t}'"),
            _ => format!("{t} "),
        })
    }

    fn field() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "connection_id",
            "module",
            "timezone",
            "label",
            "monitor_brand",
            "monitor_sku",
            "monitor_serial_id",
            "last_monitor_calibration_date",
            "unknown",
        ]);
        let parameters = prop::collection::vec((scalar(), scalar()), 0..4).prop_map(|pairs| {
            let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("parameters: {{{}}}", inner.join(", "))
        });
        prop_oneof![
            4 => (key, scalar()).prop_map(|(k, v)| format!("{k}: {v}")),
            1 => parameters,
            1 => prop::sample::select(vec![
                "parameters: {co2: ppm,temp: C}",
                "parameters: {co2:ppm}",
                "parameters: {co2: ppm, }",
                "parameters: {}",
                "parameters: { co2 : ppm }",
                "parameters: {co2: ppm} x",
                "parameters: {co2: ppm, co2: ppb}",
                "parameters: {co2: ppm, 'co2': ppb}",
                "channels: [{channel_id: c01}]",
            ])
            .prop_map(str::to_string),
        ]
    }

    /// An entry of the fleet's form with some lines changed, added or
    /// dropped, at some indentation.
    fn entry() -> impl Strategy<Value = String> {
        let lines: Vec<&str> = FLEET_ENTRY.lines().map(str::trim_start).collect();
        let lines: Vec<String> = lines
            .iter()
            .map(|l| l.trim_start_matches("- ").to_string())
            .collect();
        (
            Just(lines),
            prop::collection::vec((0..12usize, field(), 0..4u8), 0..4),
            prop::sample::select(vec![0usize, 2, 4]),
            0..20u8,
        )
            .prop_map(|(mut lines, edits, indent, odd_indent)| {
                for (at, field, how) in edits {
                    let at = at % (lines.len() + 1);
                    match how {
                        0 if at < lines.len() => {
                            lines.remove(at);
                        }
                        1 if at < lines.len() => lines[at] = field,
                        _ => lines.insert(at, field),
                    }
                }
                let pad = " ".repeat(indent);
                let mut out = String::new();
                for (i, line) in lines.iter().enumerate() {
                    let extra = if usize::from(odd_indent) == i {
                        " "
                    } else {
                        ""
                    };
                    let lead = if i == 0 { "- " } else { "  " };
                    out.push_str(&format!("{pad}{extra}{lead}{line}\n"));
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2048,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_1604),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn wherever_it_answers_serde_yaml_reads_the_same_record(entry in entry()) {
            if let Some(fast) = common_entry(&entry) {
                prop_assert_eq!(Some(fast), through_serde(&entry), "{}", entry);
            }
        }
    }

    #[test]
    fn the_generated_entries_are_often_in_the_common_form() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut fast, mut refused) = (0, 0);
        for _ in 0..2048 {
            let entry = entry().new_tree(&mut runner).unwrap().current();
            match (common_entry(&entry), through_serde(&entry)) {
                (Some(_), _) => fast += 1,
                (None, None) => refused += 1,
                (None, Some(_)) => {}
            }
        }
        // Entries read here and entries serde_yaml refuses are both common,
        // so the property above tests both sides of the line.
        assert!(
            fast > 200 && refused > 200,
            "{fast} read here, {refused} refused by serde"
        );
    }
}
