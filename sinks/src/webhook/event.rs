//! From a sink's changes to webhook messages: which changes become events,
//! their deterministic ids, and their bodies.
//!
//! **Which changes.** By default (`'retractions' = 'ignore'`) only
//! insertions are delivered: an alert is news when it starts to hold, and a
//! later revision that withdraws it sends nothing. With `'retractions' =
//! 'deliver'` every change is an event tagged `"op": "insert"` or `"op":
//! "delete"`. If the table declares a `PRIMARY KEY`, events are upserts by key:
//! a retraction whose key is inserted again in the same epoch is not sent,
//! since the insertion replaces it. A change with a multiplicity above one
//! is one event: partners see the view as a set.
//!
//! **Ids.** `webhook-id` is `msg_` and 32 hex digits of a SHA-256 over the
//! sink table's name, the change kind, the row's full content (which holds
//! its key, and whose values are its version: a revised alert is a new
//! message) and a generation. The same change replayed after a crash thus
//! has the same id, and the outbox, which ignores ids it already holds,
//! does not send it twice. The generation tells apart an identical row that
//! comes back after being retracted: in `deliver` mode it is the number of
//! retractions of that row seen earlier in the run, so a replay from the
//! start of the input reproduces it. In `ignore` mode it is always 0: a
//! partner who never hears of the retraction would only see the same alert
//! twice.
//!
//! **Bodies.** An event is one object, the columns by name in declared
//! order (`"op"` first when retractions are delivered), values as in the
//! filesystem sink's JSON (timestamps as `2024-01-01 00:00:00.000`, a
//! non-finite double as `"NaN"`); MessagePack bodies hold the same object
//! (doubles stay doubles there, NaN included). In batch mode a request
//! carries an array of `{"id": <message id>, "data": <event>}`, so a
//! partner can deduplicate each event; the request's own `webhook-id` is
//! derived from the ids it carries.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;

use carbonflow_core::{Datum, Diff, Row, Schema};
use ring::digest;

use super::options::{BodyFormat, OP_KEY, Retractions};
use crate::change_id::{change_id, hex_prefix};
use crate::text::json_value;

/// Bumped if the id derivation ever changes, so old and new ids cannot collide.
const ID_DOMAIN: &[u8] = b"carbonflow-webhook-id-v1";

/// An event to deliver: its id and its encoded body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The `webhook-id`.
    pub id: String,
    /// The event object, JSON or MessagePack.
    pub body: Vec<u8>,
}

/// Whether a change adds or withdraws a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// `"op": "insert"`.
    Insert,
    /// `"op": "delete"`.
    Delete,
}

impl ChangeKind {
    fn name(self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Delete => "delete",
        }
    }
}

/// Turns a sink's batches into messages.
pub(crate) struct EventEncoder {
    table: String,
    columns: Vec<String>,
    format: BodyFormat,
    retractions: Retractions,
    primary_key: Option<Vec<usize>>,
    /// In `deliver` mode: how many times each row has been retracted so far in this run.
    retracted: HashMap<Row, u64>,
}

impl EventEncoder {
    pub(crate) fn new(table: &str, schema: &Schema, primary_key: Option<Vec<usize>>, format: BodyFormat, retractions: Retractions) -> EventEncoder {
        EventEncoder {
            table: table.to_owned(),
            columns: schema.names().map(str::to_owned).collect(),
            format,
            retractions,
            primary_key,
            retracted: HashMap::new(),
        }
    }

    /// The messages of one epoch's consolidated changes, in the order given.
    pub(crate) fn messages(&mut self, updates: &[(Row, Diff)]) -> Vec<NewMessage> {
        let reinserted_keys: HashSet<Row> = match (&self.primary_key, self.retractions) {
            (Some(key), Retractions::Deliver) => updates.iter().filter(|(_, diff)| *diff > 0).map(|(row, _)| row.project(key)).collect(),
            _ => HashSet::new(),
        };
        let mut messages = Vec::new();
        for (row, diff) in updates {
            let kind = if *diff > 0 { ChangeKind::Insert } else { ChangeKind::Delete };
            let generation = match (self.retractions, kind) {
                (Retractions::Ignore, ChangeKind::Insert) => 0,
                (Retractions::Ignore, ChangeKind::Delete) => continue,
                (Retractions::Deliver, ChangeKind::Insert) => self.retracted.get(row).copied().unwrap_or(0),
                (Retractions::Deliver, ChangeKind::Delete) => {
                    let count = self.retracted.entry(row.clone()).or_insert(0);
                    *count += 1;
                    let generation = *count - 1;
                    if self.primary_key.as_ref().is_some_and(|key| reinserted_keys.contains(&row.project(key))) {
                        continue;
                    }
                    generation
                }
            };
            let op = (self.retractions == Retractions::Deliver).then_some(kind);
            messages.push(NewMessage {
                id: message_id(&self.table, kind, generation, row),
                body: self.encode(op, row),
            });
        }
        messages
    }

