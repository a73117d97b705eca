//! The monitor registry: which monitors exist, their module, time zone,
//! declared parameters and channels. Parsed strictly, validated completely.

use crate::id_index::IdIndex;
use crate::parameter::{Module, Parameter, Unit};
use crate::problem::{Problem, Problems};
use crate::short_text::ShortText;
use chrono_tz::Tz;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashSet;
use std::path::Path;

mod entry;
mod stream;

/// One monitor as written in `monitors.yaml` (or a registry topic record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorRecord {
    #[serde(deserialize_with = "id_text")]
    pub connection_id: String,
    #[serde(deserialize_with = "deserialize_module")]
    pub module: Word,
    #[serde(deserialize_with = "deserialize_zone")]
    pub timezone: Word,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(deserialize_with = "scalar_string")]
    pub monitor_brand: String,
    #[serde(deserialize_with = "scalar_string")]
    pub monitor_sku: String,
    #[serde(deserialize_with = "id_text")]
    pub monitor_serial_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_monitor_calibration_date: Option<String>,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelRecord>,
}

/// Declared parameters and their units as written, read and written as a
/// map: a list sorted by name, whose names and units of RESET's vocabulary
/// are the vocabulary's own text (a map's node and two strings per entry
/// would cost more memory than the rest of the monitor). A name written
/// twice keeps its last unit, as a map would.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters(Vec<(Word, Word)>);

/// Text of a record, the vocabulary's own where it is a word of it.
pub type Word = std::borrow::Cow<'static, str>;

/// `text`, as the vocabulary's own when `known` finds it there.
fn shared<T: AsRef<str> + Into<String>>(
    text: T,
    known: impl Fn(&str) -> Option<&'static str>,
) -> Word {
    match known(text.as_ref()) {
        Some(word) if word == text.as_ref() => Word::Borrowed(word),
        _ => Word::Owned(text.into()),
    }
}

fn module_word(text: String) -> Word {
    shared(text, |t| Module::parse(t).map(Module::name))
}

fn zone_word(text: String) -> Word {
    shared(text, |t| t.parse::<Tz>().ok().map(|tz| tz.name()))
}

fn deserialize_module<'de, D: Deserializer<'de>>(d: D) -> Result<Word, D::Error> {
    String::deserialize(d).map(module_word)
}

fn deserialize_zone<'de, D: Deserializer<'de>>(d: D) -> Result<Word, D::Error> {
    String::deserialize(d).map(zone_word)
}

impl Parameters {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name)).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

/// Words of the vocabulary are shared, not copied; the list is made at
/// its size (a registry of 100,000 monitors holds 100,000 of them).
impl<K, V> FromIterator<(K, V)> for Parameters
where
    K: AsRef<str> + Into<String>,
    V: AsRef<str> + Into<String>,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Parameters {
        let entries = entries.into_iter();
        let mut list: Vec<(Word, Word)> = Vec::with_capacity(entries.size_hint().0);
        for (k, v) in entries {
            let name = shared(k, |k| Parameter::parse(k).map(Parameter::name));
            let unit = shared(v, |v| Unit::parse_reset(v).map(Unit::name));
            match list.iter_mut().find(|(k, _)| *k == name) {
                Some(entry) => entry.1 = unit,
                None => list.push((name, unit)),
            }
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list.shrink_to_fit();
        Parameters(list)
    }
}

impl<'a> IntoIterator for &'a Parameters {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Word, Word)>,
        fn(&'a (Word, Word)) -> (&'a str, &'a str),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl Serialize for Parameters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Parameters, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Parameters;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Parameters, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                Ok(entries.into_iter().collect())
            }
        }
        d.deserialize_map(Entries)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRecord {
    #[serde(deserialize_with = "id_text")]
    pub channel_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    monitors: Vec<MonitorRecord>,
}

/// A scalar field read as text. Numbers are taken as the text YAML makes
/// of them when `numbers_allowed` (a SKU of 7), and refused otherwise.
struct Text {
    numbers_allowed: bool,
}

impl Text {
    fn number<E: serde::de::Error>(self, v: impl std::fmt::Display) -> Result<String, E> {
        if self.numbers_allowed {
            return Ok(v.to_string());
        }
        Err(E::custom(format!(
            "{} (read as {v})",
            crate::problem::UNQUOTED
        )))
    }
}

impl serde::de::Visitor<'_> for Text {
    type Value = String;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(if self.numbers_allowed {
            "text or a number"
        } else {
            "text"
        })
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        self.number(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        self.number(v)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        self.number(v)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        if self.numbers_allowed {
            return Err(E::invalid_type(serde::de::Unexpected::Bool(v), &self));
        }
        Err(E::custom(format!(
            "{} (read as {v})",
            crate::problem::UNQUOTED
        )))
    }
}

