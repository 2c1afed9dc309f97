//! Introspection (RFC 7662) against a local stub: happy paths, client authentication, caching,
//! and every fault the authorization server can throw at us.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::policy::{RoundLimits, run_revalidation_round};
use oauth_core::{Access, AuthError, Rejection, UpstreamError};
use serde_json::json;
use support::{Reply, Stub, authenticator, logged_lines, now, token};

const TOKEN: &str = "opaque-token-4f1c2a9b7d";

fn active(scope: &str) -> Reply {
    Reply::json(
        json!({"active": true, "scope": scope, "exp": now() + 3600, "sub": "dev1", "client_id": "device-app"}),
    )
}

fn introspecting(stub: &Stub, extra: &[(&str, &str)]) -> oauth_core::Authenticator {
    let url = stub.url("/am/oauth2/realms/root/realms/edge/introspect");
    let mut pairs = vec![
        ("oauth_introspection_url", url.as_str()),
        ("oauth_client_id", "mqtt-broker"),
        ("oauth_client_secret", "s3cr3t:value"),
    ];
    pairs.extend_from_slice(extra);
    if !extra.iter().any(|(key, _)| *key == "oauth_http_timeout_ms") {
        pairs.push(("oauth_http_timeout_ms", "500"));
    }
    authenticator(&pairs)
}

#[test]
fn active_token_grants_its_scopes() {
    let stub = Stub::start(|_| active("mqtt:write:devices/dev1/# mqtt:read:devices/+/cmd openid"));
    let auth = introspecting(&stub, &[]);
    let session = auth.login(&token(TOKEN), "dev1", None).unwrap();
    let now = now();
    assert!(session.allows(Access::Write, "devices/dev1/temp", now));
    assert!(!session.allows(Access::Write, "devices/dev2/temp", now));
    assert!(session.allows(Access::Read, "devices/x/cmd", now));
    assert!(session.allows(Access::Subscribe, "devices/+/cmd", now));
    assert!(!session.allows(Access::Subscribe, "devices/#", now));
}

#[test]
fn client_secret_basic_sends_form_encoded_credentials_in_the_authorization_header() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let auth = introspecting(&stub, &[]);
    auth.validate(&token(TOKEN)).unwrap();
    let request = &stub.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/am/oauth2/realms/root/realms/edge/introspect");
    // base64("mqtt-broker:s3cr3t%3Avalue")
    assert_eq!(request.header("authorization"), Some("Basic bXF0dC1icm9rZXI6czNjcjN0JTNBdmFsdWU="));
    assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(request.body, format!("token={TOKEN}&token_type_hint=access_token"));
}

#[test]
fn client_secret_post_sends_credentials_in_the_body() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let auth = introspecting(&stub, &[("oauth_client_auth", "post")]);
    auth.validate(&token(TOKEN)).unwrap();
    let request = &stub.requests()[0];
    assert_eq!(request.header("authorization"), None);
    assert_eq!(
        request.body,
        format!(
            "token={TOKEN}&token_type_hint=access_token&client_id=mqtt-broker&client_secret=s3cr3t%3Avalue"
        )
    );
}

#[test]
fn realm_query_urls_are_used_as_given() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let url = stub.url("/openam/oauth2/introspect?realm=/edge");
    let auth = support::authenticator(&[
        ("openam_endpoint", url.as_str()),
        ("openam_client_id", "mqtt-broker"),
        ("openam_client_secret", "x"),
    ]);
    auth.validate(&token(TOKEN)).unwrap();
    assert_eq!(stub.requests()[0].target, "/openam/oauth2/introspect?realm=/edge");
}

#[test]
fn inactive_token_is_rejected_and_the_rejection_is_cached() {
    let stub = Stub::start(|_| Reply::json(json!({"active": false})));
    let auth = introspecting(&stub, &[]);
    for _ in 0..3 {
        assert_eq!(auth.validate(&token(TOKEN)), Err(AuthError::Rejected(Rejection::Inactive)));
    }
    assert_eq!(stub.count(), 1);
    let metrics = auth.metrics().snapshot();
    assert_eq!((metrics.cache_misses, metrics.cache_hits, metrics.upstream_calls), (1, 2, 1));
}

#[test]
fn valid_token_is_cached_and_introspected_once() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let auth = introspecting(&stub, &[]);
    for _ in 0..5 {
        auth.validate(&token(TOKEN)).unwrap();
    }
    assert_eq!(stub.count(), 1);
    auth.validate(&token("another-token")).unwrap();
    assert_eq!(stub.count(), 2);
}

