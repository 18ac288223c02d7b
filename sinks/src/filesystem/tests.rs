//! Tests of the filesystem sink: files are read back and compared with
//! hand-written lines or with a naive multiset of every update.

use std::collections::BTreeMap;
use std::path::Path;

use carbonflow_core::{DataType, Datum, Field, OptionError, Schema};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::text::csv_field;

const NEW_YEAR_2024: i64 = 1_704_067_200_000;

fn config(options: &[(&str, &str)]) -> ConnectorConfig {
    let schema = Schema::new(vec![
        Field::new("node", DataType::String),
        Field::new("ts", DataType::Timestamp),
        Field::new("price", DataType::Float),
    ]);
    let mut map: BTreeMap<String, String> = options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    map.insert("connector".into(), "filesystem".into());
    ConnectorConfig {
        table: "prices".into(),
        schema,
        event_time_column: Some(1),
        primary_key: None,
        options: map,
    }
}

fn csv_config(path: &Path, extra: &[(&str, &str)]) -> ConnectorConfig {
    let path = path.to_str().unwrap();
    config(&[&[("path", path), ("format", "csv")], extra].concat())
}

fn tick(node: &str, minute: i64, price: f64) -> Row {
    Row::new(vec![
        Datum::string(node),
        Datum::Timestamp(NEW_YEAR_2024 + minute * 60_000),
        Datum::float(price),
    ])
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// File names in `dir`, sorted, hidden ones included (a leftover temp file is a dot file).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn progress(sink: &mut FilesystemSink, epoch: Epoch) {
    sink.on_progress(epoch, Watermark::MIN).unwrap();
}

#[test]
fn final_file_holds_exactly_the_consolidated_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.csv");
    let mut sink = FilesystemSink::new(&csv_config(&file, &[])).unwrap();
    sink.on_batch(1, &[(tick("n1", 0, 3.5), 1), (tick("n2", 0, 1.0), 2)]).unwrap();
    sink.on_batch(2, &[(tick("n1", 0, 3.5), -1), (tick("n1", 1, 4.0), 1)]).unwrap();
    sink.on_batch(3, &[(tick("a,\"b\"", 0, 0.0001), 1), (tick("n3", 2, 9.0), 1)]).unwrap();
    sink.on_batch(4, &[(tick("n3", 2, 9.0), -1)]).unwrap();
    sink.finish().unwrap();
    assert_eq!(
        read(&file),
        "\"a,\"\"b\"\"\",2024-01-01 00:00:00.000,1.0E-4\n\
         n1,2024-01-01 00:01:00.000,4.0\n\
         n2,2024-01-01 00:00:00.000,1.0\n\
         n2,2024-01-01 00:00:00.000,1.0\n"
    );
    assert_eq!(entries(dir.path()), ["out.csv"]);
}

#[test]
fn final_file_is_rewritten_on_progress_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.csv");
    let mut slow = FilesystemSink::new(&csv_config(&file, &[("sink.flush-interval", "1 h")])).unwrap();
    assert_eq!(read(&file), "", "the file exists, empty, from the start");
    slow.on_batch(1, &[(tick("n1", 0, 3.5), 1)]).unwrap();
    progress(&mut slow, 1);
    assert_eq!(read(&file), "", "an hour has not passed");
    slow.finish().unwrap();
    assert_eq!(read(&file), "n1,2024-01-01 00:00:00.000,3.5\n");

    let mut eager = FilesystemSink::new(&csv_config(&file, &[("sink.flush-interval", "0 ms")])).unwrap();
    eager.on_batch(1, &[(tick("n2", 0, 1.0), 1)]).unwrap();
    progress(&mut eager, 1);
    assert_eq!(read(&file), "n2,2024-01-01 00:00:00.000,1.0\n");
    eager.on_batch(2, &[(tick("n2", 0, 1.0), -1)]).unwrap();
    progress(&mut eager, 2);
    assert_eq!(read(&file), "");
    assert_eq!(entries(dir.path()), ["out.csv"], "no temporary file left behind");
}

#[test]
fn directory_paths_get_a_part_file() {
    let dir = tempfile::tempdir().unwrap();
    let existing = FilesystemSink::new(&csv_config(dir.path(), &[])).unwrap();
    assert_eq!(existing.file(), dir.path().join("part-0.csv"));
    assert_eq!(entries(dir.path()), ["part-0.csv"]);

    let nested = format!("{}/new/dir/", dir.path().display());
    let mut json = FilesystemSink::new(&config(&[("path", &nested), ("format", "json")])).unwrap();
    json.on_batch(1, &[(tick("n1", 0, 1.0), 1)]).unwrap();
    json.finish().unwrap();
    assert_eq!(
        read(&dir.path().join("new/dir/part-0.json")),
        "{\"node\":\"n1\",\"ts\":\"2024-01-01 00:00:00.000\",\"price\":1.0}\n"
    );

    let with_scheme = format!("file://{}/a/b/out.csv", dir.path().display());
    let sink = FilesystemSink::new(&config(&[("path", &with_scheme), ("format", "csv")])).unwrap();
    assert_eq!(sink.file(), dir.path().join("a/b/out.csv"));
    assert!(sink.file().is_file());
}

