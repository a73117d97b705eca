//! `aggregate`: raw events from a JSON-lines file in, the exact RESET
//! emissions out. No Kafka, no network, no clock: the line number stands in
//! for the offset, the `now` given stands in for every record's time (event
//! times too far ahead of it are implausible), and end of input closes
//! every window.

mod chunks;

use crate::batch::Batch;
use crate::config::PushMode;
use crate::coverage::Coverage;
use crate::payload::{write_emission_line, Announcements};
use crate::pipeline::{with_announcements, PartitionPipeline};
use crate::registry::{MonitorId, Registry};
use crate::reject::{Reject, RejectCounts};
use crate::window::EngineSettings;
use chunks::Line;
use serde::Serialize;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

/// A rejected sample or record with the line it came from.
#[derive(Debug, Serialize)]
pub struct LineReject<'a> {
    pub line: u64,
    #[serde(flatten)]
    pub reject: &'a Reject,
}

/// What an `aggregate` run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub events: u64,
    pub windows: u64,
    pub readings: u64,
    pub readings_messages: u64,
    pub monitors_messages: u64,
    pub samples_undeclared: u64,
    /// Samples that went into a window (with a value or null).
    pub samples_taken: u64,
    pub rejects: RejectCounts,
    /// The reference time event times were judged against.
    pub now_ms: i64,
}

impl Summary {
    /// Why so many samples were late, when more than 1% were: the input
    /// is likely not in event-time order across monitors.
    pub fn lateness_warning(&self) -> Option<String> {
        let late = self.rejects.get(crate::reject::RejectReason::Late);
        let samples = self.samples_taken + late;
        (late * 100 > samples && samples > 0).then(|| {
            format!(
                "{late} of {samples} samples were late: aggregate keeps one watermark for the whole input, which must be in event-time order across monitors (see the README for a sort command)"
            )
        })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines, {} events, {} windows, {} readings in {} readings messages, {} monitors messages, {} undeclared samples ignored, {} rejected",
            self.lines,
            self.events,
            self.windows,
            self.readings,
            self.readings_messages,
            self.monitors_messages,
            self.samples_undeclared,
            self.rejects.total()
        )?;
        let by_reason: Vec<String> = self
            .rejects
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        if !by_reason.is_empty() {
            write!(f, " ({})", by_reason.join(", "))?;
        }
        write!(
            f,
            "; event times judged against now {}",
            crate::event::format_utc_millis(self.now_ms)
        )
    }
}

/// Where `aggregate` writes what it finds.
pub struct Outputs<'a> {
    /// The emissions, one JSON line each.
    pub emissions: &'a mut dyn Write,
    /// Rejected samples, one JSON line each.
    pub rejects: Option<&'a mut dyn Write>,
    /// Each window sent, counted for the completeness report.
    pub coverage: Option<&'a mut Coverage>,
}

