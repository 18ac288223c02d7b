//! The `filesystem` connector: replays CSV or Parquet files, with Flink's
//! option names so a Flink DDL works unchanged.
//!
//! ```sql
//! CREATE TABLE ticks (...) WITH (
//!   'connector' = 'filesystem',
//!   'path' = 'data/ticks/',        -- a file, or a directory of files
//!   'format' = 'csv',              -- or 'parquet'
//!   'replay.speed' = '60'          -- optional: event time x 60, needs a WATERMARK
//! )
//! ```
//!
//! * A directory means its regular files (not recursive) sorted by name,
//!   skipping names that start with `.` or `_` (Flink's hidden and in-progress
//!   files).
//! * Several workers split the sorted files round-robin: file `i` is read by
//!   worker `i % peers`. A single file is thus read by worker 0 alone, which
//!   keeps its order, and the watermark derived from it, deterministic.
//! * `replay.speed` paces the replay: the first row's event time is pinned to
//!   the instant it is read, and a row with event time `t` is released at
//!   `start + (t - t0) / speed`. Without it rows come as fast as they parse.
//! * [`Source::progress`] counts bytes (CSV) or rows (Parquet) of this
//!   instance's files.
//!
//! How records become rows, and which become dead letters, is the business
//! of [`crate::decode`] (CSV, market formats) and [`parquet`].

mod csv;
mod market;
pub mod parquet;

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carbonflow_core::{ConnectorConfig, Millis, OptionError, Row};

use crate::{Source, SourceBatch, SourceContext, SourceError, SourceProgress, SourceStatus};

use crate::decode::csv::{self as csv_record, CsvOptions};

/// Options every format accepts.
const COMMON_OPTIONS: &[&str] = &["path", "format", "replay.speed"];

/// The checked options of a `filesystem` table.
#[derive(Clone, Debug, PartialEq)]
pub struct FilesystemSourceOptions {
    /// The file or directory to read (`path`).
    pub path: PathBuf,
    /// The file format and its options (`format`, `csv.*`).
    pub format: FileFormat,
    /// Event-time speed-up factor of a paced replay (`replay.speed`); `None`
    /// reads as fast as possible.
    pub replay_speed: Option<f64>,
}