/// An id must be text: YAML reads an unquoted `0x1F` as 31, `1.50` as 1.5
/// and `1e3` as 1000, which would be sent (or matched against events) as
/// such. The problem names `crate::problem::UNQUOTED`, so that the loader
/// can show the text to write in quotes.
fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(Text {
        numbers_allowed: false,
    })
}

/// Accepts `sku: 7` as well as `sku: "7"`: YAML users rarely quote numbers.
fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(Text {
        numbers_allowed: true,
    })
}

/// A date-time as RESET's document writes it, `yyyy-mm-ddThh:mm:ss[.mmm]±hh:mm`,
/// with a final `Z` written `+00:00`; `None` for anything else.
fn in_reset_form(text: &str) -> Option<String> {
    let text = match text.strip_suffix('Z') {
        Some(utc) => format!("{utc}+00:00"),
        None => text.to_string(),
    };
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let fraction = match b.len() {
        25 => false,
        29 => b[19] == b'.' && digits(20..23),
        _ => return None,
    };
    let z = if fraction { 23 } else { 19 };
    let shaped = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (b[z] == b'+' || b[z] == b'-')
        && digits(z + 1..z + 3)
        && b[z + 3] == b':'
        && digits(z + 4..z + 6);
    (shaped && chrono::DateTime::parse_from_rfc3339(&text).is_ok()).then_some(text)
}

/// The records of one entry of a file's block list of monitors: read
/// straight when in the common form, by serde_yaml otherwise; `None` when
/// it does not parse alone.
fn read_entry(entry: &str) -> Option<Vec<MonitorRecord>> {
    if let Some(record) = entry::common_entry(entry) {
        return Some(vec![record]);
    }
    let parsed = serde_yaml::from_str::<RegistryFile>(&format!("monitors:\n{entry}")).ok()?;
    Some(parsed.monitors)
}

/// A registry built one record at a time, every record's problems kept.
struct Building<'a> {
    registry: Registry,
    problems: Problems,
    file: &'a str,
    index: usize,
}

impl<'a> Building<'a> {
    fn new(file: &'a str) -> Building<'a> {
        Building {
            registry: Registry::default(),
            problems: Problems::default(),
            file,
            index: 0,
        }
    }

    fn add(&mut self, record: MonitorRecord) {
        let parsed = Parsed::new(record, self.file, self.index);
        self.index += 1;
        self.settle(parsed);
    }

    /// Adds a monitor made from the file's next record: a second record
    /// of a connection id is a problem in place of its own.
    fn settle(&mut self, parsed: Parsed) {
        if self
            .registry
            .by_connection_id
            .contains(&parsed.connection_id)
        {
            self.problems.push(Problem::new(
                format!(
                    "{}.connection_id",
                    RecordLocation {
                        file: self.file,
                        index: parsed.index
                    }
                ),
                format!("duplicate connection_id {:?}", parsed.connection_id),
            ));
            return;
        }
        match parsed.monitor {
            Ok(monitor) => {
                self.registry.insert(monitor);
            }
            Err(p) => self.problems.extend(p),
        }
    }

    /// Room for `n` more monitors, taken at once instead of in doublings.
    fn reserve(&mut self, n: usize) {
        self.registry.monitors.reserve_exact(n);
        self.registry.by_connection_id.reserve(n);
    }

    fn finish(self) -> Result<Registry, Problems> {
        self.problems.into_result()?;
        Ok(self.registry)
    }
}

/// One record made into a monitor (or its problems), with its place in
/// the file: the costly part of adding a record, which a streamed file
/// does on other threads (`stream`).
struct Parsed {
    /// Its index in the file's list of monitors.
    index: usize,
    connection_id: String,
    monitor: Result<Monitor, Problems>,
}

impl Parsed {
    fn new(record: MonitorRecord, file: &str, index: usize) -> Parsed {
        let connection_id = record.connection_id.clone();
        let monitor = Monitor::from_record(record, &RecordLocation { file, index });
        Parsed {
            index,
            connection_id,
            monitor,
        }
    }
}

/// Where a record of the registry file is, written out only for a
/// problem: a large fleet's file has no time to spare for the others.
struct RecordLocation<'a> {
    file: &'a str,
    index: usize,
}

impl std::fmt::Display for RecordLocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: monitors[{}]", self.file, self.index)
    }
}

/// A validated monitor, ready for the window engine. The fields every
/// event reads come first and fill one cache line (`repr(C)`, aligned to
/// it): a fleet's monitors come in turn, and each further line of a
/// monitor an event touches is one more wait for memory.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct Monitor {
    /// Channel ids; air monitors have one unnamed channel internally.
    pub channel_ids: Box<[ShortText]>,
    slot_base: [u16; Parameter::COUNT],
    declared_unit: [Option<Unit>; Parameter::COUNT],
    pub module: Module,
    pub tz: Tz,
    /// Declared parameters and their RESET units, in the module's order.
    pub declared: Vec<(Parameter, Unit)>,
    /// Parameters every reading carries: required ones and declared ones.
    pub reported: Vec<Parameter>,
    pub record: std::sync::Arc<MonitorRecord>,
}

