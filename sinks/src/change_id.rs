//! Deterministic ids of changes, shared by the sinks that let a receiver (or
//! themselves) recognise a change delivered again: the webhook sink's
//! `webhook-id` and the Kafka sink's `carbonflow-id` header.
//!
//! An id is 32 hex digits of a SHA-256 over a domain (which keeps the ids of
//! different uses and versions apart), the sink table's name, the change's
//! kind, a counter the caller defines and the row's datums, each written
//! with its length or type, so that no two different inputs share an
//! encoding. The same change of the same table thus has the same id in every
//! run, which is what lets a replayed result be recognised.

use carbonflow_core::{Datum, Row};
use ring::digest;

/// The id of a change: `kind` and `counter` as the caller defines them.
pub(crate) fn change_id(domain: &[u8], table: &str, kind: &str, counter: u64, row: &Row) -> String {
    let mut hash = digest::Context::new(&digest::SHA256);
    let mut bytes = |data: &[u8]| {
        hash.update(&(data.len() as u64).to_le_bytes());
        hash.update(data);
    };
    bytes(domain);
    bytes(table.as_bytes());
    bytes(kind.as_bytes());
    bytes(&counter.to_le_bytes());
    for datum in row.iter() {
        let (tag, value): (u8, Vec<u8>) = match datum {
            Datum::Null => (0, Vec::new()),
            Datum::Bool(value) => (1, vec![u8::from(*value)]),
            Datum::Int(value) => (2, value.to_le_bytes().to_vec()),
            Datum::Float(value) => (3, value.get().to_bits().to_le_bytes().to_vec()),
            Datum::Str(value) => (4, value.as_bytes().to_vec()),
            Datum::Timestamp(millis) => (5, millis.to_le_bytes().to_vec()),
            Datum::Interval(millis) => (6, millis.to_le_bytes().to_vec()),
        };
        bytes(&[tag]);
        bytes(&value);
    }
    hex_prefix(hash.finish())
}

/// The first 16 bytes of a digest as 32 lowercase hex digits.
pub(crate) fn hex_prefix(digest: digest::Digest) -> String {
    digest.as_ref()[..16].iter().map(|byte| format!("{byte:02x}")).collect()
}
