//! CSV records (a Kafka message or a file's lines) through the CSV decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| carbonflow_fuzz::decode_csv(data));
