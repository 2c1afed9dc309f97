//! The test authorization server (`tests/idp/server.mjs`, oidc-provider) does what the other
//! end-to-end tests rely on: exact arbitrary scopes, opaque and JWT tokens, per-token ttl and sub,
//! introspection by the broker clients, revocation, counters and delay.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mosquitto_oauth_e2e::idp::{
    BOUND_DEVICE, BROKER_POST_CLIENT_ID, Idp, TokenFormat, TokenRequest, jwt_claims, jwt_header,
};
use mosquitto_oauth_e2e::tls;
use serde_json::Value;

const SCOPES: [&str; 4] =
    ["mqtt:write:devices/a/#", "mqtt:read:devices/+/state", "mqtt:read:$SYS/#", "mqtt:connect"];
const AUDIENCE: &str = "urn:mqtt:broker-1";

fn now() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
    i64::try_from(secs).expect("time fits i64")
}

fn int(value: &Value, name: &str) -> i64 {
    value[name].as_i64().unwrap_or_else(|| panic!("no integer {name} in {value}"))
}

#[test]
fn opaque_token_introspects_with_exact_scopes_sub_and_expiry() {
    let idp = Idp::start();
    let token = idp.opaque_token("device-1", &SCOPES);
    assert_eq!(token.split('.').count(), 1, "opaque token expected, got {token}");

    let info = idp.introspect(&token);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["scope"], SCOPES.join(" "), "{info}");
    assert_eq!(info["sub"], "device-1", "{info}");
    assert_eq!(info["client_id"], "device-1", "{info}");
    assert_eq!(info["iss"], idp.issuer(), "{info}");
    assert_eq!(info["token_type"], "Bearer", "{info}");
    assert!(info.get("aud").is_none(), "an opaque default token has no audience: {info}");
    let exp = int(&info, "exp");
    assert!((exp - (now() + 3600)).abs() <= 5, "exp {exp} not about now + 3600: {info}");
    assert_eq!(exp - int(&info, "iat"), 3600, "{info}");
}

#[test]
fn token_response_reports_granted_scope_and_lifetime() {
    let idp = Idp::start();
    let response = idp.token_response(&TokenRequest::new("wildcat", &["device", "mqtt:read:#"]));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["scope"], "device mqtt:read:#");
    assert_eq!(response.body["expires_in"], 3600);
    assert_eq!(response.body["token_type"], "Bearer");
}