const NO_SLOT: u16 = u16::MAX;

impl Monitor {
    pub fn connection_id(&self) -> &str {
        &self.record.connection_id
    }

    /// The unit samples of `parameter` are sent in, if the monitor declares it.
    pub fn declared_unit(&self, parameter: Parameter) -> Option<Unit> {
        self.declared_unit[parameter.index()]
    }

    /// Number of aggregation slots of a window: reported parameters × channels.
    pub fn slot_count(&self) -> usize {
        self.reported.len() * self.channel_count()
    }

    pub fn channel_count(&self) -> usize {
        self.channel_ids.len().max(1)
    }

    /// The slot of a (parameter, channel) pair, for reported parameters.
    pub fn slot(&self, parameter: Parameter, channel: usize) -> Option<usize> {
        let base = self.slot_base[parameter.index()];
        (base != NO_SLOT).then(|| base as usize * self.channel_count() + channel)
    }

    /// Index of a channel id among the declared channels.
    pub fn channel_index(&self, channel_id: &str) -> Option<usize> {
        self.channel_ids.iter().position(|c| c.is(channel_id))
    }

    /// Validates one record; problems are reported under `location`,
    /// which is only written out for a problem.
    pub fn from_record(
        mut record: MonitorRecord,
        location: &dyn std::fmt::Display,
    ) -> Result<Monitor, Problems> {
        let mut problems = Problems::default();
        let at = |field: &str| format!("{location}.{field}");
        if record.connection_id.trim().is_empty() {
            problems.push(Problem::new(at("connection_id"), "must not be empty"));
        }
        for (field, value) in [
            ("monitor_brand", &record.monitor_brand),
            ("monitor_sku", &record.monitor_sku),
            ("monitor_serial_id", &record.monitor_serial_id),
        ] {
            if value.trim().is_empty() {
                problems.push(Problem::new(at(field), "must not be empty"));
            }
        }
        let module = Module::parse(&record.module);
        if module.is_none() {
            problems.push(Problem::new(
                at("module"),
                format!(
                    "unknown module {:?} (expected air, water, energy or circularity)",
                    record.module
                ),
            ));
        }
        let tz: Option<Tz> = record.timezone.parse().ok();
        if tz.is_none() {
            problems.push(Problem::new(
                at("timezone"),
                format!(
                    "unknown time zone {:?} (expected an IANA name such as Asia/Shanghai)",
                    record.timezone
                ),
            ));
        }
        if let Some(date) = &record.last_monitor_calibration_date {
            match in_reset_form(date) {
                Some(sent) => record.last_monitor_calibration_date = Some(sent),
                None => problems.push(Problem::new(
                    at("last_monitor_calibration_date"),
                    format!("{date:?} is not an ISO 8601 date-time with offset as RESET takes it (yyyy-mm-ddThh:mm:ss[.mmm]±hh:mm; Z is taken as +00:00)"),
                )),
            }
        }
        let mut declared_unit = [None; Parameter::COUNT];
        if let Some(module) = module {
            check_parameters(&record, module, &at, &mut problems, &mut declared_unit);
            check_channels(&record, module, &at, &mut problems);
        }
        problems.into_result()?;
        let module = module.expect("checked above");
        let declared: Vec<(Parameter, Unit)> = module
            .parameters()
            .iter()
            .filter_map(|&p| declared_unit[p.index()].map(|u| (p, u)))
            .collect();
        let reported: Vec<Parameter> = module
            .parameters()
            .iter()
            .copied()
            .filter(|&p| module.requires(p) || declared_unit[p.index()].is_some())
            .collect();
        let mut slot_base = [NO_SLOT; Parameter::COUNT];
        for (i, p) in reported.iter().enumerate() {
            slot_base[p.index()] = i as u16;
        }
        let channel_ids = record
            .channels
            .iter()
            .map(|c| ShortText::new(&c.channel_id))
            .collect();
        Ok(Monitor {
            tz: tz.expect("checked above"),
            module,
            declared,
            reported,
            channel_ids,
            declared_unit,
            slot_base,
            record: record.into(),
        })
    }
}

fn check_parameters(
    record: &MonitorRecord,
    module: Module,
    at: &dyn Fn(&str) -> String,
    problems: &mut Problems,
    declared_unit: &mut [Option<Unit>; Parameter::COUNT],
) {
    if record.parameters.is_empty() {
        problems.push(Problem::new(at("parameters"), "declares no parameter"));
    }
    for (name, unit) in &record.parameters {
        let field = || at(&format!("parameters.{name}"));
        let Some(parameter) = Parameter::parse(name).filter(|p| module.parameters().contains(p))
        else {
            let allowed: Vec<_> = module.parameters().iter().map(|p| p.name()).collect();
            problems.push(Problem::new(
                field(),
                format!(
                    "{name:?} is not {} parameter (expected one of {})",
                    module.with_article(),
                    allowed.join(", ")
                ),
            ));
            continue;
        };
        match Unit::parse_reset(unit).filter(|u| parameter.reset_units().contains(u)) {
            Some(u) => declared_unit[parameter.index()] = Some(u),
            None => {
                let allowed: Vec<_> = parameter.reset_units().iter().map(|u| u.name()).collect();
                problems.push(Problem::new(
                    field(),
                    format!(
                        "unit {unit:?} is not accepted by RESET for {name} (expected {})",
                        allowed.join(" or ")
                    ),
                ));
            }
        }
    }
    if module == Module::Energy && !record.parameters.contains_key("power_consumption") {
        problems.push(Problem::new(
            at("parameters"),
            "an energy monitor must declare power_consumption",
        ));
    }
}