    fn encode(&self, op: Option<ChangeKind>, row: &Row) -> Vec<u8> {
        match self.format {
            BodyFormat::Json => self.json(op, row),
            BodyFormat::MessagePack => self.msgpack(op, row),
        }
    }

    /// Written by hand rather than through a `serde_json::Map`, which would sort the keys.
    fn json(&self, op: Option<ChangeKind>, row: &Row) -> Vec<u8> {
        let mut out = vec![b'{'];
        let mut first = true;
        let mut field = |out: &mut Vec<u8>, key: &str, value: serde_json::Value| {
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *out, key).expect("a string serialises");
            out.push(b':');
            serde_json::to_writer(&mut *out, &value).expect("a JSON value serialises");
        };
        if let Some(op) = op {
            field(&mut out, OP_KEY, op.name().into());
        }
        for (name, datum) in self.columns.iter().zip(row.iter()) {
            field(&mut out, name, json_value(datum));
        }
        out.push(b'}');
        out
    }

    fn msgpack(&self, op: Option<ChangeKind>, row: &Row) -> Vec<u8> {
        let mut out = MessagePack::default();
        out.map_len(self.columns.len() + usize::from(op.is_some()));
        if let Some(op) = op {
            out.str(OP_KEY);
            out.str(op.name());
        }
        for (name, datum) in self.columns.iter().zip(row.iter()) {
            out.str(name);
            out.datum(datum);
        }
        out.0
    }
}

/// `msg_` and the [`change_id`](crate::change_id) of the change in the
/// webhook domain, the generation being its counter.
pub(crate) fn message_id(table: &str, kind: ChangeKind, generation: u64, row: &Row) -> String {
    format!("msg_{}", change_id(ID_DOMAIN, table, kind.name(), generation, row))
}

/// The `webhook-id` of a request carrying several messages: derived from theirs, in order.
pub(crate) fn batch_id(ids: &[&str]) -> String {
    let mut hash = digest::Context::new(&digest::SHA256);
    hash.update(b"carbonflow-webhook-batch-v1");
    for id in ids {
        hash.update(&(id.len() as u64).to_le_bytes());
        hash.update(id.as_bytes());
    }
    id_from_digest(hash.finish())
}

fn id_from_digest(digest: digest::Digest) -> String {
    format!("msg_{}", hex_prefix(digest))
}

/// The body of a batch request: an array of `{"id": ..., "data": <event>}`,
/// the events embedded as they were encoded.
pub(crate) fn batch_body(format: BodyFormat, events: &[(&str, &[u8])]) -> Vec<u8> {
    match format {
        BodyFormat::Json => {
            let mut out = vec![b'['];
            for (i, (id, event)) in events.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write!(out, "{{\"id\":\"{id}\",\"data\":").expect("writing to a Vec");
                out.extend_from_slice(event);
                out.push(b'}');
            }
            out.push(b']');
            out
        }
        BodyFormat::MessagePack => {
            let mut out = MessagePack::default();
            out.array_len(events.len());
            for (id, event) in events {
                out.map_len(2);
                out.str("id");
                out.str(id);
                out.str("data");
                out.0.extend_from_slice(event);
            }
            out.0
        }
    }
}

/// A MessagePack encoder into memory (where writing cannot fail).
#[derive(Default)]
struct MessagePack(Vec<u8>);

impl MessagePack {
    fn map_len(&mut self, len: usize) {
        rmp::encode::write_map_len(&mut self.0, u32::try_from(len).expect("fewer than 2^32 columns")).expect("writing to a Vec");
    }

    fn array_len(&mut self, len: usize) {
        rmp::encode::write_array_len(&mut self.0, u32::try_from(len).expect("a batch is at most 1000 events")).expect("writing to a Vec");
    }

    fn str(&mut self, text: &str) {
        rmp::encode::write_str(&mut self.0, text).expect("writing to a Vec");
    }