#[test]
fn idle_http_client_is_let_go_and_set_up_again_for_the_next_call() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let auth = introspecting(&stub, &[]);
    auth.validate(&token(TOKEN)).unwrap();
    assert!(!auth.release_idle_http(Duration::from_secs(3600)), "just used: kept");
    assert!(auth.release_idle_http(Duration::ZERO), "let go");
    assert!(!auth.release_idle_http(Duration::ZERO), "nothing left to let go");
    auth.revalidate(&token(TOKEN)).unwrap();
    auth.validate(&token("another-token")).unwrap();
    assert_eq!(stub.count(), 3);
}

#[test]
fn negative_cache_can_be_disabled() {
    let stub = Stub::start(|_| Reply::json(json!({"active": false})));
    let auth = introspecting(&stub, &[("oauth_cache_negative_ttl", "0")]);
    for _ in 0..3 {
        assert!(auth.validate(&token(TOKEN)).is_err());
    }
    assert_eq!(stub.count(), 3);
}

#[test]
fn cache_entry_ends_when_the_token_expires() {
    // Two seconds out: `now() + 1` may already be past when the first validation runs.
    let exp = now() + 2;
    let stub = Stub::start(move |_| {
        Reply::json(json!({"active": true, "scope": "mqtt:read:#", "exp": exp}))
    });
    let auth = introspecting(&stub, &[("oauth_leeway", "0")]);
    auth.validate(&token(TOKEN)).unwrap();
    while now() < exp {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The server would still say "active" with the old exp; the cache must have let go of it
    // and the claim check now rejects it.
    assert_eq!(auth.validate(&token(TOKEN)), Err(AuthError::Rejected(Rejection::Expired)));
    assert_eq!(stub.count(), 2);
}

#[test]
fn concurrent_misses_for_one_token_make_one_upstream_call() {
    let stub = Stub::start(|_| active("mqtt:read:#").delayed(Duration::from_millis(300)));
    let auth = Arc::new(introspecting(&stub, &[]));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let auth = Arc::clone(&auth);
            std::thread::spawn(move || auth.validate(&token(TOKEN)).is_ok())
        })
        .collect();
    assert!(workers.into_iter().all(|w| w.join().unwrap()));
    assert_eq!(stub.count(), 1);
}

#[test]
fn missing_or_empty_scope_means_no_rights() {
    for reply in [
        Reply::json(json!({"active": true, "exp": now() + 60})),
        Reply::json(json!({"active": true, "scope": "", "exp": now() + 60})),
    ] {
        let stub = Stub::start(move |_| reply.clone());
        let auth = introspecting(&stub, &[]);
        let session = auth.login(&token(TOKEN), "dev1", None).unwrap();
        assert!(!session.allows(Access::Read, "a", now()));
        assert!(!session.allows(Access::Write, "a", now()));
    }
}

fn upstream_error(reply: Reply) -> UpstreamError {
    let stub = Stub::start(move |_| reply.clone());
    let auth = introspecting(&stub, &[]);
    match auth.validate(&token(TOKEN)) {
        Err(AuthError::Unavailable(e)) => e,
        other => panic!("expected an upstream failure, got {other:?}"),
    }
}

#[test]
fn server_error_status_fails_closed() {
    assert_eq!(upstream_error(Reply::raw(500, "text/plain", "boom")), UpstreamError::Status(500));
    assert_eq!(
        upstream_error(Reply::raw(401, "application/json", "{}")),
        UpstreamError::Status(401)
    );
}

#[test]
fn redirects_are_not_followed() {
    assert_eq!(upstream_error(Reply::raw(302, "text/plain", "")), UpstreamError::Status(302));
}

#[test]
fn garbage_json_fails_closed() {
    assert!(matches!(
        upstream_error(Reply::raw(200, "application/json", "{not json")),
        UpstreamError::Malformed(_)
    ));
    assert!(matches!(
        upstream_error(Reply::raw(200, "application/json", "[1,2]")),
        UpstreamError::Malformed(_)
    ));
    assert!(matches!(
        upstream_error(Reply::json(json!({"scope": "x"}))),
        UpstreamError::Malformed(_)
    ));
    assert!(matches!(
        upstream_error(Reply::json(json!({"active": "yes"}))),
        UpstreamError::Malformed(_)
    ));
}

