//! `aggregate`'s input in chunks of whole lines, decoded ahead of the
//! engine on worker threads and handed back in file order.

use super::read_bounded_line;
use crate::codec::{DecodeError, Decoder, MAX_RECORD_BYTES};
use crate::config::InputFormat;
use crate::event::{ReusedEvent, SensorEvent};
use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

/// Lines a chunk holds at most.
pub(super) const CHUNK_LINES: usize = 1024;

/// One line of a chunk, once decoded.
#[derive(Debug)]
pub enum Line {
    /// Only space: skipped, though counted.
    Blank,
    /// The chunk's event at the line's index.
    Event,
    Undecodable(DecodeError),
}

/// Consecutive lines of the input: their text (each cut at the record
/// limit), and once decoded, what each holds. Reused from chunk to chunk.
#[derive(Default)]
pub struct Chunk {
    text: Vec<u8>,
    /// Each line's start in `text` and its full length in the input.
    spans: Vec<(usize, usize)>,
    lines: Vec<Line>,
    events: Vec<ReusedEvent>,
}

impl Chunk {
    /// Reads up to `CHUNK_LINES` lines; false at the end of the input.
    /// Whole lines the reader holds are copied straight from its buffer;
    /// one that runs past it, or past the record limit, is read alone.
    fn fill(&mut self, input: &mut dyn BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
        self.text.clear();
        self.spans.clear();
        while self.spans.len() < CHUNK_LINES {
            if self.take_held_lines(input)? {
                continue;
            }
            let Some(length) = read_bounded_line(input, line, MAX_RECORD_BYTES)? else {
                break;
            };
            self.add(super::trim_line(line), length);
        }
        Ok(!self.spans.is_empty())
    }

    /// Takes the whole lines at the front of the reader's buffer, each
    /// within the record limit, while the chunk has room: whether any.
    fn take_held_lines(&mut self, input: &mut dyn BufRead) -> io::Result<bool> {
        let held = input.fill_buf()?;
        let mut taken = 0;
        for newline in memchr::memchr_iter(b'\n', held) {
            let line = &held[taken..=newline];
            if self.spans.len() == CHUNK_LINES || line.len() > MAX_RECORD_BYTES + 2 {
                break;
            }
            let text = super::trim_line(line);
            self.add(text, text.len());
            taken = newline + 1;
        }
        input.consume(taken);
        Ok(taken > 0)
    }

    /// Adds a line: its text (cut at the record limit) and full length.
    fn add(&mut self, text: &[u8], length: usize) {
        self.spans.push((self.text.len(), length));
        self.text.extend_from_slice(text);
    }

    /// Decodes every line, each into an event reused from the last chunk.
    fn decode(&mut self, decoder: &Decoder) {
        self.lines.clear();
        if self.events.len() < self.spans.len() {
            self.events
                .resize_with(self.spans.len(), ReusedEvent::default);
        }
        for i in 0..self.spans.len() {
            let (start, end, length) = self.span(i);
            let text = &self.text[start..end];
            let line = if length > MAX_RECORD_BYTES {
                Line::Undecodable(DecodeError::TooLarge(length, MAX_RECORD_BYTES))
            } else if text.iter().all(u8::is_ascii_whitespace) {
                Line::Blank
            } else {
                match decoder.decode_into(text, &mut self.events[i]) {
                    Ok(()) => Line::Event,
                    Err(e) => Line::Undecodable(e),
                }
            };
            self.lines.push(line);
        }
    }

    /// Where line `i`'s text (cut at the record limit) starts and ends in
    /// `text`, and the line's full length.
    fn span(&self, i: usize) -> (usize, usize, usize) {
        let (start, length) = self.spans[i];
        let end = self.spans.get(i + 1).map_or(self.text.len(), |s| s.0);
        (start, end, length)
    }

    /// Each line in order: its text, what it holds, and its event.
    pub fn decoded(&self) -> impl Iterator<Item = (&[u8], &Line, &SensorEvent)> {
        self.lines.iter().enumerate().map(|(i, line)| {
            let (start, end, _) = self.span(i);
            (&self.text[start..end], line, &self.events[i].event)
        })
    }
}

/// Reads chunks of `input` and decodes them on `workers` threads (on the
/// caller's thread when 0), handing each to `take` in file order. At most
/// two chunks per worker are in flight.
pub fn each_decoded_chunk(
    input: &mut dyn BufRead,
    workers: usize,
    mut take: impl FnMut(&Chunk) -> io::Result<()>,
) -> io::Result<()> {
    let mut line = Vec::new();
    if workers == 0 {
        let decoder = Decoder::new(InputFormat::Json);
        let mut chunk = Chunk::default();
        while chunk.fill(input, &mut line)? {
            chunk.decode(&decoder);
            take(&chunk)?;
        }
        return Ok(());
    }
    let pool = (0..workers)
        .map(|_| Worker::start())
        .collect::<io::Result<Vec<Worker>>>()?;
    let mut spare: Vec<Chunk> = Vec::new();
    let mut in_flight = VecDeque::new();
    let mut sent = 0usize;
    let mut more = true;
    loop {
        while more && in_flight.len() < 2 * workers {
            let mut chunk = spare.pop().unwrap_or_default();
            more = chunk.fill(input, &mut line)?;
            if more {
                let worker = sent % workers;
                pool[worker].send(chunk);
                in_flight.push_back(worker);
                sent += 1;
            }
        }
        let Some(worker) = in_flight.pop_front() else {
            break;
        };
        let chunk = pool[worker].receive();
        take(&chunk)?;
        spare.push(chunk);
    }
    for worker in pool {
        worker.stop();
    }
    Ok(())
}

/// A thread that decodes the chunks sent to it, in the order sent.
struct Worker {
    to: SyncSender<Chunk>,
    from: Receiver<Chunk>,
    thread: JoinHandle<()>,
}

impl Worker {
    /// A new thread; an error when the system has none to give.
    fn start() -> io::Result<Worker> {
        let (to, inbox) = sync_channel::<Chunk>(2);
        let (outbox, from) = sync_channel(2);
        let thread = thread::Builder::new()
            .name("decoder".into())
            .spawn(move || {
                let decoder = Decoder::new(InputFormat::Json);
                for mut chunk in inbox {
                    chunk.decode(&decoder);
                    if outbox.send(chunk).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker { to, from, thread })
    }

    fn send(&self, chunk: Chunk) {
        self.to
            .send(chunk)
            .expect("a decoding thread lives as long as its sender");
    }

    fn receive(&self) -> Chunk {
        self.from
            .recv()
            .expect("a decoding thread answers every chunk")
    }

    fn stop(self) {
        drop(self.to);
        self.thread
            .join()
            .expect("a decoding thread does not panic");
    }
}