fn check_channels(
    record: &MonitorRecord,
    module: Module,
    at: &dyn Fn(&str) -> String,
    problems: &mut Problems,
) {
    if !module.has_channels() {
        if !record.channels.is_empty() {
            problems.push(Problem::new(
                at("channels"),
                "air monitors have no channels",
            ));
        }
        return;
    }
    if record.channels.is_empty() {
        problems.push(Problem::new(
            at("channels"),
            format!(
                "{} monitor needs at least one channel",
                module.with_article()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, channel) in record.channels.iter().enumerate() {
        if channel.channel_id.trim().is_empty() {
            problems.push(Problem::new(
                at(&format!("channels[{i}].channel_id")),
                "must not be empty",
            ));
        } else if !seen.insert(channel.channel_id.as_str()) {
            problems.push(Problem::new(
                at(&format!("channels[{i}].channel_id")),
                format!("duplicate channel id {:?}", channel.channel_id),
            ));
        }
    }
}

/// All known monitors, indexed by connection id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    monitors: Vec<Monitor>,
    by_connection_id: IdIndex,
    /// Monitors removed by a tombstone: their ids stay, so open windows still
    /// close, but samples no longer find them.
    removed: FxHashSet<u32>,
}

/// What one record of the monitor topic did to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryChange {
    /// A monitor the registry did not have (or had removed).
    Added(MonitorId),
    /// A monitor's description changed (label, brand, serial, calibration
    /// date, channel labels): RESET gets `modify` before its next readings.
    Changed(MonitorId),
    /// A new module, time zone, parameters, units or channel ids: windows
    /// open now keep the old shape (`Engine::reshape`).
    Reshaped(MonitorId),
    /// The same record again (compaction, a re-publish).
    Unchanged(MonitorId),
    /// A tombstone: samples of this monitor are rejected from now on.
    Removed(MonitorId),
    /// A tombstone for a monitor the registry does not have.
    NothingToRemove,
}

impl RegistryChange {
    pub fn name(self) -> &'static str {
        match self {
            RegistryChange::Added(_) => "added",
            RegistryChange::Changed(_) => "changed",
            RegistryChange::Reshaped(_) => "reshaped",
            RegistryChange::Unchanged(_) => "unchanged",
            RegistryChange::Removed(_) | RegistryChange::NothingToRemove => "removed",
        }
    }
}

/// Whether two descriptions of a monitor window its samples alike: module,
/// time zone, declared parameters and units, and channel ids, as written
/// (each normalised by `Monitor::from_record` already). Windows built on
/// one shape cannot be taken over by another.
pub fn same_record_shape(a: &MonitorRecord, b: &MonitorRecord) -> bool {
    a.module == b.module
        && a.timezone == b.timezone
        && a.parameters == b.parameters
        && a.channels.len() == b.channels.len()
        && a.channels
            .iter()
            .zip(&b.channels)
            .all(|(x, y)| x.channel_id == y.channel_id)
}

/// Dense index of a monitor in its registry.
pub type MonitorId = u32;

impl Registry {
    /// Reads and validates a `monitors.yaml`; every problem is reported.
    /// A file that is a block list of monitors and nothing else is read
    /// entry by entry (`stream`); any other is read whole.
    pub fn load(path: &Path) -> Result<Registry, Problems> {
        let file = path.display().to_string();
        if let Ok(Some(registry)) = stream::load(path, &file) {
            return registry;
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems::one(Problem::new(file.clone(), format!("cannot read: {e}"))))?;
        Registry::parse(&text, &file)
    }

    /// Parses registry YAML; `file` names it in problems. A file that is a
    /// block list of monitors and nothing else is parsed entry by entry,
    /// so that memory holds the registry and one entry's parse, not the
    /// whole file's; one that does not parse that way is parsed whole, for
    /// its problems worded and placed as the whole file's.
    pub fn parse(text: &str, file: &str) -> Result<Registry, Problems> {
        if let Some(entries) = crate::yaml_parts::block_list_entries(text, "monitors") {
            let mut building = Building::new(file);
            building.reserve(entries.len());
            for entry in entries {
                match read_entry(entry) {
                    Some(records) => records.into_iter().for_each(|r| building.add(r)),
                    None => return Registry::parse_whole(text, file),
                }
            }
            return building.finish();
        }
        Registry::parse_whole(text, file)
    }

