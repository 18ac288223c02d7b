//! The `filesystem` connector: a CSV or JSON-lines file, in one of two modes.
//!
//! * Final (the default): the file holds exactly the view's current rows, one
//!   line per copy, in row order, so it can be diffed against the expected
//!   output of a query. The sink keeps the consolidated rows in memory and
//!   rewrites the whole file, atomically (a temporary file in the same
//!   directory, synced, then renamed over it), on progress at most once per
//!   `sink.flush-interval`, and on finish. A reader never sees half a file.
//! * Changelog (`'sink.changelog' = 'true'`): every change is appended as it
//!   arrives, with an op column first (`+I`/`-D`), and flushed on progress.
//!
//! Both modes create parent directories and leave the output complete and
//! synced to disk when [`Sink::finish`] returns.

mod encode;
mod options;

pub use options::{FileFormat, FilesystemSinkOptions};

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carbonflow_core::{ConnectorConfig, Diff, Epoch, Row, Watermark};

use self::encode::{LineFormat, LineWriter};
use crate::text::{PrintRow, row_kind};
use crate::{Sink, SinkError};

/// Writes a table's changes to a CSV or JSON-lines file.
pub struct FilesystemSink {
    file: PathBuf,
    columns: usize,
    format: LineFormat,
    mode: Mode,
}

enum Mode {
    Final(FinalRows),
    Changelog(LineWriter<File>),
}

/// The consolidated contents that the file of the final mode mirrors.
struct FinalRows {
    rows: BTreeMap<Row, Diff>,
    /// Whether `rows` changed since the file was last written.
    changed: bool,
    flush_interval: Duration,
    last_rewrite: Instant,
}

impl FilesystemSink {
    /// Creates the sink of a `filesystem` table: creates parent directories
    /// and the file itself (empty), so an unwritable path fails now rather
    /// than at the first flush.
    pub fn new(config: &ConnectorConfig) -> Result<FilesystemSink, SinkError> {
        let options = FilesystemSinkOptions::parse(config)?;
        let file = options.output_file();
        let parent = parent_dir(&file);
        fs::create_dir_all(parent).map_err(|error| io_error(parent, &error))?;
        let format = LineFormat::new(&options, &config.schema);
        let mode = if options.changelog {
            Mode::Changelog(format.writer(File::create(&file).map_err(|error| io_error(&file, &error))?))
        } else {
            Mode::Final(FinalRows {
                rows: BTreeMap::new(),
                changed: false,
                flush_interval: options.flush_interval,
                last_rewrite: Instant::now(),
            })
        };
        let sink = FilesystemSink {
            file,
            columns: config.schema.len(),
            format,
            mode,
        };
        if let Mode::Final(rows) = &sink.mode {
            rewrite(&sink.file, &sink.format, &rows.rows).map_err(|error| io_error(&sink.file, &error))?;
        }
        Ok(sink)
    }

    /// The file the sink writes.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn inconsistent(&self, message: String) -> SinkError {
        SinkError::Inconsistent {
            sink: self.file.display().to_string(),
            message,
        }
    }
}

impl Sink for FilesystemSink {
    fn on_batch(&mut self, _epoch: Epoch, updates: &[(Row, Diff)]) -> Result<(), SinkError> {
        for (row, diff) in updates {
            if row.len() != self.columns {
                return Err(self.inconsistent(format!("row {} has {} columns, the table has {}", PrintRow(row), row.len(), self.columns)));
            }
            match &mut self.mode {
                Mode::Final(rows) => rows.apply(row, *diff).map_err(|message| self.inconsistent(message))?,
                Mode::Changelog(out) => out
                    .write(Some(row_kind(*diff)), row, diff.unsigned_abs())
                    .map_err(|error| io_error(&self.file, &error))?,
            }
        }
        Ok(())
    }

    fn on_progress(&mut self, _epoch: Epoch, _watermark: Watermark) -> Result<(), SinkError> {
        match &mut self.mode {
            Mode::Final(rows) if rows.changed && rows.last_rewrite.elapsed() >= rows.flush_interval => {
                rewrite(&self.file, &self.format, &rows.rows).map_err(|error| io_error(&self.file, &error))?;
                rows.written();
                Ok(())
            }
            Mode::Final(_) => Ok(()),
            Mode::Changelog(out) => out.flush().map_err(|error| io_error(&self.file, &error)),
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        match &mut self.mode {
            Mode::Final(rows) => {
                if rows.changed {
                    rewrite(&self.file, &self.format, &rows.rows).map_err(|error| io_error(&self.file, &error))?;
                    rows.written();
                }
                Ok(())
            }
            Mode::Changelog(out) => {
                let result = out
                    .flush()
                    .and_then(|()| out.get_ref().sync_all())
                    .and_then(|()| sync_dir(parent_dir(&self.file)));
                result.map_err(|error| io_error(&self.file, &error))
            }
        }
    }
}

impl FinalRows {
    /// Adds `diff` copies of `row`; a count below zero is refused and names the row.
    fn apply(&mut self, row: &Row, diff: Diff) -> Result<(), String> {
        let held = self.rows.get(row).copied().unwrap_or(0);
        let count = held.checked_add(diff).ok_or_else(|| format!("the count of row {} overflows", PrintRow(row)))?;
        if count < 0 {
            return Err(format!("retraction of {} copies of row {} but the sink holds {held}", -diff, PrintRow(row)));
        }
        if count == 0 {
            self.rows.remove(row);
        } else if let Some(held) = self.rows.get_mut(row) {
            *held = count;
        } else {
            self.rows.insert(row.clone(), count);
        }
        self.changed |= diff != 0;
        Ok(())
    }

    fn written(&mut self) {
        self.changed = false;
        self.last_rewrite = Instant::now();
    }
}

/// Replaces `file` with the lines of `rows`, atomically: readers see the old
/// file or the new one, never a mix, even if the process dies midway.
fn rewrite(file: &Path, format: &LineFormat, rows: &BTreeMap<Row, Diff>) -> io::Result<()> {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    // A dot file in the same directory: hidden from globs, and on the same
    // file system, which `rename` needs to be atomic.
    let temp = file.with_file_name(format!(".{name}.tmp"));
    let result = write_rows(&temp, format, rows)
        .and_then(|()| fs::rename(&temp, file))
        .and_then(|()| sync_dir(parent_dir(file)));
    if result.is_err() {
        // Best effort: the write error is the one worth reporting.
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_rows(path: &Path, format: &LineFormat, rows: &BTreeMap<Row, Diff>) -> io::Result<()> {
    let mut out = format.writer(File::create(path)?);
    for (row, &count) in rows {
        out.write(None, row, count.unsigned_abs())?;
    }
    out.flush()?;
    // Synced before the rename, so a crash cannot leave a renamed but empty file.
    out.get_ref().sync_all()
}

/// Makes renames and new files in `dir` durable: on Unix a directory entry
/// is synced through the directory itself.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Elsewhere the file system offers no portable way, nor needs one as often.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The directory holding `file` (`.` for a bare file name).
fn parent_dir(file: &Path) -> &Path {
    file.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn io_error(path: &Path, error: &io::Error) -> SinkError {
    SinkError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests;
