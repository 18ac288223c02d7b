//! Parquet files, read through arrow-rs.
//!
//! Declared columns are matched to the file's top-level columns by name
//! (case-insensitive) and only those are decoded. Each file is checked when the
//! source opens: a declared column that is missing, or whose Arrow type does not
//! fit the declared type, is a [`SourceError`] naming the column and the file.
//!
//! | declared type | Arrow types read                                           |
//! | ------------- | ---------------------------------------------------------- |
//! | BOOLEAN       | Boolean                                                    |
//! | BIGINT        | Int8..Int64, UInt8..UInt32                                 |
//! | DOUBLE        | Float32, Float64, Decimal128, and the integers above        |
//! | STRING        | Utf8, LargeUtf8, Utf8View                                  |
//! | TIMESTAMP     | Timestamp of any unit and time zone (the values are UTC), Date32 (midnight UTC) |
//!
//! UInt64 is refused (it does not fit BIGINT); nulls are NULL. Parquet files
//! carry typed values, so there are no parse errors and no dead letters here.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use arrow::array::{Array, ArrayAccessor, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType as ArrowType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
};
use carbonflow_core::{ConnectorConfig, DataType, Datum, Field, Interner, OptionError, Row};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{FormatReader, file_name};
use crate::{SourceBatch, SourceError};

/// Rows decoded per Arrow batch.
const BATCH_SIZE: usize = 8192;

/// How many distinct strings a source remembers for sharing.
const INTERNER_CAPACITY: usize = 100_000;

/// Fails for declared types no Parquet column can provide.
pub(super) fn check_columns(config: &ConnectorConfig) -> Result<(), OptionError> {
    match config
        .schema
        .fields
        .iter()
        .find(|field| matches!(field.data_type, DataType::Interval | DataType::Null))
    {
        Some(field) => Err(OptionError::Column {
            column: field.name.clone(),
            message: format!("type {} is not supported by the parquet format", field.data_type),
        }),
        None => Ok(()),
    }
}

/// How one Arrow column becomes datums of its declared column.
#[derive(Clone, Copy, Debug)]
enum Converter {
    Bool,
    /// An integer type; `widen` turns it into a DOUBLE.
    Integer {
        kind: IntegerKind,
        widen: bool,
    },
    Float32,
    Float64,
    Decimal128 {
        scale: i8,
    },
    Utf8,
    LargeUtf8,
    Utf8View,
    Timestamp(TimeUnit),
    Date32,
}

#[derive(Clone, Copy, Debug)]
enum IntegerKind {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
}

impl Converter {
    /// The converter from `arrow` to `declared`, if that pair is supported.
    fn new(arrow: &ArrowType, declared: DataType) -> Option<Converter> {
        let integer = |kind| match declared {
            DataType::Int => Some(Converter::Integer { kind, widen: false }),
            DataType::Float => Some(Converter::Integer { kind, widen: true }),
            _ => None,
        };
        match (arrow, declared) {
            (ArrowType::Boolean, DataType::Bool) => Some(Converter::Bool),
            (ArrowType::Int8, _) => integer(IntegerKind::I8),
            (ArrowType::Int16, _) => integer(IntegerKind::I16),
            (ArrowType::Int32, _) => integer(IntegerKind::I32),
            (ArrowType::Int64, _) => integer(IntegerKind::I64),
            (ArrowType::UInt8, _) => integer(IntegerKind::U8),
            (ArrowType::UInt16, _) => integer(IntegerKind::U16),
            (ArrowType::UInt32, _) => integer(IntegerKind::U32),
            (ArrowType::Float32, DataType::Float) => Some(Converter::Float32),
            (ArrowType::Float64, DataType::Float) => Some(Converter::Float64),
            (ArrowType::Decimal128(_, scale), DataType::Float) => Some(Converter::Decimal128 { scale: *scale }),
            (ArrowType::Utf8, DataType::String) => Some(Converter::Utf8),
            (ArrowType::LargeUtf8, DataType::String) => Some(Converter::LargeUtf8),
            (ArrowType::Utf8View, DataType::String) => Some(Converter::Utf8View),
            (ArrowType::Timestamp(unit, _), DataType::Timestamp) => Some(Converter::Timestamp(*unit)),
            (ArrowType::Date32, DataType::Timestamp) => Some(Converter::Date32),
            _ => None,
        }
    }