#[test]
fn wrong_content_type_fails_closed() {
    assert_eq!(
        upstream_error(Reply::raw(200, "text/html", r#"{"active":true}"#)),
        UpstreamError::ContentType("text/html".into())
    );
}

#[test]
fn huge_body_fails_closed() {
    let mut body = br#"{"active":true,"pad":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    body.extend(br#""}"#);
    assert_eq!(
        upstream_error(Reply::raw(200, "application/json", body)),
        UpstreamError::TooLarge(64 * 1024)
    );
}

#[test]
fn slow_server_fails_closed_within_the_timeout() {
    let stub = Stub::start(|_| active("mqtt:read:#").delayed(Duration::from_secs(5)));
    let auth = introspecting(&stub, &[("oauth_http_timeout_ms", "1000")]);
    let started = Instant::now();
    assert_eq!(
        auth.validate(&token(TOKEN)),
        Err(AuthError::Unavailable(UpstreamError::Timeout(Duration::from_millis(1000))))
    );
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
}

#[test]
fn wait_limit_shortens_the_timeout_for_that_call_only() {
    let stub = Stub::start(|_| active("mqtt:read:#").delayed(Duration::from_secs(5)));
    let auth = introspecting(&stub, &[("oauth_http_timeout_ms", "1000")]);
    let timeout_of =
        |ms| Err(AuthError::Unavailable(UpstreamError::Timeout(Duration::from_millis(ms))));
    assert_eq!(
        auth.validate_waiting_at_most(&token(TOKEN), Duration::from_millis(200)),
        timeout_of(200)
    );
    assert_eq!(auth.validate(&token(TOKEN)), timeout_of(1000));
    // Never longer than the configured timeout.
    assert_eq!(
        auth.validate_waiting_at_most(&token(TOKEN), Duration::from_secs(30)),
        timeout_of(1000)
    );
    assert_eq!(stub.requests().len(), 3);
}

#[test]
fn slow_drip_body_fails_closed_within_the_timeout() {
    let reply = active("mqtt:read:#").dripping(Duration::from_millis(100));
    let stub = Stub::start(move |_| reply.clone());
    let auth = introspecting(&stub, &[("oauth_http_timeout_ms", "1000")]);
    let started = Instant::now();
    let outcome = auth.validate(&token(TOKEN));
    assert!(
        matches!(outcome, Err(AuthError::Unavailable(UpstreamError::Timeout(_)))),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
}

#[test]
fn refused_connection_fails_closed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/introspect");
    let auth = authenticator(&[
        ("oauth_introspection_url", url.as_str()),
        ("oauth_client_id", "c"),
        ("oauth_client_secret", "s"),
    ]);
    assert!(matches!(
        auth.validate(&token(TOKEN)),
        Err(AuthError::Unavailable(UpstreamError::Connect(_)))
    ));
}

#[test]
fn upstream_failures_are_not_cached() {
    let stub = Stub::start(|_| Reply::raw(503, "text/plain", ""));
    let auth = introspecting(&stub, &[]);
    assert!(auth.validate(&token(TOKEN)).is_err());
    stub.respond(|_| active("mqtt:read:#"));
    assert!(auth.validate(&token(TOKEN)).is_ok());
    assert_eq!(stub.count(), 2);
    let metrics = auth.metrics().snapshot();
    assert_eq!((metrics.upstream_calls, metrics.upstream_errors), (2, 1));
}

#[test]
fn revalidation_bypasses_the_cache_and_sees_revocation() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let auth = introspecting(&stub, &[]);
    auth.validate(&token(TOKEN)).unwrap();
    stub.respond(|_| Reply::json(json!({"active": false})));
    assert_eq!(auth.revalidate(&token(TOKEN)), Err(AuthError::Rejected(Rejection::Inactive)));
    assert_eq!(auth.validate(&token(TOKEN)), Err(AuthError::Rejected(Rejection::Inactive)));
    assert_eq!(stub.count(), 2);
}

#[test]
fn bad_passwords_never_reach_the_server() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let auth = introspecting(&stub, &[]);
    for password in [&b""[..], b"with\0nul", &[0xff; 70_000][..], b"has space"] {
        assert!(matches!(
            auth.validate(&oauth_core::AccessToken::new(password)),
            Err(AuthError::Rejected(Rejection::Malformed(_)))
        ));
    }
    assert_eq!(stub.count(), 0);
}

#[test]
fn client_id_claim_must_match_the_mqtt_client_id() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let auth = introspecting(&stub, &[("oauth_client_id_claim", "sub")]);
    assert!(auth.login(&token(TOKEN), "dev1", None).is_ok());
    assert_eq!(
        auth.login(&token(TOKEN), "dev2", None),
        Err(AuthError::Rejected(Rejection::ClientIdMismatch("sub".into())))
    );
}

#[test]
fn username_claim_replaces_the_mqtt_username_for_placeholders() {
    let stub = Stub::start(|_| {
        Reply::json(
            json!({"active": true, "scope": "mqtt:read:users/%u/#", "exp": now() + 60, "username": "alice"}),
        )
    });
    let auth = introspecting(&stub, &[("oauth_username_claim", "username")]);
    let session = auth.login(&token(TOKEN), "c1", Some("oauth2")).unwrap();
    assert_eq!(session.username(), Some("alice"));
    assert!(session.allows(Access::Read, "users/alice/x", now()));
    assert!(!session.allows(Access::Read, "users/oauth2/x", now()));
}

