//! A Kafka message through the json decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| carbonflow_fuzz::decode_record("json", data));