    /// Writes rows `range` of `array` into column `column` of the row-major
    /// `out` (`columns` datums per row).
    fn fill(self, array: &ArrayRef, range: Range<usize>, out: &mut [Datum], columns: usize, column: usize, interner: &mut Interner) {
        let slots = out.iter_mut().skip(column).step_by(columns);
        let widen = matches!(self, Converter::Integer { widen: true, .. });
        let number = move |value: i64| if widen { Datum::float(value as f64) } else { Datum::Int(value) };
        match self {
            Converter::Bool => {
                let array = array.as_boolean();
                for (row, slot) in range.zip(slots) {
                    *slot = if array.is_null(row) { Datum::Null } else { Datum::Bool(array.value(row)) };
                }
            }
            Converter::Integer { kind, .. } => match kind {
                IntegerKind::I8 => fill_primitive::<Int8Type>(array, range, slots, |v| number(v.into())),
                IntegerKind::I16 => fill_primitive::<Int16Type>(array, range, slots, |v| number(v.into())),
                IntegerKind::I32 => fill_primitive::<Int32Type>(array, range, slots, |v| number(v.into())),
                IntegerKind::I64 => fill_primitive::<Int64Type>(array, range, slots, number),
                IntegerKind::U8 => fill_primitive::<UInt8Type>(array, range, slots, |v| number(v.into())),
                IntegerKind::U16 => fill_primitive::<UInt16Type>(array, range, slots, |v| number(v.into())),
                IntegerKind::U32 => fill_primitive::<UInt32Type>(array, range, slots, |v| number(v.into())),
            },
            Converter::Float32 => fill_primitive::<Float32Type>(array, range, slots, |v| Datum::float(v.into())),
            Converter::Float64 => fill_primitive::<Float64Type>(array, range, slots, Datum::float),
            Converter::Decimal128 { scale } => {
                let divisor = 10f64.powi(i32::from(scale));
                fill_primitive::<Decimal128Type>(array, range, slots, |v| Datum::float(v as f64 / divisor))
            }
            Converter::Timestamp(TimeUnit::Second) => fill_primitive::<TimestampSecondType>(array, range, slots, |v| Datum::Timestamp(v.saturating_mul(1000))),
            Converter::Timestamp(TimeUnit::Millisecond) => fill_primitive::<TimestampMillisecondType>(array, range, slots, Datum::Timestamp),
            Converter::Timestamp(TimeUnit::Microsecond) => {
                fill_primitive::<TimestampMicrosecondType>(array, range, slots, |v| Datum::Timestamp(v.div_euclid(1000)))
            }
            Converter::Timestamp(TimeUnit::Nanosecond) => {
                fill_primitive::<TimestampNanosecondType>(array, range, slots, |v| Datum::Timestamp(v.div_euclid(1_000_000)))
            }
            Converter::Date32 => fill_primitive::<Date32Type>(array, range, slots, |days| Datum::Timestamp(i64::from(days) * 86_400_000)),
            Converter::Utf8 => fill_strings(array.as_string::<i32>(), range, slots, interner),
            Converter::LargeUtf8 => fill_strings(array.as_string::<i64>(), range, slots, interner),
            Converter::Utf8View => fill_strings(array.as_string_view(), range, slots, interner),
        }
    }
}

/// Converts the non-null values of a primitive array whose type [`Converter::new`] checked.
fn fill_primitive<'a, T: ArrowPrimitiveType>(
    array: &ArrayRef,
    range: Range<usize>,
    slots: impl Iterator<Item = &'a mut Datum>,
    convert: impl Fn(T::Native) -> Datum,
) {
    let array = array.as_primitive::<T>();
    for (row, slot) in range.zip(slots) {
        *slot = if array.is_null(row) { Datum::Null } else { convert(array.value(row)) };
    }
}

/// Interns the non-null values of a string array.
fn fill_strings<'a, 's>(array: impl ArrayAccessor<Item = &'s str>, range: Range<usize>, slots: impl Iterator<Item = &'a mut Datum>, interner: &mut Interner) {
    for (row, slot) in range.zip(slots) {
        *slot = if array.is_null(row) {
            Datum::Null
        } else {
            Datum::Str(interner.intern(array.value(row)))
        };
    }
}

/// Where each declared column comes from in one file.
struct FilePlan {
    /// The file's top-level columns to decode, ascending.
    projection: Vec<usize>,
    /// For each declared column: its position among the decoded columns, and its converter.
    columns: Vec<(usize, Converter)>,
}