/// The format of the files.
#[derive(Clone, Debug, PartialEq)]
pub enum FileFormat {
    /// Delimited text (`'format' = 'csv'`).
    Csv(CsvOptions),
    /// Apache Parquet (`'format' = 'parquet'`).
    Parquet,
    /// A market operator's native files (`'format' = 'pjm-lmp'`, ...).
    Market(&'static dyn crate::markets::MarketFormat, Vec<crate::tick::TickColumn>),
}

impl FilesystemSourceOptions {
    /// Checks the options and columns of a `filesystem` table without touching
    /// the file system.
    pub fn parse(config: &ConnectorConfig) -> Result<Self, OptionError> {
        let path = PathBuf::from(config.required("path")?);
        let format = match config.required("format")?.to_ascii_lowercase().as_str() {
            "csv" => {
                config.reject_unknown_options(&[COMMON_OPTIONS, csv_record::OPTIONS, &[csv_record::HEADER_OPTION]].concat())?;
                FileFormat::Csv(CsvOptions::parse(config)?)
            }
            "parquet" => {
                config.reject_unknown_options(COMMON_OPTIONS)?;
                parquet::check_columns(config)?;
                FileFormat::Parquet
            }
            other => match crate::markets::find(other) {
                Some(market) => {
                    config.reject_unknown_options(COMMON_OPTIONS)?;
                    FileFormat::Market(market, crate::decode::market::check_columns(config, market)?)
                }
                None => return Err(crate::decode::unknown_format(other, &["csv", "parquet"])),
            },
        };
        let replay_speed = config.parsed("replay.speed", "speed factor (a positive number)", |text| {
            text.trim().parse::<f64>().ok().filter(|speed| speed.is_finite() && *speed > 0.0)
        })?;
        if let (Some(_), None) = (replay_speed, config.event_time_column) {
            return Err(OptionError::Invalid {
                key: "replay.speed".into(),
                value: config.option("replay.speed").unwrap_or_default().into(),
                expected: "setting for a table without a WATERMARK: paced replay follows the event-time column the WATERMARK declares".into(),
            });
        }
        Ok(FilesystemSourceOptions { path, format, replay_speed })
    }
}

/// Opens this worker's share of the files.
pub fn open(config: &ConnectorConfig, context: SourceContext) -> Result<Box<dyn Source>, SourceError> {
    let options = FilesystemSourceOptions::parse(config)?;
    let files: Vec<PathBuf> = list_files(&options.path)?
        .into_iter()
        .skip(context.worker_index)
        .step_by(context.peers.max(1))
        .collect();
    let mut reader: Box<dyn FormatReader> = match options.format {
        FileFormat::Csv(csv_options) => Box::new(csv::CsvReader::new(config, csv_options)),
        FileFormat::Parquet => Box::new(parquet::ParquetReader::new(config)),
        FileFormat::Market(format, columns) => Box::new(market::MarketReader::new(config, format, columns)),
    };
    let units = files.iter().map(|file| reader.measure(file)).collect::<Result<Vec<u64>, SourceError>>()?;
    let cursor = FileCursor {
        files,
        units,
        next: 0,
        in_file: false,
        done_units: 0,
        reader,
    };
    let pacer = match (options.replay_speed, config.event_time_column) {
        (Some(speed), Some(column)) => Some(Pacer { speed, column, anchor: None }),
        _ => None,
    };
    Ok(Box::new(FileSource {
        cursor,
        pacer,
        pending: VecDeque::new(),
        scratch: SourceBatch::default(),
    }))
}

/// The files a path stands for: itself, or a directory's visible regular
/// files sorted by name.
fn list_files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let io_error = |error: std::io::Error| SourceError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    };
    if !fs::metadata(path).map_err(io_error)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let hidden = name.to_string_lossy().starts_with(['.', '_']);
        // `Path::is_file` follows symbolic links, so a link to a file counts.
        if !hidden && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// The short name of a file used in dead-letter positions and errors.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
}

/// Reads the files of one format, one after the other. State that outlives a
/// file (the string interner, scratch buffers) stays in the reader.
trait FormatReader: Send {
    /// Checks a file before reading starts and returns its size in progress
    /// units (bytes or rows).
    fn measure(&mut self, path: &Path) -> Result<u64, SourceError>;

    /// Starts reading `path`, ending any previous file.
    fn start(&mut self, path: &Path) -> Result<(), SourceError>;

    /// Appends at most `max_records` records (rows or dead letters) of the
    /// current file to `batch`; `false` once the file is exhausted.
    fn read(&mut self, batch: &mut SourceBatch, max_records: usize) -> Result<bool, SourceError>;

    /// Progress units done in the current file.
    fn done_in_file(&self) -> u64;
}

/// Walks this instance's files in order.
struct FileCursor {
    files: Vec<PathBuf>,
    /// Progress units of each file, from [`FormatReader::measure`].
    units: Vec<u64>,
    next: usize,
    in_file: bool,
    /// Units of the files already finished.
    done_units: u64,
    reader: Box<dyn FormatReader>,
}

impl FileCursor {
    /// Appends up to `max_records` records; `true` once every file is read.
    fn read(&mut self, batch: &mut SourceBatch, max_records: usize) -> Result<bool, SourceError> {
        let mut budget = max_records;
        while budget > 0 {
            if !self.in_file {
                let Some(path) = self.files.get(self.next) else { return Ok(true) };
                self.reader.start(path)?;
                self.in_file = true;
            }
            let before = batch.rows.len() + batch.dead_letters.len();
            let more = self.reader.read(batch, budget)?;
            budget -= batch.rows.len() + batch.dead_letters.len() - before;
            if !more {
                self.done_units += self.units[self.next];
                self.next += 1;
                self.in_file = false;
            }
        }
        Ok(!self.in_file && self.next == self.files.len())
    }

