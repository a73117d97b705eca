//! The YAML config: strict parsing, explicit defaults, one `validate()` for
//! the rules that span fields. Secrets are wrapped so they never print.

use crate::problem::{Problem, Problems};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub input: InputConfig,
    #[serde(default)]
    pub windowing: WindowingConfig,
    #[serde(default)]
    pub reset: ResetConfig,
    #[serde(default)]
    pub monitors: MonitorsConfig,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    #[serde(default)]
    pub http: HttpConfig,
    /// The folder of the config file: relative paths in it are resolved from here.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    #[serde(default)]
    pub bootstrap_servers: String,
    #[serde(default = "default_group_id")]
    pub group_id: String,
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// Passed to librdkafka as they are; values may be secrets and are never printed.
    #[serde(default)]
    pub properties: BTreeMap<String, Secret>,
    /// Where restart progress is kept (default: `<group_id>.progress`).
    #[serde(default)]
    pub progress_topic: Option<String>,
    /// Where the monitor descriptions RESET acknowledged are kept (default:
    /// `<group_id>.announcements`).
    #[serde(default)]
    pub announcements_topic: Option<String>,
    /// Replicas of the pipeline's own topics when it creates them (the
    /// compacted progress topic, the dead-letter topic), at most the brokers there are.
    #[serde(default = "three")]
    pub progress_replication_factor: i32,
    /// A partition from which nothing was read this long, while the broker
    /// says records wait (or does not answer), is reported as stalled.
    #[serde(default = "two_minutes", deserialize_with = "humane")]
    pub stall_after: Duration,
}

/// What follows `kafka.group_id` in the progress topic's default name.
const PROGRESS_SUFFIX: &str = ".progress";
/// What follows `kafka.group_id` in the announcements topic's default name.
const ANNOUNCEMENTS_SUFFIX: &str = ".announcements";

impl KafkaConfig {
    pub fn progress_topic(&self) -> String {
        self.progress_topic
            .clone()
            .unwrap_or_else(|| format!("{}{PROGRESS_SUFFIX}", self.group_id))
    }

    pub fn announcements_topic(&self) -> String {
        self.announcements_topic
            .clone()
            .unwrap_or_else(|| format!("{}{ANNOUNCEMENTS_SUFFIX}", self.group_id))
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: String::new(),
            group_id: default_group_id(),
            topics: default_topics(),
            properties: BTreeMap::new(),
            progress_topic: None,
            announcements_topic: None,
            progress_replication_factor: three(),
            stall_after: two_minutes(),
        }
    }
}

fn default_group_id() -> String {
    "reset-pipeline".into()
}

fn default_topics() -> Vec<String> {
    vec!["sensor-events".into()]
}

/// How input records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    #[default]
    AvroConfluent,
    Avro,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    #[serde(default)]
    pub format: InputFormat,
    #[serde(default)]
    pub schema_registry_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowingConfig {
    #[serde(default = "ten_minutes", deserialize_with = "humane")]
    pub allowed_lateness: Duration,
    #[serde(default = "five_minutes", deserialize_with = "humane")]
    pub idle_timeout: Duration,
    /// How far ahead of its record's time an event time may be before it is
    /// rejected as `implausible_time`.
    #[serde(default = "one_hour", deserialize_with = "humane")]
    pub max_future_skew: Duration,
    /// A monitor with no accepted sample for this long (on the wall clock)
    /// counts as silent in `reset_pipeline_silent_monitors`.
    #[serde(default = "two_hours", deserialize_with = "humane")]
    pub silent_after: Duration,
    /// An inferred bin emptying is a fall of at least this fraction of the previous weight...
    #[serde(default = "half")]
    pub bin_empty_min_fraction: f64,
    /// ...and of at least this many kilograms.
    #[serde(default = "one")]
    pub bin_empty_min_kg: f64,
}

impl Default for WindowingConfig {
    fn default() -> Self {
        WindowingConfig {
            allowed_lateness: ten_minutes(),
            idle_timeout: five_minutes(),
            max_future_skew: one_hour(),
            silent_after: two_hours(),
            bin_empty_min_fraction: half(),
            bin_empty_min_kg: one(),
        }
    }
}