/// Matches the declared columns against a file's Arrow schema.
fn plan(fields: &[Field], schema: &arrow::datatypes::Schema, path: &Path) -> Result<FilePlan, SourceError> {
    let error = |message: String| SourceError::Io {
        path: path.display().to_string(),
        message,
    };
    let mut sources = Vec::with_capacity(fields.len());
    for field in fields {
        let Some((index, arrow)) = schema
            .fields()
            .iter()
            .enumerate()
            .find(|(_, arrow)| arrow.name().eq_ignore_ascii_case(&field.name))
        else {
            return Err(error(format!("column '{}' is not in the file {}", field.name, file_name(path))));
        };
        let converter = Converter::new(arrow.data_type(), field.data_type).ok_or_else(|| {
            error(format!(
                "column '{}' is {} in the file {} and cannot be read as {}",
                field.name,
                arrow.data_type(),
                file_name(path),
                field.data_type
            ))
        })?;
        sources.push((index, converter));
    }
    let mut projection: Vec<usize> = sources.iter().map(|(index, _)| *index).collect();
    projection.sort_unstable();
    projection.dedup();
    let columns = sources
        .into_iter()
        .map(|(index, converter)| (projection.binary_search(&index).unwrap_or_default(), converter))
        .collect();
    Ok(FilePlan { projection, columns })
}

/// Reads Parquet files batch by batch into rows.
pub(super) struct ParquetReader {
    fields: Vec<Field>,
    interner: Interner,
    /// The file being read, its plan, its current batch and the next row in it.
    current: Option<CurrentFile>,
    /// Datums of the rows being converted, row-major; reused across reads.
    scratch: Vec<Datum>,
}

struct CurrentFile {
    path: String,
    reader: ParquetRecordBatchReader,
    columns: Vec<(usize, Converter)>,
    batch: Option<RecordBatch>,
    offset: usize,
    rows_done: u64,
}

impl ParquetReader {
    /// A reader for the table's columns.
    pub(super) fn new(config: &ConnectorConfig) -> Self {
        ParquetReader {
            fields: config.schema.fields.clone(),
            interner: Interner::with_capacity(INTERNER_CAPACITY),
            current: None,
            scratch: Vec::new(),
        }
    }

    fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, SourceError> {
        let error = |message: String| SourceError::Io {
            path: path.display().to_string(),
            message,
        };
        let file = File::open(path).map_err(|e| error(e.to_string()))?;
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| error(e.to_string()))
    }
}

impl FormatReader for ParquetReader {
    fn measure(&mut self, path: &Path) -> Result<u64, SourceError> {
        let builder = Self::builder(path)?;
        plan(&self.fields, builder.schema(), path)?;
        Ok(u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or_default())
    }

