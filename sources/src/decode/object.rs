//! JSON and MessagePack objects to rows: one object per record (a Kafka
//! message), its keys naming the table's columns, as Flink's `json` format
//! reads them.
//!
//! * A key that names no column is ignored; a column without a key is NULL
//!   (Flink's default, `json.fail-on-missing-field` = false). Keys match
//!   column names exactly.
//! * Values: JSON/MessagePack `null` is NULL. Booleans, integers and floats
//!   go to columns of their type (an integer to a DOUBLE too). A string goes
//!   through the text rules of CSV fields ([`super::text`]), so `"31.5"` fills
//!   a DOUBLE and `"2024-01-01 00:00:00"` or an ISO-8601 time a TIMESTAMP. A
//!   number or boolean fills a STRING column as its JSON text, as in Flink.
//!   An integer fills a TIMESTAMP as milliseconds since the Unix epoch (our
//!   extension: it is how MessagePack producers usually send times).
//! * A record that is not one object, or a value that does not fit its
//!   column (`"abc"` for a DOUBLE, a nested array, 1.5 for a BIGINT), makes
//!   the whole record a dead letter whose detail names the column.
//!
//! Both formats go through the same serde visitor ([`RowSeed`]), which writes
//! datums straight into the row: no intermediate `Value` tree, and keys and
//! strings are compared and interned from borrowed bytes.

use std::fmt;

use carbonflow_core::{ConnectorConfig, DataType, Datum, DeadLetter, DeadLetterReason, Interner, OptionError, Row};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::INTERNER_CAPACITY;
use super::text::{check_text_column, parse_field};
use crate::SourceBatch;

/// The encoding of the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// JSON text (`'format' = 'json'`).
    Json,
    /// MessagePack (`'format' = 'msgpack'`), a map per record.
    MessagePack,
}

impl Encoding {
    /// The format name, as in `'format' = '...'`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::MessagePack => "msgpack",
        }
    }
}

/// Checks that every column has a value form in `encoding`.
pub(crate) fn check_columns(config: &ConnectorConfig, encoding: Encoding) -> Result<(), OptionError> {
    config.schema.fields.iter().try_for_each(|field| check_text_column(field, encoding.name()))
}

/// Decodes objects into rows of one table.
pub(crate) struct ObjectDecoder {
    encoding: Encoding,
    origin: String,
    columns: Vec<(String, DataType)>,
    interner: Interner,
    /// The row being filled, reused across records.
    datums: Vec<Datum>,
}

impl ObjectDecoder {
    /// A decoder for the table's columns.
    pub(crate) fn new(config: &ConnectorConfig, encoding: Encoding) -> Self {
        ObjectDecoder {
            encoding,
            origin: config.table.clone(),
            columns: config.schema.fields.iter().map(|field| (field.name.clone(), field.data_type)).collect(),
            interner: Interner::with_capacity(INTERNER_CAPACITY),
            datums: Vec::new(),
        }
    }

    /// Appends the row of `bytes`, or its dead letter positioned at `position`.
    pub(crate) fn decode(&mut self, bytes: &[u8], position: &str, batch: &mut SourceBatch) {
        self.datums.clear();
        self.datums.resize(self.columns.len(), Datum::Null);
        let seed = RowSeed {
            columns: &self.columns,
            datums: &mut self.datums,
            interner: &mut self.interner,
        };
        let decoded = match self.encoding {
            Encoding::Json => {
                let mut deserializer = serde_json::Deserializer::from_slice(bytes);
                seed.deserialize(&mut deserializer)
                    .and_then(|()| deserializer.end())
                    .map_err(|error| error.to_string())
            }
            Encoding::MessagePack => {
                let mut deserializer = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
                seed.deserialize(&mut deserializer).map_err(|error| error.to_string()).and_then(|()| {
                    let used = deserializer.position();
                    (used == bytes.len() as u64)
                        .then_some(())
                        .ok_or_else(|| format!("{} bytes after the object", bytes.len() as u64 - used))
                })
            }
        };
        match decoded {
            Ok(()) => batch.rows.push(Row::new(self.datums.clone())),
            Err(detail) => batch.dead_letters.push(DeadLetter {
                origin: self.origin.clone(),
                reason: DeadLetterReason::Parse,
                detail,
                position: position.to_owned(),
                record: self.record_text(bytes),
            }),
        }
    }

    /// The record as a person can read it in the dead-letter output.
    fn record_text(&self, bytes: &[u8]) -> String {
        match self.encoding {
            Encoding::Json => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::MessagePack => {
                let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
                format!("msgpack:{hex}")
            }
        }
    }
}

/// Fills `datums` from one object.
struct RowSeed<'a> {
    columns: &'a [(String, DataType)],
    datums: &'a mut [Datum],
    interner: &'a mut Interner,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of the table's columns")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(column) = map.next_key_seed(ColumnKey(self.columns))? {
            match column {
                Some(index) => {
                    let (name, data_type) = &self.columns[index];
                    self.datums[index] = map.next_value_seed(DatumSeed {
                        name,
                        data_type: *data_type,
                        interner: self.interner,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key: the index of the column it names, if any.
struct ColumnKey<'a>(&'a [(String, DataType)]);

impl<'de> DeserializeSeed<'de> for ColumnKey<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ColumnKey<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        // Tables have few columns: a scan beats hashing the key.
        Ok(self.0.iter().position(|(name, _)| name == key))
    }

    fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(name, _)| name.as_bytes() == key))
    }
}

