//! Rows as records of CSV, JSON or MessagePack, optionally tagged with a
//! change's op: what a line of a file sink and a Kafka message hold.
//!
//! * CSV: the fields in column order (Flink's text forms, quoted only where
//!   needed), the op (`+I`/`-D`) as the first field.
//! * JSON: an object keyed by column name in schema order, the op under
//!   `"op"` first. Written by hand rather than through a `serde_json::Map` so
//!   that keys keep schema order and are escaped once.
//! * MessagePack: a map keyed by column name in schema order, the op under
//!   `"op"` first. Integers, doubles (NaN and infinities included), booleans
//!   and strings are native values, NULL is nil, timestamps and intervals are
//!   their Flink text forms (as in JSON, and what the sources read back).

use std::io;

use carbonflow_core::time::{format_interval, format_timestamp};
use carbonflow_core::{Datum, Row, Schema};

use crate::text::{csv_field, json_value};

/// The CSV writer's buffer: a record of a few fields fits.
const CSV_BUFFER: usize = 256;

/// The key under which JSON and MessagePack records carry the op.
pub const OP_KEY: &str = "op";

/// A record format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// CSV with this field delimiter.
    Csv {
        /// The byte between fields.
        delimiter: u8,
    },
    /// A JSON object.
    Json,
    /// A MessagePack map.
    MessagePack,
}

/// Encodes rows of one schema, one record at a time, into a reused buffer.
pub(crate) struct RecordEncoder {
    encoding: Encoding,
    /// Column names (MessagePack keys).
    names: Box<[String]>,
    /// `"name":` per column, JSON-escaped once.
    json_keys: Box<[String]>,
    record: Vec<u8>,
}

impl RecordEncoder {
    /// An encoder of rows of `schema`.
    pub(crate) fn new(encoding: Encoding, schema: &Schema) -> Self {
        RecordEncoder {
            encoding,
            names: schema.names().map(str::to_owned).collect(),
            json_keys: schema.names().map(json_key).collect(),
            record: Vec::new(),
        }
    }

    /// `row` as one record, with `op` first when given, without a line
    /// terminator. The bytes stay valid until the next call.
    pub(crate) fn encode(&mut self, op: Option<&str>, row: &Row) -> io::Result<&[u8]> {
        self.record.clear();
        match self.encoding {
            Encoding::Csv { delimiter } => {
                // The csv writer quotes fields only where needed; it buffers
                // by itself, so a small buffer per record is all it costs.
                let mut writer = csv::WriterBuilder::new()
                    .delimiter(delimiter)
                    .has_headers(false)
                    .buffer_capacity(CSV_BUFFER)
                    .from_writer(&mut self.record);
                let fields: Vec<_> = row.iter().map(csv_field).collect();
                writer.write_record(op.into_iter().chain(fields.iter().map(|field| &**field)))?;
                writer.flush()?;
                drop(writer);
                if self.record.ends_with(b"\n") {
                    self.record.pop();
                }
            }
            Encoding::Json => {
                self.record.push(b'{');
                if let Some(op) = op {
                    self.record.extend_from_slice(json_key(OP_KEY).as_bytes());
                    serde_json::to_writer(&mut self.record, op)?;
                }
                for (i, (key, datum)) in self.json_keys.iter().zip(row.iter()).enumerate() {
                    if i > 0 || op.is_some() {
                        self.record.push(b',');
                    }
                    self.record.extend_from_slice(key.as_bytes());
                    serde_json::to_writer(&mut self.record, &json_value(datum))?;
                }
                self.record.push(b'}');
            }
            Encoding::MessagePack => {
                let out = &mut self.record;
                let entries = self.names.len() + usize::from(op.is_some());
                rmp::encode::write_map_len(out, u32::try_from(entries).map_err(io::Error::other)?).map_err(io::Error::other)?;
                if let Some(op) = op {
                    rmp::encode::write_str(out, OP_KEY).map_err(io::Error::other)?;
                    rmp::encode::write_str(out, op).map_err(io::Error::other)?;
                }
                for (name, datum) in self.names.iter().zip(row.iter()) {
                    rmp::encode::write_str(out, name).map_err(io::Error::other)?;
                    write_msgpack_datum(out, datum)?;
                }
            }
        }
        Ok(&self.record)
    }
}