    fn progress(&self) -> SourceProgress {
        let current = if self.in_file { self.reader.done_in_file() } else { 0 };
        SourceProgress {
            done: self.done_units + current,
            total: Some(self.units.iter().sum()),
        }
    }
}

/// Releases rows at their event time scaled by the speed factor.
struct Pacer {
    speed: f64,
    /// The event-time column.
    column: usize,
    /// The wall-clock instant and event time of the first row.
    anchor: Option<(Instant, Millis)>,
}

impl Pacer {
    /// How long `row` must still wait, or `None` if it is due. A row without
    /// an event time, or earlier than the first row, is due at once.
    fn wait(&mut self, row: &Row, now: Instant) -> Option<Duration> {
        let event_time = row.get(self.column).as_timestamp()?;
        let (start, first) = *self.anchor.get_or_insert((now, event_time));
        let offset = Duration::from_secs_f64(event_time.saturating_sub(first).max(0) as f64 / 1000.0 / self.speed);
        offset.checked_sub(now.duration_since(start)).filter(|wait| !wait.is_zero())
    }
}

/// The longest a paced poll sleeps before returning [`SourceStatus::Idle`].
const MAX_SLEEP: Duration = Duration::from_millis(1);

/// A `filesystem` source instance.
struct FileSource {
    cursor: FileCursor,
    pacer: Option<Pacer>,
    /// Rows read but not yet due (paced replay only).
    pending: VecDeque<Row>,
    scratch: SourceBatch,
}

impl FileSource {
    /// Paced read: rows wait in `pending` until due; dead letters pass at once.
    /// Returns whether the input is exhausted and the wait before the next row.
    fn poll_paced(&mut self, batch: &mut SourceBatch, max_rows: usize) -> Result<(bool, Option<Duration>), SourceError> {
        let Some(pacer) = self.pacer.as_mut() else {
            return Ok((self.cursor.read(batch, max_rows)?, None));
        };
        let mut released = 0;
        let mut exhausted = false;
        while released < max_rows {
            if self.pending.is_empty() {
                if exhausted {
                    break;
                }
                self.scratch.clear();
                exhausted = self.cursor.read(&mut self.scratch, max_rows)?;
                batch.dead_letters.append(&mut self.scratch.dead_letters);
                self.pending.extend(self.scratch.rows.drain(..));
                continue;
            }
            let now = Instant::now();
            while released < max_rows
                && let Some(row) = self.pending.front()
            {
                if let Some(wait) = pacer.wait(row, now) {
                    return Ok((false, Some(wait)));
                }
                batch.rows.extend(self.pending.pop_front());
                released += 1;
            }
        }
        Ok((exhausted && self.pending.is_empty(), None))
    }
}

impl Source for FileSource {
    fn poll(&mut self, batch: &mut SourceBatch, max_rows: usize) -> Result<SourceStatus, SourceError> {
        let before = batch.rows.len() + batch.dead_letters.len();
        let (exhausted, wait) = self.poll_paced(batch, max_rows)?;
        let produced = batch.rows.len() + batch.dead_letters.len() > before;
        // `Finished` only comes with an empty poll, so no caller can drop the
        // last rows by treating `Finished` as "nothing in this batch".
        Ok(if produced {
            SourceStatus::Ready
        } else if exhausted {
            SourceStatus::Finished
        } else {
            if let Some(wait) = wait {
                std::thread::sleep(wait.min(MAX_SLEEP));
            }
            SourceStatus::Idle
        })
    }

