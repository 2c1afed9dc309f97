//! Several issuers (issue #20 item 3): JWTs routed by `iss` to their profile's keys, opaque
//! tokens introspected by each profile in order, per-profile caches and counters, and one
//! profile's failure leaving the others working.
#![allow(clippy::unwrap_used)]

mod support;

use oauth_core::{Access, AuthError, Rejection};
use serde_json::{Value, json};
use support::{Reply, Stub, authenticator, key_path, now, sign, token};

const EDGE: &str = "https://am.example.com/oauth2";
const CLOUD: &str = "https://idp.example.com/realms/iot";

/// `cloud`'s key set: `rsa-2` alone (`edge` has `rsa-1` and `ec-1`).
fn cloud_jwks(dir: &std::path::Path) -> String {
    let rotated: Value =
        serde_json::from_str(&std::fs::read_to_string(key_path("jwks-rotated.json")).unwrap())
            .unwrap();
    let keys: Vec<&Value> =
        rotated["keys"].as_array().unwrap().iter().filter(|k| k["kid"] == "rsa-2").collect();
    let path = dir.join("cloud-jwks.json");
    std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

fn claims(iss: &str, scope: &str) -> Value {
    json!({"iss": iss, "exp": now() + 600, "sub": "dev1", "scope": scope})
}

#[test]
fn a_jwt_is_verified_only_with_the_keys_of_the_issuer_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let edge_jwks = key_path("jwks-1.json");
    let cloud_jwks = cloud_jwks(dir.path());
    let auth = authenticator(&[
        ("oauth_issuers.edge.issuer", EDGE),
        ("oauth_issuers.edge.jwks_file", edge_jwks.to_str().unwrap()),
        ("oauth_issuers.cloud.issuer", CLOUD),
        ("oauth_issuers.cloud.jwks_file", &cloud_jwks),
        ("oauth_issuers.cloud.scope_prefix", "iot:"),
    ]);
    let edge_token = sign("rsa-1", &claims(EDGE, "mqtt:write:a/#"));
    let cloud_token = sign("rsa-2", &claims(CLOUD, "iot:write:b/# mqtt:write:a/#"));
    let edge = auth.validate(&token(&edge_token)).unwrap();
    let cloud = auth.validate(&token(&cloud_token)).unwrap();
    assert_eq!((edge.profile, cloud.profile), (0, 1));
    // Each profile reads scopes with its own prefix.
    let edge = edge.grants.resolve("dev1", None);
    let cloud = cloud.grants.resolve("dev1", None);
    assert!(edge.allows(Access::Write, "a/x") && !edge.allows(Access::Write, "b/x"));
    assert!(cloud.allows(Access::Write, "b/x") && !cloud.allows(Access::Write, "a/x"));

    // A key of one issuer signing for the other, or for nobody known, is refused.
    let cases = [
        (sign("rsa-1", &claims(CLOUD, "iot:write:#")), Rejection::UnknownKey),
        (sign("rsa-2", &claims(EDGE, "mqtt:write:#")), Rejection::UnknownKey),
        (sign("rsa-1", &claims("https://evil.example", "mqtt:write:#")), Rejection::WrongIssuer),
        (
            sign("rsa-1", &json!({"exp": now() + 600, "scope": "mqtt:write:#"})),
            Rejection::WrongIssuer,
        ),
    ];
    for (forged, rejection) in cases {
        assert_eq!(auth.validate(&token(&forged)), Err(AuthError::Rejected(rejection)));
    }
}

fn introspection_stub(known: &'static str, scope: &'static str) -> Stub {
    Stub::start(move |request| {
        if request.form_field("token") == Some(known) {
            Reply::json(json!({"active": true, "scope": scope, "exp": now() + 600}))
        } else {
            Reply::json(json!({"active": false}))
        }
    })
}

#[test]
fn an_opaque_token_is_asked_of_each_profile_in_order_until_one_knows_it() {
    let mut edge = introspection_stub("edge-token", "mqtt:write:a/#");
    let cloud = introspection_stub("cloud-token", "mqtt:write:b/#");
    let (edge_url, cloud_url) = (edge.url("/introspect"), cloud.url("/introspect"));
    let auth = authenticator(&[
        ("oauth_http_timeout_ms", "500"),
        ("oauth_issuers.edge.issuer", EDGE),
        ("oauth_issuers.edge.mode", "introspect"),
        ("oauth_issuers.edge.introspection_url", &edge_url),
        ("oauth_issuers.edge.client_id", "broker"),
        ("oauth_issuers.edge.client_secret", "s"),
        ("oauth_issuers.cloud.issuer", CLOUD),
        ("oauth_issuers.cloud.mode", "introspect"),
        ("oauth_issuers.cloud.introspection_url", &cloud_url),
        ("oauth_issuers.cloud.client_id", "broker"),
        ("oauth_issuers.cloud.client_secret", "s"),
    ]);
    // cloud's token costs a call to each; edge's one call; from then on the caches answer.
    assert_eq!(auth.validate(&token("cloud-token")).unwrap().profile, 1);
    assert_eq!(auth.validate(&token("edge-token")).unwrap().profile, 0);
    assert_eq!((edge.count(), cloud.count()), (2, 1));
    assert!(auth.validate(&token("cloud-token")).is_ok());
    assert_eq!(auth.cached(&token("cloud-token")).unwrap().unwrap().profile, 1);
    assert_eq!((edge.count(), cloud.count()), (2, 1));
    // Unknown to both: inactive, from both caches next time.
    assert_eq!(auth.validate(&token("nobody")), Err(AuthError::Rejected(Rejection::Inactive)));
    assert_eq!(auth.cached(&token("nobody")), Some(Err(AuthError::Rejected(Rejection::Inactive))));
    // Revalidation asks the profile that holds the token valid, and only it.
    assert!(auth.revalidate(&token("cloud-token")).is_ok());
    assert_eq!((edge.count(), cloud.count()), (3, 3));

    // edge down: cloud's tokens still get in; a token cloud does not know cannot be ruled
    // out (edge might know it), so it is unchecked, not rejected.
    edge.go_down();
    auth.forget_all();
    assert_eq!(auth.validate(&token("cloud-token")).unwrap().profile, 1);
    assert!(matches!(auth.validate(&token("edge-token")), Err(AuthError::Unavailable(_))));

    let counters: std::collections::HashMap<String, u64> =
        auth.sys_counters().into_iter().collect();
    assert_eq!(counters["issuers/cloud/upstream/calls"], 5);
    assert_eq!(counters["issuers/edge/upstream/errors"], 2);
    assert_eq!(
        counters["upstream/calls"],
        counters["issuers/cloud/upstream/calls"] + counters["issuers/edge/upstream/calls"]
    );
}
