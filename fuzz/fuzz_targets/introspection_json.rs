//! Arbitrary introspection answers.
//!
//! The checks live in `fuzz/checks/introspection_json.rs`, shared with the regression test that replays
//! `fuzz/regressions/introspection_json/` on stable Rust (`auth-core/tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/introspection_json.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