impl<'a> Outputs<'a> {
    /// Emissions only.
    pub fn emissions(out: &'a mut dyn Write) -> Outputs<'a> {
        Outputs {
            emissions: out,
            rejects: None,
            coverage: None,
        }
    }
}

/// Monitors whose messages are made and written at once at end of input.
const FINISH_MONITORS: MonitorId = 4096;

/// Runs events through the core, judging their times against `now_ms`.
/// `decoders` threads decode lines ahead of the core (none: the caller's
/// thread decodes them); the result is the same for any number.
pub fn aggregate(
    registry: Arc<Registry>,
    settings: EngineSettings,
    push: PushMode,
    now_ms: i64,
    input: &mut dyn BufRead,
    decoders: usize,
    outputs: Outputs<'_>,
) -> io::Result<Summary> {
    let Outputs {
        emissions: out,
        rejects: mut rejects_out,
        mut coverage,
    } = outputs;
    skip_byte_order_mark(input)?;
    let mut pipeline = PartitionPipeline::new(Arc::clone(&registry), settings, push);
    let mut announcements = Announcements::default();
    let mut summary = Summary {
        now_ms,
        ..Summary::default()
    };
    let mut rejects = Vec::new();
    // Each message with the `monitors` message it needs first, counted and written.
    let mut write_batches = |batches: Vec<Batch>, summary: &mut Summary, out: &mut dyn Write| {
        for emission in with_announcements(&registry, &mut announcements, batches) {
            match &emission {
                crate::pipeline::Emission::Monitor { .. } => summary.monitors_messages += 1,
                crate::pipeline::Emission::Readings(b) => {
                    summary.readings_messages += 1;
                    summary.readings += b.ends.len() as u64;
                }
            }
            if let Some(c) = coverage.as_deref_mut() {
                c.add_emission(&registry, &emission);
            }
            write_emission_line(out, emission.event(), emission.payload())?;
        }
        io::Result::Ok(())
    };
    chunks::each_decoded_chunk(input, decoders, |chunk| {
        for (text, line, event) in chunk.decoded() {
            summary.lines += 1;
            let number = summary.lines;
            let batches = match line {
                Line::Blank => continue,
                Line::Event => pipeline.record(number, event, Some(now_ms), &mut rejects),
                Line::Undecodable(e) => pipeline.record_undecodable(number, e, text, &mut rejects),
            };
            for reject in rejects.drain(..) {
                summary.rejects.add(reject.reason);
                if let Some(w) = rejects_out.as_deref_mut() {
                    write_reject(w, number, &reject)?;
                }
            }
            delivered(&mut pipeline, &batches);
            write_batches(batches, &mut summary, out)?;
        }
        Ok(())
    })?;
    // End of input: the messages are made and written a range of monitors
    // at a time, not all held at once. With decoding threads, a thread of
    // its own makes them while this one writes the range before (at most
    // two ranges wait); the output is the same.
    if decoders == 0 {
        pipeline.finish_in_parts(FINISH_MONITORS, |pipeline, batches| {
            delivered(pipeline, &batches);
            write_batches(batches, &mut summary, out)
        })?;
    } else {
        std::thread::scope(|scope| {
            let (made, ranges) = std::sync::mpsc::sync_channel(2);
            let pipeline = &mut pipeline;
            scope.spawn(move || {
                pipeline.finish_in_parts(FINISH_MONITORS, |pipeline, batches| {
                    delivered(pipeline, &batches);
                    // The writer stopped on an error: nothing more to make.
                    made.send(batches)
                })
            });
            ranges
                .into_iter()
                .try_for_each(|batches| write_batches(batches, &mut summary, out))
        })?;
    }
    let stats = pipeline.engine().stats();
    summary.events = stats.events;
    summary.windows = stats.windows_closed;
    summary.samples_undeclared = stats.samples_undeclared;
    summary.samples_taken = stats.samples_accepted + stats.samples_null;
    out.flush()?;
    Ok(summary)
}

/// A UTF-8 byte order mark at the start of the input (Windows tools write
/// one) is no part of its first line.
pub fn skip_byte_order_mark(input: &mut dyn BufRead) -> io::Result<()> {
    if input.fill_buf()?.starts_with(b"\xef\xbb\xbf") {
        input.consume(3);
    }
    Ok(())
}

/// A message written out is delivered: the tracker lets go of its windows.
fn delivered(pipeline: &mut PartitionPipeline, batches: &[Batch]) {
    for b in batches {
        pipeline.message_answered(&b.message_id);
    }
}

fn write_reject(w: &mut dyn Write, line: u64, reject: &Reject) -> io::Result<()> {
    let row = LineReject { line, reject };
    serde_json::to_writer(&mut *w, &row)?;
    writeln!(w)
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b'\n' || line[end - 1] == b'\r') {
        end -= 1;
    }
    &line[..end]
}

/// Reads one line, keeping at most `max` bytes of it; returns the full length
/// (so an oversized line is known and skipped without holding it), or `None` at end.
pub fn read_bounded_line(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<usize>> {
    buf.clear();
    let mut length = 0usize;
    let mut any = false;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(any.then_some(length));
        }
        any = true;
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = (max + 2).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        let newline = if done { trailing_newline_len(chunk) } else { 0 };
        length += n;
        input.consume(n);
        if done {
            return Ok(Some(length - newline));
        }
    }
}