fn one_hour() -> Duration {
    Duration::from_secs(3600)
}
fn two_hours() -> Duration {
    Duration::from_secs(7200)
}
fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}
fn three() -> i32 {
    3
}
fn two_minutes() -> Duration {
    Duration::from_secs(120)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn half() -> f64 {
    0.5
}
fn one() -> f64 {
    1.0
}

/// When closed windows are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    /// Each window as soon as it closes.
    #[default]
    #[serde(rename = "every_30_minutes")]
    Every30Minutes,
    /// Held per monitor until its local day ends or 48 are waiting.
    Daily,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetConfig {
    #[serde(default)]
    pub url: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Secret,
    #[serde(default)]
    pub push: PushMode,
    #[serde(default = "thirty_seconds", deserialize_with = "humane")]
    pub ack_timeout: Duration,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Messages handed to the publisher and not yet answered before the
    /// input is paused (resumed at half of it).
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
    /// `10500` answers to one message, while RESET accepts others, before
    /// it is dead-lettered (`reset_10500`).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// After SIGTERM, how long to wait for RESET's answers to what was sent
    /// before committing what was acknowledged and exiting.
    #[serde(default = "twenty_seconds", deserialize_with = "humane")]
    pub drain_timeout: Duration,
    /// A PEM bundle of certificates trusted for RESET's TLS, besides the
    /// system's roots (relative to the config file's folder).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for ResetConfig {
    fn default() -> Self {
        ResetConfig {
            url: String::new(),
            namespace: default_namespace(),
            client_id: String::new(),
            client_secret: Secret::default(),
            push: PushMode::default(),
            ack_timeout: thirty_seconds(),
            max_in_flight: default_max_in_flight(),
            max_queued: default_max_queued(),
            max_attempts: default_max_attempts(),
            drain_timeout: twenty_seconds(),
            ca_file: None,
        }
    }
}

fn twenty_seconds() -> Duration {
    Duration::from_secs(20)
}

fn default_max_attempts() -> u32 {
    10
}

fn default_namespace() -> String {
    "/v2".into()
}
fn default_max_in_flight() -> usize {
    16
}

/// Windows close in bursts: when the watermark passes a half hour, every
/// monitor of the partition has a message due at once. A limit that takes
/// a whole burst (of up to 4,096 monitors) lets the loop go on decoding
/// while the publisher sends it, `max_in_flight` at a time. It keeps what is
/// held while RESET is slow or down to about 40 MB at worst (a message of
/// 48 readings is about 10 KB; one of a single reading, about 400 bytes).
fn default_max_queued() -> usize {
    4096
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorsConfig {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub topic: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    #[serde(default)]
    pub topic: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> String {
    "0.0.0.0:9898".into()
}

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The NAME of a value written `${NAME}`.
fn env_reference(value: &str) -> Option<&str> {
    value
        .strip_prefix("${")?
        .strip_suffix('}')
        .filter(|name| !name.is_empty())
}

/// The longest duration any setting takes: time arithmetic on event times
/// stays far from i64's ends.
pub const LONGEST_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses humane durations: `10m`, `30s`, `1h 30m`, `250ms`; at most 30 days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid duration {text:?}: {} (use e.g. 10m, 30s, 1h)",
            duration_words(&e)
        )
    })?;
    if d > LONGEST_DURATION {
        return Err(format!("duration {text:?} is longer than 30 days"));
    }
    Ok(d)
}

/// What is wrong with a duration, without the parser's byte offsets.
fn duration_words(e: &humantime::DurationError) -> String {
    use humantime::DurationError as E;
    match e {
        E::UnknownUnit { unit, .. } if unit.is_empty() => "a unit is needed".into(),
        E::UnknownUnit { unit, .. } => format!("unknown unit {unit:?}"),
        E::NumberOverflow => "too large, or finer than a nanosecond".into(),
        E::Empty => "empty".into(),
        E::InvalidCharacter(_) | E::NumberExpected(_) => "expected a number and a unit".into(),
    }
}

fn humane<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

