//! A Kafka message through the msgpack decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| carbonflow_fuzz::decode_record("msgpack", data));