#[test]
fn jwt_token_is_rfc9068_signed_with_a_published_key() {
    let idp = Idp::start();
    let token = idp.jwt_token("device-2", &SCOPES, AUDIENCE);
    assert_eq!(token.split('.').count(), 3, "JWT expected, got {token}");

    let header = jwt_header(&token);
    assert_eq!(header["typ"], "at+jwt", "{header}");
    assert_eq!(header["alg"], "RS256", "{header}");
    let kid = header["kid"].as_str().unwrap_or_else(|| panic!("no kid in {header}"));

    let jwks = idp.jwks();
    let keys = jwks["keys"].as_array().unwrap_or_else(|| panic!("no keys in {jwks}"));
    let signing_key = keys
        .iter()
        .find(|key| key["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    assert_eq!(signing_key["kty"], "RSA", "{signing_key}");
    assert!(signing_key.get("d").is_none(), "private key material published: {signing_key}");
    assert!(
        keys.iter().any(|key| key["kty"] == "EC" && key["crv"] == "P-256" && key["alg"] == "ES256"),
        "no ES256 key in {jwks}"
    );

    let claims = jwt_claims(&token);
    assert_eq!(claims["scope"], SCOPES.join(" "), "{claims}");
    assert_eq!(claims["aud"], AUDIENCE, "{claims}");
    assert_eq!(claims["iss"], idp.issuer(), "{claims}");
    assert_eq!(claims["sub"], "device-2", "{claims}");
    assert_eq!(claims["client_id"], "device-2", "{claims}");
    assert!(claims["jti"].is_string(), "{claims}");
    assert_eq!(int(&claims, "exp") - int(&claims, "iat"), 3600, "{claims}");
}

#[test]
fn http_resources_are_accepted_and_others_refused() {
    let idp = Idp::start();
    let token = idp.jwt_token("device-3", &["mqtt:connect"], "https://broker.example/mqtt");
    assert_eq!(jwt_claims(&token)["aud"], "https://broker.example/mqtt");

    for bad in ["ftp://x/y", "urn:other:thing", "not a uri", "https://broker.example/#frag"] {
        let response =
            idp.token_response(&TokenRequest::new("device-3", &["mqtt:connect"]).resource(bad));
        assert_eq!(response.status, 400, "resource {bad:?} accepted: {}", response.body);
        assert_eq!(response.body["error"], "invalid_target", "{}", response.body);
    }
}

#[test]
fn opaque_format_with_a_resource_keeps_the_audience() {
    let idp = Idp::start();
    let token = idp.token(
        &TokenRequest::new("device-1", &["mqtt:connect"])
            .resource(AUDIENCE)
            .format(TokenFormat::Opaque),
    );
    assert_eq!(token.split('.').count(), 1, "opaque token expected, got {token}");
    let info = idp.introspect(&token);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["aud"], AUDIENCE, "{info}");
    assert_eq!(info["scope"], "mqtt:connect", "{info}");
}

#[test]
fn ttl_parameter_sets_the_lifetime_and_the_token_expires() {
    let idp = Idp::start();
    let jwt =
        idp.token(&TokenRequest::new("device-1", &["mqtt:connect"]).resource(AUDIENCE).ttl_secs(3));
    let claims = jwt_claims(&jwt);
    assert_eq!(int(&claims, "exp") - int(&claims, "iat"), 3, "{claims}");

    let opaque = idp.token(&TokenRequest::new("device-1", &["mqtt:connect"]).ttl_secs(1));
    let info = idp.introspect(&opaque);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(int(&info, "exp") - int(&info, "iat"), 1, "{info}");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if idp.introspect(&opaque)["active"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "1 s token still active after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    let refused = idp.token_response(&TokenRequest::new("device-1", &[]).ttl_secs(0));
    assert_eq!(refused.status, 400, "{}", refused.body);
}

#[test]
fn sub_parameter_overrides_the_subject() {
    let idp = Idp::start();
    let odd = "dev+ice/#1 ünï";
    let opaque = idp.token(&TokenRequest::new("device-1", &["mqtt:connect"]).subject(odd));
    let info = idp.introspect(&opaque);
    assert_eq!(info["sub"], odd, "{info}");
    assert_eq!(info["client_id"], "device-1", "{info}");

    let jwt = idp
        .token(&TokenRequest::new("device-1", &["mqtt:connect"]).subject(odd).resource(AUDIENCE));
    let claims = jwt_claims(&jwt);
    assert_eq!(claims["sub"], odd, "{claims}");
    assert_eq!(claims["client_id"], "device-1", "{claims}");
}

#[test]
fn revoked_tokens_are_inactive() {
    let idp = Idp::start();
    let own = idp.opaque_token("device-1", &["mqtt:connect"]);
    assert_eq!(idp.introspect(&own)["active"], true);
    idp.revoke("device-1", &own);
    assert_eq!(idp.introspect(&own)["active"], false);

    let other = idp.opaque_token("device-2", &["mqtt:connect"]);
    idp.revoke(mosquitto_oauth_e2e::idp::BROKER_CLIENT_ID, &other);
    assert_eq!(idp.introspect(&other)["active"], false);
}

#[test]
fn issued_jwts_are_introspected_and_revoked_like_am_and_keycloak_do() {
    let idp = Idp::start();
    let jwt = idp.jwt_token("device-1", &SCOPES, AUDIENCE);
    let answer = idp.introspect(&jwt);
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["scope"], SCOPES.join(" "), "{answer}");
    assert_eq!(answer["jti"], jwt_claims(&jwt)["jti"], "{answer}");
    // Another device cannot see it; its owner (or a broker) may revoke it.
    assert_eq!(idp.introspect_as("device-2", &jwt)["active"], false);
    idp.revoke("device-1", &jwt);
    assert_eq!(idp.introspect(&jwt)["active"], false);
    // Revocation is per token: another JWT of the same device stays active.
    let other = idp.jwt_token("device-1", &SCOPES, AUDIENCE);
    assert_eq!(idp.introspect(&other)["active"], true);
    // A JWT signed elsewhere is not ours to answer for.
    let (head, rest) = other.split_once('.').expect("a JWT has three parts");
    let forged = format!("{head}.{}", rest.replace('a', "b"));
    assert_eq!(idp.introspect(&forged)["active"], false);
}

#[test]
fn bound_device_tokens_carry_the_thumbprint_of_the_certificate_it_presented() {
    let idp = Idp::start();
    let dir = tempfile::tempdir().expect("temporary directory");
    tls::make_certificates(dir.path());
    tls::client_certificate(dir.path(), "bound", "bound-device");
    let pem = std::fs::read_to_string(dir.path().join("bound.pem")).expect("certificate");
    let thumbprint = tls::certificate_thumbprint(dir.path(), "bound").to_string();

    let request = TokenRequest::new(BOUND_DEVICE, &SCOPES).presenting(&pem);
    let opaque = idp.token(&request);
    assert_eq!(idp.introspect(&opaque)["cnf"]["x5t#S256"], thumbprint);
    let jwt = idp.token(&request.resource(AUDIENCE));
    assert_eq!(jwt_claims(&jwt)["cnf"]["x5t#S256"], thumbprint);
    assert_eq!(idp.introspect(&jwt)["cnf"]["x5t#S256"], thumbprint);

    let refused = idp.token_response(&TokenRequest::new(BOUND_DEVICE, &SCOPES));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"], "invalid_grant", "{}", refused.body);
    // Other devices' tokens stay bearer tokens, certificate or not.
    let bearer = idp.token(&TokenRequest::new("device-1", &SCOPES).presenting(&pem));
    assert!(idp.introspect(&bearer).get("cnf").is_none());
}

#[test]
fn devices_cannot_introspect_each_others_tokens() {
    let idp = Idp::start();
    let token = idp.opaque_token("device-1", &["mqtt:connect"]);
    assert_eq!(idp.introspect_as("device-2", &token)["active"], false);
    assert_eq!(idp.introspect_as("device-1", &token)["active"], true);
}

#[test]
fn post_client_auth_introspection_works() {
    let idp = Idp::start();
    let token = idp.opaque_token("wildcat", &["mqtt:write:devices/wildcat/#"]);
    let info = idp.introspect_as(BROKER_POST_CLIENT_ID, &token);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["scope"], "mqtt:write:devices/wildcat/#", "{info}");
    assert_eq!(info["sub"], "wildcat", "{info}");
}