    fn progress(&self) -> Option<SourceProgress> {
        Some(self.cursor.progress())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use carbonflow_core::{DataType, Datum, DeadLetter, Field, Schema};

    use super::*;

    /// A `filesystem` table over `path` with these columns and extra options.
    pub(crate) fn table(path: &Path, format: &str, columns: &[(&str, DataType)], options: &[(&str, &str)]) -> ConnectorConfig {
        let mut map = BTreeMap::from([
            ("connector".to_owned(), "filesystem".to_owned()),
            ("path".to_owned(), path.display().to_string()),
            ("format".to_owned(), format.to_owned()),
        ]);
        map.extend(options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        ConnectorConfig {
            table: "ticks".into(),
            schema: Schema::new(columns.iter().map(|(name, data_type)| Field::new(*name, *data_type)).collect()),
            event_time_column: None,
            primary_key: None,
            options: map,
        }
    }

    /// Everything an instance produces, polled in small batches.
    pub(crate) fn read_all(config: &ConnectorConfig, context: SourceContext) -> (Vec<Row>, Vec<DeadLetter>) {
        let mut source = crate::create_source(config, context).expect("source opens");
        let mut batch = SourceBatch::default();
        let (mut rows, mut dead) = (Vec::new(), Vec::new());
        for _ in 0..1_000_000 {
            batch.clear();
            let status = source.poll(&mut batch, 7).expect("poll");
            rows.append(&mut batch.rows);
            dead.append(&mut batch.dead_letters);
            if status == SourceStatus::Finished {
                let progress = source.progress().expect("file sources know their progress");
                assert_eq!(Some(progress.done), progress.total, "progress is complete at the end");
                return (rows, dead);
            }
        }
        panic!("source never finished");
    }

    fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).expect("write test file");
    }

