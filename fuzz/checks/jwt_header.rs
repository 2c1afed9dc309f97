//! Arbitrary JWT headers.
//!
//! Input: the JSON header of a token `<base64url(input)>.<base64url(claims)>.c2ln` (a `{"` is put
//! in front of inputs that do not start with it, so that the token has the JWT shape and
//! reaches the verifier). It is validated against a JWKS file with one RSA key, cache off.
//!
//! Checks: nothing panics, and a token with a junk signature is never accepted.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_core::{AccessToken, Authenticator, Config, now_epoch};

/// Public half of a throwaway RSA-2048 key (its private half was never kept).
const JWKS: &str = concat!(
    r#"{"keys":[{"kty":"RSA","kid":"fuzz-1","use":"sig","alg":"RS256","e":"AQAB","n":""#,
    "rYzC1kHIbkR2sjh8QCxKk8Bdgc-tmQ3X6yXdBzpZBgX0SjkLH_W1x9VRQnOYT5F92TPiN8pzHLdm2gWG",
    "6YvXJdhW-KoMOtIMnpwEuPBxRRumnBZMdtiX0d6O9OyLh9Lt5D8wCJVdONVe_Wn1YK13x2IC-JDCvkLY",
    "i7uaZAjoEmh2wWd00JEnZDOua8VysLKA9uBuAyPfqgcDjq5uC9gjiSyLszahCiEKO-XSY92rhumacPOW",
    "bnDH98BLOfJ5ncq_2dY7751Ut5DzxBgUchJIhziq5GXguV16xUCK4HgCBbgSDoZEy_LTkCsWfWTtrJkH",
    "SeoAMm3rDfS2U3Kd3pYr8Q",
    r#""}]}"#,
);

struct Fixture {
    auth: Authenticator,
    payload: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("mqtt-oauth-fuzz-jwks-{}.json", std::process::id()));
        std::fs::write(&path, JWKS).expect("write the JWKS");
        let config = Config::from_pairs([
            ("oauth_jwks_file", path.to_str().expect("UTF-8 temp path")),
            ("oauth_algorithms", "RS256 PS256 ES256 EdDSA"),
            ("oauth_cache_ttl", "0"),
            ("oauth_cache_negative_ttl", "0"),
        ])
        .expect("valid config");
        let auth = Authenticator::new(config).expect("authenticator");
        // The key file is read once, by `Authenticator::new`.
        let _ = std::fs::remove_file(&path);
        let claims = format!(r#"{{"exp":{},"scope":"mqtt:read:#"}}"#, now_epoch() + 3600);
        Fixture { auth, payload: URL_SAFE_NO_PAD.encode(claims) }
    })
}

/// Runs one input through the checks; panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let fixture = fixture();
    let header =
        if data.starts_with(b"{\"") { data.to_vec() } else { [&b"{\""[..], data].concat() };
    let token = format!("{}.{}.c2ln", URL_SAFE_NO_PAD.encode(header), fixture.payload);
    let outcome = fixture.auth.validate(&AccessToken::new(token.as_bytes()));
    assert!(outcome.is_err(), "a token signed \"sig\" was accepted");
}
