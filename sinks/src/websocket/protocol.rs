//! The wire protocol of `GET /v1/stream`: the messages both ends exchange and
//! their two encodings. `docs/websocket-protocol.md` describes it for client
//! authors, with an example of every message.
//!
//! Every message is a map whose `type` field names it. Under the subprotocol
//! [`MSGPACK_PROTOCOL`] each message is one binary MessagePack frame (maps with
//! field names); under [`JSON_PROTOCOL`] it is one JSON text frame, for
//! debugging. Rows travel as arrays of plain values in the view's column
//! order: NULL, booleans, integers, floats and strings; timestamps and
//! intervals as integer milliseconds (the `columns` of a snapshot give each
//! column's SQL type).

use std::collections::BTreeMap;
use std::fmt;

use carbonflow_core::{DataType, Datum, F64, Row};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use yawc::{Frame, OpCode};

/// The binary MessagePack subprotocol.
pub const MSGPACK_PROTOCOL: &str = "carbonflow.v1.msgpack";
/// The JSON text subprotocol, for debugging.
pub const JSON_PROTOCOL: &str = "carbonflow.v1.json";
/// The path of the stream endpoint.
pub const STREAM_PATH: &str = "/v1/stream";

/// Close code: the client read too slowly; its pending changes outgrew the bound.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;

/// A subscription's id, chosen by the client and unique on its connection.
pub type SubscriptionId = u64;

/// A message from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Subscribe to a view: a snapshot, then diffs.
    Subscribe {
        /// The subscription's id, echoed as `sub` in every reply.
        id: SubscriptionId,
        /// The view or `websocket` sink table.
        view: String,
        /// Equality (`"col": value`) or IN (`"col": [v1, v2]`) per column; key
        /// columns only for a view with a key.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        filter: BTreeMap<String, FilterValues>,
        /// The last sequence number applied before a reconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_from: Option<u64>,
        /// The view version that sequence number brought the client to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_version: Option<u64>,
    },
    /// End a subscription.
    Unsubscribe {
        /// The subscription's id.
        id: SubscriptionId,
    },
    /// Asks for a `pong`.
    Ping,
}

/// The values a filter accepts for one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FilterValues {
    /// `IN (...)`.
    Any(Vec<WireDatum>),
    /// `= value`.
    One(WireDatum),
}

impl FilterValues {
    /// The accepted values.
    pub fn values(&self) -> &[WireDatum] {
        match self {
            FilterValues::Any(values) => values,
            FilterValues::One(value) => std::slice::from_ref(value),
        }
    }
}

/// A column of a view, as a snapshot describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// Its SQL type (`STRING`, `DOUBLE`, `BIGINT`, `TIMESTAMP(3)`, ...).
    #[serde(rename = "type")]
    pub sql_type: String,
}

/// Why the server refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message could not be decoded.
    BadRequest,
    /// No view or `websocket` table of that name.
    UnknownView,
    /// The token may not read that view.
    Forbidden,
    /// The filter names an unknown column, a non-key column of a keyed view,
    /// or a value of the wrong type.
    BadFilter,
    /// The id is already subscribed on this connection.
    DuplicateSubscription,
    /// `unsubscribe` of an id that is not subscribed.
    UnknownSubscription,
    /// The connection already has as many subscriptions as the server allows.
    TooManySubscriptions,
    /// The view is no longer served (its query was dropped): the subscription has ended.
    ViewRemoved,
}

/// A message from the server. `seq` numbers a subscription's snapshot and
/// diffs without gaps; `version` is the view's own position (it brings a
/// client to the view's contents at that version); `frontier` is the event
/// time in UTC milliseconds up to which the view is complete (`null` before
/// any watermark, `9223372036854775807` once every input has ended).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The view's contents that pass the filter.
    Snapshot {
        /// The subscription.
        sub: SubscriptionId,
        /// Its sequence number.
        seq: u64,
        /// The view version the rows are at.
        version: u64,
        /// Event time up to which the view is complete.
        frontier: Option<i64>,
        /// The columns of every row.
        columns: Vec<Column>,
        /// The key columns, when the view has a key: diffs then carry
        /// `upserts` and `deletes` (of keys) instead of `inserts` and `deletes` (of rows).
        key: Option<Vec<String>>,
        /// The rows.
        rows: Vec<WireRow>,
    },
    /// The changes since the previous message of the subscription.
    Diff {
        /// The subscription.
        sub: SubscriptionId,
        /// Its sequence number: the previous one plus one.
        seq: u64,
        /// The view version these changes bring the client to.
        version: u64,
        /// Event time up to which the view is complete.
        frontier: Option<i64>,
        /// Keyed views: rows that replace the row of their key (or are new).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        upserts: Vec<WireRow>,
        /// Views without a key: rows added (a row twice if added twice).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        inserts: Vec<WireRow>,
        /// Keyed views: the keys (key columns in key order) whose row is gone.
        /// Views without a key: rows removed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deletes: Vec<WireRow>,
    },
    /// Nothing new for the subscription: it repeats the last `seq` and says
    /// how far the view is complete.
    Heartbeat {
        /// The subscription.
        sub: SubscriptionId,
        /// The last sequence number sent.
        seq: u64,
        /// The view version the client is at.
        version: u64,
        /// Event time up to which the view is complete.
        frontier: Option<i64>,
    },
    /// The subscription ended at the client's request.
    Unsubscribed {
        /// The subscription.
        sub: SubscriptionId,
    },
    /// The answer to `ping`.
    Pong,
    /// A request was refused.
    Error {
        /// The subscription concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub: Option<SubscriptionId>,
        /// What kind of refusal.
        code: ErrorCode,
        /// What went wrong, for a person.
        message: String,
    },
}

