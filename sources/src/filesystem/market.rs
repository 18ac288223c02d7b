//! Files in a market operator's native format (`'format' = 'pjm-lmp'`, ...):
//! each file is parsed whole by its [`MarketFormat`] and its ticks are handed
//! out in batches as rows of the table's declared tick columns.

use std::collections::VecDeque;
use std::path::Path;

use carbonflow_core::{ConnectorConfig, DeadLetter, Row};

use super::{FormatReader, file_name};
use crate::decode::market::MarketDecoder;
use crate::markets::MarketFormat;
use crate::tick::TickColumn;
use crate::{SourceBatch, SourceError};

/// Reads market files one after the other.
pub(super) struct MarketReader {
    decoder: MarketDecoder,
    rows: VecDeque<Row>,
    dead_letters: VecDeque<DeadLetter>,
    file_bytes: u64,
}

impl MarketReader {
    pub(super) fn new(config: &ConnectorConfig, format: &'static dyn MarketFormat, columns: Vec<TickColumn>) -> Self {
        MarketReader {
            decoder: MarketDecoder::new(config, format, columns),
            rows: VecDeque::new(),
            dead_letters: VecDeque::new(),
            file_bytes: 0,
        }
    }
}

impl FormatReader for MarketReader {
    fn measure(&mut self, path: &Path) -> Result<u64, SourceError> {
        std::fs::metadata(path).map(|m| m.len()).map_err(|e| SourceError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    fn start(&mut self, path: &Path) -> Result<(), SourceError> {
        let bytes = std::fs::read(path).map_err(|e| SourceError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.file_bytes = bytes.len() as u64;
        self.rows.clear();
        self.dead_letters.clear();
        self.decoder.decode(&bytes, &file_name(path), &mut self.rows, &mut self.dead_letters);
        Ok(())
    }

    fn read(&mut self, batch: &mut SourceBatch, max_records: usize) -> Result<bool, SourceError> {
        let letters = self.dead_letters.len().min(max_records);
        batch.dead_letters.extend(self.dead_letters.drain(..letters));
        let rows = self.rows.len().min(max_records - letters);
        batch.rows.extend(self.rows.drain(..rows));
        Ok(!self.rows.is_empty() || !self.dead_letters.is_empty())
    }

    fn done_in_file(&self) -> u64 {
        // The file is parsed when it starts; progress moves a file at a time.
        self.file_bytes
    }
}