    fn parse_whole(text: &str, file: &str) -> Result<Registry, Problems> {
        let parsed: RegistryFile = crate::problem::from_yaml(text, file)?;
        Registry::from_records(parsed.monitors, file)
    }

    pub fn from_records(records: Vec<MonitorRecord>, file: &str) -> Result<Registry, Problems> {
        let mut building = Building::new(file);
        records.into_iter().for_each(|r| building.add(r));
        building.finish()
    }

    /// Adds a monitor, or replaces the one with the same connection id.
    pub fn insert(&mut self, monitor: Monitor) -> MonitorId {
        match self.by_connection_id.get(monitor.connection_id()) {
            Some(id) => {
                self.monitors[id as usize] = monitor;
                id
            }
            None => {
                let id = self.monitors.len() as MonitorId;
                self.by_connection_id.insert(monitor.connection_id(), id);
                self.monitors.push(monitor);
                id
            }
        }
    }

    pub fn lookup(&self, connection_id: &str) -> Option<MonitorId> {
        self.by_connection_id
            .get(connection_id)
            .filter(|id| !self.removed.contains(id))
    }

    /// Applies one record of the monitor topic: `value` is a monitor record
    /// (JSON or YAML, the fields of `monitors.yaml`), `None` a tombstone.
    /// `key`, when present, must be the record's connection id. A change of
    /// module, time zone, parameters, units or channel ids is `Reshaped`:
    /// the caller keeps the old shape for the windows built on it. Problems
    /// are reported under `location`.
    pub fn apply(
        &mut self,
        key: Option<&str>,
        value: Option<&[u8]>,
        location: &str,
    ) -> Result<RegistryChange, Problems> {
        let Some(value) = value else {
            let key = key.ok_or_else(|| {
                Problems::one(Problem::new(
                    location,
                    "a tombstone without a key removes nothing",
                ))
            })?;
            return Ok(match self.lookup(key) {
                Some(id) => {
                    self.removed.insert(id);
                    RegistryChange::Removed(id)
                }
                None => RegistryChange::NothingToRemove,
            });
        };
        let text = std::str::from_utf8(value)
            .map_err(|_| Problems::one(Problem::new(location, "is not UTF-8 text")))?;
        let record: MonitorRecord = crate::problem::from_yaml(text, location)?;
        if let Some(key) = key.filter(|k| *k != record.connection_id) {
            return Err(Problems::one(Problem::new(
                format!("{location}: connection_id"),
                format!(
                    "{:?} differs from the record's key {key:?}",
                    record.connection_id
                ),
            )));
        }
        let monitor = Monitor::from_record(record, &location)?;
        let known = self.by_connection_id.get(monitor.connection_id());
        let Some(id) = known else {
            return Ok(RegistryChange::Added(self.insert(monitor)));
        };
        let old = &self.monitors[id as usize];
        let reshaped = !same_record_shape(&old.record, &monitor.record);
        let readded = self.removed.remove(&id);
        let changed = old.record != monitor.record;
        self.monitors[id as usize] = monitor;
        Ok(if reshaped {
            RegistryChange::Reshaped(id)
        } else if readded {
            RegistryChange::Added(id)
        } else if changed {
            RegistryChange::Changed(id)
        } else {
            RegistryChange::Unchanged(id)
        })
    }

    pub fn get(&self, id: MonitorId) -> &Monitor {
        &self.monitors[id as usize]
    }

    pub fn len(&self) -> usize {
        self.monitors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
    }

