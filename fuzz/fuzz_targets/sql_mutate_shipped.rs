//! The shipped queries, edited token by token, through parse and bind.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| carbonflow_fuzz::mutate_shipped_query(data));