fn trailing_newline_len(buf: &[u8]) -> usize {
    buf.iter()
        .rev()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::MAX_RECORD_BYTES;

    /// Emissions, rejects and summary of `aggregate` over `input`.
    fn run(registry: &Arc<Registry>, input: &[u8], decoders: usize) -> (String, String, Summary) {
        run_from(registry, &mut &input[..], decoders)
    }

    fn run_from(
        registry: &Arc<Registry>,
        input: &mut dyn BufRead,
        decoders: usize,
    ) -> (String, String, Summary) {
        let (mut out, mut rejects) = (Vec::new(), Vec::new());
        let summary = aggregate(
            Arc::clone(registry),
            EngineSettings::default(),
            PushMode::default(),
            1_893_456_000_000, // 2030-01-01T00:00:00Z
            input,
            decoders,
            Outputs {
                emissions: &mut out,
                rejects: Some(&mut rejects),
                coverage: None,
            },
        )
        .unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (text(out), text(rejects), summary)
    }

    #[test]
    fn any_number_of_decoding_threads_gives_the_same_output_as_none() {
        let registry =
            Arc::new(Registry::load(std::path::Path::new("examples/monitors.yaml")).unwrap());
        let events = std::fs::read_to_string("examples/events.jsonl").unwrap();
        // Several chunks' worth, with blank, oversized and broken lines
        // among the events, and a last line without its line end.
        let mut input = String::new();
        for (i, line) in events
            .lines()
            .cycle()
            .take(3 * chunks::CHUNK_LINES + 7)
            .enumerate()
        {
            let line = match i % 100 {
                17 => "  ".to_string(),
                40 => "x".repeat(MAX_RECORD_BYTES + 5),
                77 => "{\"connection_id\":".to_string(),
                _ => line.to_string(),
            };
            input.push_str(&line);
            input.push('\n');
        }
        input.pop();
        let inline = run(&registry, input.as_bytes(), 0);
        assert!(inline.2.rejects.total() > 20, "{}", inline.2);
        assert!(inline.2.readings > 0, "{}", inline.2);
        assert_eq!(inline.2.lines, 3 * chunks::CHUNK_LINES as u64 + 7);
        for decoders in [1, 3] {
            let threaded = run(&registry, input.as_bytes(), decoders);
            assert!(
                threaded.0 == inline.0,
                "emissions differ with {decoders} decoders"
            );
            assert_eq!(
                threaded.1, inline.1,
                "rejects differ with {decoders} decoders"
            );
            assert_eq!(threaded.2, inline.2);
        }
        // Read through a buffer smaller than most lines and one larger:
        // lines that run past the reader's buffer are read alike.
        for capacity in [97, 4096] {
            let mut reader = io::BufReader::with_capacity(capacity, input.as_bytes());
            let buffered = run_from(&registry, &mut reader, 0);
            assert!(
                buffered.0 == inline.0,
                "emissions differ through a buffer of {capacity}"
            );
            assert_eq!(buffered.1, inline.1, "buffer of {capacity}");
            assert_eq!(buffered.2, inline.2, "buffer of {capacity}");
        }
    }

    #[test]
    fn bounded_lines_report_their_full_length() {
        let long = "x".repeat(100);
        let text = format!("short\n{long}\r\nlast");
        let mut input = io::Cursor::new(text.into_bytes());
        let mut buf = Vec::new();
        assert_eq!(
            read_bounded_line(&mut input, &mut buf, 10).unwrap(),
            Some(5)
        );
        assert_eq!(trim_line(&buf), b"short");
        assert_eq!(
            read_bounded_line(&mut input, &mut buf, 10).unwrap(),
            Some(100)
        );
        assert!(buf.len() <= 12);
        assert_eq!(
            read_bounded_line(&mut input, &mut buf, 10).unwrap(),
            Some(4)
        );
        assert_eq!(trim_line(&buf), b"last");
        assert_eq!(read_bounded_line(&mut input, &mut buf, 10).unwrap(), None);
    }
}
