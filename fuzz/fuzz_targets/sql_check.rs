//! Arbitrary text through parse and bind of a query file.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| carbonflow_fuzz::check_sql(data));
