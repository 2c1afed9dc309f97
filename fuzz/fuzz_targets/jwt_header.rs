//! Arbitrary JWT headers.
//!
//! The checks live in `fuzz/checks/jwt_header.rs`, shared with the regression test that replays
//! `fuzz/regressions/jwt_header/` on stable Rust (`auth-core/tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/jwt_header.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
