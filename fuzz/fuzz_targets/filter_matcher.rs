//! Topic filter validation, matching and containment.
//!
//! The checks live in `fuzz/checks/filter_matcher.rs`, shared with the regression test that replays
//! `fuzz/regressions/filter_matcher/` on stable Rust (`auth-core/tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/filter_matcher.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
