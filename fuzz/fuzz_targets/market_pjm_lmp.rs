//! A file (or Kafka message) of the `pjm-lmp` market format through its parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| carbonflow_fuzz::decode_record("pjm-lmp", data));
