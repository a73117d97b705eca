//! Output files that cannot destroy inputs or be left half written: an
//! output that is the same file as an input or as another output is refused
//! before anything is opened for writing (same device and inode when the
//! file exists, the same canonical path otherwise), and a regular file is
//! written beside its place and renamed there only when the run succeeded.
//! FIFOs, devices and standard output are written directly; an output
//! whose reader stops reading ends the run quietly (`ReaderGone`).

use anyhow::{bail, Context as _, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where a path leads: the file's identity if it exists, its canonical path otherwise.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    Inode(u64, u64),
    Path(PathBuf),
}

fn identity(path: &Path) -> Identity {
    if let Ok(m) = std::fs::metadata(path) {
        return Identity::Inode(m.dev(), m.ino());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = parent
        .canonicalize()
        .unwrap_or_else(|_| parent.to_path_buf());
    Identity::Path(parent.join(path.file_name().unwrap_or_default()))
}

/// Refuses outputs that are the same file as an input or as each other.
/// Each path comes with the option that named it; `-` (standard input or
/// output) is never a file.
pub fn check_distinct(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<()> {
    let is_file = |p: &Path| p != Path::new("-");
    for (i, (name, out)) in outputs.iter().enumerate().filter(|(_, (_, p))| is_file(p)) {
        let id = identity(out);
        let earlier = inputs
            .iter()
            .chain(&outputs[..i])
            .filter(|(_, p)| is_file(p));
        for (other, path) in earlier {
            if identity(path) == id {
                bail!(
                    "{name} {} and {other} {} are the same file: refusing to write over it",
                    out.display(),
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// An output being written: to a temporary file beside a regular file's
/// place (renamed over it by `finish`; removed if dropped unfinished), or
/// directly to a FIFO or device.
pub struct OutputFile {
    writer: BufWriter<File>,
    /// The path as given, for errors.
    name: String,
    /// The temporary file and the place it is renamed to.
    rename: Option<(PathBuf, PathBuf)>,
}

impl OutputFile {
    pub fn create(path: &Path) -> Result<OutputFile> {
        let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file());
        if special {
            let f =
                File::create(path).with_context(|| format!("{}: cannot open", path.display()))?;
            return Ok(OutputFile {
                writer: BufWriter::new(f),
                name: path.display().to_string(),
                rename: None,
            });
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let temporary = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let f = File::create(&temporary).with_context(|| {
            format!(
                "{}: cannot create (it is written first to {})",
                path.display(),
                temporary.display()
            )
        })?;
        Ok(OutputFile {
            writer: BufWriter::new(f),
            name: path.display().to_string(),
            rename: Some((temporary, path.to_path_buf())),
        })
    }

    /// Standard output, written directly (its own buffer, not Rust's).
    pub fn standard_output() -> Result<OutputFile> {
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("standard output: cannot open")?;
        Ok(OutputFile {
            writer: BufWriter::new(File::from(fd)),
            name: "standard output".to_string(),
            rename: None,
        })
    }

    /// Flushes and puts the file in its place.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        if let Some((temporary, place)) = self.rename.take() {
            std::fs::rename(&temporary, &place)
                .with_context(|| format!("{}: cannot put the output in place", place.display()))?;
        }
        Ok(())
    }
}

/// An error of the file `name`, saying what failed. Cold: kept out of
/// the paths that read and write every line.
#[cold]
#[inline(never)]
pub fn named(name: &str, what: &str, e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return std::io::Error::new(e.kind(), ReaderGone(name.to_string()));
    }
    std::io::Error::new(e.kind(), format!("{name}: {what}: {e}"))
}

/// The reader of an output (a pipe, a FIFO) stopped reading (`| head`): the
/// run ends there, quietly and with status 141, as `cat` killed by SIGPIPE.
#[derive(Debug)]
pub struct ReaderGone(String);

impl std::fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: its reader stopped reading", self.0)
    }
}

impl std::error::Error for ReaderGone {}

/// Whether `e` is, or was caused by, an output's reader going away.
pub fn reader_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<ReaderGone>())
    })
}

/// Its errors name the output.
impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let name = &self.name;
        self.writer
            .write(buf)
            .map_err(|e| named(name, "cannot write", e))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let name = &self.name;
        self.writer
            .write_all(buf)
            .map_err(|e| named(name, "cannot write", e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let name = &self.name;
        self.writer
            .flush()
            .map_err(|e| named(name, "cannot write", e))
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let Some((temporary, _)) = &self.rename {
            let _ = std::fs::remove_file(temporary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_by_any_name_is_refused_and_distinct_files_pass() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::write(&input, "x").unwrap();
        let dotted = dir.path().join(".").join("in");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        assert!(check_distinct(&[("--input", &input)], &[("--output", &dotted)]).is_err());
        assert!(check_distinct(&[], &[("--output", &a), ("--rejects", &a)]).is_err());
        assert!(check_distinct(
            &[("--input", &input)],
            &[("--output", &a), ("--rejects", &b)]
        )
        .is_ok());
        let dash = Path::new("-");
        assert!(check_distinct(&[("--input", dash)], &[("--output", dash)]).is_ok());
    }

    #[test]
    fn an_unfinished_output_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let place = dir.path().join("out");
        std::fs::write(&place, "old").unwrap();
        let mut out = OutputFile::create(&place).unwrap();
        out.write_all(b"new").unwrap();
        drop(out);
        assert_eq!(std::fs::read_to_string(&place).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut out = OutputFile::create(&place).unwrap();
        out.write_all(b"new").unwrap();
        out.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&place).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