impl Config {
    /// Reads a config file; relative paths in it are taken from its folder.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems::one(Problem::new(file.clone(), format!("cannot read: {e}"))))?;
        let mut config = Config::parse(&text, &file)?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    /// Parses config YAML; `file` names it in problems. Relative paths in
    /// it are taken from the current folder.
    pub fn parse(text: &str, file: &str) -> Result<Config, Problems> {
        crate::problem::from_yaml(text, file)
    }

    /// Fills the RESET credentials from the environment where the file leaves
    /// them empty, and replaces each Kafka property written `${NAME}` by the
    /// environment variable NAME (for SASL passwords and the like, kept out of
    /// the file); one left unset stays as written and `validate` reports it.
    pub fn with_env_credentials(mut self, env: impl Fn(&str) -> Option<String>) -> Config {
        for value in self.kafka.properties.values_mut() {
            if let Some(found) = env_reference(value.expose()).and_then(&env) {
                *value = Secret::new(found);
            }
        }
        if self.reset.client_id.is_empty() {
            if let Some(id) = env("RESET_CLIENT_ID") {
                self.reset.client_id = id;
            }
        }
        if self.reset.client_secret.is_empty() {
            if let Some(secret) = env("RESET_CLIENT_SECRET") {
                self.reset.client_secret = Secret::new(secret);
            }
        }
        self
    }

    /// `reset.ca_file`, resolved against the config's folder.
    pub fn reset_ca_file(&self) -> Option<PathBuf> {
        self.reset.ca_file.as_ref().map(|f| self.base_dir.join(f))
    }

    /// The monitor file, resolved against the config's folder.
    pub fn monitors_file(&self) -> Option<PathBuf> {
        self.monitors.file.as_ref().map(|f| self.base_dir.join(f))
    }

    /// Each topic the pipeline reads or writes, with the field that names
    /// it: the inputs, its own topics, the dead letters, the registry.
    fn topics_by_role(&self) -> Vec<(String, String)> {
        let k = &self.kafka;
        let inputs = k.topics.iter().enumerate();
        let mut roles: Vec<(String, String)> = inputs
            .map(|(i, t)| (format!("kafka.topics[{i}]"), t.clone()))
            .collect();
        let defaulted = |field: &str, set: &Option<String>, suffix: &str| match set {
            Some(_) => field.to_string(),
            None => format!("{field} (not set: its default, kafka.group_id + \"{suffix}\")"),
        };
        roles.push((
            defaulted("kafka.progress_topic", &k.progress_topic, PROGRESS_SUFFIX),
            k.progress_topic(),
        ));
        roles.push((
            defaulted(
                "kafka.announcements_topic",
                &k.announcements_topic,
                ANNOUNCEMENTS_SUFFIX,
            ),
            k.announcements_topic(),
        ));
        roles.extend(
            self.dead_letter
                .topic
                .clone()
                .map(|t| ("dead_letter.topic".into(), t)),
        );
        roles.extend(
            self.monitors
                .topic
                .clone()
                .map(|t| ("monitors.topic".into(), t)),
        );
        roles
    }

    /// A topic named in two fields: the later field, and why not. Records
    /// written to a topic in one role would be read back in the other (a
    /// dead-letter topic that is an input reads its dead letters, each a new
    /// one, without end).
    fn topics_given_two_roles(&self) -> Vec<(String, String)> {
        let roles = self.topics_by_role();
        roles
            .iter()
            .enumerate()
            .filter_map(|(i, (field, topic))| {
                let (first, _) = roles[..i].iter().find(|(_, t)| t == topic)?;
                let why = if field.starts_with("kafka.topics[") {
                    "list each input topic once"
                } else {
                    "a topic has one role, or the pipeline would read back what it writes there as something else"
                };
                Some((field.clone(), format!("{topic:?} is also {first}: {why}")))
            })
            .collect()
    }