fn write_msgpack_datum(out: &mut Vec<u8>, datum: &Datum) -> io::Result<()> {
    match datum {
        Datum::Null => rmp::encode::write_nil(out)?,
        Datum::Bool(value) => rmp::encode::write_bool(out, *value)?,
        Datum::Int(value) => {
            rmp::encode::write_sint(out, *value).map_err(io::Error::other)?;
        }
        Datum::Float(value) => rmp::encode::write_f64(out, value.get()).map_err(io::Error::other)?,
        Datum::Str(value) => rmp::encode::write_str(out, value).map_err(io::Error::other)?,
        Datum::Timestamp(millis) => rmp::encode::write_str(out, &format_timestamp(*millis)).map_err(io::Error::other)?,
        Datum::Interval(millis) => rmp::encode::write_str(out, &format_interval(*millis)).map_err(io::Error::other)?,
    }
    Ok(())
}

/// `"name":`, escaped as a JSON string.
fn json_key(name: &str) -> String {
    format!("{}:", serde_json::Value::from(name))
}

#[cfg(test)]
mod tests {
    use carbonflow_core::{DataType, Field};
    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("node", DataType::String),
            Field::new("ts", DataType::Timestamp),
            Field::new("price", DataType::Float),
            Field::new("n", DataType::Int),
            Field::new("ok", DataType::Bool),
        ])
    }

    fn row(price: f64) -> Row {
        Row::new(vec![
            Datum::string("a,\"b\""),
            Datum::Timestamp(1_704_067_260_000),
            Datum::float(price),
            Datum::Int(-3),
            Datum::Null,
        ])
    }

    fn encode(encoding: Encoding, op: Option<&str>, row: &Row) -> Vec<u8> {
        RecordEncoder::new(encoding, &schema()).encode(op, row).unwrap().to_vec()
    }

    #[test]
    fn csv_records_quote_where_needed_and_have_no_terminator() {
        let csv = Encoding::Csv { delimiter: b',' };
        assert_eq!(encode(csv, Some("-D"), &row(1.5)), b"-D,\"a,\"\"b\"\"\",2024-01-01 00:01:00.000,1.5,-3,");
        assert_eq!(
            encode(Encoding::Csv { delimiter: b';' }, None, &row(1.0)),
            b"\"a,\"\"b\"\"\";2024-01-01 00:01:00.000;1.0;-3;"
        );
    }

    #[test]
    fn json_records_keep_schema_order_with_the_op_first() {
        let text = String::from_utf8(encode(Encoding::Json, Some("+I"), &row(f64::NAN))).unwrap();
        assert_eq!(
            text,
            r#"{"op":"+I","node":"a,\"b\"","ts":"2024-01-01 00:01:00.000","price":"NaN","n":-3,"ok":null}"#
        );
    }

    #[test]
    fn msgpack_records_are_maps_with_native_values() {
        let bytes = encode(Encoding::MessagePack, Some("-D"), &row(2.5));
        let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            json!({"op": "-D", "node": "a,\"b\"", "ts": "2024-01-01 00:01:00.000", "price": 2.5, "n": -3, "ok": null})
        );
        // A map of 6 entries, keys in schema order after the op.
        assert!(bytes.starts_with(b"\x86\xa2op\xa2-D\xa4node"), "{bytes:x?}");
        // Doubles JSON cannot hold stay native: the float64 marker and the IEEE bits.
        let bytes = encode(Encoding::MessagePack, None, &row(f64::INFINITY));
        let infinity: Vec<u8> = std::iter::once(0xcb).chain(f64::INFINITY.to_be_bytes()).collect();
        assert!(bytes.windows(infinity.len()).any(|window| window == infinity), "{bytes:x?}");
    }
}
