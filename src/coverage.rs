//! The completeness report: per monitor and local date, how many of the
//! day's half-hours had a reading sent (in `run`, acknowledged by RESET),
//! and which did not.
//!
//! A day's windows are those that lie inside it, the last ending at its
//! midnight: 48 on most days, 46 or 50 on an hour's DST change, 47 or 49
//! on a half-hour's (Lord Howe). The windows are kept as one bit each per
//! monitor and day, so a year of a thousand monitors costs a few MB.

use crate::pipeline::Emission;
use crate::registry::{MonitorId, Registry};
use crate::window::clock::{local_midnight, HALF_HOUR_MS};
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

/// The CSV header of the report.
pub const HEADER: &str = "connection_id,date,windows_expected,windows_with_data,missing";

/// Windows with data, by monitor and local date.
#[derive(Debug, Default)]
pub struct Coverage {
    monitors: HashMap<String, MonitorDays>,
}

#[derive(Debug)]
struct MonitorDays {
    tz: Tz,
    /// Bit `k` set: the day's window `k` (0 = the one ending 30 minutes
    /// after its midnight) had data.
    days: BTreeMap<NaiveDate, u64>,
}

/// The windows one readings message carries: `run` counts them once RESET
/// acknowledged the message, `aggregate` as it writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageWindows {
    connection_id: String,
    tz: Tz,
    /// Each window's end, epoch milliseconds.
    ends: Vec<i64>,
}

impl MessageWindows {
    /// Those of a readings message (`None` for a `monitors` message), in
    /// the zone of the shape it was made in.
    pub fn of(registry: &Registry, emission: &Emission) -> Option<MessageWindows> {
        let Emission::Readings(b) = emission else {
            return None;
        };
        let monitor = b.shape.as_ref().map_or(registry.get(b.monitor), |s| &s.0);
        Some(MessageWindows {
            connection_id: b.connection_id.clone(),
            tz: monitor.tz,
            ends: b.ends.clone(),
        })
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    pub connection_id: String,
    pub date: NaiveDate,
    pub windows_expected: usize,
    pub windows_with_data: usize,
    /// Local end times of the windows without data, `HH:MM` (`24:00` for
    /// midnight; a time the day shows twice carries its offset).
    pub missing: Vec<String>,
}

impl Coverage {
    /// Counts the window ending at `end_ms` as one with data.
    pub fn add(&mut self, connection_id: &str, tz: Tz, end_ms: i64) {
        let Some((date, index)) = day_and_index(&tz, end_ms) else {
            return;
        };
        if !self.monitors.contains_key(connection_id) {
            let days = BTreeMap::new();
            self.monitors
                .insert(connection_id.to_string(), MonitorDays { tz, days });
        }
        let monitor = self.monitors.get_mut(connection_id).expect("inserted");
        *monitor.days.entry(date).or_default() |= 1 << index;
    }

    /// Counts the windows of a readings message.
    pub fn add_emission(&mut self, registry: &Registry, emission: &Emission) {
        if let Some(windows) = MessageWindows::of(registry, emission) {
            self.add_windows(&windows);
        }
    }

    /// Counts the windows of one message.
    pub fn add_windows(&mut self, windows: &MessageWindows) {
        for &end in &windows.ends {
            self.add(&windows.connection_id, windows.tz, end);
        }
    }

    /// Every monitor's rows, by connection id then date, from the day of its
    /// first window with data to the day of its last (days between without
    /// any data included).
    pub fn rows(&self) -> Vec<DayRow> {
        let mut ids: Vec<&String> = self.monitors.keys().collect();
        ids.sort();
        let mut rows = Vec::new();
        for id in ids {
            let monitor = &self.monitors[id];
            let (Some(first), Some(last)) = (
                monitor.days.keys().next().copied(),
                monitor.days.keys().next_back().copied(),
            ) else {
                continue;
            };
            for date in first.iter_days().take_while(|d| *d <= last) {
                let bits = monitor.days.get(&date).copied().unwrap_or(0);
                if let Some(row) = day_row(id, &monitor.tz, date, bits) {
                    rows.push(row);
                }
            }
        }
        rows
    }

    /// The report as CSV, header first.
    pub fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{HEADER}")?;
        for r in self.rows() {
            writeln!(
                out,
                "{},{},{},{},{}",
                csv_field(&r.connection_id),
                r.date.format("%Y-%m-%d"),
                r.windows_expected,
                r.windows_with_data,
                r.missing.join(";")
            )?;
        }
        Ok(())
    }
}

/// A connection id as one CSV field (quoted when it holds a comma, a quote
/// or a line break).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The live completeness of one replica's monitors, as its gauges show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Completeness {
    /// Monitors whose latest accepted sample is older than `silent_after`.
    pub silent: usize,
    /// The windows of each monitor's last complete local day, summed.
    pub windows_expected: usize,
    /// Of those, the windows counted (in `run`, those whose reading RESET
    /// acknowledged).
    pub windows_with_data: usize,
}

