//! What a verified token grants, and the rules every token must pass whichever way it was
//! verified (introspection or local JWT).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::binding::{CertificateBinding, Confirmation};
use crate::config::Config;
use crate::grants::Grants;
use crate::http::JsonObject;
use crate::jwt::KeyFingerprint;

/// Why a token is not accepted. These are answers about the token itself, so they may be
/// cached for `oauth_cache_negative_ttl`; failures to get an answer are
/// [`UpstreamError`](crate::UpstreamError)s instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not something this validator can check (empty, binary, oversized, not a JWT in jwt mode).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The introspection endpoint says the token is not active (unknown, revoked, expired).
    #[error("token is not active")]
    Inactive,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` differs from `oauth_issuer`.
    #[error("token issuer does not match oauth_issuer")]
    WrongIssuer,
    /// `aud` names none of `oauth_audience`.
    #[error("token audience does not include oauth_audience")]
    WrongAudience,
    /// The JWT signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// No key in the JWKS matches the token's `kid` (after a refresh).
    #[error("token is signed with a key not in the JWKS")]
    UnknownKey,
    /// The JWT's `alg` is not in `oauth_algorithms`, or does not fit the key.
    #[error("token algorithm {0} is not allowed")]
    DisallowedAlgorithm(String),
    /// The JWT `typ` header says this is not an access token.
    #[error("token type {0:?} is not an access token")]
    WrongType(String),
    /// A claim that must be there is missing.
    #[error("token lacks the {0} claim")]
    MissingClaim(String),
    /// A claim has the wrong JSON type.
    #[error("token claim {0} is malformed")]
    InvalidClaim(String),
    /// A scope from `oauth_required_scopes` is missing.
    #[error("token lacks the required scope {0:?}")]
    MissingRequiredScope(String),
    /// The `oauth_client_id_claim` value differs from the MQTT client id.
    #[error("MQTT client id does not match the token's {0} claim")]
    ClientIdMismatch(String),
}

/// How a token was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// RFC 7662 introspection.
    Introspection,
    /// Local JWT verification against the JWKS.
    Jwt,
}

/// A token that passed every check: what it grants and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Topic rights from the token's scopes.
    pub grants: Grants,
    /// `exp`, seconds since the epoch.
    pub expires_at: Option<u64>,
    /// Value of the `oauth_client_id_claim` claim, when configured.
    pub bound_client_id: Option<Box<str>>,
    /// Value of the `oauth_username_claim` claim, when configured.
    pub username: Option<Box<str>>,
    /// Introspection or JWT.
    pub source: TokenSource,
    /// What the `cnf` claim binds the token to (RFC 8705); [`Confirmation::Bearer`] when
    /// `oauth_require_certificate_binding` is off.
    pub confirmation: Confirmation,
    /// Which issuer profile validated the token (its index among
    /// [`Config::profiles`](crate::Config::profiles)); 0 without profiles.
    pub profile: u8,
    /// The JWKS key that verified a JWT; `None` for an introspected token.
    pub signing_key: Option<KeyFingerprint>,
}

/// Seconds since the Unix epoch.
pub fn now_epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn numeric_date(claims: &JsonObject, name: &str) -> Result<Option<u64>, Rejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| Rejection::InvalidClaim(name.to_owned())),
        Some(_) => Err(Rejection::InvalidClaim(name.to_owned())),
    }
}

fn string_claim(claims: &JsonObject, name: &str) -> Result<Option<Box<str>>, Rejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str().into())),
        Some(Value::Number(n)) => Ok(Some(n.to_string().into())),
        Some(_) => Err(Rejection::InvalidClaim(name.to_owned())),
    }
}

/// Scopes from `scope` (space-separated string) or `scp` (array, or string).
fn scopes(claims: &JsonObject) -> Result<Vec<&str>, Rejection> {
    let mut scopes = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => scopes.extend(s.split(' ').filter(|s| !s.is_empty())),
            Some(Value::Array(items)) => {
                for item in items {
                    let scope =
                        item.as_str().ok_or_else(|| Rejection::InvalidClaim(name.to_owned()))?;
                    scopes.extend(scope.split(' ').filter(|s| !s.is_empty()));
                }
            }
            Some(_) => return Err(Rejection::InvalidClaim(name.to_owned())),
        }
    }
    Ok(scopes)
}

fn audience_matches(claims: &JsonObject, accepted: &[String]) -> Result<Option<bool>, Rejection> {
    match claims.get("aud") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(aud)) => Ok(Some(accepted.iter().any(|a| a == aud))),
        Some(Value::Array(items)) => Ok(Some(
            items.iter().filter_map(Value::as_str).any(|aud| accepted.iter().any(|a| a == aud)),
        )),
        Some(_) => Err(Rejection::InvalidClaim("aud".into())),
    }
}

/// Applies the rules common to both sources to a token's claims and builds its [`TokenInfo`].
///
/// `require_exp_and_aud`: a JWT must carry `exp` (RFC 9068) and, when audiences are configured,
/// `aud`; an introspection answer vouches for the token itself and may omit them.
pub(crate) fn check_claims(
    claims: &JsonObject,
    config: &Config,
    source: TokenSource,
    now: u64,
) -> Result<TokenInfo, Rejection> {
    let strict = source == TokenSource::Jwt;
    let leeway = config.leeway.as_secs();

    // `exp` is strict: the broker ends a session at `exp` to the second (expiry kick, cache
    // lifetime, ACL checks), so a leeway here would only admit a client to kick it at once.
    // The leeway covers a server clock running ahead of ours, which shows on `nbf`.
    let expires_at = numeric_date(claims, "exp")?;
    match expires_at {
        Some(exp) if now >= exp => return Err(Rejection::Expired),
        None if strict => return Err(Rejection::MissingClaim("exp".into())),
        _ => {}
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(Rejection::NotYetValid);
    }
    if let Some(expected) = &config.issuer {
        match string_claim(claims, "iss")? {
            Some(iss) if iss.trim_end_matches('/') == expected => {}
            None if !strict => {}
            _ => return Err(Rejection::WrongIssuer),
        }
    }
    if !config.audiences.is_empty() {
        match audience_matches(claims, &config.audiences)? {
            Some(true) => {}
            None if !strict => {}
            _ => return Err(Rejection::WrongAudience),
        }
    }

    let scopes = scopes(claims)?;
    if let Some(missing) = config.required_scopes.iter().find(|r| !scopes.contains(&r.as_str())) {
        return Err(Rejection::MissingRequiredScope(missing.clone()));
    }

    let claim = |name: &Option<String>| -> Result<Option<Box<str>>, Rejection> {
        let Some(name) = name else { return Ok(None) };
        string_claim(claims, name)?.map(Some).ok_or_else(|| Rejection::MissingClaim(name.clone()))
    };

    // Checked for their type like every claim we know, but not kept: nothing decides on them,
    // and every byte of `TokenInfo` is paid once per cached token.
    for name in ["sub", "client_id"] {
        string_claim(claims, name)?;
    }
    let confirmation = match config.certificate_binding {
        CertificateBinding::Off => Confirmation::Bearer,
        _ => Confirmation::from_claims(claims)?,
    };
    Ok(TokenInfo {
        grants: Grants::from_scopes(scopes.iter().copied(), &config.scope_prefix),
        expires_at,
        bound_client_id: claim(&config.client_id_claim)?,
        username: claim(&config.username_claim)?,
        source,
        confirmation,
        profile: 0,
        signing_key: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::Access;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut pairs = vec![("oauth_jwks_file", "/dev/null")];
        pairs.extend_from_slice(extra);
        Config::from_pairs(pairs).expect("valid config")
    }

    fn object(value: serde_json::Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test literal is an object"),
        }
    }

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn expiry_is_strict_whatever_the_leeway() {
        let cfg = config(&[("oauth_leeway", "30")]);
        let at = |exp: u64| {
            check_claims(&object(serde_json::json!({"exp": exp})), &cfg, TokenSource::Jwt, NOW)
        };
        assert!(at(NOW + 1).is_ok());
        assert_eq!(at(NOW), Err(Rejection::Expired));
        assert_eq!(at(NOW - 1), Err(Rejection::Expired));
        assert_eq!(at(NOW - 29), Err(Rejection::Expired));
        let fractional = object(serde_json::json!({"exp": (NOW + 10) as f64 + 0.5}));
        assert_eq!(
            check_claims(&fractional, &cfg, TokenSource::Jwt, NOW).map(|t| t.expires_at),
            Ok(Some(NOW + 10))
        );
    }

    #[test]
    fn not_before_is_checked_with_the_configured_leeway() {
        let cfg = config(&[("oauth_leeway", "5")]);
        let at = |nbf: u64| {
            check_claims(
                &object(serde_json::json!({"exp": NOW + 60, "nbf": nbf})),
                &cfg,
                TokenSource::Jwt,
                NOW,
            )
        };
        assert!(at(NOW + 5).is_ok());
        assert_eq!(at(NOW + 6), Err(Rejection::NotYetValid));
    }

    #[test]
    fn jwt_requires_exp_but_introspection_may_omit_it() {
        let cfg = config(&[]);
        let claims = object(serde_json::json!({"scope": "mqtt:read:#"}));
        assert_eq!(
            check_claims(&claims, &cfg, TokenSource::Jwt, NOW),
            Err(Rejection::MissingClaim("exp".into()))
        );
        assert_eq!(
            check_claims(&claims, &cfg, TokenSource::Introspection, NOW).map(|t| t.expires_at),
            Ok(None)
        );
    }

    #[test]
    fn issuer_must_match_when_configured() {
        let cfg = config(&[("oauth_issuer", "https://am.example.com/oauth2")]);
        let with_iss = |iss: &str| object(serde_json::json!({"exp": NOW + 60, "iss": iss}));
        assert!(
            check_claims(&with_iss("https://am.example.com/oauth2"), &cfg, TokenSource::Jwt, NOW)
                .is_ok()
        );
        assert!(
            check_claims(&with_iss("https://am.example.com/oauth2/"), &cfg, TokenSource::Jwt, NOW)
                .is_ok()
        );
        assert_eq!(
            check_claims(&with_iss("https://evil.example"), &cfg, TokenSource::Jwt, NOW),
            Err(Rejection::WrongIssuer)
        );
        let without = object(serde_json::json!({"exp": NOW + 60}));
        assert_eq!(
            check_claims(&without, &cfg, TokenSource::Jwt, NOW),
            Err(Rejection::WrongIssuer)
        );
        assert!(check_claims(&without, &cfg, TokenSource::Introspection, NOW).is_ok());
    }

    #[test]
    fn audience_must_name_one_configured_audience() {
        let cfg = config(&[("oauth_audience", "mqtt-broker,urn:other")]);
        let with_aud =
            |aud: serde_json::Value| object(serde_json::json!({"exp": NOW + 60, "aud": aud}));
        assert!(check_claims(&with_aud("mqtt-broker".into()), &cfg, TokenSource::Jwt, NOW).is_ok());
        assert!(
            check_claims(
                &with_aud(serde_json::json!(["x", "urn:other"])),
                &cfg,
                TokenSource::Jwt,
                NOW
            )
            .is_ok()
        );
        assert_eq!(
            check_claims(&with_aud("x".into()), &cfg, TokenSource::Jwt, NOW),
            Err(Rejection::WrongAudience)
        );
        assert_eq!(
            check_claims(&with_aud(serde_json::json!(5)), &cfg, TokenSource::Jwt, NOW),
            Err(Rejection::InvalidClaim("aud".into()))
        );
        let without = object(serde_json::json!({"exp": NOW + 60}));
        assert_eq!(
            check_claims(&without, &cfg, TokenSource::Jwt, NOW),
            Err(Rejection::WrongAudience)
        );
    }

    #[test]
    fn scopes_come_from_scope_string_or_scp_array() {
        let cfg = config(&[]);
        let from = |claims: serde_json::Value| {
            check_claims(&object(claims), &cfg, TokenSource::Jwt, NOW)
                .expect("valid")
                .grants
                .resolve("c", None)
        };
        let by_scope = from(
            serde_json::json!({"exp": NOW + 60, "scope": "openid mqtt:write:a/# mqtt:read:b"}),
        );
        assert!(by_scope.allows(Access::Write, "a/x") && by_scope.allows(Access::Read, "b"));
        let by_scp =
            from(serde_json::json!({"exp": NOW + 60, "scp": ["mqtt:write:a/#", "mqtt:read:b"]}));
        assert!(by_scp.allows(Access::Write, "a/x") && by_scp.allows(Access::Read, "b"));
        let none = from(serde_json::json!({"exp": NOW + 60, "scope": ""}));
        assert!(!none.allows(Access::Read, "b"));
        assert_eq!(
            check_claims(
                &object(serde_json::json!({"exp": NOW + 60, "scope": 7})),
                &cfg,
                TokenSource::Jwt,
                NOW
            ),
            Err(Rejection::InvalidClaim("scope".into()))
        );
    }

    #[test]
    fn required_scopes_must_all_be_present() {
        let cfg = config(&[("oauth_required_scopes", "mqtt:connect device")]);
        let with = |scope: &str| {
            check_claims(
                &object(serde_json::json!({"exp": NOW + 60, "scope": scope})),
                &cfg,
                TokenSource::Jwt,
                NOW,
            )
        };
        assert!(with("device mqtt:connect mqtt:read:#").is_ok());
        assert_eq!(with("mqtt:connect"), Err(Rejection::MissingRequiredScope("device".into())));
    }

    #[test]
    fn configured_claims_are_extracted_and_required() {
        let cfg = config(&[("oauth_client_id_claim", "sub"), ("oauth_username_claim", "username")]);
        let info = check_claims(
            &object(serde_json::json!({"exp": NOW + 60, "sub": "dev1", "username": "alice", "client_id": "app"})),
            &cfg,
            TokenSource::Introspection,
            NOW,
        )
        .expect("valid");
        assert_eq!(info.bound_client_id.as_deref(), Some("dev1"));
        assert_eq!(info.username.as_deref(), Some("alice"));
        assert_eq!(
            check_claims(
                &object(serde_json::json!({"exp": NOW + 60, "sub": "d"})),
                &cfg,
                TokenSource::Jwt,
                NOW
            ),
            Err(Rejection::MissingClaim("username".into()))
        );
    }

    #[test]
    fn unknown_extra_fields_are_tolerated() {
        let cfg = config(&[]);
        let am_style = object(serde_json::json!({
            "active": true, "scope": "mqtt:read:#", "exp": NOW + 60, "realm": "/edge",
            "user_id": "u", "username": "u", "auditTrackingId": "x-1", "expires_in": 59,
            "token_type": "Bearer", "nested": {"a": [1, 2]}
        }));
        assert!(check_claims(&am_style, &cfg, TokenSource::Introspection, NOW).is_ok());
    }
}
