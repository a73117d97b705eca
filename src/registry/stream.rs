//! A `monitors.yaml` that is a block list of monitors, loaded as it is read:
//! this thread cuts the entries and adds the monitors in file order, while
//! one thread per core parses them, a chunk at a time.

use super::{read_entry, Building, Parsed, Registry};
use crate::problem::Problems;
use crate::yaml_parts::{count_block_list_entries, each_block_list_entry};
use std::path::Path;
use std::sync::mpsc;

/// The registry of a file that is a block list of monitors, read and
/// parsed one entry at a time (after a first pass that counts them):
/// memory holds the registry and a few chunks of entries, not the
/// file's text. This thread cuts the entries and adds the monitors; the
/// parsing threads parse them meanwhile. `None` when the
/// file is not such a list or an entry does not parse alone: it is then
/// read whole, for its problems worded and placed as the whole file's.
pub(super) fn load(path: &Path, file: &str) -> std::io::Result<Option<Result<Registry, Problems>>> {
    let open = || std::fs::File::open(path).map(std::io::BufReader::new);
    let Some(count) = count_block_list_entries(open()?, "monitors")? else {
        return Ok(None);
    };
    let mut building = Building::new(file);
    building.reserve(count);
    let reader = open()?;
    let parsed_alone = std::thread::scope(|scope| {
        let mut threads = ParsingThreads::start(scope, file);
        let mut chunk = Vec::with_capacity(ENTRIES_PER_CHUNK);
        let cut = each_block_list_entry(reader, "monitors", |entry| {
            chunk.push(entry);
            if chunk.len() < ENTRIES_PER_CHUNK {
                return true;
            }
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(ENTRIES_PER_CHUNK));
            threads.send(full) && threads.settle(&mut building, false)
        })?;
        let sent = cut.is_some() && threads.send(chunk);
        std::io::Result::Ok(sent && threads.settle(&mut building, true))
    })?;
    Ok(parsed_alone.then(|| building.finish()))
}

/// Entries the reading thread hands a parsing thread at once.
const ENTRIES_PER_CHUNK: usize = 256;

/// A chunk of entries, with the index of its first entry in the file.
type Chunk = (usize, Vec<String>);

/// What a parsing thread sends back for a chunk: its monitors, or `None`
/// when one of its entries does not parse alone as one record.
type ParsedChunk = Option<Vec<Parsed>>;

/// A parsing thread of `load`: each chunk it is given (with
/// the index of its first entry in the file) made into monitors, until an
/// entry does not parse alone as one record (`None` sent, and done).
fn parse_chunks(chunks: &mpsc::Receiver<Chunk>, parsed: &mpsc::Sender<ParsedChunk>, file: &str) {
    for (first, chunk) in chunks {
        let mut out = Vec::with_capacity(chunk.len());
        for (i, entry) in chunk.iter().enumerate() {
            let one = read_entry(entry).filter(|records| records.len() == 1);
            let Some(record) = one.and_then(|mut records| records.pop()) else {
                let _ = parsed.send(None);
                return;
            };
            out.push(Parsed::new(record, file, first + i));
        }
        if parsed.send(Some(out)).is_err() {
            return;
        }
    }
}

/// The parsing threads of a streamed file, one per core: chunk k goes to
/// thread k mod n, and is settled in file order.
struct ParsingThreads {
    threads: Vec<(mpsc::SyncSender<Chunk>, mpsc::Receiver<ParsedChunk>)>,
    /// Chunks sent, and entries in them.
    sent: usize,
    entries: usize,
    settled: usize,
}

