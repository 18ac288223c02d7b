//! A file (or Kafka message) of the `entsoe-a44` market format through its parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| carbonflow_fuzz::decode_record("entsoe-a44", data));