/// A row on the wire: an array of plain values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireRow(pub Row);

/// One value on the wire. A timestamp or interval goes out as an integer and
/// comes back as [`Datum::Int`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireDatum(pub Datum);

impl WireDatum {
    /// The datum this wire value denotes in a column of `data_type`, if it fits.
    pub fn to_datum(&self, data_type: DataType) -> Option<Datum> {
        match (&self.0, data_type) {
            (Datum::Null, _) => Some(Datum::Null),
            (Datum::Int(millis), DataType::Timestamp) => Some(Datum::Timestamp(*millis)),
            (Datum::Int(millis), DataType::Interval) => Some(Datum::Interval(*millis)),
            (Datum::Int(value), DataType::Float) => Some(Datum::float(*value as f64)),
            (datum @ Datum::Int(_), DataType::Int)
            | (datum @ Datum::Float(_), DataType::Float)
            | (datum @ Datum::Str(_), DataType::String)
            | (datum @ Datum::Bool(_), DataType::Bool) => Some(datum.clone()),
            _ => None,
        }
    }
}

fn serialize_datum<S: Serializer>(datum: &Datum, serializer: S) -> Result<S::Ok, S::Error> {
    match datum {
        Datum::Null => serializer.serialize_unit(),
        Datum::Bool(value) => serializer.serialize_bool(*value),
        Datum::Int(value) | Datum::Timestamp(value) | Datum::Interval(value) => serializer.serialize_i64(*value),
        Datum::Float(value) => serializer.serialize_f64(value.get()),
        Datum::Str(value) => serializer.serialize_str(value),
    }
}

impl Serialize for WireDatum {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_datum(&self.0, serializer)
    }
}

impl Serialize for WireRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// Borrows a datum for serialization.
        struct Plain<'d>(&'d Datum);
        impl Serialize for Plain<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serialize_datum(self.0, serializer)
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for datum in self.0.datums() {
            seq.serialize_element(&Plain(datum))?;
        }
        seq.end()
    }
}

struct DatumVisitor;