#[test]
fn expired_session_allows_nothing() {
    let exp = now() + 60;
    let stub = Stub::start(move |_| {
        Reply::json(json!({"active": true, "scope": "mqtt:read:#", "exp": exp}))
    });
    let auth = introspecting(&stub, &[]);
    let session = auth.login(&token(TOKEN), "c", None).unwrap();
    assert!(session.allows(Access::Read, "a", exp - 1));
    assert!(!session.allows(Access::Read, "a", exp));
    assert!(session.is_expired(exp));
}

#[test]
fn tokens_and_secrets_never_appear_in_log_lines() {
    let _ = logged_lines();
    let stub = Stub::start(|_| active("mqtt:write:bad/#/scope mqtt:read:#"));
    let auth = introspecting(&stub, &[]);
    auth.validate(&token(TOKEN)).unwrap();
    stub.respond(|_| Reply::raw(500, "text/plain", ""));
    let _ = auth.validate(&token("second-token-value-xyz"));
    let lines = logged_lines();
    assert!(lines.iter().any(|l| l.contains("ignoring scope")), "{lines:?}");
    for line in &lines {
        assert!(!line.contains(TOKEN) && !line.contains("second-token-value"), "{line}");
        assert!(!line.contains("s3cr3t"), "{line}");
    }
    assert!(!format!("{auth:?}").contains("s3cr3t"));
}

/// Starts (at the stub) of every introspection request, in order.
fn arrivals(stub: &Stub, answer: fn() -> Reply) -> Arc<std::sync::Mutex<Vec<Instant>>> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    stub.respond(move |_| {
        record.lock().unwrap().push(Instant::now());
        answer()
    });
    seen
}

fn tokens(count: usize) -> Vec<oauth_core::policy::RoundToken> {
    (0..count).map(|n| token(&format!("opaque-{n:05}")).into()).collect()
}

#[test]
fn a_revalidation_round_never_exceeds_its_rate_cap_even_with_calls_in_parallel() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let seen = arrivals(&stub, || active("mqtt:read:#").delayed(Duration::from_millis(30)));
    let auth = introspecting(&stub, &[]);
    let limits = RoundLimits { interval: Duration::ZERO, max_rps: 40, concurrency: 4 };
    let summary = run_revalidation_round(&auth, &tokens(100), limits, || true, |_, _| {});
    assert_eq!((summary.checked, summary.skipped), (100, 0));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 100, "one call per token");
    // Calls start at least 25 ms apart, so 41 consecutive ones span at least a second; at the
    // stub, less the time by which a busy machine may delay one request's sending after its
    // turn while the next is sent on time (tens of ms when tests run in parallel).
    let shortest = seen.windows(41).map(|w| w[40] - w[0]).min().unwrap();
    assert!(shortest >= Duration::from_millis(940), "41 calls within {shortest:?}");
    // The cap, not the 30 ms answers, sets the pace: four calls in flight keep up with it
    // (one at a time, 100 calls would take at least 3 s).
    let length = seen[99] - seen[0];
    assert!(length < Duration::from_millis(3_000), "100 calls at 40/s took {length:?}");
}

#[test]
fn a_revalidation_round_is_spread_over_the_interval() {
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let seen = arrivals(&stub, || active("mqtt:read:#"));
    let auth = introspecting(&stub, &[]);
    let limits = RoundLimits { interval: Duration::from_secs(2), max_rps: 1_000, concurrency: 4 };
    run_revalidation_round(&auth, &tokens(8), limits, || true, |_, _| {});
    let seen = seen.lock().unwrap();
    let gaps: Vec<_> = seen.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|gap| *gap >= Duration::from_millis(240)), "{gaps:?}");
    assert_eq!(auth.metrics().snapshot().revalidation_round_seconds, 2);
}

#[test]
fn a_round_longer_than_the_interval_is_reported_once_until_revalidation_keeps_up() {
    logged_lines();
    let stub = Stub::start(|_| active("mqtt:read:#"));
    let auth = introspecting(&stub, &[]);
    let slow = RoundLimits { interval: Duration::from_secs(1), max_rps: 5, concurrency: 1 };
    for _ in 0..2 {
        run_revalidation_round(&auth, &tokens(8), slow, || true, |_, _| {});
        assert_eq!(auth.metrics().snapshot().revalidation_behind, 1);
    }
    let behind: Vec<_> = logged_lines()
        .into_iter()
        .filter(|l| l.contains("revalidation falls behind: 8 token(s)"))
        .collect();
    assert_eq!(behind.len(), 1, "said once, not per round: {behind:?}");
    assert!(behind[0].contains("up to 5 call(s)/s and 1 in flight"), "{}", behind[0]);
    run_revalidation_round(&auth, &tokens(2), slow, || true, |_, _| {});
    assert_eq!(auth.metrics().snapshot().revalidation_behind, 0);
    assert!(logged_lines().iter().any(|l| l.contains("revalidation keeps up again")));
}
