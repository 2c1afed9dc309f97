//! The auth core against the real oidc-provider: opaque tokens by introspection, JWT access
//! tokens by the provider's JWKS (directly and through discovery), revocation.
#![allow(clippy::unwrap_used)]

use mosquitto_oauth_e2e::idp::{
    BROKER_CLIENT_ID, BROKER_CLIENT_SECRET, BROKER_POST_CLIENT_ID, BROKER_POST_CLIENT_SECRET, Idp,
    TokenRequest,
};
use oauth_core::{Access, AccessToken, AuthError, Authenticator, Config, Rejection, TokenSource};

const AUDIENCE: &str = "urn:mqtt:broker";

fn authenticator(pairs: &[(&str, &str)]) -> Authenticator {
    Authenticator::new(Config::from_pairs(pairs.iter().copied()).unwrap()).unwrap()
}

fn introspecting(idp: &Idp) -> Authenticator {
    let url = idp.introspection_url();
    authenticator(&[
        ("oauth_mode", "introspect"),
        ("oauth_introspection_url", &url),
        ("oauth_client_id", BROKER_CLIENT_ID),
        ("oauth_client_secret", BROKER_CLIENT_SECRET),
        ("oauth_issuer", idp.issuer()),
    ])
}

#[test]
fn opaque_token_is_introspected_and_all_its_scopes_count() {
    let idp = Idp::start();
    let auth = introspecting(&idp);
    let token = idp.opaque_token(
        "device-1",
        &[
            "mqtt:write:devices/device-1/#",
            "mqtt:write:fleet/+/status",
            "mqtt:read:devices/device-1/cmd/#",
        ],
    );
    let session = auth.login(&AccessToken::new(token.as_bytes()), "device-1", None).unwrap();
    let now = oauth_core::now_epoch();
    assert_eq!(session.source(), TokenSource::Introspection);
    assert!(session.allows(Access::Write, "devices/device-1/temp", now));
    assert!(session.allows(Access::Write, "fleet/north/status", now));
    assert!(!session.allows(Access::Write, "fleet/north/config", now));
    assert!(session.allows(Access::Subscribe, "devices/device-1/cmd/#", now));
    assert!(!session.allows(Access::Subscribe, "devices/#", now));
    assert!(session.expires_at().unwrap() > now + 3000);
    assert_eq!(idp.stats().introspections, 1);
}

#[test]
fn client_secret_post_is_accepted_by_the_provider() {
    let idp = Idp::start();
    let url = idp.introspection_url();
    let auth = authenticator(&[
        ("oauth_introspection_url", &url),
        ("oauth_client_id", BROKER_POST_CLIENT_ID),
        ("oauth_client_secret", BROKER_POST_CLIENT_SECRET),
        ("oauth_client_auth", "post"),
    ]);
    let token = idp.opaque_token("device-2", &["mqtt:read:#"]);
    assert!(auth.validate(&AccessToken::new(token.as_bytes())).is_ok());
}

#[test]
fn wrong_broker_secret_fails_closed() {
    let idp = Idp::start();
    let url = idp.introspection_url();
    let auth = authenticator(&[
        ("oauth_introspection_url", &url),
        ("oauth_client_id", BROKER_CLIENT_ID),
        ("oauth_client_secret", "wrong"),
    ]);
    let token = idp.opaque_token("device-2", &["mqtt:read:#"]);
    assert!(matches!(
        auth.validate(&AccessToken::new(token.as_bytes())),
        Err(AuthError::Unavailable(_))
    ));
}

#[test]
fn revoked_token_is_refused_once_its_cache_entry_is_gone() {
    let idp = Idp::start();
    let auth = introspecting(&idp);
    let token = idp.opaque_token("device-3", &["mqtt:read:#"]);
    let access = AccessToken::new(token.as_bytes());
    assert!(auth.validate(&access).is_ok());
    idp.revoke("device-3", &token);
    assert!(auth.validate(&access).is_ok(), "still cached");
    auth.forget(&access);
    assert_eq!(auth.validate(&access), Err(AuthError::Rejected(Rejection::Inactive)));
}

#[test]
fn jwt_access_token_is_verified_with_the_provider_jwks() {
    let idp = Idp::start();
    let jwks = idp.jwks_url();
    let auth = authenticator(&[
        ("oauth_mode", "jwt"),
        ("oauth_jwks_url", &jwks),
        ("oauth_issuer", idp.issuer()),
        ("oauth_audience", AUDIENCE),
        ("oauth_client_id_claim", "sub"),
    ]);
    let token =
        idp.jwt_token("wildcat", &["mqtt:write:devices/wildcat/#", "mqtt:read:#"], AUDIENCE);
    let session = auth.login(&AccessToken::new(token.as_bytes()), "wildcat", None).unwrap();
    let now = oauth_core::now_epoch();
    assert_eq!(session.source(), TokenSource::Jwt);
    assert!(session.allows(Access::Write, "devices/wildcat/x", now));
    assert!(session.allows(Access::Subscribe, "#", now));
    assert!(!session.allows(Access::Read, "$SYS/broker/uptime", now));
    assert_eq!(
        auth.login(&AccessToken::new(token.as_bytes()), "impostor", None),
        Err(AuthError::Rejected(Rejection::ClientIdMismatch("sub".into())))
    );
    assert_eq!(idp.stats().introspections, 0);
}

#[test]
fn jwt_keys_are_discovered_from_the_issuer() {
    let idp = Idp::start();
    let auth = authenticator(&[("oauth_issuer", idp.issuer()), ("oauth_audience", AUDIENCE)]);
    let token = idp.jwt_token("device-1", &["mqtt:read:a"], AUDIENCE);
    assert!(auth.validate(&AccessToken::new(token.as_bytes())).is_ok());
    assert_eq!(idp.stats().jwks, 1);
}

#[test]
fn jwt_for_another_audience_is_refused() {
    let idp = Idp::start();
    let auth = authenticator(&[("oauth_issuer", idp.issuer()), ("oauth_audience", AUDIENCE)]);
    let token = idp.jwt_token("device-1", &["mqtt:read:a"], "urn:mqtt:other");
    assert_eq!(
        auth.validate(&AccessToken::new(token.as_bytes())),
        Err(AuthError::Rejected(Rejection::WrongAudience))
    );
}

#[test]
fn expired_jwt_is_refused() {
    let idp = Idp::start();
    let auth = authenticator(&[
        ("oauth_issuer", idp.issuer()),
        ("oauth_audience", AUDIENCE),
        ("oauth_leeway", "0"),
    ]);
    let token =
        idp.token(&TokenRequest::new("device-1", &["mqtt:read:a"]).resource(AUDIENCE).ttl_secs(1));
    let access = AccessToken::new(token.as_bytes());
    let claims = mosquitto_oauth_e2e::idp::jwt_claims(&token);
    let exp = claims["exp"].as_u64().unwrap();
    while oauth_core::now_epoch() < exp {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(auth.validate(&access), Err(AuthError::Rejected(Rejection::Expired)));
}