#[test]
fn stats_count_requests_and_delay_slows_introspection() {
    let idp = Idp::start();
    let token = idp.opaque_token("device-1", &["mqtt:connect"]);
    for _ in 0..3 {
        idp.introspect(&token);
    }
    idp.jwks();
    let stats = idp.stats();
    assert_eq!((stats.introspections, stats.tokens, stats.jwks), (3, 1, 1), "{stats:?}");

    idp.reset_stats();
    assert_eq!(idp.stats(), Default::default());

    idp.set_delay(400);
    let started = Instant::now();
    assert_eq!(idp.introspect(&token)["active"], true);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "introspection took only {elapsed:?}");

    idp.set_delay(0);
    assert_eq!(idp.stats().introspections, 1);
}

#[test]
fn delay_can_be_set_at_start() {
    let idp = Idp::start_with(&["--introspection-delay-ms", "300"]);
    let token = idp.opaque_token("device-1", &["mqtt:connect"]);
    let started = Instant::now();
    idp.introspect(&token);
    assert!(started.elapsed() >= Duration::from_millis(300), "took {:?}", started.elapsed());
}

#[test]
fn discovery_lists_the_endpoints() {
    let idp = Idp::start();
    let discovery = idp.discovery();
    assert_eq!(discovery["issuer"], idp.issuer());
    assert_eq!(discovery["token_endpoint"], idp.token_url());
    assert_eq!(discovery["introspection_endpoint"], idp.introspection_url());
    assert_eq!(discovery["revocation_endpoint"], idp.revocation_url());
    assert_eq!(discovery["jwks_uri"], idp.jwks_url());
}

#[test]
fn key_file_keeps_the_signing_key_across_restarts() {
    let path = std::env::temp_dir().join(format!("idp-smoke-keys-{}.json", std::process::id()));
    let path_text = path.to_str().expect("temp path is UTF-8").to_owned();
    let status = std::process::Command::new("node")
        .arg(mosquitto_oauth_e2e::workspace_root().join("tests/idp/server.mjs"))
        .args(["--gen-keys", &path_text])
        .status()
        .expect("node runs");
    assert!(status.success(), "--gen-keys failed: {status}");

    let kid_of = |idp: &Idp| {
        let token = idp.jwt_token("device-1", &["mqtt:connect"], AUDIENCE);
        jwt_header(&token)["kid"].as_str().expect("kid").to_owned()
    };
    let first = kid_of(&Idp::start_with(&["--keys", &path_text]));
    let second = kid_of(&Idp::start_with(&["--keys", &path_text]));
    let fresh = kid_of(&Idp::start());
    let _ = std::fs::remove_file(&path);
    assert_eq!(first, second, "same key file, same key");
    assert_ne!(first, fresh, "generated keys differ from the file's");
}
