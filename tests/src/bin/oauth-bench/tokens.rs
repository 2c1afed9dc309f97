//! Access tokens in bulk: minted by the test authorization server, or signed here with the
//! fixture EC key when more are needed than the server can mint in reasonable time.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mosquitto_oauth_e2e::fixture_key;
use mosquitto_oauth_e2e::idp::Idp;
use serde_json::json;

use super::split_range;

/// Issuer of the locally signed tokens.
pub(super) const LOCAL_ISSUER: &str = "https://oauth-bench.invalid";
/// Audience of the locally signed tokens.
pub(super) const LOCAL_AUDIENCE: &str = "urn:mqtt:bench";

/// The public JWKS holding the fixture key the [`Signer`] uses (`kid` `ec-1`).
pub(super) fn fixture_jwks() -> String {
    fixture_key("jwks-1.json")
}

/// Signs RFC 9068 access tokens with the ES256 fixture key `ec-1` of the core's tests.
pub(super) struct Signer {
    key: EncodingKey,
    header: Header,
}

impl Signer {
    pub(super) fn fixture() -> Self {
        let pem = fixture_key("ec-1.pem");
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("ec-1.pem is a P-256 PKCS#8 key");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("ec-1".to_owned());
        header.typ = Some("at+jwt".to_owned());
        Self { key, header }
    }

    /// A token for subject `sub` with read and write rights on `bench/<sub>/#`, valid for an
    /// hour.
    pub(super) fn token(&self, sub: &str) -> String {
        self.token_for(sub, &format!("mqtt:write:bench/{sub}/# mqtt:read:bench/{sub}/#"))
    }

    /// A token for subject `sub` with these scopes, valid for an hour.
    pub(super) fn token_for(&self, sub: &str, scope: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
        let claims = json!({
            "iss": LOCAL_ISSUER,
            "aud": LOCAL_AUDIENCE,
            "sub": sub,
            "client_id": "oauth-bench",
            "iat": now,
            "exp": now + 3600,
            "scope": scope,
        });
        jsonwebtoken::encode(&self.header, &claims, &self.key).expect("ES256 signing works")
    }

    /// `count` distinct tokens (subjects `<prefix><index>`), signed on `threads` threads.
    pub(super) fn tokens(&self, prefix: &str, count: u64, threads: u64) -> Vec<String> {
        std::thread::scope(|scope| {
            let parts: Vec<_> = split_range(count, threads)
                .into_iter()
                .map(|range| {
                    scope.spawn(move || {
                        range.map(|i| self.token(&format!("{prefix}{i}"))).collect::<Vec<_>>()
                    })
                })
                .collect();
            parts.into_iter().flat_map(|part| part.join().expect("signer thread")).collect()
        })
    }
}

/// `count` tokens minted by `idp`, `token(idp, index)` each, on `threads` threads (the server
/// answers a request in a few milliseconds; this keeps several in flight).
pub(super) fn mint(
    idp: &Idp,
    count: u64,
    threads: u64,
    token: impl Fn(&Idp, u64) -> String + Sync,
) -> Vec<String> {
    std::thread::scope(|scope| {
        let token = &token;
        let parts: Vec<_> = split_range(count, threads)
            .into_iter()
            .map(|range| scope.spawn(move || range.map(|i| token(idp, i)).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(|part| part.join().expect("minting thread")).collect()
    })
}