    /// The monitors known now (those removed by a tombstone left out).
    pub fn iter(&self) -> impl Iterator<Item = (MonitorId, &Monitor)> {
        self.monitors
            .iter()
            .enumerate()
            .map(|(i, m)| (i as MonitorId, m))
            .filter(|(id, _)| !self.removed.contains(id))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fields_each_event_reads_share_one_cache_line() {
        use super::{Monitor, Parameter, ShortText, Unit};
        use crate::parameter::Module;
        use std::mem::{align_of, offset_of, size_of};
        assert_eq!(align_of::<Monitor>(), 64);
        let hot = [
            (
                offset_of!(Monitor, channel_ids),
                size_of::<Box<[ShortText]>>(),
            ),
            (
                offset_of!(Monitor, slot_base),
                size_of::<[u16; Parameter::COUNT]>(),
            ),
            (
                offset_of!(Monitor, declared_unit),
                size_of::<[Option<Unit>; Parameter::COUNT]>(),
            ),
            (offset_of!(Monitor, module), size_of::<Module>()),
        ];
        for (offset, size) in hot {
            assert!(offset + size <= 64, "a field at {offset} of {size} bytes");
        }
    }

    fn with_calibration(date: &str) -> Result<Registry, Problems> {
        let yaml = format!("monitors:\n  - {{connection_id: A, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, last_monitor_calibration_date: '{date}', parameters: {{co2: ppm}}}}\n");
        Registry::parse(&yaml, "m.yaml")
    }

    #[test]
    fn a_file_is_loaded_entry_by_entry_or_whole_with_the_same_result() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let one = "{connection_id: A, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {co2: ppm, rh: '%RH'}}";
        let two = one.replace("connection_id: A", "connection_id: B");
        let block = format!("# fleet\nmonitors:\n  - {one}\n\n  - {two}\n");
        let flow = format!("monitors: [{one}, {two}]\n");
        for text in [block.clone(), flow] {
            let path = write("m.yaml", text.as_bytes());
            let loaded = Registry::load(&path).unwrap();
            let parsed = Registry::parse(&text, "m.yaml").unwrap();
            let records =
                |r: &Registry| r.iter().map(|(_, m)| m.record.clone()).collect::<Vec<_>>();
            assert_eq!(records(&loaded), records(&parsed), "{text}");
            assert_eq!(loaded.len(), 2);
        }
        // An entry that does not parse alone: the whole file's problems.
        let broken = block.replace("timezone: UTC", "timezone: Mars/Base");
        let path = write("broken.yaml", broken.as_bytes());
        let problems = Registry::load(&path).unwrap_err().to_string();
        assert!(problems.contains("monitors[1].timezone"), "{problems}");
        let path = write("binary.yaml", &[0xff, 0xfe, b'\n']);
        let problems = Registry::load(&path).unwrap_err().to_string();
        assert!(problems.contains("cannot read"), "{problems}");
    }

    #[test]
    fn words_of_resets_vocabulary_are_shared_and_others_kept_as_written() {
        let r = Registry::parse(GOOD, "monitors.yaml").unwrap();
        for (_, m) in r.iter() {
            assert!(matches!(m.record.module, Word::Borrowed(_)));
            assert!(matches!(m.record.timezone, Word::Borrowed(_)));
            assert!(m
                .record
                .parameters
                .0
                .iter()
                .all(|(k, v)| matches!((k, v), (Word::Borrowed(_), Word::Borrowed(_)))));
        }
        let written: Parameters = [("co2", "ppm"), ("pm10", "µg/m3"), ("co2", "ppb")]
            .into_iter()
            .collect();
        assert_eq!(
            written.iter().collect::<Vec<_>>(),
            [("co2", "ppb"), ("pm10", "µg/m3")]
        );
        assert!(matches!(written.0[1].1, Word::Owned(_)));
        assert_eq!(
            serde_json::to_string(&written).unwrap(),
            r#"{"co2":"ppb","pm10":"µg/m3"}"#
        );
    }

    #[test]
    fn calibration_dates_are_sent_in_resets_form_or_refused() {
        let sent = |date: &str| {
            with_calibration(date)
                .map(|r| {
                    r.get(0)
                        .record
                        .last_monitor_calibration_date
                        .clone()
                        .unwrap()
                })
                .map_err(|p| p.to_string())
        };
        assert_eq!(
            sent("2022-08-01T00:00:00+08:00").unwrap(),
            "2022-08-01T00:00:00+08:00"
        );
        assert_eq!(
            sent("2022-08-01T00:00:00.250-03:30").unwrap(),
            "2022-08-01T00:00:00.250-03:30"
        );
        assert_eq!(
            sent("2022-08-01T00:00:00Z").unwrap(),
            "2022-08-01T00:00:00+00:00"
        );
        assert_eq!(
            sent("2022-08-01T00:00:00.120Z").unwrap(),
            "2022-08-01T00:00:00.120+00:00"
        );
        for refused in [
            "2022-08-01 00:00:00+08:00",
            "2022-08-01T00:00:00.5+08:00",
            "2022-08-01T00:00:00+0800",
            "2022-08-01",
            "2022-13-01T00:00:00+08:00",
        ] {
            let e = sent(refused).unwrap_err();
            assert!(
                e.contains("last_monitor_calibration_date"),
                "{refused}: {e}"
            );
        }
    }

    use super::*;