impl Coverage {
    /// Over `monitors` (each with its latest accepted sample's event time):
    /// how many have been silent for more than `silent_after_ms` at
    /// `now_ms`, and the windows of each one's last complete local day
    /// (the day before its local date at `now_ms`) with and without data.
    pub fn completeness(
        &self,
        registry: &Registry,
        monitors: &HashMap<MonitorId, i64>,
        now_ms: i64,
        silent_after_ms: i64,
    ) -> Completeness {
        let mut c = Completeness::default();
        let Some(now) = chrono::DateTime::from_timestamp_millis(now_ms) else {
            return c;
        };
        // Each zone's yesterday and its window count, worked out once: a
        // fleet has many monitors and few zones.
        let mut days: HashMap<Tz, Option<(NaiveDate, usize)>> = HashMap::new();
        for (&id, &latest) in monitors {
            if now_ms.saturating_sub(latest) > silent_after_ms {
                c.silent += 1;
            }
            let monitor = registry.get(id);
            let day = *days.entry(monitor.tz).or_insert_with(|| {
                let day = now.with_timezone(&monitor.tz).date_naive().pred_opt()?;
                Some((day, day_window_ends(&monitor.tz, day).len()))
            });
            let Some((day, expected)) = day else {
                continue;
            };
            let bits = self
                .monitors
                .get(monitor.connection_id())
                .and_then(|m| m.days.get(&day))
                .copied()
                .unwrap_or(0);
            c.windows_expected += expected;
            c.windows_with_data += with_data(bits, expected);
        }
        c
    }

    /// Forgets every monitor's days before `date`: the live gauges need
    /// only the last few.
    pub fn forget_before(&mut self, date: NaiveDate) {
        for m in self.monitors.values_mut() {
            m.days = m.days.split_off(&date);
        }
        self.monitors.retain(|_, m| !m.days.is_empty());
    }
}

/// The ends of the windows of the local day `date`, in order.
pub fn day_window_ends(tz: &Tz, date: NaiveDate) -> Vec<i64> {
    let (Some(start), Some(end)) = (
        local_midnight(tz, date),
        date.succ_opt().and_then(|d| local_midnight(tz, d)),
    ) else {
        return Vec::new();
    };
    (1..)
        .map(|k| start + k * HALF_HOUR_MS)
        .take_while(|e| *e <= end)
        .collect()
}

/// How many of a day's first `windows` have their bit set in `bits`.
fn with_data(bits: u64, windows: usize) -> usize {
    let mask = u64::MAX
        .checked_shr(64 - windows.min(64) as u32)
        .unwrap_or(0);
    (bits & mask).count_ones() as usize
}

/// The local date of the window ending `end_ms` and its place in that day.
fn day_and_index(tz: &Tz, end_ms: i64) -> Option<(NaiveDate, u32)> {
    let start = chrono::DateTime::from_timestamp_millis(end_ms - HALF_HOUR_MS)?;
    let date = start.with_timezone(tz).date_naive();
    let midnight = local_midnight(tz, date)?;
    let index = (end_ms - midnight) / HALF_HOUR_MS - 1;
    u32::try_from(index)
        .ok()
        .filter(|i| *i < 64)
        .map(|i| (date, i))
}

