//! A stage's stored log (`<stage>.log` of a local run): lines appended as
//! they are reported, the file capped at [`LOG_CAP`]. When a line would take
//! it past the cap, the older half is dropped and a note at the head says how
//! much; the tail, where a failure shows, is always kept. Compaction streams
//! the kept half through a temp file, so memory stays small whatever the
//! cap. The file is created `0600`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::files;

/// The most bytes a stage's stored log holds.
pub const LOG_CAP: u64 = 50 * 1024 * 1024;

/// An append-only log file with a size cap that keeps the tail.
#[derive(Debug)]
pub(crate) struct StageLog {
    path: PathBuf,
    file: File,
    size: u64,
    cap: u64,
    /// Bytes of output dropped so far (not counting our notes).
    dropped: u64,
    /// Length of the note at the head of the file (0 when none).
    note: u64,
}

impl StageLog {
    /// Creates (or empties) the log at `path`, capped at `cap` bytes.
    pub(crate) fn create(path: &Path, cap: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            files::create_private_dir(dir)?;
        }
        let file = files::create_private_file(path)?;
        Ok(StageLog {
            path: path.to_owned(),
            file,
            size: 0,
            cap,
            dropped: 0,
            note: 0,
        })
    }

    /// Appends `line` and a newline, dropping the older half first when the
    /// line would take the file past the cap.
    pub(crate) fn append(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size + len > self.cap && self.size > 0 {
            self.compact()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    /// Keeps the newer half of the file, from a line start, behind a note.
    fn compact(&mut self) -> io::Result<()> {
        let mut old = File::open(&self.path)?;
        let mut from = self.size.saturating_sub(self.cap / 2);
        old.seek(SeekFrom::Start(from))?;
        let mut old = BufReader::new(old);
        // Start at a line: skip the rest of the line `from` falls in (a
        // line is at most a few dozen KiB, see `crate::lines`).
        if from > 0 {
            let mut partial = Vec::new();
            from += old.read_until(b'\n', &mut partial)? as u64;
        }
        self.dropped += from.saturating_sub(self.note);
        let note = format!(
            "[aphex: this log is capped at {}; the first {} bytes of output were dropped, the rest is its tail]\n",
            size_text(self.cap),
            self.dropped
        );
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(note.as_bytes())?;
        let kept = io::copy(&mut old, &mut tmp)?;
        let file = tmp.persist(&self.path).map_err(|e| e.error)?;
        self.file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        drop(file);
        self.note = note.len() as u64;
        self.size = self.note + kept;
        Ok(())
    }
}

/// `bytes` as people say it: `50 MiB`, `4096 bytes`.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_kept_under_the_cap_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/build.log");
        let cap = 4096;
        let mut log = StageLog::create(&path, cap).unwrap();
        let lines: Vec<String> = (0..2000).map(|i| format!("line {i:05}")).collect();
        for l in &lines {
            log.append(l).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() <= cap);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rows = text.lines();
        let note = rows.next().unwrap();
        assert!(note.starts_with("[aphex: this log is capped at"), "{note}");
        let kept: Vec<&str> = rows.collect();
        // Whole lines only, the last ones, in order, up to the very last.
        assert_eq!(kept.last(), Some(&"line 01999"));
        let first = lines.iter().position(|l| l == kept[0]).unwrap();
        assert_eq!(
            kept,
            lines[first..].iter().map(String::as_str).collect::<Vec<_>>()
        );
        // The note counts exactly the output bytes that are gone.
        let dropped: usize = lines[..first].iter().map(|l| l.len() + 1).sum();
        assert!(note.contains(&format!("the first {dropped} bytes")), "{note}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