    /// Rules that span fields, for a config that will run against Kafka and RESET.
    pub fn validate(&self, file: &str) -> Problems {
        let mut problems = Problems::default();
        let mut problem = |field: &str, message: String| {
            problems.push(Problem::new(format!("{file}: {field}"), message))
        };
        if self.kafka.bootstrap_servers.trim().is_empty() {
            problem(
                "kafka.bootstrap_servers",
                "is required (e.g. 127.0.0.1:9092)".into(),
            );
        }
        if self.kafka.topics.is_empty() || self.kafka.topics.iter().any(|t| t.trim().is_empty()) {
            problem(
                "kafka.topics",
                "needs at least one non-empty topic name".into(),
            );
        }
        for (field, earlier) in self.topics_given_two_roles() {
            problem(&field, earlier);
        }
        if self.kafka.group_id.trim().is_empty() {
            problem("kafka.group_id", "must not be empty".into());
        }
        for (key, value) in &self.kafka.properties {
            if let Some(name) = env_reference(value.expose()) {
                problem(
                    &format!("kafka.properties.{key}"),
                    format!("the environment variable {name} is not set"),
                );
            }
        }
        if self.input.format == InputFormat::AvroConfluent
            && self
                .input
                .schema_registry_url
                .as_deref()
                .unwrap_or("")
                .is_empty()
        {
            problem(
                "input.schema_registry_url",
                "is required when input.format is avro-confluent".into(),
            );
        }
        let w = &self.windowing;
        if !(w.bin_empty_min_fraction > 0.0 && w.bin_empty_min_fraction <= 1.0) {
            problem(
                "windowing.bin_empty_min_fraction",
                format!("must be in (0, 1], not {}", w.bin_empty_min_fraction),
            );
        }
        if !(w.bin_empty_min_kg.is_finite() && w.bin_empty_min_kg >= 0.0) {
            problem(
                "windowing.bin_empty_min_kg",
                format!("must be a non-negative number, not {}", w.bin_empty_min_kg),
            );
        }
        if w.idle_timeout.is_zero() {
            problem("windowing.idle_timeout", "must be more than zero".into());
        }
        if w.silent_after.is_zero() {
            problem("windowing.silent_after", "must be more than zero".into());
        }
        if self.kafka.progress_replication_factor < 1 {
            problem(
                "kafka.progress_replication_factor",
                "must be at least 1".into(),
            );
        }
        if self.kafka.stall_after.is_zero() {
            problem("kafka.stall_after", "must be more than zero".into());
        }
        let url = self.reset.url.trim();
        if url.is_empty() {
            problem(
                "reset.url",
                "is required (e.g. https://reset.build:8069)".into(),
            );
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            problem(
                "reset.url",
                format!("{url:?} must start with http:// or https://"),
            );
        }
        if let Some(ca_file) = self.reset_ca_file() {
            let checked = std::fs::read(&ca_file)
                .map_err(|e| format!("{}: cannot read: {e}", ca_file.display()))
                .and_then(|pem| crate::sink::tls::certificates(&pem).map(|_| ()));
            if let Err(why) = checked {
                problem("reset.ca_file", why);
            }
        }
        if !self.reset.namespace.starts_with('/') {
            problem(
                "reset.namespace",
                format!("{:?} must start with /", self.reset.namespace),
            );
        }
        if self.reset.client_id.is_empty() {
            problem(
                "reset.client_id",
                "is required (or set RESET_CLIENT_ID in the environment)".into(),
            );
        }
        if self.reset.client_secret.is_empty() {
            problem(
                "reset.client_secret",
                "is required (RESET_CLIENT_SECRET in the environment is preferred)".into(),
            );
        }
        if self.reset.max_attempts == 0 {
            problem("reset.max_attempts", "must be at least 1".into());
        }
        if self.reset.max_in_flight == 0 {
            problem("reset.max_in_flight", "must be at least 1".into());
        }
        if self.reset.max_queued == 0 {
            problem("reset.max_queued", "must be at least 1".into());
        }
        if self.reset.drain_timeout.is_zero() {
            problem("reset.drain_timeout", "must be more than zero".into());
        }
        if self.reset.ack_timeout.is_zero() {
            problem("reset.ack_timeout", "must be more than zero".into());
        }
        if self.monitors.file.is_none() && self.monitors.topic.is_none() {
            problem(
                "monitors",
                "needs a file, a topic, or both, to know the monitors".into(),
            );
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            problem(
                "http.listen",
                format!(
                    "{:?} is not an address such as 0.0.0.0:9898",
                    self.http.listen
                ),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, Problems> {
        crate::problem::from_yaml(yaml, "c.yaml")
    }

    #[test]
    fn defaults_fill_everything_but_addresses_and_credentials() {
        let c = parse("{}").unwrap();
        assert_eq!(c.windowing.allowed_lateness, Duration::from_secs(600));
        assert_eq!(c.windowing.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.reset.max_in_flight, 16);
        assert_eq!(c.reset.push, PushMode::Every30Minutes);
        assert_eq!(c.input.format, InputFormat::AvroConfluent);
        let problems: Vec<String> = c
            .validate("c.yaml")
            .iter()
            .map(|p| p.location.clone())
            .collect();
        assert_eq!(
            problems,
            [
                "c.yaml: kafka.bootstrap_servers",
                "c.yaml: input.schema_registry_url",
                "c.yaml: reset.url",
                "c.yaml: reset.client_id",
                "c.yaml: reset.client_secret",
                "c.yaml: monitors",
            ]
        );
    }

    #[test]
    fn unknown_fields_and_bad_durations_name_the_field() {
        let e = parse("windowing: {allowed_lateness: soon}")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.yaml: windowing.allowed_lateness: invalid duration \"soon\""),
            "{e}"
        );
        let e = parse("windowing: {allowed_lateness: 2600000000000h}")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.yaml: windowing.allowed_lateness: duration \"2600000000000h\" is longer than 30 days"),
            "{e}"
        );
        let e = parse("kafka: {bootstrap: x}").unwrap_err().to_string();
        assert!(
            e.starts_with("c.yaml: kafka.bootstrap: unknown field `bootstrap`"),
            "{e}"
        );
        let e = parse("input: {format: protobuf}").unwrap_err().to_string();
        assert!(
            e.starts_with("c.yaml: input.format: unknown value `protobuf`"),
            "{e}"
        );
    }

    #[test]
    fn credentials_come_from_the_environment_and_never_print() {
        let c = parse("reset: {url: 'https://reset.build:8069'}")
            .unwrap()
            .with_env_credentials(|k| match k {
                "RESET_CLIENT_ID" => Some("me".into()),
                "RESET_CLIENT_SECRET" => Some("hunter2".into()),
                _ => None,
            });
        assert_eq!(c.reset.client_id, "me");
        assert_eq!(c.reset.client_secret.expose(), "hunter2");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn push_modes_are_spelt_as_documented() {
        for (text, mode) in [
            ("every_30_minutes", PushMode::Every30Minutes),
            ("daily", PushMode::Daily),
        ] {
            let c = parse(&format!("reset: {{push: {text}}}")).unwrap();
            assert_eq!(c.reset.push, mode);
        }
        assert!(parse("reset: {push: every30_minutes}").is_err());
    }

    #[test]
    fn the_example_config_validates() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.yaml");
        let c = Config::load(Path::new(path))
            .unwrap()
            .with_env_credentials(|k| (k == "RESET_CLIENT_SECRET").then(|| "s".into()));
        assert!(
            c.validate("config.yaml").is_empty(),
            "{}",
            c.validate("config.yaml")
        );
    }

    #[test]
    fn kafka_properties_written_as_env_references_come_from_the_environment() {
        let text = "kafka: {bootstrap_servers: 'k:9092', properties: {sasl.password: '${KAFKA_PASSWORD}', \
                    sasl.username: '${KAFKA_USER}', client.id: '$literal', x: '${}'}}\n\
                    input: {format: json}\nreset: {url: 'https://r:8069', client_id: i, client_secret: s}\n\
                    monitors: {topic: m}";
        let c = parse(text).unwrap().with_env_credentials(|k| match k {
            "KAFKA_PASSWORD" => Some("hunter2".into()),
            _ => None,
        });
        let property = |k: &str| c.kafka.properties[k].expose().to_string();
        assert_eq!(property("sasl.password"), "hunter2");
        assert_eq!(property("client.id"), "$literal");
        assert_eq!(property("x"), "${}");
        let problems = c.validate("c.yaml").to_string();
        assert_eq!(
            problems,
            "c.yaml: kafka.properties.sasl.username: the environment variable KAFKA_USER is not set"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
