//! Replays the kept fuzz inputs (`fuzz/regressions/<target>/`) through the same checks the
//! cargo-fuzz targets run, on stable Rust, so every input that once found a problem or opened
//! new code paths keeps being checked by `cargo test`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

#[path = "../../fuzz/checks/filter_matcher.rs"]
mod filter_matcher;
#[path = "../../fuzz/checks/introspection_json.rs"]
mod introspection_json;
#[path = "../../fuzz/checks/jwt_header.rs"]
mod jwt_header;
#[path = "../../fuzz/checks/scope_parser.rs"]
mod scope_parser;

/// Runs every file of `fuzz/regressions/<target>/` through `check`; fails naming each input
/// whose check panicked.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions").join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs failed: {failed:#?}",
        failed.len(),
        inputs.len()
    );
}

#[test]
fn kept_filter_matcher_inputs_still_pass_the_matching_rules() {
    replay("filter_matcher", filter_matcher::check);
}

#[test]
fn kept_scope_parser_inputs_never_widen_a_grant() {
    replay("scope_parser", scope_parser::check);
}

#[test]
fn kept_introspection_answers_never_panic_the_login() {
    replay("introspection_json", introspection_json::check);
}

#[test]
fn kept_jwt_headers_never_pass_a_junk_signature() {
    replay("jwt_header", jwt_header::check);
}