impl ParsingThreads {
    fn start<'s>(scope: &'s std::thread::Scope<'s, '_>, file: &'s str) -> ParsingThreads {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let threads = (0..n)
            .map(|_| {
                let (to_parse, chunks) = mpsc::sync_channel(2);
                let (done, parsed) = mpsc::channel();
                scope.spawn(move || parse_chunks(&chunks, &done, file));
                (to_parse, parsed)
            })
            .collect();
        ParsingThreads {
            threads,
            sent: 0,
            entries: 0,
            settled: 0,
        }
    }

    /// False when the chunk's thread is gone (an entry did not parse alone).
    fn send(&mut self, chunk: Vec<String>) -> bool {
        let len = chunk.len();
        let thread = &self.threads[self.sent % self.threads.len()];
        self.sent += 1;
        self.entries += len;
        thread.0.send((self.entries - len, chunk)).is_ok()
    }

    /// Settles the chunks parsed so far in file order, stopping at the
    /// first not parsed yet, or (`wait`) every chunk sent. False once an
    /// entry did not parse alone.
    fn settle(&mut self, building: &mut Building<'_>, wait: bool) -> bool {
        while self.settled < self.sent {
            let from = &self.threads[self.settled % self.threads.len()].1;
            let chunk = if wait {
                from.recv().ok()
            } else {
                match from.try_recv() {
                    Ok(chunk) => Some(chunk),
                    Err(mpsc::TryRecvError::Empty) => return true,
                    Err(mpsc::TryRecvError::Disconnected) => None,
                }
            };
            match chunk.flatten() {
                Some(parsed) => parsed.into_iter().for_each(|p| building.settle(p)),
                None => return false,
            }
            self.settled += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks are parsed on other threads and settled in file order: a
    /// file of several chunks loads as the same file parsed in one thread,
    /// with its duplicates and problems in the same places, and one with
    /// an entry that does not parse alone in a later chunk is read whole.
    #[test]
    fn a_file_of_many_chunks_loads_as_it_parses_in_one_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        let file = path.display().to_string();
        let count = 3 * ENTRIES_PER_CHUNK + 5;
        // With `broken`, entries 300 and 600 repeat entry 5's id and every
        // 250th from the 7th has an unknown time zone.
        let text_of = |broken: bool| -> String {
            let entry = |i: usize| {
                let id = match i {
                    300 | 600 if broken => "M5".to_string(),
                    _ => format!("M{i}"),
                };
                let zone = if broken && i % 250 == 7 {
                    "Mars/Base"
                } else {
                    "UTC"
                };
                format!("  - {{connection_id: {id}, module: air, timezone: {zone}, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {{co2: ppm}}}}\n")
            };
            std::iter::once("monitors:\n".to_string())
                .chain((0..count).map(entry))
                .collect()
        };
        let text = text_of(true);
        std::fs::write(&path, &text).unwrap();
        let loaded = Registry::load(&path).unwrap_err().to_string();
        let parsed = Registry::parse(&text, &file).unwrap_err().to_string();
        assert_eq!(loaded, parsed);
        for place in [
            "monitors[7].timezone",
            "monitors[257].timezone",
            "monitors[757].timezone",
            "monitors[300].connection_id",
            "monitors[600].connection_id",
        ] {
            assert!(loaded.contains(place), "{place} in {loaded}");
        }
        let valid = text_of(false);
        std::fs::write(&path, &valid).unwrap();
        let loaded = Registry::load(&path).unwrap();
        let ids = |r: &Registry| {
            r.iter()
                .map(|(_, m)| m.connection_id().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&loaded), ids(&Registry::parse(&valid, &file).unwrap()));
        assert_eq!(loaded.len(), count);
        // An entry that does not parse alone (an alias), in the second
        // chunk and in the last: the whole file's problems.
        let alias = "  - {<<: *a, connection_id: Z}\n  - {connection_id: Y, module: dust}\n";
        let anchored = valid.replacen("  - {connection_id: M0,", "  - &a {connection_id: M0,", 1);
        let after = |id: &str| {
            let line = anchored.find(&format!("connection_id: {id},")).unwrap();
            line + anchored[line..].find('\n').unwrap() + 1
        };
        for at in [after("M400"), anchored.len()] {
            let aliased = format!("{}{alias}{}", &anchored[..at], &anchored[at..]);
            std::fs::write(&path, &aliased).unwrap();
            let loaded = Registry::load(&path).unwrap_err().to_string();
            let whole = Registry::parse_whole(&aliased, &file)
                .unwrap_err()
                .to_string();
            assert_eq!(loaded, whole);
            assert!(loaded.contains("unknown field `<<`"), "{loaded}");
        }
    }
}