    fn datum(&mut self, datum: &Datum) {
        match datum {
            Datum::Null => rmp::encode::write_nil(&mut self.0).expect("writing to a Vec"),
            Datum::Bool(value) => rmp::encode::write_bool(&mut self.0, *value).expect("writing to a Vec"),
            Datum::Int(value) => {
                rmp::encode::write_sint(&mut self.0, *value).expect("writing to a Vec");
            }
            Datum::Float(value) => rmp::encode::write_f64(&mut self.0, value.get()).expect("writing to a Vec"),
            // Strings, timestamps and intervals take the JSON body's text forms.
            Datum::Str(_) | Datum::Timestamp(_) | Datum::Interval(_) => match json_value(datum) {
                serde_json::Value::String(text) => self.str(&text),
                other => unreachable!("text datums are JSON strings, not {other}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use carbonflow_core::{DataType, Field};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("node", DataType::String),
            Field::new("ts", DataType::Timestamp),
            Field::new("price", DataType::Float),
        ])
    }

    fn row(node: &str, price: f64) -> Row {
        Row::new(vec![Datum::string(node), Datum::Timestamp(1_704_067_200_000), Datum::float(price)])
    }

    fn encoder(retractions: Retractions, primary_key: Option<Vec<usize>>) -> EventEncoder {
        EventEncoder::new("alerts", &schema(), primary_key, BodyFormat::Json, retractions)
    }

    fn bodies(messages: &[NewMessage]) -> Vec<String> {
        messages.iter().map(|m| String::from_utf8(m.body.clone()).unwrap()).collect()
    }

    #[test]
    fn insertions_become_json_objects_in_column_order() {
        let messages = encoder(Retractions::Ignore, None).messages(&[(row("N1", 120.5), 1), (row("N2", 99.0), -1)]);
        assert_eq!(bodies(&messages), [r#"{"node":"N1","ts":"2024-01-01 00:00:00.000","price":120.5}"#]);
        assert!(messages[0].id.starts_with("msg_") && messages[0].id.len() == 36, "{}", messages[0].id);
    }

    #[test]
    fn ids_are_deterministic_and_tell_changes_apart() {
        let a = message_id("alerts", ChangeKind::Insert, 0, &row("N1", 120.5));
        assert_eq!(a, message_id("alerts", ChangeKind::Insert, 0, &row("N1", 120.5)));
        let others = [
            message_id("other_alerts", ChangeKind::Insert, 0, &row("N1", 120.5)),
            message_id("alerts", ChangeKind::Delete, 0, &row("N1", 120.5)),
            message_id("alerts", ChangeKind::Insert, 1, &row("N1", 120.5)),
            message_id("alerts", ChangeKind::Insert, 0, &row("N1", 120.25)),
            message_id("alerts", ChangeKind::Insert, 0, &row("N10", 120.5)),
            message_id("alerts", ChangeKind::Insert, 0, &Row::new(vec![Datum::string("N1"), Datum::Null])),
        ];
        let distinct: HashSet<&String> = others.iter().chain([&a]).collect();
        assert_eq!(distinct.len(), others.len() + 1);
        // A value cannot slide into its neighbour: ("ab", "c") and ("a", "bc") differ.
        let split = |x: &str, y: &str| message_id("t", ChangeKind::Insert, 0, &Row::new(vec![Datum::string(x), Datum::string(y)]));
        assert_ne!(split("ab", "c"), split("a", "bc"));
        // The derivation as docs/webhooks.md states it, computed outside
        // Rust (Python's hashlib and struct): ids already in outboxes and at
        // partners must stay valid, so a change here must be deliberate.
        assert_eq!(a, "msg_3e35cdfb19a9219bbce2771d26e080b1");
    }

    #[test]
    fn a_replay_batched_differently_gives_every_change_the_id_it_had() {
        let (a, b, c) = (row("N1", 300.0), row("N2", 280.0), row("N3", 260.0));
        let first_run = [
            vec![(a.clone(), 1), (b.clone(), 1)],
            vec![(a.clone(), -1)],
            vec![(a.clone(), 1), (c.clone(), 1)],
        ];
        let replay = [
            vec![(a.clone(), 1)],
            vec![(b.clone(), 1)],
            vec![(a.clone(), -1)],
            vec![(a.clone(), 1)],
            vec![(c.clone(), 1)],
        ];
        for retractions in [Retractions::Ignore, Retractions::Deliver] {
            let ids = |batches: &[Vec<(Row, Diff)>]| -> Vec<String> {
                let mut encoder = encoder(retractions, None);
                let mut ids: Vec<String> = batches.iter().flat_map(|batch| encoder.messages(batch)).map(|m| m.id).collect();
                ids.sort();
                ids
            };
            assert_eq!(ids(&first_run), ids(&replay), "{retractions:?}");
        }
        // A replay of only the later changes (a run resumed past the
        // retraction) counts generations from where it starts.
        let mut resumed = encoder(Retractions::Deliver, None);
        let reinserted = resumed.messages(&[(a.clone(), 1)]);
        let mut from_start = encoder(Retractions::Deliver, None);
        let original: Vec<String> = first_run.iter().flat_map(|batch| from_start.messages(batch)).map(|m| m.id).collect();
        assert_eq!(reinserted[0].id, original[0], "the first insertion's id, not the reinsertion's");
        assert_ne!(reinserted[0].id, original[3]);
    }

    #[test]
    fn retractions_become_delete_events_with_generations() {
        let mut encoder = encoder(Retractions::Deliver, None);
        let first = encoder.messages(&[(row("N1", 120.5), 1)]);
        let withdrawn = encoder.messages(&[(row("N1", 120.5), -1)]);
        let again = encoder.messages(&[(row("N1", 120.5), 1)]);
        let withdrawn_again = encoder.messages(&[(row("N1", 120.5), -1)]);
        assert_eq!(
            bodies(&withdrawn),
            [r#"{"op":"delete","node":"N1","ts":"2024-01-01 00:00:00.000","price":120.5}"#]
        );
        assert!(bodies(&again)[0].starts_with(r#"{"op":"insert","#));
        let ids: HashSet<&str> = [&first, &withdrawn, &again, &withdrawn_again].iter().map(|m| m[0].id.as_str()).collect();
        assert_eq!(ids.len(), 4, "a row back after a retraction is a new event");
        // A replay from the start of the input reproduces every id.
        let mut replay = self::encoder(Retractions::Deliver, None);
        for (batch, expected) in [(1, &first), (-1, &withdrawn), (1, &again), (-1, &withdrawn_again)] {
            assert_eq!(&replay.messages(&[(row("N1", 120.5), batch)]), expected);
        }
    }

    #[test]
    fn ignored_retractions_leave_reinsertions_with_the_same_id() {
        let mut encoder = encoder(Retractions::Ignore, None);
        let first = encoder.messages(&[(row("N1", 120.5), 1)]);
        assert!(encoder.messages(&[(row("N1", 120.5), -1)]).is_empty());
        assert_eq!(encoder.messages(&[(row("N1", 120.5), 1)]), first);
    }

    #[test]
    fn a_primary_key_folds_a_replaced_row_into_its_upsert() {
        let mut encoder = encoder(Retractions::Deliver, Some(vec![0, 1]));
        let revised = encoder.messages(&[(row("N1", 120.5), -1), (row("N1", 130.0), 1), (row("N2", 101.0), -1)]);
        assert_eq!(
            bodies(&revised),
            [
                r#"{"op":"insert","node":"N1","ts":"2024-01-01 00:00:00.000","price":130.0}"#,
                r#"{"op":"delete","node":"N2","ts":"2024-01-01 00:00:00.000","price":101.0}"#,
            ]
        );
    }

    #[test]
    fn msgpack_bodies_hold_the_same_object() {
        let mut encoder = EventEncoder::new("alerts", &schema(), None, BodyFormat::MessagePack, Retractions::Deliver);
        let messages = encoder.messages(&[(
            Row::new(vec![Datum::string("N1"), Datum::Timestamp(1_704_067_200_000), Datum::float(f64::NAN)]),
            1,
        )]);
        let decoded: serde_json::Value = rmp_serde::from_slice(&messages[0].body).unwrap();
        assert_eq!(decoded["op"], "insert");
        assert_eq!(decoded["node"], "N1");
        assert_eq!(decoded["ts"], "2024-01-01 00:00:00.000");
        // NaN survives in MessagePack (serde_json shows it as null).
        assert!(decoded["price"].is_null());
        let keys: Vec<&String> = decoded.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn batches_wrap_each_event_with_its_id() {
        let json = batch_body(BodyFormat::Json, &[("msg_a", br#"{"x":1}"#), ("msg_b", br#"{"x":2}"#)]);
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!([{"id": "msg_a", "data": {"x": 1}}, {"id": "msg_b", "data": {"x": 2}}])
        );
        let mut inner = MessagePack::default();
        inner.map_len(1);
        inner.str("x");
        inner.datum(&Datum::Int(1));
        let packed = batch_body(BodyFormat::MessagePack, &[("msg_a", &inner.0)]);
        let parsed: serde_json::Value = rmp_serde::from_slice(&packed).unwrap();
        assert_eq!(parsed, serde_json::json!([{"id": "msg_a", "data": {"x": 1}}]));
        assert_ne!(batch_id(&["msg_a", "msg_b"]), batch_id(&["msg_b", "msg_a"]));
        assert_eq!(batch_id(&["msg_a", "msg_b"]), batch_id(&["msg_a", "msg_b"]));
    }
}
