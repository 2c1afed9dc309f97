//! Scope strings → grants → ACL decisions.
//!
//! Input: `<client id>\t<username>\n<scopes>` (UTF-8, lossy); without a newline the whole input
//! is the scope list, for client `dev1` and user `alice`. Scopes are split on spaces, like a
//! token's `scope` claim.
//!
//! Checks: nothing panics; every resolved grant is a valid filter; an allowed Write/Read is
//! matched by some filter of that kind, an allowed Subscribe lies within some read filter; a
//! plain grant (no placeholder) allows what it names.

use oauth_core::topic::{self, Filter};
use oauth_core::{Access, Grants};

const PROBES: &[&str] = &[
    "a",
    "a/b",
    "/",
    "a//b",
    "$SYS/broker/uptime",
    "dev1",
    "dev1/x",
    "alice/x",
    "devices/dev1/t",
    "#",
    "+",
    "+/#",
    "a/#",
    "$share/g/a/#",
    "$share/g/#",
];

/// Runs one input through the checks; panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (client_id, username, scopes) = match text.split_once('\n') {
        Some((ids, scopes)) => match ids.split_once('\t') {
            Some((client_id, username)) => (client_id, Some(username), scopes),
            None => (ids, None, scopes),
        },
        None => ("dev1", Some("alice"), &*text),
    };
    let grants = Grants::from_scopes(scopes.split(' '), "mqtt:");
    let _ = format!("{grants:?}");
    let session = grants.resolve(client_id, username);
    let _ = format!("{session:?}");

    for filter in session.read_filters().iter().chain(session.write_filters()) {
        assert!(topic::validate_filter(filter.as_str()).is_ok(), "resolved grant {filter:?}");
    }

    let named = scopes.split(' ').filter_map(|scope| {
        let rest = scope.strip_prefix("mqtt:")?;
        rest.strip_prefix("write:").or_else(|| rest.strip_prefix("read:"))
    });
    let filters = session.read_filters().iter().chain(session.write_filters()).map(Filter::as_str);
    for probe in PROBES.iter().copied().chain(named).chain(filters) {
        check_probe(&session, probe);
    }

    // A grant without placeholders allows exactly what it names.
    for scope in scopes.split(' ') {
        let Some(rest) = scope.strip_prefix("mqtt:") else { continue };
        if rest.contains('%') {
            continue;
        }
        if let Some(filter) = rest.strip_prefix("write:") {
            if topic::validate_topic(filter).is_ok() {
                assert!(session.allows(Access::Write, filter), "write grant {filter:?}");
            }
        } else if let Some(filter) = rest.strip_prefix("read:") {
            if topic::validate_topic(filter).is_ok() {
                assert!(session.allows(Access::Read, filter), "read grant {filter:?}");
            }
            if topic::validate_filter(filter).is_ok() && !filter.starts_with("$share/") {
                assert!(session.allows(Access::Subscribe, filter), "read grant {filter:?}");
            }
        }
    }
}

fn check_probe(session: &oauth_core::SessionGrants, probe: &str) {
    if session.allows(Access::Write, probe) {
        assert!(
            session.write_filters().iter().any(|f| topic::matches(f.as_str(), probe)),
            "write to {probe:?} allowed by no write filter"
        );
    }
    if session.allows(Access::Read, probe) {
        assert!(
            session.read_filters().iter().any(|f| topic::matches(f.as_str(), probe)),
            "read of {probe:?} allowed by no read filter"
        );
    }
    if session.allows(Access::Subscribe, probe) {
        let inner = topic::strip_shared_prefix(probe).expect("an allowed subscription parses");
        assert!(topic::validate_filter(inner).is_ok(), "allowed subscription {probe:?}");
        assert!(
            session.read_filters().iter().any(|f| topic::filter_contains(f.as_str(), inner)),
            "subscription {probe:?} allowed by no read filter"
        );
    }
    assert!(session.allows(Access::Unsubscribe, probe));
}
