//! Scope strings → grants → ACL decisions.
//!
//! The checks live in `fuzz/checks/scope_parser.rs`, shared with the regression test that replays
//! `fuzz/regressions/scope_parser/` on stable Rust (`auth-core/tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/scope_parser.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
