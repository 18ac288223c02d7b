//! The dead-letter output: rows the engine could not use (bad input, failed
//! expressions, late events), counted per origin and reason, written as JSON
//! lines to a file or summarised on stderr, and counted in the metrics of the
//! query they belong to. One output serves every query of the process.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use carbonflow_core::{DeadLetter, DeadLetterReason, metrics};

use super::RunFailure;

/// The dead-letter output, shared by every worker and operator.
#[derive(Clone)]
pub struct DeadLetters {
    state: Arc<Mutex<DeadLetterState>>,
    /// The query whose operators push through this handle (the metrics' label).
    query: Arc<str>,
}

struct DeadLetterState {
    file: Option<(String, BufWriter<File>)>,
    counts: BTreeMap<(String, String), u64>,
    shown_on_stderr: usize,
    error: Option<RunFailure>,
}

/// How many dead letters are printed on stderr when no file is given.
const STDERR_DEAD_LETTERS: usize = 10;

impl DeadLetters {
    /// A dead-letter output writing JSON lines to `path`, or summarising on stderr.
    pub fn new(path: Option<&Path>) -> Result<Self, RunFailure> {
        let file = match path {
            Some(path) => {
                let file = File::create(path).map_err(|e| RunFailure::DeadLetterOutput {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                Some((path.display().to_string(), BufWriter::new(file)))
            }
            None => None,
        };
        Ok(DeadLetters {
            state: Arc::new(Mutex::new(DeadLetterState {
                file,
                counts: BTreeMap::new(),
                shown_on_stderr: 0,
                error: None,
            })),
            query: Arc::from(""),
        })
    }

    /// The same output, counting into the metrics of `query`.
    pub fn for_query(&self, query: &str) -> DeadLetters {
        DeadLetters {
            state: self.state.clone(),
            query: Arc::from(query),
        }
    }

    /// Counts a dead letter and writes it out.
    pub fn push(&self, letter: DeadLetter) {
        metrics::DEAD_LETTERS
            .with_label_values(&[&*self.query, letter.origin.as_str(), letter.reason.as_str()])
            .inc();
        if letter.reason == DeadLetterReason::Late {
            metrics::LATE_EVENTS.with_label_values(&[&*self.query, letter.origin.as_str()]).inc();
        }
        let mut state = self.state.lock().expect("dead letters");
        *state.counts.entry((letter.origin.clone(), letter.reason.as_str().to_owned())).or_default() += 1;
        match &mut state.file {
            Some((path, writer)) => {
                let written = serde_json::to_writer(&mut *writer, &letter)
                    .map_err(|e| e.to_string())
                    .and_then(|()| writer.write_all(b"\n").map_err(|e| e.to_string()));
                if let Err(message) = written {
                    let path = path.clone();
                    state.error.get_or_insert(RunFailure::DeadLetterOutput { path, message });
                }
            }
            None => {
                state.shown_on_stderr += 1;
                if state.shown_on_stderr <= STDERR_DEAD_LETTERS {
                    eprintln!("dead letter: {letter}");
                } else if state.shown_on_stderr == STDERR_DEAD_LETTERS + 1 {
                    eprintln!("dead letter: more rows are only counted (use --dead-letter FILE to keep them all)");
                }
            }
        }
    }

    /// Flushes the file and gives the counts, or the first write error.
    pub fn finish(&self) -> Result<BTreeMap<(String, String), u64>, RunFailure> {
        let mut state = self.state.lock().expect("dead letters");
        if let Some((path, writer)) = &mut state.file
            && let Err(e) = writer.flush()
        {
            let path = path.clone();
            state.error.get_or_insert(RunFailure::DeadLetterOutput { path, message: e.to_string() });
        }
        match state.error.take() {
            Some(error) => Err(error),
            None => Ok(state.counts.clone()),
        }
    }
}