    #[test]
    fn a_registry_read_entry_by_entry_is_the_one_read_whole() {
        let yaml = "# two\nmonitors:\n  - connection_id: A\n    module: air\n    timezone: UTC\n    monitor_brand: B\n    monitor_sku: 7\n    monitor_serial_id: X\n    parameters: {co2: ppm}\n\n  - {connection_id: E, module: energy, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: Y, parameters: {power_consumption: kWh}, channels: [{channel_id: c1}]}\n";
        assert!(crate::yaml_parts::block_list_entries(yaml, "monitors").is_some());
        let whole = Registry::parse_whole(yaml, "m.yaml").unwrap();
        let by_entry = Registry::parse(yaml, "m.yaml").unwrap();
        let records = |r: &Registry| {
            (0..r.len() as MonitorId)
                .map(|i| r.get(i).record.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(records(&by_entry), records(&whole));
        // An alias to another entry cannot be read alone: the whole file is.
        let aliased = "monitors:\n  - &a {connection_id: A, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {co2: ppm}}\n  - {<<: *a, connection_id: B}\n";
        let problems = Registry::parse(aliased, "m.yaml").unwrap_err().to_string();
        assert_eq!(
            problems,
            Registry::parse_whole(aliased, "m.yaml")
                .unwrap_err()
                .to_string()
        );
        // Problems are placed as in the whole file.
        let bad = yaml.replace(
            "timezone: UTC, monitor_brand",
            "timezone: Mars/Base, monitor_brand",
        );
        let problems = Registry::parse(&bad, "m.yaml").unwrap_err().to_string();
        assert!(problems.contains("monitors[1].timezone"), "{problems}");
    }

    const GOOD: &str = r#"
monitors:
  - connection_id: GA_23682013
    module: air
    timezone: Asia/Shanghai
    label: 3rd Floor Office
    monitor_brand: GIGA
    monitor_sku: AirM3
    monitor_serial_id: GA_23682013
    last_monitor_calibration_date: "2022-08-01T00:00:00+08:00"
    parameters: {pm2p5: ug/m3, tvoc: ppb, co2: ppm, temp: C, rh: "%RH"}
  - connection_id: EN_7
    module: energy
    timezone: America/New_York
    monitor_brand: ACME
    monitor_sku: EM-2
    monitor_serial_id: "7"
    parameters: {power_consumption: kWh}
    channels:
      - {channel_id: c01, channel_label: 1st_floor_plug_load}
      - {channel_id: c02}
"#;

    #[test]
    fn the_documented_example_loads() {
        let r = Registry::parse(GOOD, "monitors.yaml").unwrap();
        assert_eq!(r.len(), 2);
        let air = r.get(r.lookup("GA_23682013").unwrap());
        assert_eq!(air.module, Module::Air);
        assert_eq!(air.reported.len(), 5);
        assert_eq!(air.slot(Parameter::Rh, 0), Some(4));
        assert_eq!(air.slot(Parameter::Pm10, 0), None);
        let en = r.get(r.lookup("EN_7").unwrap());
        assert_eq!(en.record.monitor_serial_id, "7");
        assert_eq!(en.slot(Parameter::PowerConsumption, 1), Some(1));
        assert_eq!(en.channel_index("c02"), Some(1));
    }

    const EN_7: &str = r#"{"connection_id": "EN_7", "module": "energy", "timezone": "America/New_York",
        "monitor_brand": "ACME", "monitor_sku": "EM-2", "monitor_serial_id": "7",
        "parameters": {"power_consumption": "kWh"},
        "channels": [{"channel_id": "c01", "channel_label": "1st_floor_plug_load"}, {"channel_id": "c02"}]}"#;

    fn topic_message(
        r: &mut Registry,
        key: &str,
        value: Option<&str>,
    ) -> Result<RegistryChange, String> {
        r.apply(Some(key), value.map(str::as_bytes), "monitor-registry/0@5")
            .map_err(|p| p.to_string())
    }

    #[test]
    fn a_topic_record_with_a_number_for_an_id_is_refused() {
        let mut r = Registry::parse(GOOD, "monitors.yaml").unwrap();
        let numeric = EN_7.replace(r#""monitor_serial_id": "7""#, r#""monitor_serial_id": 7"#);
        let refused = topic_message(&mut r, "EN_7", Some(&numeric)).unwrap_err();
        assert!(
            refused.contains("monitor_serial_id") && refused.contains("ids are text"),
            "{refused}"
        );
    }

    #[test]
    fn topic_records_add_change_and_remove_monitors_keeping_their_ids() {
        let mut r = Registry::parse(GOOD, "monitors.yaml").unwrap();
        let en = r.lookup("EN_7").unwrap();
        assert_eq!(
            topic_message(&mut r, "EN_7", Some(EN_7)),
            Ok(RegistryChange::Unchanged(en))
        );

        let relabelled = EN_7.replace("\"7\"", "\"7b\"");
        assert_eq!(
            topic_message(&mut r, "EN_7", Some(&relabelled)),
            Ok(RegistryChange::Changed(en))
        );
        assert_eq!(r.get(en).record.monitor_serial_id, "7b");

        let new = EN_7.replace("EN_7", "EN_8");
        let added = topic_message(&mut r, "EN_8", Some(&new)).unwrap();
        assert_eq!(added, RegistryChange::Added(2));
        assert_eq!(r.lookup("EN_8"), Some(2));

        assert_eq!(
            topic_message(&mut r, "EN_7", None),
            Ok(RegistryChange::Removed(en))
        );
        assert_eq!(r.lookup("EN_7"), None);
        let listed = |r: &Registry| -> Vec<String> {
            r.iter()
                .map(|(_, m)| m.connection_id().to_string())
                .collect()
        };
        assert!(
            !listed(&r).contains(&"EN_7".to_string()),
            "{:?}",
            listed(&r)
        );
        assert_eq!(listed(&r).len(), r.len() - 1);
        assert_eq!(
            r.get(en).connection_id(),
            "EN_7",
            "open windows still find it"
        );
        assert_eq!(
            topic_message(&mut r, "EN_7", None),
            Ok(RegistryChange::NothingToRemove)
        );
        assert_eq!(
            topic_message(&mut r, "EN_7", Some(EN_7)),
            Ok(RegistryChange::Added(en))
        );
        assert_eq!(r.lookup("EN_7"), Some(en), "the same id again");
        assert!(listed(&r).contains(&"EN_7".to_string()));
    }

    #[test]
    fn topic_records_that_reshape_a_known_monitor_take_its_place_and_broken_ones_are_refused() {
        let mut r = Registry::parse(GOOD, "monitors.yaml").unwrap();
        let id = r.lookup("EN_7").unwrap();
        let before = r.get(id).record.clone();
        for value in [
            EN_7.replace("America/New_York", "Europe/Berlin"),
            EN_7.replace(", {\"channel_id\": \"c02\"}", ""),
            EN_7.replace("\"energy\"", "\"water\"")
                .replace("\"power_consumption\": \"kWh\"", "\"water_flow\": \"L\""),
        ] {
            let mut changed = r.clone();
            let change = topic_message(&mut changed, "EN_7", Some(&value)).unwrap();
            assert_eq!(change, RegistryChange::Reshaped(id));
            assert!(!same_record_shape(
                &changed.get(id).record,
                &r.get(id).record
            ));
            assert!(!same_record_shape(&changed.get(id).record, &before));
        }
        for (value, expected) in [
            (
                EN_7.replace("\"EN_7\"", "\"EN_9\""),
                "differs from the record's key",
            ),
            (EN_7.replace("\"module\"", "\"modul\""), "unknown field"),
            ("{not json".to_string(), "monitor-registry/0@5"),
        ] {
            let refused = topic_message(&mut r, "EN_7", Some(&value)).unwrap_err();
            assert!(refused.contains(expected), "{refused}");
        }
        assert_eq!(r.get(id).record, before);
        assert!(same_record_shape(&r.get(id).record, &before));
        assert!(r.apply(Some("EN_7"), Some(&[0xff, 0xfe]), "t/0@1").is_err());
        assert!(r.apply(None, None, "t/0@2").is_err());
    }

    fn problems_of(yaml: &str) -> Vec<String> {
        Registry::parse(yaml, "m.yaml")
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let yaml = r#"
monitors:
  - connection_id: A
    module: air
    timezone: Mars/Olympus
    monitor_brand: B
    monitor_sku: S
    monitor_serial_id: X
    parameters: {pm2p5: mg/m3, noise: dB}
    channels: [{channel_id: c1}]
  - connection_id: W
    module: water
    timezone: UTC
    monitor_brand: B
    monitor_sku: S
    monitor_serial_id: X
    parameters: {water_flow: gal}
    channels: [{channel_id: c1}, {channel_id: c1}]
  - connection_id: Z
    module: steam
    timezone: UTC
    monitor_brand: B
    monitor_sku: S
    monitor_serial_id: X
"#;
        let p = problems_of(yaml);
        let expect = [
            "m.yaml: monitors[0].timezone: unknown time zone \"Mars/Olympus\"",
            "m.yaml: monitors[0].parameters.noise: \"noise\" is not an air parameter",
            "m.yaml: monitors[0].parameters.pm2p5: unit \"mg/m3\" is not accepted by RESET for pm2p5 (expected ug/m3)",
            "m.yaml: monitors[0].channels: air monitors have no channels",
            "m.yaml: monitors[1].parameters.water_flow: unit \"gal\" is not accepted by RESET for water_flow (expected L)",
            "m.yaml: monitors[1].channels[1].channel_id: duplicate channel id \"c1\"",
            "m.yaml: monitors[2].module: unknown module \"steam\"",
        ];
        for e in expect {
            assert!(
                p.iter().any(|l| l.starts_with(e)),
                "missing {e:?} in {p:#?}"
            );
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn channel_modules_need_channels_and_unknown_fields_are_errors() {
        let yaml = "monitors:\n  - {connection_id: E, module: energy, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {power_consumption: kWh}}\n";
        assert_eq!(
            problems_of(yaml),
            ["m.yaml: monitors[0].channels: an energy monitor needs at least one channel"]
        );
        let yaml = "monitors:\n  - {connection_id: E, module: air, colour: red}\n";
        let p = problems_of(yaml);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("m.yaml: monitors[0].colour: unknown field `colour`"),
            "{p:?}"
        );
    }

    #[test]
    fn duplicate_connection_ids_are_rejected() {
        let one = "  - {connection_id: A, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {co2: ppm}}\n";
        let p = problems_of(&format!("monitors:\n{one}{one}"));
        assert_eq!(
            p,
            ["m.yaml: monitors[1].connection_id: duplicate connection_id \"A\""]
        );
    }
}