/// One value, as a datum of its column's type.
struct DatumSeed<'a> {
    name: &'a str,
    data_type: DataType,
    interner: &'a mut Interner,
}

impl<'de> DeserializeSeed<'de> for DatumSeed<'_> {
    type Value = Datum;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Datum, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl DatumSeed<'_> {
    fn mismatch<E: de::Error>(&self, unexpected: de::Unexpected) -> E {
        E::invalid_value(unexpected, self)
    }
}

impl<'de> Visitor<'de> for DatumSeed<'_> {
    type Value = Datum;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} for column {}", self.data_type.sql_name(), self.name)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Datum, E> {
        Ok(Datum::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Datum, E> {
        Ok(Datum::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Datum, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Datum, E> {
        match self.data_type {
            DataType::Bool => Ok(Datum::Bool(value)),
            DataType::String => Ok(Datum::Str(self.interner.intern(if value { "true" } else { "false" }))),
            _ => Err(self.mismatch(de::Unexpected::Bool(value))),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Datum, E> {
        match self.data_type {
            DataType::Int => Ok(Datum::Int(value)),
            DataType::Float => Ok(Datum::float(value as f64)),
            DataType::Timestamp => Ok(Datum::Timestamp(value)),
            DataType::String => Ok(Datum::Str(self.interner.intern(&value.to_string()))),
            _ => Err(self.mismatch(de::Unexpected::Signed(value))),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Datum, E> {
        match i64::try_from(value) {
            Ok(value) => self.visit_i64(value),
            Err(_) if self.data_type == DataType::Float => Ok(Datum::float(value as f64)),
            Err(_) if self.data_type == DataType::String => Ok(Datum::Str(self.interner.intern(&value.to_string()))),
            Err(_) => Err(self.mismatch(de::Unexpected::Unsigned(value))),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Datum, E> {
        match self.data_type {
            DataType::Float => Ok(Datum::float(value)),
            DataType::String => Ok(Datum::Str(self.interner.intern(&value.to_string()))),
            _ => Err(self.mismatch(de::Unexpected::Float(value))),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Datum, E> {
        match parse_field(value.as_bytes(), self.data_type, self.interner) {
            Some(datum) => Ok(datum),
            None => Err(self.mismatch(de::Unexpected::Str(value))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use carbonflow_core::{Field, Schema};
    use serde_json::json;

    use super::*;

    fn config(columns: &[(&str, DataType)]) -> ConnectorConfig {
        ConnectorConfig {
            table: "ticks".into(),
            schema: Schema::new(columns.iter().map(|(name, data_type)| Field::new(*name, *data_type)).collect()),
            event_time_column: None,
            primary_key: None,
            options: BTreeMap::new(),
        }
    }

    const TICK: &[(&str, DataType)] = &[
        ("node", DataType::String),
        ("ts", DataType::Timestamp),
        ("price", DataType::Float),
        ("revision", DataType::Int),
        ("final", DataType::Bool),
    ];

    /// Decodes `value` encoded as `encoding`.
    fn decode(encoding: Encoding, value: &serde_json::Value) -> SourceBatch {
        let bytes = match encoding {
            Encoding::Json => serde_json::to_vec(value).unwrap(),
            Encoding::MessagePack => rmp_serde::to_vec_named(value).unwrap(),
        };
        decode_bytes(encoding, &bytes)
    }

    fn decode_bytes(encoding: Encoding, bytes: &[u8]) -> SourceBatch {
        let mut decoder = ObjectDecoder::new(&config(TICK), encoding);
        let mut batch = SourceBatch::default();
        decoder.decode(bytes, "ticks/3@17", &mut batch);
        batch
    }

    fn row(node: &str, ts: Option<i64>, price: Option<f64>, revision: Option<i64>, is_final: Option<bool>) -> Row {
        Row::new(vec![
            Datum::string(node),
            ts.map_or(Datum::Null, Datum::Timestamp),
            price.map_or(Datum::Null, Datum::float),
            revision.map_or(Datum::Null, Datum::Int),
            is_final.map_or(Datum::Null, Datum::Bool),
        ])
    }

    const NEW_YEAR_2024: i64 = 1_704_067_200_000;

    #[test]
    fn both_encodings_fill_columns_by_name_in_any_order() {
        for encoding in [Encoding::Json, Encoding::MessagePack] {
            let value = json!({"final": true, "revision": 2, "price": 31.5, "ts": "2024-01-01 00:00:00", "node": "PJM-WH", "extra": [1, 2]});
            let batch = decode(encoding, &value);
            assert!(batch.dead_letters.is_empty(), "{encoding:?}: {:?}", batch.dead_letters);
            assert_eq!(
                batch.rows,
                vec![row("PJM-WH", Some(NEW_YEAR_2024), Some(31.5), Some(2), Some(true))],
                "{encoding:?}"
            );
        }
    }

    #[test]
    fn missing_keys_and_nulls_are_null() {
        for encoding in [Encoding::Json, Encoding::MessagePack] {
            let batch = decode(encoding, &json!({"node": "A", "price": null}));
            assert_eq!(batch.rows, vec![row("A", None, None, None, None)], "{encoding:?}");
        }
    }

    #[test]
    fn values_convert_the_way_flink_json_does() {
        for encoding in [Encoding::Json, Encoding::MessagePack] {
            // Strings take the text rules, integers fill doubles and timestamps (epoch millis), numbers fill strings.
            let value = json!({"node": 42, "ts": NEW_YEAR_2024 + 25, "price": 7, "revision": "3", "final": "FALSE"});
            let batch = decode(encoding, &value);
            assert_eq!(
                batch.rows,
                vec![row("42", Some(NEW_YEAR_2024 + 25), Some(7.0), Some(3), Some(false))],
                "{encoding:?}"
            );
            let value = json!({"node": "B", "ts": "2024-01-01T01:00:00+01:00", "price": "-2e3"});
            let batch = decode(encoding, &value);
            assert_eq!(batch.rows, vec![row("B", Some(NEW_YEAR_2024), Some(-2000.0), None, None)], "{encoding:?}");
        }
    }

    #[test]
    fn unusable_records_are_dead_letters_naming_the_column_and_position() {
        for encoding in [Encoding::Json, Encoding::MessagePack] {
            for (value, column) in [
                (json!({"node": "A", "price": "abc"}), "price"),
                (json!({"node": "A", "revision": 1.5}), "revision"),
                (json!({"node": "A", "final": 1}), "final"),
                (json!({"node": ["A"]}), "node"),
                (json!({"node": "A", "ts": "yesterday"}), "ts"),
            ] {
                let batch = decode(encoding, &value);
                assert!(batch.rows.is_empty(), "{encoding:?} {value}");
                let [letter] = batch.dead_letters.as_slice() else {
                    panic!("one dead letter for {value}")
                };
                assert_eq!(letter.origin, "ticks");
                assert_eq!(letter.reason, DeadLetterReason::Parse);
                assert_eq!(letter.position, "ticks/3@17");
                assert!(letter.detail.contains(&format!("for column {column}")), "{encoding:?}: {}", letter.detail);
            }
            let batch = decode(encoding, &json!([1, 2]));
            assert_eq!(batch.dead_letters.len(), 1, "{encoding:?}: not an object");
            assert!(
                batch.dead_letters[0].detail.contains("an object of the table's columns"),
                "{}",
                batch.dead_letters[0].detail
            );
        }
    }

    #[test]
    fn truncated_or_trailing_bytes_are_dead_letters() {
        let json = decode_bytes(Encoding::Json, br#"{"node": "A"} {"node": "B"}"#);
        assert_eq!((json.rows.len(), json.dead_letters.len()), (0, 1));
        assert_eq!(json.dead_letters[0].record, r#"{"node": "A"} {"node": "B"}"#);
        let json = decode_bytes(Encoding::Json, br#"{"node": "#);
        assert_eq!((json.rows.len(), json.dead_letters.len()), (0, 1));
        let mut bytes = rmp_serde::to_vec_named(&json!({"node": "A"})).unwrap();
        bytes.push(0xc0);
        let msgpack = decode_bytes(Encoding::MessagePack, &bytes);
        assert_eq!((msgpack.rows.len(), msgpack.dead_letters.len()), (0, 1));
        assert_eq!(msgpack.dead_letters[0].detail, "1 bytes after the object");
        assert!(
            msgpack.dead_letters[0].record.starts_with("msgpack:81a46e6f6465"),
            "{}",
            msgpack.dead_letters[0].record
        );
        let msgpack = decode_bytes(Encoding::MessagePack, &bytes[..3]);
        assert_eq!((msgpack.rows.len(), msgpack.dead_letters.len()), (0, 1));
    }

    #[test]
    fn strings_are_interned_across_records() {
        let mut decoder = ObjectDecoder::new(&config(TICK), Encoding::Json);
        let mut batch = SourceBatch::default();
        decoder.decode(br#"{"node": "PJM-WH"}"#, "p", &mut batch);
        decoder.decode(br#"{"node": "PJM-WH"}"#, "p", &mut batch);
        let (Datum::Str(a), Datum::Str(b)) = (batch.rows[0].get(0), batch.rows[1].get(0)) else {
            panic!("strings")
        };
        assert!(std::sync::Arc::ptr_eq(a, b));
    }

    #[test]
    fn interval_columns_are_rejected_at_validation() {
        let error = check_columns(&config(&[("gap", DataType::Interval)]), Encoding::Json).unwrap_err();
        assert_eq!(error.column(), Some("gap"));
        assert!(error.to_string().contains("json"), "{error}");
    }
}
