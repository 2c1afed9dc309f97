//! Local JWT verification with generated RSA and EC keys: every rule and every known attack.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_core::{Access, AuthError, Rejection, TokenSource, UpstreamError};
use serde_json::{Value, json};
use support::{Reply, Stub, authenticator, key_file, key_path, now, sign, sign_with, token};

const ISSUER_PATH: &str = "/oauth2";
const AUDIENCE: &str = "urn:mqtt:broker";

fn claims(extra: Value) -> Value {
    let mut base = json!({
        "exp": now() + 600, "iat": now(), "sub": "dev1", "client_id": "device-app",
        "scope": "mqtt:write:devices/dev1/# mqtt:read:devices/dev1/cmd",
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// A stub serving discovery and a JWKS that can be switched to the rotated key set (`rsa-2`
/// added), or to one without `rsa-1` (withdrawn).
struct KeyServer {
    stub: Stub,
    rotated: Arc<AtomicBool>,
    rsa_1_withdrawn: Arc<AtomicBool>,
}

impl KeyServer {
    fn start() -> Self {
        let rotated = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&rotated);
        let rsa_1_withdrawn = Arc::new(AtomicBool::new(false));
        let withdrawn = Arc::clone(&rsa_1_withdrawn);
        let holder: Arc<std::sync::OnceLock<u16>> = Arc::new(std::sync::OnceLock::new());
        let port_cell = Arc::clone(&holder);
        let stub = Stub::start(move |request| {
            let port = port_cell.get().copied().unwrap_or(0);
            match request.target.as_str() {
                "/oauth2/.well-known/openid-configuration" => Reply::json(json!({
                    "issuer": format!("http://127.0.0.1:{port}{ISSUER_PATH}"),
                    "jwks_uri": format!("http://127.0.0.1:{port}/oauth2/connect/jwk_uri"),
                })),
                "/oauth2/connect/jwk_uri" if withdrawn.load(Ordering::SeqCst) => {
                    let mut jwks: Value = serde_json::from_str(&key_file("jwks-1.json")).unwrap();
                    jwks["keys"].as_array_mut().unwrap().retain(|key| key["kid"] != "rsa-1");
                    Reply::json(jwks)
                }
                "/oauth2/connect/jwk_uri" => {
                    let file = if flag.load(Ordering::SeqCst) {
                        "jwks-rotated.json"
                    } else {
                        "jwks-1.json"
                    };
                    Reply::raw(200, "application/json", key_file(file))
                }
                _ => Reply::raw(404, "text/plain", "not found"),
            }
        });
        holder.set(stub.port()).unwrap();
        Self { stub, rotated, rsa_1_withdrawn }
    }

    fn issuer(&self) -> String {
        self.stub.url(ISSUER_PATH)
    }

    fn jwks_url(&self) -> String {
        self.stub.url("/oauth2/connect/jwk_uri")
    }
}

fn verifier(server: &KeyServer, extra: &[(&str, &str)]) -> oauth_core::Authenticator {
    let issuer = server.issuer();
    let jwks = server.jwks_url();
    let mut pairs = vec![
        ("oauth_mode", "jwt"),
        ("oauth_issuer", issuer.as_str()),
        ("oauth_jwks_url", jwks.as_str()),
        ("oauth_audience", AUDIENCE),
    ];
    pairs.extend_from_slice(extra);
    authenticator(&pairs)
}

fn valid_claims(server: &KeyServer) -> Value {
    claims(json!({"iss": server.issuer(), "aud": AUDIENCE}))
}

fn rejection(server: &KeyServer, jwt: &str) -> Rejection {
    match verifier(server, &[]).validate(&token(jwt)) {
        Err(AuthError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn valid_rs256_token_is_accepted_with_its_scopes() {
    let server = KeyServer::start();
    let auth = verifier(&server, &[]);
    let jwt = sign("rsa-1", &valid_claims(&server));
    let session = auth.login(&token(&jwt), "dev1", None).unwrap();
    assert_eq!(session.source(), TokenSource::Jwt);
    assert!(session.allows(Access::Write, "devices/dev1/temp", now()));
    assert!(session.allows(Access::Subscribe, "devices/dev1/cmd", now()));
    assert!(!session.allows(Access::Write, "devices/dev2/temp", now()));
}

#[test]
fn valid_es256_token_is_accepted() {
    let server = KeyServer::start();
    let jwt = sign("ec-1", &valid_claims(&server));
    assert!(verifier(&server, &[]).validate(&token(&jwt)).is_ok());
}

#[test]
fn scp_array_claim_carries_scopes() {
    let server = KeyServer::start();
    let mut body = valid_claims(&server);
    body.as_object_mut().unwrap().remove("scope");
    body["scp"] = json!(["mqtt:write:a/#"]);
    let session = verifier(&server, &[]).login(&token(&sign("rsa-1", &body)), "c", None).unwrap();
    assert!(session.allows(Access::Write, "a/b", now()));
}

#[test]
fn expired_token_is_rejected() {
    let server = KeyServer::start();
    let mut body = valid_claims(&server);
    body["exp"] = json!(now() - 120);
    assert_eq!(rejection(&server, &sign("rsa-1", &body)), Rejection::Expired);
}

#[test]
fn not_yet_valid_token_is_rejected() {
    let server = KeyServer::start();
    let mut body = valid_claims(&server);
    body["nbf"] = json!(now() + 300);
    assert_eq!(rejection(&server, &sign("rsa-1", &body)), Rejection::NotYetValid);
}

#[test]
fn wrong_issuer_is_rejected() {
    let server = KeyServer::start();
    let mut body = valid_claims(&server);
    body["iss"] = json!("https://attacker.example");
    assert_eq!(rejection(&server, &sign("rsa-1", &body)), Rejection::WrongIssuer);
}

#[test]
fn wrong_audience_is_rejected() {
    let server = KeyServer::start();
    let mut body = valid_claims(&server);
    body["aud"] = json!("some-other-api");
    assert_eq!(rejection(&server, &sign("rsa-1", &body)), Rejection::WrongAudience);
}

#[test]
fn tampered_payload_fails_the_signature_check() {
    let server = KeyServer::start();
    let jwt = sign("rsa-1", &valid_claims(&server));
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["scope"] = json!("mqtt:write:#");
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_eq!(rejection(&server, &parts.join(".")), Rejection::BadSignature);
}

#[test]
fn token_signed_by_a_key_outside_the_jwks_under_a_known_kid_is_rejected() {
    let server = KeyServer::start();
    let jwt = sign_with("rsa-2", Some("rsa-1"), Some("at+jwt"), &valid_claims(&server));
    assert_eq!(rejection(&server, &jwt), Rejection::BadSignature);
}

#[test]
fn alg_none_is_rejected() {
    let server = KeyServer::start();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt","kid":"rsa-1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(valid_claims(&server).to_string());
    for jwt in [format!("{header}.{payload}."), format!("{header}.{payload}.c2ln")] {
        assert_eq!(rejection(&server, &jwt), Rejection::DisallowedAlgorithm("none".into()));
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_rejected() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let server = KeyServer::start();
    let public_pem = key_file("rsa-1.pub.pem");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let forged = jsonwebtoken::encode(
        &header,
        &valid_claims(&server),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(rejection(&server, &forged), Rejection::DisallowedAlgorithm("HS256".into()));
}

#[test]
fn algorithm_outside_the_allow_list_is_rejected() {
    let server = KeyServer::start();
    let auth = verifier(&server, &[("oauth_algorithms", "RS256")]);
    let jwt = sign("ec-1", &valid_claims(&server));
    assert_eq!(
        auth.validate(&token(&jwt)),
        Err(AuthError::Rejected(Rejection::DisallowedAlgorithm("ES256".into())))
    );
}

#[test]
fn non_access_token_types_are_rejected() {
    let server = KeyServer::start();
    let jwt = sign_with("rsa-1", Some("rsa-1"), Some("logout+jwt"), &valid_claims(&server));
    assert_eq!(rejection(&server, &jwt), Rejection::WrongType("logout+jwt".into()));
    let untyped = sign_with("rsa-1", Some("rsa-1"), None, &valid_claims(&server));
    assert!(verifier(&server, &[]).validate(&token(&untyped)).is_ok());
}

#[test]
fn unknown_kid_triggers_one_refetch_and_rotated_keys_are_used() {
    let server = KeyServer::start();
    // Rejections stay cached far longer than the refetch window, except "unknown key".
    let auth = verifier(&server, &[("oauth_cache_negative_ttl", "60")]);
    auth.validate(&token(&sign("rsa-1", &valid_claims(&server)))).unwrap();
    assert_eq!(server.stub.count(), 1);

    // rsa-2 is not published yet: one refetch, then a rejection.
    let rotated_token = sign("rsa-2", &valid_claims(&server));
    assert_eq!(
        auth.validate(&token(&rotated_token)),
        Err(AuthError::Rejected(Rejection::UnknownKey))
    );
    let after_first_miss = server.stub.count();
    assert!(after_first_miss <= 2, "{after_first_miss} JWKS fetches");

    // Another unknown kid right away must not hit the server again (rate limit).
    let other = sign_with("rsa-2", Some("never-published"), Some("at+jwt"), &valid_claims(&server));
    assert_eq!(auth.validate(&token(&other)), Err(AuthError::Rejected(Rejection::UnknownKey)));
    assert_eq!(server.stub.count(), after_first_miss);

    // After rotation and the rate-limit window, the new key verifies the very token that was
    // refused: "unknown key" is not negatively cached, so a device retrying is let in.
    server.rotated.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    loop {
        match auth.validate(&token(&rotated_token)) {
            Ok(_) => break,
            Err(_) if started.elapsed() < oauth_core::REFRESH_MIN_INTERVAL * 3 => {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(e) => panic!("rotated key never accepted: {e}"),
        }
    }
}

#[test]
fn only_tokens_whose_key_must_be_downloaded_need_the_network() {
    let server = KeyServer::start();
    let auth = verifier(&server, &[]);
    let known = token(&sign("rsa-1", &valid_claims(&server)));
    // Nothing downloaded yet: even a well-formed JWT needs the JWKS.
    assert!(auth.needs_network(&known));
    auth.validate(&known).unwrap();
    assert!(!auth.needs_network(&known));
    // An unknown kid would refetch, but not within the rate-limit window of the last download.
    let rotated = token(&sign("rsa-2", &valid_claims(&server)));
    assert!(!auth.needs_network(&rotated));
    // Not JWT-shaped: only introspection could answer.
    assert!(auth.needs_network(&token("opaque-token")));

    let path = key_path("jwks-1.json");
    let from_file =
        authenticator(&[("oauth_mode", "jwt"), ("oauth_jwks_file", path.to_str().unwrap())]);
    assert!(!from_file.needs_network(&token(&sign("rsa-2", &claims(json!({}))))));
}

#[test]
fn keys_are_discovered_from_the_issuer() {
    let server = KeyServer::start();
    let issuer = server.issuer();
    let auth = authenticator(&[("oauth_mode", "jwt"), ("oauth_issuer", issuer.as_str())]);
    assert!(auth.validate(&token(&sign("rsa-1", &valid_claims(&server)))).is_ok());
    let paths: Vec<String> = server.stub.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(paths, ["/oauth2/.well-known/openid-configuration", "/oauth2/connect/jwk_uri"]);
}

#[test]
fn keys_are_read_from_a_jwks_file() {
    let path = key_path("jwks-1.json");
    let auth = authenticator(&[("oauth_mode", "jwt"), ("oauth_jwks_file", path.to_str().unwrap())]);
    assert!(auth.validate(&token(&sign("ec-1", &claims(json!({}))))).is_ok());
    assert_eq!(
        auth.validate(&token(&sign("rsa-2", &claims(json!({}))))),
        Err(AuthError::Rejected(Rejection::UnknownKey))
    );
}

#[test]
fn jwks_unreachable_fails_closed_and_recovers_later() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/jwks");
    let auth = authenticator(&[("oauth_mode", "jwt"), ("oauth_jwks_url", url.as_str())]);
    let jwt = sign("rsa-1", &claims(json!({})));
    assert!(matches!(
        auth.validate(&token(&jwt)),
        Err(AuthError::Unavailable(UpstreamError::Connect(_)))
    ));
    // Upstream failures are not cached: the next attempt asks again (after the rate limit).
    // Inside the rate-limit window it is told why the last download failed, not that the
    // JWKS "holds no usable key" (the JWKS was never seen).
    match auth.validate(&token(&jwt)) {
        Err(AuthError::Unavailable(UpstreamError::KeysUnavailable(why))) => {
            assert!(why.starts_with("the last JWKS download failed: cannot reach"), "{why}");
        }
        other => panic!("expected keys unavailable, got {other:?}"),
    }
}

#[test]
fn jwt_mode_rejects_opaque_tokens_without_a_call() {
    let server = KeyServer::start();
    assert_eq!(
        rejection(&server, "opaque-token"),
        Rejection::Malformed("not a JWT (oauth_mode jwt)")
    );
    assert_eq!(server.stub.count(), 0);
}

#[test]
fn auto_mode_verifies_jwts_locally_and_introspects_the_rest() {
    let keys = KeyServer::start();
    let introspection = Stub::start(|_| {
        Reply::json(json!({"active": true, "scope": "mqtt:read:x", "exp": now() + 60}))
    });
    let jwks = keys.jwks_url();
    let url = introspection.url("/introspect");
    let auth = authenticator(&[
        ("oauth_jwks_url", jwks.as_str()),
        ("oauth_introspection_url", url.as_str()),
        ("oauth_client_id", "broker"),
        ("oauth_client_secret", "secret"),
    ]);
    let local = auth.validate(&token(&sign("rsa-1", &claims(json!({}))))).unwrap();
    assert_eq!(local.source, TokenSource::Jwt);
    let remote = auth.validate(&token("opaque-abc")).unwrap();
    assert_eq!(remote.source, TokenSource::Introspection);
    assert_eq!(introspection.count(), 1);
}

#[test]
fn malformed_jwks_entries_are_skipped_and_symmetric_keys_never_used() {
    let stub = Stub::start(|_| {
        let mut keys: Value = serde_json::from_str(&key_file("jwks-1.json")).unwrap();
        let list = keys["keys"].as_array_mut().unwrap();
        list.insert(
            0,
            json!({"kty": "oct", "kid": "rsa-1", "k": URL_SAFE_NO_PAD.encode("shared")}),
        );
        list.insert(0, json!({"kty": "weird", "kid": "x"}));
        list.insert(0, json!("not an object"));
        Reply::json(keys)
    });
    let url = stub.url("/jwks");
    let auth = authenticator(&[("oauth_mode", "jwt"), ("oauth_jwks_url", url.as_str())]);
    assert!(auth.validate(&token(&sign("rsa-1", &claims(json!({}))))).is_ok());
    let mut forged_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    forged_header.kid = Some("rsa-1".into());
    let forged = jsonwebtoken::encode(
        &forged_header,
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(b"shared"),
    )
    .unwrap();
    assert_eq!(
        auth.validate(&token(&forged)),
        Err(AuthError::Rejected(Rejection::DisallowedAlgorithm("HS256".into())))
    );
}

#[test]
fn with_jwt_revocation_introspect_a_revalidation_introspects_a_jwt_its_login_did_not() {
    let server = KeyServer::start();
    let introspection = Stub::start(|_| Reply::json(json!({"active": true})));
    let url = introspection.url("/introspect");
    let introspecting = [
        ("oauth_introspection_url", url.as_str()),
        ("oauth_client_id", "broker"),
        ("oauth_client_secret", "s"),
    ];
    let jwt = token(&sign("rsa-1", &valid_claims(&server)));

    // Default (`keys`): the JWT is re-checked against the keys only.
    let keys_only = verifier(&server, &introspecting);
    keys_only.validate(&jwt).unwrap();
    assert!(!keys_only.revalidation_calls_server(&jwt), "keys loaded: no call");
    keys_only.revalidate(&jwt).unwrap();
    assert_eq!(introspection.count(), 0);

    let mut pairs = introspecting.to_vec();
    pairs.push(("oauth_jwt_revocation", "introspect"));
    let auth = verifier(&server, &pairs);
    auth.validate(&jwt).unwrap();
    assert_eq!(introspection.count(), 0, "the login is verified locally, without a call");
    assert!(auth.revalidation_calls_server(&jwt), "paced like an introspected token");
    assert_eq!(auth.revalidate(&jwt).unwrap().source, TokenSource::Jwt);
    assert_eq!(introspection.count(), 1);
    // No answer: the token is not judged (its clients are kept).
    introspection.respond(|_| Reply::raw(500, "text/plain", "down"));
    assert!(matches!(auth.revalidate(&jwt), Err(AuthError::Unavailable(_))));
    assert!(auth.validate(&jwt).is_ok());
    // Revoked at the server: the revalidation rejects it, and so does every later login, also
    // once the rejection has left the verdict cache (its signature is still valid).
    introspection.respond(|_| Reply::json(json!({"active": false})));
    assert_eq!(auth.revalidate(&jwt), Err(AuthError::Rejected(Rejection::Inactive)));
    assert_eq!(auth.validate(&jwt), Err(AuthError::Rejected(Rejection::Inactive)));
    auth.forget_all();
    assert_eq!(auth.validate(&jwt), Err(AuthError::Rejected(Rejection::Inactive)));
    let calls = introspection.count();
    assert_eq!(auth.revalidate(&jwt), Err(AuthError::Rejected(Rejection::Inactive)));
    assert_eq!(introspection.count(), calls, "a revoked JWT is not asked about again");
    // Other JWTs signed by the same key are unaffected.
    introspection.respond(|_| Reply::json(json!({"active": true})));
    let other = token(&sign(
        "rsa-1",
        &claims(json!({"iss": server.issuer(), "aud": AUDIENCE, "jti": "other"})),
    ));
    assert!(auth.validate(&other).is_ok());
    // A JWT the keys reject costs no call.
    let expired = token(&sign(
        "rsa-1",
        &claims(json!({"iss": server.issuer(), "aud": AUDIENCE, "exp": now() - 10})),
    ));
    let calls = introspection.count();
    assert_eq!(auth.revalidate(&expired), Err(AuthError::Rejected(Rejection::Expired)));
    assert_eq!(introspection.count(), calls);
}

#[test]
fn a_locally_verified_jwt_is_rechecked_by_its_signing_key_alone() {
    use oauth_core::policy::{Recheck, RoundLimits, RoundToken, run_revalidation_round};
    let server = KeyServer::start();
    let auth = verifier(&server, &[]);
    let jwt = token(&sign("rsa-1", &valid_claims(&server)));
    let info = auth.validate(&jwt).unwrap();
    let recheck = auth.recheck_for(&info, jwt.clone());
    assert!(matches!(recheck, Recheck::SigningKey { profile: 0, .. }), "{recheck:?}");
    let tokens = [RoundToken { digest: jwt.digest(), recheck }];
    let limits = RoundLimits { interval: Duration::ZERO, max_rps: 100, concurrency: 1 };
    let reported = Mutex::new(Vec::new());
    let report = |digest, reason| reported.lock().unwrap().push((digest, reason));

    let summary = run_revalidation_round(&auth, &tokens, limits, || true, report);
    assert_eq!((summary.checked, summary.invalid), (1, 0));
    assert!(reported.lock().unwrap().is_empty());

    // Withdrawn: the first round whose JWKS refresh is past the rate limit finds it gone.
    server.rsa_1_withdrawn.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + oauth_core::REFRESH_MIN_INTERVAL * 3;
    while reported.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the withdrawn key was never noticed");
        std::thread::sleep(Duration::from_millis(250));
        run_revalidation_round(&auth, &tokens, limits, || true, report);
    }
    assert_eq!(*reported.lock().unwrap(), vec![(jwt.digest(), Rejection::UnknownKey)]);
    assert_eq!(auth.validate(&jwt), Err(AuthError::Rejected(Rejection::UnknownKey)));
}

#[test]
fn only_jwts_verified_locally_and_not_introspected_drop_their_token() {
    use oauth_core::policy::Recheck;
    let server = KeyServer::start();
    let introspection = Stub::start(|_| {
        Reply::json(json!({"active": true, "scope": "mqtt:read:x", "exp": now() + 60}))
    });
    let jwks = server.jwks_url();
    let url = introspection.url("/introspect");
    let auto = [
        ("oauth_jwks_url", jwks.as_str()),
        ("oauth_introspection_url", url.as_str()),
        ("oauth_client_id", "broker"),
        ("oauth_client_secret", "secret"),
    ];
    let keys_only = authenticator(&auto);
    let mut introspecting_jwts = auto.to_vec();
    introspecting_jwts.push(("oauth_jwt_revocation", "introspect"));
    let introspecting_jwts = authenticator(&introspecting_jwts);
    let jwt = token(&sign("rsa-1", &claims(json!({}))));
    let opaque = token("opaque-abc");
    // (authenticator, token, re-checked by its signing key)
    let cases = [
        (&keys_only, &jwt, true),
        (&keys_only, &opaque, false),
        (&introspecting_jwts, &jwt, false),
        (&introspecting_jwts, &opaque, false),
    ];
    for (auth, token, by_key) in cases {
        let info = auth.validate(token).unwrap();
        let recheck = auth.recheck_for(&info, token.clone());
        assert_eq!(matches!(recheck, Recheck::SigningKey { .. }), by_key, "{recheck:?}");
        if !by_key {
            assert_eq!(recheck, Recheck::Token(token.clone()));
        }
    }
}