    fn start(&mut self, path: &Path) -> Result<(), SourceError> {
        let builder = Self::builder(path)?;
        let plan = plan(&self.fields, builder.schema(), path)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), plan.projection);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_SIZE)
            .build()
            .map_err(|error| SourceError::Io {
                path: path.display().to_string(),
                message: error.to_string(),
            })?;
        self.current = Some(CurrentFile {
            path: path.display().to_string(),
            reader,
            columns: plan.columns,
            batch: None,
            offset: 0,
            rows_done: 0,
        });
        Ok(())
    }

    fn read(&mut self, batch: &mut SourceBatch, max_records: usize) -> Result<bool, SourceError> {
        let Some(file) = self.current.as_mut() else { return Ok(false) };
        let mut budget = max_records;
        while budget > 0 {
            let record_batch = match &file.batch {
                Some(record_batch) if file.offset < record_batch.num_rows() => record_batch,
                _ => match file.reader.next() {
                    Some(next) => {
                        file.batch = Some(next.map_err(|error| SourceError::Io {
                            path: file.path.clone(),
                            message: error.to_string(),
                        })?);
                        file.offset = 0;
                        continue;
                    }
                    None => return Ok(false),
                },
            };
            let rows = budget.min(record_batch.num_rows() - file.offset);
            let range = file.offset..file.offset + rows;
            let width = file.columns.len();
            self.scratch.resize(rows * width, Datum::Null);
            for (column, (position, converter)) in file.columns.iter().enumerate() {
                converter.fill(
                    record_batch.column(*position),
                    range.clone(),
                    &mut self.scratch,
                    width,
                    column,
                    &mut self.interner,
                );
            }
            let mut datums = self.scratch.drain(..);
            batch.rows.extend((0..rows).map(|_| datums.by_ref().take(width).collect::<Row>()));
            file.offset += rows;
            file.rows_done += rows as u64;
            budget -= rows;
        }
        Ok(true)
    }

    fn done_in_file(&self) -> u64 {
        self.current.as_ref().map_or(0, |file| file.rows_done)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray, StringArray,
        StringViewArray, TimestampMicrosecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
    };
    use arrow::datatypes::{Field as ArrowField, Schema as ArrowSchema};
    use parquet::arrow::ArrowWriter;

    use super::super::tests::{read_all, table};
    use super::*;
    use crate::SourceContext;

    const BASE: carbonflow_core::Millis = 1_704_067_200_000;

    /// Writes `columns` to a Parquet file, in row groups of `group` rows.
    fn write(path: &Path, columns: Vec<(&str, ArrayRef)>, group: usize) {
        let schema = Arc::new(ArrowSchema::new(
            columns
                .iter()
                .map(|(name, array)| ArrowField::new(*name, array.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, array)| array).collect()).unwrap();
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(group))
            .build();
        let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    fn every_type() -> Vec<(&'static str, ArrayRef)> {
        vec![
            ("flag", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]))),
            ("i8", Arc::new(Int8Array::from(vec![Some(-8), None, Some(8)]))),
            ("i16", Arc::new(Int16Array::from(vec![Some(-16), None, Some(16)]))),
            ("i32", Arc::new(Int32Array::from(vec![Some(-32), None, Some(32)]))),
            ("i64", Arc::new(Int64Array::from(vec![Some(i64::MIN), None, Some(i64::MAX)]))),
            ("u8", Arc::new(UInt8Array::from(vec![Some(255), None, Some(0)]))),
            ("u16", Arc::new(UInt16Array::from(vec![Some(65535), None, Some(0)]))),
            ("u32", Arc::new(UInt32Array::from(vec![Some(u32::MAX), None, Some(0)]))),
            ("f32", Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)]))),
            ("f64", Arc::new(Float64Array::from(vec![Some(31.25), None, Some(f64::NAN)]))),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), None, Some(-5)])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            (
                "Utf8",
                Arc::new(StringArray::from(vec![Some("PJM-WESTERN HUB"), None, Some("PJM-WESTERN HUB")])),
            ),
            ("large", Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("")]))),
            (
                "view",
                Arc::new(StringViewArray::from(vec![Some("a longer string than twelve bytes"), None, Some("b")])),
            ),
            ("ts_s", Arc::new(TimestampSecondArray::from(vec![Some(BASE / 1000), None, Some(0)]))),
            (
                "ts_us",
                Arc::new(TimestampMicrosecondArray::from(vec![Some(BASE * 1000 + 25_999), None, Some(-1)]).with_timezone("America/New_York")),
            ),
            (
                "ts_ns",
                Arc::new(TimestampNanosecondArray::from(vec![Some(BASE * 1_000_000 + 7_000_000), None, Some(0)]).with_timezone("+01:00")),
            ),
            ("day", Arc::new(Date32Array::from(vec![Some(19723), None, Some(-1)]))),
            ("u64", Arc::new(UInt64Array::from(vec![Some(1), None, Some(2)]))),
        ]
    }

    const COLUMNS: &[(&str, DataType)] = &[
        ("flag", DataType::Bool),
        ("i8", DataType::Int),
        ("i16", DataType::Int),
        ("i32", DataType::Float),
        ("i64", DataType::Int),
        ("u8", DataType::Int),
        ("u16", DataType::Int),
        ("u32", DataType::Int),
        ("f32", DataType::Float),
        ("f64", DataType::Float),
        ("dec", DataType::Float),
        ("utf8", DataType::String),
        ("LARGE", DataType::String),
        ("view", DataType::String),
        ("ts_s", DataType::Timestamp),
        ("ts_us", DataType::Timestamp),
        ("ts_ns", DataType::Timestamp),
        ("day", DataType::Timestamp),
    ];

    #[test]
    fn reads_every_supported_type_and_nulls_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticks.parquet");
        write(&path, every_type(), 2);
        let (rows, dead) = read_all(&table(&path, "parquet", COLUMNS, &[]), SourceContext::SINGLE);
        assert!(dead.is_empty());
        let s = Datum::string;
        let expected = vec![
            Row::new(vec![
                Datum::Bool(true),
                Datum::Int(-8),
                Datum::Int(-16),
                Datum::float(-32.0),
                Datum::Int(i64::MIN),
                Datum::Int(255),
                Datum::Int(65535),
                Datum::Int(u32::MAX.into()),
                Datum::float(1.5),
                Datum::float(31.25),
                Datum::float(123.45),
                s("PJM-WESTERN HUB"),
                s("a"),
                s("a longer string than twelve bytes"),
                Datum::Timestamp(BASE),
                Datum::Timestamp(BASE + 25),
                Datum::Timestamp(BASE + 7),
                Datum::Timestamp(BASE),
            ]),
            Row::new(vec![Datum::Null; COLUMNS.len()]),
            Row::new(vec![
                Datum::Bool(false),
                Datum::Int(8),
                Datum::Int(16),
                Datum::float(32.0),
                Datum::Int(i64::MAX),
                Datum::Int(0),
                Datum::Int(0),
                Datum::Int(0),
                Datum::float(-0.25),
                Datum::float(f64::NAN),
                Datum::float(-0.05),
                s("PJM-WESTERN HUB"),
                s(""),
                s("b"),
                Datum::Timestamp(0),
                Datum::Timestamp(-1),
                Datum::Timestamp(0),
                Datum::Timestamp(-86_400_000),
            ]),
        ];
        assert_eq!(rows, expected);
        let (Datum::Str(a), Datum::Str(b)) = (rows[0].get(11), rows[2].get(11)) else {
            panic!("strings")
        };
        assert!(Arc::ptr_eq(a, b), "strings are interned");
    }

    #[test]
    fn columns_come_in_declared_order_whatever_the_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticks.parquet");
        write(&path, every_type(), 1024);
        let (rows, _) = read_all(
            &table(&path, "parquet", &[("day", DataType::Timestamp), ("flag", DataType::Bool)], &[]),
            SourceContext::SINGLE,
        );
        assert_eq!(rows[0], Row::new(vec![Datum::Timestamp(BASE), Datum::Bool(true)]));
    }

    #[test]
    fn missing_and_mismatched_columns_fail_at_open_naming_column_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticks.parquet");
        write(&path, every_type(), 1024);
        for (column, data_type, expected) in [
            ("price", DataType::Float, "column 'price' is not in the file ticks.parquet"),
            ("u64", DataType::Int, "column 'u64' is UInt64 in the file ticks.parquet"),
            ("utf8", DataType::Int, "column 'utf8' is Utf8 in the file ticks.parquet"),
            ("f64", DataType::Int, "cannot be read as BIGINT"),
        ] {
            let config = table(&path, "parquet", &[(column, data_type)], &[]);
            assert!(crate::validate_source(&config).is_ok(), "validation does not read files");
            let error = crate::create_source(&config, SourceContext::SINGLE).err().expect("open fails").to_string();
            assert!(error.contains(expected), "{error}");
        }
        let interval = table(&path, "parquet", &[("gap", DataType::Interval)], &[]);
        assert_eq!(crate::validate_source(&interval).unwrap_err().column(), Some("gap"));
    }

    #[test]
    fn progress_counts_rows_across_files_and_workers_split_them() {
        let dir = tempfile::tempdir().unwrap();
        for file in 0..3 {
            let values: Vec<i64> = (0..1000).map(|row| file * 1000 + row).collect();
            write(
                &dir.path().join(format!("part-{file}.parquet")),
                vec![("v", Arc::new(Int64Array::from(values)))],
                300,
            );
        }
        let config = table(dir.path(), "parquet", &[("v", DataType::Int)], &[]);
        let mut source = crate::create_source(&config, SourceContext::SINGLE).unwrap();
        assert_eq!(source.progress(), Some(crate::SourceProgress { done: 0, total: Some(3000) }));
        let mut batch = SourceBatch::default();
        source.poll(&mut batch, 1500).unwrap();
        assert_eq!(batch.rows.len(), 1500);
        assert_eq!(source.progress().unwrap().done, 1500);
        let (rows, _) = read_all(&config, SourceContext::SINGLE);
        assert_eq!(rows, (0..3000).map(|v| Row::new(vec![Datum::Int(v)])).collect::<Vec<_>>());
        let (second, _) = read_all(&config, SourceContext::worker(1, 2));
        assert_eq!(second, (1000..2000).map(|v| Row::new(vec![Datum::Int(v)])).collect::<Vec<_>>());
    }
}