#[test]
fn changelog_appends_every_change_with_its_op() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("changes.csv");
    let mut sink = FilesystemSink::new(&csv_config(&file, &[("sink.changelog", "true"), ("csv.field-delimiter", ";")])).unwrap();
    sink.on_batch(1, &[(tick("n1", 0, 3.5), 2)]).unwrap();
    progress(&mut sink, 1);
    assert_eq!(
        read(&file),
        "+I;n1;2024-01-01 00:00:00.000;3.5\n+I;n1;2024-01-01 00:00:00.000;3.5\n",
        "flushed on progress"
    );
    sink.on_batch(2, &[(tick("n1", 0, 3.5), -1), (tick("x;y", 0, 1.0), 1)]).unwrap();
    sink.finish().unwrap();
    assert_eq!(
        read(&file),
        "+I;n1;2024-01-01 00:00:00.000;3.5\n\
         +I;n1;2024-01-01 00:00:00.000;3.5\n\
         -D;n1;2024-01-01 00:00:00.000;3.5\n\
         +I;\"x;y\";2024-01-01 00:00:00.000;1.0\n"
    );
}

#[test]
fn json_lines_are_objects_keyed_by_column_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    let path = path.to_str().unwrap();

    let mut changelog = FilesystemSink::new(&config(&[("path", path), ("format", "json"), ("sink.changelog", "true")])).unwrap();
    changelog.on_batch(1, &[(tick("n1", 0, 3.5), 1)]).unwrap();
    changelog.on_batch(2, &[(tick("n1", 0, 3.5), -1)]).unwrap();
    changelog.finish().unwrap();
    let text = read(Path::new(path));
    let objects: Vec<serde_json::Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(
        objects,
        [
            json!({"op": "+I", "node": "n1", "ts": "2024-01-01 00:00:00.000", "price": 3.5}),
            json!({"op": "-D", "node": "n1", "ts": "2024-01-01 00:00:00.000", "price": 3.5})
        ]
    );
    assert!(
        text.starts_with("{\"op\":\"+I\",\"node\":\"n1\",\"ts\":"),
        "keys in schema order after op: {text}"
    );

    let mut last = FilesystemSink::new(&config(&[("path", path), ("format", "json")])).unwrap();
    let odd = Row::new(vec![Datum::Null, Datum::Timestamp(NEW_YEAR_2024), Datum::float(f64::NAN)]);
    last.on_batch(1, &[(odd, 1), (tick("say \"hi\"", 1, 0.5), 1)]).unwrap();
    last.finish().unwrap();
    let objects: Vec<serde_json::Value> = read(Path::new(path)).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(
        objects,
        [
            json!({"node": null, "ts": "2024-01-01 00:00:00.000", "price": "NaN"}),
            json!({"node": "say \"hi\"", "ts": "2024-01-01 00:01:00.000", "price": 0.5})
        ]
    );
}

#[test]
fn a_negative_count_is_an_error_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = FilesystemSink::new(&csv_config(&dir.path().join("out.csv"), &[])).unwrap();
    let error = sink.on_batch(1, &[(tick("n1", 0, 3.5), -1)]).unwrap_err();
    assert!(
        matches!(&error, SinkError::Inconsistent { message, .. } if message.contains("[n1, 2024-01-01 00:00:00.000, 3.5]")),
        "{error}"
    );

    let mut sink = FilesystemSink::new(&csv_config(&dir.path().join("other.csv"), &[])).unwrap();
    sink.on_batch(1, &[(tick("n2", 0, 1.0), 1)]).unwrap();
    let error = sink.on_batch(2, &[(tick("n2", 0, 1.0), -2)]).unwrap_err();
    assert!(error.to_string().contains("[n2, 2024-01-01 00:00:00.000, 1.0] but the sink holds 1"), "{error}");
}

#[test]
fn a_row_of_the_wrong_width_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = FilesystemSink::new(&csv_config(&dir.path().join("out.csv"), &[("sink.changelog", "true")])).unwrap();
    let error = sink.on_batch(1, &[(Row::new(vec![Datum::Int(1)]), 1)]).unwrap_err();
    assert!(matches!(error, SinkError::Inconsistent { .. }), "{error}");
}

#[test]
fn options_have_flink_defaults() {
    let options = FilesystemSinkOptions::parse(&config(&[("path", "/tmp/x.csv"), ("format", "CSV")])).unwrap();
    assert_eq!(
        options,
        FilesystemSinkOptions {
            path: "/tmp/x.csv".into(),
            format: FileFormat::Csv,
            field_delimiter: b',',
            changelog: false,
            flush_interval: Duration::from_secs(1)
        }
    );
    let options = FilesystemSinkOptions::parse(&config(&[
        ("path", "p"),
        ("format", "csv"),
        ("csv.field-delimiter", "\\t"),
        ("sink.flush-interval", "2 min"),
    ]))
    .unwrap();
    assert_eq!((options.field_delimiter, options.flush_interval), (b'\t', Duration::from_secs(120)));
}