    #[test]
    fn directories_skip_hidden_files_and_sort_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.csv", "2\n");
        write(dir.path(), "a.csv", "1\n");
        write(dir.path(), ".hidden.csv", "9\n");
        write(dir.path(), "_SUCCESS", "9\n");
        fs::create_dir(dir.path().join("nested")).unwrap();
        write(&dir.path().join("nested"), "c.csv", "9\n");
        let config = table(dir.path(), "csv", &[("v", DataType::Int)], &[]);
        let (rows, dead) = read_all(&config, SourceContext::SINGLE);
        assert!(dead.is_empty());
        assert_eq!(rows, vec![Row::new(vec![Datum::Int(1)]), Row::new(vec![Datum::Int(2)])]);
    }

    #[test]
    fn workers_split_files_round_robin_and_together_read_everything() {
        let dir = tempfile::tempdir().unwrap();
        for file in 0..5 {
            let text: String = (0..4).map(|line| format!("{file},{line}\n")).collect();
            write(dir.path(), &format!("part-{file}.csv"), &text);
        }
        let config = table(dir.path(), "csv", &[("file", DataType::Int), ("line", DataType::Int)], &[]);
        let (mut single, _) = read_all(&config, SourceContext::SINGLE);
        assert_eq!(single.len(), 20);
        for peers in [2, 3] {
            let mut union = Vec::new();
            for worker_index in 0..peers {
                let (rows, _) = read_all(&config, SourceContext::worker(worker_index, peers));
                for row in &rows {
                    assert_eq!(row.get(0).as_i64().unwrap() as usize % peers, worker_index, "file i goes to worker i % peers");
                }
                union.extend(rows);
            }
            union.sort();
            single.sort();
            assert_eq!(union, single, "{peers} workers");
        }
        // More workers than files: the extra ones finish at once.
        let mut idle = crate::create_source(&config, SourceContext::worker(7, 8)).unwrap();
        assert_eq!(idle.poll(&mut SourceBatch::default(), 10).unwrap(), SourceStatus::Finished);
    }

    #[test]
    fn a_missing_path_is_an_io_error_at_open_not_at_validation() {
        let config = table(Path::new("/nonexistent/ticks.csv"), "csv", &[("v", DataType::Int)], &[]);
        assert!(crate::validate_source(&config).is_ok());
        let error = crate::create_source(&config, SourceContext::SINGLE).err().expect("open fails");
        assert!(matches!(error, SourceError::Io { ref path, .. } if path == "/nonexistent/ticks.csv"), "{error}");
    }

    #[test]
    fn options_are_validated() {
        let columns = [("v", DataType::Int)];
        let path = Path::new("x");
        let unknown = table(path, "csv", &columns, &[("csv.field-delimeter", ";")]);
        assert!(matches!(crate::validate_source(&unknown), Err(OptionError::Unknown { key, .. }) if key == "csv.field-delimeter"));
        let csv_option_on_parquet = table(path, "parquet", &columns, &[("csv.header", "true")]);
        assert!(matches!(crate::validate_source(&csv_option_on_parquet), Err(OptionError::Unknown { .. })));
        let bad_format = table(path, "json", &columns, &[]);
        assert!(matches!(crate::validate_source(&bad_format), Err(OptionError::Invalid { key, .. }) if key == "format"));
        let mut no_path = table(path, "csv", &columns, &[]);
        no_path.options.remove("path");
        assert_eq!(crate::validate_source(&no_path), Err(OptionError::Missing { key: "path".into() }));
        for speed in ["0", "-1", "fast", "inf"] {
            let mut paced = table(path, "csv", &columns, &[("replay.speed", speed)]);
            paced.event_time_column = Some(0);
            assert!(
                matches!(crate::validate_source(&paced), Err(OptionError::Invalid { key, .. }) if key == "replay.speed"),
                "{speed}"
            );
        }
        let without_watermark = table(path, "csv", &columns, &[("replay.speed", "2")]);
        let error = crate::validate_source(&without_watermark).unwrap_err();
        assert!(error.to_string().contains("WATERMARK"), "{error}");
    }

    #[test]
    fn paced_replay_follows_event_time_scaled_by_speed() {
        let dir = tempfile::tempdir().unwrap();
        // 0, 2 and 4 seconds of event time at 100x: released at 0, 20 and 40 ms.
        write(
            dir.path(),
            "ticks.csv",
            "2024-01-01 00:00:00,1\n2024-01-01 00:00:02,2\nnot a time row\n2024-01-01 00:00:04,3\n",
        );
        let mut config = table(
            dir.path(),
            "csv",
            &[("ts", DataType::Timestamp), ("v", DataType::Int)],
            &[("replay.speed", "100")],
        );
        config.event_time_column = Some(0);
        let mut source = crate::create_source(&config, SourceContext::SINGLE).unwrap();
        let start = Instant::now();
        let mut batch = SourceBatch::default();
        let mut released = Vec::new();
        let mut idle_polls = 0;
        let mut dead_letters = 0;
        loop {
            batch.clear();
            let before_poll = Instant::now();
            let status = source.poll(&mut batch, 100).unwrap();
            assert!(
                before_poll.elapsed() < Duration::from_millis(200),
                "a poll never blocks for long (generous for a loaded machine)"
            );
            dead_letters += batch.dead_letters.len();
            for row in batch.rows.drain(..) {
                released.push((row.get(1).as_i64().unwrap(), start.elapsed()));
            }
            match status {
                SourceStatus::Finished => break,
                SourceStatus::Idle => idle_polls += 1,
                SourceStatus::Ready => {}
            }
        }
        assert!(idle_polls >= 5, "the source waits in short idle polls, not by blocking: {idle_polls}");
        assert_eq!(dead_letters, 1, "the malformed line is dead-lettered, not paced");
        assert_eq!(released.iter().map(|(v, _)| *v).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(released[1].1 >= Duration::from_millis(20), "second row after 20 ms: {released:?}");
        assert!(released[2].1 >= Duration::from_millis(40), "third row after 40 ms: {released:?}");
        assert!(released[2].1 < Duration::from_secs(2), "but nowhere near real time: {released:?}");
    }
}