impl<'de> Visitor<'de> for DatumVisitor {
    type Value = WireDatum;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("null, a boolean, a number or a string")
    }

    fn visit_unit<E: de::Error>(self) -> Result<WireDatum, E> {
        Ok(WireDatum(Datum::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<WireDatum, E> {
        Ok(WireDatum(Datum::Null))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<WireDatum, E> {
        Ok(WireDatum(Datum::Bool(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<WireDatum, E> {
        Ok(WireDatum(Datum::Int(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<WireDatum, E> {
        i64::try_from(value)
            .map(|value| WireDatum(Datum::Int(value)))
            .map_err(|_| E::custom(format!("integer {value} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<WireDatum, E> {
        Ok(WireDatum(Datum::Float(F64::new(value))))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<WireDatum, E> {
        Ok(WireDatum(Datum::string(value)))
    }
}

impl<'de> Deserialize<'de> for WireDatum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DatumVisitor)
    }
}

impl<'de> Deserialize<'de> for WireRow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = WireRow;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of values")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireRow, A::Error> {
                let mut datums = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(WireDatum(datum)) = seq.next_element()? {
                    datums.push(datum);
                }
                Ok(WireRow(Row::new(datums)))
            }
        }
        deserializer.deserialize_seq(RowVisitor)
    }
}

/// How messages are framed on a connection, chosen by the subprotocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// Binary MessagePack frames ([`MSGPACK_PROTOCOL`], the default).
    #[default]
    MessagePack,
    /// JSON text frames ([`JSON_PROTOCOL`]).
    Json,
}

/// A frame that does not hold a message of the protocol.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl Encoding {
    /// The encoding a subprotocol name selects.
    pub fn from_protocol(name: &str) -> Option<Encoding> {
        match name.trim() {
            MSGPACK_PROTOCOL => Some(Encoding::MessagePack),
            JSON_PROTOCOL => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The subprotocol name.
    pub fn protocol(self) -> &'static str {
        match self {
            Encoding::MessagePack => MSGPACK_PROTOCOL,
            Encoding::Json => JSON_PROTOCOL,
        }
    }

    /// One message as one frame.
    pub fn encode<M: Serialize>(self, message: &M) -> Frame {
        match self {
            Encoding::MessagePack => Frame::binary(rmp_serde::to_vec_named(message).expect("protocol messages serialize")),
            Encoding::Json => Frame::text(serde_json::to_string(message).expect("protocol messages serialize")),
        }
    }

    /// The message of a data frame (after decompression); `Ok(None)` for control frames.
    pub fn decode<M: for<'de> Deserialize<'de>>(self, frame: &Frame) -> Result<Option<M>, DecodeError> {
        let decoded = match (self, frame.opcode()) {
            (Encoding::MessagePack, OpCode::Binary) => rmp_serde::from_slice(frame.payload()).map_err(|e| e.to_string()),
            (Encoding::Json, OpCode::Text) => serde_json::from_slice(frame.payload()).map_err(|e| e.to_string()),
            (_, OpCode::Binary) => Err(format!("a binary frame under {}", self.protocol())),
            (_, OpCode::Text) => Err(format!("a text frame under {}", self.protocol())),
            _ => return Ok(None),
        };
        decoded.map(Some).map_err(DecodeError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(datums: Vec<Datum>) -> WireRow {
        WireRow(Row::new(datums))
    }

    #[test]
    fn messages_round_trip_in_both_encodings() {
        let messages = vec![
            ServerMessage::Snapshot {
                sub: 1,
                seq: 1,
                version: 17,
                frontier: Some(1_704_067_200_000),
                columns: vec![Column {
                    name: "node".into(),
                    sql_type: "STRING".into(),
                }],
                key: Some(vec!["node".into()]),
                rows: vec![row(vec![
                    Datum::string("PJM-RTO"),
                    Datum::float(31.5),
                    Datum::Null,
                    Datum::Bool(true),
                    Datum::Int(-3),
                ])],
            },
            ServerMessage::Diff {
                sub: 1,
                seq: 2,
                version: 18,
                frontier: None,
                upserts: vec![row(vec![Datum::string("A"), Datum::float(2.0)])],
                inserts: vec![],
                deletes: vec![row(vec![Datum::string("B")])],
            },
            ServerMessage::Heartbeat {
                sub: 1,
                seq: 2,
                version: 19,
                frontier: Some(i64::MAX),
            },
            ServerMessage::Error {
                sub: None,
                code: ErrorCode::Forbidden,
                message: "no".into(),
            },
            ServerMessage::Pong,
        ];
        for encoding in [Encoding::MessagePack, Encoding::Json] {
            for message in &messages {
                let frame = encoding.encode(message);
                let back: ServerMessage = encoding.decode(&frame).unwrap().unwrap();
                assert_eq!(&back, message, "{encoding:?}");
            }
        }
    }

    #[test]
    fn client_messages_decode_from_hand_written_json() {
        let text = r#"{"type":"subscribe","id":7,"view":"hub_prices","filter":{"market":"PJM","node":["A","B"]},"resume_from":4,"resume_version":99}"#;
        let message: ClientMessage = Encoding::Json.decode(&Frame::text(text)).unwrap().unwrap();
        let ClientMessage::Subscribe {
            id,
            view,
            filter,
            resume_from,
            resume_version,
        } = message
        else {
            panic!("{message:?}");
        };
        assert_eq!((id, view.as_str(), resume_from, resume_version), (7, "hub_prices", Some(4), Some(99)));
        assert_eq!(filter["market"].values(), &[WireDatum(Datum::string("PJM"))]);
        assert_eq!(filter["node"].values().len(), 2);
        let ping: ClientMessage = Encoding::Json.decode(&Frame::text(r#"{"type":"ping"}"#)).unwrap().unwrap();
        assert_eq!(ping, ClientMessage::Ping);
    }

    #[test]
    fn timestamps_travel_as_integers_and_come_back_typed_by_column() {
        let frame = Encoding::MessagePack.encode(&row(vec![Datum::Timestamp(5), Datum::Interval(7)]));
        let back: WireRow = Encoding::MessagePack.decode(&frame).unwrap().unwrap();
        assert_eq!(back.0.datums(), &[Datum::Int(5), Datum::Int(7)]);
        assert_eq!(WireDatum(Datum::Int(5)).to_datum(DataType::Timestamp), Some(Datum::Timestamp(5)));
        assert_eq!(WireDatum(Datum::Int(5)).to_datum(DataType::Float), Some(Datum::float(5.0)));
        assert_eq!(WireDatum(Datum::string("x")).to_datum(DataType::Int), None);
    }

    #[test]
    fn a_frame_of_the_wrong_kind_or_content_is_an_error() {
        assert!(Encoding::MessagePack.decode::<ClientMessage>(&Frame::text("{}")).is_err());
        assert!(Encoding::Json.decode::<ClientMessage>(&Frame::text(r#"{"type":"dance"}"#)).is_err());
        assert!(Encoding::Json.decode::<ClientMessage>(&Frame::ping(Vec::new())).unwrap().is_none());
    }
}