#[test]
fn bad_options_are_errors() {
    let key_of = |options: &[(&str, &str)]| FilesystemSinkOptions::parse(&config(options)).unwrap_err();
    assert_eq!(key_of(&[("path", "p")]), OptionError::Missing { key: "format".into() });
    assert_eq!(key_of(&[("format", "csv")]), OptionError::Missing { key: "path".into() });
    assert!(matches!(key_of(&[("path", "p"), ("format", "parquet")]), OptionError::Invalid { key, .. } if key == "format"));
    assert!(
        matches!(key_of(&[("path", "p"), ("format", "csv"), ("sink.rolling-policy.file-size", "1MB")]), OptionError::Unknown { key, .. } if key == "sink.rolling-policy.file-size")
    );
    assert!(
        matches!(key_of(&[("path", "p"), ("format", "json"), ("csv.field-delimiter", ";")]), OptionError::Unknown { key, .. } if key == "csv.field-delimiter")
    );
    assert!(
        matches!(key_of(&[("path", "p"), ("format", "csv"), ("csv.field-delimiter", ";;")]), OptionError::Invalid { key, .. } if key == "csv.field-delimiter")
    );
    assert!(
        matches!(key_of(&[("path", "p"), ("format", "csv"), ("sink.flush-interval", "soon")]), OptionError::Invalid { key, .. } if key == "sink.flush-interval")
    );
    assert!(matches!(key_of(&[("path", "p"), ("format", "csv"), ("sink.changelog", "maybe")]), OptionError::Invalid { key, .. } if key == "sink.changelog"));
    assert!(matches!(key_of(&[("path", " "), ("format", "csv")]), OptionError::Invalid { key, .. } if key == "path"));

    let mut with_op = config(&[("path", "p"), ("format", "json"), ("sink.changelog", "true")]);
    with_op.schema.fields.push(Field::new("op", DataType::String));
    assert!(matches!(FilesystemSinkOptions::parse(&with_op), Err(OptionError::Column { column, .. }) if column == "op"));
}

/// Raw updates of one epoch: (row of the pool, diff); consolidated and made
/// non-negative by `consolidate` before they reach the sink.
type RawBatch = Vec<(usize, i64)>;

fn pool() -> Vec<Row> {
    vec![
        tick("n1", 0, 3.5),
        tick("b,c", 1, 1.0E-4),
        tick("q\"uote", 0, -2.0),
        Row::new(vec![Datum::Null, Datum::Timestamp(NEW_YEAR_2024), Datum::float(12_345_678.0)]),
        tick("new\nline", 2, 0.0),
    ]
}

/// The batch the engine would send: one entry per row, sorted, no zero diff,
/// never retracting more copies than `counts` holds.
fn consolidate(raw: &RawBatch, counts: &mut [i64]) -> Vec<(usize, i64)> {
    let mut net = BTreeMap::new();
    for &(index, diff) in raw {
        *net.entry(index).or_insert(0) += diff;
    }
    net.into_iter()
        .filter_map(|(index, diff): (usize, i64)| {
            let diff = diff.max(-counts[index]);
            counts[index] += diff;
            (diff != 0).then_some((index, diff))
        })
        .collect()
}

/// Reads a CSV file back into fields.
fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_path(path).unwrap();
    reader.records().map(|record| record.unwrap().iter().map(str::to_owned).collect()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn final_file_equals_the_multiset_of_all_updates(
        batches in prop::collection::vec((prop::collection::vec((0..5usize, -2i64..=3), 0..6), any::<bool>()), 0..10),
    ) {
        let rows = pool();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.csv");
        let mut sink = FilesystemSink::new(&csv_config(&file, &[("sink.flush-interval", "0 ms")])).unwrap();
        let mut counts = vec![0; rows.len()];
        // The naive model: every copy inserted, one copy removed per retraction.
        let mut model: Vec<Row> = Vec::new();
        for (epoch, (raw, report_progress)) in batches.iter().enumerate() {
            let batch = consolidate(raw, &mut counts);
            let updates: Vec<(Row, Diff)> = batch.iter().map(|&(index, diff)| (rows[index].clone(), diff)).collect();
            sink.on_batch(epoch as Epoch, &updates).unwrap();
            for (row, diff) in &updates {
                for _ in 0..diff.unsigned_abs() {
                    if *diff > 0 {
                        model.push(row.clone());
                    } else {
                        let at = model.iter().position(|held| held == row).unwrap();
                        model.remove(at);
                    }
                }
            }
            if *report_progress {
                sink.on_progress(epoch as Epoch, Watermark::MIN).unwrap();
                prop_assert_eq!(read_csv(&file), expected(&model));
            }
        }
        sink.finish().unwrap();
        prop_assert_eq!(read_csv(&file), expected(&model));
        prop_assert_eq!(entries(dir.path()), ["out.csv"]);
    }
}

/// The model's rows in row order, as CSV fields.
fn expected(model: &[Row]) -> Vec<Vec<String>> {
    let mut sorted = model.to_vec();
    sorted.sort();
    sorted
        .iter()
        .map(|row| row.iter().map(|datum| csv_field(datum).into_owned()).collect())
        .collect()
}
