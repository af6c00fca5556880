#![no_main]
// No forbid(unsafe_code) here: the macro's exported #[no_mangle] entry point trips it.
// The body, in the library, forbids it.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squall_fuzz::multilang_msgpack(data));