fn day_row(connection_id: &str, tz: &Tz, date: NaiveDate, bits: u64) -> Option<DayRow> {
    let ends = day_window_ends(tz, date);
    let day_end = *ends.last()?;
    let labels: Vec<(String, String)> = ends
        .iter()
        .map(|&e| {
            let local = tz.timestamp_millis_opt(e).single();
            let time = match local {
                _ if e == day_end => "24:00".to_string(),
                Some(t) => t.format("%H:%M").to_string(),
                None => e.to_string(),
            };
            let offset = local.map_or(String::new(), |t| t.format("%:z").to_string());
            (time, offset)
        })
        .collect();
    let shown_twice = |time: &str| labels.iter().filter(|(t, _)| t == time).count() > 1;
    let missing = labels
        .iter()
        .enumerate()
        .filter(|(k, _)| bits & (1 << k) == 0)
        .map(|(_, (time, offset))| {
            if shown_twice(time) {
                format!("{time}{offset}")
            } else {
                time.clone()
            }
        })
        .collect();
    Some(DayRow {
        connection_id: connection_id.to_string(),
        date,
        windows_expected: ends.len(),
        windows_with_data: with_data(bits, ends.len()),
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_day_has_as_many_windows_as_half_hours_between_its_midnights() {
        let days = [
            ("Australia/Sydney", "2026-04-05", 50),
            ("Australia/Sydney", "2026-10-04", 46),
            ("America/New_York", "2026-03-08", 46),
            ("America/New_York", "2026-11-01", 50),
            ("Australia/Lord_Howe", "2026-04-05", 49),
            ("Australia/Lord_Howe", "2026-10-04", 47),
            ("Asia/Kathmandu", "2026-04-05", 48),
            ("Europe/Berlin", "2026-06-01", 48),
        ];
        for (zone, day, expected) in days {
            let tz: Tz = zone.parse().unwrap();
            assert_eq!(
                day_window_ends(&tz, date(day)).len(),
                expected,
                "{zone} {day}"
            );
        }
    }

    #[test]
    fn a_full_day_has_no_missing_time_and_midnight_is_24_00() {
        let tz: Tz = "Asia/Kathmandu".parse().unwrap();
        let mut c = Coverage::default();
        for end in day_window_ends(&tz, date("2026-05-01")) {
            c.add("K", tz, end);
        }
        // The first window of the next day, and a gap of one window there.
        c.add("K", tz, at("2026-05-02T00:30:00+05:45"));
        c.add("K", tz, at("2026-05-02T01:30:00+05:45"));
        let rows = c.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].windows_expected, rows[0].windows_with_data),
            (48, 48)
        );
        assert!(rows[0].missing.is_empty());
        assert_eq!(rows[1].windows_with_data, 2);
        assert_eq!(rows[1].missing[0], "01:00");
        assert_eq!(rows[1].missing.last().unwrap(), "24:00");
        assert_eq!(rows[1].missing.len(), 46);
    }

    #[test]
    fn a_repeated_time_on_a_fall_back_day_carries_its_offset() {
        // Sydney, 2026-04-05: 03:00 +11:00 becomes 02:00 +10:00.
        let tz: Tz = "Australia/Sydney".parse().unwrap();
        let mut c = Coverage::default();
        let ends = day_window_ends(&tz, date("2026-04-05"));
        for &end in &ends {
            if ![
                at("2026-04-05T02:30:00+11:00"),
                at("2026-04-05T02:30:00+10:00"),
            ]
            .contains(&end)
            {
                c.add("S", tz, end);
            }
        }
        let rows = c.rows();
        assert_eq!(rows[0].windows_expected, 50);
        assert_eq!(rows[0].missing, vec!["02:30+11:00", "02:30+10:00"]);
    }

    #[test]
    fn the_gauges_count_silent_monitors_and_the_last_local_days_windows() {
        let registry = Registry::parse(
            "monitors:\n  - {connection_id: A, module: air, timezone: Asia/Kathmandu, monitor_brand: B, monitor_sku: S, monitor_serial_id: A, parameters: {co2: ppm}}\n  - {connection_id: N, module: air, timezone: America/New_York, monitor_brand: B, monitor_sku: S, monitor_serial_id: N, parameters: {co2: ppm}}\n",
            "m.yaml",
        )
        .unwrap();
        let (a, n) = (registry.lookup("A").unwrap(), registry.lookup("N").unwrap());
        let ktm: Tz = "Asia/Kathmandu".parse().unwrap();
        let mut c = Coverage::default();
        // A: ten windows on 2026-11-01 (its yesterday), and one today.
        for end in day_window_ends(&ktm, date("2026-11-01"))
            .into_iter()
            .take(10)
        {
            c.add("A", ktm, end);
        }
        c.add("A", ktm, at("2026-11-02T08:00:00+05:45"));
        // New York's yesterday is 2026-11-01 too (a 25-hour day, 50 windows): N has none.
        let now = at("2026-11-02T20:00:00+05:45");
        let hour = 3_600_000;
        let latest = HashMap::from([(a, now - hour), (n, now - 3 * hour)]);
        let got = c.completeness(&registry, &latest, now, 2 * hour);
        assert_eq!(
            got,
            Completeness {
                silent: 1,
                windows_expected: 48 + 50,
                windows_with_data: 10,
            }
        );
        // Forgetting the days before today leaves yesterday without data.
        c.forget_before(date("2026-11-02"));
        let got = c.completeness(&registry, &latest, now, 2 * hour);
        assert_eq!(got.windows_with_data, 0);
        assert_eq!(c.rows().len(), 1);
    }

    #[test]
    fn days_without_data_between_two_with_data_are_rows_too() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let mut c = Coverage::default();
        c.add("B", tz, at("2026-06-01T12:00:00+02:00"));
        c.add("B", tz, at("2026-06-03T12:00:00+02:00"));
        let rows = c.rows();
        let summary: Vec<(String, usize)> = rows
            .iter()
            .map(|r| (r.date.to_string(), r.windows_with_data))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("2026-06-01".to_string(), 1),
                ("2026-06-02".to_string(), 0),
                ("2026-06-03".to_string(), 1)
            ]
        );
        assert_eq!(rows[1].missing.len(), 48);
        let mut csv = Vec::new();
        c.write_csv(&mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.starts_with(HEADER), "{csv}");
        assert_eq!(csv.lines().count(), 4);
    }
}
