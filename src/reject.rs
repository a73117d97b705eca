//! Rejected input: why a record or a sample was not used, with enough of it to
//! find and fix it. Rejects go to the dead-letter output; the pipeline goes on.

use crate::event::{format_utc_millis, SampleValue};
use serde::Serialize;
use std::fmt;

/// Why input was rejected. The names are stable: they label metrics and dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The record's bytes could not be decoded.
    Decode,
    /// No monitor with this connection_id is registered.
    UnknownMonitor,
    /// A water, energy or circularity event without a channel_id.
    MissingChannel,
    /// A channel_id the monitor does not declare.
    UnknownChannel,
    /// Text or another non-number where a number belongs.
    NotANumber,
    /// NaN or infinity.
    NotFinite,
    /// A unit that is unknown or cannot be converted to the declared one.
    Unit,
    /// A value that cannot physically be (negative concentration, rh over 100...).
    Impossible,
    /// The sample's window had already closed.
    Late,
    /// An event time that cannot be true: before 2000, after 2099, or more
    /// than `windowing.max_future_skew` ahead of its record's time.
    ImplausibleTime,
    /// RESET refused the message for good (code 10400).
    RejectedByReset,
    /// RESET answered 10500 to the message `reset.max_attempts` times while
    /// it accepted other messages: given up.
    #[serde(rename = "reset_10500")]
    Reset10500,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::Decode,
        RejectReason::UnknownMonitor,
        RejectReason::MissingChannel,
        RejectReason::UnknownChannel,
        RejectReason::NotANumber,
        RejectReason::NotFinite,
        RejectReason::Unit,
        RejectReason::Impossible,
        RejectReason::Late,
        RejectReason::ImplausibleTime,
        RejectReason::RejectedByReset,
        RejectReason::Reset10500,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RejectReason::Decode => "decode",
            RejectReason::UnknownMonitor => "unknown_monitor",
            RejectReason::MissingChannel => "missing_channel",
            RejectReason::UnknownChannel => "unknown_channel",
            RejectReason::NotANumber => "not_a_number",
            RejectReason::NotFinite => "not_finite",
            RejectReason::Unit => "unit",
            RejectReason::Impossible => "impossible",
            RejectReason::Late => "late",
            RejectReason::ImplausibleTime => "implausible_time",
            RejectReason::RejectedByReset => "rejected_by_reset",
            RejectReason::Reset10500 => "reset_10500",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rejected record or sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    pub reason: RejectReason,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "utc_time")]
    pub event_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<SampleValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The start of a record that could not be decoded (lossy UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// A message RESET refused: its id and its payload, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<serde_json::Value>,
}

fn utc_time<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(ms) => s.serialize_str(&format_utc_millis(*ms)),
        None => s.serialize_none(),
    }
}

impl Reject {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Reject {
        Reject {
            reason,
            detail: detail.into(),
            connection_id: None,
            event_time: None,
            channel_id: None,
            parameter: None,
            value: None,
            unit: None,
            record: None,
            message_id: None,
            message: None,
        }
    }

    /// A record whose bytes could not be decoded, with the start of it.
    pub fn undecodable(error: &crate::codec::DecodeError, bytes: &[u8]) -> Reject {
        let mut r = Reject::new(RejectReason::Decode, error.to_string());
        r.record = Some(String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned());
        r
    }
}

/// Counts of rejects by reason, in a fixed order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; RejectReason::ALL.len()]);

impl RejectCounts {
    pub fn add(&mut self, reason: RejectReason) {
        self.0[reason as usize] += 1;
    }

    pub fn get(&self, reason: RejectReason) -> u64 {
        self.0[reason as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Non-zero counts, by reason.
    pub fn iter(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|(_, n)| *n > 0)
    }
}
