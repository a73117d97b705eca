//! How far a long command has come, on standard error: a progress bar when
//! it is a terminal; otherwise (a log, a pipe) a line every five seconds
//! (none for a command done sooner), with the share of the total when it is
//! known, and the rate so far.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(5);

pub struct ProgressLine {
    command: &'static str,
    unit: &'static str,
    total: Option<u64>,
    started: Instant,
    printed: Instant,
    /// Drawn instead of the lines when standard error is a terminal.
    bar: Option<ProgressBar>,
}

/// A bar (a spinner when the total is unknown) that draws itself at most a
/// few times a second, however often it is moved.
fn bar(command: &str, unit: &str, total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) if unit == "bytes" => (
            ProgressBar::new(total),
            "{prefix}: {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {percent}%, {eta} left)"
                .to_string(),
        ),
        Some(total) => (
            ProgressBar::new(total),
            format!("{{prefix}}: {{wide_bar}} {{human_pos}}/{{human_len}} {unit} ({{percent}}%, {{eta}} left)"),
        ),
        None => (
            ProgressBar::new_spinner(),
            format!("{{prefix}}: {{spinner}} {{human_pos}} {unit} in {{elapsed}}"),
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.set_prefix(command.to_string());
    bar
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.finish();
    }
}

impl ProgressLine {
    /// Progress of `command` counted in `unit`s, out of `total` when known.
    pub fn new(command: &'static str, unit: &'static str, total: Option<u64>) -> ProgressLine {
        let now = Instant::now();
        let bar = std::io::stderr()
            .is_terminal()
            .then(|| bar(command, unit, total));
        ProgressLine {
            command,
            unit,
            total,
            started: now,
            printed: now,
            bar,
        }
    }

    /// Takes the bar off the terminal, before the command's summary.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// `done` units so far: the bar moved, or a line printed if the last
    /// one is five seconds old.
    pub fn update(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if self.printed.elapsed() < EVERY {
            return;
        }
        self.printed = Instant::now();
        eprintln!(
            "{}",
            line(
                self.command,
                self.unit,
                done,
                self.total,
                self.started.elapsed()
            )
        );
    }
}

/// `12,345` for 12345.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn line(command: &str, unit: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    let share = match total {
        Some(total) if total > 0 => format!(
            " of {} ({:.0}%)",
            grouped(total),
            100.0 * done as f64 / total as f64
        ),
        _ => String::new(),
    };
    format!(
        "{command}: {} {unit}{share} in {:.0} s, {} {unit}/s",
        grouped(done),
        elapsed.as_secs_f64(),
        grouped(rate as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_how_much_of_what_and_how_fast() {
        assert_eq!(
            line(
                "aggregate",
                "bytes",
                117_450_000,
                Some(261_000_000),
                Duration::from_secs(10)
            ),
            "aggregate: 117,450,000 bytes of 261,000,000 (45%) in 10 s, 11,745,000 bytes/s"
        );
        assert_eq!(
            line("produce", "events", 999, None, Duration::from_secs(5)),
            "produce: 999 events in 5 s, 199 events/s"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1000), "1,000");
    }
}
